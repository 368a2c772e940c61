// A well-formed plugin: one node type producing a one-row table, and a
// command `good-echo` that prints its arguments (exit 2 without any).
#include <fusionflow/sdk.hpp>

#include <iostream>

FUSIONFLOW_PLUGIN("good", "2.1.0", "test plugin that loads") {
  fusionflow::NodeSpec spec("good.constant_table", "1.0.0", "a one-row table");
  spec.output<fusionflow::Table>("table", "the table").param("value", fusionflow::Param::Float(42.0), "the value");
  registrar.add_node(spec, [](fusionflow::NodeContext& ctx) {
    fusionflow::Table table;
    table.add_row({{"value", ctx.param<double>("value")}});
    ctx.output("table", std::move(table));
  });
  registrar.add_command("good-echo", "prints its arguments", [](const std::vector<std::string>& arguments) {
    if (arguments.empty()) {
      std::cerr << "usage: fusionflow good-echo WORD...\n";
      return 2;
    }
    std::cout << "good-echo:";
    for (const std::string& argument : arguments) std::cout << " [" << argument << "]";
    std::cout << "\n";
    return 0;
  });
}
