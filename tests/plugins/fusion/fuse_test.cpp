// fuse.latent: rule properties on hand-made latents, fusing an image with
// itself, GFF weight maps, metadata, determinism and mismatch errors.
#include "fusion_test_support.hpp"

namespace fusionflow::fusion_test {
namespace {

LatentLevel level_of(const std::string& name, const std::string& role, std::array<std::size_t, 3> size,
                     std::vector<float> data) {
  LatentLevel level;
  level.name = name;
  level.role = role;
  level.geometry.size = size;
  level.data = std::move(data);
  return level;
}

// A two-level latent (one detail level, one base level) on a 2x2x1 grid.
Latent hand_latent(const std::string& modality, std::vector<float> detail, std::vector<float> base) {
  Latent latent;
  latent.kind = "laplacian_pyramid";
  latent.encoder_params = {{"levels", "1"}};
  latent.source_geometry.size = {2, 2, 1};
  latent.source_metadata.modality = modality;
  latent.source_metadata.units = "normalized";
  latent.levels.push_back(level_of("detail_0", "detail", {2, 2, 1}, std::move(detail)));
  latent.levels.push_back(level_of("base", "base", {1, 1, 1}, std::move(base)));
  return latent;
}

Latent fuse(const std::vector<Latent>& latents, const std::vector<std::pair<std::string, ParamValue>>& params = {},
            int threads = 1) {
  NodeHarness node(registry(), "fuse.latent");
  for (const Latent& latent : latents) node.add_input("latents", latent);
  for (const auto& [name, value] : params) node.set_param(name, value);
  node.set_threads(threads);
  node.run();
  return node.output<Latent>("latent");
}

std::string fuse_error(const std::vector<Latent>& latents,
                       const std::vector<std::pair<std::string, ParamValue>>& params = {}) {
  try {
    fuse(latents, params);
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return "(no error)";
}

// CT, MR and PT latents whose first level covers `size` with random
// coefficients in [-1, 1] drawn from `random`.
std::vector<Latent> random_latents(const std::array<std::size_t, 3>& size, std::mt19937& random) {
  const std::size_t count = size[0] * size[1] * size[2];
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<Latent> latents;
  for (const char* modality : {"CT", "MR", "PT"}) {
    std::vector<float> data(count);
    for (float& value : data) value = uniform(random);
    Latent latent = hand_latent(modality, {}, {0.0f});
    latent.source_geometry.size = size;
    latent.levels[0].geometry.size = size;
    latent.levels[0].data = std::move(data);
    latents.push_back(std::move(latent));
  }
  return latents;
}

TEST(FuseLatent, MaxAbsPicksTheLargerMagnitudeKeepingItsSign) {
  const Latent a = hand_latent("CT", {0.5f, -0.9f, 0.1f, -0.3f}, {0.2f});
  const Latent b = hand_latent("MR", {-0.7f, 0.4f, 0.1f, 0.3f}, {0.6f});
  const Latent fused = fuse({a, b}, {{"detail_rule", std::string("max_abs")}, {"base_rule", std::string("max_abs")}});
  EXPECT_EQ(fused.levels[0].data, (std::vector<float>{-0.7f, -0.9f, 0.1f, -0.3f}));  // ties: the first source
  EXPECT_EQ(fused.levels[1].data, (std::vector<float>{0.6f}));
}

TEST(FuseLatent, WeightedAverageNormalisesTheWeightsToSumOne) {
  const Latent a = hand_latent("CT", {1.0f, 1.0f, 0.0f, 2.0f}, {1.0f});
  const Latent b = hand_latent("MR", {1.0f, 0.0f, 1.0f, 6.0f}, {1.0f});
  const Latent fused =
      fuse({a, b}, {{"detail_rule", std::string("average")}, {"weights", std::vector<double>{3.0, 1.0}}});
  EXPECT_EQ(fused.levels[0].data, (std::vector<float>{1.0f, 0.75f, 0.25f, 3.0f}));
  EXPECT_EQ(fused.levels[1].data, (std::vector<float>{1.0f}));  // constant 1 stays 1: weights sum to one
  EXPECT_EQ(fused.source_metadata.extra.at("fusion_weights"), "0.75,0.25");
  // Default: equal weights.
  EXPECT_EQ(fuse({a, b}, {{"detail_rule", std::string("average")}}).levels[0].data,
            (std::vector<float>{1.0f, 0.5f, 0.5f, 4.0f}));
}

TEST(FuseLatent, LocalEnergyChoosesTheMoreActiveSourceAndTheConsistencyCheckOverrulesIsolatedChoices) {
  // 5x5x1 detail level: A is more active everywhere except one isolated voxel.
  auto make = [](const std::string& modality, float everywhere, float centre) {
    std::vector<float> data(25, everywhere);
    data[12] = centre;
    Latent latent = hand_latent(modality, {}, {0.0f});
    latent.source_geometry.size = {5, 5, 1};
    latent.levels[0].geometry.size = {5, 5, 1};
    latent.levels[0].data = data;
    return latent;
  };
  const Latent a = make("CT", 0.8f, 0.1f);
  const Latent b = make("MR", 0.2f, -0.9f);
  const Latent voxelwise =
      fuse({a, b}, {{"detail_rule", std::string("local_energy")}, {"window_radius", 0}, {"consistency_radius", 0}});
  EXPECT_EQ(voxelwise.levels[0].data[12], -0.9f);
  EXPECT_EQ(voxelwise.levels[0].data[0], 0.8f);
  const Latent consistent =
      fuse({a, b}, {{"detail_rule", std::string("local_energy")}, {"window_radius", 0}, {"consistency_radius", 1}});
  EXPECT_EQ(consistent.levels[0].data[12], 0.1f);  // 8 of its 9 neighbours chose A
  EXPECT_EQ(consistent.levels[0].data, a.levels[0].data);
  // With a 3x3 energy window the isolated voxel's energy is dominated by A's neighbours.
  const Latent windowed =
      fuse({a, b}, {{"detail_rule", std::string("local_energy")}, {"window_radius", 1}, {"consistency_radius", 0}});
  EXPECT_EQ(windowed.levels[0].data[12], 0.1f);

  // A tied vote keeps the voxel's own choice: on a 3x1x1 line the choices are
  // B A A; voxel 0 sees {B, A} (clipped window), a tie, and keeps B.
  auto line = [](const std::string& modality, std::vector<float> values) {
    Latent latent = hand_latent(modality, {}, {0.0f});
    latent.source_geometry.size = {3, 1, 1};
    latent.levels[0].geometry.size = {3, 1, 1};
    latent.levels[0].data = std::move(values);
    return latent;
  };
  const Latent tie =
      fuse({line("CT", {0.1f, 0.9f, 0.9f}), line("MR", {0.8f, 0.2f, 0.2f})},
           {{"detail_rule", std::string("local_energy")}, {"window_radius", 0}, {"consistency_radius", 1}});
  EXPECT_EQ(tie.levels[0].data, (std::vector<float>{0.8f, 0.9f, 0.9f}));
}

TEST(FuseLatent, LocalEnergyConsistencyMatchesABruteForceMajorityForEveryVoteCounterWidth) {
  // The votes are counted in 8, 16 or 32 bits depending on the window size
  // (radius 1: 27 votes, 3: 343, 20: 68921); each must give the majority a
  // direct count gives. Three sources, random coefficients, voxelwise energy.
  const std::array<std::size_t, 3> size{9, 8, 7};
  const std::size_t count = size[0] * size[1] * size[2];
  std::mt19937 random(5);
  const std::vector<Latent> latents = random_latents(size, random);
  std::vector<std::size_t> choice(count, 0);
  for (std::size_t v = 0; v < count; ++v) {
    float best = latents[0].levels[0].data[v] * latents[0].levels[0].data[v];
    for (std::size_t n = 1; n < latents.size(); ++n) {
      const float energy = latents[n].levels[0].data[v] * latents[n].levels[0].data[v];
      if (energy > best) {
        best = energy;
        choice[v] = n;
      }
    }
  }
  for (const int radius : {1, 3, 20}) {
    std::vector<float> expected(count);
    const auto r = static_cast<std::ptrdiff_t>(radius);
    for (std::size_t k = 0; k < size[2]; ++k)
      for (std::size_t j = 0; j < size[1]; ++j)
        for (std::size_t i = 0; i < size[0]; ++i) {
          std::array<int, 3> votes{0, 0, 0};
          for (std::ptrdiff_t dk = -r; dk <= r; ++dk)
            for (std::ptrdiff_t dj = -r; dj <= r; ++dj)
              for (std::ptrdiff_t di = -r; di <= r; ++di) {
                const std::ptrdiff_t x = std::ptrdiff_t(i) + di, y = std::ptrdiff_t(j) + dj, z = std::ptrdiff_t(k) + dk;
                if (x < 0 || y < 0 || z < 0 || x >= std::ptrdiff_t(size[0]) || y >= std::ptrdiff_t(size[1]) ||
                    z >= std::ptrdiff_t(size[2])) {
                  continue;
                }
                ++votes[choice[std::size_t(x) + size[0] * (std::size_t(y) + size[1] * std::size_t(z))]];
              }
          const std::size_t v = i + size[0] * (j + size[1] * k);
          // The most votes; a tie keeps the voxel's own choice, else the first source.
          std::size_t winner = 0;
          for (std::size_t n = 1; n < 3; ++n) {
            if (votes[n] > votes[winner] || (votes[n] == votes[winner] && choice[v] == n)) winner = n;
          }
          expected[v] = latents[winner].levels[0].data[v];
        }
    const Latent fused = fuse(
        latents, {{"detail_rule", std::string("local_energy")}, {"window_radius", 0}, {"consistency_radius", radius}});
    EXPECT_EQ(fused.levels[0].data, expected) << "consistency_radius " << radius;
  }
}

// The local energy as the rule defines it, bit for bit: the squared
// coefficient, then a box mean along x, y and z in turn, each pass a prefix
// sum in double along the line (window clipped at the edges) rounded to float.
std::vector<float> reference_local_energy(const std::vector<float>& coefficients, std::array<std::size_t, 3> size,
                                          std::size_t r) {
  std::vector<float> data(coefficients.size());
  for (std::size_t v = 0; v < data.size(); ++v) data[v] = 0.0f + coefficients[v] * coefficients[v];
  const std::array<std::size_t, 3> stride{1, size[0], size[0] * size[1]};
  for (int axis = 0; axis < 3; ++axis) {
    const std::size_t n = size[axis];
    std::vector<double> prefix(n + 1);
    for (std::size_t start = 0; start < data.size(); ++start) {
      if ((start / stride[axis]) % n != 0) continue;  // one line per start voxel with index 0 along `axis`
      prefix[0] = 0.0;
      for (std::size_t i = 0; i < n; ++i)
        prefix[i + 1] = prefix[i] + static_cast<double>(data[start + i * stride[axis]]);
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t lo = i >= r ? i - r : 0, hi = std::min(n - 1, i + r);
        data[start + i * stride[axis]] =
            static_cast<float>((prefix[hi + 1] - prefix[lo]) / static_cast<double>(hi - lo + 1));
      }
    }
  }
  return data;
}

TEST(FuseLatent, LocalEnergyWindowsMatchTheirDefinitionBitForBit) {
  // Random coefficients of three sources; window radii from 0 to larger than
  // the grid. The rule computes the energies slice by slice when that takes
  // less memory (thick grids, small windows: here 6x5x50 with radius <= 2)
  // and as whole maps otherwise: both must give these bits.
  std::mt19937 random(9);
  for (const std::array<std::size_t, 3> size :
       {std::array<std::size_t, 3>{11, 9, 13}, std::array<std::size_t, 3>{6, 5, 50}}) {
    const std::size_t count = size[0] * size[1] * size[2];
    const std::vector<Latent> latents = random_latents(size, random);
    for (const std::size_t radius : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{5}, std::size_t{30}}) {
      std::vector<std::vector<float>> energy;
      for (const Latent& latent : latents)
        energy.push_back(reference_local_energy(latent.levels[0].data, size, radius));
      std::vector<float> expected(count);
      for (std::size_t v = 0; v < count; ++v) {
        std::size_t choice = 0;
        float best = energy[0][v];
        for (std::size_t n = 1; n < latents.size(); ++n) {
          if (energy[n][v] > best) {
            best = energy[n][v];
            choice = n;
          }
        }
        expected[v] = latents[choice].levels[0].data[v];
      }
      for (const int threads : {1, 2}) {
        const Latent fused = fuse(latents,
                                  {{"detail_rule", std::string("local_energy")},
                                   {"window_radius", static_cast<int>(radius)},
                                   {"consistency_radius", 0}},
                                  threads);
        EXPECT_EQ(fused.levels[0].data, expected) << size[0] << "x" << size[1] << "x" << size[2] << ", window_radius "
                                                  << radius << ", " << threads << " threads";
      }
    }
  }
}

TEST(FuseLatent, MultiChannelFeatureLevelsAreChosenPerVoxelAcrossAllChannels) {
  // Learned encoders' levels: role "features", 2 channels on a 2x1x1 grid.
  auto make = [](const std::string& modality, std::vector<float> features) {
    Latent latent;
    latent.kind = "learned_test";
    latent.source_geometry.size = {2, 1, 1};
    latent.source_metadata.modality = modality;
    LatentLevel level = level_of("features", "features", {2, 1, 1}, std::move(features));
    level.channels = 2;
    latent.levels.push_back(level);
    return latent;
  };
  // Channel-major: (c0 v0, c0 v1, c1 v0, c1 v1). Voxel 0: A's energy 0.25 + 0.25 > B's 0.36;
  // voxel 1: B's 0.01 + 0.64 > A's 0.16 + 0.
  const Latent a = make("CT", {0.5f, 0.4f, 0.5f, 0.0f});
  const Latent b = make("MR", {0.6f, 0.1f, 0.0f, 0.8f});
  const Latent energy =
      fuse({a, b}, {{"detail_rule", std::string("local_energy")}, {"window_radius", 0}, {"consistency_radius", 0}});
  EXPECT_EQ(energy.levels[0].channels, 2u);
  EXPECT_EQ(energy.levels[0].data, (std::vector<float>{0.5f, 0.1f, 0.5f, 0.8f}));
  // max_abs decides per value.
  EXPECT_EQ(fuse({a, b}).levels[0].data, (std::vector<float>{0.6f, 0.4f, 0.5f, 0.8f}));
}

TEST(FuseLatent, SalienceMatchSelectsWhenSourcesDisagreeAndAveragesWhenTheyMatch) {
  const Latent a = hand_latent("CT", {1.0f, 1.0f, 0.0f, 0.0f}, {0.0f});
  const Latent b = hand_latent("MR", {0.1f, 0.9f, 0.0f, -0.5f}, {0.0f});
  const double alpha = 0.75;
  const Latent fused =
      fuse({a, b}, {{"detail_rule", std::string("salience_match")}, {"window_radius", 0}, {"match_threshold", alpha}});
  // Voxel 0: M = 2 * 0.1 / (1 + 0.01) < alpha: the more salient A.
  EXPECT_EQ(fused.levels[0].data[0], 1.0f);
  // Voxel 1: M = 2 * 0.9 / (1 + 0.81) > alpha: w_min = 1/2 - 1/2 (1 - M) / (1 - alpha) on the less salient B.
  const double match = 1.8 / 1.81;
  const double w_min = 0.5 - 0.5 * (1.0 - match) / (1.0 - alpha);
  EXPECT_NEAR(fused.levels[0].data[1], (1.0 - w_min) * 1.0 + w_min * 0.9, 1e-6);
  EXPECT_EQ(fused.levels[0].data[2], 0.0f);   // both zero: match, average of zeros
  EXPECT_EQ(fused.levels[0].data[3], -0.5f);  // only B is salient (M = 0)
}

TEST(FuseLatent, FusingAnImageWithItselfReturnsItForEveryRule) {
  const Volume image = textured_volume({21, 17, 9}, 11);
  const Latent pyramid = encode("encode.laplacian_pyramid", image, 1, "levels", 3);
  for (const char* rule : {"average", "max_abs", "local_energy", "salience_match"}) {
    const Latent fused =
        fuse({pyramid, pyramid}, {{"detail_rule", std::string(rule)}, {"base_rule", std::string(rule)}});
    for (std::size_t l = 0; l < pyramid.levels.size(); ++l) {
      EXPECT_EQ(fused.levels[l].data, pyramid.levels[l].data) << rule << " level " << l;
    }
    EXPECT_EQ(decode(fused).voxels, decode(pyramid).voxels) << rule;
  }
  const Latent gff = encode("encode.guided_filter", image, 1, "base_radius", 3);
  const Latent fused = fuse({gff, gff}, {{"detail_rule", std::string("guided_filter")},
                                         {"base_rule", std::string("guided_filter")},
                                         {"gff_base_radius", 5}});
  EXPECT_EQ(fused.levels[0].data, gff.levels[0].data);
  EXPECT_EQ(fused.levels[1].data, gff.levels[1].data);
  EXPECT_LE(max_abs_difference(decode(fused).voxels, image.voxels), 1e-6);
}

TEST(FuseLatent, GuidedFilterRuleKeepsTheOnlySalientSource) {
  // B is flat (zero Laplacian, zero saliency); A has structure everywhere, so
  // P_A = 1 everywhere and the refined weights of A are exactly 1.
  const Volume textured = textured_volume({15, 14, 13}, 5, "MR");
  const Volume flat = make_volume(
      {15, 14, 13}, [](std::size_t, std::size_t, std::size_t) { return 0.5f; }, "CT");
  const Latent a = encode("encode.guided_filter", textured, 1, "base_radius", 2);
  const Latent b = encode("encode.guided_filter", flat, 1, "base_radius", 2);
  const Latent fused = fuse({b, a}, {{"detail_rule", std::string("guided_filter")},
                                     {"base_rule", std::string("guided_filter")},
                                     {"gff_base_radius", 4},
                                     {"gff_detail_radius", 2},
                                     {"gff_saliency_sigma", 1.0}});
  EXPECT_LE(max_abs_difference(fused.levels[0].data, a.levels[0].data), 1e-6);
  EXPECT_LE(max_abs_difference(fused.levels[1].data, a.levels[1].data), 1e-6);
}

TEST(FuseLatent, GuidedFilterRuleTakesEachRegionFromTheSourceThatIsSalientThere) {
  // A has structure on the left (i < 12), B on the right; each is flat elsewhere.
  const Volume textured = textured_volume({24, 10, 10}, 9);
  auto half = [&](bool left, const std::string& modality) {
    return make_volume(
        {24, 10, 10},
        [&](std::size_t i, std::size_t j, std::size_t k) {
          return (i < 12) == left ? textured.voxels[textured.geometry.linear_index(i, j, k)] : 0.5f;
        },
        modality);
  };
  const Latent a = encode("encode.guided_filter", half(true, "CT"), 1, "base_radius", 1);
  const Latent b = encode("encode.guided_filter", half(false, "MR"), 1, "base_radius", 1);
  const Latent fused = fuse({a, b}, {{"detail_rule", std::string("guided_filter")},
                                     {"base_rule", std::string("guided_filter")},
                                     {"gff_base_radius", 2},
                                     {"gff_detail_radius", 2},
                                     {"gff_saliency_sigma", 1.0}});
  // Away from the boundary (saliency radius 1 + two guided-filter boxes of
  // radius 2), the weights are exactly 0 or 1.
  const Geometry& g = textured.geometry;
  for (std::size_t k = 0; k < 10; ++k)
    for (std::size_t j = 0; j < 10; ++j)
      for (std::size_t i : {0, 1, 2, 3, 4, 5, 19, 20, 21, 22, 23}) {
        const std::size_t v = g.linear_index(i, j, k);
        const Latent& expected = i < 12 ? a : b;
        ASSERT_FLOAT_EQ(fused.levels[0].data[v], expected.levels[0].data[v]) << i << " " << j << " " << k;
        ASSERT_FLOAT_EQ(fused.levels[1].data[v], expected.levels[1].data[v]) << i << " " << j << " " << k;
      }
}

TEST(FuseLatent, OutputRecordsTheSourcesAndDecodesOntoTheSourceGrid) {
  const Volume ct = textured_volume({12, 11, 10}, 1, "CT");
  const Volume mr = textured_volume({12, 11, 10}, 2, "MR");
  const Latent fused = fuse({encode("encode.laplacian_pyramid", ct), encode("encode.laplacian_pyramid", mr)});
  EXPECT_EQ(fused.kind, "laplacian_pyramid");
  EXPECT_EQ(fused.source_metadata.modality, "FUSED");
  EXPECT_EQ(fused.source_metadata.extra.at("fusion_sources"), "CT,MR");
  EXPECT_EQ(fused.source_metadata.extra.at("fusion_detail_rule"), "max_abs");
  EXPECT_EQ(fused.source_metadata.extra.at("fusion_base_rule"), "average");
  EXPECT_EQ(fused.source_metadata.source, "test_node");
  const Volume volume = decode(fused);
  EXPECT_EQ(volume.metadata.modality, "FUSED");
  EXPECT_TRUE(volume.geometry.same_grid(ct.geometry, 0.0));
}

TEST(FuseLatent, EveryRuleIsBitIdenticalForAnyThreadCount) {
  const Volume ct = textured_volume({23, 19, 17}, 1, "CT");
  const Volume mr = textured_volume({23, 19, 17}, 2, "MR");
  const std::vector<Latent> pyramids{encode("encode.laplacian_pyramid", ct), encode("encode.laplacian_pyramid", mr)};
  const std::vector<Latent> gff{encode("encode.guided_filter", ct, 1, "base_radius", 3),
                                encode("encode.guided_filter", mr, 1, "base_radius", 3)};
  for (const char* rule : {"average", "max_abs", "local_energy", "salience_match", "guided_filter"}) {
    const auto& inputs = std::string(rule) == "guided_filter" ? gff : pyramids;
    const std::vector<std::pair<std::string, ParamValue>> params{
        {"detail_rule", std::string(rule)}, {"base_rule", std::string(rule)}, {"gff_base_radius", 6}};
    const Latent one = fuse(inputs, params, 1);
    const Latent two = fuse(inputs, params, 2);
    const Latent five = fuse(inputs, params, 5);
    for (std::size_t l = 0; l < one.levels.size(); ++l) {
      EXPECT_EQ(two.levels[l].data, one.levels[l].data) << rule << " level " << l;
      EXPECT_EQ(five.levels[l].data, one.levels[l].data) << rule << " level " << l;
    }
  }
}

TEST(FusionNodes, StopWhenCancelled) {
  const Volume ct = textured_volume({12, 12, 12}, 1, "CT");
  const Latent latent = encode("encode.laplacian_pyramid", ct);
  NodeHarness fuse_node(registry(), "fuse.latent");
  fuse_node.add_input("latents", latent).add_input("latents", latent).cancel();
  EXPECT_THROW(fuse_node.run(), Cancelled);
  NodeHarness decode_node(registry(), "decode.latent");
  decode_node.set_input("latent", latent).cancel();
  EXPECT_THROW(decode_node.run(), Cancelled);
  NodeHarness metrics_node(registry(), "metrics.fusion");
  metrics_node.set_input("fused", ct).add_input("sources", ct).cancel();
  EXPECT_THROW(metrics_node.run(), Cancelled);
  NodeHarness normalize_node(registry(), "normalize.intensity");
  normalize_node.set_input("volume", ct).cancel();
  EXPECT_THROW(normalize_node.run(), Cancelled);
}

TEST(FuseLatent, MismatchedInputsAreRefusedNamingTheInputAndLevel) {
  const Latent a = encode("encode.laplacian_pyramid", textured_volume({16, 16, 8}, 1, "CT"), 1, "levels", 3);
  const Latent b = encode("encode.laplacian_pyramid", textured_volume({16, 16, 8}, 2, "MR"), 1, "levels", 3);

  std::string message = fuse_error({a});
  EXPECT_NE(message.find("at least two"), std::string::npos) << message;

  const Latent wavelet = encode("encode.atrous_wavelet", textured_volume({16, 16, 8}, 2, "MR"), 1, "levels", 3);
  message = fuse_error({a, wavelet});
  EXPECT_NE(message.find("latents[1] (MR"), std::string::npos) << message;
  EXPECT_NE(message.find("'atrous_wavelet'"), std::string::npos) << message;

  const Latent fewer = encode("encode.laplacian_pyramid", textured_volume({16, 16, 8}, 2, "MR"), 1, "levels", 2);
  message = fuse_error({a, fewer});
  EXPECT_NE(message.find("levels = 2 vs 3"), std::string::npos) << message;

  Latent shifted = b;
  shifted.levels[2].geometry.origin[0] += 5.0;
  message = fuse_error({a, b, shifted});
  EXPECT_NE(message.find("latents[2] (MR"), std::string::npos) << message;
  EXPECT_NE(message.find("level 2 'detail_2'"), std::string::npos) << message;

  Latent other_grid = b;
  other_grid.source_geometry.spacing[2] = 3.0;
  message = fuse_error({a, other_grid});
  EXPECT_NE(message.find("resample"), std::string::npos) << message;

  message = fuse_error({a, b}, {{"weights", std::vector<double>{1.0, 2.0, 3.0}}});
  EXPECT_NE(message.find("3 values for 2 latents"), std::string::npos) << message;
  message = fuse_error({a, b}, {{"weights", std::vector<double>{0.0, 0.0}}});
  EXPECT_NE(message.find("all be zero"), std::string::npos) << message;
  message = fuse_error({a, b, b}, {{"detail_rule", std::string("salience_match")}});
  EXPECT_NE(message.find("two sources"), std::string::npos) << message;
  message = fuse_error({a, b}, {{"base_rule", std::string("guided_filter")}});
  EXPECT_NE(message.find("encode.guided_filter"), std::string::npos) << message;
}

}  // namespace
}  // namespace fusionflow::fusion_test

namespace fusionflow::fusion_test {
namespace {

TEST(DecodeLatent, FindsTheDecoderTheEncodersPluginRegisteredForTheKind) {
  std::vector<std::string> kinds;
  for (const RegisteredLatentDecoder* decoder : registry().latent_decoders()) {
    kinds.push_back(decoder->decoder.kind);
    EXPECT_EQ(decoder->origin.plugin_name, "encode");
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"atrous_wavelet", "guided_filter", "laplacian_pyramid"}));

  Latent unknown = encode("encode.laplacian_pyramid", textured_volume({8, 8, 8}, 1, "CT"));
  unknown.kind = "nobody_registered";
  NodeHarness node(registry(), "decode.latent");
  node.set_input("latent", unknown);
  try {
    node.run();
    ADD_FAILURE() << "decoded a kind without decoder";
  } catch (const std::invalid_argument& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("no decoder for latent kind 'nobody_registered'"), std::string::npos) << message;
    EXPECT_NE(message.find("atrous_wavelet, guided_filter, laplacian_pyramid"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace fusionflow::fusion_test
