// Registers a node type that the "good" plugin already provides, and one new.
#include <fusionflow/sdk.hpp>

FUSIONFLOW_PLUGIN("duplicate", "1.0.0", "test plugin with a clashing node type") {
  fusionflow::NodeSpec clash("good.constant_table", "9.9.9", "clashes with the good plugin");
  clash.output<fusionflow::Table>("table", "a table");
  registrar.add_node(clash, [](fusionflow::NodeContext&) {});
  fusionflow::NodeSpec unique("duplicate.unique", "1.0.0", "does not clash");
  unique.output<fusionflow::Table>("table", "a table");
  registrar.add_node(unique, [](fusionflow::NodeContext& ctx) { ctx.output("table", fusionflow::Table{}); });
}
