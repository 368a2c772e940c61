// What the viz nodes and the viewer choose among, without VTK: colour maps,
// transfer-function presets, scene options and camera presets (their VTK
// side is in vtk_support.hpp).
#pragma once

#include <array>
#include <sstream>
#include <string>
#include <vector>

#include "fusionflow/choice_list.hpp"
#include "fusionflow/color.hpp"

namespace fusionflow::viz {

// The colour maps are the SDK's (fusionflow/color.hpp), shared with the color plugin.
using fusionflow::Colormap;
using fusionflow::kColormapNames;

// A `labels` parameter: comma-separated names, each trimmed of spaces.
inline std::vector<std::string> split_labels(const std::string& text) {
  std::vector<std::string> labels;
  if (text.empty()) return labels;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    const auto first = item.find_first_not_of(' ');
    const auto last = item.find_last_not_of(' ');
    labels.push_back(first == std::string::npos ? std::string() : item.substr(first, last - first + 1));
  }
  return labels;
}

// Transfer-function presets, as pipelines and captions spell them.
enum class Preset { CtBone, CtSoftTissue, Mri, Pet, Fused };
inline const ChoiceList<Preset> kPresetNames{{Preset::CtBone, "ct_bone"},
                                             {Preset::CtSoftTissue, "ct_soft_tissue"},
                                             {Preset::Mri, "mri"},
                                             {Preset::Pet, "pet"},
                                             {Preset::Fused, "fused"}};

// A 3D scene's options (viz.render3d and fusionflow-view).
// A cut through the rendered volumes (viz.render3d `clip`): which half is
// removed, the one toward the matching camera: coronal the anterior half,
// axial the superior half, sagittal the patient-left half.
enum class ClipPlane { None, Coronal, Axial, Sagittal };
inline const ChoiceList<ClipPlane> kClipPlaneNames{{ClipPlane::None, "none"},
                                                   {ClipPlane::Coronal, "coronal"},
                                                   {ClipPlane::Axial, "axial"},
                                                   {ClipPlane::Sagittal, "sagittal"}};

struct SceneOptions {
  Preset preset = Preset::CtBone;
  Preset functional_preset = Preset::Pet;
  double opacity = 1.0;             // scales the anatomical transfer function's opacity
  double functional_opacity = 1.0;  // scales the functional transfer function's opacity
  bool iso_surface = false;         // anatomical volume as an iso-surface instead of volume rendering
  double iso_value = 300.0;
  double iso_opacity = 1.0;
  double smoothing_mm = 0.0;        // display-only Gaussian smoothing of the anatomical volume (sigma)
  double sample_distance_mm = 0.0;  // ray step; 0: the smallest voxel spacing (jittered)
  ClipPlane clip = ClipPlane::None;
  std::array<double, 3> clip_point{0, 0, 0};  // LPS mm, on the cut
};

// Camera presets in patient terms (see set_camera() in vtk_support.hpp).
enum class Camera { Anterior, Posterior, Left, Right, Lateral, Superior, Inferior, Oblique, Custom };
inline const ChoiceList<Camera> kCameraNames{
    {Camera::Anterior, "anterior"}, {Camera::Posterior, "posterior"}, {Camera::Left, "left"},
    {Camera::Right, "right"},       {Camera::Lateral, "lateral"},     {Camera::Superior, "superior"},
    {Camera::Inferior, "inferior"}, {Camera::Oblique, "oblique"},     {Camera::Custom, "custom"}};

}  // namespace fusionflow::viz
