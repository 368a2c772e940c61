// Internal interfaces of the io plugin. No ITK, GDCM or DCMTK types here:
// those stay in the translation units that need them.
#pragma once

#include <algorithm>
#include <array>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fusionflow/sdk.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pacs.hpp"

namespace fusionflow::io {

// A path as messages quote it: 'path'.
inline std::string quoted(const std::filesystem::path& path) { return "'" + path.string() + "'"; }

// File names and extensions are compared in lower case.
inline std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return text;
}

inline bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Default of the loaders' max_voxels: refuse grids above 2^31 voxels (8 GiB
// of float) before allocating anything, like core.synthetic_volume.
inline constexpr std::size_t kMaxVoxels = std::size_t{1} << 31;

// Default of max_shear_error_mm (NIfTI sheared sforms). 1 mm: about one
// voxel of clinical CT and structural MR, and the order of the accuracy of
// multimodal rigid registration; a sform further from orthonormal should be
// resampled, not approximated. (ITK 5.3+'s opt-in ITK_NIFTI_SFORM_PERMISSIVE
// mode orthogonalises any shear, with a warning but no bound and no number.)
inline constexpr double kDefaultMaxShearErrorMm = 1.0;

// What the loaders need to know about a DICOM series beyond its voxels. Read
// from the first slice of the series (after sorting) unless stated otherwise.
// Patient identifiers are only read when the user asks for them.
struct DicomAttributes {
  std::string modality;                     // (0008,0060)
  std::string series_description;           // (0008,103E)
  std::string series_number;                // (0020,0011)
  std::string units;                        // (0054,1001), PET: "BQML", "CNTS", "GML", ...
  std::string decay_correction;             // (0054,1102): "START", "ADMIN", "NONE"
  std::string corrected_image;              // (0028,0051), e.g. "ATTN\DECY"
  std::optional<double> rescale_slope;      // (0028,1053) of the first slice
  std::optional<double> rescale_intercept;  // (0028,1052) of the first slice
  std::optional<double> patient_weight_kg;  // (0010,1030)
  // Radiopharmaceutical Information Sequence (0054,0016), first item.
  std::optional<double> total_dose_bq;   // (0018,1074)
  std::optional<double> half_life_s;     // (0018,1075)
  std::string injection_time;            // (0018,1072) TM
  std::string injection_datetime;        // (0018,1078) DT
  std::string radiopharmaceutical;       // (0018,0031)
  std::string radionuclide;              // (0054,0300) code meaning
  std::string series_date, series_time;  // (0008,0021), (0008,0031)
  // Earliest (0008,0022)/(0008,0032) over all slices of the series.
  std::string acquisition_date, acquisition_time;
  std::size_t slice_count = 0;
  // Only filled when keep_identifiers is set: metadata `extra` key -> value,
  // keys "dicom.patient_name", ... (listed in loaders.cpp).
  std::map<std::string, std::string> identifiers;
};

// How a colour image becomes the one value per voxel a Volume holds (PNG for
// now; the loaders' `color` and `channel` parameters). An image whose every
// pixel has R = G = B (a grey palette, grey saved as RGB) is grey and reads
// exactly, whatever the mode.
struct ColorOptions {
  enum class Mode {
    Luma,     // Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601), noted in the metadata
    Channel,  // the channel `channel`
    Error,    // refuse colour images
  };
  Mode mode = Mode::Luma;
  int channel = 0;  // 0 red, 1 green, 2 blue
};

// The `color` parameter's names of the modes.
inline const ChoiceList<ColorOptions::Mode> kColorModeNames{
    {ColorOptions::Mode::Luma, "luma"}, {ColorOptions::Mode::Channel, "channel"}, {ColorOptions::Mode::Error, "error"}};

