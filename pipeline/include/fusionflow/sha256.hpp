// SHA-256 (through OpenSSL's libcrypto), for run records, pipeline and model
// file fingerprints.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace fusionflow {
// Lower-case hex digest of `bytes`.
std::string sha256_hex(std::string_view bytes);
// The SHA-256 of a file's content, read in 1 MiB blocks (any size). Throws
// std::runtime_error naming the file if it cannot be read.
std::string sha256_file_hex(const std::filesystem::path& file);

// SHA-256 of bytes given in pieces.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, std::size_t size);
  // The lower-case hex digest; the object is not used after it.
  std::string hex_digest();

 private:
  struct State;
  std::unique_ptr<State> state_;
};
}  // namespace fusionflow
