// examples/pipelines/deformable_fusion.json through the CLI on a small
// phantom with a known smooth deformation of MRI and PET: it writes every
// output, and its transforms (read back from the ITK files it writes) put the
// landmarks near their true deformed positions.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include <fusionflow/itk_transform.hpp>
#include "test_support.hpp"
#include <nlohmann/json.hpp>

namespace {
namespace fs = std::filesystem;

fusionflow::testing::CommandOutput run(const std::string& arguments) {
  return fusionflow::testing::run_command(std::string(FUSIONFLOW_EXE) + " " + arguments);
}

double distance(const std::array<double, 3>& a, const std::array<double, 3>& b) {
  return std::sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
}

// The truth's rigid part alone (what a perfect rigid registration that
// ignored the deformation would map x to).
std::array<double, 3> rigid_truth(const nlohmann::json& transform, const std::array<double, 3>& x) {
  std::array<double, 3> y{};
  for (int r = 0; r < 3; ++r) {
    y[r] = transform["offset_mm"][r].get<double>();
    for (int c = 0; c < 3; ++c) y[r] += transform["matrix"][r][c].get<double>() * x[c];
  }
  return y;
}

TEST(DeformableFusion, RunsOnADeformedPhantomAndItsTransformsFollowTheDeformation) {
  const fs::path work = fs::temp_directory_path() / ("fusionflow-deformable-" + std::to_string(::getpid()));
  fs::remove_all(work);
  const auto phantom =
      run("phantom --size 160 160 120 --spacing 1.5 --seed 5 --deform 7 --out " + (work / "phantom").string());
  ASSERT_EQ(phantom.exit_code, 0) << phantom.text;
  const auto pipeline =
      run("run " + std::string(FUSIONFLOW_SOURCE_DIR) +
          "/examples/pipelines/deformable_fusion.json --threads 2 --set out=" + (work / "out").string() +
          " --set ct=" + (work / "phantom/ct.nii.gz").string() + " --set mri=" + (work / "phantom/t1.nii.gz").string() +
          " --set pet=" + (work / "phantom/pet.nii.gz").string());
  ASSERT_EQ(pipeline.exit_code, 0) << pipeline.text;
  for (const char* name : {"fused.nii.gz", "mri_on_ct.nii.gz", "pet_on_ct.nii.gz", "mri_to_ct.h5", "pet_to_ct.h5",
                           "mri_to_ct_displacement.nrrd", "pet_to_ct_displacement.nrrd", "mri_registration.csv",
                           "mri_registration_check.png", "pet_registration_check.png"}) {
    EXPECT_TRUE(fs::exists(work / "out" / name)) << name;
  }
  std::ifstream truth_file(work / "phantom/truth.json");
  const nlohmann::json truth = nlohmann::json::parse(truth_file);
  for (const std::string modality : {"mri", "pet"}) {
    SCOPED_TRACE(modality);
    const fusionflow::Transform transform = fusionflow::read_transform_file(work / "out" / (modality + "_to_ct.h5"));
    ASSERT_EQ(transform.kind, "bspline");
    const fusionflow::DisplacementField field =
        fusionflow::read_displacement_field_file(work / "out" / (modality + "_to_ct_displacement.nrrd"));
    double estimated = 0, ignoring_deformation = 0;
    int count = 0;
    for (const auto& landmark : truth["landmarks"]) {
      if (landmark["kind"] != "interior") continue;
      const auto ct = landmark["ct_lps_mm"].get<std::array<double, 3>>();
      const auto expected = landmark[modality + "_lps_mm"].get<std::array<double, 3>>();
      estimated += distance(transform.apply(ct), expected);
      ignoring_deformation += distance(rigid_truth(truth["transforms"][modality], ct), expected);
      ++count;
    }
    estimated /= count;
    ignoring_deformation /= count;
    std::printf("%s: interior landmarks' mean TRE %.3f mm (the true rigid motion alone: %.3f mm)\n", modality.c_str(),
                estimated, ignoring_deformation);
    // The stated bound (docs/registration.md): below 2.3 mm, and below 0.8 of
    // what the true rigid motion alone leaves (measured: MRI 1.69 and PET
    // 2.11 mm against 2.99 mm).
    EXPECT_LT(estimated, 2.3);
    EXPECT_LT(estimated, 0.8 * ignoring_deformation);
    // The displacement field file is the same mapping, sampled on the CT grid.
    const auto& g = field.geometry;
    const std::array<double, 3> x =
        g.index_to_point({double(g.size[0] / 2), double(g.size[1] / 3), double(g.size[2] / 2)});
    const auto d = field.at(g.size[0] / 2, g.size[1] / 3, g.size[2] / 2);
    EXPECT_LT(distance({x[0] + d[0], x[1] + d[1], x[2] + d[2]}, transform.apply(x)), 1e-3);
  }
  fs::remove_all(work);
}

}  // namespace
