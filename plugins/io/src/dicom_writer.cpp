// io.write_dicom and io.write_dicom_color: a volume (or a colour image) as a
// DICOM series, one instance per slice, written with DCMTK (dcmdata).
//
// What is written (docs/dicom-output.md has the full table):
// - SOP class: CT Image Storage for CT volumes in HU (ImageType
//   DERIVED\SECONDARY\AXIAL, RescaleType HU); Secondary Capture Image Storage
//   for everything else (fused, MR, PET, synthetic images, colour), with the
//   Image Plane and Frame of Reference attributes added so that viewers place
//   the slices in 3D (dciodvfy notes them as not part of the SC IOD, a
//   warning, not an error).
// - Grey values as signed 16-bit with one RescaleSlope/RescaleIntercept for
//   the whole series: slope 1, intercept 0 when every voxel is an integer in
//   the int16 range (exact), else the volume's range spread over -32767..32767
//   (values come back within half a slope; the node logs the figure).
// - UIDs derived from a SHA-256 of what is written and of the sources (the
//   same inputs give the same bytes): "2.25." and the hash as a UUID (ITU-T
//   X.667, the root every application may use), or the user's `uid_root`.
// - Privacy: without keep_identifiers the patient module is empty
//   (PatientName, PatientID, PatientBirthDate, PatientSex present but
//   zero-length, or the pseudonyms patient_name/patient_id if given),
//   PatientIdentityRemoved YES, DeidentificationMethod says what was done,
//   no dates, times, institution, physician or accession number, and every
//   UID new (Study, Series, SOP Instance, Frame of Reference), as the Basic
//   Application Confidentiality Profile of DICOM PS3.15 asks. With
//   keep_identifiers (and sources loaded with keep_identifiers), the patient
//   module and Study Instance UID come from the sources, the Frame of
//   Reference UID from the reference (the first source) and a Referenced
//   Series Sequence names each source series and its instances.
// - The series appears complete or not at all: it is written into a hidden
//   folder beside `path` and renamed to `path`.
#include "io_internal.hpp"

#include <fusionflow/file_activity.hpp>
#include <fusionflow/sha256.hpp>
#include <fusionflow/version.hpp>

#include <dcmtk/config/osconfig.h>  // first DCMTK include
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace fusionflow::io {
namespace {
namespace fs = std::filesystem;

constexpr InputPort<Volume> kVolumeIn{"volume"};
constexpr InputPort<ColorVolume> kImageIn{"image"};
constexpr InputPort<Volume> kSourcesIn{"sources"};

constexpr const char* kInstancePrefix = "slice-";
constexpr std::size_t kMaxUidLength = 64;

// ---------------------------------------------------------------------------
// Text in DICOM value representations

// A decimal string (DS: at most 16 characters) holding `value` as precisely
// as fits.
std::string decimal_string(double value) {
  if (value == 0.0) return "0";
  char text[32];
  for (int digits = 16; digits > 0; --digits) {
    std::snprintf(text, sizeof text, "%.*g", digits, value);
    if (std::strlen(text) <= 16) return text;
  }
  throw std::logic_error("no decimal string for a value");
}

double parsed(const std::string& text) { return std::strtod(text.c_str(), nullptr); }

std::string decimal_list(std::initializer_list<double> values) {
  std::string text;
  for (double value : values) text += (text.empty() ? "" : "\\") + decimal_string(value);
  return text;
}

// A UID from a SHA-256 digest (hex): under `root`, or, with no root, "2.25."
// and the first 128 bits as a UUID (version 8, RFC 9562), in decimal.
std::string uid_from_digest(const std::string& hex, const std::string& root) {
  unsigned char bytes[16];
  for (int n = 0; n < 16; ++n) bytes[n] = static_cast<unsigned char>(std::stoi(hex.substr(2 * n, 2), nullptr, 16));
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x80);  // version 8
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3f) | 0x80);  // variant 10
  // The 128-bit number in decimal, by long division of the bytes.
  std::string digits;
  std::vector<unsigned> number(bytes, bytes + 16);
  while (std::any_of(number.begin(), number.end(), [](unsigned b) { return b != 0; })) {
    unsigned remainder = 0;
    for (unsigned& byte : number) {
      const unsigned current = remainder * 256 + byte;
      byte = current / 10;
      remainder = current % 10;
    }
    digits.insert(digits.begin(), static_cast<char>('0' + remainder));
  }
  if (digits.empty()) digits = "0";
  const std::string prefix = (root.empty() ? std::string("2.25") : root) + ".";
  // Under a user's root the number is cut to fit 64 characters (its first
  // digit is never 0, so the component stays valid).
  return prefix + digits.substr(0, kMaxUidLength - prefix.size());
}

void check_uid_root(const std::string& root) {
  if (root.empty()) return;
  bool valid = root.size() <= 40 && root.front() != '.' && root.back() != '.';
  for (std::size_t n = 0; valid && n < root.size(); ++n) {
    const char c = root[n];
    if (c == '.') {
      valid = root[n + 1] != '.';
    } else if (c < '0' || c > '9') {
      valid = false;
    } else if (c == '0' && (n == 0 || root[n - 1] == '.') && n + 1 < root.size() && root[n + 1] != '.') {
      valid = false;  // a component with a leading zero
    }
  }
  if (!valid) {
    throw std::invalid_argument("parameter uid_root '" + root +
                                "' is not a DICOM UID root: digits and dots, no empty component, no leading zero, at "
                                "most 40 characters (so that the UIDs under it fit 64); leave it empty to use 2.25 "
                                "(UUID-derived UIDs)");
  }
}

