// NIfTI-1 geometry beyond what ITK 5.2's NiftiImageIO accepts, read with the
// niftilib that ITK itself links (libITKniftiio: ITK's own copy, not
// Debian's nifticlib, whose libnifti2 exports the same symbol names with
// another ABI and must not share a process with it).
//
// ITK 5.2 takes the voxel-to-world transform from the sform only when its
// columns, once normalised, are orthonormal within 1e-4; otherwise from the
// qform when qform_code > 0, and otherwise refuses the file ("ITK only
// supports orthonormal direction cosines"). A slightly sheared sform without
// a qform (seen in real diffusion data) is therefore refused although
// nibabel reads it (ITK 5.2 also refuses an orthonormal sform in metres, whose
// scales it misjudges). The loader then gives such a file the nearest
// orthonormal direction (polar decomposition, vnl's SVD) and reads its voxels
// through niftilib.
#include "io_internal.hpp"

#include <nifti1_io.h>
#include <vnl/algo/vnl_svd.h>
#include <vnl/vnl_matrix_fixed.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace fusionflow::io {
namespace {

using Affine = NiftiAffine;

Affine affine_of(const mat44& matrix, double scale) {
  Affine affine{};
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 4; ++c) affine[r][c] = scale * matrix.m[r][c];
  }
  return affine;
}

// ITK 5.2's test for an sform it can use: the 3x3 part with normalised
// columns is orthonormal within 1e-4 (R * R^T is the identity).
bool columns_orthonormal(const Affine& affine) {
  double unit[3][3];
  for (int c = 0; c < 3; ++c) {
    const double norm =
        std::sqrt(affine[0][c] * affine[0][c] + affine[1][c] * affine[1][c] + affine[2][c] * affine[2][c]);
    if (!(norm > 0) || !std::isfinite(norm)) return false;
    for (int r = 0; r < 3; ++r) unit[r][c] = affine[r][c] / norm;
  }
  for (int a = 0; a < 3; ++a) {
    for (int b = 0; b < 3; ++b) {
      double dot = 0;
      for (int k = 0; k < 3; ++k) dot += unit[a][k] * unit[b][k];
      if (std::abs(dot - (a == b ? 1.0 : 0.0)) > 1e-4) return false;
    }
  }
  return true;
}

// Corner voxel centres of the grid (indices 0 and n-1 along each axis).
std::vector<std::array<double, 3>> corner_indices(const std::array<std::size_t, 3>& size) {
  std::vector<std::array<double, 3>> corners;
  for (int n = 0; n < 8; ++n) {
    corners.push_back({(n & 1) ? double(size[0] - 1) : 0.0, (n & 2) ? double(size[1] - 1) : 0.0,
                       (n & 4) ? double(size[2] - 1) : 0.0});
  }
  return corners;
}

const char* nifti_xform_name(int code) {
  switch (code) {
    case NIFTI_XFORM_UNKNOWN: return "unknown";
    case NIFTI_XFORM_SCANNER_ANAT: return "scanner";
    case NIFTI_XFORM_ALIGNED_ANAT: return "aligned";
    case NIFTI_XFORM_TALAIRACH: return "talairach";
    case NIFTI_XFORM_MNI_152: return "mni";
    default: return "non-standard";
  }
}

}  // namespace

std::string NiftiHeader::describe(bool use_sform) const {
  const int code = use_sform ? sform_code : qform_code;
  return std::string(use_sform ? "sform" : "qform") + " (code " + std::to_string(code) + ": " + nifti_xform_name(code) +
         ")";
}

double max_corner_distance(const Affine& a, const Affine& b, const std::array<std::size_t, 3>& size) {
  double largest = 0;
  for (const auto& index : corner_indices(size)) {
    double squares = 0;
    for (int r = 0; r < 3; ++r) {
      double difference = a[r][3] - b[r][3];
      for (int c = 0; c < 3; ++c) difference += (a[r][c] - b[r][c]) * index[c];
      squares += difference * difference;
    }
    largest = std::max(largest, std::sqrt(squares));
  }
  return largest;
}

std::optional<NiftiHeader> read_nifti_header(const std::filesystem::path& path) {
  std::unique_ptr<nifti_image, decltype(&nifti_image_free)> image(nifti_image_read(path.c_str(), 0), &nifti_image_free);
  if (!image) return std::nullopt;
  NiftiHeader header;
  header.ndim = image->ndim;
  for (int n = 0; n < 7; ++n) header.dim[n] = image->dim[n + 1] > 0 ? std::size_t(image->dim[n + 1]) : 0;
  header.datatype = image->datatype;
  header.bytes_per_voxel = image->nbyper;
  header.qform_code = image->qform_code;
  header.sform_code = image->sform_code;
  // Spatial units to mm, as ITK converts them (metres, microns; mm or
  // unknown are taken as mm).
  const int units = XYZT_TO_SPACE(image->xyz_units);
  const double mm_per_unit = units == NIFTI_UNITS_METER ? 1000.0 : units == NIFTI_UNITS_MICRON ? 0.001 : 1.0;
  header.qform = affine_of(image->qto_xyz, mm_per_unit);
  header.sform = affine_of(image->sto_xyz, mm_per_unit);
  header.sform_usable_by_itk = header.sform_code > 0 && columns_orthonormal(header.sform);
  return header;
}

