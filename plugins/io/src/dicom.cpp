// DICOM files and series directories.
//
// Headers are parsed with DCMTK (dcmdata), which reports truncated and corrupt
// files as errors. Debian's GDCM is built with assertions: on some truncated
// files (63 of 507 prefixes of pydicom's CT_small.dcm, measured) it aborts the
// process, and on some files DCMTK reads completely (an invalid VR in the
// file meta group, found by fuzzing), so GDCM (through ITK's GDCMImageIO)
// only sees copies of the files that DCMTK has parsed and written out again
// (ScratchDicom). Series are grouped by
// SeriesInstanceUID, sorted by position along the slice normal and checked
// (orientation, in-plane size and spacing, uniform slice spacing, no shear)
// here; ITK's GDCMImageIO then decodes each slice's pixels with that slice's
// own rescale slope and intercept (CT Hounsfield units, PET Bq/mL).
#include "io_internal.hpp"
#include "siemens_mosaic.hpp"

#include <fusionflow/itk_bridge.hpp>

#include <itkGDCMImageIO.h>
#include <itkImageFileReader.h>

#include <dcmtk/config/osconfig.h>  // first DCMTK include
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcelem.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/oflog/oflog.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace fusionflow::io {
namespace {
namespace fs = std::filesystem;

void quiet_dcmtk() {
  // DCMTK logs parse errors to stderr; we report them in our own messages.
  static std::once_flag once;
  std::call_once(once, [] { OFLog::getLogger("dcmtk.dcmdata").setLogLevel(OFLogger::OFF_LOG_LEVEL); });
}

std::string explain(const OFCondition& condition) {
  const std::string text = condition.text();
  if (text.find("premature end of stream") != std::string::npos || text.find("End of stream") != std::string::npos) {
    return "the file is truncated or corrupt (a DICOM element runs past the end of the file)";
  }
  if (text.find("Invalid stream") != std::string::npos) {
    return "the file is truncated or corrupt (invalid DICOM element stream)";
  }
  return "corrupt DICOM data (" + text + ")";
}

// Parses `path` completely (the pixel data's length is checked against the
// file, its value loaded lazily). Throws naming the file if DCMTK refuses it.
void load_dicom(const fs::path& path, DcmFileFormat& file) {
  quiet_dcmtk();
  if (!dcmDataDict.isDictionaryLoaded()) {
    throw std::runtime_error("cannot read DICOM file " + quoted(path) +
                             ": DCMTK's data dictionary is not loaded (install libdcmtk17 or set DCMDICTPATH)");
  }
  const OFCondition status = file.loadFile(OFFilename(path.c_str()));
  if (status.bad()) {
    throw std::runtime_error("cannot read DICOM file " + quoted(path) + ": " + explain(status) +
                             "; re-export or re-copy it, or remove it from the directory");
  }
}

std::string get_string(DcmItem& item, const DcmTagKey& tag) {
  OFString value;
  if (item.findAndGetOFStringArray(tag, value).bad()) return {};
  std::string text = value.c_str();
  const auto first = text.find_first_not_of(" \t\r\n");
  const auto last = text.find_last_not_of(" \t\r\n");
  return first == std::string::npos ? std::string() : text.substr(first, last - first + 1);
}

std::optional<double> get_number(DcmItem& item, const DcmTagKey& tag, unsigned long position = 0) {
  Float64 value = 0;
  if (item.findAndGetFloat64(tag, value, position).bad() || !std::isfinite(value)) return std::nullopt;
  return double(value);
}

std::uint32_t get_count(DcmItem& item, const DcmTagKey& tag, std::uint32_t fallback) {
  Uint16 small = 0;
  if (item.findAndGetUint16(tag, small).good()) return small;
  Sint32 integer = 0;
  if (item.findAndGetSint32(tag, integer).good() && integer >= 0) return std::uint32_t(integer);
  return fallback;
}

// A Siemens MOSAIC file, as its header describes it.
struct MosaicHeader {
  std::size_t images = 0;                           // slices tiled in the image (NumberOfImagesInMosaic)
  std::optional<std::array<double, 3>> csa_normal;  // CSA SliceNormalVector: the order of the tiles
  std::string refusal;                              // why the mosaic cannot be unpacked (then `images` is 0)
  std::string warning;                              // why the CSA header was not used
};

// One frame of an enhanced image: each attribute from the frame's functional
// groups, else from the shared ones.
struct FrameGeometry {
  std::optional<std::array<double, 3>> position;
  std::optional<std::array<double, 6>> orientation;
  std::optional<std::array<double, 2>> pixel_spacing;
  std::optional<double> slice_thickness, spacing_between_slices, rescale_slope, rescale_intercept;
};

struct SliceHeader {
  fs::path file;
  std::string series_uid, series_description, series_number, modality;
  std::optional<std::array<double, 3>> position;       // (0020,0032)
  std::optional<std::array<double, 6>> orientation;    // (0020,0037)
  std::optional<std::array<double, 2>> pixel_spacing;  // (0028,0030): row spacing, column spacing
  std::optional<double> slice_thickness, spacing_between_slices;
  std::uint32_t rows = 0, columns = 0, samples = 1, bits_allocated = 0, frames = 1;
  std::string acquisition_date, acquisition_time;
  double along_normal = 0.0;  // filled when sorting
  // What the frames are (multi-frame files).
  std::string sop_class_uid;
  std::string sop_instance_uid;               // (0008,0018): named by derived series (keep_identifiers)
  bool functional_groups = false;             // enhanced IODs: geometry per frame, (5200,9229)/(5200,9230)
  std::vector<DcmTagKey> frame_increment;     // (0028,0009): what changes from frame to frame
  std::vector<FrameGeometry> frame_geometry;  // enhanced images: one entry per frame
  std::string frame_problem;                  // why the frames of an enhanced image cannot be placed
  std::size_t frame_index = 0;                // a frame of an enhanced image, as a slice (file order)
  // Siemens MOSAIC: set if the file is one.
  std::optional<MosaicHeader> mosaic;
};

template <std::size_t N>
std::optional<std::array<double, N>> get_vector(DcmItem& item, const DcmTagKey& tag) {
  std::array<double, N> values{};
  for (std::size_t n = 0; n < N; ++n) {
    const auto value = get_number(item, tag, n);
    if (!value) return std::nullopt;
    values[n] = *value;
  }
  return values;
}

// A geometry attribute (position, orientation, spacing): absent or empty is
// nullopt (the caller decides), but a value that is there and is not N
// finite numbers is a corrupt header, never read as "absent".
template <std::size_t N>
std::optional<std::array<double, N>> get_geometry_vector(DcmItem& item, const DcmTagKey& tag, const fs::path& path) {
  const std::string written = get_string(item, tag);
  if (written.empty()) return std::nullopt;
  auto values = get_vector<N>(item, tag);
  if (!values) {
    DcmTag named(tag);
    throw std::runtime_error("cannot read " + quoted(path) + ": " + named.getTagName() + " is '" +
                             written.substr(0, 80) + "', not " + std::to_string(N) +
                             " finite numbers: the header is corrupt");
  }
  return values;
}

std::string format_value(double value) {
  std::ostringstream text;
  text.precision(10);
  text << value;
  return text.str();
}

// "Name (gggg,eeee)" of a tag, for messages.
std::string text(const DcmTagKey& key) {
  DcmTag tag(key);
  char code[16];
  std::snprintf(code, sizeof code, "(%04X,%04X)", unsigned(key.getGroup()), unsigned(key.getElement()));
  const char* name = tag.getTagName();
  return name == nullptr || std::string(name) == DcmTag_ERROR_TagName ? code : std::string(name) + " " + code;
}

// The block xx of private creator `creator` in `group`: its elements are
// (group,xxyy), and (group,00xx) holds the creator's name.
std::optional<Uint16> private_block(DcmItem& item, Uint16 group, const std::string& creator) {
  for (unsigned long n = 0; n < item.card(); ++n) {
    DcmElement* element = item.getElement(n);
    if (element == nullptr) continue;
    const DcmTagKey key = element->getTag();
    if (key.getGroup() != group || key.getElement() < 0x10 || key.getElement() > 0xFF) continue;
    OFString value;
    if (element->getOFStringArray(value).good() && std::string(value.c_str()).rfind(creator, 0) == 0 &&
        std::string(value.c_str()).find_first_not_of(' ', creator.size()) == std::string::npos) {
      return key.getElement();
    }
  }
  return std::nullopt;
}

// The value bytes of an OB or UN element, or of a private element DCMTK's
// dictionary does not know in an implicit VR file (DCMTK has checked its
// length against the file).
std::optional<std::pair<const Uint8*, std::size_t>> element_bytes(DcmItem& item, const DcmTagKey& key) {
  DcmElement* element = nullptr;
  if (item.findAndGetElement(key, element).bad() || element == nullptr) return std::nullopt;
  const DcmEVR vr = element->ident();
  if (vr != EVR_OB && vr != EVR_UN && vr != EVR_UNKNOWN && vr != EVR_UNKNOWN2B) return std::nullopt;
  Uint8* bytes = nullptr;
  if (element->getUint8Array(bytes).bad() || (bytes == nullptr && element->getLength() != 0)) return std::nullopt;
  return std::make_pair(static_cast<const Uint8*>(bytes), std::size_t{element->getLength()});
}

// Siemens MOSAIC detection, as nibabel and dcm2niix do it: ImageType
// (0008,0008) holds MOSAIC, or the CSA image header has a
// NumberOfImagesInMosaic (and an AcquisitionMatrixText). The count comes
// from the CSA header or Siemens' (0019,xx0A); the order of the tiles from the
// CSA SliceNormalVector.
std::optional<MosaicHeader> read_mosaic_header(DcmDataset& data) {
  bool typed_mosaic = false;
  std::istringstream image_type(get_string(data, DCM_ImageType));
  for (std::string value; std::getline(image_type, value, '\\');) {
    value.erase(std::remove(value.begin(), value.end(), ' '), value.end());
    typed_mosaic |= value == "MOSAIC";
  }
  std::optional<CsaHeader> csa;
  std::string csa_problem = "there is none";
  if (const auto block = private_block(data, 0x0029, "SIEMENS CSA HEADER")) {
    const auto bytes = element_bytes(data, DcmTagKey(0x0029, Uint16(*block << 8 | 0x10)));
    if (bytes) {
      try {
        csa = parse_csa_header(bytes->first, bytes->second);
      } catch (const std::runtime_error& error) {
        csa_problem = error.what();
      }
    }
  }
  const auto count = [](std::optional<double> value) -> std::optional<std::size_t> {
    if (!value || *value < 1 || *value > 65535 || std::floor(*value) != *value) return std::nullopt;
    return std::size_t(*value);
  };
  const std::optional<double> csa_value = csa ? csa->number("NumberOfImagesInMosaic") : std::nullopt;
  const bool csa_mosaic = csa_value && *csa_value != 0 && csa->has_text("AcquisitionMatrixText");
  if (!typed_mosaic && !csa_mosaic) return std::nullopt;

  MosaicHeader mosaic;
  const std::optional<std::size_t> csa_images = count(csa_value);
  std::optional<std::size_t> private_images;
  if (const auto block = private_block(data, 0x0019, "SIEMENS MR HEADER")) {
    const DcmTagKey key(0x0019, Uint16(*block << 8 | 0x0A));
    Uint16 value = 0;
    if (data.findAndGetUint16(key, value).good()) {
      private_images = count(double(value));
    } else if (const auto bytes = element_bytes(data, key);
               bytes && bytes->second == 2 && DcmXfer(data.getOriginalXfer()).isLittleEndian()) {
      private_images = count(double(bytes->first[0] | bytes->first[1] << 8));  // implicit VR: US, little endian
    }
  }
  if (csa_value && !csa_images) {
    mosaic.refusal = "its CSA NumberOfImagesInMosaic (" + format_value(*csa_value) + ") is not a count";
  } else if (csa_images && private_images && *csa_images != *private_images) {
    mosaic.refusal = "its NumberOfImagesInMosaic is " + std::to_string(*csa_images) + " in the CSA header but " +
                     std::to_string(*private_images) + " in (0019,xx0A): the header is corrupt";
  } else if (csa_images || private_images) {
    mosaic.images = csa_images ? *csa_images : *private_images;
  } else {
    mosaic.refusal =
        "it does not say how many slices it holds: no NumberOfImagesInMosaic in its CSA image header "
        "(0029,xx10) (" +
        (csa ? std::string("not in it") : csa_problem) + ") or in (0019,xx0A) (removed by anonymisation?)";
  }
  if (csa) {
    std::array<double, 3> normal{};
    bool complete = true;
    for (std::size_t n = 0; n < 3; ++n) {
      const auto value = csa->number("SliceNormalVector", n);
      complete &= value.has_value();
      if (value) normal[n] = *value;
    }
    if (complete) mosaic.csa_normal = normal;
  }
  if (!mosaic.csa_normal && mosaic.refusal.empty()) {
    mosaic.warning = "its CSA image header gives no slice normal (" +
                     (csa ? std::string("no SliceNormalVector") : "CSA header: " + csa_problem) +
                     "); its tiles are taken to run along the row x column normal, as nibabel does";
  }
  return mosaic;
}

DcmItem* functional_group(DcmItem* groups, const DcmTagKey& sequence) {
  DcmItem* item = nullptr;
  if (groups != nullptr && groups->findAndGetSequenceItem(sequence, item, 0).good()) return item;
  return nullptr;
}

// The frames of an enhanced image (per-frame and shared functional groups).
void read_frame_geometry(DcmDataset& data, SliceHeader& slice) {
  DcmItem* shared = nullptr;
  if (data.findAndGetSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0).bad()) shared = nullptr;
  DcmSequenceOfItems* per_frame = nullptr;
  if (data.findAndGetSequence(DCM_PerFrameFunctionalGroupsSequence, per_frame).bad()) per_frame = nullptr;
  const unsigned long items = per_frame != nullptr ? per_frame->card() : 0;
  // The loop runs over items present in the file, never over the frame count
  // alone.
  if (items != slice.frames && !(items == 0 && slice.frames == 1)) {
    slice.frame_problem = "its per-frame functional groups (5200,9230) describe " + std::to_string(items) +
                          " frames, not its " + std::to_string(slice.frames);
    return;
  }
  for (std::uint32_t n = 0; n < slice.frames; ++n) {
    DcmItem* frame = items != 0 ? per_frame->getItem(n) : nullptr;
    const auto group = [&](const DcmTagKey& sequence) {
      DcmItem* own = functional_group(frame, sequence);
      return own != nullptr ? own : functional_group(shared, sequence);
    };
    FrameGeometry f;
    if (DcmItem* g = group(DCM_PlanePositionSequence)) f.position = get_vector<3>(*g, DCM_ImagePositionPatient);
    if (DcmItem* g = group(DCM_PlaneOrientationSequence)) {
      f.orientation = get_vector<6>(*g, DCM_ImageOrientationPatient);
    }
    if (DcmItem* g = group(DCM_PixelMeasuresSequence)) {
      f.pixel_spacing = get_vector<2>(*g, DCM_PixelSpacing);
      f.slice_thickness = get_number(*g, DCM_SliceThickness);
      f.spacing_between_slices = get_number(*g, DCM_SpacingBetweenSlices);
    }
    if (DcmItem* g = group(DCM_PixelValueTransformationSequence)) {
      f.rescale_slope = get_number(*g, DCM_RescaleSlope);
      f.rescale_intercept = get_number(*g, DCM_RescaleIntercept);
    }
    slice.frame_geometry.push_back(f);
  }
  // A single-frame enhanced image reads like a classic slice.
  if (slice.frames == 1) {
    const FrameGeometry& f = slice.frame_geometry.front();
    if (!slice.position) slice.position = f.position;
    if (!slice.orientation) slice.orientation = f.orientation;
    if (!slice.pixel_spacing) slice.pixel_spacing = f.pixel_spacing;
    if (!slice.slice_thickness) slice.slice_thickness = f.slice_thickness;
    if (!slice.spacing_between_slices) slice.spacing_between_slices = f.spacing_between_slices;
  }
}

// Reads the header of one DICOM file. Returns false if it holds no pixel data
// (reports, DICOMDIR, presentation states...).
bool read_slice_header(const fs::path& path, SliceHeader& slice) {
  DcmFileFormat file;
  load_dicom(path, file);
  DcmDataset& data = *file.getDataset();
  DcmElement* pixels = nullptr;
  if (data.findAndGetElement(DCM_PixelData, pixels).bad() || pixels == nullptr) return false;
  slice.file = path;
  slice.series_uid = get_string(data, DCM_SeriesInstanceUID);
  slice.series_description = get_string(data, DCM_SeriesDescription);
  slice.series_number = get_string(data, DCM_SeriesNumber);
  slice.modality = get_string(data, DCM_Modality);
  slice.position = get_geometry_vector<3>(data, DCM_ImagePositionPatient, path);
  slice.orientation = get_geometry_vector<6>(data, DCM_ImageOrientationPatient, path);
  slice.pixel_spacing = get_geometry_vector<2>(data, DCM_PixelSpacing, path);
  slice.slice_thickness = get_number(data, DCM_SliceThickness);
  slice.spacing_between_slices = get_number(data, DCM_SpacingBetweenSlices);
  slice.rows = get_count(data, DCM_Rows, 0);
  slice.columns = get_count(data, DCM_Columns, 0);
  slice.samples = get_count(data, DCM_SamplesPerPixel, 1);
  slice.bits_allocated = get_count(data, DCM_BitsAllocated, 0);
  slice.frames = get_count(data, DCM_NumberOfFrames, 1);
  slice.acquisition_date = get_string(data, DCM_AcquisitionDate);
  slice.acquisition_time = get_string(data, DCM_AcquisitionTime);
  slice.sop_class_uid = get_string(data, DCM_SOPClassUID);
  slice.sop_instance_uid = get_string(data, DCM_SOPInstanceUID);
  slice.functional_groups =
      data.tagExists(DCM_SharedFunctionalGroupsSequence) || data.tagExists(DCM_PerFrameFunctionalGroupsSequence);
  DcmElement* increment = nullptr;
  if (data.findAndGetElement(DCM_FrameIncrementPointer, increment).good() && increment != nullptr) {
    for (unsigned long n = 0; n < increment->getVM(); ++n) {
      DcmTagKey key;
      if (increment->getTagVal(key, n).good()) slice.frame_increment.push_back(key);
    }
  }
  if (slice.functional_groups) read_frame_geometry(data, slice);
  slice.mosaic = read_mosaic_header(data);
  if (slice.rows == 0 || slice.columns == 0 || slice.frames == 0) {
    throw std::runtime_error("cannot read DICOM file " + quoted(path) +
                             ": Rows, Columns or NumberOfFrames is 0 "
                             "or missing: the header is corrupt");
  }
  if (slice.samples != 1) {
    throw std::runtime_error("cannot read DICOM file " + quoted(path) +
                             ": unsupported pixel type: " + std::to_string(slice.samples) +
                             " samples per pixel (colour); the io loaders read grey-level images");
  }
  if (slice.bits_allocated != 8 && slice.bits_allocated != 16 && slice.bits_allocated != 32) {
    throw std::runtime_error("cannot read DICOM file " + quoted(path) + ": unsupported pixel type: BitsAllocated " +
                             std::to_string(slice.bits_allocated) + " (8, 16 or 32 are supported)");
  }
  // The rest of the pixel module, checked here because GDCM asserts (and so
  // aborts the process) on what it cannot handle: found by fuzz_dicom, a
  // signed MONOCHROME1 image (GDCM inverts only unsigned ones).
  const std::string photometric = get_string(data, DCM_PhotometricInterpretation);
  if (photometric != "MONOCHROME1" && photometric != "MONOCHROME2") {
    throw std::runtime_error("cannot read DICOM file " + quoted(path) + ": unsupported PhotometricInterpretation '" +
                             photometric.substr(0, 40) +
                             "'; the io loaders read grey-level images (MONOCHROME1 or MONOCHROME2)");
  }
  const std::uint32_t bits_stored = get_count(data, DCM_BitsStored, slice.bits_allocated);
  const std::uint32_t high_bit = get_count(data, DCM_HighBit, bits_stored - 1);
  const std::uint32_t representation = get_count(data, DCM_PixelRepresentation, 0);
  if (bits_stored == 0 || bits_stored > slice.bits_allocated || high_bit != bits_stored - 1 || representation > 1) {
    throw std::runtime_error("cannot read DICOM file " + quoted(path) +
                             ": inconsistent pixel description (BitsAllocated " + std::to_string(slice.bits_allocated) +
                             ", BitsStored " + std::to_string(bits_stored) + ", HighBit " + std::to_string(high_bit) +
                             ", PixelRepresentation " + std::to_string(representation) + "): the header is corrupt");
  }
  if (photometric == "MONOCHROME1" && representation == 1) {
    throw std::runtime_error("cannot read DICOM file " + quoted(path) +
                             ": a signed MONOCHROME1 image (inverted grey scale with signed pixels), which the DICOM "
                             "decoder (GDCM) cannot invert; convert it to MONOCHROME2");
  }
  const DcmXfer transfer(data.getOriginalXfer());
  if (!transfer.isEncapsulated()) {
    const std::uint64_t needed = std::uint64_t{slice.rows} * slice.columns * slice.frames * (slice.bits_allocated / 8);
    if (std::uint64_t{pixels->getLength()} < needed) {
      throw std::runtime_error("cannot read DICOM file " + quoted(path) + ": its pixel data holds " +
                               std::to_string(pixels->getLength()) +
                               " bytes but Rows x Columns x frames x bits "
                               "need " +
                               std::to_string(needed) + ": the file is truncated or its header corrupt");
    }
  }
  return true;
}

bool hidden(const fs::path& path) { return path.filename().string().rfind('.', 0) == 0; }

std::string series_label(const std::vector<SliceHeader>& slices) {
  const SliceHeader& first = slices.front();
  std::ostringstream text;
  text << "  - series_uid '" << first.series_uid << "', description '" << first.series_description << "', modality "
       << (first.modality.empty() ? "?" : first.modality) << ", series number "
       << (first.series_number.empty() ? "?" : first.series_number) << ", " << slices.size()
       << (slices.size() == 1 ? " file" : " files");
  return text.str();
}

using SeriesMap = std::vector<std::pair<std::string, std::vector<SliceHeader>>>;

SeriesMap scan_directory(const fs::path& directory, NodeContext& ctx) {
  std::vector<fs::path> candidates;
  std::error_code ec;
  for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_error;
    if (it->is_regular_file(type_error) && !hidden(it->path()) && looks_like_dicom_file(it->path())) {
      candidates.push_back(it->path());
    }
  }
  if (ec) throw std::runtime_error("cannot list directory " + quoted(directory) + ": " + ec.message());
  if (candidates.empty()) {
    throw std::runtime_error("no DICOM files in directory " + quoted(directory) +
                             " (DICOM files need a .dcm/.ima extension or a DICM preamble)");
  }
  std::sort(candidates.begin(), candidates.end());
  SeriesMap series;
  std::map<std::string, std::size_t> index;
  for (std::size_t n = 0; n < candidates.size(); ++n) {
    ctx.throw_if_cancelled();
    SliceHeader slice;
    if (read_slice_header(candidates[n], slice)) {
      auto [it, inserted] = index.emplace(slice.series_uid, series.size());
      if (inserted) series.emplace_back(slice.series_uid, std::vector<SliceHeader>{});
      series[it->second].second.push_back(std::move(slice));
    }
    ctx.progress(0.3 * double(n + 1) / double(candidates.size()));
  }
  if (series.empty()) {
    throw std::runtime_error("no DICOM images in directory " + quoted(directory) + ": its " +
                             std::to_string(candidates.size()) + " DICOM file(s) hold no pixel data");
  }
  return series;
}

