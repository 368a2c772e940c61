// fusionflow-view: interactive 3D viewer of a volume (CT, MRI, PET, fused),
// optionally with a functional overlay: volume rendering plus three
// orthogonal slice planes, mouse rotate/pan/zoom, keys for presets, overlay
// opacity and screenshots. Started directly or as `fusionflow view`.
//
// On stdout it prints one line per event, for scripts and tests:
//   ready window=<X window id> width=<w> height=<h>   after the first render
//   preset <name>, overlay_opacity <value>, planes on|off, screenshot <path>
//   quit
#include <CLI/CLI.hpp>

#include <fusionflow/itk_bridge.hpp>

#include <vtkCallbackCommand.h>
#include <vtkCamera.h>
#include <vtkImageData.h>
#include <vtkImageProperty.h>
#include <vtkImageSlice.h>
#include <vtkImageSliceMapper.h>
#include <vtkImageStack.h>
#include <vtkInteractorStyleTrackballCamera.h>
#include <vtkLookupTable.h>
#include <vtkNew.h>
#include <vtkObjectFactory.h>
#include <vtkRenderWindow.h>
#include <vtkRenderWindowInteractor.h>
#include <vtkRenderer.h>
#include <vtkTextActor.h>
#include <vtkTextProperty.h>
#include <vtkVolume.h>
#include <vtkVolumeProperty.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "vtk_support.hpp"

namespace {
using namespace fusionflow;
using namespace fusionflow::viz;

constexpr const char* kKeys =
    "Keys: p next preset, +/- overlay opacity, o slice planes on/off, s screenshot, r reset view, q quit. "
    "Mouse: left rotate, middle (or shift+left) pan, right or wheel zoom.";

// read_volume leaves the modality empty; guess it for the presets when the
// user did not say: air at about -1000 means CT (HU).
std::string guess_modality(const Volume& volume, const std::string& fallback) {
  const IntensityStats stats = intensity_stats(volume);
  if (stats.min < -500 && stats.max > 300) return "CT";
  return fallback;
}

struct Viewer {
  Volume anatomical;
  std::optional<Volume> overlay;  // resampled onto the anatomical grid
  Scene scene;
  vtkSmartPointer<vtkRenderWindow> window;
  vtkSmartPointer<vtkTextActor> status;
  std::vector<vtkSmartPointer<vtkImageStack>> planes;
  std::vector<vtkSmartPointer<vtkImageSlice>> overlay_slices;
  Preset preset = Preset::CtBone;
  double overlay_opacity = 0.6;
  bool planes_visible = true;
  std::string screenshot_path;
  int screenshot_count = 0;

  void update_status() {
    std::ostringstream text;
    text << "preset " << kPresetNames.name(preset);
    if (overlay) text << "   overlay opacity " << std::lround(overlay_opacity * 100) << "%";
    status->SetInput(text.str().c_str());
  }

  void apply_transfer_functions() {
    vtkVolumeProperty* property = scene.volume->GetProperty();
    if (scene.anatomical_component >= 0) {
      apply_preset(property, scene.anatomical_component, preset, scene.anatomical_stats, overlay ? 0.06 : 1.0);
    }
    if (scene.functional_component >= 0) {
      apply_preset(property, scene.functional_component, Preset::Pet, scene.functional_stats, overlay_opacity / 0.6);
    }
    for (auto& slice : overlay_slices) slice->GetProperty()->SetOpacity(overlay_opacity);
    update_status();
  }

  void next_preset() {
    preset = static_cast<Preset>((static_cast<std::size_t>(preset) + 1) % kPresetNames.names().size());
    apply_transfer_functions();
    std::cout << "preset " << kPresetNames.name(preset) << std::endl;
  }

  void change_overlay_opacity(double step) {
    overlay_opacity = std::clamp(overlay_opacity + step, 0.0, 1.0);
    apply_transfer_functions();
    std::cout << "overlay_opacity " << overlay_opacity << std::endl;
  }

  void toggle_planes() {
    planes_visible = !planes_visible;
    for (auto& plane : planes) plane->SetVisibility(planes_visible ? 1 : 0);
    std::cout << "planes " << (planes_visible ? "on" : "off") << std::endl;
  }

  void screenshot() {
    std::filesystem::path path = screenshot_path;
    if (path.empty()) {
      do {
        path = "fusionflow-view-" + std::to_string(++screenshot_count) + ".png";
      } while (std::filesystem::exists(path));
    }
    window->Render();
    write_png(capture(window), path);
    std::cout << "screenshot " << path.string() << std::endl;
  }
};

// Our keys first; the rest go to VTK's trackball camera style, except its
// keys that would change the scene behind our back (wireframe/surface,
// stereo, pick, fly-to, joystick/trackball).
class ViewerStyle : public vtkInteractorStyleTrackballCamera {
 public:
  static ViewerStyle* New();
  vtkTypeMacro(ViewerStyle, vtkInteractorStyleTrackballCamera) Viewer* viewer = nullptr;

