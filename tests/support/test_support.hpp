// Helpers shared by the test suites.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include <fusionflow/registry.hpp>

namespace fusionflow::testing {

// The node types of the bundled plugins (build tree), loaded once.
const NodeRegistry& bundled_plugins();

struct CommandOutput {
  int exit_code = -1;  // -1 if the command did not exit normally
  std::string text;    // standard output and standard error, interleaved
};

// Runs a shell command line and collects what it prints.
CommandOutput run_command(const std::string& command_line);

// "key value" lines (a checker script's report) as key -> value; lines
// without a space are skipped.
std::map<std::string, std::string> key_value_lines(const std::string& text);

// A fresh, empty directory under the system's temporary directory, named
// after `label`, the process and the running GoogleTest test.
std::filesystem::path fresh_temp_directory(const std::string& label);

// The whole content of a file (empty if it cannot be read).
std::string read_file(const std::filesystem::path& path);
// Writes `text` to `path`, creating its folders (test fixtures).
void write_file(const std::filesystem::path& path, const std::string& text);

}  // namespace fusionflow::testing
