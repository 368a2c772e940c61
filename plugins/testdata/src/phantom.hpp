// Digital head phantom: a smooth analytic head model (scalp, skull, CSF,
// folded cortex, white matter, deep grey nuclei, lateral ventricles, lesions)
// sampled into CT, T1- and T2-weighted MRI and FDG PET volumes with the
// physics each modality brings (HU, bias field and Rician noise, PSF blur and
// count noise), each displaced by a known rigid transform (and, if asked, a
// known smooth deformation), plus a truth.json holding the transforms,
// landmarks, tissue values and the parameters used.
//
// Everything is defined in physical LPS millimetres (ITK convention) centred
// on the origin, so the anatomy has the same size at any grid resolution.
//
// Label numbering (labels.nii.gz, CT space):
//   0 air
//   1 scalp (skin and subcutaneous fat)
//   2 skull bone
//   3 CSF (subarachnoid layer, sulci, interhemispheric fissure, ventricles)
//   4 grey matter (folded cortical ribbon and deep nuclei)
//   5 white matter
//   6 + i  lesion i (i = 0 .. lesion_count - 1)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "fusionflow/transform.hpp"
#include "fusionflow/volume.hpp"

namespace fusionflow::testdata {

enum PhantomLabel : std::uint8_t {
  kAir = 0,
  kScalp = 1,
  kSkull = 2,
  kCsf = 3,
  kGreyMatter = 4,
  kWhiteMatter = 5,
  kFirstLesion = 6,
};

// Tissue classes with their own intensities: labels 0..5 plus one class
// shared by all lesions.
inline constexpr std::size_t kTissueClassCount = 7;
inline constexpr std::size_t kMaxLesions = 20;

// Noise-free intensity of one tissue class in each modality.
struct TissueValues {
  double ct_hu = 0.0;      // Hounsfield units
  double t1 = 0.0;         // arbitrary MR units
  double t2 = 0.0;         // arbitrary MR units
  double pet_suvbw = 0.0;  // FDG uptake; converted to Bq/mL with the dose/weight below
};

// Default tissue table, indexed by tissue class (label; 6 = every lesion).
std::array<TissueValues, kTissueClassCount> default_tissue_values();
// "air", "scalp", "skull", "csf", "grey_matter", "white_matter", "lesion".
const char* tissue_class_name(std::size_t tissue_class);

// Rigid displacement of a modality relative to CT, about the centre of the
// field of view (0,0,0). Angles follow itk::Euler3DTransform (ComputeZYX off):
// matrix = Rz * Rx * Ry, i.e. rotate about y first, then x, then z.
struct RigidDisplacement {
  std::array<double, 3> rotation_deg{0.0, 0.0, 0.0};
  std::array<double, 3> translation_mm{0.0, 0.0, 0.0};
};

// A smooth random deformation of a modality's anatomy relative to CT, applied
// before its rigid displacement: CT point x is seen at T(x + u(x)) in the
// modality's space, T the rigid displacement. u is a sum of random plane
// waves (random Fourier features of a Gaussian-covariance field with
// correlation length smoothness_mm), scaled so that its largest magnitude
// within 110 mm of the centre is amplitude_mm. Generation refuses a field
// that could fold (displacement gradient norm >= 0.9 anywhere there).
struct DeformationOptions {
  double amplitude_mm = 0.0;    // 0: no deformation
  double smoothness_mm = 20.0;  // correlation length of the field
};

struct PhantomOptions {
  // CT and MRI grid.
  std::array<std::size_t, 3> size{64, 64, 64};
  // Voxel spacing; unset means 240 mm field of view / size on each axis.
  std::optional<std::array<double, 3>> ct_spacing_mm;
  // Row-major direction matrix of every grid (columns = world directions of
  // the i, j, k axes); unset means identity. Must be orthonormal.
  std::optional<std::array<double, 9>> direction;