// A LO/SH/PN value cut to its VR's length, on a character boundary of UTF-8.
std::string cut(std::string text, std::size_t length) {
  if (text.size() <= length) return text;
  std::size_t end = length;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80) --end;
  return text.substr(0, end);
}

// Patient Orientation letters of a direction (LPS): the axes it runs along,
// largest component first, as General Image (0020,0020) writes them.
std::string orientation_letters(const std::array<double, 3>& v) {
  const char* positive = "LPH";
  const char* negative = "RAF";
  std::array<int, 3> order{0, 1, 2};
  std::sort(order.begin(), order.end(), [&](int a, int b) { return std::fabs(v[a]) > std::fabs(v[b]); });
  std::string letters;
  for (int axis : order) {
    if (std::fabs(v[axis]) > 1e-4) letters += v[axis] > 0 ? positive[axis] : negative[axis];
  }
  return letters;
}

// ---------------------------------------------------------------------------
// What the series is and what it comes from

// The identity of a source: its UIDs when they were kept, else its content.
struct SourceIdentity {
  const Volume* volume = nullptr;
  std::string fingerprint;  // SHA-256 over the identity
};

void hash_geometry(Sha256& hash, const Geometry& g) {
  hash.update(g.size.data(), sizeof g.size);
  hash.update(g.spacing.data(), sizeof g.spacing);
  hash.update(g.origin.data(), sizeof g.origin);
  hash.update(g.direction.data(), sizeof g.direction);
}

void hash_text(Sha256& hash, const std::string& text) {
  const std::uint64_t size = text.size();
  hash.update(&size, sizeof size);
  hash.update(text.data(), text.size());
}

std::string extra_value(const Volume& volume, const std::string& key) {
  const auto found = volume.metadata.extra.find(key);
  return found == volume.metadata.extra.end() ? std::string() : found->second;
}

std::string fingerprint(const Volume& volume) {
  Sha256 hash;
  const std::string series = extra_value(volume, "dicom.series_instance_uid");
  if (!series.empty()) {
    hash_text(hash, "series " + series);
  } else {
    hash_text(hash, "content " + volume.metadata.modality);
    hash_geometry(hash, volume.geometry);
    hash.update(volume.voxels.data(), volume.voxels.size() * sizeof(float));
  }
  return hash.hex_digest();
}

// The patient and study module of the sources (keep_identifiers).
struct KeptIdentity {
  std::map<std::string, std::string> values;  // "dicom.patient_name" -> value, ...
  bool any = false;
};

constexpr const char* kPatientKeys[] = {"dicom.patient_name", "dicom.patient_id", "dicom.patient_birth_date",
                                        "dicom.patient_sex"};

KeptIdentity kept_identity(const std::vector<const Volume*>& carriers) {
  KeptIdentity kept;
  const Volume* owner = nullptr;
  for (const Volume* volume : carriers) {
    if (extra_value(*volume, "dicom.study_instance_uid").empty() && extra_value(*volume, "dicom.patient_id").empty()) {
      continue;
    }
    if (owner == nullptr) {
      owner = volume;
      for (const char* key : {"dicom.patient_name", "dicom.patient_id", "dicom.patient_birth_date", "dicom.patient_sex",
                              "dicom.study_instance_uid", "dicom.study_date", "dicom.accession_number",
                              "dicom.referring_physician_name", "dicom.specific_character_set"}) {
        kept.values[key] = extra_value(*volume, key);
      }
      kept.any = true;
      continue;
    }
    // Never one series for two patients.
    for (const char* key : {"dicom.patient_id", "dicom.study_instance_uid"}) {
      const std::string mine = extra_value(*volume, key);
      if (!mine.empty() && !kept.values[key].empty() && mine != kept.values[key]) {
        throw std::invalid_argument(std::string("cannot keep identifiers: the sources '") + owner->metadata.source +
                                    "' and '" + volume->metadata.source + "' have different " +
                                    (std::strcmp(key, "dicom.patient_id") == 0 ? "PatientID" : "StudyInstanceUID") +
                                    " values; a derived series belongs to one patient and study (set "
                                    "keep_identifiers=false, or give sources of one study)");
      }
    }
  }
  return kept;
}

// ---------------------------------------------------------------------------
// Grey values as int16 with one rescale

struct Rescale {
  double slope = 1.0, intercept = 0.0;
  std::string slope_text = "1", intercept_text = "0";
  bool exact = true;
  std::size_t nonfinite = 0;
  double min = 0.0, max = 0.0;
};

Rescale choose_rescale(const VoxelBuffer& voxels) {
  Rescale r;
  bool first = true, integral = true;
  for (float value : voxels) {
    if (!std::isfinite(value)) {
      ++r.nonfinite;
      continue;
    }
    if (value != std::nearbyint(value)) integral = false;
    if (first || value < r.min) r.min = value;
    if (first || value > r.max) r.max = value;
    first = false;
  }
  if (integral && r.min >= -32768.0 && r.max <= 32767.0) return r;
  r.exact = false;
  // The range over -32767..32767; the slope as written (DS) is the one used.
  const double span = r.max - r.min;
  r.slope_text = decimal_string(span > 0 ? span / 65534.0 : 1.0);
  r.slope = parsed(r.slope_text);
  r.intercept_text = decimal_string(r.min + 32767.0 * r.slope);
  r.intercept = parsed(r.intercept_text);
  return r;
}

