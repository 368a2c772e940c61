// What the run report and the study report share: HTML escaping, bounded
// file reads and number formatting (one definition each).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace fusionflow::cli {

// Files a page embeds are read whole; these bounds keep a stray huge file
// (a 3 GB PNG someone named in a pipeline) from exhausting memory. Text files
// are tables, transforms, viewer.json and the page's own style and script.
constexpr std::uintmax_t kMaxEmbeddedFileBytes = 256u << 20;
constexpr std::uintmax_t kMaxTextFileBytes = 16u << 20;

std::string escape_html(std::string_view text);
// Text for a <script> element: "</" would end it early.
std::string escape_script(std::string text);
// The whole file, or nullopt if it cannot be read or is larger than max_bytes.
std::optional<std::string> read_bounded_file(const std::filesystem::path& path, std::uintmax_t max_bytes);
// Integers as integers, others to 4 significant digits, NaN and inf by name.
std::string format_number(double value);
std::string mebibytes(double bytes);  // "12.3"

}  // namespace fusionflow::cli
