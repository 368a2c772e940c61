// `fusionflow cohort check COHORT PIPELINE --out DIR`: reads a cohort (a
// subjects table or a BIDS-style dataset, fusionflow/cohort.hpp) and checks
// it, and the pipeline with every subject's values, reporting every problem
// at once (exit 2) before anything would run.
#include <iostream>

#include <fusionflow/cohort.hpp>

#include "commands.hpp"

namespace fusionflow::cli {

namespace {

void print_problem(const Diagnostic& problem) {
  std::cerr << problem.location << ": error: " << problem.message << "\n";
  if (!problem.hint.empty()) std::cerr << "    hint: " << problem.hint << "\n";
}

}  // namespace

int cohort_check_command(Session& session, const CohortArguments& arguments) {
  std::vector<Diagnostic> problems;
  const auto variables = read_pipeline_variables(arguments.pipeline, session.registry(), problems);
  if (!variables) {
    for (const Diagnostic& problem : problems) print_problem(problem);
    return kInvalid;
  }
  const std::filesystem::path out = std::filesystem::absolute(arguments.out);
  CohortLoad cohort = load_cohort(arguments.cohort, *variables, out);
  std::size_t count = cohort.problems.size();
  for (const Diagnostic& problem : cohort.problems) print_problem(problem);
  if (cohort.ok()) {
    // The pipeline with each subject's values: the checks `run` makes.
    LoadOptions options;
    options.plugin_failures = session.plugin_failures();
    for (const CohortSubject& subject : cohort.cohort->subjects) {
      options.variable_overrides = subject.variables;
      const LoadResult loaded = load_pipeline_file(arguments.pipeline, session.registry(), options);
      for (const Diagnostic& diagnostic : loaded.diagnostics) {
        std::cerr << "subject " << subject.id << " (" << subject.origin
                  << "): " << format_diagnostic(arguments.pipeline, diagnostic) << "\n";
        ++count;
      }
    }
  }
  if (count > 0) {
    std::cerr << arguments.cohort << ": " << count << (count == 1 ? " problem" : " problems")
              << " found; nothing was run\n";
    return kInvalid;
  }
  const auto& subjects = cohort.cohort->subjects;
  std::cout << arguments.cohort << ": " << subjects.size() << (subjects.size() == 1 ? " subject" : " subjects")
            << ", each valid for " << arguments.pipeline << "\n";
  for (const CohortSubject& subject : subjects) {
    std::cout << "  " << subject.id << " (" << subject.origin << "):";
    for (const auto& [name, value] : subject.variables) std::cout << " " << name << "=" << value;
    std::cout << "\n";
  }
  return kSuccess;
}

}  // namespace fusionflow::cli