std::int16_t stored_value(float value, const Rescale& r) {
  if (!std::isfinite(value)) return 0;
  const double stored = std::nearbyint((double(value) - r.intercept) / r.slope);
  return static_cast<std::int16_t>(std::clamp(stored, -32768.0, 32767.0));
}

// ---------------------------------------------------------------------------
// Writing

void check(const OFCondition& status, const std::string& what) {
  if (status.bad()) throw std::runtime_error("cannot write DICOM: " + what + ": " + status.text());
}

void put(DcmItem& item, const DcmTagKey& tag, const std::string& value) {
  check(item.putAndInsertString(tag, value.c_str()), "element " + std::string(DcmTag(tag).getTagName()));
}

void put_u16(DcmItem& item, const DcmTagKey& tag, Uint16 value) {
  check(item.putAndInsertUint16(tag, value), "element " + std::string(DcmTag(tag).getTagName()));
}

// What every instance of the series shares.
struct SeriesPlan {
  bool ct = false;  // CT Image Storage (else Secondary Capture)
  bool color = false;
  std::string modality;
  std::string study_uid, series_uid, frame_of_reference_uid;
  std::string series_description, derivation, series_number;
  std::string uid_root;
  std::string series_digest;  // hex, for the instance UIDs
  KeptIdentity kept;
  bool keep = false;
  std::string patient_name, patient_id;
  std::string window_center, window_width;
  std::string pet_units;  // BQML or GML for PT volumes in Bq/mL or SUVbw
  Rescale rescale;
  // The source series (keep_identifiers): each slice names, in its Source
  // Image Sequence, the source instance nearest its centre (the same slice
  // for a source on the result's grid, such as the reference CT); the
  // Referenced Series Sequence lists the instances so named.
  struct Reference {
    std::string series_uid, sop_class_uid;
    std::vector<std::string> instances;   // the source's, in slice order
    std::vector<std::size_t> per_slice;   // result slice k -> index into instances
    std::vector<std::size_t> referenced;  // sorted, unique
  };
  std::vector<Reference> references;
};

// The source slice nearest the centre of each result slice.
std::vector<std::size_t> nearest_source_slices(const Geometry& result, const Geometry& source, std::size_t count) {
  std::vector<std::size_t> nearest(result.size[2]);
  for (std::size_t k = 0; k < result.size[2]; ++k) {
    const auto centre =
        result.index_to_point({0.5 * double(result.size[0] - 1), 0.5 * double(result.size[1] - 1), double(k)});
    const double along = std::nearbyint(source.point_to_index(centre)[2]);
    nearest[k] = static_cast<std::size_t>(std::clamp(along, 0.0, double(count - 1)));
  }
  return nearest;
}

