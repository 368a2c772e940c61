// Fusion of the digital head phantom's CT and T1 MRI (aligned, default noise):
// Laplacian-pyramid fusion keeps CT's bone edges and MRI's soft-tissue
// contrast better than plain voxel averaging, measured with Qabf and MI.
//
// The fusion: 4 band-pass levels, detail rule local_energy (choose-max on
// local energy with the majority consistency check), base rule max_abs, which
// on normalised (non-negative) intensities is choose-max: the skull is
// brighter in CT, soft tissue and scalp in T1, so the base keeps each from
// the modality that shows it. (Averaging the base halves MRI's soft-tissue
// contrast; with it, MI stays below plain averaging's.)
#include "fusion_test_support.hpp"

#include "phantom.hpp"

#include <cstdio>

namespace fusionflow::fusion_test {
namespace {

struct Modalities {
  Volume ct, t1, labels;
};

const Modalities& aligned_phantom() {
  static const Modalities result = [] {
    testdata::PhantomOptions options;
    options.size = {64, 64, 48};
    options.mri_displacement = {};  // no rotation, no translation: CT and MRI aligned
    options.lesion_count = 1;
    const testdata::Phantom phantom = testdata::generate_phantom(options);
    return Modalities{phantom.ct, phantom.t1, phantom.labels};
  }();
  return result;
}

Volume run_volume_node(const std::string& type, const Volume& input,
                       const std::vector<std::pair<std::string, ParamValue>>& params) {
  NodeHarness node(registry(), type);
  node.set_input("volume", input).set_threads(2);
  for (const auto& [name, value] : params) node.set_param(name, value);
  node.run();
  return node.output<Volume>("volume");
}

struct Normalised {
  Volume ct, mr;
};

const Normalised& normalised() {
  static const Normalised result = [] {
    const Modalities& p = aligned_phantom();
    // A wide window keeps both the skull (bright) and soft tissue (mid grey) of CT.
    Normalised n{
        run_volume_node("normalize.intensity", p.ct,
                        {{"mode", std::string("ct_window")}, {"window_level", 400.0}, {"window_width", 2000.0}}),
        run_volume_node("normalize.intensity", p.t1,
                        {{"mode", std::string("percentile")}, {"percentile_low", 1.0}, {"percentile_high", 99.0}})};
    return n;
  }();
  return result;
}

Volume pyramid_fusion(const Volume& ct, const Volume& mr) {
  NodeHarness fuse(registry(), "fuse.latent");
  fuse.add_input("latents", encode("encode.laplacian_pyramid", ct, 2, "levels", 4))
      .add_input("latents", encode("encode.laplacian_pyramid", mr, 2, "levels", 4))
      .set_param("detail_rule", "local_energy")
      .set_param("base_rule", "max_abs")
      .set_threads(2);
  fuse.run();
  return decode(fuse.output<Latent>("latent"), 2);
}

Volume plain_average(const Volume& ct, const Volume& mr) {
  Volume average = ct;
  for (std::size_t v = 0; v < average.voxels.size(); ++v) average.voxels[v] = 0.5f * (ct.voxels[v] + mr.voxels[v]);
  average.metadata.modality = "FUSED";
  return average;
}

struct Fused {
  Volume pyramid, average;
};

const Fused& fused_volumes() {
  static const Fused result = [] {
    const Normalised& n = normalised();
    return Fused{pyramid_fusion(n.ct, n.mr), plain_average(n.ct, n.mr)};
  }();
  return result;
}

// Mean over the non-empty axial slices of one metric, fused against `sources`.
double slice_mean(const Volume& fused, const std::vector<Volume>& sources, const std::string& column) {
  NodeHarness node(registry(), "metrics.fusion");
  node.set_input("fused", fused).set_param("range", std::vector<double>{0.0, 1.0}).set_threads(2);
  for (const Volume& source : sources) node.add_input("sources", source);
  node.run();
  return cell(node.output<Table>("metrics"), column, row_with_scope(node.output<Table>("metrics"), "mean"));
}

TEST(PhantomFusion, PyramidFusionKeepsBoneEdgesOfCtBetterThanAveraging) {
  const Normalised& n = normalised();
  const Volume& fused = fused_volumes().pyramid;
  const Volume& average = fused_volumes().average;
  const double q_fused = slice_mean(fused, {n.ct, n.mr}, "qabf");
  const double q_average = slice_mean(average, {n.ct, n.mr}, "qabf");
  const double q_fused_ct = slice_mean(fused, {n.ct}, "qabf");
  const double q_average_ct = slice_mean(average, {n.ct}, "qabf");
  std::printf("Qabf (CT+MRI): pyramid %.4f, average %.4f; edges of CT alone: pyramid %.4f, average %.4f\n", q_fused,
              q_average, q_fused_ct, q_average_ct);
  // Measured: 0.77 vs 0.38, and 0.37 vs 0.16 for CT's edges alone.
  EXPECT_GT(q_fused, q_average + 0.1);
  EXPECT_GT(q_fused_ct, q_average_ct + 0.1);
}

TEST(PhantomFusion, PyramidFusionKeepsMoreInformationOfBothModalitiesAndMriContrastThanAveraging) {
  const Normalised& n = normalised();
  const Volume& fused = fused_volumes().pyramid;
  const Volume& average = fused_volumes().average;
  const double mi_fused = slice_mean(fused, {n.ct, n.mr}, "mi_bits");
  const double mi_average = slice_mean(average, {n.ct, n.mr}, "mi_bits");
  const double mi_fused_mr = slice_mean(fused, {n.mr}, "mi_bits");
  const double mi_average_mr = slice_mean(average, {n.mr}, "mi_bits");
  std::printf("MI bits (CT+MRI): pyramid %.4f, average %.4f; with MRI alone: pyramid %.4f, average %.4f\n", mi_fused,
              mi_average, mi_fused_mr, mi_average_mr);
  // Measured: 4.18 vs 3.83 bits, and 3.22 vs 2.93 bits with the MRI alone.
  EXPECT_GT(mi_fused, mi_average + 0.1);
  EXPECT_GT(mi_fused_mr, mi_average_mr + 0.1);
}

}  // namespace
}  // namespace fusionflow::fusion_test
