// io.load_ct, io.load_mri, io.load_pet, io.load_image: read a file or DICOM
// series (load_any), check non-finite voxels, then apply the modality's
// semantics and fill VolumeMetadata.
//
// VolumeMetadata::extra keys written by the loaders (values are text):
//   io.format                 nifti | nrrd | metaimage | png | dicom | dicom-series
//   io.nonfinite_replaced     number of NaN/Inf voxels replaced (nonfinite=replace)
//   io.nonfinite_value        the replacement value
//   io.volume_index           "T of N": the volume read from a 4D file (volume_index)
//   nifti.geometry            the header transform the geometry comes from, e.g. "sform (code 2: aligned)",
//                             "qform (code 1: scanner)"; ", sheared: nearest orthonormal direction" when
//                             a sheared sform was read with the polar decomposition's rotation
//   nifti.shear_error_mm      then: the largest voxel displacement that caused (mm, over the image)
//   nifti.qform_sform_difference_mm   qform and sform (both codes > 0) disagree by this much (mm, > 0.01)
//   io.png_color_type         PNG other than plain grey: palette | grey+alpha | rgb | rgba, and its bit depth
//   io.color                  colour PNG: how it became one value (equal channels read as grey, BT.601 luma,
//                             or the channel used; parameters color, channel)
//   io.alpha                  "ignored": the PNG has an alpha channel or tRNS transparency
//   dicom.series_number       (0020,0011)
//   dicom.files               number of DICOM files in the series
//   dicom.rescale_slope       (0028,1053) of the first slice
//   dicom.rescale_intercept   (0028,1052) of the first slice
//   ct.clamp_min, ct.clamp_max, ct.clamped_voxels      when clamp=true
//   pet.input_units           units of the values read: "BQML" (Bq/mL), "GML" (SUVbw), DICOM Units otherwise
//   pet.suv_unavailable       why SUV was not computed (suv=auto only), "; "-separated
//   pet.weight_kg, pet.injected_dose_bq, pet.half_life_s, pet.uptake_s,
//   pet.decay_correction, pet.decayed_dose_bq,
//   pet.suv_factor            SUVbw = Bq/mL x suv_factor (g/Bq, tissue 1 g/mL)
//   pet.parameters_used       which of weight_kg, injected_dose_bq, half_life_s, injection_time, uptake_s,
//                             decay_correction overrode or completed the DICOM values
//   pet.radiopharmaceutical, pet.radionuclide
//   mr.n4                     "shrink S, iterations A,B,C" when n4=true
//   mr.normalise              percentile | zscore
//   mr.normalise_region       nonzero | all
//   mr.normalise_low, mr.normalise_high    percentile values mapped to 0 and 1
//   mr.normalise_mean, mr.normalise_std    z-score statistics
// Only with keep_identifiers=true (never otherwise, and never logged):
//   dicom.patient_name, dicom.patient_id, dicom.patient_birth_date,
//   dicom.patient_sex, dicom.accession_number, dicom.study_instance_uid,
//   dicom.series_instance_uid, dicom.study_date, dicom.institution_name,
//   dicom.referring_physician_name, and what io.write_dicom references:
//   dicom.frame_of_reference_uid, dicom.specific_character_set (of the
//   identifiers' text), dicom.sop_class_uid, dicom.sop_instance_uids
//   (backslash-separated, in slice order)
#include "io_internal.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace fusionflow::io {
namespace {

std::string number(double value) {
  std::ostringstream text;
  text.precision(10);
  text << value;
  return text.str();
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string text;
  for (std::size_t n = 0; n < items.size(); ++n) text += (n ? separator : "") + items[n];
  return text;
}

const char* kPathHelp =
    "file or directory to read: NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd), PNG (one "
    "slice; grey, palette or colour: see color), a DICOM file, or a directory holding DICOM series (slices sorted by "
    "position)";

constexpr OutputPort<Volume> kVolumeOut{"volume"};

// The parameters every loader declares first (LoadOptions), on the node type
// of the loader's own options, which extend LoadOptions: where it reads from
// (add_path_param, or add_pacs_params for the io.pacs_load_* nodes), then
// add_load_params.
template <class Options>
void add_path_param(NodeType<Options>& node) {
  node.input_path(&LoadRequest::path, "path", kPathHelp);
}

// What every loader declares after where it reads from (a path, or a PACS).
template <class Options>
void add_load_params(NodeType<Options>& node) {
  node.param(&LoadRequest::series_uid, "series_uid",
             "DICOM directory: the SeriesInstanceUID to load (when it holds several series)")
      .param(&LoadRequest::series_description, "series_description",
             "DICOM directory: load the series with this SeriesDescription (exact match)")
      .choice(&LoadOptions::nonfinite, "nonfinite", kNonFiniteNames,
              "NaN or infinite voxels: error (fail, naming the file and count) or replace them with nonfinite_value")
      .param(&LoadOptions::nonfinite_value, "nonfinite_value", "replacement for NaN/Inf voxels when nonfinite=replace")
      .param(&LoadRequest::keep_identifiers, "keep_identifiers",
             "copy DICOM patient identifiers (name, ID, birth date, accession number, UIDs...) into the volume's "
             "metadata; off by default so they reach no output file, log or run record")
      .param(&LoadRequest::volume_index, "volume_index", Limits::at_least(-1),
             "4D NIfTI, NRRD or MetaImage file (dynamic PET frames, DWI, fMRI): the 3D volume to read, from 0; -1 "
             "(default): none, and a file with more than one volume is refused, saying how many it holds")
      .param(&LoadRequest::max_voxels, "max_voxels", Limits::at_least(1),
             "refuse images announcing more voxels than this (checked from the header, before any allocation; 4 "
             "bytes a voxel)")
      .param(&LoadRequest::max_shear_error_mm, "max_shear_error_mm", Limits::at_least(0.0),
             "NIfTI with a sheared sform (and no qform): read with the nearest orthonormal direction if that moves "
             "no voxel by more than this (mm, logged), else refused with the error")
      .choice(&ColorOptions::mode, "color", kColorModeNames,
              "how colour images (PNG palette, RGB, RGBA; 8 or 16 bits per channel) become one value per voxel: "
              "luma = Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, the fusion literature's convention), not "
              "rounded; channel = the channel given by `channel`; error = refuse them. Whatever the mode, an image "
              "whose every pixel has R = G = B (a grey palette, grey saved as RGB) reads exactly as grey. The "
              "volume's metadata (io.color) says which was done; alpha is ignored")
      .param(&ColorOptions::channel, "channel", Limits::range(0, 2), "color=channel: 0 red, 1 green, 2 blue");
}

void handle_nonfinite(Volume& volume, const LoadOptions& options, NodeContext& ctx) {
  std::size_t nan = 0, positive = 0, negative = 0, first = volume.voxels.size();
  for (std::size_t n = 0; n < volume.voxels.size(); ++n) {
    const float value = volume.voxels[n];
    if (std::isfinite(value)) continue;
    if (first == volume.voxels.size()) first = n;
    if (std::isnan(value)) {
      ++nan;
    } else if (value > 0) {
      ++positive;
    } else {
      ++negative;
    }
  }
  const std::size_t total = nan + positive + negative;
  if (total == 0) return;
  const Geometry& g = volume.geometry;
  const std::size_t i = first % g.size[0], j = (first / g.size[0]) % g.size[1], k = first / (g.size[0] * g.size[1]);
  const std::string what = std::to_string(total) + " non-finite voxel" + (total == 1 ? "" : "s") + " (" +
                           std::to_string(nan) + " NaN, " + std::to_string(positive) + " +Inf, " +
                           std::to_string(negative) + " -Inf; the first at voxel (" + std::to_string(i) + ", " +
                           std::to_string(j) + ", " + std::to_string(k) + "))";
  if (options.nonfinite == NonFinite::Error) {
    throw std::runtime_error("'" + volume.metadata.source + "' has " + what +
                             "; set nonfinite=replace to replace them with nonfinite_value");
  }
  const auto replacement = static_cast<float>(options.nonfinite_value);
  for (float& value : volume.voxels) {
    if (!std::isfinite(value)) value = replacement;
  }
  volume.metadata.extra["io.nonfinite_replaced"] = std::to_string(total);
  volume.metadata.extra["io.nonfinite_value"] = number(replacement);
  ctx.log(LogLevel::Warn, "'" + volume.metadata.source + "' has " + what + "; replaced with " + number(replacement));
}

// Shared by every loader: read, fill common metadata, handle non-finite voxels.
LoadedImage load(NodeContext& ctx, const LoadOptions& options, const std::string& modality) {
  ctx.throw_if_cancelled();
  LoadRequest request = options;  // the parameters, but the modality is the loader's
  request.expected_modality = modality;
  LoadedImage loaded = load_any(request, ctx);
  if (loaded.dicom && request.volume_index >= 0) {
    ctx.log(LogLevel::Warn, "volume_index ignored: '" + request.path.string() + "' is DICOM, not a 4D image file");
  }
  Volume& volume = loaded.volume;
  auto& extra = volume.metadata.extra;
  extra["io.format"] = loaded.format;
  if (loaded.dicom) {
    const DicomAttributes& dicom = *loaded.dicom;
    volume.metadata.series_description = dicom.series_description;
    if (!dicom.series_number.empty()) extra["dicom.series_number"] = dicom.series_number;
    extra["dicom.files"] = std::to_string(dicom.slice_count);
    if (dicom.rescale_slope) extra["dicom.rescale_slope"] = number(*dicom.rescale_slope);
    if (dicom.rescale_intercept) extra["dicom.rescale_intercept"] = number(*dicom.rescale_intercept);
    for (const auto& [key, value] : dicom.identifiers) extra[key] = value;  // only with keep_identifiers
  }
  handle_nonfinite(volume, options, ctx);
  ctx.progress(0.9);
  return loaded;
}

void finish(NodeContext& ctx, Volume&& volume) {
  const Geometry& g = volume.geometry;
  std::string how = volume.metadata.extra["io.format"];
  const auto& extra = volume.metadata.extra;
  if (extra.count("io.volume_index")) how += ", volume " + extra.at("io.volume_index");
  if (extra.count("nifti.geometry")) how += ", geometry from the " + extra.at("nifti.geometry");
  ctx.log(LogLevel::Info, "loaded '" + volume.metadata.source + "' (" + how + "): " + g.size_string() + " voxels of " +
                              number(g.spacing[0]) + "x" + number(g.spacing[1]) + "x" + number(g.spacing[2]) + " mm, " +
                              volume.metadata.modality + " in " + volume.metadata.units);
  ctx.progress(1.0);
  ctx.output(kVolumeOut, std::move(volume));
}

void normalise_mri(Volume& volume, const LoadMriOptions& options) {
  if (options.normalise == MriNormalise::None) return;
  const bool all = options.normalise_region == MriNormaliseRegion::All;
  std::vector<float> values;
  values.reserve(volume.voxels.size());
  for (float value : volume.voxels) {
    // Non-finite voxels were refused or replaced before (handle_nonfinite).
    if (all || value != 0.0f) values.push_back(value);
  }
  if (values.empty()) {
    throw std::runtime_error("cannot normalise '" + volume.metadata.source +
                             "': it has no non-zero voxels (set normalise_region=all or normalise=none)");
  }
  double offset = 0.0, scale = 1.0;
  auto& extra = volume.metadata.extra;
  if (options.normalise == MriNormalise::Percentile) {
    const std::array<double, 2>& bounds = options.percentiles;
    if (!(bounds[0] < bounds[1])) {
      throw std::invalid_argument("parameter percentiles must be increasing, got [" + number(bounds[0]) + ", " +
                                  number(bounds[1]) + "]");
    }
    const double low = fusionflow::percentile(values, bounds[0]);
    const double high = fusionflow::percentile(values, bounds[1]);
    if (!(high > low)) {
      throw std::runtime_error("cannot normalise '" + volume.metadata.source + "': its " + number(bounds[0]) +
                               "th and " + number(bounds[1]) + "th percentiles are equal (" + number(low) +
                               "); the image is (nearly) constant");
    }
    offset = low;
    scale = high - low;
    extra["mr.normalise_low"] = number(low);
    extra["mr.normalise_high"] = number(high);
  } else {
    double sum = 0.0;
    for (float value : values) sum += value;
    const double mean = sum / double(values.size());
    double squares = 0.0;
    for (float value : values) squares += (value - mean) * (value - mean);
    const double deviation = std::sqrt(squares / double(values.size()));
    if (!(deviation > 0)) {
      throw std::runtime_error("cannot z-score normalise '" + volume.metadata.source +
                               "': its intensities have zero standard deviation");
    }
    offset = mean;
    scale = deviation;
    extra["mr.normalise_mean"] = number(mean);
    extra["mr.normalise_std"] = number(deviation);
  }
  for (float& value : volume.voxels) value = static_cast<float>((value - offset) / scale);
  extra["mr.normalise"] = kMriNormaliseNames.name(options.normalise);
  extra["mr.normalise_region"] = kMriNormaliseRegionNames.name(options.normalise_region);
}

// Optional positive number from a parameter where 0 means "not given".
std::optional<double> given(double value) { return value > 0 ? std::optional<double>(value) : std::nullopt; }

}  // namespace

