// A well-formed plugin: one node type producing a one-row table.
#include <fusionflow/sdk.hpp>

FUSIONFLOW_PLUGIN("good", "2.1.0", "test plugin that loads") {
  fusionflow::NodeSpec spec("good.constant_table", "1.0.0", "a one-row table");
  spec.output<fusionflow::Table>("table", "the table").param("value", fusionflow::Param::Float(42.0), "the value");
  registrar.add_node(spec, [](fusionflow::NodeContext& ctx) {
    fusionflow::Table table;
    table.add_row({{"value", ctx.param<double>("value")}});
    ctx.output("table", std::move(table));
  });
}
