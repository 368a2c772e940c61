// A corpus of malformed (and a few valid but unusual) pipeline files, made by
// the generator below rather than committed as files: each case is written to
// a temporary directory and checked through the real program,
// `fusionflow validate FILE`, for its exit code (0 valid, 2 invalid, never a
// crash or 1), a message matching its pattern (with the JSON location where
// there is one), and a bounded time. Node types are the bundled core plugin's.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace {
namespace fs = std::filesystem;

enum class Source {
  Text,       // the generated text, written to a file
  Directory,  // a directory instead of a file
  Fifo,       // a named pipe
  Sparse,     // a regular file just over the size limit (sparse: nothing written)
  Path,       // a fixed path, e.g. /dev/zero
};

struct CorpusCase {
  std::string name;
  std::function<std::string()> text;  // the file's bytes (or the path, for Source::Path)
  int exit_code = 2;
  // ECMAScript regex searched in the program's output. "[\s\S]*" (anything,
  // newlines included) splits it into parts searched one after the other, so
  // that std::regex, which recurses per character matched, never spans the
  // whole output.
  std::string pattern;
  std::string arguments;  // after the file, e.g. "--set out=x"
  Source source = Source::Text;
};

void PrintTo(const CorpusCase& c, std::ostream* out) { *out << c.name; }

std::string repeated(const std::string& text, std::size_t count) {
  std::string result;
  result.reserve(text.size() * count);
  for (std::size_t i = 0; i < count; ++i) result += text;
  return result;
}

// A name of 4 MiB (made when a case runs, not when the corpus is listed).
std::string huge() { return std::string(4u << 20, 'a'); }

std::string pipeline(const std::string& nodes, const std::string& variables = "") {
  return std::string(R"({"format_version": 1, )") + (variables.empty() ? "" : R"("variables": )" + variables + ", ") +
         R"("nodes": [)" + nodes + "]}";
}

std::string volume(const std::string& params = "") {
  return R"({"id": "sphere", "type": "core.synthetic_volume", "params": {"size": [8, 8, 8])" +
         (params.empty() ? "" : ", " + params) + "}}";
}

std::string stats(const std::string& inputs = R"("volume": "sphere.volume")") {
  return R"({"id": "stats", "type": "core.volume_stats", "inputs": {)" + inputs + "}}";
}

std::string merge(const std::string& tables) {
  return R"({"id": "merged", "type": "core.merge_tables", "inputs": {"tables": )" + tables + "}}";
}

