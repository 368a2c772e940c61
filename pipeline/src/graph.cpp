#include "fusionflow/graph.hpp"

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/graphviz.hpp>
#include <boost/property_map/property_map.hpp>
#include <boost/graph/strong_components.hpp>
#include <boost/graph/topological_sort.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <sstream>

#include "fusionflow/pipeline.hpp"

namespace fusionflow {

namespace {

using DependencyGraph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS>;
using Vertex = boost::graph_traits<DependencyGraph>::vertex_descriptor;

// The shortest cycle through `start` that stays inside its strongly connected
// component (breadth-first search back to start).
std::vector<std::size_t> cycle_through(const DependencyGraph& graph, Vertex start, const std::vector<int>& component) {
  std::map<Vertex, Vertex> parent;
  std::deque<Vertex> queue{start};
  while (!queue.empty()) {
    const Vertex current = queue.front();
    queue.pop_front();
    for (auto [edge, end] = boost::out_edges(current, graph); edge != end; ++edge) {
      const Vertex next = boost::target(*edge, graph);
      if (component[next] != component[start]) continue;
      if (next == start) {
        std::vector<std::size_t> cycle{current};
        for (Vertex v = current; v != start;) {
          v = parent.at(v);
          cycle.push_back(v);
        }
        std::reverse(cycle.begin(), cycle.end());
        return cycle;
      }
      if (parent.emplace(next, current).second) queue.push_back(next);
    }
  }
  return {};
}

}  // namespace

DagAnalysis analyse_dag(std::size_t node_count, const std::vector<std::pair<std::size_t, std::size_t>>& edges) {
  DependencyGraph graph(node_count);
  for (const auto& [from, to] : edges) boost::add_edge(from, to, graph);

  DagAnalysis analysis;
  try {
    std::vector<Vertex> reversed;
    boost::topological_sort(graph, std::back_inserter(reversed));
    analysis.topological_order = std::vector<std::size_t>(reversed.rbegin(), reversed.rend());
    return analysis;
  } catch (const boost::not_a_dag&) {
    // Boost only says "not a DAG"; name the nodes of each cycle below.
  }

  std::vector<int> component(node_count);
  const int component_count = boost::strong_components(
      graph, boost::make_iterator_property_map(component.begin(), boost::get(boost::vertex_index, graph)));
  std::vector<std::size_t> members(component_count, 0);
  for (int c : component) ++members[c];
  std::vector<bool> reported(component_count, false);
  for (std::size_t v = 0; v < node_count; ++v) {
    const int c = component[v];
    if (reported[c]) continue;
    const bool self_loop = boost::edge(v, v, graph).second;
    if (members[c] < 2 && !self_loop) continue;
    reported[c] = true;
    analysis.cycles.push_back(cycle_through(graph, v, component));
  }
  return analysis;
}

namespace {

std::string escape_label(const std::string& text) {
  std::string escaped;
  for (char c : text) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += c;
  }
  return escaped;
}

}  // namespace

std::string pipeline_to_dot(const Pipeline& pipeline) {
  struct EdgeLabel {
    std::string text;
  };
  using LabelledGraph =
      boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS, boost::no_property, EdgeLabel>;
  LabelledGraph graph(pipeline.nodes.size());
  for (std::size_t consumer = 0; consumer < pipeline.nodes.size(); ++consumer) {
    for (const auto& [input_port, refs] : pipeline.nodes[consumer].inputs) {
      for (const OutputRef& ref : refs) {
        boost::add_edge(ref.node, consumer, EdgeLabel{ref.port + " -> " + input_port}, graph);
      }
    }
  }
  auto vertex_writer = [&](std::ostream& out, std::size_t v) {
    const PipelineNode& node = pipeline.nodes[v];
    out << "[label=\"" << escape_label(node.id) << "\\n" << escape_label(node.type) << "\"]";
  };
  auto edge_writer = [&](std::ostream& out, const auto& edge) {
    out << "[label=\"" << escape_label(graph[edge].text) << "\"]";
  };
  auto graph_writer = [&](std::ostream& out) {
    out << "rankdir=LR;\n";
    out << "node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef3fb\", fontname=\"Helvetica\"];\n";
    out << "edge [fontname=\"Helvetica\", fontsize=10];\n";
    if (!pipeline.description.empty()) out << "label=\"" << escape_label(pipeline.description) << "\";\n";
  };
  std::ostringstream dot;
  boost::write_graphviz(dot, graph, vertex_writer, edge_writer, graph_writer);
  return dot.str();
}

}  // namespace fusionflow
