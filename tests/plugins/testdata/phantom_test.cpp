// Tests of the digital head phantom: tissue physics per modality, PET
// resolution, file geometry, truth transforms and landmarks, determinism.
#include "phantom.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <itkEuler3DTransform.h>
#include <itkMultiThreaderBase.h>

#include "fusionflow/itk_bridge.hpp"
#include "fusionflow/itk_transform.hpp"

namespace fusionflow::testdata {
namespace {

namespace fs = std::filesystem;
using Point = std::array<double, 3>;
constexpr double kPi = 3.14159265358979323846;

// --- helpers ---------------------------------------------------------------

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ =
        fs::temp_directory_path() / ("phantom-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::size_t tissue_class(float label) { return std::min<std::size_t>(static_cast<std::size_t>(label), 6); }

// Voxels of tissue class `wanted` whose 6 neighbours are of the same class:
// away from partial-volume edges.
std::vector<std::size_t> interior_voxels(const Volume& labels, std::size_t wanted) {
  const Geometry& g = labels.geometry;
  std::vector<std::size_t> result;
  for (std::size_t k = 1; k + 1 < g.size[2]; ++k)
    for (std::size_t j = 1; j + 1 < g.size[1]; ++j)
      for (std::size_t i = 1; i + 1 < g.size[0]; ++i) {
        const std::size_t n = g.linear_index(i, j, k);
        if (tissue_class(labels.voxels[n]) != wanted) continue;
        const std::size_t neighbours[6] = {
            n - 1, n + 1, n - g.size[0], n + g.size[0], n - g.size[0] * g.size[1], n + g.size[0] * g.size[1]};
        bool inside = true;
        for (std::size_t m : neighbours) inside = inside && tissue_class(labels.voxels[m]) == wanted;
        if (inside) result.push_back(n);
      }
  return result;
}

struct Stats {
  double mean = 0.0, sd = 0.0;
  std::size_t count = 0;
  double standard_error() const { return sd / std::sqrt(static_cast<double>(std::max<std::size_t>(count, 1))); }
};

Stats stats_of(const Volume& image, const std::vector<std::size_t>& voxels) {
  Stats s;
  s.count = voxels.size();
  if (voxels.empty()) return s;
  for (std::size_t n : voxels) s.mean += image.voxels[n];
  s.mean /= static_cast<double>(voxels.size());
  for (std::size_t n : voxels) s.sd += (image.voxels[n] - s.mean) * (image.voxels[n] - s.mean);
  s.sd = std::sqrt(s.sd / static_cast<double>(std::max<std::size_t>(voxels.size() - 1, 1)));
  return s;
}

Point json_point(const nlohmann::json& j) { return {j[0].get<double>(), j[1].get<double>(), j[2].get<double>()}; }

double distance(const Point& a, const Point& b) {
  return std::sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
}

// Label of the analytic model at one physical point of `space`: a 1-voxel grid.
int model_label_at(const PhantomOptions& options, PhantomSpace space, const Point& point) {
  Geometry one_voxel;
  one_voxel.size = {1, 1, 1};
  one_voxel.origin = point;
  return static_cast<int>(sample_phantom_labels(options, space, one_voxel).voxels[0]);
}

// Value of the voxel nearest to `point`, or -1 outside the grid.
bool nearest_voxel(const Geometry& g, const Point& point, std::size_t& linear) {
  const Point index = g.point_to_index(point);
  std::array<std::size_t, 3> rounded{};
  for (int axis = 0; axis < 3; ++axis) {
    const double r = std::round(index[axis]);
    if (r < 0 || r > static_cast<double>(g.size[axis]) - 1) return false;
    rounded[axis] = static_cast<std::size_t>(r);
  }
  linear = g.linear_index(rounded[0], rounded[1], rounded[2]);
  return true;
}

// Intensity-weighted centroid (LPS mm) of the voxels selected by `keep`.
template <typename Keep>
Point centroid(const Volume& image, Keep keep, bool weighted) {
  const Geometry& g = image.geometry;
  Point sum{0, 0, 0};
  double total = 0.0;
  for (std::size_t k = 0; k < g.size[2]; ++k)
    for (std::size_t j = 0; j < g.size[1]; ++j)
      for (std::size_t i = 0; i < g.size[0]; ++i) {
        const float value = image.voxels[g.linear_index(i, j, k)];
        if (!keep(value)) continue;
        const double w = weighted ? value : 1.0;
        const Point p = g.index_to_point({double(i), double(j), double(k)});
        for (int axis = 0; axis < 3; ++axis) sum[axis] += w * p[axis];
        total += w;
      }
  return {sum[0] / total, sum[1] / total, sum[2] / total};
}

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

double half_voxel_diagonal(const Geometry& g) {
  return 0.5 * std::sqrt(g.spacing[0] * g.spacing[0] + g.spacing[1] * g.spacing[1] + g.spacing[2] * g.spacing[2]);
}

PhantomOptions reference_options() {
  PhantomOptions options;
  options.size = {64, 64, 64};  // 3.75 mm voxels over 240 mm
  options.seed = 7;
  return options;
}

// Generated once and shared: the default physics at test resolution.
const Phantom& reference_phantom() {
  static const Phantom phantom = generate_phantom(reference_options());
  return phantom;
}

// --- options ---------------------------------------------------------------

TEST(PhantomOptions, RejectsInvalidValues) {
  auto expect_invalid = [](auto mutate, const std::string& fragment) {
    PhantomOptions options;
    mutate(options);
    try {
      validate(options);
      ADD_FAILURE() << "accepted invalid options (" << fragment << ")";
    } catch (const std::runtime_error& error) {
      EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
    }
  };
  expect_invalid([](PhantomOptions& o) { o.size = {64, 7, 64}; }, "size");
  expect_invalid([](PhantomOptions& o) { o.ct_spacing_mm = Point{1.0, 0.0, 1.0}; }, "ct_spacing_mm");
  expect_invalid([](PhantomOptions& o) { o.direction = std::array<double, 9>{1, 0, 0, 0, 1, 0.1, 0, 0, 1}; },
                 "orthonormal");
  expect_invalid([](PhantomOptions& o) { o.ct_noise_sigma_hu = -1.0; }, "ct_noise_sigma_hu");
  expect_invalid([](PhantomOptions& o) { o.pet_spacing_mm = 0.0; }, "pet_spacing_mm");
  expect_invalid([](PhantomOptions& o) { o.pet_decay_correction = "NONE"; }, "pet_decay_correction");
  expect_invalid([](PhantomOptions& o) { o.lesion_count = 100; }, "lesion_count");
  expect_invalid([](PhantomOptions& o) { o.tissues[kGreyMatter].pet_suvbw = -1.0; }, "grey_matter");
  EXPECT_THROW(generate_phantom([] {
                 PhantomOptions o;
                 o.size = {4, 4, 4};
                 return o;
               }()),
               std::runtime_error);
}

TEST(PhantomOptions, JsonRoundTripAndStrictParsing) {
  PhantomOptions options;
  options.size = {40, 48, 56};
  options.ct_spacing_mm = Point{2.0, 2.5, 3.0};
  options.direction = std::array<double, 9>{0, 1, 0, -1, 0, 0, 0, 0, 1};
  options.seed = 123456789012345ULL;
  options.pet_decay_correction = "ADMIN";
  options.mri_displacement.rotation_deg = {1, 2, 3};
  options.lesion_count = 3;
  options.tissues[kTissueClassCount - 1].t2 = 1234.5;
  const nlohmann::json json = to_json(options);
  const PhantomOptions parsed = phantom_options_from_json(json);
  EXPECT_EQ(to_json(parsed), json);

  // Missing keys keep defaults; a scalar size means a cube.
  const PhantomOptions partial = phantom_options_from_json({{"size", 32}, {"seed", 5}});
  EXPECT_EQ(partial.size, (std::array<std::size_t, 3>{32, 32, 32}));
  EXPECT_EQ(to_json(partial)["pet_fwhm_mm"], 6.0);

  EXPECT_THROW(phantom_options_from_json({{"sise", 32}}), std::runtime_error);
  EXPECT_THROW(phantom_options_from_json({{"seed", "seven"}}), std::runtime_error);
  EXPECT_THROW(phantom_options_from_json({{"seed", -1}}), std::runtime_error);
  EXPECT_THROW(phantom_options_from_json({{"tissues", {{"bone", {{"ct_hu", 1}}}}}}), std::runtime_error);
  EXPECT_THROW(phantom_options_from_json({{"size", 4}}), std::runtime_error);  // validated
}

// --- anatomy ---------------------------------------------------------------

TEST(PhantomAnatomy, NestedHeadElongatedFrontToBackAllLabelsPresent) {
  const Phantom& phantom = reference_phantom();
  const Volume& labels = phantom.labels;
  std::set<int> present;
  for (float v : labels.voxels) present.insert(static_cast<int>(v));
  EXPECT_EQ(present, (std::set<int>{0, 1, 2, 3, 4, 5, 6}));

  // Physical extent of the head along each axis (identity direction here).
  Point low{1e9, 1e9, 1e9}, high{-1e9, -1e9, -1e9};
  const Geometry& g = labels.geometry;
  for (std::size_t k = 0; k < g.size[2]; ++k)
    for (std::size_t j = 0; j < g.size[1]; ++j)
      for (std::size_t i = 0; i < g.size[0]; ++i) {
        if (labels.at(i, j, k) == kAir) continue;
        const Point p = g.index_to_point({double(i), double(j), double(k)});
        for (int axis = 0; axis < 3; ++axis) {
          low[axis] = std::min(low[axis], p[axis]);
          high[axis] = std::max(high[axis], p[axis]);
        }
      }
  const double width = high[0] - low[0], length = high[1] - low[1], height = high[2] - low[2];
  EXPECT_GT(length, width + 20.0) << "head must be longer front to back than it is wide";
  EXPECT_NEAR(width, 155.0, 12.0);
  EXPECT_NEAR(length, 194.0, 12.0);
  EXPECT_GT(height, 140.0);

  // Walking in from the air along +x through the centre meets the layers in
  // anatomical order: air, scalp, skull, CSF, then brain.
  std::vector<int> sequence;
  const std::size_t j = g.size[1] / 2, k = g.size[2] / 2 + 4;
  for (std::size_t i = g.size[0] - 1; i > g.size[0] / 2; --i) {
    const int label = static_cast<int>(labels.at(i, j, k));
    if (sequence.empty() || sequence.back() != label) sequence.push_back(label);
  }
  ASSERT_GE(sequence.size(), 5u);
  EXPECT_EQ(std::vector<int>(sequence.begin(), sequence.begin() + 4), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_TRUE(sequence[4] == kGreyMatter || sequence[4] == kWhiteMatter);
}

TEST(PhantomAnatomy, SizeIsPhysicalNotTiedToResolution) {
  // Head and brain volumes (mL) at two resolutions agree, and are adult-sized.
  auto volumes = [](std::size_t n) {
    PhantomOptions options;
    options.size = {n, n, n};
    const Volume labels = sample_phantom_labels(options, PhantomSpace::Ct, ct_geometry(options));
    const double voxel_ml = labels.geometry.spacing[0] * labels.geometry.spacing[1] * labels.geometry.spacing[2] / 1000;
    double head = 0, brain = 0;
    for (float v : labels.voxels) {
      head += v != kAir ? voxel_ml : 0.0;
      brain += v >= kGreyMatter ? voxel_ml : 0.0;
    }
    return std::make_pair(head, brain);
  };
  const auto [head_coarse, brain_coarse] = volumes(48);
  const auto [head_fine, brain_fine] = volumes(120);
  EXPECT_NEAR(head_coarse / head_fine, 1.0, 0.03);
  EXPECT_NEAR(brain_coarse / brain_fine, 1.0, 0.05);
  EXPECT_GT(brain_fine, 1000.0);
  EXPECT_LT(brain_fine, 1600.0);
}

TEST(PhantomAnatomy, LesionsGetConsecutiveLabelsInsideTheBrain) {
  PhantomOptions options;
  options.size = {80, 80, 80};
  options.lesion_count = 8;  // six hand-placed sites, then random brain sites
  const Volume labels = sample_phantom_labels(options, PhantomSpace::Ct, ct_geometry(options));
  std::set<int> lesions;
  for (float v : labels.voxels)
    if (v >= kFirstLesion) lesions.insert(static_cast<int>(v));
  EXPECT_EQ(lesions, (std::set<int>{6, 7, 8, 9, 10, 11, 12, 13}));
  options.lesion_count = 0;
  const Volume no_lesion = sample_phantom_labels(options, PhantomSpace::Ct, ct_geometry(options));
  EXPECT_LT(*std::max_element(no_lesion.voxels.begin(), no_lesion.voxels.end()), float{kFirstLesion});
}

// --- CT ----------------------------------------------------------------------

TEST(PhantomCt, InteriorTissueMeansAndNoiseMatchConfiguration) {
  const Phantom& phantom = reference_phantom();
  const PhantomOptions options = reference_options();
  for (std::size_t c = 0; c < kTissueClassCount; ++c) {
    const std::vector<std::size_t> voxels = interior_voxels(phantom.labels, c);
    ASSERT_GE(voxels.size(), 10u) << tissue_class_name(c);
    const Stats s = stats_of(phantom.ct, voxels);
    const double expected = phantom.truth["tissues"][c]["ct_hu"].get<double>();
    EXPECT_EQ(expected, options.tissues[c].ct_hu);
    // 4 standard errors plus half a unit for integer rounding.
    EXPECT_NEAR(s.mean, expected, 4.0 * s.standard_error() + 0.5) << tissue_class_name(c) << " n=" << s.count;
    if (s.count > 500) {
      EXPECT_NEAR(s.sd, options.ct_noise_sigma_hu, 0.15 * options.ct_noise_sigma_hu) << tissue_class_name(c);
    }
  }
  // Integer HU as scanners store them.
  for (float v : phantom.ct.voxels) ASSERT_EQ(v, std::nearbyint(v));
  EXPECT_EQ(phantom.ct.metadata.units, "HU");
}

// --- MRI ---------------------------------------------------------------------

TEST(PhantomMri, TissueMeansRicianStatisticsAndContrastOrder) {
  PhantomOptions options = reference_options();
  options.mri_bias_strength = 0.0;  // bias is tested separately; here absolute levels
  const Phantom phantom = generate_phantom(options);
  // Tissues as the MRI sees them (displaced anatomy), not the CT label map.
  const Volume mri_labels = sample_phantom_labels(options, PhantomSpace::Mri, phantom.t1.geometry);
  const double sigma = options.mri_rician_sigma;

  std::array<Stats, kTissueClassCount> t1{}, t2{};
  for (std::size_t c = 0; c < kTissueClassCount; ++c) {
    const std::vector<std::size_t> voxels = interior_voxels(mri_labels, c);
    ASSERT_GE(voxels.size(), 10u) << tissue_class_name(c);
    t1[c] = stats_of(phantom.t1, voxels);
    t2[c] = stats_of(phantom.t2, voxels);
    for (auto [stats, signal] : {std::pair{t1[c], options.tissues[c].t1}, std::pair{t2[c], options.tissues[c].t2}}) {
      // Rician magnitude: Rayleigh mean sigma*sqrt(pi/2) where there is no
      // signal, about sqrt(S^2 + sigma^2) where S >> sigma.
      const double expected = signal == 0.0 ? sigma * std::sqrt(kPi / 2) : std::sqrt(signal * signal + sigma * sigma);
      EXPECT_NEAR(stats.mean, expected, 4.0 * stats.standard_error() + 0.01 * expected)
          << tissue_class_name(c) << " signal " << signal;
    }
  }
  // Magnitude images are never negative; in air the spread is Rayleigh's.
  EXPECT_GE(*std::min_element(phantom.t1.voxels.begin(), phantom.t1.voxels.end()), 0.0f);
  EXPECT_NEAR(t1[kAir].sd, sigma * std::sqrt(2.0 - kPi / 2), 0.1 * sigma);

  // T1: fat > WM > GM > CSF > bone.  T2: CSF > GM > WM.  Lesion distinct.
  EXPECT_GT(t1[kScalp].mean, t1[kWhiteMatter].mean);
  EXPECT_GT(t1[kWhiteMatter].mean, t1[kGreyMatter].mean);
  EXPECT_GT(t1[kGreyMatter].mean, t1[kCsf].mean);
  EXPECT_GT(t1[kCsf].mean, t1[kSkull].mean);
  EXPECT_GT(t2[kCsf].mean, t2[kGreyMatter].mean);
  EXPECT_GT(t2[kGreyMatter].mean, t2[kWhiteMatter].mean);
  const std::size_t lesion = kTissueClassCount - 1;
  for (std::size_t other : {std::size_t{kGreyMatter}, std::size_t{kWhiteMatter}}) {
    EXPECT_GT(std::abs(t1[lesion].mean - t1[other].mean),
              5 * (t1[lesion].standard_error() + t1[other].standard_error()));
    EXPECT_GT(std::abs(t2[lesion].mean - t2[other].mean),
              5 * (t2[lesion].standard_error() + t2[other].standard_error()));
  }
}

TEST(PhantomMri, BiasFieldIsSmoothMultiplicativeSharedAndAsRecorded) {
  PhantomOptions options;
  options.size = {48, 48, 48};
  options.mri_rician_sigma = 0.0;
  options.mri_blur_sigma_mm = 0.0;
  options.mri_bias_strength = 0.0;
  const Phantom flat = generate_phantom(options);
  options.mri_bias_strength = 0.3;
  const Phantom biased = generate_phantom(options);

  const nlohmann::json& field = biased.truth["mri"]["bias_field"];
  const double scale = field["length_scale_mm"].get<double>();
  const Geometry& g = biased.t1.geometry;
  double low = 1e9, high = 0;
  for (std::size_t k = 0; k < g.size[2]; ++k)
    for (std::size_t j = 0; j < g.size[1]; ++j)
      for (std::size_t i = 0; i + 1 < g.size[0]; ++i) {
        const std::size_t n = g.linear_index(i, j, k);
        if (flat.t1.voxels[n] < 100.0f || flat.t1.voxels[n + 1] < 100.0f) continue;
        const double gain = biased.t1.voxels[n] / flat.t1.voxels[n];
        const double next_gain = biased.t1.voxels[n + 1] / flat.t1.voxels[n + 1];
        low = std::min(low, gain);
        high = std::max(high, gain);
        ASSERT_NEAR(next_gain, gain, 0.02 * gain) << "bias field is not smooth";
        ASSERT_NEAR(biased.t2.voxels[n] / flat.t2.voxels[n], gain, 1e-4 * gain) << "T1 and T2 share the coil";
        // The recorded model reproduces the gain.
        const Point p = g.index_to_point({double(i), double(j), double(k)});
        const double x = p[0] / scale, y = p[1] / scale, z = p[2] / scale;
        const double basis[9] = {x, y, z, x * x, y * y, z * z, x * y, y * z, x * z};
        double exponent = 0;
        for (int b = 0; b < 9; ++b) exponent += field["coefficients"][b].get<double>() * basis[b];
        ASSERT_NEAR(std::exp(0.3 * exponent), gain, 1e-4 * gain);
      }
  EXPECT_GE(low, std::exp(-0.3) - 1e-6);
  EXPECT_LE(high, std::exp(0.3) + 1e-6);
  EXPECT_GT(high / low, 1.15) << "bias field too weak to matter";
}

// --- PET ---------------------------------------------------------------------

TEST(PhantomPet, UnblurredTissueMeansPoissonNoiseAndSuv) {
  PhantomOptions options = reference_options();
  options.pet_fwhm_mm = 0.0;  // no PSF: every interior voxel shows its tissue's activity
  const Phantom phantom = generate_phantom(options);
  const Volume pet_labels = sample_phantom_labels(options, PhantomSpace::Pet, phantom.pet.geometry);
  const double bq_per_suv = phantom.truth["pet"]["bq_per_ml_per_suvbw"].get<double>();
  const double bq_per_count = bq_per_suv / options.pet_counts_per_voxel_at_suv1;

  std::array<Stats, kTissueClassCount> pet{};
  for (std::size_t c = 0; c < kTissueClassCount; ++c) {
    pet[c] = stats_of(phantom.pet, interior_voxels(pet_labels, c));
    ASSERT_GE(pet[c].count, 10u) << tissue_class_name(c);
    const double expected = options.tissues[c].pet_suvbw * bq_per_suv;
    EXPECT_NEAR(phantom.truth["tissues"][c]["pet_bq_per_ml"].get<double>(), expected, 1e-9 * expected);
    EXPECT_NEAR(pet[c].mean, expected, 4.0 * pet[c].standard_error() + 1e-6) << tissue_class_name(c);
    // Poisson counts: variance = mean * (Bq/mL per count).
    if (expected > 0.0 && pet[c].count > 200) {
      EXPECT_NEAR(pet[c].sd * pet[c].sd / (pet[c].mean * bq_per_count), 1.0, 0.2) << tissue_class_name(c);
    }
  }
  const std::size_t lesion = kTissueClassCount - 1;
  const double gm_to_wm = pet[kGreyMatter].mean / pet[kWhiteMatter].mean;
  EXPECT_GT(gm_to_wm, 2.5);
  EXPECT_LT(gm_to_wm, 3.0);
  for (std::size_t c = 0; c < lesion; ++c) EXPECT_GT(pet[lesion].mean, pet[c].mean);
  EXPECT_LT(pet[kCsf].mean, 0.05 * pet[kGreyMatter].mean);
  EXPECT_LT(pet[kScalp].mean, pet[kWhiteMatter].mean);
  EXPECT_LT(pet[kSkull].mean, pet[kWhiteMatter].mean);

  // SUVbw from the metadata alone gives back the configured white matter SUV.
  const auto& extra = phantom.pet.metadata.extra;
  EXPECT_EQ(phantom.pet.metadata.modality, "PT");
  EXPECT_EQ(phantom.pet.metadata.units, "Bq/mL");
  const double decay =
      std::exp2(-std::stod(extra.at("injection_to_scan_delay_s")) / std::stod(extra.at("radionuclide_half_life_s")));
  ASSERT_EQ(extra.at("decay_correction"), "START");
  const double suv = pet[kWhiteMatter].mean * std::stod(extra.at("patient_weight_kg")) * 1000.0 /
                     (std::stod(extra.at("injected_dose_bq")) * decay);
  EXPECT_NEAR(suv, options.tissues[kWhiteMatter].pet_suvbw, 0.02 * options.tissues[kWhiteMatter].pet_suvbw);
}

// How the PSF is measured: a Gaussian PSF adds sigma^2 to the per-axis
// spatial variance of any activity distribution (variances of independent
// displacements add). The phantom is reduced to a single uniform spherical
// lesion of radius a (all other tissues at zero uptake, no shape wobble, no
// count noise), whose own per-axis variance is a^2/5. The intensity-weighted
// second moment of the output PET image about its centroid, on the coarse
// 3 mm PET grid, then gives sigma = sqrt(var - a^2/5) and
// FWHM = 2 sqrt(2 ln 2) sigma. This measures the whole chain (sampling,
// blur, decimation to the PET grid) and needs no curve fit.
TEST(PhantomPet, MeasuredPsfFwhmMatchesConfiguredWithinTenPercent) {
  for (double fwhm : {6.0, 9.0}) {
    PhantomOptions options;
    options.size = {32, 32, 32};
    options.pet_fwhm_mm = fwhm;
    options.pet_counts_per_voxel_at_suv1 = 0.0;
    options.lesion_radius_mm = 4.0;
    options.lesion_irregularity = 0.0;
    for (std::size_t c = 0; c + 1 < kTissueClassCount; ++c) options.tissues[c].pet_suvbw = 0.0;
    const Phantom phantom = generate_phantom(options);
    const Volume& pet = phantom.pet;
    const Geometry& g = pet.geometry;
    ASSERT_DOUBLE_EQ(g.spacing[0], 3.0);

    double total = 0.0;
    Point mean{0, 0, 0};
    for (std::size_t k = 0; k < g.size[2]; ++k)
      for (std::size_t j = 0; j < g.size[1]; ++j)
        for (std::size_t i = 0; i < g.size[0]; ++i) {
          const double w = pet.at(i, j, k);
          total += w;
          mean[0] += w * g.spacing[0] * double(i);
          mean[1] += w * g.spacing[1] * double(j);
          mean[2] += w * g.spacing[2] * double(k);
        }
    ASSERT_GT(total, 0.0);
    for (double& m : mean) m /= total;
    Point variance{0, 0, 0};
    for (std::size_t k = 0; k < g.size[2]; ++k)
      for (std::size_t j = 0; j < g.size[1]; ++j)
        for (std::size_t i = 0; i < g.size[0]; ++i) {
          const double w = pet.at(i, j, k);
          const double position[3] = {g.spacing[0] * double(i), g.spacing[1] * double(j), g.spacing[2] * double(k)};
          for (int axis = 0; axis < 3; ++axis)
            variance[axis] += w * (position[axis] - mean[axis]) * (position[axis] - mean[axis]);
        }
    const double source_variance = options.lesion_radius_mm * options.lesion_radius_mm / 5.0;
    double mean_variance = 0.0;
    for (int axis = 0; axis < 3; ++axis) {
      variance[axis] /= total;
      const double axis_fwhm = 2.3548200450309493 * std::sqrt(variance[axis] - source_variance);
      EXPECT_NEAR(axis_fwhm, fwhm, 0.10 * fwhm) << "axis " << axis;
      mean_variance += variance[axis] / 3.0;
    }
    const double measured = 2.3548200450309493 * std::sqrt(mean_variance - source_variance);
    EXPECT_NEAR(measured, fwhm, 0.05 * fwhm) << "configured " << fwhm << " mm, measured " << measured << " mm";
    RecordProperty("measured_fwhm_mm_for_" + std::to_string(static_cast<int>(fwhm)), std::to_string(measured));
  }
}

// --- files and geometry ------------------------------------------------------

TEST(PhantomFiles, WrittenNiftiKeepSpacingOriginNonIdentityDirectionAndValues) {
  PhantomOptions options;
  options.size = {40, 36, 32};
  options.ct_spacing_mm = Point{2.0, 2.5, 3.0};
  // Oblique acquisition: 30 degrees about z, then 15 degrees about x.
  const double a = 30.0 * kPi / 180.0, b = 15.0 * kPi / 180.0;
  const double rz[9] = {std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a), 0, 0, 0, 1};
  const double rx[9] = {1, 0, 0, 0, std::cos(b), -std::sin(b), 0, std::sin(b), std::cos(b)};
  std::array<double, 9> direction{};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c)
      for (int m = 0; m < 3; ++m) direction[r * 3 + c] += rx[r * 3 + m] * rz[m * 3 + c];
  options.direction = direction;
  const Phantom phantom = generate_phantom(options);
  TempDir dir;
  write_phantom(phantom, dir.path());

  const std::vector<std::pair<std::string, const Volume*>> files{{"ct.nii.gz", &phantom.ct},
                                                                 {"t1.nii.gz", &phantom.t1},
                                                                 {"t2.nii.gz", &phantom.t2},
                                                                 {"pet.nii.gz", &phantom.pet},
                                                                 {"labels.nii.gz", &phantom.labels}};
  for (const auto& [name, in_memory] : files) {
    SCOPED_TRACE(name);
    const Volume read = read_volume(dir.path() / name);
    const Geometry& g = read.geometry;
    EXPECT_EQ(g.size, in_memory->geometry.size);
    for (int n = 0; n < 9; ++n) EXPECT_NEAR(g.direction[n], direction[n], 1e-5);
    const Point centre = g.index_to_point({(g.size[0] - 1) / 2.0, (g.size[1] - 1) / 2.0, (g.size[2] - 1) / 2.0});
    for (int axis = 0; axis < 3; ++axis) {
      EXPECT_NEAR(g.spacing[axis], in_memory->geometry.spacing[axis], 1e-5);
      EXPECT_NEAR(g.origin[axis], in_memory->geometry.origin[axis], 1e-3);
      EXPECT_NEAR(centre[axis], 0.0, 1e-3) << "volume must be centred on the origin";
    }
    ASSERT_EQ(read.voxels.size(), in_memory->voxels.size());
    EXPECT_TRUE(std::equal(read.voxels.begin(), read.voxels.end(), in_memory->voxels.begin()))
        << "stored values differ from the in-memory volume";
  }
  const Geometry ct = read_volume(dir.path() / "ct.nii.gz").geometry;
  EXPECT_EQ(ct.size, (std::array<std::size_t, 3>{40, 36, 32}));
  EXPECT_NEAR(ct.spacing[0], 2.0, 1e-6);
  EXPECT_NEAR(ct.spacing[1], 2.5, 1e-6);
  EXPECT_NEAR(ct.spacing[2], 3.0, 1e-6);
  const Geometry pet = read_volume(dir.path() / "pet.nii.gz").geometry;
  EXPECT_EQ(pet.size, (std::array<std::size_t, 3>{27, 30, 32}));  // same field of view at 3 mm
  for (double s : pet.spacing) EXPECT_NEAR(s, 3.0, 1e-6);

  // The anatomy stays put in world coordinates whatever the grid direction:
  // interior landmarks inside this small field of view carry their label.
  const Volume labels = read_volume(dir.path() / "labels.nii.gz");
  int checked = 0;
  for (const auto& landmark : phantom.truth["landmarks"]) {
    if (landmark["kind"] != "interior" || landmark["clearance_mm"].get<double>() < half_voxel_diagonal(ct)) continue;
    std::size_t n = 0;
    if (!nearest_voxel(ct, json_point(landmark["ct_lps_mm"]), n)) continue;
    EXPECT_EQ(labels.voxels[n], landmark["label"].get<int>()) << landmark["name"];
    ++checked;
  }
  EXPECT_GE(checked, 5);

  const nlohmann::json truth = nlohmann::json::parse(file_bytes(dir.path() / "truth.json"));
  EXPECT_EQ(truth, phantom.truth);
  EXPECT_EQ(phantom_options_from_json(truth["options"]).size, options.size);
}

// --- truth: transforms and landmarks -------------------------------------------

TEST(PhantomTruth, TransformsFollowItkEuler3DConvention) {
  const nlohmann::json& truth = reference_phantom().truth;
  for (const char* modality : {"mri", "pet"}) {
    SCOPED_TRACE(modality);
    const nlohmann::json& t = truth["transforms"][modality];
    EXPECT_EQ(t["direction"], "fixed_to_moving");
    EXPECT_EQ(t["fixed"], "ct");
    auto euler = itk::Euler3DTransform<double>::New();
    itk::Euler3DTransform<double>::InputPointType centre;
    for (int axis = 0; axis < 3; ++axis) centre[axis] = t["center_lps_mm"][axis].get<double>();
    euler->SetCenter(centre);
    euler->SetRotation(t["rotation_rad"][0].get<double>(), t["rotation_rad"][1].get<double>(),
                       t["rotation_rad"][2].get<double>());
    itk::Euler3DTransform<double>::OutputVectorType translation;
    for (int axis = 0; axis < 3; ++axis) translation[axis] = t["translation_mm"][axis].get<double>();
    euler->SetTranslation(translation);
    for (int r = 0; r < 3; ++r) {
      for (int c = 0; c < 3; ++c) EXPECT_NEAR(euler->GetMatrix()(r, c), t["matrix"][r][c].get<double>(), 1e-12);
      EXPECT_NEAR(euler->GetOffset()[r], t["offset_mm"][r].get<double>(), 1e-9);
    }
    // Displacements are the non-trivial defaults (within 10 degrees / 15 mm).
    double largest_angle = 0, shift = 0;
    for (int axis = 0; axis < 3; ++axis) {
      largest_angle = std::max(largest_angle, std::abs(t["rotation_deg"][axis].get<double>()));
      shift += std::pow(t["translation_mm"][axis].get<double>(), 2);
    }
    EXPECT_GT(largest_angle, 1.0);
    EXPECT_LE(largest_angle, 10.0);
    EXPECT_GT(std::sqrt(shift), 3.0);
    EXPECT_LE(std::sqrt(shift), 15.0);
    for (const auto& landmark : truth["landmarks"]) {
      itk::Euler3DTransform<double>::InputPointType x;
      for (int axis = 0; axis < 3; ++axis) x[axis] = landmark["ct_lps_mm"][axis].get<double>();
      const auto y = euler->TransformPoint(x);
      const nlohmann::json& recorded = landmark[std::string(modality) + "_lps_mm"];
      for (int axis = 0; axis < 3; ++axis) EXPECT_NEAR(y[axis], recorded[axis].get<double>(), 1e-9);
    }
  }
}

TEST(PhantomTruth, AtLeastTwentyLandmarksInsideTheHeadWithRecordedLabels) {
  const Phantom& phantom = reference_phantom();
  const PhantomOptions options = reference_options();
  const nlohmann::json& landmarks = phantom.truth["landmarks"];
  ASSERT_GE(landmarks.size(), 20u);
  std::set<std::string> names;
  Point low{1e9, 1e9, 1e9}, high{-1e9, -1e9, -1e9};
  int interior = 0, checked_in_label_map = 0;
  for (const auto& landmark : landmarks) {
    const std::string name = landmark["name"];
    SCOPED_TRACE(name);
    names.insert(name);
    const Point p = json_point(landmark["ct_lps_mm"]);
    for (int axis = 0; axis < 3; ++axis) {
      low[axis] = std::min(low[axis], p[axis]);
      high[axis] = std::max(high[axis], p[axis]);
    }
    const int label = landmark["label"];
    EXPECT_NE(label, kAir);
    if (landmark["kind"] == "interior") {
      ++interior;
      EXPECT_EQ(model_label_at(options, PhantomSpace::Ct, p), label);
      if (landmark["clearance_mm"].get<double>() >= half_voxel_diagonal(phantom.labels.geometry)) {
        std::size_t n = 0;
        ASSERT_TRUE(nearest_voxel(phantom.labels.geometry, p, n));
        EXPECT_EQ(phantom.labels.voxels[n], label);
        ++checked_in_label_map;
      }
    } else {
      // A surface point: half a millimetre inwards is the recorded tissue,
      // half a millimetre outwards the outer one.
      const double r = std::sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]);
      const Point inward{p[0] * (1 - 0.5 / r), p[1] * (1 - 0.5 / r), p[2] * (1 - 0.5 / r)};
      const Point outward{p[0] * (1 + 0.5 / r), p[1] * (1 + 0.5 / r), p[2] * (1 + 0.5 / r)};
      EXPECT_EQ(model_label_at(options, PhantomSpace::Ct, inward), label);
      EXPECT_EQ(model_label_at(options, PhantomSpace::Ct, outward), landmark["outer_label"].get<int>());
    }
  }
  EXPECT_EQ(names.size(), landmarks.size()) << "landmark names must be unique";
  EXPECT_GE(interior, 10);
  EXPECT_GE(checked_in_label_map, 10);
  for (int axis = 0; axis < 3; ++axis)
    EXPECT_GT(high[axis] - low[axis], 100.0) << "landmarks must spread over the head";
}

