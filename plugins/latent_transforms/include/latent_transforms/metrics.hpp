// Fusion-quality metrics of the image-fusion literature, computed as papers
// do: on 2D (axial) slices of 8-bit grey-level images, per slice and averaged,
// or optionally on the whole volume.
//
// Intensities: the fused image and every source are mapped with ONE linear
// map onto 0..255 and rounded to integer grey levels (as the 8-bit images
// papers evaluate): g = round(clamp(255 (x - low) / (high - low), 0, 255)),
// with [low, high] given, or the joint minimum and maximum of the fused
// volume and the sources. Non-finite voxels count as low. All metrics use
// these grey levels. Histograms have `bins` bins (grey level q goes to bin
// q * bins / 256).
//
//  EN    entropy of the fused image's histogram.
//  SD    population standard deviation of F.
//  SF    spatial frequency sqrt(RF^2 + CF^2) (+ DF^2 along z in 3D), each the
//        sum of squared neighbour differences along one axis divided by the
//        number of voxels (Eskicioglu & Fisher 1995).
//  MI    sum over sources of MI(F, S) from the joint histogram.
//  SCD   sum of correlation of differences (Aslantas & Bendes 2015):
//        corr(F - S2, S1) + corr(F - S1, S2), Pearson; two sources only.
//  VIF   sum over sources of vifp_mscale(S, F): Sheikh & Bovik's pixel-domain
//        multi-scale VIF (4 scales, Gaussian windows N = 17, 9, 5, 3 with
//        sigma N/5, 'valid' filtering, sigma_n^2 = 2), as in the VIFB toolbox.
//  Qabf  Xydeas & Petrovic (2000): Sobel gradients (zero padding), strength
//        preservation G = min(gS, gF) / max(gS, gF) (1 when equal), orientation
//        preservation A = 1 - |aS - aF| / (pi/2) with a = atan(sy/sx) (pi/2 where
//        sx = 0), Q = Gamma_g / (1 + exp(k_g (G - s_g))) * Gamma_a / (1 +
//        exp(k_a (A - s_a))) with 0.9994, -15, 0.5, 0.9879, -22, 0.8, and
//        Qabf = sum_v sum_S Q^{SF} w_S / sum_v sum_S w_S, w_S = gS^L, L = 1.
//  SSIM  sum over sources of the mean SSIM (Wang et al. 2004, ssim_index.m):
//        11x11 Gaussian window sigma 1.5, 'valid' region, K1 0.01, K2 0.03,
//        data range L = 255.
//
// protocol=paper: exactly what the published 2D tables report (CDDFuse and
// the methods compared with it use one widely shared evaluator): 8-bit images
// (grey levels from [range], default [0, 255], rounded; colour as its luma),
// then, where the above differ:
//  EN    in bits, 256 bins, whatever `units` and `bins` say;
//  SF    sqrt(mean of squared row differences + mean of squared column
//        differences), each mean over the differences ((W-1) H and W (H-1));
//  MI    in nats (the evaluator's mutual_info_score), 256 bins, summed over
//        the sources;
//  VIF   as above; a source whose VIF is undefined (0/0) counts 1;
//  Qabf  as above, but where gS = gF the strength term G is gF itself (the
//        evaluator's: G = 1 only for gF = 1), Sobel with zero padding;
//  SSIM  sum over sources of scikit-image's structural_similarity as the
//        evaluator calls it on float images: 7x7 uniform window, sample
//        covariance (x 49/48), K1 0.01, K2 0.03 and data range L = 2 (the
//        float dtype's), mean over the positions whose window fits.
// EN, SD, SCD are as above. Only 2D slices (mode slices_axial).
//
// In 3D (volume mode) EN, SD, SF, MI, SCD use every voxel and SSIM a 11^3
// Gaussian window; Qabf and VIF, defined on 2D gradients and 2D scales, pool
// their numerators and denominators over all axial slices.
// A metric that is undefined (constant images, too small for the window,
// SCD with other than two sources) is NaN.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <fusionflow/choice_list.hpp>
#include <fusionflow/table.hpp>
#include <fusionflow/volume.hpp>

#include <fusionflow/run_control.hpp>

