// Order statistics every node computes the same way: one definition of a
// percentile for the whole tree (io.load_mri, normalize.intensity,
// core.volume_stats, the viz display range, the learned models' input
// scaling, and any plugin built on the SDK).
#pragma once

#include <vector>

namespace fusionflow {

// The p-th percentile (0 <= p <= 100) of `values`, by linear interpolation
// between the two order statistics around the fractional rank (n - 1) * p / 100
// (0-based): numpy.percentile's default ("linear"), R's quantile type 7,
// definition 7 of Hyndman & Fan (1996). p = 0 and p = 100 give the minimum
// and the maximum; one value gives that value for every p.
// `values` is reordered (std::nth_element; O(n)), not otherwise changed.
// Throws std::invalid_argument for an empty `values`, a NaN among them, or p
// outside [0, 100]: callers choose which voxels count (finite, non-zero, ...).
double percentile(std::vector<float>& values, double p);

}  // namespace fusionflow
