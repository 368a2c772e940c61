// fusionflow::percentile, the one percentile definition of the tree.
#include <fusionflow/statistics.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

namespace fusionflow {
namespace {

double percentile_of(std::vector<float> values, double p) { return percentile(values, p); }

TEST(Percentile, InterpolatesLinearlyBetweenOrderStatisticsAsNumpy) {
  // numpy.percentile([10, -5, 7.5, 7.5, 0, 100, 3], [0, 12.5, 33, 50, 90, 100])
  // = [-5, -1.25, 2.94, 7.5, 46, 100]: rank (n - 1) * p / 100 = 6p/100.
  const std::vector<float> values{10, -5, 7.5, 7.5, 0, 100, 3};
  EXPECT_DOUBLE_EQ(percentile_of(values, 0), -5);
  EXPECT_DOUBLE_EQ(percentile_of(values, 12.5), -1.25);
  EXPECT_NEAR(percentile_of(values, 33), 2.94, 1e-12);
  EXPECT_DOUBLE_EQ(percentile_of(values, 50), 7.5);
  EXPECT_DOUBLE_EQ(percentile_of(values, 90), 46);
  EXPECT_DOUBLE_EQ(percentile_of(values, 100), 100);
}

TEST(Percentile, GivesTheSameValueWhateverTheOrderOfTheValues) {
  std::vector<float> values(1001);
  std::mt19937 random(7);
  std::uniform_real_distribution<float> uniform(-1000.0f, 1000.0f);
  for (float& v : values) v = uniform(random);
  std::vector<float> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  for (double p : {0.0, 1.0, 2.5, 50.0, 99.0, 99.95, 100.0}) {
    const double position = 1000.0 * p / 100.0;
    const auto below = static_cast<std::size_t>(std::floor(position));
    const double expected = below + 1 < sorted.size()
                                ? sorted[below] + (position - double(below)) * (sorted[below + 1] - sorted[below])
                                : sorted[below];
    EXPECT_NEAR(percentile_of(values, p), expected, 1e-9) << "p = " << p;
    std::shuffle(values.begin(), values.end(), random);
  }
}

TEST(Percentile, OneValueIsEveryPercentile) {
  for (double p : {0.0, 37.0, 100.0}) EXPECT_EQ(percentile_of({4.25f}, p), 4.25);
}

TEST(Percentile, RefusesNoValuesNaNAndPercentagesOutsideTheRange) {
  EXPECT_THROW(percentile_of({}, 50), std::invalid_argument);
  EXPECT_THROW(percentile_of({1.0f, NAN, 2.0f}, 50), std::invalid_argument);
  EXPECT_THROW(percentile_of({1.0f}, -0.5), std::invalid_argument);
  EXPECT_THROW(percentile_of({1.0f}, 100.5), std::invalid_argument);
  EXPECT_THROW(percentile_of({1.0f}, NAN), std::invalid_argument);
}

}  // namespace
}  // namespace fusionflow