PolarGeometry polar_geometry(const Affine& affine, const std::array<std::size_t, 3>& size) {
  // Polar decomposition A = R S through the SVD A = U W V^T: R = U V^T, in
  // double with ITK's vnl. (The niftilib ITK links has nifti_mat33_polar
  // only in single precision, which leaves R orthonormal to 1e-7 only; the
  // double nifti_dmat33_polar is in Debian's libnifti2, whose symbols clash
  // with ITK's copy of niftilib in one process.)
  vnl_matrix_fixed<double, 3, 3> linear;
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) linear(r, c) = affine[r][c];
  }
  const vnl_svd<double> svd(linear.as_ref());
  const vnl_matrix<double> polar = svd.U() * svd.V().transpose();
  double rotation[3][3];
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) rotation[r][c] = polar(unsigned(r), unsigned(c));
  }
  PolarGeometry result;
  Affine ours = affine;
  for (int c = 0; c < 3; ++c) {
    // Spacing: the column norms of the affine, as nibabel's zooms (and the
    // pixdim nibabel writes for such an affine).
    const double spacing =
        std::sqrt(affine[0][c] * affine[0][c] + affine[1][c] * affine[1][c] + affine[2][c] * affine[2][c]);
    result.geometry.spacing[c] = spacing;
    for (int r = 0; r < 3; ++r) ours[r][c] = rotation[r][c] * spacing;
  }
  // NIfTI is RAS, ITK (and Volume) LPS: negate the first two rows.
  for (int r = 0; r < 3; ++r) {
    const double sign = r < 2 ? -1.0 : 1.0;
    result.geometry.origin[r] = sign * affine[r][3];
    for (int c = 0; c < 3; ++c) result.geometry.direction[r * 3 + c] = sign * rotation[r][c];
  }
  result.geometry.size = size;
  result.error_mm = max_corner_distance(affine, ours, size);
  return result;
}

std::vector<float> read_nifti_volume(const std::filesystem::path& path, std::size_t volume_index) {
  std::unique_ptr<nifti_image, decltype(&nifti_image_free)> image(nifti_image_read(path.c_str(), 0), &nifti_image_free);
  if (!image) throw std::runtime_error("cannot read " + quoted(path) + ": niftilib cannot read its header");
  int start[7] = {0, 0, 0, static_cast<int>(volume_index), 0, 0, 0};
  int extent[7] = {std::max(1, image->dim[1]), std::max(1, image->dim[2]), std::max(1, image->dim[3]), 1, 1, 1, 1};
  for (int n = 0; n < 3; ++n) {
    if (image->ndim < n + 1) extent[n] = 1;
  }
  void* raw = nullptr;
  const int got = nifti_read_subregion_image(image.get(), start, extent, &raw);
  std::unique_ptr<void, decltype(&std::free)> owned(raw, &std::free);
  const std::size_t count = std::size_t(extent[0]) * std::size_t(extent[1]) * std::size_t(extent[2]);
  if (got < 0 || raw == nullptr || std::size_t(got) < count * std::size_t(image->nbyper)) {
    throw std::runtime_error("cannot read the voxels of " + quoted(path) +
                             ": the file is truncated or corrupt (niftilib could not read volume " +
                             std::to_string(volume_index) + ")");
  }
  std::vector<float> voxels(count);
  auto convert = [&](auto sample) {
    using T = decltype(sample);
    const T* values = static_cast<const T*>(raw);
    for (std::size_t n = 0; n < count; ++n) voxels[n] = static_cast<float>(values[n]);
  };
  switch (image->datatype) {
    case DT_UINT8: convert(std::uint8_t{}); break;
    case DT_INT8: convert(std::int8_t{}); break;
    case DT_INT16: convert(std::int16_t{}); break;
    case DT_UINT16: convert(std::uint16_t{}); break;
    case DT_INT32: convert(std::int32_t{}); break;
    case DT_UINT32: convert(std::uint32_t{}); break;
    case DT_INT64: convert(std::int64_t{}); break;
    case DT_UINT64: convert(std::uint64_t{}); break;
    case DT_FLOAT32: convert(float{}); break;
    case DT_FLOAT64: convert(double{}); break;
    default:
      throw std::runtime_error("cannot read " + quoted(path) + ": unsupported NIfTI datatype " +
                               std::to_string(image->datatype) + " (" + nifti_datatype_to_string(image->datatype) +
                               "); the io loaders read single-component (grey-level) images");
  }
  // NIfTI data scaling, as ITK applies it: value * scl_slope + scl_inter
  // when the slope is non-zero and the pair is not the identity.
  const double slope = image->scl_slope, intercept = image->scl_inter;
  if (std::isfinite(slope) && slope != 0.0 && std::isfinite(intercept) && (slope != 1.0 || intercept != 0.0)) {
    for (float& value : voxels) value = static_cast<float>(double(value) * slope + intercept);
  }
  return voxels;
}

}  // namespace fusionflow::io
