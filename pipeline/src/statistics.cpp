#include "fusionflow/statistics.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

namespace fusionflow {

double percentile(std::vector<float>& values, double p) {
  if (!(p >= 0.0 && p <= 100.0)) {
    throw std::invalid_argument("percentile: p must lie in [0, 100], got " + std::to_string(p));
  }
  if (values.empty()) throw std::invalid_argument("percentile: no values");
  // nth_element needs a strict weak order, which a NaN breaks.
  if (std::any_of(values.begin(), values.end(), [](float v) { return std::isnan(v); })) {
    throw std::invalid_argument("percentile: the values include NaN");
  }
  const double position = (static_cast<double>(values.size()) - 1.0) * p / 100.0;
  const auto below = std::min(static_cast<std::size_t>(std::floor(position)), values.size() - 1);
  const double fraction = position - static_cast<double>(below);
  const auto nth = values.begin() + static_cast<std::ptrdiff_t>(below);
  std::nth_element(values.begin(), nth, values.end());
  const double low = *nth;
  if (fraction == 0.0 || below + 1 >= values.size()) return low;
  // After nth_element every value past `nth` is >= it: the next order
  // statistic is the smallest of them.
  const double high = *std::min_element(nth + 1, values.end());
  return low + fraction * (high - low);
}

}  // namespace fusionflow
