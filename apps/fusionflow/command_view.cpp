// `fusionflow view VOLUME [--overlay VOLUME] ...`: the interactive viewer.
// The viewer links VTK, the fusionflow program does not: this command replaces
// the process with the fusionflow-view program installed next to it (same
// directory, build tree and installation alike), passing the arguments on.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "commands.hpp"

namespace fusionflow::cli {

std::filesystem::path this_program() {
  std::error_code error;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::filesystem::path() : self;
}

int view_command(const std::vector<std::string>& arguments) {
  const std::filesystem::path self = this_program();
  const std::filesystem::path viewer =
      (self.empty() ? std::filesystem::path(".") : self.parent_path()) / "fusionflow-view";
  if (::access(viewer.c_str(), X_OK) != 0) {
    std::cerr << "error: `fusionflow view` runs the fusionflow-view program, which is not at " << viewer.string()
              << " (it is built and installed with the visualizers, VTK)\n";
    return kRunFailed;
  }
  std::vector<std::string> argv_strings{viewer.string()};
  argv_strings.insert(argv_strings.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  for (std::string& argument : argv_strings) argv.push_back(argument.data());
  argv.push_back(nullptr);
  std::cout.flush();
  std::cerr.flush();
  ::execv(viewer.c_str(), argv.data());
  std::cerr << "error: cannot run " << viewer.string() << ": " << std::strerror(errno) << "\n";
  return kRunFailed;
}

}  // namespace fusionflow::cli