  void OnChar() override {
    vtkRenderWindowInteractor* interactor = this->Interactor;
    const std::string key = interactor->GetKeySym() ? interactor->GetKeySym() : "";
    const char code = interactor->GetKeyCode();
    if (code == 'q' || code == 'Q' || code == 'e' || code == 'E') {
      std::cout << "quit" << std::endl;
      interactor->TerminateApp();
      return;
    }
    if (code == 'p' || code == 'P') {
      viewer->next_preset();
    } else if (code == '+' || code == '=' || key == "KP_Add") {
      viewer->change_overlay_opacity(+0.1);
    } else if (code == '-' || code == '_' || key == "KP_Subtract") {
      viewer->change_overlay_opacity(-0.1);
    } else if (code == 'o' || code == 'O') {
      viewer->toggle_planes();
    } else if (code == 's' || code == 'S') {
      viewer->screenshot();
      return;
    } else if (code == 'r' || code == 'R') {
      vtkInteractorStyleTrackballCamera::OnChar();  // reset camera
      return;
    } else {
      return;  // ignore VTK's other single-letter modes
    }
    interactor->Render();
  }
};
vtkStandardNewMacro(ViewerStyle);

// One orthogonal plane through the centre of the grid (voxel axis `axis`),
// anatomy in grey with the overlay on top (an image stack keeps the layers
// ordered without z-fighting). Positioned in LPS by the user matrix.
vtkSmartPointer<vtkImageStack> make_plane(Viewer& viewer, vtkImageData* anatomy, vtkImageData* overlay, int axis,
                                          vtkLookupTable* grey, vtkLookupTable* hot) {
  auto stack = vtkSmartPointer<vtkImageStack>::New();
  const int middle = static_cast<int>(viewer.anatomical.geometry.size[static_cast<std::size_t>(axis)] / 2);
  auto add = [&](vtkImageData* image, int layer) {
    vtkNew<vtkImageSliceMapper> mapper;
    mapper->SetInputData(image);
    mapper->SetOrientation(axis);
    mapper->SetSliceNumber(middle);
    auto slice = vtkSmartPointer<vtkImageSlice>::New();
    slice->SetMapper(mapper);
    slice->GetProperty()->SetLayerNumber(layer);
    slice->GetProperty()->SetInterpolationTypeToLinear();
    stack->AddImage(slice);
    return slice;
  };
  auto base = add(anatomy, 0);
  base->GetProperty()->SetLookupTable(grey);
  base->GetProperty()->UseLookupTableScalarRangeOn();
  if (overlay != nullptr) {
    auto top = add(overlay, 1);
    top->GetProperty()->SetLookupTable(hot);
    top->GetProperty()->UseLookupTableScalarRangeOn();
    top->GetProperty()->SetOpacity(viewer.overlay_opacity);
    viewer.overlay_slices.push_back(top);
  }
  stack->SetActiveLayer(0);
  stack->SetUserMatrix(index_to_world(viewer.anatomical.geometry));
  return stack;
}

int run(int argc, char** argv) {
  CLI::App app{
      "fusionflow-view: interactive 3D viewer of a volume with an optional functional overlay (volume "
      "rendering and three orthogonal slice planes; physical LPS geometry).\n" +
      std::string(kKeys)};
  std::string volume_path, overlay_path, preset_option = "auto", modality, overlay_modality, screenshot_path;
  std::string size_option = "900x700";
  app.add_option("volume", volume_path, "Volume file (NIfTI, NRRD, MetaImage, ...)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--overlay", overlay_path, "Functional volume (PET, fused) shown in hot colours")
      ->check(CLI::ExistingFile);
  app.add_option("--preset", preset_option,
                 "Transfer function: auto, ct_bone, ct_soft_tissue, mri, pet, fused (p cycles them)");
  app.add_option("--modality", modality,
                 "Modality of VOLUME (CT, MR, PT, FUSED); default: guessed (CT if it has air "
                 "at -1000)");
  app.add_option("--overlay-modality", overlay_modality, "Modality of the overlay (default: PT)");
  app.add_option("--size", size_option, "Window size WIDTHxHEIGHT");
  app.add_option("--screenshot", screenshot_path,
                 "File the s key writes (default: ./fusionflow-view-<n>.png, a new number each time)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? 0 : 2;
  }
  int width = 0, height = 0;
  char separator = 0;
  std::istringstream size_stream(size_option);
  if (!(size_stream >> width >> separator >> height) || separator != 'x' || width < 64 || height < 64 || width > 4096 ||
      height > 4096) {
    std::cerr << "error: --size must be WIDTHxHEIGHT, 64..4096 each (got '" << size_option << "')\n";
    return 2;
  }

  Viewer viewer;
  viewer.screenshot_path = screenshot_path;
  viewer.anatomical = read_volume(volume_path);
  viewer.anatomical.metadata.modality = modality.empty() ? guess_modality(viewer.anatomical, "MR") : modality;
  // Grey levels of the slice planes; "air" below `air` is transparent. The
  // planes and the volume cover the part of the grid above `air`.
  const IntensityStats stats = intensity_stats(viewer.anatomical);
  double window = stats.high - stats.low, level = 0.5 * (stats.high + stats.low);
  double air = stats.low + 0.1 * (stats.high - stats.low);
  if (viewer.anatomical.metadata.modality == "CT") window = 80, level = 40, air = -500;
  viewer.anatomical = crop(viewer.anatomical, content_box(viewer.anatomical, air, 2));
  if (!overlay_path.empty()) {
    Volume overlay = read_volume(overlay_path);
    overlay.metadata.modality = overlay_modality.empty() ? "PT" : overlay_modality;
    viewer.overlay = std::move(overlay);
  }
  if (preset_option == "auto") {
    viewer.preset = auto_preset(viewer.anatomical.metadata);
  } else if (const auto preset = kPresetNames.find(preset_option)) {
    viewer.preset = *preset;
  } else {
    throw std::invalid_argument("unknown transfer-function preset '" + preset_option + "'");
  }

  // Before any VTK window: a display, or Xvfb, or a clear error.
  const std::string display = ensure_display();
  std::cerr << "fusionflow-view: " << display << "\n";

  SceneOptions options;
  options.preset = viewer.preset;
  options.functional_preset = Preset::Pet;
  options.opacity = viewer.overlay ? 0.06 : 1.0;
  options.functional_opacity = viewer.overlay_opacity / 0.6;
  viewer.scene = build_scene(viewer.anatomical, viewer.overlay ? &*viewer.overlay : nullptr, options);
  viewer.scene.mapper->SetAutoAdjustSampleDistances(1);  // coarser while the mouse moves
  viewer.scene.renderer->SetBackground(0.08, 0.08, 0.1);

  auto anatomy_image = to_vtk_image(viewer.anatomical);
  vtkNew<vtkLookupTable> grey;
  const double grey_top = level + window / 2;
  grey->SetNumberOfTableValues(1024);
  grey->SetTableRange(stats.min, std::max(grey_top, stats.min + 1));
  for (int i = 0; i < 1024; ++i) {
    const double value = stats.min + (std::max(grey_top, stats.min + 1) - stats.min) * i / 1023.0;
    const double g = std::clamp((value - (level - window / 2)) / window, 0.0, 1.0);
    grey->SetTableValue(i, g, g, g, value < air ? 0.0 : 1.0);
  }
  grey->Build();
  vtkSmartPointer<vtkImageData> overlay_image;
  vtkNew<vtkLookupTable> hot;
  if (viewer.overlay) {
    const Volume resampled = resample_onto(*viewer.overlay, viewer.anatomical.geometry, 0.0f);
    overlay_image = to_vtk_image(resampled);
    const double top = std::max(viewer.scene.functional_stats.max, 1e-6);
    hot->SetNumberOfTableValues(256);
    hot->SetTableRange(0.0, top);
    for (int i = 0; i < 256; ++i) {
      const double t = i / 255.0;
      const auto colour = colormap_rgb(Colormap::Hot, t);
      hot->SetTableValue(i, colour[0], colour[1], colour[2], t < 0.35 ? 0.0 : 1.0);
    }
    hot->Build();
  }
  for (int axis = 0; axis < 3; ++axis) {
    viewer.planes.push_back(make_plane(viewer, anatomy_image, overlay_image, axis, grey, hot));
    viewer.scene.renderer->AddViewProp(viewer.planes.back());
  }

  viewer.status = vtkSmartPointer<vtkTextActor>::New();
  viewer.status->GetTextProperty()->SetFontSize(16);
  viewer.status->SetPosition(10, 10);
  viewer.scene.renderer->AddActor2D(viewer.status);
  vtkNew<vtkTextActor> help;
  help->SetInput("p preset   +/- overlay   o planes   s screenshot   r reset   q quit");
  help->GetTextProperty()->SetFontSize(14);
  help->GetTextProperty()->SetColor(0.8, 0.8, 0.8);
  help->GetTextProperty()->SetVerticalJustificationToTop();
  help->GetPositionCoordinate()->SetCoordinateSystemToNormalizedDisplay();
  help->SetPosition(0.01, 0.98);
  viewer.scene.renderer->AddActor2D(help);
  viewer.update_status();

  viewer.window = vtkSmartPointer<vtkRenderWindow>::New();
  viewer.window->SetSize(width, height);
  viewer.window->SetWindowName(("fusionflow-view " + std::filesystem::path(volume_path).filename().string()).c_str());
  viewer.window->SetMultiSamples(0);
  viewer.window->AddRenderer(viewer.scene.renderer);
  vtkNew<vtkRenderWindowInteractor> interactor;
  interactor->SetRenderWindow(viewer.window);
  vtkNew<ViewerStyle> style;
  style->viewer = &viewer;
  interactor->SetInteractorStyle(style);
  interactor->Initialize();
  set_camera(viewer.scene.renderer, viewer.scene.bounds, Camera::Oblique, 0, 0, 1);
  render_scene(viewer.window, viewer.scene);
  std::cout << "ready window=" << reinterpret_cast<std::uintptr_t>(viewer.window->GetGenericWindowId())
            << " width=" << viewer.window->GetSize()[0] << " height=" << viewer.window->GetSize()[1] << std::endl;
  interactor->Start();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& error) {
    std::cerr << "fusionflow-view: " << error.what() << "\n";
    return 1;
  }
}