namespace fusionflow::latent {

// The unit of EN and MI (log base 2 or e); its name is the column names' suffix.
enum class InformationUnit { Bits, Nats };
inline const ChoiceList<InformationUnit> kInformationUnitNames{{InformationUnit::Bits, "bits"},
                                                               {InformationUnit::Nats, "nats"}};

enum class MetricsProtocol { Fusionflow, Paper };
inline const ChoiceList<MetricsProtocol> kMetricsProtocolNames{{MetricsProtocol::Fusionflow, "fusionflow"},
                                                               {MetricsProtocol::Paper, "paper"}};

struct MetricsOptions {
  MetricsProtocol protocol = MetricsProtocol::Fusionflow;
  std::size_t bins = 256;                         // 2..256
  InformationUnit units = InformationUnit::Bits;  // of EN and MI
  double range_low = 0.0;                         // mapped to grey level 0; range_low >= range_high: joint min/max
  double range_high = 0.0;
};

struct FusionMetrics {
  double en, sd, sf, mi, scd, vif, qabf, ssim;
};

enum class MetricsMode { SlicesAxial, Volume3d };
inline const ChoiceList<MetricsMode> kMetricsModeNames{{MetricsMode::SlicesAxial, "slices_axial"},
                                                       {MetricsMode::Volume3d, "volume3d"}};

// The table's options extend the metrics' own (a base rather than a member, so
// that a node binds its parameters to every field directly).
struct MetricsTableOptions : MetricsOptions {
  MetricsMode mode = MetricsMode::SlicesAxial;
  std::vector<std::int64_t> slices;  // axial (k) slices; empty = all
  bool skip_empty_slices = true;     // with `slices` empty: skip slices where every image is constant
  bool per_slice_rows = true;        // slices mode: a row per slice before the mean row
  std::string label;
};

// SSIM (Wang et al. 2004), the one definition of the tree (metrics.fusion's
// SSIM and metrics.synthesis both use it): local means, variances
// and covariance under a normalised window, C1 = (0.01 L)^2, C2 = (0.03 L)^2,
// averaged over the window positions that fit inside the image ('valid').
enum class SsimWindow {
  Gaussian11,  // 11 taps, sigma 1.5: ssim_index.m, the image-fusion literature
  Uniform7,    // 7 taps of 1/7: scikit-image's default, the image-synthesis literature
};
struct SsimOptions {
  SsimWindow window = SsimWindow::Gaussian11;
  double data_range = 255.0;  // L
  bool three_d = false;       // 3D windows; else 2D windows in each axial slice, pooled over the slices
  // Variances and covariance x N/(N-1) for an N-voxel window (scikit-image's
  // use_sample_covariance); else the window's own weighted moments.
  bool sample_covariance = false;
};
// Mean SSIM of two images of `size` voxels (x fastest); NaN when no window
// fits. Throws std::invalid_argument for sizes that do not match or L <= 0.
double mean_ssim(const std::vector<double>& x, const std::vector<double>& y, const std::array<std::size_t, 3>& size,
                 const SsimOptions& options);

// A synthetic image against its reference on the same grid (image
// synthesis, e.g. MRI to CT), as metrics.synthesis reports it:
//  MAE   mean |synthetic - reference| over the mask (reference > mask_threshold),
//        in the reference's units;
//  PSNR  10 log10(L^2 / MSE), L = high - low of data_range, MSE over the mask
//        with both images clipped to data_range (+inf when they agree);
//  SSIM  mean over the axial slices holding mask voxels of mean_ssim (7-tap
//        uniform window, L) of the clipped slices.
struct SynthesisOptions {
  double mask_threshold = -500.0;
  std::array<double, 2> data_range{-1000.0, 2000.0};
};
struct SynthesisMetrics {
  double mae = 0, psnr_db = 0, ssim = 0;
  std::size_t mask_voxels = 0;
};
// Throws std::invalid_argument for grids that differ, an empty data range or an empty mask.
SynthesisMetrics synthesis_metrics(const Volume& synthetic, const Volume& reference, const SynthesisOptions& options);

// The intensity range used for the grey-level mapping.
std::pair<double, double> metrics_range(const Volume& fused, const std::vector<const Volume*>& sources,
                                        const MetricsOptions& options);

// Metrics of the whole volume (3D definitions, see above).
FusionMetrics volume_metrics(const Volume& fused, const std::vector<const Volume*>& sources,
                             const MetricsOptions& options, const RunControl& control = {});

// The metrics.fusion table. Columns: label, scope ("slice", "mean" or
// "volume"), slice (index; empty on other rows), slices (how many slices the
// row covers), en_<unit>, sd, sf, mi_<unit>, scd, vif, qabf, ssim, where
// <unit> is bits or nats (protocol=paper: en_bits and mi_nats). The mean row averages each metric over the slices
// where it is defined; undefined values are empty cells. Throws
// std::invalid_argument when a source's grid differs from the fused volume's
// or a slice index is out of range.
Table fusion_metrics_table(const Volume& fused, const std::vector<const Volume*>& sources,
                           const MetricsTableOptions& options, const RunControl& control = {});

}  // namespace fusionflow::latent
