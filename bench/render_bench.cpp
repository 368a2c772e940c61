// viz.render3d at the size: a 256^3 fused volume (the head phantom's
// CT and T1, each normalised to [0, 1] and averaged) rendered to a 1024x1024
// PNG on this machine's OpenGL (Xvfb + Mesa llvmpipe when there is no display:
// the node starts Xvfb itself). Target: at most 5 s per rendering.
//
// Cases: the whole node at 1024^2 and at 64^2 (the difference is the ray
// casting; the rest is volume upload, shader compilation, statistics and
// PNG encoding), and the two-volume mode (CT bone + PET hot) at 1024^2.
//   ./build/bin/render_bench
#include <benchmark/benchmark.h>

#include <fusionflow/payload_types.hpp>
#include <fusionflow/plugin_loader.hpp>
#include <fusionflow/testing.hpp>

#include <algorithm>
#include <filesystem>

#include "phantom.hpp"

namespace {
using namespace fusionflow;

constexpr std::size_t kSize = 256;

const NodeRegistry& registry() {
  static NodeRegistry r = [] {
    NodeRegistry loaded;
    load_plugins({default_plugin_dir()}, loaded);
    return loaded;
  }();
  return r;
}

const testdata::Phantom& phantom() {
  static const testdata::Phantom p = [] {
    testdata::PhantomOptions options;
    options.size = {kSize, kSize, kSize};
    options.pet_displacement = {};
    return testdata::generate_phantom(options);
  }();
  return p;
}

const Volume& fused() {
  static const Volume volume = [] {
    const Volume& ct = phantom().ct;
    const Volume& t1 = phantom().t1;
    Volume result = ct;
    for (std::size_t i = 0; i < result.voxels.size(); ++i) {
      const double ct01 = std::clamp((ct.voxels[i] + 100.0) / 1600.0, 0.0, 1.0);
      const double t101 = std::clamp(t1.voxels[i] / 1000.0, 0.0, 1.0);
      result.voxels[i] = static_cast<float>(0.5 * (ct01 + t101));
    }
    result.metadata = {"FUSED", "a.u.", "fused CT + T1", "render_bench", "", {}};
    return result;
  }();
  return volume;
}

const std::filesystem::path& output_dir() {
  static const std::filesystem::path dir = std::filesystem::temp_directory_path() / "fusionflow-render-bench";
  return dir;
}

void render(benchmark::State& state, const Volume& volume, const Volume* functional, const char* name) {
  const int pixels = static_cast<int>(state.range(0));
  for (auto _ : state) {
    testing::NodeHarness node(registry(), "viz.render3d");
    node.set_input("volume", volume);
    if (functional != nullptr) node.set_input("functional", *functional);
    node.set_param("width", pixels).set_param("height", pixels).set_param("camera", "oblique");
    node.set_param("path", (output_dir() / (std::string(name) + "_" + std::to_string(pixels) + ".png")).string());
    node.run();
  }
  state.counters["voxels"] = double(volume.voxels.size());
}

void BM_RenderFused(benchmark::State& state) { render(state, fused(), nullptr, "fused"); }
void BM_RenderCtPet(benchmark::State& state) { render(state, phantom().ct, &phantom().pet, "ct_pet"); }

BENCHMARK(BM_RenderFused)->Arg(1024)->Arg(64)->Iterations(3)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_RenderCtPet)->Arg(1024)->Iterations(3)->Unit(benchmark::kSecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