// What to read and how. The loaders' parameters bind to these fields and to
// the ColorOptions it extends (hence volume_index -1 for none, as the
// parameter says it, rather than an optional).
struct LoadRequest : ColorOptions {
  std::filesystem::path path;      // file, or directory holding a DICOM series
  std::string series_uid;          // DICOM directory: select by SeriesInstanceUID
  std::string series_description;  // ... or by SeriesDescription
  std::string expected_modality;   // "CT", "MR", "PT"; empty: any
  bool keep_identifiers = false;
  // 4D files (NIfTI, NRRD, MetaImage): the 3D volume to read (0-based);
  // -1: none, and a 4D file with more than one volume is refused.
  std::int64_t volume_index = -1;
  // Refuse more voxels than this (header sizes, before allocating).
  std::uint64_t max_voxels = kMaxVoxels;
  // NIfTI: largest position error (mm) accepted when a sheared sform is read
  // with the nearest orthonormal direction.
  double max_shear_error_mm = kDefaultMaxShearErrorMm;
};

struct LoadedImage {
  Volume volume;       // float voxels, geometry, metadata.source
  std::string format;  // "nifti", "nrrd", "metaimage", "png", "dicom", "dicom-series"
  std::optional<DicomAttributes> dicom;
};

// True if `path` names a file that looks like DICOM (extension .dcm/.ima/.dicom
// or a "DICM" preamble).
bool looks_like_dicom_file(const std::filesystem::path& path);

// ITK exception text without its "itk::ERROR: Class(0x...): " prefixes, one line.
std::string itk_reason(const std::string& description);

// Reads a NIfTI, NRRD, MetaImage or PNG file (image_files.cpp). The header is
// checked (dimensions, pixel type, voxel count, geometry, file size against
// the voxel data it announces) before any voxel buffer is allocated. PNG
// files go to read_png_file.
LoadedImage read_image_file(const LoadRequest& request, NodeContext& ctx);

// Reads the PNG file request.path with libpng (png_file.cpp): any bit depth,
// grey, palette, RGB, with or without alpha, interlaced or not; colour as
// the request's ColorOptions say; at most request.max_voxels pixels. Every
// libpng error becomes a std::runtime_error naming the file.
LoadedImage read_png_file(const LoadRequest& request, NodeContext& ctx);
// A PNG as colour: RGB and palette as stored, grey as R = G = B; 8-bit
// samples in 0..255 (max_value 255), 16-bit in 0..65535; alpha ignored.
ColorVolume read_png_color(const std::filesystem::path& path, std::uint64_t max_voxels, NodeContext& ctx);
// Grey (channels 1) or RGB (3) samples, row by row from the top, 8 or 16
// bits, to `file` (write it to an AtomicFileWriter's temporary path).
void write_png_file(const std::filesystem::path& file, std::size_t width, std::size_t height, int channels, int bits,
                    const std::vector<std::uint16_t>& samples);
// 8-bit grey or RGB samples as baseline JPEG (libjpeg-turbo, integer DCT, no
// chroma subsampling), quality 1..100.
void write_jpeg_file(const std::filesystem::path& file, std::size_t width, std::size_t height, int channels,
                     int quality, const std::vector<std::uint16_t>& samples);

// --- NIfTI geometry (nifti_geometry.cpp, through ITK's own niftilib) ------------

// Voxel (i, j, k) -> RAS mm, the 3x4 part of a NIfTI affine.
using NiftiAffine = std::array<std::array<double, 4>, 3>;

// What niftilib reads from a NIfTI-1 header (no voxels).
struct NiftiHeader {
  int ndim = 0;
  std::array<std::size_t, 7> dim{};  // dim[1..7] of the header
  int datatype = 0;
  int bytes_per_voxel = 0;
  int qform_code = 0, sform_code = 0;
  // qto_xyz, sto_xyz (single precision in the file), in mm (converted from
  // metres or microns as ITK does).
  NiftiAffine qform{}, sform{};
  // sform_code > 0 and its normalised columns orthonormal within 1e-4, ITK
  // 5.2's condition for using it.
  bool sform_usable_by_itk = false;
  // "sform (code 2: aligned)" or "qform (code 1: scanner)".
  std::string describe(bool use_sform) const;
};