TEST(PhantomTruth, MappedLandmarksLandOnTheSameTissueInEachModality) {
  // Larger displacement than the default so that ignoring the transform
  // visibly fails, while the recorded mapping must be exact.
  PhantomOptions options;
  options.size = {64, 64, 64};
  options.mri_displacement = {{8.0, -6.0, 10.0}, {12.0, -9.0, 8.0}};
  options.pet_displacement = {{-5.0, 4.0, -7.0}, {-8.0, 10.0, -6.0}};
  options.mri_rician_sigma = 0.0;
  options.mri_bias_strength = 0.0;
  options.mri_blur_sigma_mm = 0.0;
  const Phantom phantom = generate_phantom(options);
  const Geometry& mri_grid = phantom.t2.geometry;
  const double half_diagonal = half_voxel_diagonal(mri_grid);
  int mapped_ok = 0, unmapped_ok = 0, used = 0;
  for (const auto& landmark : phantom.truth["landmarks"]) {
    if (landmark["kind"] != "interior" || landmark["clearance_mm"].get<double>() < half_diagonal) continue;
    const int label = landmark["label"];
    const double expected_t2 = options.tissues[std::min(label, 6)].t2;
    std::size_t mapped = 0, unmapped = 0;
    ASSERT_TRUE(nearest_voxel(mri_grid, json_point(landmark["mri_lps_mm"]), mapped));
    ASSERT_TRUE(nearest_voxel(mri_grid, json_point(landmark["ct_lps_mm"]), unmapped));
    ++used;
    mapped_ok += phantom.t2.voxels[mapped] == static_cast<float>(expected_t2);
    unmapped_ok += phantom.t2.voxels[unmapped] == static_cast<float>(expected_t2);
    // And the analytic model agrees at the exact mapped point, in both MRI and PET space.
    EXPECT_EQ(model_label_at(options, PhantomSpace::Mri, json_point(landmark["mri_lps_mm"])), label);
    EXPECT_EQ(model_label_at(options, PhantomSpace::Pet, json_point(landmark["pet_lps_mm"])), label);
  }
  EXPECT_GE(used, 10);
  EXPECT_EQ(mapped_ok, used) << "T2 intensity at mapped landmarks must be that of the recorded tissue";
  EXPECT_LE(unmapped_ok, used - 3) << "test not discriminative: the displacement does not move tissue";
}