  std::uint64_t seed = 1;          // noise and bias field
  std::uint64_t anatomy_seed = 1;  // cortical folding, shape wobble, extra lesion positions

  // CT
  double ct_noise_sigma_hu = 10.0;
  double ct_blur_sigma_mm = 0.7;

  // MRI (T1 and T2 share grid, displacement and coil bias field)
  double mri_bias_strength = 0.2;  // bias = exp(strength * f), f smooth in [-1, 1]
  double mri_rician_sigma = 15.0;  // std of the Gaussian noise on each complex channel
  double mri_blur_sigma_mm = 0.5;

  // PET
  double pet_spacing_mm = 3.0;                 // isotropic, same field of view as CT
  double pet_fwhm_mm = 6.0;                    // Gaussian PSF; 0 = no blur
  double pet_counts_per_voxel_at_suv1 = 35.0;  // Poisson count level; 0 = noise-free
  double injected_dose_bq = 370.0e6;
  double patient_weight_kg = 75.0;
  double half_life_s = 6586.2;  // F-18
  double injection_to_scan_delay_s = 3600.0;
  std::string pet_decay_correction = "START";  // DICOM: "START" (to scan start) or "ADMIN"

  RigidDisplacement mri_displacement{{4.0, -2.5, 6.0}, {6.0, -4.0, 3.5}};
  RigidDisplacement pet_displacement{{-1.5, 2.0, -3.0}, {-3.0, 2.5, -3.0}};
  // Drawn from `seed`, one field per modality (MRI: T1 and T2 share it).
  DeformationOptions mri_deformation;
  DeformationOptions pet_deformation;

  std::size_t lesion_count = 1;
  double lesion_radius_mm = 9.0;      // first lesion; later ones get smaller
  double lesion_irregularity = 0.15;  // relative radius modulation, 0 = sphere

  std::array<TissueValues, kTissueClassCount> tissues = default_tissue_values();
};

struct Phantom {
  Volume labels;  // CT grid, values are PhantomLabel
  Volume ct;      // HU, rounded to integers (stored as int16)
  Volume t1;      // MRI grid (CT grid geometry, displaced anatomy)
  Volume t2;
  Volume pet;  // Bq/mL on the PET grid
  // With a deformation: the whole CT -> modality mapping (deformation and
  // rigid displacement) as displacements on the CT grid, x -> x + d(x).
  std::optional<DisplacementField> mri_displacement_field;
  std::optional<DisplacementField> pet_displacement_field;
  nlohmann::json truth;
};

// Which modality's view of the anatomy: CT (reference), MRI or PET.
enum class PhantomSpace { Ct, Mri, Pet };

// Throws std::runtime_error describing the first invalid option.
void validate(const PhantomOptions& options);

Phantom generate_phantom(const PhantomOptions& options);

// Writes ct.nii.gz (int16), t1.nii.gz, t2.nii.gz, pet.nii.gz (float32),
// labels.nii.gz (uint8), truth.json and, with a deformation,
// mri_displacement.nrrd / pet_displacement.nrrd (ITK displacement fields)
// into `dir` (created if missing), each atomically.
void write_phantom(const Phantom& phantom, const std::filesystem::path& dir);

// Options <-> JSON. Missing keys keep their defaults; unknown keys and wrong
// types are errors (std::runtime_error), and the result is validated.
PhantomOptions phantom_options_from_json(const nlohmann::json& json);
nlohmann::json to_json(const PhantomOptions& options);

// Grids the generator uses (the MRI grid equals the CT grid).
Geometry ct_geometry(const PhantomOptions& options);
Geometry pet_geometry(const PhantomOptions& options);

// Ground-truth labels of the anatomy as seen by `space` (i.e. with that
// modality's displacement applied), sampled at the voxel centres of any
// `grid`. For evaluating registration (Dice) or checking a modality's tissue
// values in its own space.
Volume sample_phantom_labels(const PhantomOptions& options, PhantomSpace space, const Geometry& grid);

}  // namespace fusionflow::testdata
