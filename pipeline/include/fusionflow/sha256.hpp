// SHA-256 through OpenSSL's libcrypto (internal to the core library).
#pragma once

#include <string>
#include <string_view>

namespace fusionflow::detail {
// Lower-case hex digest.
std::string sha256_hex(std::string_view bytes);
}  // namespace fusionflow::detail