TEST(PhantomTruth, LesionIsWhereTheTransformsSayInMriAndPet) {
  const Phantom& phantom = reference_phantom();
  const PhantomOptions options = reference_options();
  const nlohmann::json* lesion_landmark = nullptr;
  for (const auto& landmark : phantom.truth["landmarks"])
    if (landmark["name"] == "lesion_0_center") lesion_landmark = &landmark;
  ASSERT_NE(lesion_landmark, nullptr);
  ASSERT_EQ((*lesion_landmark)["label"], kFirstLesion);
  const Point ct_point = json_point((*lesion_landmark)["ct_lps_mm"]);
  const Point pet_point = json_point((*lesion_landmark)["pet_lps_mm"]);
  const Point mri_point = json_point((*lesion_landmark)["mri_lps_mm"]);

  // PET: the hot spot (above 80% of the lesion's activity, which no other
  // tissue reaches even with noise) is centred on the mapped lesion centre.
  const double lesion_activity = phantom.truth["tissues"][6]["pet_bq_per_ml"].get<double>();
  const double grey_activity = phantom.truth["tissues"][kGreyMatter]["pet_bq_per_ml"].get<double>();
  const double threshold = 0.8 * lesion_activity;
  ASSERT_GT(threshold, 1.25 * grey_activity);
  const Point hot = centroid(
      phantom.pet, [&](float v) { return v > threshold; }, true);
  EXPECT_LT(distance(hot, pet_point), 2.0) << "PET hot spot is not at the mapped lesion centre";
  EXPECT_GT(distance(ct_point, pet_point), 4.0) << "PET displacement too small for this test to mean anything";
  std::size_t n = 0;
  ASSERT_TRUE(nearest_voxel(phantom.pet.geometry, pet_point, n));
  EXPECT_GT(phantom.pet.voxels[n], threshold);

  // MRI: the lesion's centroid in the MRI-space label map is the CT centroid
  // carried over by T_mri (a rigid map moves centroids exactly).
  const Point ct_centroid = centroid(
      phantom.labels, [](float v) { return v == kFirstLesion; }, false);
  const Volume mri_labels = sample_phantom_labels(options, PhantomSpace::Mri, phantom.t1.geometry);
  const Point mri_centroid = centroid(
      mri_labels, [](float v) { return v == kFirstLesion; }, false);
  const nlohmann::json& t = phantom.truth["transforms"]["mri"];
  Point expected{0, 0, 0};
  for (int r = 0; r < 3; ++r) {
    expected[r] = t["offset_mm"][r].get<double>();
    for (int c = 0; c < 3; ++c) expected[r] += t["matrix"][r][c].get<double>() * ct_centroid[c];
  }
  EXPECT_LT(distance(mri_centroid, expected), 1.0);
  EXPECT_LT(distance(mri_centroid, mri_point), 2.0);
  EXPECT_GT(distance(ct_point, mri_point), 6.0);
  // The mapped centre itself is lesion in MRI space.
  ASSERT_TRUE(nearest_voxel(phantom.t1.geometry, mri_point, n));
  EXPECT_EQ(mri_labels.voxels[n], kFirstLesion);
}

