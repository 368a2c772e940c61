// Shared-latent fusion at 256^3: encode two float volumes with the 3D
// Laplacian pyramid (4 band-pass levels), fuse (max_abs detail, average base)
// and decode, next to the memory-bandwidth floor (copying the inputs' bytes
// once). bench/run_fusion_comparison.sh runs this side by side with the
// NumPy + PyWavelets reference (bench/python_wavelet_reference.py).
//
// Counters: peak_rss_MiB is the process's peak resident memory while the
// fusion runs (VmHWM, reset before the loop through /proc/self/clear_refs),
// inputs included; peak_over_inputs divides it by the inputs' size.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "latent_transforms/fusion_rules.hpp"
#include "latent_transforms/multiscale.hpp"

namespace {
using namespace fusionflow;

constexpr std::size_t kSize = 256;

// Deterministic test content: smooth anatomy-like structure plus hash noise.
Volume make_input(unsigned seed) {
  Volume volume;
  volume.geometry.size = {kSize, kSize, kSize};
  volume.voxels.resize(volume.geometry.voxel_count());
  std::uint32_t state = 2463534242u + seed;
  for (std::size_t k = 0; k < kSize; ++k)
    for (std::size_t j = 0; j < kSize; ++j)
      for (std::size_t i = 0; i < kSize; ++i) {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        const double x = double(i) / kSize - 0.5, y = double(j) / kSize - 0.5, z = double(k) / kSize - 0.5;
        const double r = x * x + y * y + z * z;
        const double structure = r < 0.16 ? 0.4 + 0.3 * ((i / (8 + seed)) % 2) : 0.05;
        volume.voxels[volume.geometry.linear_index(i, j, k)] =
            static_cast<float>(structure + 0.05 * double(state & 0xffff) / 65535.0);
      }
  volume.metadata.modality = seed == 1 ? "CT" : "MR";
  return volume;
}

const Volume& input(int which) {
  static const Volume a = make_input(1);
  static const Volume b = make_input(2);
  return which == 0 ? a : b;
}

double inputs_mib() { return 2.0 * double(kSize * kSize * kSize * sizeof(float)) / (1024.0 * 1024.0); }

void reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";  // resets VmHWM to the current RSS (Linux >= 4.0)
}

double peak_rss_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
  }
  return 0.0;
}

void BM_LaplacianFusion256(benchmark::State& state) {
  const Volume& a = input(0);
  const Volume& b = input(1);
  RunControl control;
  control.threads = static_cast<int>(state.range(0));
  latent::FusionOptions options;  // max_abs detail, average base
  reset_peak_rss();
  for (auto _ : state) {
    Latent fused;
    {
      const Latent la = latent::encode_laplacian_pyramid(a, 4, control);
      const Latent lb = latent::encode_laplacian_pyramid(b, 4, control);
      fused = latent::fuse_latents({&la, &lb}, options, control);
    }  // the per-modality latents are released before decoding, as the executor does
    Volume out = latent::decode_latent(fused, control);
    benchmark::DoNotOptimize(out.voxels.data());
    benchmark::ClobberMemory();
  }
  const double peak = peak_rss_mib();
  state.counters["peak_rss_MiB"] = peak;
  state.counters["inputs_MiB"] = inputs_mib();
  state.counters["peak_over_inputs"] = peak / inputs_mib();
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * 2 *
                          static_cast<std::int64_t>(a.voxels.size() * sizeof(float)));
}
BENCHMARK(BM_LaplacianFusion256)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// The floor: reading the two inputs and writing their bytes once.
void BM_CopyInputs256(benchmark::State& state) {
  const Volume& a = input(0);
  const Volume& b = input(1);
  std::vector<float> target(a.voxels.size() + b.voxels.size(), 0.0f);  // touched: no page faults in the loop
  for (auto _ : state) {
    std::memcpy(target.data(), a.voxels.data(), a.voxels.size() * sizeof(float));
    std::memcpy(target.data() + a.voxels.size(), b.voxels.data(), b.voxels.size() * sizeof(float));
    benchmark::DoNotOptimize(target.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(target.size() * sizeof(float)));
}
BENCHMARK(BM_CopyInputs256)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
