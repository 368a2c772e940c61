// metrics.fusion against values computed by hand (or by the papers' formulas
// written out here, independently of the implementation) on tiny images.
#include "fusion_test_support.hpp"

#include <latent_transforms/metrics.hpp>

namespace fusionflow::fusion_test {
namespace {

constexpr double kPi = 3.14159265358979323846;

// An nx x ny x nz volume from grey levels listed row by row (i fastest).
Volume grey_volume(std::size_t nx, std::size_t ny, std::size_t nz, std::vector<float> values,
                   const std::string& modality) {
  Volume volume;
  volume.geometry.size = {nx, ny, nz};
  EXPECT_EQ(values.size(), volume.geometry.voxel_count());
  volume.voxels = std::move(values);
  volume.metadata.modality = modality;
  return volume;
}

template <class F>
Volume grey_image(std::size_t nx, std::size_t ny, F value, const std::string& modality = "X") {
  std::vector<float> values;
  for (std::size_t j = 0; j < ny; ++j)
    for (std::size_t i = 0; i < nx; ++i) values.push_back(static_cast<float>(value(i, j)));
  return grey_volume(nx, ny, 1, std::move(values), modality);
}

Table metrics(const Volume& fused, const std::vector<Volume>& sources,
              std::vector<std::pair<std::string, ParamValue>> params = {}) {
  NodeHarness node(registry(), "metrics.fusion");
  node.set_input("fused", fused);
  for (const Volume& source : sources) node.add_input("sources", source);
  node.set_param("range", std::vector<double>{0.0, 255.0}).set_param("skip_empty_slices", ParamValue(false));
  for (const auto& [name, value] : params) node.set_param(name, value);
  node.run();
  return node.output<Table>("metrics");
}

double mean_metric(const Table& table, const std::string& column) {
  return cell(table, column, row_with_scope(table, "mean"));
}

// Left half 0, right half 200 (varies along i); top half 0, bottom 200 (along j).
Volume left_right(std::size_t n = 4) {
  return grey_image(
      n, n, [n](std::size_t i, std::size_t) { return i < n / 2 ? 0.0 : 200.0; }, "CT");
}
Volume top_bottom(std::size_t n = 4) {
  return grey_image(
      n, n, [n](std::size_t, std::size_t j) { return j < n / 2 ? 0.0 : 200.0; }, "MR");
}

TEST(FusionMetrics, EntropyAndStandardDeviationOfTheFusedHistogram) {
  // 4 x 0, 4 x 255, 8 x 128: p = 1/4, 1/4, 1/2 -> EN = 1.5 bits.
  const Volume fused =
      grey_volume(4, 4, 1, {0, 0, 0, 0, 255, 255, 255, 255, 128, 128, 128, 128, 128, 128, 128, 128}, "F");
  const Table bits = metrics(fused, {fused});
  EXPECT_DOUBLE_EQ(mean_metric(bits, "en_bits"), 1.5);
  // mean 127.75; SD = sqrt((4 * 127.75^2 + 4 * 127.25^2 + 8 * 0.25^2) / 16)
  EXPECT_DOUBLE_EQ(mean_metric(bits, "sd"), std::sqrt((4 * 127.75 * 127.75 + 4 * 127.25 * 127.25 + 8 * 0.0625) / 16));
  const Table nats = metrics(fused, {fused}, {{"units", std::string("nats")}});
  EXPECT_DOUBLE_EQ(mean_metric(nats, "en_nats"), 1.5 * std::log(2.0));
  EXPECT_EQ(nats.column_index("en_bits"), nats.columns.size());
  // 2 bins: grey levels 0..127 and 128..255 -> 1/4 and 3/4.
  const Table two_bins = metrics(fused, {fused}, {{"bins", 2}});
  EXPECT_DOUBLE_EQ(mean_metric(two_bins, "en_bits"), -(0.25 * std::log2(0.25) + 0.75 * std::log2(0.75)));
}

TEST(FusionMetrics, SpatialFrequencyFromRowAndColumnDifferences) {
  // Rows 0 10 0 10: 3 horizontal differences of 10 per row, none vertical.
  const Volume fused = grey_image(4, 4, [](std::size_t i, std::size_t) { return i % 2 ? 10.0 : 0.0; });
  EXPECT_DOUBLE_EQ(mean_metric(metrics(fused, {fused}), "sf"), std::sqrt(4 * 3 * 100.0 / 16));
  // Columns: 0 in rows 0-1, 30 in rows 2-3 -> one vertical step of 30 per column.
  const Volume steps = grey_image(4, 4, [](std::size_t, std::size_t j) { return j < 2 ? 0.0 : 30.0; });
  EXPECT_DOUBLE_EQ(mean_metric(metrics(steps, {steps}), "sf"), std::sqrt(4 * 900.0 / 16));
}

TEST(FusionMetrics, MutualInformationSumsOverSources) {
  // F = A: MI(F, A) = H(A) = 1 bit; B is independent of F: MI(F, B) = 0.
  const Volume a = left_right(), b = top_bottom();
  const Table table = metrics(a, {a, b});
  EXPECT_NEAR(mean_metric(table, "mi_bits"), 1.0, 1e-12);
  EXPECT_NEAR(mean_metric(metrics(a, {a, b}, {{"units", std::string("nats")}}), "mi_nats"), std::log(2.0), 1e-12);
  EXPECT_NEAR(mean_metric(metrics(a, {a, a}), "mi_bits"), 2.0, 1e-12);
}

TEST(FusionMetrics, ScdIsTwoWhenTheFusedImageIsTheSumOfTheSources) {
  // F - B = A and F - A = B: corr(A, A) + corr(B, B) = 2.
  const Volume a = grey_image(4, 4, [](std::size_t i, std::size_t) { return i < 2 ? 0.0 : 100.0; });
  const Volume b = grey_image(4, 4, [](std::size_t, std::size_t j) { return j < 2 ? 0.0 : 100.0; });
  const Volume f =
      grey_image(4, 4, [](std::size_t i, std::size_t j) { return (i < 2 ? 0.0 : 100.0) + (j < 2 ? 0.0 : 100.0); });
  EXPECT_NEAR(mean_metric(metrics(f, {a, b}), "scd"), 2.0, 1e-12);
  // F = A: F - B = A - B has correlation 1/sqrt(2) with A; F - A = 0 has none (undefined -> empty).
  const Table only_a = metrics(a, {a, b});
  EXPECT_TRUE(std::isnan(mean_metric(only_a, "scd")));
  // Three sources: not defined.
  EXPECT_TRUE(std::isnan(mean_metric(metrics(f, {a, b, a}), "scd")));
}

// Xydeas-Petrovic Q for one pixel pair with G = 1 and A = 1.
double q_perfect() {
  return 0.9994 / (1.0 + std::exp(-15.0 * (1.0 - 0.5))) * 0.9879 / (1.0 + std::exp(-22.0 * (1.0 - 0.8)));
}

// Straightforward Qabf of 2D images (Sobel with zero padding), as in the paper.
double reference_qabf(const Volume& f, const std::vector<Volume>& sources) {
  const auto nx = static_cast<int>(f.geometry.size[0]), ny = static_cast<int>(f.geometry.size[1]);
  auto px = [&](const Volume& v, int i, int j) {
    return i < 0 || j < 0 || i >= nx || j >= ny ? 0.0 : double(v.at(i, j, 0));
  };
  auto gradient = [&](const Volume& v, int i, int j, double& g, double& a) {
    const double sx = px(v, i + 1, j - 1) + 2 * px(v, i + 1, j) + px(v, i + 1, j + 1) - px(v, i - 1, j - 1) -
                      2 * px(v, i - 1, j) - px(v, i - 1, j + 1);
    const double sy = px(v, i - 1, j + 1) + 2 * px(v, i, j + 1) + px(v, i + 1, j + 1) - px(v, i - 1, j - 1) -
                      2 * px(v, i, j - 1) - px(v, i + 1, j - 1);
    g = std::hypot(sx, sy);
    a = sx == 0 ? kPi / 2 : std::atan(sy / sx);
  };
  double num = 0, den = 0;
  for (int j = 0; j < ny; ++j)
    for (int i = 0; i < nx; ++i) {
      double gf, af;
      gradient(f, i, j, gf, af);
      for (const Volume& s : sources) {
        double gs, as;
        gradient(s, i, j, gs, as);
        const double G = gs == gf ? 1.0 : std::min(gs, gf) / std::max(gs, gf);
        const double A = 1 - std::fabs(as - af) / (kPi / 2);
        const double Q = 0.9994 / (1 + std::exp(-15 * (G - 0.5))) * 0.9879 / (1 + std::exp(-22 * (A - 0.8)));
        num += Q * gs;
        den += gs;
      }
    }
  return num / den;
}

TEST(FusionMetrics, QabfIsTheEdgeTransferOfXydeasAndPetrovic) {
  // F = A and B black (no edges, even with the zero padding of the Sobel
  // filters): every edge of A is kept with G = A = 1, B adds no weight.
  const Volume a = left_right(6);
  const Volume black = grey_image(6, 6, [](std::size_t, std::size_t) { return 0.0; });
  EXPECT_NEAR(mean_metric(metrics(a, {a, black}), "qabf"), q_perfect(), 1e-12);
  // Averaging halves A's and B's edges: compare with the formula written out.
  const Volume b = top_bottom(6);
  const Volume average = grey_image(
      6, 6, [](std::size_t i, std::size_t j) { return 0.5 * ((i < 3 ? 0.0 : 200.0) + (j < 3 ? 0.0 : 200.0)); });
  const double q = mean_metric(metrics(average, {a, b}), "qabf");
  EXPECT_NEAR(q, reference_qabf(average, {a, b}), 1e-12);
  EXPECT_LT(q, 0.6);  // halved edge strength: Q_g(0.5) = 0.9994 / 2
  // A fused image without edges keeps almost nothing: Q_g(0) = 0.9994 / (1 + e^7.5).
  const double none = mean_metric(metrics(black, {a, b}), "qabf");
  EXPECT_NEAR(none, reference_qabf(black, {a, b}), 1e-12);
  EXPECT_LT(none, 0.9994 / (1.0 + std::exp(7.5)));
}

// Gaussian window of ssim_index.m / fspecial('gaussian', n, sigma), 2D.
std::vector<double> gaussian_2d(int n, double sigma) {
  std::vector<double> w(static_cast<std::size_t>(n * n));
  double sum = 0;
  const double c = (n - 1) / 2.0;
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x)
      sum += w[static_cast<std::size_t>(y * n + x)] =
          std::exp(-((x - c) * (x - c) + (y - c) * (y - c)) / (2 * sigma * sigma));
  for (double& v : w) v /= sum;
  return w;
}

TEST(FusionMetrics, SsimOfOneElevenByElevenWindowSummedOverSources) {
  // 11 x 11 images: the 'valid' SSIM map has a single value.
  const Volume a = grey_image(11, 11, [](std::size_t i, std::size_t j) { return double((i * 7 + j * 3) % 11) * 20.0; });
  const Volume b = grey_image(11, 11, [](std::size_t i, std::size_t j) { return i < 5 ? 40.0 + double(j) : 180.0; });
  const auto w = gaussian_2d(11, 1.5);
  double mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
  for (std::size_t v = 0; v < 121; ++v) {
    const double x = b.voxels[v], y = a.voxels[v];
    mx += w[v] * x;
    my += w[v] * y;
    sxx += w[v] * x * x;
    syy += w[v] * y * y;
    sxy += w[v] * x * y;
  }
  sxx -= mx * mx;
  syy -= my * my;
  sxy -= mx * my;
  const double c1 = std::pow(0.01 * 255, 2), c2 = std::pow(0.03 * 255, 2);
  const double ssim_ba = (2 * mx * my + c1) * (2 * sxy + c2) / ((mx * mx + my * my + c1) * (sxx + syy + c2));
  // F = A: SSIM(A, F) = 1.
  EXPECT_NEAR(mean_metric(metrics(a, {a, b}), "ssim"), 1.0 + ssim_ba, 1e-10);
  // Images smaller than the window: undefined.
  EXPECT_TRUE(std::isnan(mean_metric(metrics(left_right(), {left_right()}), "ssim")));
}

// latent::mean_ssim with scikit-image's 7x7 uniform window against the
// direct sums of Wang et al.'s formula over every 'valid' window position.
TEST(FusionMetrics, MeanSsimWithTheUniformWindowMatchesTheDirectSums) {
  const std::size_t nx = 12, ny = 9;
  std::vector<double> x(nx * ny), y(nx * ny);
  for (std::size_t v = 0; v < x.size(); ++v) {
    x[v] = double((v * 37) % 101) / 100.0;
    y[v] = 0.7 * x[v] + double((v * 11) % 13) / 40.0;
  }
  const double range = 1.5;
  const double c1 = std::pow(0.01 * range, 2), c2 = std::pow(0.03 * range, 2);
  double sum = 0;
  std::size_t windows = 0;
  for (std::size_t j = 3; j + 3 < ny; ++j)
    for (std::size_t i = 3; i + 3 < nx; ++i) {
      double mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
      for (std::size_t b = j - 3; b <= j + 3; ++b)
        for (std::size_t a = i - 3; a <= i + 3; ++a) {
          const double p = x[b * nx + a], q = y[b * nx + a];
          mx += p / 49, my += q / 49, sxx += p * p / 49, syy += q * q / 49, sxy += p * q / 49;
        }
      sxx -= mx * mx, syy -= my * my, sxy -= mx * my;
      sum += (2 * mx * my + c1) * (2 * sxy + c2) / ((mx * mx + my * my + c1) * (sxx + syy + c2));
      ++windows;
    }
  latent::SsimOptions options;
  options.window = latent::SsimWindow::Uniform7;
  options.data_range = range;
  EXPECT_NEAR(latent::mean_ssim(x, y, {nx, ny, 1}, options), sum / double(windows), 1e-12);
  EXPECT_NEAR(latent::mean_ssim(x, x, {nx, ny, 1}, options), 1.0, 1e-12);
  EXPECT_TRUE(std::isnan(latent::mean_ssim(std::vector<double>(36, 1.0), std::vector<double>(36, 1.0), {6, 6, 1},
                                           options)));  // no 7x7 window fits
  EXPECT_THROW(latent::mean_ssim(x, y, {nx, ny, 2}, options), std::invalid_argument);
}

// vifp_mscale.m written out with 2D (non-separable) 'valid' correlation.
double reference_vifp(const Volume& reference, const Volume& distorted) {
  struct Img {
    int nx, ny;
    std::vector<double> v;
    double at(int i, int j) const { return v[static_cast<std::size_t>(j * nx + i)]; }
  };
  auto load = [](const Volume& volume) {
    Img img{int(volume.geometry.size[0]), int(volume.geometry.size[1]), {}};
    img.v.assign(volume.voxels.begin(), volume.voxels.end());
    return img;
  };
  auto filter = [](const Img& in, const std::vector<double>& w, int n) {
    Img out{in.nx - n + 1, in.ny - n + 1, {}};
    if (out.nx <= 0 || out.ny <= 0) return Img{0, 0, {}};
    for (int j = 0; j < out.ny; ++j)
      for (int i = 0; i < out.nx; ++i) {
        double acc = 0;
        for (int y = 0; y < n; ++y)
          for (int x = 0; x < n; ++x) acc += w[static_cast<std::size_t>(y * n + x)] * in.at(i + x, j + y);
        out.v.push_back(acc);
      }
    return out;
  };
  auto multiply = [](const Img& p, const Img& q) {
    Img out = p;
    for (std::size_t i = 0; i < p.v.size(); ++i) out.v[i] *= q.v[i];
    return out;
  };
  Img ref = load(reference), dist = load(distorted);
  double num = 0, den = 0;
  for (int scale = 1; scale <= 4; ++scale) {
    const int n = (1 << (4 - scale + 1)) + 1;
    const auto win = gaussian_2d(n, n / 5.0);
    if (scale > 1) {
      for (Img* img : {&ref, &dist}) {
        Img f = filter(*img, win, n);
        Img down{(f.nx + 1) / 2, (f.ny + 1) / 2, {}};
        for (int j = 0; j < f.ny; j += 2)
          for (int i = 0; i < f.nx; i += 2) down.v.push_back(f.at(i, j));
        if (f.v.empty()) down = Img{0, 0, {}};
        *img = down;
      }
    }
    const Img mu1 = filter(ref, win, n), mu2 = filter(dist, win, n);
    const Img s1 = filter(multiply(ref, ref), win, n), s2 = filter(multiply(dist, dist), win, n);
    const Img s12 = filter(multiply(ref, dist), win, n);
    for (std::size_t p = 0; p < mu1.v.size(); ++p) {
      double sigma1_sq = std::max(0.0, s1.v[p] - mu1.v[p] * mu1.v[p]);
      double sigma2_sq = std::max(0.0, s2.v[p] - mu2.v[p] * mu2.v[p]);
      double sigma12 = s12.v[p] - mu1.v[p] * mu2.v[p];
      double g = sigma12 / (sigma1_sq + 1e-10);
      double sv_sq = sigma2_sq - g * sigma12;
      if (sigma1_sq < 1e-10) {
        g = 0;
        sv_sq = sigma2_sq;
        sigma1_sq = 0;
      }
      if (sigma2_sq < 1e-10) {
        g = 0;
        sv_sq = 0;
      }
      if (g < 0) {
        sv_sq = sigma2_sq;
        g = 0;
      }
      if (sv_sq <= 1e-10) sv_sq = 1e-10;
      num += std::log10(1 + g * g * sigma1_sq / (sv_sq + 2));
      den += std::log10(1 + sigma1_sq / 2);
    }
  }
  return num / den;
}

TEST(FusionMetrics, VifIsTheSumOfPixelDomainMultiscaleVif) {
  // Integer grey levels, so that the metric's 8-bit mapping (range 0..255) is the identity.
  const auto pattern = [](std::size_t i, std::size_t j) {
    return std::round(128.0 + 60.0 * std::sin(0.45 * double(i)) * std::cos(0.3 * double(j)) +
                      double((i * 13 + j * 7) % 17));
  };
  const Volume a = grey_image(48, 44, pattern, "CT");
  const Volume b = grey_image(
      48, 44, [](std::size_t i, std::size_t j) { return double((i / 6 + j / 5) % 2) * 150 + 40; }, "MR");
  // Identical images: each term is 1.
  EXPECT_NEAR(mean_metric(metrics(a, {a, a}), "vif"), 2.0, 1e-8);
  // A flat fused image carries no information: 0.
  const Volume flat = grey_image(48, 44, [](std::size_t, std::size_t) { return 100.0; });
  EXPECT_NEAR(mean_metric(metrics(flat, {a, b}), "vif"), 0.0, 1e-12);
  // A blend, against vifp_mscale written out.
  const Volume f = grey_image(48, 44, [&](std::size_t i, std::size_t j) {
    return std::round(0.6 * pattern(i, j) + 0.4 * (double((i / 6 + j / 5) % 2) * 150 + 40));
  });
  const double expected = reference_vifp(a, f) + reference_vifp(b, f);
  EXPECT_NEAR(mean_metric(metrics(f, {a, b}), "vif"), expected, 1e-9 * expected);
  EXPECT_GT(expected, 0.1);
}

// --- protocol=paper: the published tables' evaluator, metric by metric -------------

Table paper(const Volume& fused, const std::vector<Volume>& sources) {
  return metrics(fused, sources, {{"protocol", ParamValue(std::string("paper"))}});
}

TEST(FusionMetricsPaper, EnIsInBitsAndSdIsThePopulationDeviation) {
  // 8 x 0 and 8 x 255: p = 1/2, 1/2 -> EN = 1 bit, SD = 127.5, even with units=nats asked.
  const Volume fused = grey_image(4, 4, [](std::size_t i, std::size_t) { return i < 2 ? 0.0 : 255.0; });
  const Table table = metrics(
      fused, {fused}, {{"protocol", ParamValue(std::string("paper"))}, {"units", ParamValue(std::string("nats"))}});
  EXPECT_DOUBLE_EQ(mean_metric(table, "en_bits"), 1.0);
  EXPECT_DOUBLE_EQ(mean_metric(table, "sd"), 127.5);
}

TEST(FusionMetricsPaper, SfAveragesEachAxisOverItsDifferences) {
  // 4 x 3, values 0, 10, 20, 30 along each row: 9 row differences of 10, 8
  // column differences of 0 -> SF = sqrt(100 + 0) = 10 (fusionflow's
  // definition divides by the 12 pixels: sqrt(900 / 12)).
  const Volume fused = grey_image(4, 3, [](std::size_t i, std::size_t) { return 10.0 * double(i); });
  EXPECT_DOUBLE_EQ(mean_metric(paper(fused, {fused}), "sf"), 10.0);
  EXPECT_DOUBLE_EQ(mean_metric(metrics(fused, {fused}), "sf"), std::sqrt(900.0 / 12.0));
}

TEST(FusionMetricsPaper, MiIsInNatsSummedOverTheSources) {
  // F = A, half 0 and half 255: MI(F, A) = H(A) = ln 2; B constant: MI(F, B) = 0.
  const Volume a = left_right();
  const Volume b = grey_image(4, 4, [](std::size_t, std::size_t) { return 90.0; });
  EXPECT_NEAR(mean_metric(paper(a, {a, b}), "mi_nats"), std::log(2.0), 1e-12);
}

TEST(FusionMetricsPaper, ScdIsTwoWhenTheFusedImageIsTheSumOfTheSources) {
  // F - B = A and F - A = B: each correlation is 1.
  const Volume a = grey_image(3, 3, [](std::size_t i, std::size_t j) { return double(10 * i + 3 * j); });
  const Volume b = grey_image(3, 3, [](std::size_t i, std::size_t j) { return double(7 * j + 5 * (i * j % 2)); });
  const Volume f = grey_image(
      3, 3, [](std::size_t i, std::size_t j) { return double(10 * i + 3 * j) + double(7 * j + 5 * (i * j % 2)); });
  EXPECT_NEAR(mean_metric(paper(f, {a, b}), "scd"), 2.0, 1e-12);
}

TEST(FusionMetricsPaper, VifOfAnUndefinedSourceCountsOne) {
  // F = A: g = 1 and sv^2 = 0 (clamped to 1e-10) at every position, so
  // num = den and VIF(A, F) = 1; B constant has sigma^2 = 0 everywhere, 0/0,
  // which the evaluator counts as 1: VIF = 2. fusionflow's leaves it undefined.
  const Volume a = grey_image(40, 40, [](std::size_t i, std::size_t j) { return double((i * 37 + j * 91) % 200); });
  const Volume b = grey_image(40, 40, [](std::size_t, std::size_t) { return 60.0; });
  // (1 - 7.5e-12: sv^2 = 1e-10 in the numerator's denominator, 0 in the denominator's.)
  EXPECT_NEAR(mean_metric(paper(a, {a, b}), "vif"), 2.0, 1e-10);
  EXPECT_TRUE(std::isnan(mean_metric(metrics(a, {a, b}), "vif")));
}

TEST(FusionMetricsPaper, QabfTakesTheStrengthItselfWhereTheGradientsAreEqual) {
  // F = A, every non-zero Sobel strength >= 10 (values are multiples of 10):
  // G = gF >= 10, so Qg = Tg / (1 + exp(-15 (gF - 0.5))) = Tg in double; the
  // orientations agree, A = 1: Qa = Ta / (1 + exp(-22 (1 - 0.8))). B = 0 has
  // no edges, even at the border (zero padding): weight 0. fusionflow's G = 1
  // gives Tg / (1 + exp(-7.5)).
  const Volume a = grey_image(6, 6, [](std::size_t i, std::size_t j) { return double(10 * ((i + 2 * j) % 4)); });
  const Volume b = grey_image(6, 6, [](std::size_t, std::size_t) { return 0.0; });
  const double qa = 0.9879 / (1.0 + std::exp(-22.0 * 0.2));
  EXPECT_NEAR(mean_metric(paper(a, {a, b}), "qabf"), 0.9994 * qa, 1e-12);
  EXPECT_NEAR(mean_metric(metrics(a, {a, b}), "qabf"), 0.9994 / (1.0 + std::exp(-7.5)) * qa, 1e-12);
}

TEST(FusionMetricsPaper, SsimIsScikitImagesOnFloatImagesWithDataRangeTwo) {
  // One 7 x 7 window. A: 100 everywhere but 149 at the centre: mean 101,
  // population variance 48, sample variance 48 x 49/48 = 49. SSIM(A, A) = 1.
  // B constant 101: equal means, so SSIM(A, B) = C2 / (49 + C2), C2 = (0.03 x 2)^2.
  const Volume a = grey_image(7, 7, [](std::size_t i, std::size_t j) { return i == 3 && j == 3 ? 149.0 : 100.0; });
  const Volume b = grey_image(7, 7, [](std::size_t, std::size_t) { return 101.0; });
  const double c2 = 0.06 * 0.06;
  EXPECT_NEAR(mean_metric(paper(a, {a, b}), "ssim"), 1.0 + c2 / (49.0 + c2), 1e-12);
  // fusionflow's 11 x 11 Gaussian window does not fit.
  EXPECT_TRUE(std::isnan(mean_metric(metrics(a, {a, b}), "ssim")));
}

TEST(FusionMetricsPaper, ThePaperImagesAre8BitFrom0To255AndOnly2d) {
  // Without a range the paper protocol does not stretch the data's min/max.
  NodeHarness node(registry(), "metrics.fusion");
  const Volume f = grey_image(4, 4, [](std::size_t i, std::size_t) { return i < 2 ? 10.0 : 20.0; });
  node.set_input("fused", f)
      .add_input("sources", f)
      .set_param("protocol", "paper")
      .set_param("per_slice_rows", ParamValue(false));
  node.run();
  EXPECT_DOUBLE_EQ(mean_metric(node.output<Table>("metrics"), "sd"), 5.0);
  NodeHarness volume(registry(), "metrics.fusion");
  volume.set_input("fused", f).add_input("sources", f).set_param("protocol", "paper").set_param("mode", "volume3d");
  EXPECT_THROW(volume.run(), std::invalid_argument);
}

TEST(FusionMetrics, SlicesAreReportedOneByOneThenAveragedAndEmptySlicesSkipped) {
  // Slice 0: F = A (EN 1 bit); slice 1: F has levels 0, 255 and 2 x 128 (EN 1.5 bits); slice 2 all zero.
  std::vector<float> f, s;
  for (int v = 0; v < 16; ++v) f.push_back(v % 4 < 2 ? 0.0f : 200.0f);
  for (int v = 0; v < 16; ++v) f.push_back(v < 4 ? 0.0f : v < 8 ? 255.0f : 128.0f);
  for (int v = 0; v < 16; ++v) f.push_back(0.0f);
  s = f;
  for (int v = 32; v < 48; ++v) s[static_cast<std::size_t>(v)] = 0.0f;
  const Volume fused = grey_volume(4, 4, 3, f, "F"), source = grey_volume(4, 4, 3, s, "S");
  NodeHarness node(registry(), "metrics.fusion");
  node.set_input("fused", fused).add_input("sources", source).set_param("range", std::vector<double>{0.0, 255.0});
  node.run();
  const Table& table = node.output<Table>("metrics");
  ASSERT_EQ(table.rows.size(), 3u);  // slices 0 and 1, then the mean; slice 2 is empty
  EXPECT_EQ(cell(table, "slice", 0), 0.0);
  EXPECT_EQ(cell(table, "slice", 1), 1.0);
  EXPECT_DOUBLE_EQ(cell(table, "en_bits", 0), 1.0);
  EXPECT_DOUBLE_EQ(cell(table, "en_bits", 1), 1.5);
  EXPECT_DOUBLE_EQ(cell(table, "en_bits", 2), 1.25);
  EXPECT_EQ(cell(table, "slices", 2), 2.0);
  EXPECT_EQ(std::get<std::string>(table.rows[2][table.column_index("label")]), "test_node");
  EXPECT_TRUE(std::holds_alternative<std::monostate>(table.rows[2][table.column_index("slice")]));

  const Table chosen = metrics(fused, {source}, {{"slices", std::vector<std::int64_t>{1}}, {"per_slice_rows", false}});
  ASSERT_EQ(chosen.rows.size(), 1u);
  EXPECT_DOUBLE_EQ(cell(chosen, "en_bits", 0), 1.5);
  EXPECT_THROW(metrics(fused, {source}, {{"slices", std::vector<std::int64_t>{3}}}), std::invalid_argument);
}

TEST(FusionMetrics, VolumeModeUsesAllThreeAxesAndTheJointRange) {
  // Two slices: 0 and 1 (in [0, 1]): grey levels 0 and 255 by the joint min/max.
  std::vector<float> values(32, 0.0f);
  std::fill(values.begin() + 16, values.end(), 1.0f);
  const Volume fused = grey_volume(4, 4, 2, values, "F");
  NodeHarness node(registry(), "metrics.fusion");
  node.set_input("fused", fused).add_input("sources", fused).set_param("mode", "volume3d");
  node.run();
  const Table& table = node.output<Table>("metrics");
  ASSERT_EQ(table.rows.size(), 1u);
  EXPECT_EQ(std::get<std::string>(table.rows[0][table.column_index("scope")]), "volume");
  EXPECT_DOUBLE_EQ(cell(table, "en_bits", 0), 1.0);
  EXPECT_DOUBLE_EQ(cell(table, "sd", 0), 127.5);
  // Only steps along z: 16 differences of 255 over 32 voxels.
  EXPECT_DOUBLE_EQ(cell(table, "sf", 0), std::sqrt(16 * 255.0 * 255.0 / 32));
  EXPECT_NEAR(cell(table, "mi_bits", 0), 1.0, 1e-12);
}

TEST(FusionMetrics, RefusesSourcesOnAnotherGridAndBadRanges) {
  const Volume a = left_right(), b = left_right(6);
  try {
    metrics(a, {a, b});
    FAIL() << "accepted a source on another grid";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("sources[1]"), std::string::npos) << error.what();
  }
  EXPECT_THROW(metrics(a, {a}, {{"range", std::vector<double>{5.0, 1.0}}}), std::invalid_argument);
}

TEST(FusionMetrics, ResultsDoNotDependOnTheThreadCount) {
  const Volume a = textured_volume({24, 20, 12}, 1, "CT");
  const Volume b = textured_volume({24, 20, 12}, 2, "MR");
  const Volume f = textured_volume({24, 20, 12}, 3, "FUSED");
  for (const char* mode : {"slices_axial", "volume3d"}) {
    auto run = [&](int threads) {
      NodeHarness node(registry(), "metrics.fusion");
      node.set_input("fused", f).add_input("sources", a).add_input("sources", b).set_param("mode", mode);
      node.set_threads(threads).run();
      return node.output<Table>("metrics").to_csv();
    };
    EXPECT_EQ(run(1), run(2)) << mode;
    EXPECT_EQ(run(1), run(4)) << mode;
  }
}

}  // namespace
}  // namespace fusionflow::fusion_test