// nullopt when niftilib cannot read the header (ITK's reader then reports it).
std::optional<NiftiHeader> read_nifti_header(const std::filesystem::path& path);

// Largest distance (mm) between the points two affines give to the corner
// voxel centres of a grid of `size` (the largest over the whole grid, as the
// difference is affine).
double max_corner_distance(const NiftiAffine& a, const NiftiAffine& b, const std::array<std::size_t, 3>& size);

// Geometry (LPS) with the nearest orthonormal direction to `affine`'s 3x3
// part (polar decomposition A = R S), spacing its column norms, origin its
// translation; error_mm: max_corner_distance between `affine` and it.
struct PolarGeometry {
  Geometry geometry;
  double error_mm = 0;
};
PolarGeometry polar_geometry(const NiftiAffine& affine, const std::array<std::size_t, 3>& size);

// Voxels of 3D volume `volume_index` of a NIfTI-1 file as float, with the
// header's scl_slope/scl_inter applied as ITK does (niftilib reads only that
// volume).
std::vector<float> read_nifti_volume(const std::filesystem::path& path, std::size_t volume_index);

// Reads a DICOM file or a DICOM series directory (dicom.cpp).
LoadedImage read_dicom(const LoadRequest& request, NodeContext& ctx);

// Dispatches on the path: directory -> DICOM series; DICOM file -> one DICOM
// file; otherwise read_image_file. Throws std::runtime_error naming the path.
LoadedImage load_any(const LoadRequest& request, NodeContext& ctx);

// --- PET (pet_suv.cpp) -------------------------------------------------------

// Everything SUVbw needs; each piece from the DICOM or from a parameter.
struct SuvInputs {
  std::string units;             // DICOM (0054,1001) or "BQML" for non-DICOM files
  std::string decay_correction;  // "START", "ADMIN", "NONE" or empty (unknown)
  std::optional<double> weight_kg;
  std::optional<double> dose_bq;
  std::optional<double> half_life_s;
  // Seconds from injection to the decay-correction reference time (series
  // start). Needed when decay_correction is START.
  std::optional<double> uptake_s;
  // What was missing for uptake_s, when it is absent (e.g. "injection time").
  std::vector<std::string> uptake_missing;
};

struct SuvFactor {
  double factor = 0.0;  // SUVbw = value [Bq/mL] * factor
  double decayed_dose_bq = 0.0;
};

// Missing or unusable pieces, one human-readable entry each (empty: SUV can
// be computed).
std::vector<std::string> suv_missing_pieces(const SuvInputs& inputs);
// Requires suv_missing_pieces(inputs) to be empty.
SuvFactor suv_factor(const SuvInputs& inputs);

// Seconds from injection to the PET decay reference time, from DICOM
// attributes (hand-written DICOM DA/TM/DT arithmetic). `injection_override`
// (DICOM TM "HHMMSS[.ffffff]" or DT "YYYYMMDDHHMMSS[.ffffff]") replaces the
// DICOM injection time when not empty. Fills `missing` when it cannot.
std::optional<double> dicom_uptake_seconds(const DicomAttributes& dicom, const std::string& injection_override,
                                           std::vector<std::string>& missing);

// Parses a DICOM TM value into seconds since midnight; nullopt if malformed.
std::optional<double> parse_dicom_time(const std::string& tm);

// --- MRI (mri.cpp) -------------------------------------------------------------

struct N4Options {
  int shrink = 4;
  std::vector<std::int64_t> iterations{50, 50, 30, 20};  // one entry per fitting level
  int threads = 1;
};
// Caps ITK's global thread pool (the run's --threads).
void set_itk_threads(int threads);

// N4 bias-field correction (ITK). Voxels <= 0 are background: they do not
// drive the fit (N4 works on log intensities). Returns the corrected volume.
void n4_correct(Volume& volume, const N4Options& options, NodeContext& ctx);