void fill_common(DcmDataset& data, const SeriesPlan& plan, const Geometry& g, std::size_t k, std::size_t instances) {
  const std::string sop_class = plan.ct ? UID_CTImageStorage : UID_SecondaryCaptureImageStorage;
  Sha256 instance_hash;
  hash_text(instance_hash, plan.series_digest + " instance " + std::to_string(k));
  const std::string sop_instance = uid_from_digest(instance_hash.hex_digest(), plan.uid_root);

  // SOP Common
  const std::string charset = plan.keep ? plan.kept.values.at("dicom.specific_character_set") : "";
  if (!charset.empty()) put(data, DCM_SpecificCharacterSet, charset);
  put(data, DCM_SOPClassUID, sop_class);
  put(data, DCM_SOPInstanceUID, sop_instance);
  // Patient
  auto kept = [&](const char* key) { return plan.keep ? plan.kept.values.at(key) : std::string(); };
  put(data, DCM_PatientName, plan.keep ? kept("dicom.patient_name") : plan.patient_name);
  put(data, DCM_PatientID, plan.keep ? kept("dicom.patient_id") : plan.patient_id);
  put(data, DCM_PatientBirthDate, kept("dicom.patient_birth_date"));
  put(data, DCM_PatientSex, kept("dicom.patient_sex"));
  if (!plan.keep) {
    put(data, DCM_PatientIdentityRemoved, "YES");
    // LO: 64 characters at most.
    put(data, DCM_DeidentificationMethod, "fusionflow: patient module and dates removed, new UIDs");
  }
  // General Study
  put(data, DCM_StudyInstanceUID, plan.study_uid);
  put(data, DCM_StudyDate, kept("dicom.study_date"));
  put(data, DCM_StudyTime, "");
  put(data, DCM_ReferringPhysicianName, kept("dicom.referring_physician_name"));
  put(data, DCM_StudyID, "");
  put(data, DCM_AccessionNumber, kept("dicom.accession_number"));
  // General Series
  put(data, DCM_Modality, plan.modality);
  put(data, DCM_SeriesInstanceUID, plan.series_uid);
  put(data, DCM_SeriesNumber, plan.series_number);
  put(data, DCM_SeriesDescription, plan.series_description);
  // Type 2C: a paired body part needs it; present and empty says unknown.
  put(data, DCM_Laterality, "");
  if (plan.ct) put(data, DCM_PatientPosition, "");
  // Frame of Reference
  put(data, DCM_FrameOfReferenceUID, plan.frame_of_reference_uid);
  put(data, DCM_PositionReferenceIndicator, "");
  // General Equipment
  put(data, DCM_Manufacturer, "fusionflow");
  put(data, DCM_SoftwareVersions, version_string());
  if (!plan.ct) put(data, DCM_ConversionType, "WSD");  // SC Equipment: made on a workstation
  // General Image
  put(data, DCM_InstanceNumber, std::to_string(k + 1));
  put(data, DCM_ImageType, plan.ct ? "DERIVED\\SECONDARY\\AXIAL" : "DERIVED\\SECONDARY");
  put(data, DCM_DerivationDescription, plan.derivation);
  for (const SeriesPlan::Reference& reference : plan.references) {
    // General Image: the source image of this slice.
    DcmItem* source = nullptr;
    check(data.findOrCreateSequenceItem(DCM_SourceImageSequence, source, -2), "SourceImageSequence");
    put(*source, DCM_ReferencedSOPClassUID, reference.sop_class_uid);
    put(*source, DCM_ReferencedSOPInstanceUID, reference.instances[reference.per_slice[k]]);
    // Common Instance Reference: the series of the instances referenced.
    DcmItem* series = nullptr;
    check(data.findOrCreateSequenceItem(DCM_ReferencedSeriesSequence, series, -2), "ReferencedSeriesSequence");
    put(*series, DCM_SeriesInstanceUID, reference.series_uid);
    for (std::size_t index : reference.referenced) {
      DcmItem* item = nullptr;
      check(series->findOrCreateSequenceItem(DCM_ReferencedInstanceSequence, item, -2), "ReferencedInstanceSequence");
      put(*item, DCM_ReferencedSOPClassUID, reference.sop_class_uid);
      put(*item, DCM_ReferencedSOPInstanceUID, reference.instances[index]);
    }
  }
  // Image Plane
  const std::array<double, 3> row{g.direction[0], g.direction[3], g.direction[6]};
  const std::array<double, 3> column{g.direction[1], g.direction[4], g.direction[7]};
  const std::array<double, 3> position = g.index_to_point({0.0, 0.0, double(k)});
  if (!plan.ct) put(data, DCM_PatientOrientation, orientation_letters(row) + "\\" + orientation_letters(column));
  put(data, DCM_ImagePositionPatient, decimal_list({position[0], position[1], position[2]}));
  put(data, DCM_ImageOrientationPatient, decimal_list({row[0], row[1], row[2], column[0], column[1], column[2]}));
  put(data, DCM_PixelSpacing, decimal_list({g.spacing[1], g.spacing[0]}));  // between rows, between columns
  put(data, DCM_SliceThickness, decimal_string(g.spacing[2]));
  if (instances > 1) put(data, DCM_SpacingBetweenSlices, decimal_string(g.spacing[2]));
  // Image Pixel (the pixel data is the caller's)
  put_u16(data, DCM_Rows, static_cast<Uint16>(g.size[1]));
  put_u16(data, DCM_Columns, static_cast<Uint16>(g.size[0]));
}

void fill_grey(DcmDataset& data, const SeriesPlan& plan, const Volume& volume, std::size_t k) {
  put_u16(data, DCM_SamplesPerPixel, 1);
  put(data, DCM_PhotometricInterpretation, "MONOCHROME2");
  put_u16(data, DCM_BitsAllocated, 16);
  put_u16(data, DCM_BitsStored, 16);
  put_u16(data, DCM_HighBit, 15);
  put_u16(data, DCM_PixelRepresentation, 1);
  put(data, DCM_RescaleIntercept, plan.rescale.intercept_text);
  put(data, DCM_RescaleSlope, plan.rescale.slope_text);
  put(data, DCM_RescaleType, plan.ct ? "HU" : "US");  // US: unspecified
  // LINEAR_EXACT: the window maps exactly [centre - width/2, centre + width/2]
  // and may be narrower than 1 (values in [0, 1]).
  put(data, DCM_VOILUTFunction, "LINEAR_EXACT");
  put(data, DCM_WindowCenter, plan.window_center);
  put(data, DCM_WindowWidth, plan.window_width);
  // PET values keep their units (PET Series (0054,1001), an extension of
  // the SC IOD), so that io.load_pet reads them back as they were.
  if (!plan.pet_units.empty()) put(data, DCM_Units, plan.pet_units);
  if (plan.ct) {
    put(data, DCM_KVP, "");
    put(data, DCM_AcquisitionNumber, "");
  }
  const Geometry& g = volume.geometry;
  const std::size_t plane = g.size[0] * g.size[1];
  std::vector<Uint16> pixels(plane);
  const float* slice = volume.voxels.data() + k * plane;
  for (std::size_t n = 0; n < plane; ++n) pixels[n] = static_cast<Uint16>(stored_value(slice[n], plan.rescale));
  check(data.putAndInsertUint16Array(DCM_PixelData, pixels.data(), static_cast<unsigned long>(plane)), "pixel data");
}

