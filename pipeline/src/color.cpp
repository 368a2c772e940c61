#include "fusionflow/color.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fusionflow {

namespace {
double clamp01(double value) { return std::clamp(value, 0.0, 1.0); }
}  // namespace

double ycbcr_mid(double max_value) { return (max_value + 1.0) / 2.0; }

Ycbcr rgb_to_ycbcr(double red, double green, double blue, double max_value) {
  const double mid = ycbcr_mid(max_value);
  return {0.299 * red + 0.587 * green + 0.114 * blue, mid - 0.168736 * red - 0.331264 * green + 0.5 * blue,
          mid + 0.5 * red - 0.418688 * green - 0.081312 * blue};
}

std::array<double, 3> ycbcr_to_rgb(const Ycbcr& value, double max_value) {
  const double mid = ycbcr_mid(max_value);
  const double cb = value.cb - mid, cr = value.cr - mid;
  return {value.y + 1.402 * cr, value.y - 0.344136 * cb - 0.714136 * cr, value.y + 1.772 * cb};
}

std::array<double, 3> colormap_rgb(Colormap map, double t) {
  t = std::isfinite(t) ? clamp01(t) : 0.0;
  switch (map) {
    case Colormap::Hot: return {clamp01(3 * t), clamp01(3 * t - 1), clamp01(3 * t - 2)};
    case Colormap::Jet:
      return {clamp01(1.5 - std::abs(4 * t - 3)), clamp01(1.5 - std::abs(4 * t - 2)),
              clamp01(1.5 - std::abs(4 * t - 1))};
    case Colormap::Rainbow: {
      // HSV with S = V = 1, H = 240 (1 - t) degrees, in sextants of 60.
      const double h = 4.0 * (1.0 - t);  // 0..4 sextants: red .. blue
      const double x = 1.0 - std::abs(std::fmod(h, 2.0) - 1.0);
      if (h < 1) return {1, x, 0};
      if (h < 2) return {x, 1, 0};
      if (h < 3) return {0, 1, x};
      return {0, x, 1};
    }
    case Colormap::Viridis: {
      static const std::array<std::array<double, 3>, 5> stops{{{0.267, 0.005, 0.329},
                                                               {0.229, 0.322, 0.546},
                                                               {0.128, 0.567, 0.551},
                                                               {0.369, 0.789, 0.383},
                                                               {0.993, 0.906, 0.144}}};
      const double x = t * 4;
      const auto i = static_cast<std::size_t>(std::min(3.0, std::floor(x)));
      const double f = x - static_cast<double>(i);
      return {stops[i][0] * (1 - f) + stops[i + 1][0] * f, stops[i][1] * (1 - f) + stops[i + 1][1] * f,
              stops[i][2] * (1 - f) + stops[i + 1][2] * f};
    }
    case Colormap::Gray: return {t, t, t};
  }
  throw std::logic_error("colour map " + std::to_string(static_cast<int>(map)) + " has no colours");
}

}  // namespace fusionflow
