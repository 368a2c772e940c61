// viz.report_volumes: the volumes of a run report's slice viewer
// (docs/visualization.md, "Run report"). Each volume is reduced by whole bins
// (the mean of each bin, so no aliasing and no interpolation) until no axis
// has more than max_size voxels, stored as int16 with one NIfTI scale
// (scl_slope/scl_inter, which the viewer applies), and listed in viewer.json
// with its label, colour map and display window. A CT in HU, or any volume of
// whole numbers in the int16 range, keeps its values exactly.
//
// Built into the plugin itself (ITK only, no VTK).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <fusionflow/itk_bridge.hpp>
#include <itkBinShrinkImageFilter.h>
#include <itkImageFileWriter.h>
#include <itkNiftiImageIO.h>
#include <nlohmann/json.hpp>

#include "viz_nodes.hpp"

namespace fusionflow::viz {
namespace {

using Int16Image = itk::Image<std::int16_t, 3>;

// "MRI on CT" -> "mri-on-ct": a file name from a label.
std::string file_stem(const std::string& label) {
  std::string stem;
  for (const char c : label) {
    if (std::isalnum(static_cast<unsigned char>(c)) != 0) {
      stem += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!stem.empty() && stem.back() != '-') {
      stem += '-';
    }
  }
  while (!stem.empty() && stem.back() == '-') stem.pop_back();
  return stem.empty() ? "volume" : stem;
}

std::string default_label(const VolumeMetadata& metadata) {
  if (metadata.modality.empty()) return "volume";
  return metadata.quantity.empty() ? metadata.modality : metadata.modality + " " + metadata.quantity;
}

// The value at `fraction` (0..1) of the sorted finite values.
double percentile(std::vector<float> values, double fraction) {
  if (values.empty()) return 0.0;
  const auto rank = static_cast<std::size_t>(std::llround(fraction * static_cast<double>(values.size() - 1)));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(rank), values.end());
  return values[rank];
}

struct DisplayDefaults {
  std::string colormap;
  double cal_min = 0, cal_max = 1;
};

// The window a reader starts from (they change it in the page): a CT's soft
// tissue window; PET from 35% of its 99.5th percentile (viz.overlay's
// default threshold), so that an overlay shows the uptake and leaves the
// anatomy clear; anything else its 1st to 99th percentile.
DisplayDefaults display_defaults(const VolumeMetadata& metadata, const std::vector<float>& finite) {
  DisplayDefaults display;
  if (metadata.modality == "CT" && metadata.units == "HU") {
    display = {"gray", -160.0, 240.0};
  } else if (metadata.modality == "PT") {
    const double top = percentile(finite, 0.995);
    display = {"hot", 0.35 * top, top};
  } else {
    display = {"gray", percentile(finite, 0.01), percentile(finite, 0.99)};
  }
  if (!(display.cal_max > display.cal_min)) display.cal_max = display.cal_min + 1.0;
  return display;
}

struct Int16Scale {
  double slope = 1.0, intercept = 0.0;
};

// Whole numbers in the int16 range are stored as they are; anything else
// spreads its finite range over the 65535 levels.
Int16Scale int16_scale(const std::vector<float>& finite) {
  if (finite.empty()) return {};
  const auto [low, high] = std::minmax_element(finite.begin(), finite.end());
  const bool whole = std::all_of(finite.begin(), finite.end(), [](float v) { return std::nearbyint(v) == v; });
  if (whole && *low >= std::numeric_limits<std::int16_t>::min() && *high <= std::numeric_limits<std::int16_t>::max()) {
    return {};
  }
  const double range = static_cast<double>(*high) - static_cast<double>(*low);
  // The slope as the header stores it (float32), so that values come back as computed.
  const double slope = range > 0 ? static_cast<double>(static_cast<float>(range / 65535.0)) : 1.0;
  const double intercept = static_cast<double>(static_cast<float>(static_cast<double>(*low) + 32768.0 * slope));
  return {slope, intercept};
}

void write_int16_nifti(const Int16Image& image, const Int16Scale& scale, const std::filesystem::path& path) {
  write_image_file_atomically(path, [&](const std::filesystem::path& file) {
    auto io = itk::NiftiImageIO::New();
    io->SetRescaleSlope(scale.slope);
    io->SetRescaleIntercept(scale.intercept);
    auto writer = itk::ImageFileWriter<Int16Image>::New();
    writer->SetImageIO(io);
    writer->SetInput(&image);
    writer->SetFileName(file.string());
    writer->SetUseCompression(false);
    try {
      writer->Update();
    } catch (const itk::ExceptionObject& error) {
      throw std::runtime_error("cannot write '" + path.string() + "': " + error.GetDescription());
    }
  });
}

}  // namespace