std::vector<SliceHeader> select_series(SeriesMap series, const LoadRequest& request, NodeContext& ctx) {
  const fs::path& directory = request.path;
  auto listing = [&](const SeriesMap& list) {
    std::string text;
    for (const auto& entry : list) text += "\n" + series_label(entry.second);
    return text;
  };
  if (!request.series_uid.empty()) {
    for (auto& entry : series) {
      if (entry.first == request.series_uid) return std::move(entry.second);
    }
    throw std::runtime_error("DICOM directory " + quoted(directory) + " holds no series with series_uid '" +
                             request.series_uid + "'; it holds:" + listing(series));
  }
  if (!request.series_description.empty()) {
    SeriesMap matches;
    for (auto& entry : series) {
      if (entry.second.front().series_description == request.series_description) matches.push_back(entry);
    }
    if (matches.size() == 1) return std::move(matches.front().second);
    if (matches.empty()) {
      throw std::runtime_error("DICOM directory " + quoted(directory) + " holds no series described '" +
                               request.series_description + "'; it holds:" + listing(series));
    }
    throw std::runtime_error("DICOM directory " + quoted(directory) + " holds " + std::to_string(matches.size()) +
                             " series described '" + request.series_description +
                             "'; choose one with parameter series_uid:" + listing(matches));
  }
  if (series.size() == 1) return std::move(series.front().second);
  if (!request.expected_modality.empty()) {
    SeriesMap matches;
    for (auto& entry : series) {
      if (entry.second.front().modality == request.expected_modality) matches.push_back(entry);
    }
    if (matches.size() == 1) {
      ctx.log(LogLevel::Info, "DICOM directory " + quoted(directory) + " holds " + std::to_string(series.size()) +
                                  " series; using its only " + request.expected_modality + " series, described '" +
                                  matches.front().second.front().series_description + "'");
      return std::move(matches.front().second);
    }
  }
  throw std::runtime_error("DICOM directory " + quoted(directory) + " holds " + std::to_string(series.size()) +
                           " series; choose one with parameter series_uid or series_description:" + listing(series));
}

