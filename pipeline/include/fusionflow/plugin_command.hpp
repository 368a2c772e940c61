// Commands a plugin adds to the fusionflow program: `fusionflow NAME ARGS...`
// runs the plugin's function with ARGS, so a plugin brings its own tools
// (the learned plugin's `train`) without the program knowing them or linking
// what they need.
//
//   registrar.add_command("train", "Train a learned model from a JSON configuration",
//                         [](const std::vector<std::string>& arguments) { return train(arguments); });
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace fusionflow {

// Runs with the arguments after the command's name; prints its own output,
// usage (for --help) and errors; returns the exit code: 0 done, 1 failed,
// 2 invalid arguments (the program's own codes).
using CommandFunction = std::function<int(const std::vector<std::string>& arguments)>;

struct PluginCommand {
  // Lower case letters, digits and '-', starting with a letter; not one of
  // the program's own commands (run, validate, plugins, graph, phantom, view,
  // cohort, help).
  std::string name;
  std::string summary;  // one line, for `fusionflow --help` and `fusionflow plugins`
  CommandFunction run;
};

}  // namespace fusionflow