// --- io.load_ct --------------------------------------------------------------

template <class Options>
NodeType<Options> ct_node_type(const std::string& type, const std::string& from,
                               void (*add_source)(NodeType<Options>&)) {
  NodeType<Options> node(type, "1.0.0",
                         from +
                             "Loads a CT volume in Hounsfield units (DICOM rescale slope/intercept applied per "
                             "slice; other formats are taken to hold HU already), optionally clamped");
  node.output(kVolumeOut, "CT volume: modality CT, units HU");
  add_source(node);
  add_load_params(node);
  node.param(&LoadCtOptions::clamp, "clamp", "clamp values to [clamp_min, clamp_max]")
      .param(&LoadCtOptions::clamp_min, "clamp_min", "lower clamp bound in HU (when clamp=true)")
      .param(&LoadCtOptions::clamp_max, "clamp_max", "upper clamp bound in HU (when clamp=true)");
  return node;
}

NodeType<LoadCtOptions> load_ct_node() { return ct_node_type<LoadCtOptions>("io.load_ct", "", add_path_param); }

NodeType<PacsLoad<LoadCtOptions>> pacs_load_ct_node() {
  return ct_node_type<PacsLoad<LoadCtOptions>>("io.pacs_load_ct", kPacsLoadLead, add_pacs_params);
}

