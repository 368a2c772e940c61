// Classical multiscale encoders into the shared Latent representation, and
// the decoder that inverts them. decode_latent(encode_X(v)) reproduces v to
// float rounding (a few ulps) for any grid size, odd sizes included.
//
// Level layout (Latent::levels, finest first, the base last):
//
//  laplacian_pyramid  Burt & Adelson (1983) in 3D, separable 5-tap binomial
//                     kernel [1 4 6 4 1]/16. levels = number of band-pass
//                     levels L_0..L_{n-1} ("detail_<l>", role "detail"),
//                     followed by the low-pass residual ("base"). Level l has
//                     ceil(size / 2^l) voxels per axis. REDUCE keeps the
//                     samples at even indices, so coarse voxel j is centred on
//                     fine voxel 2j: spacing doubles, the origin (centre of
//                     voxel 0) and the direction stay. At the borders the
//                     kernel is renormalised over the samples inside
//                     (normalised convolution), so constants are preserved.
//  atrous_wavelet     Stationary (undecimated) wavelet, "a trous" algorithm
//                     with the B3-spline kernel (Starck & Murtagh): c_{j+1} =
//                     h_j * c_j with 2^j - 1 holes, w_j = c_j - c_{j+1}.
//                     Levels "detail_<j>" (w_j) and "base" (c_n), all on the
//                     source grid; mirror borders. Decoding is the sum.
//  guided_filter      Two-scale decomposition of GFF (Li, Kang & Hu, IEEE TIP
//                     2013): base = mean over a (2r+1)^3 box (r = 15 gives the
//                     paper's 31-wide average filter), detail = image - base.
//                     Levels "detail" and "base" on the source grid. The
//                     guided-filter weight maps are a fusion rule (fuse.latent
//                     rule "guided_filter"), since they need every source.
#pragma once

#include <string>

#include <fusionflow/latent.hpp>
#include <fusionflow/volume.hpp>

#include <fusionflow/run_control.hpp>

namespace fusionflow::latent {

inline constexpr const char* kLaplacianPyramid = "laplacian_pyramid";
inline constexpr const char* kAtrousWavelet = "atrous_wavelet";
inline constexpr const char* kGuidedFilter = "guided_filter";

// Throws std::invalid_argument for an empty volume, a voxel count that does
// not match the geometry, or levels < 1.
Latent encode_laplacian_pyramid(const Volume& volume, int levels, const RunControl& control = {});
Latent encode_atrous_wavelet(const Volume& volume, int levels, const RunControl& control = {});
Latent encode_guided_filter(const Volume& volume, int base_radius, const RunControl& control = {});

// Inverts any of the encoders above, dispatching on Latent::kind. The volume
// gets the latent's source geometry and metadata. Throws std::invalid_argument
// naming the level for an unknown kind or levels that do not fit the kind.
Volume decode_latent(const Latent& latent, const RunControl& control = {});

// The grid of the next coarser pyramid level (see laplacian_pyramid above).
Geometry pyramid_child_geometry(const Geometry& fine);

// "33x47x20"
std::string size_string(const Geometry& geometry);

}  // namespace fusionflow::latent
