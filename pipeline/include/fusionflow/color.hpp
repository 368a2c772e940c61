// Colour: the ColorVolume payload, BT.601 YCbCr and the colour maps. One
// definition of each, used by the io, color and viz plugins.
//
// Colour stays apart from Volume so that every grey node keeps its meaning:
// a colour image is fused the way the fusion literature does it, by taking
// its luma Y to fuse with the grey image and putting its chroma back
// (color.to_ycbcr, any fusion, color.from_ycbcr).
#pragma once

#include <array>
#include <string>
#include <vector>

#include "fusionflow/choice_list.hpp"
#include "fusionflow/payload.hpp"
#include "fusionflow/volume.hpp"

namespace fusionflow {

// An RGB image or volume: three channels on one grid, values in
// [0, max_value] (255 for 8-bit sources, 65535 for 16-bit), voxels ordered as
// in Volume. The geometry rules are Volume's.
struct ColorVolume {
  Geometry geometry;
  std::array<std::vector<float>, 3> rgb;  // red, green, blue
  double max_value = 255.0;
  VolumeMetadata metadata;
};

// ITU-R BT.601 in its full-range (JPEG/JFIF) form, scaled to [0, max]:
//   Y  = 0.299 R + 0.587 G + 0.114 B
//   Cb = mid - 0.168736 R - 0.331264 G + 0.5 B
//   Cr = mid + 0.5 R - 0.418688 G - 0.081312 B,     mid = (max + 1) / 2 (128 for 8 bits)
// and its inverse
//   R = Y + 1.402 (Cr - mid),  G = Y - 0.344136 (Cb - mid) - 0.714136 (Cr - mid),  B = Y + 1.772 (Cb - mid).
struct Ycbcr {
  double y, cb, cr;
};
double ycbcr_mid(double max_value);
Ycbcr rgb_to_ycbcr(double red, double green, double blue, double max_value);
// Not clamped: colours outside [0, max] come back as they are.
std::array<double, 3> ycbcr_to_rgb(const Ycbcr& value, double max_value);

// Colour maps, from t in [0, 1] (clamped) to RGB in [0, 1].
enum class Colormap { Hot, Jet, Rainbow, Viridis, Gray };
inline const ChoiceList<Colormap> kColormapNames{{Colormap::Hot, "hot"},
                                                 {Colormap::Jet, "jet"},
                                                 {Colormap::Rainbow, "rainbow"},
                                                 {Colormap::Viridis, "viridis"},
                                                 {Colormap::Gray, "gray"}};
//  hot      black, red, yellow, white (MATLAB's hot: each channel a ramp over a third)
//  jet      dark blue, blue, cyan, yellow, red, dark red (MATLAB's jet)
//  rainbow  hue from blue (240 degrees) to red (0), full saturation and value
//  viridis  matplotlib's viridis, 5 stops linearly interpolated
//  gray     t, t, t
std::array<double, 3> colormap_rgb(Colormap map, double t);

}  // namespace fusionflow

FUSIONFLOW_PAYLOAD_TYPE(fusionflow::ColorVolume, "ColorVolume");