void run_load_ct(NodeContext& ctx, const LoadCtOptions& options) {
  LoadedImage loaded = load(ctx, options, "CT");
  Volume& volume = loaded.volume;
  volume.metadata.modality = "CT";
  volume.metadata.units = "HU";
  volume.metadata.quantity = "X-ray attenuation (Hounsfield units)";
  if (options.clamp) {
    const double low = options.clamp_min, high = options.clamp_max;
    if (!(low < high)) {
      throw std::invalid_argument("clamp_min (" + number(low) + ") must be below clamp_max (" + number(high) + ")");
    }
    std::size_t clamped = 0;
    for (float& value : volume.voxels) {
      const float bounded = std::clamp(value, static_cast<float>(low), static_cast<float>(high));
      clamped += bounded != value ? 1 : 0;
      value = bounded;
    }
    volume.metadata.extra["ct.clamp_min"] = number(low);
    volume.metadata.extra["ct.clamp_max"] = number(high);
    volume.metadata.extra["ct.clamped_voxels"] = std::to_string(clamped);
  }
  finish(ctx, std::move(volume));
}

// --- io.load_mri -------------------------------------------------------------

template <class Options>
NodeType<Options> mri_node_type(const std::string& type, const std::string& from,
                                void (*add_source)(NodeType<Options>&)) {
  NodeType<Options> node(type, "1.0.0",
                         from +
                             "Loads an MRI volume (arbitrary units), optionally N4 bias-field corrected (ITK) and "
                             "normalised (percentile or z-score)");
  node.output(kVolumeOut, "MR volume: modality MR, units a.u.");
  add_source(node);
  add_load_params(node);
  node.param(&LoadMriOptions::contrast, "contrast", "what the intensities are, e.g. 'T1-weighted' (metadata quantity)")
      .param(&LoadMriOptions::n4, "n4", "N4 bias-field correction (voxels <= 0 are background)")
      .param(&N4Options::shrink, "n4_shrink", Limits::range(1, 16), "N4 fits on a grid shrunk by this factor")
      .param(&N4Options::iterations, "n4_iterations", Limits::range(1, 1000),
             "N4 iterations per fitting level (the list length is the number of levels)")
      .choice(&LoadMriOptions::normalise, "normalise", kMriNormaliseNames,
              "percentile: linear map of the percentiles to 0 and 1 (not clipped); zscore: (v - mean) / std; "
              "applied after N4")
      .param(&LoadMriOptions::percentiles, "percentiles", Limits::range(0.0, 100.0),
             "low and high percentile for normalise=percentile (linear interpolation, as numpy.percentile)")
      .choice(&LoadMriOptions::normalise_region, "normalise_region", kMriNormaliseRegionNames,
              "voxels the statistics are computed on: non-zero (foreground) voxels or all");
  return node;
}