std::vector<CorpusCase> corpus() {
  std::vector<CorpusCase> cases;
  auto add = [&](std::string name, std::function<std::string()> text, int exit_code, std::string pattern,
                 std::string arguments = "", Source source = Source::Text) {
    cases.push_back({std::move(name), std::move(text), exit_code, std::move(pattern), std::move(arguments), source});
  };
  auto text = [](std::string value) { return [value] { return value; }; };
  const std::string valid_one = R"(: valid \(1 nodes\))";

  // --- the file itself and JSON syntax -------------------------------------------
  add("empty_file", text(""), 2, ": error: the file is empty\n    hint: a pipeline is a JSON object");
  add("only_white_space", text(" \n\t\r\n  "), 2, ": error: the file holds only white space");
  add("only_a_byte_order_mark", text("\xEF\xBB\xBF"), 2, ": error: the file holds only white space");
  add("top_level_list", text("[]"), 2, ": error: a pipeline must be a JSON object, not a list");
  add("top_level_string", text("\"pipeline\""), 2, ": error: a pipeline must be a JSON object, not a string");
  add("top_level_number", text("42"), 2, ": error: a pipeline must be a JSON object, not an integer");
  add("top_level_null", text("null"), 2, ": error: a pipeline must be a JSON object, not null");
  add("top_level_boolean", text("true"), 2, ": error: a pipeline must be a JSON object, not a boolean");
  add("trailing_comma_in_list", text(pipeline(volume() + ",")), 2,
      R"(: line 1, column \d+: error: invalid JSON.*\n    hint: remove the comma before this '\]')");
  add("trailing_comma_in_object", text(R"({"format_version": 1, "nodes": [)" + volume() + "],}"), 2,
      R"(: line 1, column \d+: error: invalid JSON.*\n    hint: remove the comma before this '\}')");
  add("line_comment", text("{\n  // version\n  \"format_version\": 1, \"nodes\": [" + volume() + "]}"), 2,
      R"(: line 2, column 3: error: invalid JSON.*\n    hint: JSON has no comments)");
  add("block_comment", text(R"({"format_version": 1 /* one */, "nodes": [)" + volume() + "]}"), 2,
      R"(: line 1, column 22: error: invalid JSON.*\n    hint: JSON has no comments)");
  add("single_quotes", text("{'format_version': 1}"), 2,
      R"(: line 1, column 2: error: invalid JSON.*\n.*double quotes)");
  add("unquoted_key", text("{format_version: 1}"), 2, R"(: line 1, column \d+: error: invalid JSON: syntax error)");
  add("missing_comma", text("{\"format_version\": 1\n \"nodes\": []}"), 2,
      R"(: line 2, column 8: error: invalid JSON.*\n    hint: check for a missing comma)");
  add("unclosed_object", text(R"({"format_version": 1, "nodes": [)"), 2, R"(error: invalid JSON: .*end of input)");
  add("unclosed_string", text(R"({"format_version": 1, "nodes)"), 2, R"(error: invalid JSON: .*string)");
  add("garbage_after_the_document", text(pipeline(volume()) + " x"), 2,
      R"(error: invalid JSON: .*expected end of input)");
  add("two_documents", text(pipeline(volume()) + pipeline(volume())), 2, R"(error: invalid JSON: .*end of input)");
  add("nul_then_garbage", text(pipeline(volume()) + std::string("\0{{{{garbage", 12)), 2,
      R"(: line 1, column \d+: error: the file contains a NUL byte\n    hint: .*UTF-16)");
  add("nul_at_the_end", text(pipeline(volume()) + std::string(1, '\0')), 2, ": error: the file contains a NUL byte");
  add("utf16_with_byte_order_mark", text(std::string("\xFF\xFE{\0}\0", 6)), 2,
      R"(: line 1, column \d+: error: the file contains a NUL byte)");
  add("invalid_utf8_in_a_string",
      text(pipeline(volume(R"("modality": "CT)"
                           "\xC3\x28"
                           R"(")"))),
      2, R"(error: invalid JSON: .*ill-formed UTF-8.*\n    hint: strings must be UTF-8)");
  add("raw_tab_in_a_string", text(pipeline(volume("\"modality\": \"a\tb\""))), 2,
      R"(error: invalid JSON: .*control character)");
  add("raw_newline_in_a_string", text(pipeline(volume("\"modality\": \"a\nb\""))), 2,
      R"(: line 1, column \d+: error: invalid JSON: .*control character)");
  add("nan_literal", text(pipeline(volume(R"("spacing": [NaN, 1, 1])"))), 2, R"(error: invalid JSON)");
  add("infinity_literal", text(pipeline(volume(R"("spacing": [Infinity, 1, 1])"))), 2, R"(error: invalid JSON)");
  add("hex_number", text(pipeline(volume(R"("seed": 0x10)"))), 2, R"(error: invalid JSON)");
  add("leading_zero", text(pipeline(volume(R"("seed": 007)"))), 2, R"(error: invalid JSON)");
  add("valid_with_byte_order_mark", text("\xEF\xBB\xBF" + pipeline(volume())), 0, valid_one);
  add("valid_with_crlf_line_ends", text("{\r\n\"format_version\": 1,\r\n\"nodes\": [" + volume() + "]\r\n}\r\n"), 0,
      valid_one);
  add("valid_unicode_text", text(pipeline(volume(R"("modality": "Tépé \u00e9 🧠")"))), 0, valid_one);
  add("valid_escaped_slash_and_unicode", text(pipeline(volume(R"("modality": "a\/b\u0041\ud83e\udde0")"))), 0,
      valid_one);

  // --- numbers ---------------------------------------------------------------------
  add("number_beyond_a_double", text(pipeline(volume(R"("spacing": [1e999, 1, 1])"))), 2,
      R"(: /nodes/0/params/spacing/0 \(line 1, column \d+\): error: number 1e999 is beyond the range of a double)");
  add("negative_number_beyond_a_double", text(pipeline(volume(R"("seed": -2E+400)"))), 2,
      R"(: /nodes/0/params/seed \(line 1, column \d+\): error: number -2E\+400 is beyond the range)");
  add("number_beyond_a_double_at_top_level", text("1e400"), 2, R"(: line 1, column 1: error: number 1e400 is beyond)");
  add("integer_beyond_64_bits", text(pipeline(volume(R"("seed": 100000000000000000000000)"))), 2,
      R"(: /nodes/0/params/seed: error: parameter 'seed' expects an integer)");
  add("number_underflowing_to_zero", text(pipeline(volume(R"("spacing": [1e-400, 1, 1])"))), 2,
      R"(: /nodes/0/params/spacing/0: error: value 0 of parameter 'spacing' is out of range)");
  add("number_string_beyond_a_double", text(pipeline(volume(R"("seed": "1e999")"))), 2,
      R"(: /nodes/0/params/seed: error: parameter 'seed' expects an integer, got "1e999")");
  add("valid_integral_float_for_an_int",
      text(pipeline(R"({"id": "a", "type": "core.synthetic_volume", "params": {"seed": 3.0, "size": [8.0, 8, 8]}})")),
      0, valid_one);

  // --- nesting ------------------------------------------------------------------------
  add(
      "deep_list_in_a_parameter",
      [] { return pipeline(volume(R"("modality": )" + repeated("[", 500000) + repeated("]", 500000))); }, 2,
      R"(: /nodes/0/params/modality(/0){60} \(line 1, column \d+\): error: nesting deeper than 64 levels)");
  add(
      "deep_objects_in_a_parameter",
      [] { return pipeline(volume(R"("modality": )" + repeated(R"({"a": )", 300000) + "1" + repeated("}", 300000))); },
      2, R"(: /nodes/0/params/modality(/a){60} \(line 1, column \d+\): error: nesting deeper than 64 levels)");
  add(
      "deep_list_at_top_level", [] { return repeated("[", 1000000); }, 2,
      R"(: (/0){64} \(line 1, column 65\): error: nesting deeper than 64 levels)");
  add(
      "nesting_at_the_limit_is_parsed",
      [] {
        return R"({"format_version": 1, "description": )" + repeated("[", 63) + repeated("]", 63) + R"(, "nodes": [)" +
               volume() + "]}";
      },
      2, R"(: /description: error: must be a string, not a list)");

  // --- duplicate keys ---------------------------------------------------------------
  add("duplicate_top_level_key", text(R"({"format_version": 1, "format_version": 1, "nodes": [)" + volume() + "]}"), 2,
      R"(: /format_version \(line 1, column 23\): error: duplicate key 'format_version'\n    hint: a key may)"
      R"( appear only once)");
  add("duplicate_parameter", text(pipeline(volume(R"("seed": 1, "seed": 2)"))), 2,
      R"(: /nodes/0/params/seed \(line 1, column \d+\): error: duplicate key 'seed')");
  add("duplicate_key_spelt_with_an_escape", text(pipeline(volume(R"("seed": 1, "se\u0065d": 2)"))), 2,
      R"(: /nodes/0/params/seed \(line 1, column \d+\): error: duplicate key 'seed')");
  add("duplicate_node_key", text(pipeline(R"({"id": "a", "id": "b", "type": "core.synthetic_volume"})")), 2,
      R"(: /nodes/0/id \(line 1, column 45\): error: duplicate key 'id')");
  add("duplicate_variable", text(pipeline(volume(), R"({"out": "a",
"out": "b"})")),
      2, R"(: /variables/out \(line 2, column 1\): error: duplicate key 'out')");
  add(
      "many_duplicate_keys", [] { return pipeline(volume(repeated(R"("seed": 1, )", 3000) + R"("seed": 1)")); }, 2,
      R"(error: too many duplicate keys: stopped reading)");

  // --- top level ------------------------------------------------------------------------
  add("missing_format_version", text(R"({"nodes": [)" + volume() + "]}"), 2, R"(: error: missing 'format_version')");
  add("format_version_string", text(R"({"format_version": "1", "nodes": [)" + volume() + "]}"), 2,
      R"(: /format_version: error: must be an integer, not a string)");
  add("format_version_float", text(R"({"format_version": 1.0, "nodes": [)" + volume() + "]}"), 2,
      R"(: /format_version: error: must be an integer, not a number)");
  add("format_version_2", text(R"({"format_version": 2, "nodes": [)" + volume() + "]}"), 2,
      R"(: /format_version: error: format version 2 is not supported)");
  add("format_version_beyond_int", text(R"({"format_version": 18446744073709551615, "nodes": [)" + volume() + "]}"), 2,
      R"(: /format_version: error: format version 18446744073709551615 is not supported)");
  add("unknown_top_level_key", text(R"({"format_version": 1, "node": [], "nodes": [)" + volume() + "]}"), 2,
      R"(: /node: error: unknown top-level key 'node'\n    hint: did you mean 'nodes'\?)");
  add("description_number", text(R"({"format_version": 1, "description": 3, "nodes": [)" + volume() + "]}"), 2,
      R"(: /description: error: must be a string, not an integer\n    hint: a description is free text)");
  add("description_null", text(R"({"format_version": 1, "description": null, "nodes": [)" + volume() + "]}"), 2,
      R"(: /description: error: must be a string, not null)");
  add("missing_nodes", text(R"({"format_version": 1})"), 2, R"(: error: missing 'nodes')");
  add("nodes_object", text(R"({"format_version": 1, "nodes": {}})"), 2,
      R"(: /nodes: error: must be a list of nodes, not an object)");
  add("nodes_null", text(R"({"format_version": 1, "nodes": null})"), 2,
      R"(: /nodes: error: must be a list of nodes, not null)");
  add("nodes_empty", text(R"({"format_version": 1, "nodes": []})"), 2, R"(: /nodes: error: the pipeline has no nodes)");
  add(
      "many_problems_are_counted",
      [] {
        std::string nodes;
        for (int i = 0; i < 1500; ++i) nodes += std::string(i ? ", " : "") + "7";
        return pipeline(nodes);
      },
      2,
      R"(: /nodes/999: error: a node must be an object[\s\S]*: error: 500 more problems not listed \(only the)"
      R"( first 1000 are\))");

  // --- nodes ------------------------------------------------------------------------------
  add("node_string", text(pipeline(R"("sphere")")), 2, R"(: /nodes/0: error: a node must be an object, not a string)");
  add("node_list", text(pipeline("[]")), 2, R"(: /nodes/0: error: a node must be an object, not a list)");
  add("node_without_id", text(pipeline(R"({"type": "core.synthetic_volume"})")), 2,
      R"(: /nodes/0: error: node has no string 'id')");
  add("node_id_number", text(pipeline(R"({"id": 1, "type": "core.synthetic_volume"})")), 2,
      R"(: /nodes/0/id: error: node has no string 'id')");
  add("node_id_empty", text(pipeline(R"({"id": "", "type": "core.synthetic_volume"})")), 2,
      R"(: /nodes/0/id: error: node id '' is not valid)");
  add("node_id_with_a_dot", text(pipeline(R"({"id": "a.b", "type": "core.synthetic_volume"})")), 2,
      R"(: /nodes/0/id: error: node id 'a.b' is not valid\n    hint: .*no dots)");
  add("node_id_starting_with_a_digit", text(pipeline(R"({"id": "1a", "type": "core.synthetic_volume"})")), 2,
      R"(: /nodes/0/id: error: node id '1a' is not valid)");
  add("node_id_unicode", text(pipeline(R"({"id": "schädel", "type": "core.synthetic_volume"})")), 2,
      R"(: /nodes/0/id: error: node id 'schädel' is not valid)");
  add(
      "node_id_megabytes_long",
      [] { return pipeline(R"({"id": ")" + huge() + R"(", "type": "core.synthetic_volume"})"); }, 2,
      R"(: /nodes/0/id: error: node id 'a{40}\.\.\. \(4194304 bytes\)' is too long: the limit is 256 bytes)");
  add("node_id_257_bytes",
      text(pipeline(R"({"id": ")" + std::string(257, 'n') + R"(", "type": "core.synthetic_volume"})")), 2,
      R"(: /nodes/0/id: error: node id 'n{40}\.\.\. \(257 bytes\)' is too long)");
  add("valid_node_id_256_bytes",
      text(pipeline(R"({"id": ")" + std::string(256, 'n') + R"(", "type": "core.synthetic_volume"})")), 0, valid_one);
  add("duplicate_node_id", text(pipeline(volume() + ", " + volume())), 2,
      R"(: /nodes/1/id: error: duplicate node id 'sphere'\n    hint: already used by /nodes/0)");
  add("node_without_type", text(pipeline(R"({"id": "a"})")), 2, R"(: /nodes/0: error: node has no string 'type')");
  add("node_type_list", text(pipeline(R"({"id": "a", "type": ["core.synthetic_volume"]})")), 2,
      R"(: /nodes/0/type: error: node has no string 'type')");
  add("node_type_misspelt", text(pipeline(R"({"id": "a", "type": "core.synthetic_volum"})")), 2,
      R"(: /nodes/0/type: error: unknown node type 'core.synthetic_volum' \(node 'a'\)\n    hint: did you mean)"
      R"( 'core.synthetic_volume'\?)");
  add("node_type_empty", text(pipeline(R"({"id": "a", "type": ""})")), 2,
      R"(: /nodes/0/type: error: unknown node type '')");
  add(
      "node_type_megabytes_long", [] { return pipeline(R"({"id": "a", "type": "core.)" + huge() + R"("})"); }, 2,
      R"(: /nodes/0/type: error: node type 'core\.a{35}\.\.\. \(4194309 bytes\)' is too long: the limit is 256 bytes)");
  add("node_unknown_key", text(pipeline(R"({"id": "a", "type": "core.synthetic_volume", "param": {}})")), 2,
      R"(: /nodes/0/param: error: unknown key 'param' in node\n    hint: did you mean 'params'\?)");
  add(
      "node_unknown_key_megabytes_long",
      [] { return pipeline(R"({"id": "a", "type": "core.synthetic_volume", ")" + huge() + R"(": 1})"); }, 2,
      R"(: /nodes/0/a{40}\.\.\. \(4194304 bytes\): error: unknown key 'a{40}\.\.\. \(4194304 bytes\)' in node)");
  add("node_description_number", text(pipeline(R"({"id": "a", "type": "core.synthetic_volume", "description": 1})")), 2,
      R"(: /nodes/0/description: error: must be a string, not an integer)");
  add("node_description_object", text(pipeline(R"({"id": "a", "type": "core.synthetic_volume", "description": {}})")),
      2, R"(: /nodes/0/description: error: must be a string, not an object)");
  add("valid_node_description", text(pipeline(R"({"id": "a", "type": "core.synthetic_volume", "description": "é"})")),
      0, valid_one);

  // --- parameters ---------------------------------------------------------------------------
  add("params_list", text(pipeline(R"({"id": "a", "type": "core.synthetic_volume", "params": []})")), 2,
      R"(: /nodes/0/params: error: 'params' must be an object, not a list)");
  add("params_string", text(pipeline(R"({"id": "a", "type": "core.synthetic_volume", "params": "size=8"})")), 2,
      R"(: /nodes/0/params: error: 'params' must be an object, not a string)");
  add("unknown_parameter", text(pipeline(volume(R"("sed": 1)"))), 2,
      R"(: /nodes/0/params/sed: error: unknown parameter 'sed' for node type 'core.synthetic_volume'\n    hint:)"
      R"( did you mean 'seed'\?)");
  add("int_as_a_word", text(pipeline(volume(R"("seed": "seven")"))), 2,
      R"(: /nodes/0/params/seed: error: parameter 'seed' expects an integer, got "seven")");
  add("int_as_a_fraction", text(pipeline(volume(R"("seed": 1.5)"))), 2,
      R"(: /nodes/0/params/seed: error: parameter 'seed' expects an integer)");
  add("int_below_its_range", text(pipeline(volume(R"("seed": -1)"))), 2,
      R"(: /nodes/0/params/seed: error: value -1 of parameter 'seed' is out of range\n    hint: allowed: at least 0)");
  add("int_as_a_boolean", text(pipeline(volume(R"("seed": true)"))), 2,
      R"(: /nodes/0/params/seed: error: parameter 'seed' expects an integer, got a boolean)");
  add("int_as_null", text(pipeline(volume(R"("seed": null)"))), 2,
      R"(: /nodes/0/params/seed: error: parameter 'seed' expects an integer, got null)");
  add("list_too_short", text(pipeline(R"({"id": "a", "type": "core.synthetic_volume", "params": {"size": [1, 2]}})")),
      2, R"(: /nodes/0/params/size: error: parameter 'size' needs exactly 3 values, got 2)");
  add("list_as_a_number", text(pipeline(R"({"id": "a", "type": "core.synthetic_volume", "params": {"size": 8}})")), 2,
      R"(: /nodes/0/params/size: error: parameter 'size' expects a list of integers, got an integer)");
  add("list_element_a_word",
      text(pipeline(R"({"id": "a", "type": "core.synthetic_volume", "params": {"size": [8, "x", 8]}})")), 2,
      R"(: /nodes/0/params/size/1: error: parameter 'size' expects an integer, got "x")");
  add("list_element_out_of_range",
      text(pipeline(R"({"id": "a", "type": "core.synthetic_volume", "params": {"size": [8, 8, 99999]}})")), 2,
      R"(: /nodes/0/params/size/2: error: value 99999 of parameter 'size' is out of range\n    hint: allowed)"
      R"( range: \[1, 4096\])");
  add("list_element_a_list",
      text(pipeline(R"({"id": "a", "type": "core.synthetic_volume", "params": {"size": [[8], 8, 8]}})")), 2,
      R"(: /nodes/0/params/size/0: error: parameter 'size' expects an integer, got a list)");
  add(
      "list_of_a_million_numbers", [] { return pipeline(volume(R"("spacing": [)" + repeated("1, ", 999999) + "1]")); },
      2, R"(: /nodes/0/params/spacing: error: parameter 'spacing' needs exactly 3 values, got 1000000)");
  add("invalid_choice", text(pipeline(volume(R"("pattern": "sphear")"))), 2,
      R"(: /nodes/0/params/pattern: error: "sphear" is not a valid choice for parameter 'pattern'\n    hint:)"
      R"( did you mean 'sphere'\? valid choices: sphere, gradient, noise)");
  add("choice_as_a_number", text(pipeline(volume(R"("pattern": 1)"))), 2,
      R"(: /nodes/0/params/pattern: error: parameter 'pattern' expects a string, got an integer)");
  add("string_as_a_list", text(pipeline(volume(R"("modality": ["CT"])"))), 2,
      R"(: /nodes/0/params/modality: error: parameter 'modality' expects a string, got a list)");
  add("string_with_an_escaped_nul", text(pipeline(volume(R"("modality": "C\u0000T")"))), 2,
      R"(: /nodes/0/params/modality: error: parameter 'modality' contains a NUL character)");
  add(
      "string_of_two_mebibytes",
      [] { return pipeline(volume(R"("modality": ")" + std::string(2u << 20, 'x') + "\"")); }, 2,
      R"(: /nodes/0/params/modality: error: parameter 'modality' expands to 2097152 bytes, more than the limit)"
      R"( of 1 MiB)");
  add("missing_required_parameter",
      text(pipeline(volume() + ", " + stats() +
                    R"(, {"id": "w", "type": "core.write_table", "inputs": {"table": "stats.stats"}})")),
      2, R"(: /nodes/2/params: error: missing required parameter 'path' of node type 'core.write_table')");
  add("empty_output_path",
      text(pipeline(
          volume() + ", " + stats() +
          R"(, {"id": "w", "type": "core.write_table", "params": {"path": ""}, "inputs": {"table": "stats.stats"}})")),
      2, R"(: /nodes/2/params/path: error: parameter 'path' is an empty path)");
  add("valid_number_from_a_variable",
      text(pipeline(volume(R"("seed": "${seed}", "spacing": ["${s}", 1, 1])"), R"({"seed": 3, "s": "0.5"})")), 0,
      valid_one);
  add("number_variable_not_a_number", text(pipeline(volume(R"("seed": "${seed}")"), R"({"seed": "abc"})")), 2,
      R"(: /nodes/0/params/seed: error: parameter 'seed' expects an integer, got "abc")");

  // --- inputs and wiring ----------------------------------------------------------------------
  add("inputs_list",
      text(pipeline(volume() + ", " + R"({"id": "stats", "type": "core.volume_stats", "inputs": ["sphere.volume"]})")),
      2, R"(: /nodes/1/inputs: error: 'inputs' must be an object)");
  add("unknown_input_port",
      text(pipeline(volume() + ", " + stats(R"("volume": "sphere.volume", "mask": "sphere.volume")"))), 2,
      R"(: /nodes/1/inputs/mask: error: unknown input port 'mask' for node type 'core.volume_stats')");
  add("connection_a_number", text(pipeline(volume() + ", " + stats(R"("volume": 5)"))), 2,
      R"(: /nodes/1/inputs/volume: error: a connection must be a string "node.port", not an integer)");
  add("connection_without_a_port", text(pipeline(volume() + ", " + stats(R"("volume": "sphere")"))), 2,
      R"(: /nodes/1/inputs/volume: error: connection "sphere" is not of the form "node.port")");
  add("connection_with_an_empty_port", text(pipeline(volume() + ", " + stats(R"("volume": "sphere.")"))), 2,
      R"(: /nodes/1/inputs/volume: error: connection "sphere." is not of the form "node.port")");
  add("connection_to_an_unknown_node", text(pipeline(volume() + ", " + stats(R"("volume": "spheer.volume")"))), 2,
      R"(: /nodes/1/inputs/volume: error: no node with id 'spheer'\n    hint: did you mean 'sphere'\?)");
  add("connection_to_an_unknown_port", text(pipeline(volume() + ", " + stats(R"("volume": "sphere.volumes")"))), 2,
      R"(: /nodes/1/inputs/volume: error: node 'sphere' \(core.synthetic_volume\) has no output port)"
      R"( 'volumes'\n    hint: did you mean 'volume'\?)");
  add(
      "connection_to_a_megabytes_long_node",
      [] { return pipeline(volume() + ", " + stats(R"("volume": ")" + huge() + R"(.volume")")); }, 2,
      R"(: /nodes/1/inputs/volume: error: no node with id 'a{40}\.\.\. \(4194304 bytes\)')");
  add("type_mismatch",
      text(pipeline(volume() + ", " + stats() +
                    R"(, {"id": "again", "type": "core.volume_stats", "inputs": {"volume": "stats.stats"}})")),
      2,
      R"(: /nodes/2/inputs/volume: error: type mismatch: 'stats.stats' is Table but input 'volume' of node)"
      R"( 'again' \(core.volume_stats\) takes Volume)");
  add("list_on_a_single_input", text(pipeline(volume() + ", " + stats(R"("volume": ["sphere.volume"])"))), 2,
      R"(: /nodes/1/inputs/volume: error: input port 'volume' takes one connection, not a list)");
  add("required_input_missing", text(pipeline(volume() + ", " + stats(""))), 2,
      R"(: /nodes/1/inputs: error: required input 'volume' \(Volume\) of node 'stats' is not connected)");
  add("empty_list_on_a_required_multi_input", text(pipeline(merge("[]"))), 2,
      R"(: /nodes/0/inputs/tables: error: required input 'tables' \(Table\) of node 'merged' has an empty)"
      R"( list\n    hint: list at least one)");
  add("connection_list_element_a_number",
      text(pipeline(volume() + ", " + stats() + ", " + merge(R"(["stats.stats", 3])"))), 2,
      R"(: /nodes/2/inputs/tables/1: error: a connection must be a string)");
  add("valid_single_connection_on_a_multi_input",
      text(pipeline(volume() + ", " + stats() + ", " + merge(R"("stats.stats")"))), 0, R"(: valid \(3 nodes\))");
  add("valid_same_producer_twice",
      text(pipeline(volume() + ", " + stats() + ", " + merge(R"(["stats.stats", "stats.stats"])"))), 0,
      R"(: valid \(3 nodes\))");
  add("cycle_on_itself", text(pipeline(merge(R"(["merged.table"])"))), 2,
      R"(: /nodes/0/inputs: error: cycle: 'merged' -> 'merged')");
  add("cycle_of_two",
      text(pipeline(R"({"id": "a", "type": "core.merge_tables", "inputs": {"tables": ["b.table"]}}, )"
                    R"({"id": "b", "type": "core.merge_tables", "inputs": {"tables": ["a.table"]}})")),
      2, R"(error: cycle: 'a' -> 'b' -> 'a'\n    hint: a pipeline must be acyclic)");
  add("connection_from_a_node_of_unknown_type",
      text(pipeline(R"({"id": "sphere", "type": "core.nothing"}, )" + stats())), 2,
      R"(: /nodes/0/type: error: unknown node type 'core.nothing'[\s\S]*: 1 problem found)");
  add(
      "valid_ten_thousand_nodes",
      [] {
        std::string nodes = volume(), tables;
        for (int i = 1; i < 9999; ++i) {
          nodes += R"(, {"id": "s)" + std::to_string(i) +
                   R"(", "type": "core.volume_stats", "inputs": {"volume": "sphere.volume"}})";
          tables += std::string(i > 1 ? ", " : "") + "\"s" + std::to_string(i) + ".stats\"";
        }
        return pipeline(nodes + ", " + merge("[" + tables + "]"));
      },
      0, R"(: valid \(10000 nodes\))");

  // --- variables ------------------------------------------------------------------------------
  add("variables_list", text(pipeline(volume(), "[]")), 2,
      R"(: /variables: error: must be an object mapping names to default values, not a list)");
  add("variable_name_starting_with_a_digit", text(pipeline(volume(), R"({"1x": "a"})")), 2,
      R"(: /variables/1x: error: variable name '1x' is not valid)");
  add("variable_name_with_a_dash", text(pipeline(volume(), R"({"a-b": "a"})")), 2,
      R"(: /variables/a-b: error: variable name 'a-b' is not valid)");
  add("variable_name_with_a_slash", text(pipeline(volume(), R"({"a/b": "a"})")), 2,
      R"(: /variables/a~1b: error: variable name 'a/b' is not valid)");
  add(
      "variable_name_megabytes_long", [] { return pipeline(volume(), R"({")" + huge() + R"(": "x"})"); }, 2,
      R"(: /variables/a{40}\.\.\. \(4194304 bytes\): error: variable name 'a{40}\.\.\. \(4194304 bytes\)' is)"
      R"( too long: the limit is 256 bytes)");
  add("variable_pipeline_dir", text(pipeline(volume(), R"({"pipeline_dir": "a"})")), 2,
      R"(: /variables/pipeline_dir: error: 'pipeline_dir' is a built-in variable)");
  add("variable_default_list", text(pipeline(volume(), R"({"a": [1]})")), 2,
      R"(: /variables/a: error: default of variable 'a' must be a string, number or boolean, not a list)");
  add("variable_object_unknown_key", text(pipeline(volume(), R"({"a": {"value": 1}})")), 2,
      R"(: /variables/a/value: error: unknown key 'value' in variable 'a')");
  add("variable_description_number", text(pipeline(volume(), R"({"a": {"default": 1, "description": 2}})")), 2,
      R"(: /variables/a/description: error: must be a string, not an integer)");
  add("variable_not_set", text(pipeline(volume(R"("modality": "${m}")"), R"({"m": null})")), 2,
      R"(: /variables/m: error: variable 'm' has no default and was not set\n    hint: run with --set)"
      R"( m=VALUE\n[^\n]*: 1 problem found)");
  add("valid_variable_set_on_the_command_line", text(pipeline(volume(R"("modality": "${m}")"), R"({"m": null})")), 0,
      valid_one, "--set m=CT");
  add("set_of_an_undeclared_variable", text(pipeline(volume(), R"({"out": "x"})")), 2,
      R"(: --set ouy: error: the pipeline declares no variable 'ouy'\n    hint: did you mean 'out'\?)", "--set ouy=1");
  add("unknown_variable", text(pipeline(volume(R"("modality": "${modalty}")"), R"({"modality": "CT"})")), 2,
      R"(: /nodes/0/params/modality: error: unknown variable '\$\{modalty\}'\n    hint: did you mean 'modality'\?)");
  add(
      "unknown_variable_megabytes_long", [] { return pipeline(volume(R"("modality": "${)" + huge() + R"(}")")); }, 2,
      R"(: /nodes/0/params/modality: error: unknown variable '\$\{a{40}\.\.\. \(4194304 bytes\)\}')");
  add("empty_variable_reference", text(pipeline(volume(R"("modality": "${}")"))), 2,
      R"(: /nodes/0/params/modality: error: unknown variable '\$\{\}')");
  add("unterminated_reference", text(pipeline(volume(R"("modality": "${m")"), R"({"m": "x"})")), 2,
      R"(: /nodes/0/params/modality: error: unterminated '\$\{' in "\$\{m"\n    hint: write \$\{name\}, or \$\$)"
      R"( for a literal '\$')");
  add("unterminated_reference_in_a_variable", text(pipeline(volume(), R"({"m": "${x"})")), 2,
      R"(: /variables/m: error: unterminated '\$\{')");
  add("variable_cycle", text(pipeline(volume(R"("modality": "${a}")"), R"({"a": "${b}", "b": "${a}"})")), 2,
      R"(: /variables/a: error: variable 'a' refers to itself through other variables\n[\s\S]*: /variables/b:)"
      R"( error: variable 'b' refers to itself[\s\S]*: 2 problems found)");
  add("variable_using_itself", text(pipeline(volume(), R"({"a": "x${a}"})")), 2,
      R"(: /variables/a: error: variable 'a' refers to itself through other variables\n    hint: .*'a' uses)"
      R"( '\$\{a\}')");
  add(
      "variable_expanding_exponentially",
      [] {
        std::string variables = R"({"v0": "ab")";
        for (int i = 1; i <= 64; ++i) {
          variables += ", \"v" + std::to_string(i) + "\": \"${v" + std::to_string(i - 1) + "}${v" +
                       std::to_string(i - 1) + "}\"";
        }
        return pipeline(volume(R"("modality": "${v64}")"), variables + "}");
      },
      2,
      R"(: /variables/v20: error: variable 'v20' expands to 2097152 bytes, more than the limit of 1 MiB)"
      R"( \(1048576 bytes\)[\s\S]*: 1 problem found)");
  add(
      "valid_chain_of_five_hundred_variables",
      [] {
        std::string variables = "{";
        for (int i = 0; i < 500; ++i)
          variables += "\"v" + std::to_string(i) + "\": \"${v" + std::to_string(i + 1) + "}\", ";
        return pipeline(volume(R"("modality": "${v0}")"), variables + R"("v500": "CT"})");
      },
      0, valid_one);
  add("valid_dollar_escape_in_a_default",
      text(pipeline(volume(R"("modality": "${price}")"), R"({"price": "$$5 $${HOME}"})")), 0, valid_one);
  add("valid_pipeline_dir", text(pipeline(volume(R"("modality": "${pipeline_dir}/x")"))), 0, valid_one);
  add("valid_number_and_boolean_defaults",
      text(pipeline(volume(R"("seed": "${n}", "modality": "${b}")"), R"({"n": 4, "b": false})")), 0, valid_one);

  // --- what is not a regular file, and size -----------------------------------------------------
  add("dev_zero", text("/dev/zero"), 2,
      R"(/dev/zero: error: the pipeline path is a character device, not a regular file\n    hint: pipelines are)"
      R"( read from regular files only)",
      "", Source::Path);
  add("dev_null", text("/dev/null"), 2, R"(: error: the pipeline path is a character device, not a regular file)", "",
      Source::Path);
  add("missing_file", text("/nonexistent/pipeline.json"), 2,
      R"(: error: the pipeline file does not exist\n    hint: check the path)", "", Source::Path);
  add("directory", text(""), 2, R"(: error: the pipeline path is a directory, not a regular file)", "",
      Source::Directory);
  add("fifo", text(""), 2, R"(: error: the pipeline path is a FIFO \(named pipe\), not a regular file)", "",
      Source::Fifo);
  add("over_the_size_limit", text(pipeline(volume())), 2,
      R"(: error: the pipeline file is 16.0 MiB; the limit is 16 MiB \(16777216 bytes\))", "", Source::Sparse);
  return cases;
}

bool matches_in_order(const std::string& text, const std::string& pattern) {
  const std::string anything = R"([\s\S]*)";
  std::size_t from = 0, part_start = 0;
  while (true) {
    const std::size_t part_end = pattern.find(anything, part_start);
    const std::string part =
        pattern.substr(part_start, part_end == std::string::npos ? part_end : part_end - part_start);
    std::smatch match;
    if (!std::regex_search(text.begin() + static_cast<std::ptrdiff_t>(from), text.end(), match, std::regex(part))) {
      return false;
    }
    from += static_cast<std::size_t>(match.position(0) + match.length(0));
    if (part_end == std::string::npos) return true;
    part_start = part_end + anything.size();
  }
}

class PipelineCorpus : public ::testing::TestWithParam<CorpusCase> {};

TEST_P(PipelineCorpus, ValidateGivesTheExpectedExitCodeAndMessage) {
  const CorpusCase& c = GetParam();
  const fs::path dir = fusionflow::testing::fresh_temp_directory("corpus");
  fs::path file = dir / (c.name + ".json");
  switch (c.source) {
    case Source::Text: {
      std::ofstream(file, std::ios::binary) << c.text();
      break;
    }
    case Source::Directory: fs::create_directories(file); break;
    case Source::Fifo: ASSERT_EQ(::mkfifo(file.c_str(), 0600), 0); break;
    case Source::Sparse: {
      std::ofstream(file, std::ios::binary) << c.text();
      fs::resize_file(file, (16u << 20) + 1);  // one byte over the limit, nothing written
      break;
    }
    case Source::Path: file = c.text(); break;
  }
  const auto start = std::chrono::steady_clock::now();
  // `timeout`: a regression that hangs fails here instead of stalling ctest.
  const fusionflow::testing::CommandOutput out = fusionflow::testing::run_command(
      "timeout 60 " + std::string(FUSIONFLOW_EXE) + " validate " + file.string() + " " + c.arguments);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(out.exit_code, c.exit_code) << out.text.substr(0, 2000);
  EXPECT_TRUE(matches_in_order(out.text, c.pattern)) << "pattern: " << c.pattern << "\n" << out.text.substr(0, 2000);
  EXPECT_LT(seconds, 20.0);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Generated, PipelineCorpus, ::testing::ValuesIn(corpus()),
                         [](const ::testing::TestParamInfo<CorpusCase>& param) { return param.param.name; });

TEST(PipelineCorpusSize, HasAtLeastAHundredCases) { EXPECT_GE(corpus().size(), 100u); }

}  // namespace
