// Internal to the pipeline loader: reading a pipeline file's bytes and parsing
// them into a JSON document within PipelineLimits, and the helpers that put
// user-supplied text into messages.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "fusionflow/pipeline.hpp"

namespace fusionflow::detail {

// The file's bytes, or why they were not read. Only a regular file no larger
// than PipelineLimits::max_file_bytes is read; directories, FIFOs, devices
// (such as /dev/zero) and sockets are refused before a byte is read.
struct FileBytes {
  std::string bytes;
  std::vector<Diagnostic> problems;  // empty when `bytes` holds the file
};
FileBytes read_pipeline_bytes(const std::filesystem::path& file);

// A parsed document, or the problems that prevented it: invalid JSON (line and
// column), a NUL byte, nesting deeper than PipelineLimits::max_depth, a number
// beyond the range of a double, duplicate keys (JSON pointer, line and column
// of the repeated key).
struct ParsedDocument {
  nlohmann::json document;
  std::vector<Diagnostic> problems;  // empty when `document` is the text's value
};
ParsedDocument parse_pipeline_json(const std::string& text);

// "line 4, column 7" of a byte offset; columns count characters (UTF-8).
std::string line_and_column(const std::string& text, std::size_t byte_offset);

// One JSON pointer token ("~" and "/" escaped). A token longer than
// PipelineLimits::max_name_length (always an error: no valid key is that long)
// is cut, so that a location stays readable.
std::string pointer_token(const std::string& key);

// User text for a message: returned whole when short, else its beginning,
// "..." and its length.
std::string excerpt(const std::string& text);

}  // namespace fusionflow::detail