// --- deformation -----------------------------------------------------------

// Trilinear value of a displacement field at a physical point (inside the grid).
Point interpolate_field(const DisplacementField& field, const Point& point) {
  const Geometry& g = field.geometry;
  const Point index = g.point_to_index(point);
  std::array<std::size_t, 3> base{};
  Point weight{};
  for (int axis = 0; axis < 3; ++axis) {
    const double clamped = std::clamp(index[axis], 0.0, double(g.size[axis]) - 1.000001);
    base[axis] = static_cast<std::size_t>(clamped);
    weight[axis] = clamped - double(base[axis]);
  }
  Point result{0, 0, 0};
  for (int corner = 0; corner < 8; ++corner) {
    double w = 1.0;
    std::array<std::size_t, 3> at = base;
    for (int axis = 0; axis < 3; ++axis) {
      const bool high = (corner >> axis) & 1;
      w *= high ? weight[axis] : 1.0 - weight[axis];
      at[axis] += high ? 1 : 0;
    }
    const auto d = field.at(at[0], at[1], at[2]);
    for (int axis = 0; axis < 3; ++axis) result[axis] += w * d[axis];
  }
  return result;
}

Point rigid_only(const nlohmann::json& transform, const Point& x) {
  Point y{};
  for (int r = 0; r < 3; ++r) {
    y[r] = transform["offset_mm"][r].get<double>();
    for (int c = 0; c < 3; ++c) y[r] += transform["matrix"][r][c].get<double>() * x[c];
  }
  return y;
}

