// Registers a node type and a command that the "good" plugin already
// provides, one new node type, and a command named like a built-in one.
#include <fusionflow/sdk.hpp>

FUSIONFLOW_PLUGIN("duplicate", "1.0.0", "test plugin with a clashing node type") {
  fusionflow::NodeSpec clash("good.constant_table", "9.9.9", "clashes with the good plugin");
  clash.output<fusionflow::Table>("table", "a table");
  registrar.add_node(clash, [](fusionflow::NodeContext&) {});
  fusionflow::NodeSpec unique("duplicate.unique", "1.0.0", "does not clash");
  unique.output<fusionflow::Table>("table", "a table");
  registrar.add_node(unique, [](fusionflow::NodeContext& ctx) { ctx.output("table", fusionflow::Table{}); });
  registrar.add_command("good-echo", "clashes with the good plugin", [](const std::vector<std::string>&) { return 1; });
  registrar.add_command("run", "named like fusionflow's own command",
                        [](const std::vector<std::string>&) { return 1; });
}