NodeType<LoadMriOptions> load_mri_node() { return mri_node_type<LoadMriOptions>("io.load_mri", "", add_path_param); }

NodeType<PacsLoad<LoadMriOptions>> pacs_load_mri_node() {
  return mri_node_type<PacsLoad<LoadMriOptions>>("io.pacs_load_mri", kPacsLoadLead, add_pacs_params);
}

void run_load_mri(NodeContext& ctx, const LoadMriOptions& options) {
  LoadedImage loaded = load(ctx, options, "MR");
  Volume& volume = loaded.volume;
  volume.metadata.modality = "MR";
  volume.metadata.units = "a.u.";
  volume.metadata.quantity = options.contrast.empty() ? "MR signal intensity" : options.contrast;
  if (options.n4) {
    N4Options n4 = options;
    n4.threads = ctx.thread_budget();
    if (n4.iterations.empty()) throw std::invalid_argument("n4_iterations needs at least one level");
    n4_correct(volume, n4, ctx);
    std::string levels;
    for (std::size_t n = 0; n < n4.iterations.size(); ++n) {
      levels += (n ? "," : "") + std::to_string(n4.iterations[n]);
    }
    volume.metadata.extra["mr.n4"] = "shrink " + std::to_string(n4.shrink) + ", iterations " + levels;
    volume.metadata.quantity += ", N4 bias-field corrected";
  }
  normalise_mri(volume, options);
  if (volume.metadata.extra.count("mr.normalise")) {
    volume.metadata.quantity += ", " + volume.metadata.extra["mr.normalise"] + " normalised";
  }
  finish(ctx, std::move(volume));
}

