// testdata.* nodes: the digital head phantom as pipeline nodes.
#include <fusionflow/sdk.hpp>

#include "phantom.hpp"

namespace fusionflow::testdata {
namespace {

// The generator's options plus the parameters that a pipeline gives in
// another shape: the spacing as a list (empty: the generator's 240 mm field
// of view) and each displacement as two lists.
struct PhantomParams : PhantomOptions {
  std::vector<double> spacing;
  std::array<double, 3> mri_rotation_deg = PhantomOptions{}.mri_displacement.rotation_deg;
  std::array<double, 3> mri_translation_mm = PhantomOptions{}.mri_displacement.translation_mm;
  std::array<double, 3> pet_rotation_deg = PhantomOptions{}.pet_displacement.rotation_deg;
  std::array<double, 3> pet_translation_mm = PhantomOptions{}.pet_displacement.translation_mm;
  double mri_deformation_mm = 0.0;
  double pet_deformation_mm = 0.0;
  double deformation_smoothness_mm = DeformationOptions{}.smoothness_mm;
  std::filesystem::path out;  // testdata.write_phantom only
};

// The generator's parameters, declared once for both nodes.
void add_phantom_params(NodeType<PhantomParams>& node) {
  using O = PhantomParams;
  node.param(&O::size, "size", Limits::range(8, 1024), "CT/MRI grid size in voxels (i, j, k)")
      .param(&O::spacing, "spacing", Limits::range(0.05, 20.0),
             "CT/MRI voxel spacing in mm, three values (empty: a 240 mm field of view)")
      .param(&O::seed, "seed", Limits::at_least(0), "seed of the noise and bias field")
      .param(&O::anatomy_seed, "anatomy_seed", Limits::at_least(0),
             "seed of the anatomy's folding, shape and extra lesions")
      .param(&O::lesion_count, "lesion_count", Limits::range(0, static_cast<double>(kMaxLesions)), "number of lesions")
      .param(&O::pet_spacing_mm, "pet_spacing_mm", Limits::range(0.5, 20.0), "isotropic PET voxel spacing")
      .param(&O::pet_fwhm_mm, "pet_fwhm_mm", Limits::range(0.0, 30.0), "PET point-spread function FWHM (0: none)")
      .param(&O::mri_rotation_deg, "mri_rotation_deg", Limits::range(-45, 45),
             "MRI rotation relative to CT (Euler angles about x, y, z)")
      .param(&O::mri_translation_mm, "mri_translation_mm", Limits::range(-100, 100), "MRI translation relative to CT")
      .param(&O::pet_rotation_deg, "pet_rotation_deg", Limits::range(-45, 45), "PET rotation relative to CT")
      .param(&O::pet_translation_mm, "pet_translation_mm", Limits::range(-100, 100), "PET translation relative to CT")
      .param(&O::mri_deformation_mm, "mri_deformation_mm", Limits::range(0, 30),
             "largest displacement of the smooth random MRI deformation, before the rigid motion (0: none)")
      .param(&O::pet_deformation_mm, "pet_deformation_mm", Limits::range(0, 30),
             "largest displacement of the smooth random PET deformation, before the rigid motion (0: none)")
      .param(&O::deformation_smoothness_mm, "deformation_smoothness_mm", Limits::range(5, 200),
             "correlation length of the deformations");
}

PhantomOptions generator_options(const PhantomParams& params) {
  PhantomOptions options = params;
  if (!params.spacing.empty()) {
    if (params.spacing.size() != 3) throw std::invalid_argument("'spacing' needs three values or none");
    options.ct_spacing_mm = std::array<double, 3>{params.spacing[0], params.spacing[1], params.spacing[2]};
  }
  options.mri_displacement = {params.mri_rotation_deg, params.mri_translation_mm};
  options.pet_displacement = {params.pet_rotation_deg, params.pet_translation_mm};
  options.mri_deformation = {params.mri_deformation_mm, params.deformation_smoothness_mm};
  options.pet_deformation = {params.pet_deformation_mm, params.deformation_smoothness_mm};
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
  if (truth.contains("deformations") && truth["deformations"].contains(modality)) {
    transform.description +=
        " (rigid part only: the deformation is in truth.json and " + modality + "_displacement.nrrd)";
  }
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

constexpr OutputPort<Volume> kCtOut{"ct"};
constexpr OutputPort<Volume> kT1Out{"t1"};
constexpr OutputPort<Volume> kT2Out{"t2"};
constexpr OutputPort<Volume> kPetOut{"pet"};
constexpr OutputPort<Volume> kLabelsOut{"labels"};
constexpr OutputPort<Table> kLandmarksOut{"landmarks"};
constexpr OutputPort<Transform> kMriTruthOut{"mri_truth"};
constexpr OutputPort<Transform> kPetTruthOut{"pet_truth"};

NodeType<PhantomParams> phantom_node() {
  NodeType<PhantomParams> node(
      "testdata.phantom", "1.0.0",
      "Digital head phantom: CT (HU), T1, T2, PET (Bq/mL) and labels with known rigid displacements");
  node.output(kCtOut, "CT in HU on the reference grid")
      .output(kT1Out, "T1-weighted MRI (displaced)")
      .output(kT2Out, "T2-weighted MRI (displaced)")
      .output(kPetOut, "FDG PET in Bq/mL on the coarser PET grid (displaced)")
      .output(kLabelsOut, "tissue labels on the CT grid")
      .output(kLandmarksOut, "landmarks in CT, MRI and PET physical space (LPS mm)")
      .output(kMriTruthOut, "true CT -> MRI transform")
      .output(kPetTruthOut, "true CT -> PET transform");
  add_phantom_params(node);
  return node;
}

void run_phantom(NodeContext& ctx, const PhantomParams& params) {
  Phantom phantom = generate_phantom(generator_options(params));
  ctx.throw_if_cancelled();
  ctx.output(kLandmarksOut, landmark_table(phantom.truth));
  ctx.output(kMriTruthOut, truth_transform(phantom.truth, "mri"));
  ctx.output(kPetTruthOut, truth_transform(phantom.truth, "pet"));
  ctx.output(kCtOut, std::move(phantom.ct));
  ctx.output(kT1Out, std::move(phantom.t1));
  ctx.output(kT2Out, std::move(phantom.t2));
  ctx.output(kPetOut, std::move(phantom.pet));
  ctx.output(kLabelsOut, std::move(phantom.labels));
  ctx.progress(1.0);
}

NodeType<PhantomParams> write_phantom_node() {
  NodeType<PhantomParams> node(
      "testdata.write_phantom", "1.0.0",
      "Writes the head phantom as ct/t1/t2/pet/labels.nii.gz and truth.json (with a deformation also "
      "mri/pet_displacement.nrrd) into a directory");
  node.output_path(&PhantomParams::out, "out", "output directory (created if missing)");
  add_phantom_params(node);
  return node;
}

void run_write_phantom(NodeContext& ctx, const PhantomParams& params) {
  const Phantom phantom = generate_phantom(generator_options(params));
  ctx.progress(0.6);
  ctx.throw_if_cancelled();
  write_phantom(phantom, params.out);
  ctx.log(LogLevel::Info, "phantom written to " + params.out.string());
  ctx.progress(1.0);
}

}  // namespace
}  // namespace fusionflow::testdata

FUSIONFLOW_PLUGIN("testdata", "1.0.0", "Digital head phantom with ground truth for tests and benchmarks") {
  registrar.add_node(fusionflow::testdata::phantom_node(), fusionflow::testdata::run_phantom);
  registrar.add_node(fusionflow::testdata::write_phantom_node(), fusionflow::testdata::run_write_phantom);
}