// --- node types (loaders.cpp, writer.cpp) ---------------------------------------
// Each node's options: its parameters, bound field by field in its NodeType.

// What the loaders do with NaN or infinite voxels (`nonfinite`).
enum class NonFinite { Error, Replace };
inline const ChoiceList<NonFinite> kNonFiniteNames{{NonFinite::Error, "error"}, {NonFinite::Replace, "replace"}};

// The parameters every loader has: what to read (all of LoadRequest but
// expected_modality, which each loader sets) and what to do with NaN/Inf.
struct LoadOptions : LoadRequest {
  NonFinite nonfinite = NonFinite::Error;
  double nonfinite_value = 0.0;
};

struct LoadCtOptions : LoadOptions {
  bool clamp = false;
  double clamp_min = -1024.0;
  double clamp_max = 3071.0;
};

// io.load_mri's `normalise` and `normalise_region` (also the metadata's
// mr.normalise and mr.normalise_region).
enum class MriNormalise { None, Percentile, ZScore };
inline const ChoiceList<MriNormalise> kMriNormaliseNames{
    {MriNormalise::None, "none"}, {MriNormalise::Percentile, "percentile"}, {MriNormalise::ZScore, "zscore"}};
enum class MriNormaliseRegion { NonZero, All };
inline const ChoiceList<MriNormaliseRegion> kMriNormaliseRegionNames{{MriNormaliseRegion::NonZero, "nonzero"},
                                                                     {MriNormaliseRegion::All, "all"}};

// N4Options holds n4_shrink and n4_iterations; its threads come from the
// run's thread budget, not from a parameter.
struct LoadMriOptions : LoadOptions, N4Options {
  std::string contrast;
  bool n4 = false;
  MriNormalise normalise = MriNormalise::None;
  std::array<double, 2> percentiles{1.0, 99.0};
  MriNormaliseRegion normalise_region = MriNormaliseRegion::NonZero;
};

// io.load_pet's `suv` (the units wanted), `input_units` (the units stored)
// and `decay_correction` (what the images are decay-corrected to).
enum class PetSuv { Auto, BqMl, SuvBw };
inline const ChoiceList<PetSuv> kPetSuvNames{{PetSuv::Auto, "auto"}, {PetSuv::BqMl, "bq_ml"}, {PetSuv::SuvBw, "suvbw"}};
enum class PetInputUnits { Auto, BqMl, SuvBw };
inline const ChoiceList<PetInputUnits> kPetInputUnitsNames{
    {PetInputUnits::Auto, "auto"}, {PetInputUnits::BqMl, "bq_ml"}, {PetInputUnits::SuvBw, "suvbw"}};
enum class PetDecayCorrection { Dicom, Start, Admin };
inline const ChoiceList<PetDecayCorrection> kPetDecayCorrectionNames{
    {PetDecayCorrection::Dicom, "dicom"}, {PetDecayCorrection::Start, "start"}, {PetDecayCorrection::Admin, "admin"}};

// Weight, dose and half-life 0 and uptake_s -1 mean "from DICOM".
struct LoadPetOptions : LoadOptions {
  PetSuv suv = PetSuv::Auto;
  PetInputUnits input_units = PetInputUnits::Auto;
  double weight_kg = 0.0;
  double injected_dose_bq = 0.0;
  double half_life_s = 0.0;
  std::string injection_time;
  double uptake_s = -1.0;
  PetDecayCorrection decay_correction = PetDecayCorrection::Dicom;
};

struct LoadImageOptions : LoadOptions {
  std::string modality;
  std::string units;
};

// io.write's `storage`: a VoxelStorage, or auto (the smallest that holds the
// voxels exactly).
enum class WriteStorage { Float32, Int16, UInt8, Auto };
inline const ChoiceList<WriteStorage> kWriteStorageNames{{WriteStorage::Float32, "float32"},
                                                         {WriteStorage::Int16, "int16"},
                                                         {WriteStorage::UInt8, "uint8"},
                                                         {WriteStorage::Auto, "auto"}};