std::array<double, 3> cross(const std::array<double, 3>& a, const std::array<double, 3>& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double dot(const std::array<double, 3>& a, const std::array<double, 3>& b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}
std::string format_mm(double value) {
  std::ostringstream text;
  text.precision(6);
  text << value;
  return text.str();
}

// Row and column direction cosines, normalised and checked.
std::pair<std::array<double, 3>, std::array<double, 3>> cosines(const SliceHeader& slice) {
  std::array<double, 3> row{1, 0, 0}, column{0, 1, 0};
  if (slice.orientation) {
    const auto& o = *slice.orientation;
    row = {o[0], o[1], o[2]};
    column = {o[3], o[4], o[5]};
  }
  const double row_norm = std::sqrt(dot(row, row)), column_norm = std::sqrt(dot(column, column));
  if (row_norm < 0.5 || column_norm < 0.5 || std::abs(dot(row, column)) > 1e-3 * row_norm * column_norm) {
    throw std::runtime_error("cannot read DICOM file " + quoted(slice.file) +
                             ": ImageOrientationPatient (0020,0037) is not two orthogonal unit vectors: the header "
                             "is corrupt");
  }
  for (double& v : row) v /= row_norm;
  for (double& v : column) v /= column_norm;
  return {row, column};
}

std::string frame_layout_name(const SliceHeader& slice) {
  const char* sop_name = dcmFindNameOfUID(slice.sop_class_uid.c_str(), nullptr);
  return "'" +
         (sop_name != nullptr           ? std::string(sop_name)
          : slice.sop_class_uid.empty() ? std::string("no SOP class UID")
                                        : "SOP class " + slice.sop_class_uid) +
         "', " + std::to_string(slice.frames) + (slice.frames == 1 ? " frame" : " frames");
}

// Refuses the multi-frame layouts whose frames the loaders would misplace:
// enhanced images whose functional groups do not describe every frame, and
// classic multi-frame files whose frames are not slices (cine, planar NM
// views, ...).
void check_frame_layout(const SliceHeader& slice) {
  const std::string what = frame_layout_name(slice);
  const std::string convert = "; convert it first, e.g. to NIfTI with dcm2niix";
  if (slice.functional_groups) {
    if (slice.frame_problem.empty()) return;  // its frames are placed one by one (enhanced_stack)
    throw std::runtime_error("cannot read DICOM file " + quoted(slice.file) +
                             ": it is an enhanced multi-frame image (" + what +
                             ") whose frames cannot be placed: " + slice.frame_problem + convert);
  }
  if (slice.frames <= 1) return;
  for (const DcmTagKey& key : slice.frame_increment) {
    if (key == DCM_SliceVector || key == DCM_SliceLocationVector || key == DCM_GridFrameOffsetVector) return;
  }
  std::string steps;
  for (const DcmTagKey& key : slice.frame_increment) steps += (steps.empty() ? "" : ", ") + text(key);
  throw std::runtime_error("cannot read DICOM file " + quoted(slice.file) + ": it is a multi-frame image (" + what +
                           ") whose frames are not the slices of one volume: its FrameIncrementPointer (0028,0009) " +
                           (steps.empty() ? std::string("is missing") : "steps through " + steps) +
                           " (the io loaders read multi-frame files whose frames step through SliceVector, "
                           "SliceLocationVector or GridFrameOffsetVector)" +
                           convert);
}

struct SeriesGeometry {
  Geometry geometry;
  std::vector<std::string> warnings;
};

// Sorts the slices along the normal and checks that they form one regular
// grid. Throws naming the offending file(s).
SeriesGeometry sort_and_check(std::vector<SliceHeader>& slices, const fs::path& where) {
  SeriesGeometry result;
  SliceHeader& first = slices.front();
  for (const SliceHeader& slice : slices) check_frame_layout(slice);
  if (slices.size() > 1) {
    const auto mosaic = std::find_if(slices.begin(), slices.end(), [](const SliceHeader& s) { return s.mosaic; });
    if (mosaic != slices.end()) {
      const auto mosaics = std::count_if(slices.begin(), slices.end(), [](const SliceHeader& s) { return s.mosaic; });
      throw std::runtime_error(
          "cannot read DICOM series in " + quoted(where) + ": " +
          (std::size_t(mosaics) == slices.size()
               ? "its " + std::to_string(mosaics) + " files are"
               : std::to_string(mosaics) + " of its " + std::to_string(slices.size()) + " files are") +
          " Siemens MOSAIC images, each a whole volume (one time point of an fMRI run, or one diffusion weighting); "
          "they are not stacked into one volume: load one of them by its file path, e.g. " +
          quoted(mosaic->file));
    }
  }
  for (const SliceHeader& slice : slices) {
    if (slice.rows != first.rows || slice.columns != first.columns) {
      throw std::runtime_error("inconsistent DICOM series in " + quoted(where) + ": " + quoted(slice.file) + " is " +
                               std::to_string(slice.columns) + "x" + std::to_string(slice.rows) + " but " +
                               quoted(first.file) + " is " + std::to_string(first.columns) + "x" +
                               std::to_string(first.rows));
    }
    if (slices.size() > 1 && slice.frames != 1) {
      throw std::runtime_error("cannot read DICOM series in " + quoted(where) + ": " + quoted(slice.file) + " holds " +
                               std::to_string(slice.frames) +
                               " frames; series of multi-frame files are not supported (load the file alone)");
    }
  }
  const auto [row, column] = cosines(first);
  const std::array<double, 3> normal = cross(row, column);
  if (slices.size() > 1) {
    for (const SliceHeader& slice : slices) {
      if (!slice.position || !slice.orientation) {
        throw std::runtime_error("cannot read DICOM series in " + quoted(where) + ": " + quoted(slice.file) +
                                 " has no ImagePositionPatient/ImageOrientationPatient, so the slices cannot be "
                                 "ordered");
      }
      const auto [slice_row, slice_column] = cosines(slice);
      for (int n = 0; n < 3; ++n) {
        if (std::abs(slice_row[n] - row[n]) > 1e-4 || std::abs(slice_column[n] - column[n]) > 1e-4) {
          throw std::runtime_error("inconsistent slice orientation in DICOM series in " + quoted(where) + ": " +
                                   quoted(slice.file) + " and " + quoted(first.file) +
                                   " have different ImageOrientationPatient (0020,0037); a series must be one "
                                   "stack of parallel slices");
        }
      }
      if (slice.pixel_spacing.has_value() != first.pixel_spacing.has_value() ||
          (slice.pixel_spacing && (std::abs((*slice.pixel_spacing)[0] - (*first.pixel_spacing)[0]) > 1e-4 ||
                                   std::abs((*slice.pixel_spacing)[1] - (*first.pixel_spacing)[1]) > 1e-4))) {
        throw std::runtime_error("inconsistent pixel spacing in DICOM series in " + quoted(where) + ": " +
                                 quoted(slice.file) + " and " + quoted(first.file) +
                                 " have different PixelSpacing (0028,0030)");
      }
    }
    for (SliceHeader& slice : slices) slice.along_normal = dot(*slice.position, normal);
    std::stable_sort(slices.begin(), slices.end(),
                     [](const SliceHeader& a, const SliceHeader& b) { return a.along_normal < b.along_normal; });
  }
  const SliceHeader& bottom = slices.front();
  Geometry& g = result.geometry;
  g.size = {bottom.columns, bottom.rows, slices.size() > 1 ? slices.size() : std::size_t{bottom.frames}};
  if (bottom.pixel_spacing) {
    g.spacing[0] = (*bottom.pixel_spacing)[1];  // between columns
    g.spacing[1] = (*bottom.pixel_spacing)[0];  // between rows
  } else {
    result.warnings.push_back(quoted(bottom.file) + " has no PixelSpacing (0028,0030); using 1 mm");
  }
  if (!(g.spacing[0] > 0) || !(g.spacing[1] > 0) || !std::isfinite(g.spacing[0]) || !std::isfinite(g.spacing[1])) {
    throw std::runtime_error("cannot read DICOM file " + quoted(bottom.file) +
                             ": PixelSpacing (0028,0030) is not positive: the header is corrupt");
  }
  if (bottom.position) {
    g.origin = *bottom.position;
  } else {
    result.warnings.push_back(quoted(bottom.file) +
                              " has no ImagePositionPatient (0020,0032); origin set to (0, 0, 0)");
  }
  if (!bottom.orientation) {
    result.warnings.push_back(quoted(bottom.file) +
                              " has no ImageOrientationPatient (0020,0037); using the identity direction");
  }
  for (int r = 0; r < 3; ++r) {
    g.direction[r * 3 + 0] = row[r];
    g.direction[r * 3 + 1] = column[r];
    g.direction[r * 3 + 2] = normal[r];
  }
  if (slices.size() == 1) {
    const double thickness = bottom.spacing_between_slices.value_or(bottom.slice_thickness.value_or(1.0));
    g.spacing[2] = thickness > 0 && std::isfinite(thickness) ? thickness : 1.0;
    return result;
  }
  // No duplicate positions, uniform spacing along the normal (against the
  // median gap, so that the odd gap is the one reported), no shear (gantry
  // tilt).
  std::vector<double> gaps;
  for (std::size_t k = 1; k < slices.size(); ++k) {
    const double gap = slices[k].along_normal - slices[k - 1].along_normal;
    if (gap < 1e-4) {
      throw std::runtime_error("inconsistent DICOM series in " + quoted(where) + ": " + quoted(slices[k - 1].file) +
                               " and " + quoted(slices[k].file) + " are at the same position (" +
                               format_mm(slices[k].along_normal) +
                               " mm along the normal); the series holds several volumes (echoes, phases or "
                               "duplicates): separate them first");
    }
    gaps.push_back(gap);
  }
  std::vector<double> sorted_gaps = gaps;
  std::nth_element(sorted_gaps.begin(), sorted_gaps.begin() + std::ptrdiff_t(sorted_gaps.size() / 2),
                   sorted_gaps.end());
  const double median = sorted_gaps[sorted_gaps.size() / 2];
  const double tolerance = std::max(1e-3, 0.01 * median);
  for (std::size_t k = 1; k < slices.size(); ++k) {
    if (std::abs(gaps[k - 1] - median) > tolerance) {
      throw std::runtime_error("inconsistent slice spacing in DICOM series in " + quoted(where) + ": the gap between " +
                               quoted(slices[k - 1].file) + " and " + quoted(slices[k].file) + " is " +
                               format_mm(gaps[k - 1]) + " mm but the other slices are " + format_mm(median) +
                               " mm apart (missing or extra slices?)");
    }
  }
  const double mean = (slices.back().along_normal - slices.front().along_normal) / double(slices.size() - 1);
  std::array<double, 3> step;
  for (int n = 0; n < 3; ++n) step[n] = (*slices.back().position)[n] - (*slices.front().position)[n];
  const double along = dot(step, normal);
  const double off_axis_sq = std::max(0.0, dot(step, step) - along * along);
  if (std::sqrt(off_axis_sq) > tolerance * double(slices.size())) {
    throw std::runtime_error("cannot read DICOM series in " + quoted(where) +
                             ": the slice positions do not follow the slice normal (gantry tilt or sheared stack); "
                             "resample the series to an orthogonal grid first");
  }
  g.spacing[2] = mean;
  return result;
}

// The frames of an enhanced multi-frame image as the slices of one stack:
// sorted along the normal and checked like a series (one orientation, uniform
// spacing, no duplicate positions: several echoes, phases or b-values in one
// file are refused). `order` receives the file's frame index of each slice.
SeriesGeometry enhanced_stack(const SliceHeader& file, std::vector<std::size_t>& order) {
  check_frame_layout(file);  // refuses frames the functional groups do not describe
  if (file.frame_geometry.size() != file.frames || file.frame_geometry.empty()) {
    throw std::logic_error("enhanced_stack: frames not read");
  }
  const std::string image = "cannot read DICOM file " + quoted(file.file) + ": it is an enhanced multi-frame image (" +
                            frame_layout_name(file) + ")";
  const std::string convert = "; convert it first, e.g. to NIfTI with dcm2niix";
  std::vector<SliceHeader> frames(file.frame_geometry.size());
  for (std::size_t n = 0; n < frames.size(); ++n) {
    const FrameGeometry& f = file.frame_geometry[n];
    SliceHeader& frame = frames[n];
    frame.file = fs::path(file.file.string() + " frame " + std::to_string(n + 1));
    frame.rows = file.rows;
    frame.columns = file.columns;
    frame.position = f.position;
    frame.orientation = f.orientation;
    frame.pixel_spacing = f.pixel_spacing;
    frame.slice_thickness = f.slice_thickness;
    frame.spacing_between_slices = f.spacing_between_slices;
    frame.frame_index = n;
    const FrameGeometry& first = file.frame_geometry.front();
    // GDCM applies one rescale to the whole file.
    if (f.rescale_slope.value_or(1.0) != first.rescale_slope.value_or(1.0) ||
        f.rescale_intercept.value_or(0.0) != first.rescale_intercept.value_or(0.0)) {
      throw std::runtime_error(image + " whose frames are rescaled differently (frame " + std::to_string(n + 1) +
                               " has another RescaleSlope/RescaleIntercept than frame 1), which the io loaders do "
                               "not read" +
                               convert);
    }
  }
  SeriesGeometry layout;
  try {
    layout = sort_and_check(frames, file.file);
  } catch (const std::runtime_error& error) {
    throw std::runtime_error(image + " whose frames do not form one regular stack of slices: " + error.what() +
                             convert);
  }
  order.clear();
  for (const SliceHeader& frame : frames) order.push_back(frame.frame_index);
  return layout;
}

// Where the tiles of a Siemens MOSAIC go.
struct MosaicLayout {
  MosaicTiling tiling;
  bool reversed = false;  // the tiles run against the row x column normal
};

// Turns the geometry of a single MOSAIC file (as sort_and_check computed it
// for the whole image) into that of its unpacked slices.
MosaicLayout mosaic_layout(const SliceHeader& slice, SeriesGeometry& layout) {
  const MosaicHeader& mosaic = *slice.mosaic;
  const auto refuse = [&](const std::string& why) {
    throw std::runtime_error("cannot read Siemens MOSAIC DICOM file " + quoted(slice.file) + ": " + why);
  };
  if (!mosaic.refusal.empty()) refuse(mosaic.refusal);
  if (!slice.position || !slice.orientation || !slice.pixel_spacing) {
    refuse(
        "it lacks ImagePositionPatient (0020,0032), ImageOrientationPatient (0020,0037) or PixelSpacing "
        "(0028,0030), which place its slices");
  }
  MosaicLayout result;
  try {
    result.tiling = mosaic_tiling(slice.columns, slice.rows, mosaic.images);
  } catch (const std::runtime_error& error) {
    refuse(error.what());
  }
  const MosaicTiling& tiling = result.tiling;
  Geometry& g = layout.geometry;
  std::array<double, 3> normal{};
  for (int n = 0; n < 3; ++n) normal[n] = g.direction[n * 3 + 2];
  if (mosaic.csa_normal) {
    const auto& csa = *mosaic.csa_normal;
    const double length = std::sqrt(dot(csa, csa));
    const double along = length > 0 ? dot(csa, normal) / length : 0.0;
    if (!(std::abs(std::abs(along) - 1.0) <= 1e-4)) {
      refuse(
          "its CSA SliceNormalVector is not perpendicular to its ImageOrientationPatient (0020,0037): the header "
          "is corrupt");
    }
    result.reversed = along < 0;
  }
  // Siemens writes the ImagePositionPatient of the whole mosaic as if it were
  // one image of the slices' pixel size centred where the slices are: the
  // first tile's corner lies half the size difference further along the rows
  // and the columns.
  const double columns_shift = (double(slice.columns) - double(tiling.tile_columns)) / 2.0;
  const double rows_shift = (double(slice.rows) - double(tiling.tile_rows)) / 2.0;
  for (int n = 0; n < 3; ++n) {
    g.origin[n] +=
        g.direction[n * 3 + 0] * g.spacing[0] * columns_shift + g.direction[n * 3 + 1] * g.spacing[1] * rows_shift;
  }
  // Tile k lies k slice spacings along the CSA normal; the volume's slices run
  // along row x column, as those of a series of single slices do.
  if (result.reversed) {
    for (int n = 0; n < 3; ++n) g.origin[n] -= double(tiling.images - 1) * g.spacing[2] * normal[n];
  }
  g.size = {tiling.tile_columns, tiling.tile_rows, tiling.images};
  if (!mosaic.warning.empty()) layout.warnings.push_back(quoted(slice.file) + ": " + mosaic.warning);
  return result;
}

DicomAttributes read_attributes(const SliceHeader& first, const std::vector<SliceHeader>& slices,
                                bool keep_identifiers) {
  DcmFileFormat file;
  load_dicom(first.file, file);
  DcmDataset& data = *file.getDataset();
  DicomAttributes a;
  a.modality = get_string(data, DCM_Modality);
  a.series_description = get_string(data, DCM_SeriesDescription);
  a.series_number = get_string(data, DCM_SeriesNumber);
  a.units = get_string(data, DCM_Units);
  a.decay_correction = get_string(data, DCM_DecayCorrection);
  a.corrected_image = get_string(data, DCM_CorrectedImage);
  a.rescale_slope = get_number(data, DCM_RescaleSlope);
  a.rescale_intercept = get_number(data, DCM_RescaleIntercept);
  a.patient_weight_kg = get_number(data, DCM_PatientWeight);
  if (a.patient_weight_kg && *a.patient_weight_kg <= 0) a.patient_weight_kg.reset();
  DcmItem* radiopharmaceutical = nullptr;
  if (data.findAndGetSequenceItem(DCM_RadiopharmaceuticalInformationSequence, radiopharmaceutical, 0).good() &&
      radiopharmaceutical != nullptr) {
    a.total_dose_bq = get_number(*radiopharmaceutical, DCM_RadionuclideTotalDose);
    a.half_life_s = get_number(*radiopharmaceutical, DCM_RadionuclideHalfLife);
    if (a.total_dose_bq && *a.total_dose_bq <= 0) a.total_dose_bq.reset();
    if (a.half_life_s && *a.half_life_s <= 0) a.half_life_s.reset();
    a.injection_time = get_string(*radiopharmaceutical, DCM_RadiopharmaceuticalStartTime);
    a.injection_datetime = get_string(*radiopharmaceutical, DCM_RadiopharmaceuticalStartDateTime);
    a.radiopharmaceutical = get_string(*radiopharmaceutical, DCM_Radiopharmaceutical);
    DcmItem* code = nullptr;
    if (radiopharmaceutical->findAndGetSequenceItem(DCM_RadionuclideCodeSequence, code, 0).good() && code) {
      a.radionuclide = get_string(*code, DCM_CodeMeaning);
    }
  }
  a.series_date = get_string(data, DCM_SeriesDate);
  a.series_time = get_string(data, DCM_SeriesTime);
  // Earliest acquisition date/time over the slices (compared as DA+TM text,
  // which sorts chronologically for well-formed values).
  std::string earliest;
  for (const SliceHeader& slice : slices) {
    if (slice.acquisition_time.empty()) continue;
    const std::string stamp = slice.acquisition_date + "|" + slice.acquisition_time;
    if (earliest.empty() || stamp < earliest) {
      earliest = stamp;
      a.acquisition_date = slice.acquisition_date;
      a.acquisition_time = slice.acquisition_time;
    }
  }
  a.slice_count = slices.size();
  if (keep_identifiers) {
    const std::pair<const char*, DcmTagKey> identifiers[] = {
        {"dicom.patient_name", DCM_PatientName},
        {"dicom.patient_id", DCM_PatientID},
        {"dicom.patient_birth_date", DCM_PatientBirthDate},
        {"dicom.patient_sex", DCM_PatientSex},
        {"dicom.accession_number", DCM_AccessionNumber},
        {"dicom.study_instance_uid", DCM_StudyInstanceUID},
        {"dicom.series_instance_uid", DCM_SeriesInstanceUID},
        {"dicom.study_date", DCM_StudyDate},
        {"dicom.institution_name", DCM_InstitutionName},
        {"dicom.referring_physician_name", DCM_ReferringPhysicianName},
    };
    for (const auto& [key, tag] : identifiers) {
      const std::string value = get_string(data, tag);
      if (!value.empty()) a.identifiers[key] = value;
    }
    // What a derived series written by io.write_dicom references: the
    // series' frame of reference and its instances, in slice order.
    const std::string frame_of_reference = get_string(data, DCM_FrameOfReferenceUID);
    if (!frame_of_reference.empty()) a.identifiers["dicom.frame_of_reference_uid"] = frame_of_reference;
    const std::string character_set = get_string(data, DCM_SpecificCharacterSet);
    if (!character_set.empty()) a.identifiers["dicom.specific_character_set"] = character_set;
    if (!first.sop_class_uid.empty()) a.identifiers["dicom.sop_class_uid"] = first.sop_class_uid;
    std::string instances;
    std::string previous;
    for (const SliceHeader& slice : slices) {
      // The frames of one enhanced file are one instance.
      if (slice.sop_instance_uid.empty() || slice.sop_instance_uid == previous) continue;
      instances += (instances.empty() ? "" : "\\") + slice.sop_instance_uid;
      previous = slice.sop_instance_uid;
    }
    if (!instances.empty()) a.identifiers["dicom.sop_instance_uids"] = instances;
  }
  return a;
}

// A private temporary copy of a DICOM file, removed with this object.
class ScratchDicom {
 public:
  // DCMTK writes `file` (which it has parsed) out again as well-formed
  // DICOM: a new file meta group, the same transfer syntax and pixel data.
  // strip_rescale: the copy has no RescaleSlope/RescaleIntercept; they are
  // returned by rescale() for the caller to apply.
  explicit ScratchDicom(const fs::path& file, bool strip_rescale = false) {
    static std::atomic<unsigned long> counter{0};
    std::error_code ec;
    const fs::path shm = "/dev/shm";
    const fs::path dir = fs::is_directory(shm, ec) ? shm : fs::temp_directory_path();
    path_ = dir / ("fusionflow-dicom-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".dcm");
    // Created here, readable by this user only: the copy holds whatever
    // identifiers the original holds.
    const int descriptor = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (descriptor < 0) {
      throw std::runtime_error("cannot decode DICOM file " + quoted(file) + ": cannot create a temporary file in " +
                               quoted(dir) + ": " + std::strerror(errno));
    }
    ::close(descriptor);
    DcmFileFormat parsed;
    load_dicom(file, parsed);
    // GDCM asserts that a retired ACR-NEMA RecognitionCode (0008,0010) says
    // "ACR-NEMA" (found by fuzz_dicom); it means nothing to a DICOM 3 reader,
    // so the copy goes without it.
    parsed.getDataset()->findAndDeleteElement(DCM_RETIRED_RecognitionCode);
    if (strip_rescale) {
      DcmDataset& data = *parsed.getDataset();
      slope_ = get_number(data, DCM_RescaleSlope).value_or(1.0);
      intercept_ = get_number(data, DCM_RescaleIntercept).value_or(0.0);
      if (slope_ == 0.0) {
        fs::remove(path_, ec);
        throw std::runtime_error("cannot read DICOM file " + quoted(file) +
                                 ": its RescaleSlope (0028,1053) is 0: the header is corrupt");
      }
      data.findAndDeleteElement(DCM_RescaleSlope);
      data.findAndDeleteElement(DCM_RescaleIntercept);
    }
    const OFCondition status = parsed.saveFile(OFFilename(path_.c_str()), EXS_Unknown, EET_ExplicitLength, EGL_recalcGL,
                                               EPD_noChange, 0, 0, EWM_createNewMeta);
    if (status.bad()) {
      fs::remove(path_, ec);
      throw std::runtime_error("cannot decode DICOM file " + quoted(file) + ": " + explain(status));
    }
  }
  ~ScratchDicom() {
    std::error_code ec;
    fs::remove(path_, ec);
  }
  ScratchDicom(const ScratchDicom&) = delete;
  ScratchDicom& operator=(const ScratchDicom&) = delete;
  const fs::path& path() const { return path_; }
  float rescale(float stored) const { return static_cast<float>(double(stored) * slope_ + intercept_); }

 private:
  fs::path path_;
  double slope_ = 1.0, intercept_ = 0.0;
};

// Decodes one file's pixels (rescaled) with ITK's GDCMImageIO into `target`.
// GDCM (Debian's is built with assertions) aborts the process on some files
// that DCMTK reads and checks (found by fuzz_dicom: an invalid VR in the file
// meta group), so it never sees the user's bytes: it decodes the copy DCMTK
// writes (ScratchDicom). The cost is one more write and read of each file,
// in memory where /dev/shm exists. The rescale is applied here, in double,
// not by GDCM: ITK's GDCMImageIO asserts when a rescale moves signed values
// into an unsigned range (found by fuzz_dicom: intercept 61024).
// GDCM's decoding of DCMTK's copy of `file` (`scratch`): never of the user's bytes.
ItkFloatImage::Pointer decode_with_gdcm(const fs::path& file, const ScratchDicom& scratch) {
  auto io = itk::GDCMImageIO::New();
  auto reader = itk::ImageFileReader<ItkFloatImage>::New();
  reader->SetImageIO(io);
  reader->SetFileName(scratch.path().string());
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& error) {
    throw std::runtime_error("cannot decode the pixel data of DICOM file " + quoted(file) + ": " +
                             itk_reason(error.GetDescription()));
  }
  return reader->GetOutput();
}

void read_pixels(const fs::path& file, std::size_t columns, std::size_t rows, std::size_t frames, float* target) {
  const ScratchDicom scratch(file, true);
  const ItkFloatImage::Pointer decoded = decode_with_gdcm(file, scratch);
  const auto& image = *decoded;
  const auto size = image.GetLargestPossibleRegion().GetSize();
  if (size[0] != columns || size[1] != rows || size[2] != frames) {
    throw std::runtime_error("cannot read DICOM file " + quoted(file) + ": decoded " + std::to_string(size[0]) + "x" +
                             std::to_string(size[1]) + "x" + std::to_string(size[2]) + " pixels but the header says " +
                             std::to_string(columns) + "x" + std::to_string(rows) + "x" + std::to_string(frames));
  }
  std::transform(image.GetBufferPointer(), image.GetBufferPointer() + columns * rows * frames, target,
                 [&scratch](float stored) { return scratch.rescale(stored); });
}

}  // namespace

