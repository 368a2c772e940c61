// The Volume payload: a 3D scalar image with physical geometry and modality
// metadata. Kept free of ITK/VTK so that every plugin and the core can include
// it cheaply; plugins convert to ITK images through fusionflow/itk_bridge.hpp.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace fusionflow {

// Physical geometry in ITK's convention: LPS world coordinates,
// point = origin + direction * (spacing .* index).
// `direction` is row-major; its columns are the world directions of the
// i, j and k voxel axes.
struct Geometry {
  std::array<std::size_t, 3> size{0, 0, 0};
  std::array<double, 3> spacing{1.0, 1.0, 1.0};
  std::array<double, 3> origin{0.0, 0.0, 0.0};
  std::array<double, 9> direction{1, 0, 0, 0, 1, 0, 0, 0, 1};

  std::size_t voxel_count() const { return size[0] * size[1] * size[2]; }
  std::size_t linear_index(std::size_t i, std::size_t j, std::size_t k) const {
    return i + size[0] * (j + size[1] * k);
  }
  // Continuous index -> LPS point (mm).
  std::array<double, 3> index_to_point(const std::array<double, 3>& index) const;
  // LPS point (mm) -> continuous index.
  std::array<double, 3> point_to_index(const std::array<double, 3>& point) const;
  // Same size, and spacing/origin/direction equal within `tolerance`
  // (relative to spacing for origins).
  bool same_grid(const Geometry& other, double tolerance = 1e-6) const;
  // "NxMxK", for messages.
  std::string size_string() const;
};

// What the intensities mean. Never holds patient identifiers: loaders keep
// those out unless the user explicitly asks for them.
struct VolumeMetadata {
  std::string modality;  // "CT", "MR", "PT", "LABELS", "FUSED", ...
  std::string units;     // "HU", "Bq/mL", "SUVbw", "a.u.", ...
  std::string quantity;  // e.g. "attenuation", "T1-weighted", "activity concentration"
  std::string source;    // file or node that produced it
  std::string series_description;
  std::map<std::string, std::string> extra;  // e.g. PET dose/weight for SUV
};

// The voxels of a volume: used like a std::vector<float> (size, data,
// operator[], begin/end, resize, assign, ...), and owned like one, except
// that a buffer may also be borrowed: memory another runtime allocated (a
// NumPy array handed over by the Python module), kept alive by an owner
// handle for as long as the buffer refers to it. Borrowed memory is never
// resized: an operation that changes the size (resize, assign, push_back,
// clear, ...) first copies it into owned storage. A copy of a buffer is
// always owned (as a std::vector's copy), so a node that copies its input
// volume to change it never writes into memory it was lent; payloads are
// read through const references, which only read.
class VoxelBuffer {
 public:
  using value_type = float;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using reference = float&;
  using const_reference = const float&;
  using pointer = float*;
  using const_pointer = const float*;
  using iterator = float*;
  using const_iterator = const float*;

  VoxelBuffer() = default;
  explicit VoxelBuffer(size_type count, float value = 0.0f) : owned_(count, value) { use_owned(); }
  VoxelBuffer(std::vector<float> values) : owned_(std::move(values)) { use_owned(); }  // NOLINT: implicit, as a vector
  VoxelBuffer(std::initializer_list<float> values) : owned_(values) { use_owned(); }
  template <class InputIt, class = std::enable_if_t<!std::is_integral_v<InputIt>>>
  VoxelBuffer(InputIt first, InputIt last) : owned_(first, last) {
    use_owned();
  }
  VoxelBuffer(const VoxelBuffer& other) : owned_(other.begin(), other.end()) { use_owned(); }
  VoxelBuffer(VoxelBuffer&& other) noexcept { take(std::move(other)); }
  VoxelBuffer& operator=(const VoxelBuffer& other) {
    if (this != &other) {
      std::vector<float> copy(other.begin(), other.end());
      owner_.reset();
      owned_ = std::move(copy);
      use_owned();
    }
    return *this;
  }
  VoxelBuffer& operator=(VoxelBuffer&& other) noexcept {
    if (this != &other) take(std::move(other));
    return *this;
  }
  ~VoxelBuffer() = default;

  // `count` floats at `data`, which `owner` keeps valid until the buffer (and
  // every buffer moved from it) no longer refers to them.
  static VoxelBuffer borrow(float* data, size_type count, std::shared_ptr<const void> owner) {
    VoxelBuffer buffer;
    buffer.owner_ = std::move(owner);
    buffer.data_ = data;
    buffer.size_ = count;
    return buffer;
  }
  bool borrowed() const { return owner_ != nullptr; }

  size_type size() const { return size_; }
  bool empty() const { return size_ == 0; }
  float* data() { return data_; }
  const float* data() const { return data_; }
  float& operator[](size_type index) { return data_[index]; }
  const float& operator[](size_type index) const { return data_[index]; }
  float* begin() { return data_; }
  float* end() { return data_ + size_; }
  const float* begin() const { return data_; }
  const float* end() const { return data_ + size_; }
  const float* cbegin() const { return data_; }
  const float* cend() const { return data_ + size_; }
  float& front() { return data_[0]; }
  float& back() { return data_[size_ - 1]; }
  const float& front() const { return data_[0]; }
  const float& back() const { return data_[size_ - 1]; }

  void resize(size_type count) {
    owned().resize(count);
    use_owned();
  }
  void resize(size_type count, float value) {
    owned().resize(count, value);
    use_owned();
  }
  void assign(size_type count, float value) {
    owner_.reset();
    owned_.assign(count, value);
    use_owned();
  }
  template <class InputIt, class = std::enable_if_t<!std::is_integral_v<InputIt>>>
  void assign(InputIt first, InputIt last) {
    std::vector<float> values(first, last);  // the range may be this buffer's own
    owner_.reset();
    owned_ = std::move(values);
    use_owned();
  }
  void reserve(size_type count) {
    owned().reserve(count);
    use_owned();
  }
  void push_back(float value) {
    owned().push_back(value);
    use_owned();
  }
  void pop_back() {
    owned().pop_back();
    use_owned();
  }
  void clear() {
    owner_.reset();
    owned_.clear();
    use_owned();
  }

  // A copy as a std::vector (for code that needs one).
  operator std::vector<float>() const { return std::vector<float>(begin(), end()); }  // NOLINT: implicit

  friend bool operator==(const VoxelBuffer& a, const VoxelBuffer& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }
  friend bool operator!=(const VoxelBuffer& a, const VoxelBuffer& b) { return !(a == b); }

 private:
  // The owned storage, holding the borrowed values first if there were any.
  std::vector<float>& owned() {
    if (owner_) {
      owned_.assign(data_, data_ + size_);
      owner_.reset();
    }
    return owned_;
  }
  void use_owned() {
    data_ = owned_.data();
    size_ = owned_.size();
  }
  void take(VoxelBuffer&& other) noexcept {
    owner_ = std::move(other.owner_);
    owned_ = std::move(other.owned_);  // a vector's move keeps its data where it is
    data_ = other.data_;
    size_ = other.size_;
    other.owned_.clear();
    other.use_owned();
  }

  std::vector<float> owned_;
  std::shared_ptr<const void> owner_;  // set while borrowed
  float* data_ = nullptr;
  size_type size_ = 0;
};

struct Volume {
  Geometry geometry;
  VoxelBuffer voxels;  // x (i) fastest, then j, then k
  VolumeMetadata metadata;

  float at(std::size_t i, std::size_t j, std::size_t k) const { return voxels[geometry.linear_index(i, j, k)]; }
};

}  // namespace fusionflow