void fill_color(DcmDataset& data, const ColorVolume& image, std::size_t k) {
  put_u16(data, DCM_SamplesPerPixel, 3);
  put(data, DCM_PhotometricInterpretation, "RGB");
  put_u16(data, DCM_PlanarConfiguration, 0);  // R1 G1 B1 R2 ...
  put_u16(data, DCM_BitsAllocated, 8);
  put_u16(data, DCM_BitsStored, 8);
  put_u16(data, DCM_HighBit, 7);
  put_u16(data, DCM_PixelRepresentation, 0);
  const Geometry& g = image.geometry;
  const std::size_t plane = g.size[0] * g.size[1];
  std::vector<Uint8> pixels(3 * plane);
  const double scale = 255.0 / image.max_value;
  for (std::size_t n = 0; n < plane; ++n) {
    for (int c = 0; c < 3; ++c) {
      const float value = image.rgb[c][k * plane + n];
      const double level = std::isfinite(value) ? std::nearbyint(double(value) * scale) : 0.0;
      pixels[3 * n + c] = static_cast<Uint8>(std::clamp(level, 0.0, 255.0));
    }
  }
  check(data.putAndInsertUint8Array(DCM_PixelData, pixels.data(), static_cast<unsigned long>(pixels.size())),
        "pixel data");
}

// A folder io.write_dicom may replace: it holds only its instances.
bool holds_only_instances(const fs::path& folder) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file(ec) || name.rfind(kInstancePrefix, 0) != 0 || !ends_with(name, ".dcm")) return false;
  }
  return !ec;
}

// The series goes into a hidden folder beside `target`, then is renamed to it.
class SeriesFolder {
 public:
  explicit SeriesFolder(fs::path target) : target_(std::move(target)) {
    static std::atomic<unsigned long> counter{0};
    std::error_code ec;
    if (fs::exists(target_, ec) && !fs::is_directory(target_, ec)) {
      throw std::invalid_argument("cannot write the DICOM series to '" + target_.string() +
                                  "': it is a file; io.write_dicom takes the folder of the series as its path");
    }
    if (fs::is_directory(target_, ec) && !holds_only_instances(target_)) {
      throw std::invalid_argument("cannot write the DICOM series to '" + target_.string() +
                                  "': the folder holds other files than an earlier series of io.write_dicom (" +
                                  kInstancePrefix + "*.dcm); choose a new or empty folder");
    }
    const fs::path parent = target_.parent_path().empty() ? fs::path(".") : target_.parent_path();
    fs::create_directories(parent, ec);
    if (ec) {
      throw std::runtime_error("cannot create the folder '" + parent.string() +
                               "' for the DICOM series: " + ec.message());
    }
    temp_ = parent / (".fftmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
                      target_.filename().string());
    fs::create_directory(temp_, ec);
    if (ec) throw std::runtime_error("cannot create the folder '" + temp_.string() + "': " + ec.message());
  }
  ~SeriesFolder() {
    std::error_code ec;
    if (!committed_) fs::remove_all(temp_, ec);
  }
  SeriesFolder(const SeriesFolder&) = delete;
  SeriesFolder& operator=(const SeriesFolder&) = delete;

  const fs::path& temp() const { return temp_; }

  // Puts the series under its name; an earlier series there goes first.
  void commit() {
    std::error_code ec;
    fs::path old;
    if (fs::exists(target_, ec)) {
      old = temp_;
      old += ".old";
      fs::rename(target_, old, ec);
      if (ec) throw std::runtime_error("cannot replace '" + target_.string() + "': " + ec.message());
    }
    fs::rename(temp_, target_, ec);
    if (ec) {
      std::error_code ignored;
      if (!old.empty()) fs::rename(old, target_, ignored);  // the earlier series stays
      throw std::runtime_error("cannot rename '" + temp_.string() + "' to '" + target_.string() + "': " + ec.message());
    }
    committed_ = true;
    if (!old.empty()) fs::remove_all(old, ec);
  }

 private:
  fs::path target_;
  fs::path temp_;
  bool committed_ = false;
};

std::string instance_name(std::size_t k, std::size_t count) {
  const std::size_t width = std::max<std::size_t>(4, std::to_string(count).size());
  std::string number = std::to_string(k + 1);
  return kInstancePrefix + std::string(width - number.size(), '0') + number + ".dcm";
}

void check_writable(const Geometry& g, const std::string& source, const fs::path& path,
                    const std::vector<const Volume*>& sources) {
  if (g.size[0] > 65535 || g.size[1] > 65535) {
    throw std::invalid_argument("cannot write '" + path.string() + "' as DICOM: slices of " + g.size_string() +
                                " voxels exceed the 65535 rows or columns DICOM allows");
  }
  if (g.voxel_count() == 0) throw std::invalid_argument("cannot write '" + path.string() + "': the volume is empty");
  std::error_code ec;
  auto inside_target = [&](const std::string& file) {
    if (file.empty()) return false;
    const fs::path a = fs::weakly_canonical(fs::absolute(file, ec), ec);
    const fs::path b = fs::weakly_canonical(fs::absolute(path, ec), ec);
    return !a.empty() && !b.empty() && (a == b || a.parent_path() == b);
  };
  std::vector<std::string> files{source};
  for (const Volume* volume : sources) files.push_back(volume->metadata.source);
  for (const std::string& file : files) {
    if (inside_target(file)) {
      throw std::invalid_argument("refusing to write the DICOM series to '" + path.string() + "': it holds '" + file +
                                  "', which this result was read from; choose another folder");
    }
  }
}