// --- io.load_pet -------------------------------------------------------------

template <class Options>
NodeType<Options> pet_node_type(const std::string& type, const std::string& from,
                                void (*add_source)(NodeType<Options>&)) {
  NodeType<Options> node(type, "1.0.0",
                         from +
                             "Loads a PET volume as activity concentration (Bq/mL) or SUVbw, from DICOM attributes "
                             "(weight, dose, half-life, injection and scan times, decay correction, units) "
                             "completed or overridden by parameters");
  node.output(kVolumeOut, "PET volume: modality PT, units Bq/mL or SUVbw");
  add_source(node);
  add_load_params(node);
  node.choice(&LoadPetOptions::suv, "suv", kPetSuvNames,
              "auto: SUVbw when everything it needs is known, else Bq/mL (logged); bq_ml: keep Bq/mL; suvbw: SUVbw "
              "or fail naming every missing piece")
      .choice(&LoadPetOptions::input_units, "input_units", kPetInputUnitsNames,
              "units of the stored values: auto = DICOM Units (0054,1001), Bq/mL for other formats")
      .param(&LoadPetOptions::weight_kg, "weight_kg", Limits::range(0.0, 1000.0),
             "patient weight in kg (0: from DICOM)")
      .param(&LoadPetOptions::injected_dose_bq, "injected_dose_bq", Limits::at_least(0.0),
             "injected activity in Bq (0: from DICOM)")
      .param(&LoadPetOptions::half_life_s, "half_life_s", Limits::at_least(0.0),
             "radionuclide half-life in s (0: from DICOM)")
      .param(&LoadPetOptions::injection_time, "injection_time",
             "injection time, DICOM TM (HHMMSS[.ffffff], same day as the scan) or DT (YYYYMMDDHHMMSS[.ffffff]); "
             "empty: from DICOM")
      .param(&LoadPetOptions::uptake_s, "uptake_s", Limits::at_least(-1.0),
             "seconds from injection to the decay reference time (series start); -1: computed from the injection "
             "and scan times")
      .choice(&LoadPetOptions::decay_correction, "decay_correction", kPetDecayCorrectionNames,
              "what the images are decay-corrected to: dicom = DecayCorrection (0054,1102); start = series start; "
              "admin = injection time");
  return node;
}

