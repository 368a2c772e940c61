// Commands that plugins add to the program (fusionflow/plugin_command.hpp):
// found in the registry of the loaded plugins and run with the rest of the
// command line, so the program links nothing they need (LibTorch for the
// learned plugin's `train`).
#include <iostream>

#include "commands.hpp"

namespace fusionflow::cli {

std::optional<int> plugin_command(Session& session, const std::string& name,
                                  const std::vector<std::string>& arguments) {
  const RegisteredCommand* command = session.registry().find_command(name);
  if (command == nullptr) return std::nullopt;
  try {
    return command->command.run(arguments);
  } catch (const std::exception& error) {
    std::cerr << "error: " << name << " (" << command->origin.plugin_name << " plugin): " << error.what() << "\n";
    return kRunFailed;
  }
}

std::string plugin_command_list(Session& session) {
  std::string list;
  for (const RegisteredCommand* command : session.registry().commands()) {
    list += "  " + command->command.name + "  " + command->command.summary + " [" + command->origin.plugin_name +
            " plugin]\n";
  }
  return list;
}

}  // namespace fusionflow::cli