// The plan of a series: UIDs, identity, description.
SeriesPlan plan_series(const Volume* volume, const ColorVolume* image, const std::vector<const Volume*>& sources,
                       const WriteDicomOptions& options, NodeContext& ctx) {
  SeriesPlan plan;
  const VolumeMetadata& metadata = volume ? volume->metadata : image->metadata;
  const Geometry& geometry = volume ? volume->geometry : image->geometry;
  plan.color = image != nullptr;
  plan.uid_root = options.uid_root;
  std::string modality = options.modality.empty() ? metadata.modality : options.modality;
  if (modality == "FUSED" || modality.empty() || modality == "LABELS") modality = "OT";
  plan.ct = !plan.color && modality == "CT" && metadata.units == "HU";
  plan.modality = cut(modality, 16);
  if (plan.modality == "PT" && metadata.units == "Bq/mL") plan.pet_units = "BQML";
  if (plan.modality == "PT" && metadata.units == "SUVbw") plan.pet_units = "GML";
  plan.series_number = options.series_number >= 0 ? std::to_string(options.series_number) : "";
  plan.patient_name = cut(options.patient_name, 64);
  plan.patient_id = cut(options.patient_id, 64);

  std::string description = options.series_description;
  if (description.empty()) {
    description = "fusionflow " + (metadata.series_description.empty()
                                       ? metadata.modality + (metadata.quantity.empty() ? "" : " " + metadata.quantity)
                                       : metadata.series_description);
  }
  if (description.size() > 64) ctx.log(LogLevel::Warn, "SeriesDescription cut to 64 characters: '" + description + "'");
  plan.series_description = cut(description, 64);
  std::string derivation = std::string("fusionflow ") + version_string() + ": " +
                           (metadata.quantity.empty() ? metadata.modality : metadata.quantity);
  if (!sources.empty()) {
    derivation += "; from";
    for (std::size_t n = 0; n < sources.size(); ++n) {
      const VolumeMetadata& m = sources[n]->metadata;
      derivation += std::string(n ? "," : "") + " " + m.modality +
                    (m.series_description.empty() ? "" : " '" + m.series_description + "'");
    }
    derivation += " (reference " + sources[0]->metadata.modality + ")";
  }
  plan.derivation = cut(derivation, 1024);

  // Identity kept only when asked, and only what the sources carry.
  std::vector<const Volume*> carriers = sources;
  if (volume) carriers.insert(carriers.begin(), volume);
  plan.keep = options.keep_identifiers;
  if (plan.keep) {
    plan.kept = kept_identity(carriers);
    if (!plan.kept.any) {
      ctx.log(LogLevel::Warn,
              "keep_identifiers is set, but neither the volume nor its sources carry DICOM identifiers (set "
              "keep_identifiers on their loaders); the series is de-identified");
      plan.keep = false;
    }
  }

  // UIDs: derived from what the series is made of, so the same inputs give
  // the same series, and two results of one run share study and frame.
  std::vector<std::string> source_prints;
  for (const Volume* source : sources) source_prints.push_back(fingerprint(*source));
  Sha256 series;
  hash_text(series, "fusionflow series");
  hash_geometry(series, geometry);
  if (volume) {
    series.update(volume->voxels.data(), volume->voxels.size() * sizeof(float));
  } else {
    for (const auto& channel : image->rgb) series.update(channel.data(), channel.size() * sizeof(float));
  }
  for (const std::string& text : {plan.modality, plan.series_description, plan.series_number, plan.uid_root,
                                  plan.patient_name, plan.patient_id, std::string(plan.keep ? "kept" : "removed")}) {
    hash_text(series, text);
  }
  for (const std::string& print : source_prints) hash_text(series, print);
  plan.series_digest = series.hex_digest();
  plan.series_uid = uid_from_digest(plan.series_digest, plan.uid_root);

  const std::string own_print = volume ? fingerprint(*volume) : plan.series_digest;
  if (plan.keep && !plan.kept.values.at("dicom.study_instance_uid").empty()) {
    plan.study_uid = plan.kept.values.at("dicom.study_instance_uid");
  } else {
    Sha256 study;
    hash_text(study, "fusionflow study");
    std::vector<std::string> prints = source_prints.empty() ? std::vector<std::string>{own_print} : source_prints;
    std::sort(prints.begin(), prints.end());
    for (const std::string& print : prints) hash_text(study, print);
    // Two pseudonymous patients with the same images are two studies.
    hash_text(study, plan.patient_name);
    hash_text(study, plan.patient_id);
    hash_text(study, plan.uid_root);
    plan.study_uid = uid_from_digest(study.hex_digest(), plan.uid_root);
  }
  const Volume* reference = !sources.empty() ? sources[0] : volume;
  const std::string kept_frame =
      plan.keep && reference ? extra_value(*reference, "dicom.frame_of_reference_uid") : std::string();
  if (!kept_frame.empty()) {
    plan.frame_of_reference_uid = kept_frame;
  } else {
    Sha256 frame;
    hash_text(frame, "fusionflow frame of reference");
    hash_text(frame, reference ? fingerprint(*reference) : own_print);
    hash_text(frame, plan.uid_root);
    plan.frame_of_reference_uid = uid_from_digest(frame.hex_digest(), plan.uid_root);
  }
  if (plan.keep) {
    for (const Volume* source : sources) {
      SeriesPlan::Reference reference_series;
      reference_series.series_uid = extra_value(*source, "dicom.series_instance_uid");
      reference_series.sop_class_uid = extra_value(*source, "dicom.sop_class_uid");
      const std::string instances = extra_value(*source, "dicom.sop_instance_uids");
      for (std::size_t start = 0; !instances.empty() && start <= instances.size();) {
        const std::size_t end = std::min(instances.find('\\', start), instances.size());
        reference_series.instances.push_back(instances.substr(start, end - start));
        start = end + 1;
      }
      if (reference_series.series_uid.empty() || reference_series.sop_class_uid.empty() ||
          reference_series.instances.size() != source->geometry.size[2]) {
        continue;  // not a series of single-slice instances fusionflow read
      }
      reference_series.per_slice = nearest_source_slices(geometry, source->geometry, reference_series.instances.size());
      reference_series.referenced = reference_series.per_slice;
      std::sort(reference_series.referenced.begin(), reference_series.referenced.end());
      reference_series.referenced.erase(
          std::unique(reference_series.referenced.begin(), reference_series.referenced.end()),
          reference_series.referenced.end());
      plan.references.push_back(std::move(reference_series));
    }
  }
  return plan;
}

