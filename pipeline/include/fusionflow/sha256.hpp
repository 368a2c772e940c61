// SHA-256 (through OpenSSL's libcrypto), for run records, pipeline and model
// file fingerprints.
#pragma once

#include <string>
#include <string_view>

namespace fusionflow {
// Lower-case hex digest of `bytes`.
std::string sha256_hex(std::string_view bytes);
}  // namespace fusionflow