void run_report_volumes(NodeContext& ctx, const ReportVolumesOptions& options) {
  const auto volumes = ctx.inputs(kVolumesIn);
  const auto labels = split_labels(options.labels);
  if (!labels.empty() && labels.size() != volumes.size()) {
    throw std::runtime_error("labels gives " + std::to_string(labels.size()) + " names for the " +
                             std::to_string(volumes.size()) + " volumes connected to `volumes`: give one per volume");
  }
  nlohmann::json listed = nlohmann::json::array();
  for (std::size_t i = 0; i < volumes.size(); ++i) {
    ctx.throw_if_cancelled();
    const Volume& volume = *volumes[i];
    const Geometry& geometry = volume.geometry;
    const std::string label = labels.empty() ? default_label(volume.metadata) : labels[i];

    auto shrink = itk::BinShrinkImageFilter<ItkFloatImage, ItkFloatImage>::New();
    shrink->SetInput(to_itk_view(volume));
    itk::BinShrinkImageFilter<ItkFloatImage, ItkFloatImage>::ShrinkFactorsType factors;
    for (unsigned axis = 0; axis < 3; ++axis) {
      const auto size = static_cast<std::int64_t>(geometry.size[axis]);
      factors[axis] =
          static_cast<unsigned>(std::max<std::int64_t>(1, (size + options.max_size - 1) / options.max_size));
    }
    shrink->SetShrinkFactors(factors);
    shrink->SetNumberOfWorkUnits(static_cast<unsigned>(std::max(1, ctx.thread_budget())));
    shrink->Update();
    const ItkFloatImage& reduced = *shrink->GetOutput();

    const std::size_t count = reduced.GetLargestPossibleRegion().GetNumberOfPixels();
    const float* values = reduced.GetBufferPointer();
    std::vector<float> finite;
    finite.reserve(count);
    for (std::size_t v = 0; v < count; ++v) {
      if (std::isfinite(values[v])) finite.push_back(values[v]);
    }
    const Int16Scale scale = int16_scale(finite);
    const DisplayDefaults display = display_defaults(volume.metadata, finite);

    auto stored = Int16Image::New();
    stored->CopyInformation(&reduced);
    stored->SetRegions(reduced.GetLargestPossibleRegion());
    stored->Allocate();
    std::int16_t* out = stored->GetBufferPointer();
    for (std::size_t v = 0; v < count; ++v) {
      const double level = std::isfinite(values[v]) ? std::nearbyint((values[v] - scale.intercept) / scale.slope) : 0.0;
      out[v] = static_cast<std::int16_t>(std::clamp(level, -32768.0, 32767.0));
    }

    const std::string file = std::to_string(i + 1) + "-" + file_stem(label) + ".nii.gz";
    write_int16_nifti(*stored, scale, options.directory / file);
    const auto& size = reduced.GetLargestPossibleRegion().GetSize();
    listed.push_back({{"label", label},
                      {"file", file},
                      {"modality", volume.metadata.modality},
                      {"units", volume.metadata.units},
                      {"quantity", volume.metadata.quantity},
                      {"colormap", display.colormap},
                      {"cal_min", display.cal_min},
                      {"cal_max", display.cal_max},
                      {"size", {size[0], size[1], size[2]}},
                      {"source_size", {geometry.size[0], geometry.size[1], geometry.size[2]}},
                      {"bin", {factors[0], factors[1], factors[2]}}});
    ctx.progress(static_cast<double>(i + 1) / static_cast<double>(volumes.size() + 1));
  }
  const nlohmann::json manifest = {{"format", "fusionflow-report-volumes"}, {"format_version", 1}, {"volumes", listed}};
  write_file_atomically(options.directory / "viewer.json", manifest.dump(2) + "\n");
  ctx.log(LogLevel::Info, "wrote " + std::to_string(volumes.size()) + " viewer volumes and viewer.json to '" +
                              options.directory.string() + "'");
}

}  // namespace fusionflow::viz