void write_series(const fs::path& path, const SeriesPlan& plan, const Geometry& g,
                  const std::function<void(DcmDataset&, std::size_t)>& fill_pixels, NodeContext& ctx) {
  if (!dcmDataDict.isDictionaryLoaded()) {
    throw std::runtime_error(
        "cannot write DICOM: DCMTK's data dictionary is not loaded (install libdcmtk17 or set "
        "DCMDICTPATH)");
  }
  SeriesFolder folder(path);
  const std::size_t count = g.size[2];
  std::vector<fs::path> names;
  for (std::size_t k = 0; k < count; ++k) {
    ctx.throw_if_cancelled();
    DcmFileFormat file;
    DcmDataset& data = *file.getDataset();
    fill_common(data, plan, g, k, count);
    fill_pixels(data, k);
    const fs::path name = folder.temp() / instance_name(k, count);
    const OFCondition status = file.saveFile(OFFilename(name.c_str()), EXS_LittleEndianExplicit, EET_ExplicitLength,
                                             EGL_recalcGL, EPD_noChange, 0, 0, EWM_createNewMeta);
    if (status.bad()) {
      throw std::runtime_error("cannot write '" + name.string() + "': " + status.text() +
                               " (is the disk full or the folder read-only?)");
    }
    names.push_back(path / name.filename());
    ctx.progress(0.95 * double(k + 1) / double(count));
  }
  folder.commit();
  // The node cache keeps the instances as files inside `path`.
  for (const fs::path& name : names) detail::note_file_written(fs::absolute(name));
}

// The `sources` inputs (the context keeps them alive for the run).
std::vector<const Volume*> source_volumes(NodeContext& ctx) {
  std::vector<const Volume*> sources;
  for (const auto& source : ctx.inputs(kSourcesIn)) sources.push_back(source.get());
  return sources;
}

}  // namespace

template <class Options>
NodeType<Options> write_dicom_node_type(const std::string& type, const std::string& description, bool store,
                                        bool color) {
  NodeType<Options> node(type, "1.0.0", description);
  if (color) {
    node.input(kImageIn, "the colour image (values in [0, max_value], written as 8 bits)");
  } else {
    node.input(kVolumeIn, "the volume to write (fused, registered, synthetic CT, ...)");
  }
  node.multi_input(kSourcesIn,
                   "the volumes the result was derived from, the reference (whose grid and Frame of Reference the "
                   "result shares) first: they give the study and frame of reference, name the source series in "
                   "DerivationDescription and, with keep_identifiers, in the Source Image and Referenced Series "
                   "sequences",
                   true);
  if (store) {
    node.optional_output_path(&WriteDicomOptions::path, "path",
                              "also keep the series sent in this folder (default: none; written in a private "
                              "temporary folder)");
  } else {
    node.output_path(&WriteDicomOptions::path, "path",
                     "the folder of the series (created; an earlier io.write_dicom series there is replaced, a "
                     "folder holding anything else is refused)");
  }
  node.param(&WriteDicomOptions::series_description, "series_description",
             "SeriesDescription (at most 64 characters; default: 'fusionflow ' and what the volume holds)")
      .param(&WriteDicomOptions::series_number, "series_number", Limits::range(-1, 2147483647),
             "SeriesNumber (-1: empty)")
      .param(&WriteDicomOptions::modality, "modality",
             "Modality (0008,0060) to write (default: the volume's; FUSED and unknown become OT)")
      .param(&WriteDicomOptions::keep_identifiers, "keep_identifiers",
             "copy the patient module, Study Instance UID and Frame of Reference UID from the sources (which must "
             "have been loaded with keep_identifiers) and reference the source series; off: de-identified (empty "
             "patient module, no dates, new UIDs)")
      .param(&WriteDicomOptions::patient_name, "patient_name",
             "de-identified series: a pseudonym for PatientName (default: empty)")
      .param(&WriteDicomOptions::patient_id, "patient_id",
             "de-identified series: a pseudonym for PatientID, e.g. the subject label of a cohort (default: empty)")
      .param(&WriteDicomOptions::uid_root, "uid_root",
             "your organisation's UID root for the new UIDs (default: 2.25, UUID-derived UIDs); every UID is derived "
             "from a SHA-256 of the result and its sources, so the same inputs give the same series")
      .confidential("patient_name")
      .confidential("patient_id");
  return node;
}