NodeType<LoadPetOptions> load_pet_node() { return pet_node_type<LoadPetOptions>("io.load_pet", "", add_path_param); }

NodeType<PacsLoad<LoadPetOptions>> pacs_load_pet_node() {
  return pet_node_type<PacsLoad<LoadPetOptions>>("io.pacs_load_pet", kPacsLoadLead, add_pacs_params);
}

void run_load_pet(NodeContext& ctx, const LoadPetOptions& options) {
  LoadedImage loaded = load(ctx, options, "PT");
  Volume& volume = loaded.volume;
  auto& extra = volume.metadata.extra;
  volume.metadata.modality = "PT";
  const DicomAttributes dicom = loaded.dicom.value_or(DicomAttributes{});
  std::vector<std::string> from_parameters;

  SuvInputs in;
  if (options.input_units == PetInputUnits::BqMl) {
    in.units = "BQML";
  } else if (options.input_units == PetInputUnits::SuvBw) {
    in.units = "GML";
  } else {
    in.units = loaded.dicom ? dicom.units : "BQML";
  }
  const PetDecayCorrection decay = options.decay_correction;
  in.decay_correction = decay == PetDecayCorrection::Dicom   ? dicom.decay_correction
                        : decay == PetDecayCorrection::Start ? "START"
                                                             : "ADMIN";
  if (decay != PetDecayCorrection::Dicom) from_parameters.push_back("decay_correction");
  // QIBA: images count as decay corrected only if CorrectedImage lists DECY.
  if (decay == PetDecayCorrection::Dicom && !dicom.corrected_image.empty() &&
      dicom.corrected_image.find("DECY") == std::string::npos) {
    in.decay_correction = "NONE";
  }
  auto pick = [&](const char* name, double value, std::optional<double> from_dicom) {
    const auto parameter = given(value);
    if (parameter) from_parameters.push_back(name);
    return parameter ? parameter : from_dicom;
  };
  in.weight_kg = pick("weight_kg", options.weight_kg, dicom.patient_weight_kg);
  in.dose_bq = pick("injected_dose_bq", options.injected_dose_bq, dicom.total_dose_bq);
  in.half_life_s = pick("half_life_s", options.half_life_s, dicom.half_life_s);
  const double uptake_parameter = options.uptake_s;
  const std::string& injection_time = options.injection_time;
  if (uptake_parameter >= 0) {
    in.uptake_s = uptake_parameter;
    from_parameters.push_back("uptake_s");
  } else if (loaded.dicom || !injection_time.empty()) {
    if (!injection_time.empty()) from_parameters.push_back("injection_time");
    in.uptake_s = dicom_uptake_seconds(dicom, injection_time, in.uptake_missing);
  } else {
    in.uptake_missing.push_back("the time from injection to scan start (parameter uptake_s; '" +
                                volume.metadata.source + "' is not DICOM)");
  }

  extra["pet.input_units"] = in.units;
  if (!dicom.radiopharmaceutical.empty()) extra["pet.radiopharmaceutical"] = dicom.radiopharmaceutical;
  if (!dicom.radionuclide.empty()) extra["pet.radionuclide"] = dicom.radionuclide;
  if (!from_parameters.empty()) extra["pet.parameters_used"] = join(from_parameters, ",");

  const PetSuv mode = options.suv;
  std::string units_upper = in.units;
  std::transform(units_upper.begin(), units_upper.end(), units_upper.begin(),
                 [](unsigned char c) { return char(std::toupper(c)); });
  if (units_upper == "GML") {
    // Already SUVbw (g/mL).
    if (mode == PetSuv::BqMl) {
      throw std::runtime_error("'" + volume.metadata.source +
                               "' already holds SUVbw (units GML); it cannot be converted back to Bq/mL: use suv=auto "
                               "or suvbw");
    }
    volume.metadata.units = "SUVbw";
    volume.metadata.quantity = "standardised uptake value (body weight)";
    finish(ctx, std::move(volume));
    return;
  }
  if (mode != PetSuv::BqMl) {
    const std::vector<std::string> missing = suv_missing_pieces(in);
    if (missing.empty()) {
      const SuvFactor suv = suv_factor(in);
      for (float& value : volume.voxels) value = static_cast<float>(double(value) * suv.factor);
      volume.metadata.units = "SUVbw";
      volume.metadata.quantity = "standardised uptake value (body weight)";
      extra["pet.weight_kg"] = number(*in.weight_kg);
      extra["pet.injected_dose_bq"] = number(*in.dose_bq);
      extra["pet.decay_correction"] = in.decay_correction;
      if (in.decay_correction == "START") {
        extra["pet.half_life_s"] = number(*in.half_life_s);
        extra["pet.uptake_s"] = number(*in.uptake_s);
      }
      extra["pet.decayed_dose_bq"] = number(suv.decayed_dose_bq);
      extra["pet.suv_factor"] = number(suv.factor);
      finish(ctx, std::move(volume));
      return;
    }
    if (mode == PetSuv::SuvBw) {
      std::string list;
      for (const std::string& piece : missing) list += "\n  - " + piece;
      throw std::runtime_error("cannot compute SUVbw for '" + volume.metadata.source + "': missing " +
                               std::to_string(missing.size()) + " piece" + (missing.size() == 1 ? "" : "s") + ":" +
                               list);
    }
    extra["pet.suv_unavailable"] = join(missing, "; ");
    ctx.log(LogLevel::Warn,
            "'" + volume.metadata.source + "' kept in Bq/mL (suv=auto); SUVbw would need: " + join(missing, "; "));
  }
  if (units_upper.empty()) {
    throw std::runtime_error("'" + volume.metadata.source +
                             "' does not say what its PET values are (no DICOM Units (0054,1001)); set "
                             "input_units=bq_ml if they are Bq/mL");
  }
  if (units_upper != "BQML") {
    throw std::runtime_error("'" + volume.metadata.source + "' holds PET values in '" + in.units +
                             "' (DICOM Units (0054,1001)), not Bq/mL; set input_units if the file is mislabelled");
  }
  volume.metadata.units = "Bq/mL";
  volume.metadata.quantity = "activity concentration";
  finish(ctx, std::move(volume));
}