PhantomOptions deformed_options() {
  PhantomOptions options;
  options.size = {64, 64, 64};
  options.mri_rician_sigma = 0.0;
  options.mri_bias_strength = 0.0;
  options.mri_blur_sigma_mm = 0.0;
  options.mri_deformation = {8.0, 20.0};
  options.pet_deformation = {8.0, 20.0};
  return options;
}

TEST(PhantomDeformation, LandmarksFollowTheDeformationOnTopOfTheRigidMotion) {
  const PhantomOptions options = deformed_options();
  const Phantom phantom = generate_phantom(options);
  ASSERT_TRUE(phantom.truth.contains("deformations"));
  const Geometry& mri_grid = phantom.t2.geometry;
  const double half_diagonal = half_voxel_diagonal(mri_grid);
  int used = 0, mapped_ok = 0;
  double largest_shift = 0.0;
  for (const auto& landmark : phantom.truth["landmarks"]) {
    const Point ct = json_point(landmark["ct_lps_mm"]);
    for (const char* modality : {"mri", "pet"}) {
      const Point recorded = json_point(landmark[std::string(modality) + "_lps_mm"]);
      largest_shift =
          std::max(largest_shift, distance(recorded, rigid_only(phantom.truth["transforms"][modality], ct)));
    }
    if (landmark["kind"] != "interior" || landmark["clearance_mm"].get<double>() < half_diagonal) continue;
    const int label = landmark["label"];
    const float expected_t2 = static_cast<float>(options.tissues[std::min(label, 6)].t2);
    std::size_t mapped = 0;
    ASSERT_TRUE(nearest_voxel(mri_grid, json_point(landmark["mri_lps_mm"]), mapped));
    ++used;
    mapped_ok += phantom.t2.voxels[mapped] == expected_t2;
    // The analytic model agrees at the exact mapped points.
    EXPECT_EQ(model_label_at(options, PhantomSpace::Mri, json_point(landmark["mri_lps_mm"])), label);
    EXPECT_EQ(model_label_at(options, PhantomSpace::Pet, json_point(landmark["pet_lps_mm"])), label);
  }
  EXPECT_GE(used, 10);
  EXPECT_EQ(mapped_ok, used) << "T2 at the recorded (deformed) landmark positions must be the recorded tissue";
  // Largest displacement over the head is the amplitude asked (landmarks
  // sample it, so they see at most that much and a good part of it).
  EXPECT_LE(largest_shift, 8.0 + 1e-6);
  EXPECT_GT(largest_shift, 3.0);
  const auto& mri = phantom.truth["deformations"]["mri"];
  EXPECT_GT(mri["smallest_jacobian_determinant"].get<double>(), 0.0);
  EXPECT_LT(mri["largest_displacement_gradient_norm"].get<double>(), 0.9);
  EXPECT_LT(mri["image_sampling_inverse_error_mm"].get<double>(), 0.02);
  EXPECT_EQ(mri["waves"].size(), 32u);
}