template NodeType<PacsStoreOptions> write_dicom_node_type<PacsStoreOptions>(const std::string&, const std::string&,
                                                                            bool, bool);

NodeType<WriteDicomOptions> write_dicom_node(bool color) {
  return write_dicom_node_type<WriteDicomOptions>(
      color ? "io.write_dicom_color" : "io.write_dicom",
      color ? "Writes a colour image (e.g. 2D colour fusion) as a DICOM Secondary Capture series, 8-bit RGB, one "
              "instance per slice, with its geometry; de-identified unless keep_identifiers; atomically"
            : "Writes a volume as a DICOM series, one instance per slice: CT Image Storage for CT in HU, else "
              "Secondary Capture with its geometry (Image Position/Orientation, Pixel Spacing, Slice Thickness); "
              "16-bit values with one rescale for the series (exact for integers in int16, else within half a slope, "
              "logged); ImageType DERIVED\\SECONDARY; de-identified unless keep_identifiers; atomically",
      false, color);
}

void run_write_dicom(NodeContext& ctx, const WriteDicomOptions& options) {
  check_uid_root(options.uid_root);
  const Volume& volume = ctx.input(kVolumeIn);
  const std::vector<const Volume*> sources = source_volumes(ctx);
  const Geometry& g = volume.geometry;
  if (volume.voxels.size() != g.voxel_count()) {
    throw std::invalid_argument("cannot write '" + options.path.string() + "': the volume has " +
                                std::to_string(volume.voxels.size()) + " voxels but its geometry needs " +
                                std::to_string(g.voxel_count()));
  }
  check_writable(g, volume.metadata.source, options.path, sources);
  SeriesPlan plan = plan_series(&volume, nullptr, sources, options, ctx);
  plan.rescale = choose_rescale(volume.voxels);
  const Rescale& r = plan.rescale;
  if (r.nonfinite > 0) {
    ctx.log(LogLevel::Warn, std::to_string(r.nonfinite) + " non-finite voxels written as the rescale intercept (" +
                                r.intercept_text + ")");
  }
  const double low = r.min, high = r.max > r.min ? r.max : r.min + 1.0;
  plan.window_center = decimal_string(0.5 * (low + high));
  plan.window_width = decimal_string(high - low);
  write_series(
      options.path, plan, g, [&](DcmDataset& data, std::size_t k) { fill_grey(data, plan, volume, k); }, ctx);
  ctx.progress(1.0);
  char precision[64];
  std::snprintf(precision, sizeof precision, "%.3g", 0.5 * r.slope);
  ctx.log(LogLevel::Info,
          "wrote the DICOM series '" + options.path.string() + "': " + std::to_string(g.size[2]) + " instances (" +
              (plan.ct ? "CT Image" : "Secondary Capture") + ", " + plan.modality + "), " +
              (r.exact ? std::string("values exact")
                       : "values within " + std::string(precision) + " " + volume.metadata.units + " (rescale slope " +
                             r.slope_text + ", intercept " + r.intercept_text + ")") +
              (plan.keep ? ", identifiers kept" : ", de-identified"));
}

void run_write_dicom_color(NodeContext& ctx, const WriteDicomOptions& options) {
  check_uid_root(options.uid_root);
  const ColorVolume& image = ctx.input(kImageIn);
  const std::vector<const Volume*> sources = source_volumes(ctx);
  const Geometry& g = image.geometry;
  for (const auto& channel : image.rgb) {
    if (channel.size() != g.voxel_count()) {
      throw std::invalid_argument("cannot write '" + options.path.string() + "': a colour channel has " +
                                  std::to_string(channel.size()) + " values but the geometry needs " +
                                  std::to_string(g.voxel_count()));
    }
  }
  if (!(image.max_value > 0)) {
    throw std::invalid_argument("cannot write '" + options.path.string() + "': the image's max_value is not positive");
  }
  check_writable(g, image.metadata.source, options.path, sources);
  const SeriesPlan plan = plan_series(nullptr, &image, sources, options, ctx);
  write_series(
      options.path, plan, g, [&](DcmDataset& data, std::size_t k) { fill_color(data, image, k); }, ctx);
  ctx.progress(1.0);
  ctx.log(LogLevel::Info, "wrote the DICOM series '" + options.path.string() + "': " + std::to_string(g.size[2]) +
                              " RGB instances (Secondary Capture, 8 bits" +
                              (image.max_value != 255.0 ? ", scaled from 0.." + decimal_string(image.max_value) : "") +
                              ")" + (plan.keep ? ", identifiers kept" : ", de-identified"));
}

}  // namespace fusionflow::io
