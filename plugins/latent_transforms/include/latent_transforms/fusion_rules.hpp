// Fusion of two or more latents of the same kind, level by level. Levels with
// role "base" use the base rule, all others ("detail", "features") the detail
// rule. Rules (a source's coefficient at a voxel is c_n; with several
// channels, activities sum over channels and a choice takes every channel of
// the chosen source):
//
//  average         sum_n w_n c_n, weights normalised to sum 1 (equal by default).
//  max_abs         the c_n with the largest |c_n| (ties: the first source).
//  local_energy    choose-max on the local energy sum c_n^2 over a
//                  (2 window_radius + 1)^3 box, followed by the consistency
//                  check of Li, Manjunath & Mitra (1995): each voxel takes the
//                  source chosen by the majority of its (2 consistency_radius
//                  + 1)^3 neighbourhood (ties keep the voxel's own choice).
//  salience_match  Burt & Kolczynski (1993), two sources: salience S_n = local
//                  energy, match M = 2 sum c_a c_b / (S_a + S_b). If M <= alpha
//                  the more salient coefficient is taken, else the weighted
//                  average with w_min = 1/2 - 1/2 (1 - M) / (1 - alpha) on the
//                  less salient one and w_max = 1 - w_min on the other.
//  guided_filter   GFF weights (Li, Kang & Hu 2013), latents of kind
//                  "guided_filter" only: I_n = base_n + detail_n, saliency
//                  S_n = Gaussian(|Laplacian(I_n)|) (3D 7-point Laplacian,
//                  Gaussian radius = sigma = 5), P_n = 1 where S_n is the
//                  largest; base weights = guided filter of P_n guided by I_n
//                  with (r1, eps1), detail weights with (r2, eps2), normalised
//                  to sum 1 per voxel.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <fusionflow/choice_list.hpp>
#include <fusionflow/latent.hpp>

#include <fusionflow/run_control.hpp>

namespace fusionflow::latent {

enum class Rule { Average, MaxAbs, LocalEnergy, SalienceMatch, GuidedFilter };

// The rules' names, as pipelines and metadata spell them.
inline const ChoiceList<Rule> kRuleNames{{Rule::Average, "average"},
                                         {Rule::MaxAbs, "max_abs"},
                                         {Rule::LocalEnergy, "local_energy"},
                                         {Rule::SalienceMatch, "salience_match"},
                                         {Rule::GuidedFilter, "guided_filter"}};

struct FusionOptions {
  Rule detail_rule = Rule::MaxAbs;
  Rule base_rule = Rule::Average;
  std::vector<double> weights;         // per source, for "average"; empty = equal
  std::size_t window_radius = 1;       // local energy and salience window, voxels
  std::size_t consistency_radius = 1;  // majority window; 0 = no consistency check
  double match_threshold = 0.75;       // alpha of salience_match, in [0, 1)
  std::size_t gff_base_radius = 45;    // r1
  double gff_base_eps = 0.3;           // eps1
  std::size_t gff_detail_radius = 7;   // r2
  double gff_detail_eps = 1e-6;        // eps2
  double gff_saliency_sigma = 5.0;     // sigma_g (radius r_g = round(sigma_g))
};

// Throws std::invalid_argument, naming the input (index and modality) and the
// level, when the latents do not fit together (fewer than two, different
// kinds, encoder parameters, level layouts or grids), or when the options do
// not fit them (weights count, salience_match with more than two sources,
// guided_filter on another kind). The result keeps the first latent's source
// geometry; its metadata says modality "FUSED" and lists the sources in
// extra["fusion_sources"].
Latent fuse_latents(const std::vector<const Latent*>& latents, const FusionOptions& options,
                    const RunControl& control = {});

}  // namespace fusionflow::latent