// PNG and JPEG (2D) output: how values become 8- or 16-bit grey levels.
enum class ImageScaling { None, Range, Window };
inline const ChoiceList<ImageScaling> kImageScalingNames{
    {ImageScaling::None, "none"}, {ImageScaling::Range, "range"}, {ImageScaling::Window, "window"}};

struct ImageOutputOptions {
  ImageScaling scaling = ImageScaling::None;
  std::vector<double> range;  // scaling=range: [low, high]
  double window = 0.0, level = 0.0;
  std::int64_t bits = 8;      // PNG: 8 or 16
  std::int64_t quality = 95;  // JPEG
};

struct WriteOptions : ImageOutputOptions {
  std::filesystem::path path;
  WriteStorage storage = WriteStorage::Float32;
};

struct WriteColorOptions {
  std::filesystem::path path;
  std::int64_t bits = 8;
  std::int64_t quality = 95;
};

// io.write_dicom and io.write_dicom_color (dicom_writer.cpp).
struct WriteDicomOptions {
  std::filesystem::path path;  // the folder of the series
  std::string series_description;
  std::int64_t series_number = -1;  // -1: empty
  std::string modality;             // empty: the volume's
  bool keep_identifiers = false;
  std::string patient_name, patient_id;  // pseudonyms of a de-identified series
  std::string uid_root;                  // empty: 2.25 (UUID-derived)
};

// The image formats io.write and io.write_color write.
enum class ImageFormat { Png, Jpeg };
std::optional<ImageFormat> image_format_of(const std::filesystem::path& path);
// A 2D grey volume (one slice) as PNG or JPEG, atomically; logs what the scaling did.
void write_grey_image(const Volume& volume, const std::filesystem::path& path, ImageFormat format,
                      const ImageOutputOptions& options, NodeContext& ctx);
// Adds the PNG/JPEG parameters of ImageOutputOptions to a writer.
template <class Options>
void add_image_output_params(NodeType<Options>& node) {
  node.choice(&ImageOutputOptions::scaling, "scaling", kImageScalingNames,
              "PNG/JPEG: none (values written as they are, rounded to the nearest level; out-of-range values are "
              "clamped, with a warning), range (range = [low, high] onto 0..top), window (level -/+ window/2 onto "
              "0..top); never a contrast stretch unless asked, so 0 stays 0 when low = 0")
      .param(&ImageOutputOptions::range, "range", "PNG/JPEG with scaling=range: [low, high] in the volume's units")
      .param(&ImageOutputOptions::window, "window", Limits::at_least(0.0), "PNG/JPEG with scaling=window: width")
      .param(&ImageOutputOptions::level, "level", "PNG/JPEG with scaling=window: centre")
      .param(&ImageOutputOptions::bits, "bits", Limits::range(8, 16), "PNG: 8 or 16 bits per sample (JPEG: 8)")
      .param(&ImageOutputOptions::quality, "quality", Limits::range(1, 100), "JPEG quality");
}

NodeType<LoadCtOptions> load_ct_node();
NodeType<LoadMriOptions> load_mri_node();
NodeType<LoadPetOptions> load_pet_node();
NodeType<LoadImageOptions> load_image_node();
NodeType<WriteOptions> write_node();
struct LoadColorOptions {
  std::filesystem::path path;
  std::uint64_t max_voxels = kMaxVoxels;
};
NodeType<LoadColorOptions> load_color_node();
NodeType<WriteColorOptions> write_color_node();
void run_load_color(NodeContext& ctx, const LoadColorOptions& options);
void run_write_color(NodeContext& ctx, const WriteColorOptions& options);
void run_load_ct(NodeContext& ctx, const LoadCtOptions& options);
void run_load_mri(NodeContext& ctx, const LoadMriOptions& options);
void run_load_pet(NodeContext& ctx, const LoadPetOptions& options);
void run_load_image(NodeContext& ctx, const LoadImageOptions& options);

// --- DICOM servers (pacs.cpp, pacs_nodes.cpp) -----------------------------------

