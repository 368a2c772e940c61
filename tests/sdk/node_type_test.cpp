// Typed node declarations (NodeType): one declaration per parameter bound to
// an options field, choices from one ChoiceList, typed ports; and the one
// parameter validator shared by the pipeline loader, the registry and
// NodeHarness.
#include <gtest/gtest.h>

#include <fusionflow/pipeline.hpp>
#include <fusionflow/sdk.hpp>
#include <fusionflow/testing.hpp>

#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace fusionflow {
namespace {

enum class Shape { Sphere, Cube, Torus };
const ChoiceList<Shape> kShapeNames{{Shape::Sphere, "sphere"}, {Shape::Cube, "cube"}, {Shape::Torus, "torus"}};

struct BaseOptions {
  double sigma_mm = 1.5;
};

struct ShapeOptions : BaseOptions {
  bool smooth = true;
  int radius = 4;
  std::size_t count = 2;
  float gain = 0.5f;
  std::string label = "shape";
  Shape shape = Shape::Cube;
  std::string colour = "red";
  std::vector<double> weights{0.25, 0.75};
  std::vector<std::int64_t> steps{};
  std::array<double, 3> spacing{1.0, 1.0, 2.0};
  std::filesystem::path source;
  std::filesystem::path report{"report.txt"};
};

constexpr InputPort<Volume> kVolumeIn{"volume"};
constexpr OutputPort<Table> kSummaryOut{"summary"};

NodeType<ShapeOptions> shape_node() {
  NodeType<ShapeOptions> node("test.shape", "1.0.0", "a node with one parameter of each kind");
  node.input(kVolumeIn, "any volume")
      .output(kSummaryOut, "what the run function saw")
      .param(&ShapeOptions::sigma_mm, "sigma_mm", Limits::range(0.0, 20.0), "from the base struct")
      .param(&ShapeOptions::smooth, "smooth", "a bool")
      .param(&ShapeOptions::radius, "radius", Limits::range(0, 32), "an int")
      .param(&ShapeOptions::count, "count", "a size_t: never negative")
      .param(&ShapeOptions::gain, "gain", Limits::range(0.0, 1.0), "a float")
      .param(&ShapeOptions::label, "label", "a string")
      .choice(&ShapeOptions::shape, "shape", kShapeNames, "an enum")
      .choice(&ShapeOptions::colour, "colour", {"red", "green"}, "a choice kept as text")
      .param(&ShapeOptions::weights, "weights", Limits::range(0.0, 1.0), "a float list")
      .param(&ShapeOptions::steps, "steps", Limits::at_least(1), "an int list")
      .param(&ShapeOptions::spacing, "spacing", Limits::at_least(0.01), "an array: its length is declared")
      .input_path(&ShapeOptions::source, "source", "read")
      .output_path(&ShapeOptions::report, "report", "written");
  return node;
}

void run_shape(NodeContext& ctx, const ShapeOptions& options) {
  const Volume& volume = ctx.input(kVolumeIn);
  Table table;
  table.add_row({{"voxels", double(volume.geometry.voxel_count())},
                 {"sigma_mm", options.sigma_mm},
                 {"smooth", options.smooth ? 1.0 : 0.0},
                 {"radius", double(options.radius)},
                 {"count", double(options.count)},
                 {"gain", double(options.gain)},
                 {"label", options.label},
                 {"shape", kShapeNames.name(options.shape)},
                 {"colour", options.colour},
                 {"weights", double(options.weights.size())},
                 {"steps", double(options.steps.size())},
                 {"spacing_z", options.spacing[2]},
                 {"source", options.source.string()},
                 {"report", options.report.string()}});
  ctx.output(kSummaryOut, std::move(table));
}

Volume small_volume() {
  Volume volume;
  volume.geometry.size = {2, 3, 4};
  volume.voxels.assign(24, 0.0f);
  return volume;
}

double number(const Table& table, const std::string& column) {
  return std::get<double>(table.rows.at(0).at(table.column_index(column)));
}
std::string text(const Table& table, const std::string& column) {
  return std::get<std::string>(table.rows.at(0).at(table.column_index(column)));
}

const ParamSpec& param(const NodeSpec& spec, const std::string& name) {
  const ParamSpec* found = spec.find_param(name);
  if (found == nullptr) throw std::runtime_error("no parameter " + name);
  return *found;
}

TEST(NodeType, DeclaresEachParameterWithTheKindOfItsFieldAndTheDefaultOfTheDefaults) {
  const NodeSpec spec = shape_node().spec();
  EXPECT_EQ(spec.params().size(), 13u);
  EXPECT_EQ(param(spec, "sigma_mm").kind, ParamKind::Float);
  EXPECT_EQ(std::get<double>(*param(spec, "sigma_mm").default_value), 1.5);
  EXPECT_EQ(param(spec, "smooth").kind, ParamKind::Bool);
  EXPECT_EQ(param(spec, "radius").kind, ParamKind::Int);
  EXPECT_EQ(std::get<std::int64_t>(*param(spec, "radius").default_value), 4);
  EXPECT_EQ(param(spec, "gain").kind, ParamKind::Float);
  EXPECT_EQ(param(spec, "label").kind, ParamKind::String);
  EXPECT_EQ(param(spec, "shape").kind, ParamKind::Choice);
  EXPECT_EQ(param(spec, "shape").choices, (std::vector<std::string>{"sphere", "cube", "torus"}));
  EXPECT_EQ(std::get<std::string>(*param(spec, "shape").default_value), "cube");
  EXPECT_EQ(param(spec, "colour").choices, (std::vector<std::string>{"red", "green"}));
  EXPECT_EQ(param(spec, "weights").kind, ParamKind::FloatList);
  EXPECT_EQ(param(spec, "steps").kind, ParamKind::IntList);
  EXPECT_EQ(param(spec, "spacing").kind, ParamKind::FloatList);
  EXPECT_EQ(param(spec, "spacing").list_length, 3u);
  EXPECT_EQ(param(spec, "source").kind, ParamKind::InputPath);
  EXPECT_TRUE(param(spec, "source").required());
  EXPECT_EQ(param(spec, "report").kind, ParamKind::OutputPath);
  EXPECT_EQ(std::get<std::string>(*param(spec, "report").default_value), "report.txt");
}

TEST(NodeType, ImpliesTheRangeTheFieldTypeHolds) {
  const NodeSpec spec = shape_node().spec();
  EXPECT_EQ(param(spec, "count").min, 0.0);  // size_t: no negative counts reach the node
  EXPECT_FALSE(param(spec, "count").max.has_value());
  EXPECT_EQ(param(spec, "radius").min, 0.0);  // the declared range stays
  EXPECT_EQ(param(spec, "radius").max, 32.0);
  testing::NodeHarness node(shape_node().bind(run_shape));
  EXPECT_THROW(node.set_param("count", -1), std::invalid_argument);

  // A float cannot hold 1e39 (it would become infinity); a double needs no bound.
  struct Numbers {
    float single = 0.0f;
    double wide = 0.0;
    std::int64_t big = 0;
  };
  NodeType<Numbers> numbers("test.numbers", "1.0.0", "implied ranges");
  numbers.param(&Numbers::single, "single", "a float")
      .param(&Numbers::wide, "wide", "a double")
      .param(&Numbers::big, "big", "an int64");
  EXPECT_EQ(param(numbers.spec(), "single").max, double(std::numeric_limits<float>::max()));
  EXPECT_FALSE(param(numbers.spec(), "wide").max.has_value());
  EXPECT_FALSE(param(numbers.spec(), "big").min.has_value());
  testing::NodeHarness harness(numbers.bind([](NodeContext&, const Numbers&) {}));
  EXPECT_THROW(harness.set_param("single", ParamValue(1e39)), std::invalid_argument);
  EXPECT_NO_THROW(harness.set_param("wide", ParamValue(1e39)));
}

TEST(NodeType, TheRunFunctionReceivesTheFilledOptions) {
  testing::NodeHarness node(shape_node().bind(run_shape));
  node.set_input("volume", small_volume())
      .set_param("source", "in.nii")
      .set_param("sigma_mm", ParamValue(3.0))
      .set_param("smooth", ParamValue(false))
      .set_param("radius", 9)
      .set_param("count", 5)
      .set_param("gain", ParamValue(0.25))
      .set_param("shape", "torus")
      .set_param("colour", "green")
      .set_param("steps", ParamValue(std::vector<std::int64_t>{3, 2, 1}))
      .set_param("spacing", ParamValue(std::vector<double>{0.5, 0.5, 3.0}));
  node.run();
  const Table& seen = node.output<Table>("summary");
  ASSERT_EQ(seen.rows.size(), 1u);
  EXPECT_EQ(number(seen, "voxels"), 24.0);
  EXPECT_EQ(number(seen, "sigma_mm"), 3.0);
  EXPECT_EQ(number(seen, "smooth"), 0.0);
  EXPECT_EQ(number(seen, "radius"), 9.0);
  EXPECT_EQ(number(seen, "count"), 5.0);
  EXPECT_EQ(number(seen, "gain"), 0.25);
  EXPECT_EQ(text(seen, "label"), "shape");  // the default
  EXPECT_EQ(text(seen, "shape"), "torus");
  EXPECT_EQ(text(seen, "colour"), "green");
  EXPECT_EQ(number(seen, "weights"), 2.0);
  EXPECT_EQ(number(seen, "steps"), 3.0);
  EXPECT_EQ(number(seen, "spacing_z"), 3.0);
  EXPECT_EQ(text(seen, "source"), "in.nii");
  EXPECT_EQ(text(seen, "report"), "report.txt");
}

struct Two {
  double a = 1.0;
  double b = 2.0;
  bool flag = false;
  int small = 0;
  std::array<double, 3> point{};
  Shape shape = Shape::Sphere;
};

TEST(NodeType, DeclarationMistakesFailWhenThePluginRegisters) {
  auto declared = [](auto declare) {
    try {
      NodeType<Two> node("test.two", "1.0.0", "mistakes");
      declare(node);
    } catch (const std::invalid_argument& error) {
      return std::string(error.what());
    }
    return std::string();
  };
  EXPECT_NE(declared([](auto& n) {
              n.param(&Two::a, "a", "x").param(&Two::a, "again", "y");
            }).find("bound to the same field as 'a'"),
            std::string::npos);
  EXPECT_NE(declared([](auto& n) { n.param(&Two::a, "a", "x").param(&Two::b, "a", "y"); }).find("declared twice"),
            std::string::npos);
  EXPECT_NE(declared([](auto& n) {
              n.param(&Two::flag, "flag", Limits::range(0, 1), "x");
            }).find("limits are only for numbers"),
            std::string::npos);
  EXPECT_NE(declared([](auto& n) {
              n.param(&Two::small, "small", Limits::range(0, 1e12), "x");
            }).find("beyond what the field's type holds"),
            std::string::npos);
  EXPECT_NE(declared([](auto& n) {
              n.param(&Two::point, "point", Limits::exactly(2), "x");
            }).find("differs from the array's size"),
            std::string::npos);
  EXPECT_NE(declared([](auto& n) { n.param(&Two::a, "a", Limits::exactly(2), "x"); }).find("only for lists"),
            std::string::npos);
  const ChoiceList<Shape> no_sphere{{Shape::Cube, "cube"}};
  EXPECT_NE(declared([&](auto& n) { n.choice(&Two::shape, "shape", no_sphere, "x"); }).find("not in its choice list"),
            std::string::npos);
  EXPECT_EQ(declared([](auto& n) { n.param(&Two::a, "a", "x").param(&Two::b, "b", "y"); }), "");

  // Defaults outside the declared range are caught by the registry.
  NodeRegistry registry;
  NodeType<Two> outside("test.outside", "1.0.0", "a default outside its range");
  outside.param(&Two::a, "a", Limits::range(5.0, 6.0), "x");
  EXPECT_THROW(registry.add_node(outside.bind([](NodeContext&, const Two&) {})), std::invalid_argument);
}

TEST(ChoiceList, ParsesAndNamesFromOneList) {
  EXPECT_EQ(kShapeNames.parse("torus"), Shape::Torus);
  EXPECT_EQ(kShapeNames.name(Shape::Sphere), "sphere");
  EXPECT_FALSE(kShapeNames.find("cone").has_value());
  try {
    kShapeNames.parse("cone");
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("sphere, cube, torus"), std::string::npos) << error.what();
  }
  EXPECT_THROW((ChoiceList<Shape>{{Shape::Cube, "cube"}, {Shape::Cube, "box"}}), std::logic_error);
}