TEST(PhantomDeformation, DisplacementFieldFilesHoldTheWholeMappingOnTheCtGrid) {
  const PhantomOptions options = deformed_options();
  const Phantom phantom = generate_phantom(options);
  TempDir dir;
  write_phantom(phantom, dir.path());
  const nlohmann::json truth = nlohmann::json::parse(file_bytes(dir.path() / "truth.json"));
  for (const char* modality : {"mri", "pet"}) {
    SCOPED_TRACE(modality);
    const std::string file = truth["deformations"][modality]["displacement_field"]["file"];
    EXPECT_EQ(file, std::string(modality) + "_displacement.nrrd");
    const DisplacementField field = read_displacement_field_file(dir.path() / file);
    // Same grid as the CT, geometry included.
    const Geometry& ct = phantom.ct.geometry;
    EXPECT_EQ(field.geometry.size, ct.size);
    for (int axis = 0; axis < 3; ++axis) {
      EXPECT_NEAR(field.geometry.spacing[axis], ct.spacing[axis], 1e-9);
      EXPECT_NEAR(field.geometry.origin[axis], ct.origin[axis], 1e-6);
    }
    // x + d(x) is the recorded landmark position (trilinear between 3.75 mm
    // voxels of a 20 mm-smooth field: within 0.25 mm, 0.08 mm on average).
    int checked = 0;
    double total_error = 0.0;
    for (const auto& landmark : truth["landmarks"]) {
      const Point ct_point = json_point(landmark["ct_lps_mm"]);
      const Point d = interpolate_field(field, ct_point);
      const Point mapped{ct_point[0] + d[0], ct_point[1] + d[1], ct_point[2] + d[2]};
      const double error = distance(mapped, json_point(landmark[std::string(modality) + "_lps_mm"]));
      EXPECT_LT(error, 0.25) << landmark["name"];
      total_error += error;
      ++checked;
    }
    EXPECT_GE(checked, 20);
    EXPECT_LT(total_error / checked, 0.08);
    // Every head voxel x of the CT shows, at x + d(x) in the modality's own
    // labels, the same tissue (up to voxel rounding at boundaries); the
    // rigid part alone misses clearly more, so the field is not just the
    // rigid motion.
    const PhantomSpace space = std::string(modality) == "mri" ? PhantomSpace::Mri : PhantomSpace::Pet;
    // The modality's labels on a grid twice as fine, so that rounding to
    // the nearest voxel costs less agreement.
    Geometry fine = ct;
    for (int axis = 0; axis < 3; ++axis) {
      fine.size[axis] = 2 * ct.size[axis];
      fine.spacing[axis] = ct.spacing[axis] / 2;
      fine.origin[axis] = ct.origin[axis] - ct.spacing[axis] / 4;  // identity direction
    }
    const Volume own_labels = sample_phantom_labels(options, space, fine);
    std::size_t head = 0, agree = 0, agree_rigid = 0;
    for (std::size_t k = 0; k < ct.size[2]; ++k)
      for (std::size_t j = 0; j < ct.size[1]; ++j)
        for (std::size_t i = 0; i < ct.size[0]; ++i) {
          const float label = phantom.labels.voxels[ct.linear_index(i, j, k)];
          if (label == kAir) continue;
          const Point x = ct.index_to_point({double(i), double(j), double(k)});
          const auto d = field.at(i, j, k);
          std::size_t at = 0;
          ++head;
          if (nearest_voxel(fine, {x[0] + d[0], x[1] + d[1], x[2] + d[2]}, at)) agree += own_labels.voxels[at] == label;
          if (nearest_voxel(fine, rigid_only(truth["transforms"][modality], x), at))
            agree_rigid += own_labels.voxels[at] == label;
        }
    const double agreement = double(agree) / double(head), rigid_agreement = double(agree_rigid) / double(head);
    EXPECT_GT(agreement, 0.85) << "rigid only: " << rigid_agreement;
    EXPECT_LT(rigid_agreement, agreement - 0.1);
  }
}