// A loader's options, reading from a DICOM server instead of a path: the
// loader's series_uid and series_description select the series with the
// study keys, its modality (CT, MR, PT; io.pacs_load_image: `modality`)
// too.
template <class Base>
struct PacsLoad : Base, PacsPeer, PacsStudyKeys {
  // Not an aggregate: GCC 12 warns of uninitialised members when one with
  // three bases is value-initialised.
  PacsLoad() : Base(), PacsPeer(), PacsStudyKeys() {}
};

inline const char* const kPacsLoadLead =
    "From a DICOM server (C-FIND of the series by study and series keys, C-GET into a private temporary folder that "
    "is removed after reading; never cached): ";

// The server's parameters (PacsPeer).
template <class Options>
void add_peer_params(NodeType<Options>& node) {
  node.param(&PacsPeer::host, "host", "host name or address of the DICOM server")
      .param(&PacsPeer::port, "port", Limits::range(1, 65535), "its DICOM port")
      .param(&PacsPeer::called_ae, "called_ae", "its AE title")
      .param(&PacsPeer::calling_ae, "calling_ae", "fusionflow's AE title, as the server knows it")
      .param(&PacsPeer::timeout_s, "timeout_s", Limits::range(1.0, 3600.0),
             "seconds to wait for the connection, the association and each answer");
}

// The study keys (PacsStudyKeys); at least one of them or series_uid is needed.
template <class Options>
void add_study_key_params(NodeType<Options>& node) {
  node.param(&PacsStudyKeys::patient_id, "patient_id",
             "PatientID of the study (exact; withheld from logs and run records)")
      .param(&PacsStudyKeys::accession_number, "accession_number", "AccessionNumber of the study (exact)")
      .param(&PacsStudyKeys::study_uid, "study_uid", "StudyInstanceUID of the study")
      .confidential("patient_id")
      .confidential("accession_number");
}

template <class Options>
void add_pacs_params(NodeType<Options>& node) {
  add_peer_params(node);
  add_study_key_params(node);
  node.uncacheable("it reads from a DICOM server, whose content the node cache cannot track");
}

NodeType<PacsLoad<LoadCtOptions>> pacs_load_ct_node();
NodeType<PacsLoad<LoadMriOptions>> pacs_load_mri_node();
NodeType<PacsLoad<LoadPetOptions>> pacs_load_pet_node();
NodeType<PacsLoad<LoadImageOptions>> pacs_load_image_node();
void run_pacs_load_ct(NodeContext& ctx, const PacsLoad<LoadCtOptions>& options);
void run_pacs_load_mri(NodeContext& ctx, const PacsLoad<LoadMriOptions>& options);
void run_pacs_load_pet(NodeContext& ctx, const PacsLoad<LoadPetOptions>& options);
void run_pacs_load_image(NodeContext& ctx, const PacsLoad<LoadImageOptions>& options);

struct PacsFindOptions : PacsPeer, PacsQuery {
  bool keep_identifiers = false;
};
NodeType<PacsFindOptions> pacs_find_node();
void run_pacs_find(NodeContext& ctx, const PacsFindOptions& options);

struct PacsStoreOptions : WriteDicomOptions, PacsPeer {};
NodeType<PacsStoreOptions> pacs_store_node();
void run_pacs_store(NodeContext& ctx, const PacsStoreOptions& options);
void run_write(NodeContext& ctx, const WriteOptions& options);
NodeType<WriteDicomOptions> write_dicom_node(bool color);
// io.write_dicom's parameters on another node type (io.pacs_store: `store`
// makes path optional); instantiated in dicom_writer.cpp.
template <class Options>
NodeType<Options> write_dicom_node_type(const std::string& type, const std::string& description, bool store,
                                        bool color = false);
void run_write_dicom(NodeContext& ctx, const WriteDicomOptions& options);
void run_write_dicom_color(NodeContext& ctx, const WriteDicomOptions& options);

}  // namespace fusionflow::io