// One validator: the loader, the registry's default check and NodeHarness
// refuse the same values (NaN used to pass the harness).
struct BadValue {
  std::string name;
  std::string json;  // as written in a pipeline file
  ParamValue value;  // as a test or a default gives it
};

TEST(ParamValidator, TheLoaderTheRegistryAndTheHarnessRefuseTheSameValues) {
  struct Checked {
    double ratio = 0.5;
    std::array<double, 2> pair{0.0, 0.0};
    Shape shape = Shape::Sphere;
  };
  const std::vector<BadValue> cases = {
      {"ratio", "\"nan\"", ParamValue(std::nan(""))},
      {"ratio", "\"inf\"", ParamValue(std::numeric_limits<double>::infinity())},
      {"ratio", "1.5", ParamValue(1.5)},
      {"pair", "[0.1, 2]", ParamValue(std::vector<double>{0.1, 2.0})},
      {"pair", "[0.1]", ParamValue(std::vector<double>{0.1})},
      {"shape", "\"cone\"", ParamValue(std::string("cone"))},
      {"ratio", "\"x\"", ParamValue(std::string("x"))},
  };
  auto declare = [](Checked defaults) {
    NodeType<Checked> node("test.checked", "1.0.0", "ranges", defaults);
    node.input(kVolumeIn, "any")
        .param(&Checked::ratio, "ratio", Limits::range(0.0, 1.0), "a ratio")
        .param(&Checked::pair, "pair", Limits::range(0.0, 1.0), "two ratios")
        .choice(&Checked::shape, "shape", kShapeNames, "a shape");
    return node;
  };
  for (const BadValue& bad : cases) {
    SCOPED_TRACE(bad.name + " = " + bad.json);
    NodeRegistry registry;
    registry.add_node(declare({}).bind([](NodeContext&, const Checked&) {}));
    // The loader.
    const std::string text = R"({"format_version": 1, "nodes": [{"id": "n", "type": "test.checked", "params": {")" +
                             bad.name + "\": " + bad.json + "}}]}";
    const LoadResult loaded = load_pipeline_text(text, "bad.json", ".", registry);
    bool named = false;
    for (const Diagnostic& d : loaded.diagnostics) named |= d.location.find("/nodes/0/params/" + bad.name) == 0;
    EXPECT_TRUE(named) << "the loader accepted or did not name the parameter";
    // NodeHarness.
    testing::NodeHarness node(registry, "test.checked");
    EXPECT_THROW(node.set_param(bad.name, bad.value), std::invalid_argument);
    // The registry, for the same value as a default (kinds a field cannot hold aside).
    if (bad.json == "\"x\"" || bad.json == "\"cone\"") continue;
    Checked defaults;
    if (bad.name == "ratio") defaults.ratio = std::get<double>(bad.value);
    const auto& list = std::get_if<std::vector<double>>(&bad.value);
    NodeRegistry other;
    if (list != nullptr) {
      // An array field always has its length; a list default of the wrong length is declared by hand.
      NodeSpec spec("test.checked", "1.0.0", "ranges");
      spec.param("pair", Param::FloatList(*list).range(0.0, 1.0).length(2), "two ratios");
      EXPECT_THROW(other.add_node({spec, [](NodeContext&) {}}), std::invalid_argument);
    } else {
      EXPECT_THROW(other.add_node(declare(defaults).bind([](NodeContext&, const Checked&) {})), std::invalid_argument);
    }
  }
}

}  // namespace
}  // namespace fusionflow
