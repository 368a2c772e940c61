// register.* nodes: rigid, affine and B-spline registration of a moving
// volume to a fixed one (Mattes mutual information, adaptive stochastic
// gradient descent), transform and displacement field files.
#include <fusionflow/itk_transform.hpp>
#include <fusionflow/sdk.hpp>

#include <itkMultiThreaderBase.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>

#include <cmath>
#include <sstream>

#include "bspline_registration.hpp"
#include "registration.hpp"

namespace fusionflow::register_nodes {
namespace {

// registration::Settings plus what the node does with the result.
struct RegistrationOptions : registration::Settings {
  Interpolation interpolation = Interpolation::Linear;  // of the registered output
  float default_value = 0.0f;
};

constexpr InputPort<Volume> kFixedIn{"fixed"};
constexpr InputPort<Volume> kMovingIn{"moving"};
constexpr OutputPort<Transform> kTransformOut{"transform"};
constexpr OutputPort<Volume> kRegisteredOut{"registered"};
constexpr OutputPort<Table> kReportOut{"report"};

// The pyramid and sampling parameters both engines take (their settings
// structs name them alike).
template <class Options>
void add_pyramid_and_sampling_params(NodeType<Options>& node) {
  using O = Options;
  node.param(&O::shrink_factors, "shrink_factors", Limits::range(1, 64),
             "per level, coarse to fine: samples are drawn from every n-th fixed voxel per axis")
      .param(&O::smoothing_sigmas_mm, "smoothing_sigmas_mm", Limits::range(0.0, 50.0),
             "Gaussian smoothing of both volumes per level, in mm")
      .param(&O::iterations, "iterations", Limits::range(1, 100000), "iterations per level")
      .param(&O::histogram_bins, "histogram_bins", Limits::range(8, 256), "Mattes mutual information histogram bins")
      .param(&O::samples_per_iteration, "samples_per_iteration", Limits::range(64, 10000000),
             "fixed voxels drawn at random, afresh at every iteration, for the metric and its gradient")
      .param(&O::seed, "seed", Limits::range(0, 2147483646), "seed of the random sampling");
}

NodeType<RegistrationOptions> registration_node(registration::TransformKind kind) {
  const bool rigid = kind == registration::TransformKind::Rigid;
  RegistrationOptions defaults;
  defaults.transform_kind = kind;
  NodeType<RegistrationOptions> node(
      "register." + registration::kTransformKindNames.name(kind), "2.0.0",
      rigid ? "Rigid (rotation + translation) registration, Mattes mutual information, multi-resolution"
            : "Affine registration, Mattes mutual information, multi-resolution",
      defaults);
  using O = RegistrationOptions;
  node.input(kFixedIn, "the reference volume (e.g. CT)")
      .input(kMovingIn, "the volume to align (e.g. MRI or PET)")
      .output(kTransformOut, "maps fixed physical points to moving physical points (ITK convention)")
      .output(kRegisteredOut, "the moving volume resampled onto the fixed grid")
      .output(kReportOut, "per resolution level: iterations, final metric, stop condition")
      .choice(&O::initialization, "initialization", registration::kInitializationNames,
              "initial alignment: grid centres (geometry), intensity centres of mass (moments; not for CT, whose "
              "air is negative), or none")
      .param(&O::max_step_mm, "max_step_mm", Limits::range(1e-4, 100.0),
             "largest voxel motion of a step at the coarsest level (finer levels: times the square of their shrink "
             "factor over the coarsest one's)")
      .param(&O::convergence_mm, "convergence_mm", Limits::range(1e-7, 10.0),
             "a level has converged when the mean positions of its last two windows of iterations differ by less "
             "than this (RMS voxel motion)")
      .param(&O::convergence_window, "convergence_window", Limits::range(2, 10000),
             "iterations per window; the last two windows are averaged for the level's answer")
      .param(&O::require_convergence, "require_convergence",
             "fail if the finest level stops at its iteration limit instead of converging")
      .choice(&O::interpolation, "interpolation", kInterpolationNames, "interpolation of the registered output")
      .param(&O::default_value, "default_value", "value of registered voxels outside the moving volume");
  add_pyramid_and_sampling_params(node);
  return node;
}

void run_registration(NodeContext& ctx, const RegistrationOptions& options) {
  const Volume& fixed = ctx.input(kFixedIn);
  const Volume& moving = ctx.input(kMovingIn);
  registration::Result result = registration::register_volumes(fixed, moving, options, run_control(ctx).sub(0.0, 0.95));

  std::ostringstream summary;
  summary << registration::kTransformKindNames.name(options.transform_kind) << " registration: metric "
          << result.final_metric << " after " << result.total_iterations << " iterations ("
          << result.levels.back().stop_condition << ")";
  ctx.log(LogLevel::Info, summary.str());

  Table report;
  for (const auto& level : result.levels) {
    report.add_row({{"level", double(level.level)},
                    {"shrink_factor", double(level.shrink_factor)},
                    {"iterations", double(level.iterations)},
                    {"metric", level.final_metric},
                    {"converged", level.converged ? 1.0 : 0.0},
                    {"stop_condition", level.stop_condition}});
  }
  Volume registered =
      resample_volume(moving, fixed.geometry, &result.transform, options.interpolation, options.default_value);
  registered.metadata.extra["registered_to"] = fixed.metadata.source;
  ctx.output(kTransformOut, std::move(result.transform));
  ctx.output(kRegisteredOut, std::move(registered));
  ctx.output(kReportOut, std::move(report));
  ctx.progress(1.0);
}

// --- register.bspline ---------------------------------------------------------

struct BSplineOptions : registration::BSplineSettings {
  Interpolation interpolation = Interpolation::Linear;
  float default_value = 0.0f;
  bool allow_folding = false;
};

constexpr InputPort<Transform> kInitialIn{"initial"};

NodeType<BSplineOptions> bspline_node() {
  NodeType<BSplineOptions> node(
      "register.bspline", "1.0.0",
      "Deformable registration: cubic B-spline free-form deformation after a rigid or affine transform, Mattes "
      "mutual information, bending-energy penalty, multi-resolution grid");
  using O = BSplineOptions;
  node.input(kFixedIn, "the reference volume (e.g. CT)")
      .input(kMovingIn, "the volume to align (e.g. MRI or PET)")
      .optional_input(kInitialIn,
                      "the rigid or affine transform to start from and keep (e.g. register.rigid's); "
                      "absent: the identity")
      .output(kTransformOut, "maps fixed physical points to moving ones: the initial transform after the deformation")
      .output(kRegisteredOut, "the moving volume resampled onto the fixed grid")
      .output(kReportOut,
              "per level: grid spacing, iterations, metric, bending energy, stop condition; a last row "
              "with the Jacobian determinant range and folded voxels")
      .param(&O::grid_spacing_mm, "grid_spacing_mm", Limits::range(1.0, 1000.0),
             "control-point spacing per level in mm; each level keeps the previous spacing or halves it")
      .param(&O::max_step_mm, "max_step_mm", Limits::range(1e-4, 100.0),
             "largest control-point move of a step at the first level (later levels: scaled with their spacing)")
      .param(&O::bending_energy_weight, "bending_energy_weight", Limits::range(0.0, 1e9),
             "weight of the mean bending energy (1/mm^2) against the mutual information (nats); 0: none")
      .param(&O::convergence_mm, "convergence_mm", Limits::range(1e-7, 10.0),
             "a level has converged when the mean control points of its last two windows differ by less (RMS)")
      .param(&O::convergence_window, "convergence_window", Limits::range(2, 10000),
             "iterations per window; the last two windows are averaged for the level's answer")
      .param(&O::allow_folding, "allow_folding",
             "accept a result whose Jacobian determinant is <= 0 somewhere (folding); otherwise the node fails")
      .choice(&O::interpolation, "interpolation", kInterpolationNames, "interpolation of the registered output")
      .param(&O::default_value, "default_value", "value of registered voxels outside the moving volume");
  add_pyramid_and_sampling_params(node);
  return node;
}

void run_bspline(NodeContext& ctx, const BSplineOptions& options) {
  const Volume& fixed = ctx.input(kFixedIn);
  const Volume& moving = ctx.input(kMovingIn);
  const Transform initial = ctx.has_input(kInitialIn) ? ctx.input(kInitialIn) : Transform{};
  registration::BSplineResult result =
      registration::register_bspline(fixed, moving, initial, options, run_control(ctx).sub(0.0, 0.9));
  std::ostringstream summary;
  summary << "B-spline registration: metric " << result.final_metric << ", control spacing "
          << result.levels.back().grid_spacing_mm << " mm, bending energy " << result.levels.back().bending_energy
          << " /mm^2, Jacobian determinant " << result.smallest_jacobian_determinant << " .. "
          << result.largest_jacobian_determinant << " (" << result.folded_voxels << " folded voxels); "
          << result.levels.back().stop_condition;
  ctx.log(LogLevel::Info, summary.str());
  if (result.folded_voxels > 0 && !options.allow_folding) {
    std::ostringstream message;
    message << "the deformation folds at " << result.folded_voxels << " fixed voxels (smallest Jacobian determinant "
            << result.smallest_jacobian_determinant
            << "); raise bending_energy_weight or grid_spacing_mm, or set allow_folding to true";
    throw std::runtime_error(message.str());
  }
  Table report;
  for (const auto& level : result.levels) {
    report.add_row({{"level", double(level.level)},
                    {"shrink_factor", double(level.shrink_factor)},
                    {"grid_spacing_mm", level.grid_spacing_mm},
                    {"iterations", double(level.iterations)},
                    {"metric", level.final_metric},
                    {"bending_energy", level.bending_energy},
                    {"converged", level.converged ? 1.0 : 0.0},
                    {"stop_condition", level.stop_condition}});
  }
  report.add_row({{"level", std::string("result")},
                  {"smallest_jacobian_determinant", result.smallest_jacobian_determinant},
                  {"largest_jacobian_determinant", result.largest_jacobian_determinant},
                  {"folded_voxels", double(result.folded_voxels)}});
  Volume registered =
      resample_volume(moving, fixed.geometry, &result.transform, options.interpolation, options.default_value);
  registered.metadata.extra["registered_to"] = fixed.metadata.source;
  ctx.output(kTransformOut, std::move(result.transform));
  ctx.output(kRegisteredOut, std::move(registered));
  ctx.output(kReportOut, std::move(report));
  ctx.progress(1.0);
}

// --- transform files -----------------------------------------------------------

struct TransformFileOptions {
  std::filesystem::path path;
};

constexpr InputPort<Transform> kTransformIn{"transform"};

NodeType<TransformFileOptions> write_transform_node() {
  NodeType<TransformFileOptions> node("register.write_transform", "1.0.0",
                                      "Writes a transform in ITK's transform file format (atomically)");
  node.input(kTransformIn, "the transform to write")
      .output_path(&TransformFileOptions::path, "path", "output file: .tfm or .txt (ITK text), .h5 (HDF5) or .mat");
  return node;
}

void run_write_transform(NodeContext& ctx, const TransformFileOptions& options) {
  write_transform_file(ctx.input(kTransformIn), options.path);
}

NodeType<TransformFileOptions> load_transform_node() {
  NodeType<TransformFileOptions> node("register.load_transform", "1.0.0",
                                      "Reads a linear or B-spline transform from an ITK transform file");
  node.output(kTransformOut, "the transform")
      .input_path(&TransformFileOptions::path, "path", "ITK transform file (.tfm, .txt, .h5, .mat)");
  return node;
}

void run_load_transform(NodeContext& ctx, const TransformFileOptions& options) {
  ctx.output(kTransformOut, read_transform_file(options.path));
}

// --- register.write_displacement_field -----------------------------------------

constexpr InputPort<Volume> kGridIn{"grid"};

NodeType<TransformFileOptions> write_displacement_field_node() {
  NodeType<TransformFileOptions> node(
      "register.write_displacement_field", "1.0.0",
      "Writes any transform as a dense ITK displacement field on a grid (d(x) = T(x) - x, LPS mm), the form 3D "
      "Slicer and ANTs read as a grid transform");
  node.input(kTransformIn, "the transform (fixed -> moving)")
      .input(kGridIn, "a volume on the grid to sample the field on (usually the fixed one)")
      .output_path(&TransformFileOptions::path, "path",
                   "output file: .nrrd or .mha (NIfTI is refused: its vector "
                   "frame is ambiguous between readers)");
  return node;
}

void run_write_displacement_field(NodeContext& ctx, const TransformFileOptions& options) {
  const Transform& transform = ctx.input(kTransformIn);
  const Geometry& grid = ctx.input(kGridIn).geometry;
  DisplacementField field;
  field.geometry = grid;
  field.vectors.resize(3 * grid.voxel_count());
  // Every voxel on its own: the same bytes for any thread count.
  tbb::task_arena arena(std::max(1, ctx.thread_budget()));
  arena.execute([&] {
    tbb::parallel_for(std::size_t(0), grid.size[2], [&](std::size_t k) {
      for (std::size_t j = 0; j < grid.size[1]; ++j)
        for (std::size_t i = 0; i < grid.size[0]; ++i) {
          const std::array<double, 3> x = grid.index_to_point({double(i), double(j), double(k)});
          const std::array<double, 3> y = transform.apply(x);
          float* out = field.vectors.data() + 3 * grid.linear_index(i, j, k);
          for (int axis = 0; axis < 3; ++axis) out[axis] = static_cast<float>(y[axis] - x[axis]);
        }
    });
  });
  ctx.throw_if_cancelled();
  write_displacement_field_file(field, options.path);
}

struct TargetErrorOptions {
  std::string prefix = "ct";
  std::string truth_prefix;  // set: the true moving positions are these columns, not a truth transform
};

constexpr InputPort<Transform> kEstimatedIn{"estimated"};
constexpr InputPort<Transform> kTruthIn{"truth"};
constexpr InputPort<Table> kLandmarksIn{"landmarks"};
constexpr OutputPort<Table> kErrorsOut{"errors"};

NodeType<TargetErrorOptions> target_error_node() {
  NodeType<TargetErrorOptions> node(
      "register.target_error", "1.0.0",
      "Target registration error: distance between landmarks mapped by an estimated and a true transform");
  node.input(kEstimatedIn, "the transform registration found (fixed -> moving)")
      .optional_input(kTruthIn, "the true transform (fixed -> moving); or give truth_prefix")
      .input(kLandmarksIn, "landmarks in the fixed space, columns <prefix>_x, <prefix>_y, <prefix>_z")
      .param(&TargetErrorOptions::prefix, "prefix", "column prefix of the fixed-space coordinates")
      .param(&TargetErrorOptions::truth_prefix, "truth_prefix",
             "column prefix of the true moving-space coordinates (e.g. 'mri' for a deformed phantom, whose truth is "
             "not a transform); empty: use the truth input")
      .output(kErrorsOut, "per landmark: error in mm; a last row 'mean' with the mean and max");
  return node;
}

void run_target_error(NodeContext& ctx, const TargetErrorOptions& options) {
  const Transform& estimated = ctx.input(kEstimatedIn);
  const bool truth_from_columns = !options.truth_prefix.empty();
  if (truth_from_columns == ctx.has_input(kTruthIn)) {
    throw std::invalid_argument(truth_from_columns
                                    ? "give either the truth input or truth_prefix, not both"
                                    : "the true positions are missing: connect the truth input or set truth_prefix");
  }
  const Transform* truth = truth_from_columns ? nullptr : &ctx.input(kTruthIn);
  const Table& landmarks = ctx.input(kLandmarksIn);
  auto coordinate_columns = [&](const std::string& prefix) {
    std::array<std::size_t, 3> columns{};
    for (int axis = 0; axis < 3; ++axis) {
      const std::string name = prefix + "_" + "xyz"[axis];
      columns[axis] = landmarks.column_index(name);
      if (columns[axis] == landmarks.columns.size()) {
        throw std::invalid_argument("the landmarks table has no column '" + name + "'");
      }
    }
    return columns;
  };
  const std::array<std::size_t, 3> columns = coordinate_columns(options.prefix);
  const std::array<std::size_t, 3> truth_columns =
      truth_from_columns ? coordinate_columns(options.truth_prefix) : columns;
  const std::size_t name_column = landmarks.column_index("name");
  Table errors;
  double sum = 0, worst = 0;
  for (std::size_t row = 0; row < landmarks.rows.size(); ++row) {
    std::array<double, 3> point{};
    for (int axis = 0; axis < 3; ++axis) point[axis] = std::get<double>(landmarks.rows[row].at(columns[axis]));
    std::array<double, 3> b{};
    if (truth != nullptr) {
      b = truth->apply(point);
    } else {
      for (int axis = 0; axis < 3; ++axis) b[axis] = std::get<double>(landmarks.rows[row].at(truth_columns[axis]));
    }
    const auto a = estimated.apply(point);
    const double error =
        std::sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
    sum += error;
    worst = std::max(worst, error);
    std::string name = std::to_string(row);
    if (name_column < landmarks.columns.size()) {
      if (const auto* text = std::get_if<std::string>(&landmarks.rows[row][name_column])) name = *text;
    }
    errors.add_row({{"landmark", name}, {"error_mm", error}});
  }
  if (landmarks.rows.empty()) throw std::invalid_argument("the landmarks table is empty");
  const double mean = sum / double(landmarks.rows.size());
  errors.add_row({{"landmark", std::string("mean")}, {"error_mm", mean}, {"max_error_mm", worst}});
  std::ostringstream text;
  text << "mean target registration error " << mean << " mm (max " << worst << " mm, " << landmarks.rows.size()
       << " landmarks)";
  ctx.log(LogLevel::Info, text.str());
  ctx.output(kErrorsOut, std::move(errors));
}

}  // namespace
}  // namespace fusionflow::register_nodes

FUSIONFLOW_PLUGIN("register", "2.1.0",
                  "Rigid, affine and B-spline registration (Mattes MI, stochastic gradient descent), transform and "
                  "displacement field files") {
  using namespace fusionflow;
  using namespace fusionflow::register_nodes;
  registrar.add_node(registration_node(registration::TransformKind::Rigid), run_registration);
  registrar.add_node(registration_node(registration::TransformKind::Affine), run_registration);
  registrar.add_node(bspline_node(), run_bspline);
  registrar.add_node(write_transform_node(), run_write_transform);
  registrar.add_node(target_error_node(), run_target_error);
  registrar.add_node(load_transform_node(), run_load_transform);
  registrar.add_node(write_displacement_field_node(), run_write_displacement_field);
  // ITK filters inside nodes share ITK's own pool: cap it to the run's threads.
  registrar.add_thread_budget_hook([](int threads) {
    itk::MultiThreaderBase::SetGlobalDefaultNumberOfThreads(static_cast<itk::ThreadIdType>(threads));
  });
}
