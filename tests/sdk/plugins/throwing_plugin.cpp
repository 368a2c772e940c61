// Registration fails half way: nothing it registered may stay.
#include <fusionflow/sdk.hpp>

#include <stdexcept>

FUSIONFLOW_PLUGIN("throwing", "1.0.0", "test plugin whose registration throws") {
  fusionflow::NodeSpec spec("throwing.first", "1.0.0", "registered before the throw");
  spec.output<fusionflow::Table>("table", "a table");
  registrar.add_node(spec, [](fusionflow::NodeContext&) {});
  throw std::runtime_error("model file weights.pt not found");
}
