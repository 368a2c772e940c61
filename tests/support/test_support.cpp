#include "test_support.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <fusionflow/plugin_loader.hpp>

namespace fusionflow::testing {

const NodeRegistry& bundled_plugins() {
  static const NodeRegistry registry = [] {
    NodeRegistry loaded;
    load_plugins({default_plugin_dir()}, loaded);
    return loaded;
  }();
  return registry;
}

CommandOutput run_command(const std::string& command_line) {
  CommandOutput output;
  FILE* pipe = popen((command_line + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return output;
  std::array<char, 4096> buffer{};
  std::size_t count = 0;
  while ((count = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.text.append(buffer.data(), count);
  const int status = pclose(pipe);
  output.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return output;
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  if (!path.parent_path().empty()) std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::filesystem::path fresh_temp_directory(const std::string& label) {
  const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string test_name = test != nullptr ? std::string("-") + test->name() : std::string();
  const auto directory =
      std::filesystem::temp_directory_path() / ("fusionflow-" + label + "-" + std::to_string(::getpid()) + test_name);
  std::filesystem::remove_all(directory);
  std::filesystem::create_directories(directory);
  return directory;
}

std::map<std::string, std::string> key_value_lines(const std::string& text) {
  std::map<std::string, std::string> values;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    const auto space = line.find(' ');
    if (space != std::string::npos) values[line.substr(0, space)] = line.substr(space + 1);
  }
  return values;
}

}  // namespace fusionflow::testing
