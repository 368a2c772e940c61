// Helpers of the visualizer tests: the bundled plugins, a small phantom with
// PET aligned to CT, picture statistics, and child processes with a chosen
// environment (for the display and viewer tests).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fusionflow/payload_types.hpp>
#include <fusionflow/plugin_loader.hpp>
#include <fusionflow/testing.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "phantom.hpp"
#include "vtk_support.hpp"

extern char** environ;

#include "test_support.hpp"

namespace fusionflow::viz_test {
namespace fs = std::filesystem;

inline const NodeRegistry& bundled() { return testing::bundled_plugins(); }

// 64^3 head phantom (3.75 mm CT voxels), PET (3 mm grid) aligned with CT.
inline const testdata::Phantom& phantom() {
  static const testdata::Phantom p = [] {
    testdata::PhantomOptions options;
    options.size = {64, 64, 64};
    options.pet_displacement = {};
    return testdata::generate_phantom(options);
  }();
  return p;
}

inline std::array<double, 3> lesion_centre() {
  return phantom().truth.at("anatomy").at("lesions").at(0).at("center_lps_mm").get<std::array<double, 3>>();
}

inline fs::path scratch_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("fusionflow-viz-test-" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Fraction of pixels that differ from the corner pixel (the background) and
// the standard deviation of the grey level: a blank picture has both ~0.
struct PictureStats {
  double foreground = 0;
  double grey_std = 0;
};
inline PictureStats picture_stats(const viz::RgbImage& image) {
  const std::uint8_t* corner = image.at(0, 0);
  std::size_t different = 0;
  double sum = 0, squares = 0;
  const std::size_t count = std::size_t(image.width) * std::size_t(image.height);
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) {
      const std::uint8_t* p = image.at(x, y);
      if (std::abs(p[0] - corner[0]) + std::abs(p[1] - corner[1]) + std::abs(p[2] - corner[2]) > 24) ++different;
      const double grey = (p[0] + p[1] + p[2]) / 3.0;
      sum += grey;
      squares += grey * grey;
    }
  const double mean = sum / double(count);
  return {double(different) / double(count), std::sqrt(std::max(0.0, squares / double(count) - mean * mean))};
}

// Mean absolute difference per channel (0..255) of two same-size pictures.
inline double mean_difference(const viz::RgbImage& a, const viz::RgbImage& b) {
  if (a.width != b.width || a.height != b.height) return 255.0;
  double sum = 0;
  for (std::size_t i = 0; i < a.pixels.size(); ++i) sum += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
  return sum / double(a.pixels.size());
}

// A child process: argv, environment overrides (empty value = unset),
// stdout/stderr to files.
struct Child {
  pid_t pid = -1;
  fs::path out, err;
};

inline Child spawn(const std::vector<std::string>& arguments, const std::map<std::string, std::string>& environment,
                   const fs::path& log_dir) {
  std::map<std::string, std::string> variables;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const auto equals = entry.find('=');
    if (equals != std::string::npos) variables[entry.substr(0, equals)] = entry.substr(equals + 1);
  }
  for (const auto& [name, value] : environment) {
    if (value.empty())
      variables.erase(name);
    else
      variables[name] = value;
  }
  std::vector<std::string> env_strings;
  for (const auto& [name, value] : variables) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp, argv;
  for (auto& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = arguments;
  for (auto& argument : args) argv.push_back(argument.data());
  argv.push_back(nullptr);
  Child child;
  static int counter = 0;
  ++counter;
  child.out = log_dir / ("child-" + std::to_string(counter) + ".out");
  child.err = log_dir / ("child-" + std::to_string(counter) + ".err");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, child.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, child.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int result = posix_spawn(&child.pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (result != 0) child.pid = -1;
  return child;
}

inline std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Waits up to `timeout` for the child; returns its wait status, or -1 on
// timeout (the child is then killed).
inline int wait_for(const Child& child, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t done = ::waitpid(child.pid, &status, WNOHANG);
    if (done == child.pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(child.pid, SIGKILL);
  ::waitpid(child.pid, &status, 0);
  return -1;
}

inline std::size_t occurrences(const std::string& text, const std::string& part) {
  std::size_t count = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++count;
  return count;
}

// Waits until `file` contains `text` (at least `times` times); false on timeout.
inline bool wait_for_text(const fs::path& file, const std::string& text, std::chrono::seconds timeout,
                          std::size_t times = 1) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (occurrences(read_text(file), text) >= times) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace fusionflow::viz_test
