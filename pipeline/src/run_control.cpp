#include "fusionflow/run_control.hpp"

#include "fusionflow/node.hpp"

namespace fusionflow {

RunControl RunControl::sub(double begin, double end) const {
  RunControl result = without_progress();
  if (progress) {
    result.progress = [parent = progress, begin, end](double fraction) { parent(begin + (end - begin) * fraction); };
  }
  return result;
}

RunControl RunControl::without_progress() const {
  RunControl result;
  result.threads = threads;
  result.check_cancelled = check_cancelled;
  return result;
}

RunControl run_control(NodeContext& ctx) {
  RunControl control;
  control.threads = ctx.thread_budget();
  control.check_cancelled = [&ctx] { ctx.throw_if_cancelled(); };
  control.progress = [&ctx](double fraction) { ctx.progress(fraction); };
  return control;
}

}  // namespace fusionflow
