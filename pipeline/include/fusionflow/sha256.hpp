// SHA-256 (through OpenSSL's libcrypto), for run records, pipeline and model
// file fingerprints.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace fusionflow {
// Lower-case hex digest of `bytes`.
std::string sha256_hex(std::string_view bytes);
// The SHA-256 of a file's content, read in 1 MiB blocks (any size). Throws
// std::runtime_error naming the file if it cannot be read.
std::string sha256_file_hex(const std::filesystem::path& file);
}  // namespace fusionflow
