// register.* nodes: rigid and affine registration of a moving volume to a
// fixed one (Mattes mutual information, adaptive stochastic gradient
// descent), and transform files.
#include <fusionflow/itk_transform.hpp>
#include <fusionflow/sdk.hpp>

#include <itkMultiThreaderBase.h>

#include <cmath>
#include <sstream>

#include "registration.hpp"

namespace fusionflow::register_nodes {
namespace {

NodeSpec registration_spec(const std::string& kind) {
  const bool rigid = kind == "rigid";
  NodeSpec spec("register." + kind, "2.0.0",
                rigid ? "Rigid (rotation + translation) registration, Mattes mutual information, multi-resolution"
                      : "Affine registration, Mattes mutual information, multi-resolution");
  spec.input<Volume>("fixed", "the reference volume (e.g. CT)")
      .input<Volume>("moving", "the volume to align (e.g. MRI or PET)")
      .output<Transform>("transform", "maps fixed physical points to moving physical points (ITK convention)")
      .output<Volume>("registered", "the moving volume resampled onto the fixed grid")
      .output<Table>("report", "per resolution level: iterations, final metric, stop condition")
      .param("initialization", Param::Choice({"geometry", "moments", "none"}, "geometry"),
             "initial alignment: grid centres (geometry), intensity centres of mass (moments; not for CT, whose "
             "air is negative), or none")
      .param("shrink_factors", Param::IntList({4, 2, 1}).range(1, 64),
             "per level, coarse to fine: samples are drawn from every n-th fixed voxel per axis")
      .param("smoothing_sigmas_mm", Param::FloatList({2.0, 1.0, 0.0}).range(0.0, 50.0),
             "Gaussian smoothing of both volumes per level, in mm")
      .param("iterations", Param::IntList({300, 300, 300}).range(1, 100000), "maximum iterations per level")
      .param("histogram_bins", Param::Int(32).range(8, 256), "Mattes mutual information histogram bins")
      .param("samples_per_iteration", Param::Int(2048).range(64, 10000000),
             "fixed voxels drawn at random, afresh at every iteration, for the metric and its gradient")
      .param("seed", Param::Int(1).range(0, 2147483646), "seed of the random sampling")
      .param("max_step_mm", Param::Float(2.0).range(1e-4, 100.0),
             "largest voxel motion of a step at the coarsest level (finer levels: times the square of their shrink "
             "factor over the coarsest one's)")
      .param("convergence_mm", Param::Float(0.5).range(1e-7, 10.0),
             "a level has converged when the mean positions of its last two windows of iterations differ by less "
             "than this (RMS voxel motion)")
      .param("convergence_window", Param::Int(50).range(2, 10000),
             "iterations per window; the last two windows are averaged for the level's answer")
      .param("require_convergence", Param::Bool(true),
             "fail if the finest level stops at its iteration limit instead of converging")
      .param("interpolation", Param::Choice({"linear", "bspline", "nearest"}, "linear"),
             "interpolation of the registered output")
      .param("default_value", Param::Float(0.0), "value of registered voxels outside the moving volume");
  return spec;
}

void run_registration(NodeContext& ctx, const std::string& kind) {
  const Volume& fixed = ctx.input<Volume>("fixed");
  const Volume& moving = ctx.input<Volume>("moving");
  registration::Settings settings;
  settings.transform_kind = kind;
  settings.initialization = ctx.param<std::string>("initialization");
  settings.shrink_factors.clear();
  for (std::int64_t factor : ctx.param<std::vector<std::int64_t>>("shrink_factors")) {
    settings.shrink_factors.push_back(static_cast<int>(factor));
  }
  settings.smoothing_sigmas_mm = ctx.param<std::vector<double>>("smoothing_sigmas_mm");
  settings.iterations.clear();
  for (std::int64_t count : ctx.param<std::vector<std::int64_t>>("iterations")) {
    settings.iterations.push_back(static_cast<int>(count));
  }
  settings.histogram_bins = ctx.param<int>("histogram_bins");
  settings.samples_per_iteration = ctx.param<long>("samples_per_iteration");
  settings.seed = static_cast<std::uint64_t>(ctx.param<std::int64_t>("seed"));
  settings.max_step_mm = ctx.param<double>("max_step_mm");
  settings.convergence_mm = ctx.param<double>("convergence_mm");
  settings.convergence_window = ctx.param<int>("convergence_window");
  settings.require_convergence = ctx.param<bool>("require_convergence");
  settings.threads = ctx.thread_budget();

  registration::Callbacks callbacks;
  callbacks.progress = [&ctx](double fraction) { ctx.progress(0.95 * fraction); };
  callbacks.cancelled = [&ctx] { return ctx.cancelled(); };
  registration::Result result = registration::register_volumes(fixed, moving, settings, callbacks);

  std::ostringstream summary;
  summary << kind << " registration: metric " << result.final_metric << " after " << result.total_iterations
          << " iterations (" << result.levels.back().stop_condition << ")";
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
  Volume registered = resample_volume(moving, fixed.geometry, &result.transform,
                                      interpolation_from_name(ctx.param<std::string>("interpolation")),
                                      ctx.param<float>("default_value"));
  registered.metadata.extra["registered_to"] = fixed.metadata.source;
  ctx.output("transform", std::move(result.transform));
  ctx.output("registered", std::move(registered));
  ctx.output("report", std::move(report));
  ctx.progress(1.0);
}

NodeSpec write_transform_spec() {
  NodeSpec spec("register.write_transform", "1.0.0", "Writes a transform in ITK's transform file format (atomically)");
  spec.input<Transform>("transform", "the transform to write")
      .param("path", Param::OutputPath(), "output file: .tfm or .txt (ITK text), .h5 (HDF5) or .mat");
  return spec;
}

NodeSpec load_transform_spec() {
  NodeSpec spec("register.load_transform", "1.0.0", "Reads a linear transform from an ITK transform file");
  spec.output<Transform>("transform", "the transform")
      .param("path", Param::InputPath(), "ITK transform file (.tfm, .txt, .h5, .mat)");
  return spec;
}

NodeSpec target_error_spec() {
  NodeSpec spec("register.target_error", "1.0.0",
                "Target registration error: distance between landmarks mapped by an estimated and a true transform");
  spec.input<Transform>("estimated", "the transform registration found (fixed -> moving)")
      .input<Transform>("truth", "the true transform (fixed -> moving)")
      .input<Table>("landmarks", "landmarks in the fixed space, columns <prefix>_x, <prefix>_y, <prefix>_z")
      .param("prefix", Param::String("ct"), "column prefix of the fixed-space coordinates")
      .output<Table>("errors", "per landmark: error in mm; a last row 'mean' with the mean and max");
  return spec;
}

void run_target_error(NodeContext& ctx) {
  const Transform& estimated = ctx.input<Transform>("estimated");
  const Transform& truth = ctx.input<Transform>("truth");
  const Table& landmarks = ctx.input<Table>("landmarks");
  const std::string prefix = ctx.param<std::string>("prefix");
  std::array<std::size_t, 3> columns{};
  for (int axis = 0; axis < 3; ++axis) {
    const std::string name = prefix + "_" + "xyz"[axis];
    columns[axis] = landmarks.column_index(name);
    if (columns[axis] == landmarks.columns.size()) {
      throw std::invalid_argument("the landmarks table has no column '" + name + "'");
    }
  }
  const std::size_t name_column = landmarks.column_index("name");
  Table errors;
  double sum = 0, worst = 0;
  for (std::size_t row = 0; row < landmarks.rows.size(); ++row) {
    std::array<double, 3> point{};
    for (int axis = 0; axis < 3; ++axis) point[axis] = std::get<double>(landmarks.rows[row].at(columns[axis]));
    const auto a = estimated.apply(point), b = truth.apply(point);
    const double error = std::sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) +
                                   (a[2] - b[2]) * (a[2] - b[2]));
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
  ctx.output("errors", std::move(errors));
}

}  // namespace
}  // namespace fusionflow::register_nodes

FUSIONFLOW_PLUGIN("register", "2.0.0", "Rigid and affine registration (Mattes MI, stochastic gradient descent) and transform files") {
  using namespace fusionflow;
  using namespace fusionflow::register_nodes;
  registrar.add_node(registration_spec("rigid"), [](NodeContext& ctx) { run_registration(ctx, "rigid"); });
  registrar.add_node(registration_spec("affine"), [](NodeContext& ctx) { run_registration(ctx, "affine"); });
  registrar.add_node(write_transform_spec(), [](NodeContext& ctx) {
    write_transform_file(ctx.input<Transform>("transform"), ctx.param<std::filesystem::path>("path"));
  });
  registrar.add_node(target_error_spec(), run_target_error);
  registrar.add_node(load_transform_spec(), [](NodeContext& ctx) {
    ctx.output("transform", read_transform_file(ctx.param<std::filesystem::path>("path")));
  });
  // ITK filters inside nodes share ITK's own pool: cap it to the run's threads.
  registrar.add_thread_budget_hook([](int threads) {
    itk::MultiThreaderBase::SetGlobalDefaultNumberOfThreads(static_cast<itk::ThreadIdType>(threads));
  });
}
