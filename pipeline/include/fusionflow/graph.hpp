// The pipeline as a Boost.Graph DAG: topological order, cycle reporting and
// Graphviz output. Boost stays out of this header.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace fusionflow {

struct Pipeline;

// Edges are (producer, consumer) node indices; parallel edges are allowed.
struct DagAnalysis {
  std::optional<std::vector<std::size_t>> topological_order;  // absent if cyclic
  // Each cycle as the node indices along it (first node not repeated), one
  // per strongly connected component that contains a cycle.
  std::vector<std::vector<std::size_t>> cycles;
};

DagAnalysis analyse_dag(std::size_t node_count, const std::vector<std::pair<std::size_t, std::size_t>>& edges);

// Graphviz DOT of a loaded pipeline: one box per node with its id and type,
// one edge per connection labelled "output port -> input port".
std::string pipeline_to_dot(const Pipeline& pipeline);

}  // namespace fusionflow