TEST(PhantomDeformation, OffByDefaultSameBytesForAnyThreadCountAndTooStrongIsRefused) {
  PhantomOptions options;
  options.size = {32, 32, 32};
  const Phantom rigid = generate_phantom(options);
  EXPECT_FALSE(rigid.mri_displacement_field.has_value());
  EXPECT_FALSE(rigid.truth.contains("deformations"));

  options.mri_deformation = {7.0, 20.0};
  TempDir first, second;
  write_phantom(generate_phantom(options), first.path());
  const int threads = itk::MultiThreaderBase::GetGlobalDefaultNumberOfThreads();
  itk::MultiThreaderBase::SetGlobalDefaultNumberOfThreads(1);
  write_phantom(generate_phantom(options), second.path());
  itk::MultiThreaderBase::SetGlobalDefaultNumberOfThreads(threads);
  for (const char* name : {"t1.nii.gz", "labels.nii.gz", "mri_displacement.nrrd", "truth.json"}) {
    SCOPED_TRACE(name);
    const std::string bytes = file_bytes(first.path() / name);
    ASSERT_FALSE(bytes.empty());
    EXPECT_TRUE(bytes == file_bytes(second.path() / name));
  }
  EXPECT_FALSE(fs::exists(first.path() / "pet_displacement.nrrd")) << "PET was not deformed";
  // The MRI differs from the undeformed one; CT does not.
  TempDir undeformed;
  write_phantom(rigid, undeformed.path());
  EXPECT_TRUE(file_bytes(first.path() / "ct.nii.gz") == file_bytes(undeformed.path() / "ct.nii.gz"));
  EXPECT_FALSE(file_bytes(first.path() / "t1.nii.gz") == file_bytes(undeformed.path() / "t1.nii.gz"));

  options.mri_deformation = {30.0, 5.0};
  try {
    generate_phantom(options);
    FAIL() << "a folding deformation was accepted";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("too strong"), std::string::npos) << error.what();
  }
  options.mri_deformation = {5.0, 2.0};
  EXPECT_THROW(validate(options), std::runtime_error);
  const PhantomOptions parsed = phantom_options_from_json(
      nlohmann::json::parse(R"({"mri_deformation": {"amplitude_mm": 6, "smoothness_mm": 25}})"));
  EXPECT_EQ(parsed.mri_deformation.amplitude_mm, 6.0);
  EXPECT_EQ(parsed.mri_deformation.smoothness_mm, 25.0);
  EXPECT_THROW(phantom_options_from_json(nlohmann::json::parse(R"({"pet_deformation": {"amplitude": 6}})")),
               std::runtime_error);
}