LoadedImage read_dicom(const LoadRequest& request, NodeContext& ctx) {
  register_itk_image_io();
  const fs::path& path = request.path;
  std::error_code ec;
  const bool directory = fs::is_directory(path, ec);
  std::vector<SliceHeader> slices;
  if (directory) {
    slices = select_series(scan_directory(path, ctx), request, ctx);
  } else {
    SliceHeader slice;
    if (!read_slice_header(path, slice)) {
      throw std::runtime_error("cannot read DICOM file " + quoted(path) + ": it holds no pixel data (not an image)");
    }
    if (!request.series_uid.empty() && slice.series_uid != request.series_uid) {
      throw std::runtime_error("DICOM file " + quoted(path) + " belongs to series '" + slice.series_uid +
                               "', not to series_uid '" + request.series_uid + "'");
    }
    slices.push_back(std::move(slice));
  }
  const std::string modality = slices.front().modality;
  if (!request.expected_modality.empty() && !modality.empty() && modality != request.expected_modality) {
    const char* loader = modality == "CT"   ? "io.load_ct"
                         : modality == "MR" ? "io.load_mri"
                         : modality == "PT" ? "io.load_pet"
                                            : "io.load_image";
    throw std::runtime_error(quoted(path) + " holds a DICOM " + modality + " series, not " + request.expected_modality +
                             "; load it with " + loader);
  }

  const bool enhanced = slices.size() == 1 && slices.front().functional_groups && slices.front().frames > 1;
  std::vector<std::size_t> frame_order;  // enhanced: file frame of each slice
  SeriesGeometry layout = enhanced ? enhanced_stack(slices.front(), frame_order) : sort_and_check(slices, path);
  std::optional<MosaicLayout> mosaic;
  if (slices.size() == 1 && slices.front().mosaic) mosaic = mosaic_layout(slices.front(), layout);
  for (const std::string& warning : layout.warnings) ctx.log(LogLevel::Warn, warning);
  Geometry& g = layout.geometry;
  std::uint64_t voxels = 1;
  for (std::size_t extent : g.size) {
    if (__builtin_mul_overflow(voxels, std::uint64_t{extent}, &voxels) || voxels > request.max_voxels) {
      throw std::runtime_error("cannot read DICOM " + quoted(path) + ": " + g.size_string() +
                               " voxels exceed the limit of " + std::to_string(request.max_voxels) +
                               " voxels (parameter max_voxels)");
    }
  }

  LoadedImage loaded;
  loaded.format = directory ? "dicom-series" : "dicom";
  loaded.dicom = read_attributes(slices.front(), slices, request.keep_identifiers);
  Volume& volume = loaded.volume;
  volume.metadata.source = path.string();
  volume.metadata.series_description = loaded.dicom->series_description;

  const std::size_t slice_voxels = g.size[0] * g.size[1];
  volume.voxels.resize(static_cast<std::size_t>(voxels));
  if (slices.size() == 1 && slices.front().frames > 1) {
    // One multi-frame file: ITK (GDCM) knows its per-frame geometry. GDCM
    // reads DCMTK's copy, as in read_pixels.
    const ScratchDicom scratch(path);
    VolumeMetadata metadata = volume.metadata;
    volume = from_itk(*decode_with_gdcm(path, scratch), std::move(metadata));
    if (volume.geometry.size != g.size) {
      throw std::runtime_error("cannot read DICOM file " + quoted(path) + ": decoded size differs from its header");
    }
    if (enhanced) {
      // GDCM keeps the file's frame order and guesses the geometry from the
      // first frames: the frames go where their own positions say.
      std::vector<float> sorted(volume.voxels.size());
      for (std::size_t k = 0; k < frame_order.size(); ++k) {
        std::copy_n(volume.voxels.begin() + std::ptrdiff_t(frame_order[k] * slice_voxels), slice_voxels,
                    sorted.begin() + std::ptrdiff_t(k * slice_voxels));
      }
      volume.voxels = std::move(sorted);
      volume.geometry = g;
    }
  } else if (mosaic) {
    const SliceHeader& file = slices.front();
    if (std::uint64_t{file.columns} * file.rows > request.max_voxels) {
      throw std::runtime_error("cannot read DICOM " + quoted(path) + ": its " + std::to_string(file.columns) + "x" +
                               std::to_string(file.rows) + " pixels exceed the limit of " +
                               std::to_string(request.max_voxels) + " voxels (parameter max_voxels)");
    }
    std::vector<float> tiles(std::size_t{file.columns} * file.rows);
    read_pixels(file.file, file.columns, file.rows, 1, tiles.data());
    unpack_mosaic(tiles.data(), mosaic->tiling, mosaic->reversed, volume.voxels.data());
    volume.geometry = g;
    ctx.log(LogLevel::Info, "Siemens MOSAIC " + quoted(path) + ": " + std::to_string(mosaic->tiling.images) +
                                " slices of " + std::to_string(g.size[0]) + "x" + std::to_string(g.size[1]) +
                                " unpacked from its " + std::to_string(file.columns) + "x" + std::to_string(file.rows) +
                                " mosaic" + (mosaic->reversed ? " (tiles in reverse slice order)" : ""));
    ctx.progress(0.9);
  } else {
    for (std::size_t k = 0; k < slices.size(); ++k) {
      ctx.throw_if_cancelled();
      read_pixels(slices[k].file, g.size[0], g.size[1], slices[k].frames, volume.voxels.data() + k * slice_voxels);
      ctx.progress(0.3 + 0.6 * double(k + 1) / double(slices.size()));
    }
    volume.geometry = g;
  }
  return loaded;
}

LoadedImage load_any(const LoadRequest& request, NodeContext& ctx) {
  const fs::path& path = request.path;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {  // a loop of links, a path through a file...
    throw std::runtime_error("cannot read " + quoted(path) + ": " + ec.message());
  }
  if (ec || !fs::exists(status)) {
    throw std::runtime_error("cannot read " + quoted(path) + ": no such file or directory");
  }
  if (fs::is_directory(status)) return read_dicom(request, ctx);
  // Before anything opens it: reading a FIFO, a terminal or a device such as
  // /dev/zero would block or never end.
  if (!fs::is_regular_file(status)) {
    throw std::runtime_error("cannot read " + quoted(path) +
                             ": not a regular file or directory (a device, FIFO or socket); give an image file or a "
                             "DICOM directory");
  }
  if (looks_like_dicom_file(path)) return read_dicom(request, ctx);
  if (!request.series_uid.empty() || !request.series_description.empty()) {
    ctx.log(LogLevel::Warn, "series_uid/series_description ignored: " + quoted(path) + " is not DICOM");
  }
  return read_image_file(request, ctx);
}

}  // namespace fusionflow::io