// --- io.load_image -----------------------------------------------------------

template <class Options>
NodeType<Options> image_node_type(const std::string& type, const std::string& from,
                                  void (*add_source)(NodeType<Options>&)) {
  NodeType<Options> node(type, "1.0.0",
                         from +
                             "Loads any supported image or DICOM series as a volume without modality processing "
                             "(DICOM rescale slope/intercept applied)");
  node.output(kVolumeOut, "the volume");
  add_source(node);
  add_load_params(node);
  node.param(&LoadImageOptions::modality, "modality", "modality recorded in the metadata (default: DICOM Modality)")
      .param(&LoadImageOptions::units, "units", "units recorded in the metadata (default: HU for DICOM CT, else a.u.)");
  return node;
}

NodeType<LoadImageOptions> load_image_node() {
  return image_node_type<LoadImageOptions>("io.load_image", "", add_path_param);
}

NodeType<PacsLoad<LoadImageOptions>> pacs_load_image_node() {
  return image_node_type<PacsLoad<LoadImageOptions>>("io.pacs_load_image", kPacsLoadLead, add_pacs_params);
}

void run_load_image(NodeContext& ctx, const LoadImageOptions& options) {
  LoadedImage loaded = load(ctx, options, "");
  Volume& volume = loaded.volume;
  const std::string dicom_modality = loaded.dicom ? loaded.dicom->modality : "";
  const std::string& modality = options.modality;
  const std::string& units = options.units;
  volume.metadata.modality = modality.empty() ? dicom_modality : modality;
  std::string default_units = "a.u.";
  if (dicom_modality == "CT") default_units = "HU";
  if (dicom_modality == "PT" && loaded.dicom->units == "BQML") default_units = "Bq/mL";
  volume.metadata.units = units.empty() ? default_units : units;
  volume.metadata.quantity = "image intensity";
  finish(ctx, std::move(volume));
}

}  // namespace fusionflow::io