TEST(DisplacementFieldFile, RefusesNiftiAndImagesThatAreNotVectorFields) {
  DisplacementField field;
  field.geometry.size = {4, 3, 2};
  field.geometry.spacing = {1.5, 2.0, 2.5};
  field.geometry.origin = {-3, 4, 5};
  field.geometry.direction = {0, 1, 0, -1, 0, 0, 0, 0, 1};
  for (std::size_t n = 0; n < 3 * field.geometry.voxel_count(); ++n) field.vectors.push_back(0.25f * float(n) - 3.0f);
  TempDir dir;
  for (const char* name : {"field.nrrd", "field.mha"}) {
    SCOPED_TRACE(name);
    write_displacement_field_file(field, dir.path() / name);
    const DisplacementField back = read_displacement_field_file(dir.path() / name);
    EXPECT_EQ(back.vectors, field.vectors);
    EXPECT_EQ(back.geometry.size, field.geometry.size);
    for (int n = 0; n < 9; ++n) EXPECT_NEAR(back.geometry.direction[n], field.geometry.direction[n], 1e-12);
  }
  try {
    write_displacement_field_file(field, dir.path() / "field.nii.gz");
    FAIL() << "NIfTI accepted";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("RAS or LPS"), std::string::npos) << error.what();
  }
  EXPECT_FALSE(fs::exists(dir.path() / "field.nii.gz"));
  Volume scalar;
  scalar.geometry = field.geometry;
  scalar.voxels.assign(scalar.geometry.voxel_count(), 1.0f);
  write_volume(scalar, dir.path() / "scalar.nrrd");
  try {
    read_displacement_field_file(dir.path() / "scalar.nrrd");
    FAIL() << "a scalar image was read as a displacement field";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("1 components"), std::string::npos) << error.what();
  }
  field.vectors.pop_back();
  EXPECT_THROW(write_displacement_field_file(field, dir.path() / "short.nrrd"), std::runtime_error);
}

// --- determinism ---------------------------------------------------------------

TEST(PhantomDeterminism, SameSeedSameBytesAnyThreadCountDifferentSeedDifferentNoise) {
  PhantomOptions options;
  options.size = {32, 32, 32};
  options.seed = 11;
  TempDir first, second, other_seed;
  write_phantom(generate_phantom(options), first.path());
  const int threads = itk::MultiThreaderBase::GetGlobalDefaultNumberOfThreads();
  itk::MultiThreaderBase::SetGlobalDefaultNumberOfThreads(1);
  write_phantom(generate_phantom(options), second.path());
  itk::MultiThreaderBase::SetGlobalDefaultNumberOfThreads(threads);
  options.seed = 12;
  write_phantom(generate_phantom(options), other_seed.path());

  for (const char* name : {"ct.nii.gz", "t1.nii.gz", "t2.nii.gz", "pet.nii.gz", "labels.nii.gz", "truth.json"}) {
    SCOPED_TRACE(name);
    const std::string bytes = file_bytes(first.path() / name);
    ASSERT_FALSE(bytes.empty());
    EXPECT_TRUE(bytes == file_bytes(second.path() / name)) << "same seed must give identical bytes";
    const bool same_for_other_seed = bytes == file_bytes(other_seed.path() / name);
    // The anatomy has its own seed: only the noisy images and truth change.
    EXPECT_EQ(same_for_other_seed, std::string(name) == "labels.nii.gz");
  }
  // Atomic writes leave no temporary files behind.
  for (const auto& entry : fs::directory_iterator(first.path()))
    EXPECT_NE(entry.path().filename().string().rfind(".fftmp", 0), 0u) << entry.path();
}

}  // namespace
}  // namespace fusionflow::testdata
