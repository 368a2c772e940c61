// testdata.* nodes: the digital head phantom as pipeline nodes.
#include <fusionflow/sdk.hpp>

#include "phantom.hpp"

namespace fusionflow::testdata {
namespace {

// The generator's parameters, declared once for both nodes.
void add_phantom_params(NodeSpec& spec) {
  spec.param("size", Param::IntList({64, 64, 64}).length(3).range(8, 1024), "CT/MRI grid size in voxels (i, j, k)")
      .param("spacing", Param::FloatList({}).range(0.05, 20.0),
             "CT/MRI voxel spacing in mm, three values (empty: a 240 mm field of view)")
      .param("seed", Param::Int(1).at_least(0), "seed of the noise and bias field")
      .param("anatomy_seed", Param::Int(1).at_least(0), "seed of the anatomy's folding, shape and extra lesions")
      .param("lesion_count", Param::Int(1).range(0, static_cast<double>(kMaxLesions)), "number of lesions")
      .param("pet_spacing_mm", Param::Float(3.0).range(0.5, 20.0), "isotropic PET voxel spacing")
      .param("pet_fwhm_mm", Param::Float(6.0).range(0.0, 30.0), "PET point-spread function FWHM (0: none)")
      .param("mri_rotation_deg", Param::FloatList({4.0, -2.5, 6.0}).length(3).range(-45, 45),
             "MRI rotation relative to CT (Euler angles about x, y, z)")
      .param("mri_translation_mm", Param::FloatList({6.0, -4.0, 3.5}).length(3).range(-100, 100),
             "MRI translation relative to CT")
      .param("pet_rotation_deg", Param::FloatList({-1.5, 2.0, -3.0}).length(3).range(-45, 45),
             "PET rotation relative to CT")
      .param("pet_translation_mm", Param::FloatList({-3.0, 2.5, -3.0}).length(3).range(-100, 100),
             "PET translation relative to CT");
}

template <std::size_t N>
std::array<double, N> to_array(const std::vector<double>& values) {
  std::array<double, N> array{};
  std::copy_n(values.begin(), N, array.begin());
  return array;
}

PhantomOptions options_from(const NodeContext& ctx) {
  PhantomOptions options;
  const auto size = ctx.param<std::vector<std::int64_t>>("size");
  for (int axis = 0; axis < 3; ++axis) options.size[axis] = static_cast<std::size_t>(size[axis]);
  const auto spacing = ctx.param<std::vector<double>>("spacing");
  if (!spacing.empty()) {
    if (spacing.size() != 3) throw std::invalid_argument("'spacing' needs three values or none");
    options.ct_spacing_mm = to_array<3>(spacing);
  }
  options.seed = static_cast<std::uint64_t>(ctx.param<std::int64_t>("seed"));
  options.anatomy_seed = static_cast<std::uint64_t>(ctx.param<std::int64_t>("anatomy_seed"));
  options.lesion_count = ctx.param<std::size_t>("lesion_count");
  options.pet_spacing_mm = ctx.param<double>("pet_spacing_mm");
  options.pet_fwhm_mm = ctx.param<double>("pet_fwhm_mm");
  options.mri_displacement = {to_array<3>(ctx.param<std::vector<double>>("mri_rotation_deg")),
                              to_array<3>(ctx.param<std::vector<double>>("mri_translation_mm"))};
  options.pet_displacement = {to_array<3>(ctx.param<std::vector<double>>("pet_rotation_deg")),
                              to_array<3>(ctx.param<std::vector<double>>("pet_translation_mm"))};
  validate(options);
  return options;
}

Transform truth_transform(const nlohmann::json& truth, const std::string& modality) {
  const auto& entry = truth.at("transforms").at(modality);
  Transform transform;
  transform.kind = "rigid";
  for (int row = 0; row < 3; ++row) {
    for (int col = 0; col < 3; ++col) transform.matrix[row * 3 + col] = entry.at("matrix")[row][col].get<double>();
    transform.center[row] = entry.at("center_lps_mm")[row].get<double>();
    transform.translation[row] = entry.at("translation_mm")[row].get<double>();
  }
  transform.description = "phantom ground truth: ct -> " + modality;
  return transform;
}

Table landmark_table(const nlohmann::json& truth) {
  Table table;
  for (const auto& landmark : truth.at("landmarks")) {
    std::vector<std::pair<std::string, Table::Cell>> row{{"name", landmark.at("name").get<std::string>()},
                                                         {"label", landmark.at("label").get<double>()}};
    for (const char* space : {"ct", "mri", "pet"}) {
      const auto& point = landmark.at(std::string(space) + "_lps_mm");
      for (int axis = 0; axis < 3; ++axis) {
        row.emplace_back(std::string(space) + "_" + "xyz"[axis], point[axis].get<double>());
      }
    }
    table.add_row(row);
  }
  return table;
}

NodeSpec phantom_spec() {
  NodeSpec spec("testdata.phantom", "1.0.0",
                "Digital head phantom: CT (HU), T1, T2, PET (Bq/mL) and labels with known rigid displacements");
  spec.output<Volume>("ct", "CT in HU on the reference grid")
      .output<Volume>("t1", "T1-weighted MRI (displaced)")
      .output<Volume>("t2", "T2-weighted MRI (displaced)")
      .output<Volume>("pet", "FDG PET in Bq/mL on the coarser PET grid (displaced)")
      .output<Volume>("labels", "tissue labels on the CT grid")
      .output<Table>("landmarks", "landmarks in CT, MRI and PET physical space (LPS mm)")
      .output<Transform>("mri_truth", "true CT -> MRI transform")
      .output<Transform>("pet_truth", "true CT -> PET transform");
  add_phantom_params(spec);
  return spec;
}

void run_phantom(NodeContext& ctx) {
  Phantom phantom = generate_phantom(options_from(ctx));
  ctx.throw_if_cancelled();
  ctx.output("landmarks", landmark_table(phantom.truth));
  ctx.output("mri_truth", truth_transform(phantom.truth, "mri"));
  ctx.output("pet_truth", truth_transform(phantom.truth, "pet"));
  ctx.output("ct", std::move(phantom.ct));
  ctx.output("t1", std::move(phantom.t1));
  ctx.output("t2", std::move(phantom.t2));
  ctx.output("pet", std::move(phantom.pet));
  ctx.output("labels", std::move(phantom.labels));
  ctx.progress(1.0);
}

NodeSpec write_phantom_spec() {
  NodeSpec spec("testdata.write_phantom", "1.0.0",
                "Writes the head phantom as ct/t1/t2/pet/labels.nii.gz and truth.json into a directory");
  spec.param("out", Param::OutputPath(), "output directory (created if missing)");
  add_phantom_params(spec);
  return spec;
}

void run_write_phantom(NodeContext& ctx) {
  const Phantom phantom = generate_phantom(options_from(ctx));
  ctx.progress(0.6);
  ctx.throw_if_cancelled();
  write_phantom(phantom, ctx.param<std::filesystem::path>("out"));
  ctx.log(LogLevel::Info, "phantom written to " + ctx.param<std::string>("out"));
  ctx.progress(1.0);
}

}  // namespace
}  // namespace fusionflow::testdata

FUSIONFLOW_PLUGIN("testdata", "1.0.0", "Digital head phantom with ground truth for tests and benchmarks") {
  registrar.add_node(fusionflow::testdata::phantom_spec(), fusionflow::testdata::run_phantom);
  registrar.add_node(fusionflow::testdata::write_phantom_spec(), fusionflow::testdata::run_write_phantom);
}
