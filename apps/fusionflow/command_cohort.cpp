// `fusionflow cohort check|run|status|summary`: one pipeline over the
// subjects of a cohort (a subjects table or a BIDS-style dataset,
// fusionflow/cohort.hpp; docs/cohorts.md).
//  check   the cohort and the pipeline with every subject's values; every
//          problem at once (exit 2) before anything runs;
//  run     each subject as its own `fusionflow run` process (a subject that
//          fails or crashes fails alone), several at once within --threads;
//          a subject is done only when its run record says it succeeded, with
//          the same pipeline, values and input file contents, and running
//          again skips it (resume); DIR/cohort.json is the study's state and
//          DIR/metrics.csv its subjects' metrics tables with a subject column;
//  status  each subject's state from DIR/cohort.json; summary: the counts;
//  report  DIR/report.html, the study page (study_report.hpp), also written
//          by `run --report`, which gives every subject its run report.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include <fusionflow/atomic_file.hpp>
#include <fusionflow/cohort.hpp>
#include <fusionflow/node_cache.hpp>
#include <fusionflow/sha256.hpp>
#include <fusionflow/version.hpp>
#include <nlohmann/json.hpp>

extern char** environ;

#include "commands.hpp"
#include "run_report.hpp"
#include "study_report.hpp"

namespace fusionflow::cli {

namespace {

void print_problem(const Diagnostic& problem) {
  std::cerr << problem.location << ": error: " << problem.message << "\n";
  if (!problem.hint.empty()) std::cerr << "    hint: " << problem.hint << "\n";
}

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

// What a subject's run depends on: the pipeline file, the values of its
// variables, the content of every file or folder it reads, and this
// program's version. Equal fingerprints: the same run.
std::string fingerprint(const std::string& pipeline_sha256, const CohortSubject& subject,
                        const PipelineVariables& variables) {
  ordered_json document{{"pipeline_sha256", pipeline_sha256}, {"fusionflow", version_string()}};
  for (const auto& [name, value] : subject.variables) {
    document["variables"][name] = value;
    if (variables.input_paths.count(name) == 0 || value.empty()) continue;
    std::error_code ec;
    if (fs::is_directory(value, ec)) {
      std::vector<fs::path> files;
      for (const auto& entry : fs::recursive_directory_iterator(value, ec)) {
        if (entry.is_regular_file(ec)) files.push_back(entry.path());
      }
      std::sort(files.begin(), files.end());
      ordered_json listing = ordered_json::array();
      for (const fs::path& file : files) {
        listing.push_back({fs::relative(file, value, ec).string(), sha256_file_hex(file)});
      }
      document["inputs"][name] = sha256_hex(listing.dump());
    } else {
      document["inputs"][name] = sha256_file_hex(value);
    }
  }
  return sha256_hex(document.dump());
}

std::optional<ordered_json> read_json(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  auto document = ordered_json::parse(in, nullptr, false);
  if (document.is_discarded()) return std::nullopt;
  return document;
}

struct SubjectRun {
  const CohortSubject* subject = nullptr;
  fs::path folder;  // DIR/<subject>: state, run record, log
  std::string fingerprint;
  std::string state = "pending";  // pending, running, done, failed
  double seconds = 0;
  double peak_memory_bytes = 0;
  std::string error;
  bool left_alone = false;  // --retry-failed: not a failure, not run
};

void read_run_outcome(SubjectRun& run) {
  const auto record = read_json(run.folder / "run.json");
  if (!record) {
    run.state = "failed";
    if (run.error.empty()) run.error = "no run record (see " + (run.folder / "run.log").string() + ")";
    return;
  }
  run.seconds = record->value("wall_seconds", 0.0);
  run.peak_memory_bytes = record->value("peak_memory_bytes", 0.0);
  const bool succeeded = record->value("exit_status", std::string()) == "succeeded";
  run.state = succeeded ? "done" : "failed";
  run.error = succeeded ? std::string() : record->value("error", std::string("the run failed"));
}

void write_state(const SubjectRun& run) {
  const ordered_json state{{"subject", run.subject->id},
                           {"state", run.state},
                           {"fingerprint", run.fingerprint},
                           {"seconds", run.seconds},
                           {"peak_memory_bytes", run.peak_memory_bytes},
                           {"error", run.error}};
  write_file_atomically(run.folder / "cohort-state.json", state.dump(2) + "\n");
}

void write_study(const fs::path& out, const CohortArguments& arguments, const std::string& pipeline_sha256,
                 Session& session, const std::vector<SubjectRun>& runs) {
  ordered_json study{{"cohort_format_version", 1},
                     {"fusionflow_version", version_string()},
                     {"cohort", fs::absolute(arguments.cohort).string()},
                     {"pipeline", fs::absolute(arguments.pipeline).string()},
                     {"pipeline_sha256", pipeline_sha256}};
  ordered_json plugins = ordered_json::array();
  for (const PluginLoadReport& report : session.plugin_reports()) {
    if (report.loaded) plugins.push_back({{"name", report.plugin_name}, {"version", report.plugin_version}});
  }
  study["plugins"] = std::move(plugins);
  std::map<std::string, int> counts;
  ordered_json subjects = ordered_json::array();
  for (const SubjectRun& run : runs) {
    ++counts[run.state];
    ordered_json entry{{"subject", run.subject->id},
                       {"origin", run.subject->origin},
                       {"state", run.state},
                       {"seconds", run.seconds},
                       {"peak_memory_bytes", run.peak_memory_bytes},
                       {"error", run.error},
                       {"out", run.subject->variables.at("out")},
                       {"run_record", (run.folder / "run.json").string()},
                       {"log", (run.folder / "run.log").string()}};
    subjects.push_back(std::move(entry));
  }
  study["counts"] = counts;
  study["subjects"] = std::move(subjects);
  write_file_atomically(out / "cohort.json", study.dump(2) + "\n");
}

// The `fusionflow run` command line of one subject.
std::vector<std::string> subject_command(const SubjectRun& run, const CohortArguments& arguments,
                                         const GlobalOptions& global, int threads) {
  std::vector<std::string> argv{"fusionflow"};
  for (const std::string& dir : global.plugin_dirs) argv.insert(argv.end(), {"--plugin-dir", dir});
  argv.insert(argv.end(), {"--log-level", global.log_level, "run", arguments.pipeline, "--threads",
                           std::to_string(threads), "--record", (run.folder / "run.json").string(), "--no-progress"});
  if (arguments.report) argv.insert(argv.end(), {"--report", (run.folder / "report.html").string()});
  if (!arguments.cache_dir.empty()) {
    argv.insert(argv.end(), {"--cache", fs::absolute(arguments.cache_dir).lexically_normal().string()});
  }
  for (const auto& [name, value] : run.subject->variables) argv.insert(argv.end(), {"--set", name + "=" + value});
  return argv;
}

// `fusionflow run` for one subject, its output and errors into its log.
pid_t start_subject(const SubjectRun& run, const CohortArguments& arguments, const GlobalOptions& global, int threads) {
  std::vector<std::string> argv = subject_command(run, arguments, global, threads);
  std::vector<char*> pointers;
  for (std::string& argument : argv) pointers.push_back(argument.data());
  pointers.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const std::string log = (run.folder / "run.log").string();
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = -1;
  const int error = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, pointers.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) throw std::runtime_error("cannot start fusionflow run for subject " + run.subject->id);
  return pid;
}

std::string shell_quoted(const std::string& word) {
  std::string quoted = "'";
  for (const char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// Runs `argv` (found on PATH), returns its exit code and standard output.
int run_program(const std::vector<std::string>& argv, std::string& output) {
  int pipe_ends[2];
  if (::pipe(pipe_ends) != 0) throw std::runtime_error("cannot create a pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_ends[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_ends[0]);
  std::vector<std::string> words = argv;
  std::vector<char*> pointers;
  for (std::string& word : words) pointers.push_back(word.data());
  pointers.push_back(nullptr);
  pid_t pid = -1;
  const int error = posix_spawnp(&pid, argv[0].c_str(), &actions, nullptr, pointers.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_ends[1]);
  if (error != 0) {
    ::close(pipe_ends[0]);
    throw std::runtime_error("cannot run " + argv[0] + " (is Slurm installed and on PATH?)");
  }
  char buffer[4096];
  for (ssize_t got; (got = ::read(pipe_ends[0], buffer, sizeof buffer)) != 0;) {
    if (got < 0) {
      if (errno == EINTR) continue;
      break;
    }
    output.append(buffer, static_cast<std::size_t>(got));
  }
  ::close(pipe_ends[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// One `sbatch --array` job: task i runs subject i's `fusionflow run` (its
// command in <subject>/task.sh, output in its run.log). Returns the job id.
std::string submit_slurm_array(const std::vector<SubjectRun*>& queue, const fs::path& out,
                               const CohortArguments& arguments, const GlobalOptions& global) {
  const fs::path slurm = out / "slurm";
  fs::create_directories(slurm);
  const std::string program = fs::read_symlink("/proc/self/exe").string();
  std::string tasks;
  for (const SubjectRun* run : queue) {
    std::vector<std::string> argv = subject_command(*run, arguments, global, arguments.cpus_per_task);
    argv[0] = program;
    std::string line = "exec";
    for (const std::string& word : argv) line += " " + shell_quoted(word);
    write_file_atomically(run->folder / "task.sh",
                          "#!/bin/sh\n" + line + " > " + shell_quoted((run->folder / "run.log").string()) + " 2>&1\n");
    tasks += (run->folder / "task.sh").string() + "\n";
  }
  write_file_atomically(slurm / "tasks.txt", tasks);
  write_file_atomically(slurm / "job.sh",
                        "#!/bin/sh\n# fusionflow cohort: task i runs line i + 1 of tasks.txt\n"
                        "task=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" " +
                            shell_quoted((slurm / "tasks.txt").string()) + ")\nexec /bin/sh \"$task\"\n");
  std::string array = "--array=0-" + std::to_string(queue.size() - 1);
  if (arguments.parallel > 0) array += "%" + std::to_string(arguments.parallel);
  std::vector<std::string> sbatch{"sbatch",
                                  "--parsable",
                                  "--job-name=fusionflow-cohort",
                                  array,
                                  "--cpus-per-task=" + std::to_string(arguments.cpus_per_task),
                                  "--output=" + (slurm / "task-%a.out").string()};
  if (arguments.mem_mb > 0) sbatch.push_back("--mem=" + std::to_string(arguments.mem_mb));
  if (!arguments.partition.empty()) sbatch.push_back("--partition=" + arguments.partition);
  if (!arguments.account.empty()) sbatch.push_back("--account=" + arguments.account);
  if (!arguments.time_limit.empty()) sbatch.push_back("--time=" + arguments.time_limit);
  if (arguments.wait) sbatch.push_back("--wait");
  sbatch.push_back((slurm / "job.sh").string());
  std::string output;
  const int code = run_program(sbatch, output);
  const std::string job = output.substr(0, output.find_first_of(";\n"));
  if (job.empty() || (code != 0 && !arguments.wait)) {
    throw std::runtime_error("sbatch did not accept the job array (exit " + std::to_string(code) + "): " + output);
  }
  return job;
}

// The study's metrics: every done subject's metrics*.csv (in its output
// folder) merged with a subject column, written to DIR/metrics.csv.
SubjectTables write_study_metrics(const fs::path& out, const std::vector<std::pair<std::string, fs::path>>& done) {
  std::vector<std::pair<std::string, fs::path>> tables;
  for (const auto& [subject, subject_out] : done) {
    std::error_code ec;
    std::vector<fs::path> found;
    for (const auto& entry : fs::directory_iterator(subject_out, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("metrics", 0) == 0 && entry.path().extension() == ".csv") found.push_back(entry.path());
    }
    std::sort(found.begin(), found.end());
    for (const fs::path& file : found) tables.emplace_back(subject, file);
  }
  if (tables.empty()) return {};
  std::vector<Diagnostic> table_problems;
  SubjectTables merged = merge_subject_tables(tables, table_problems);
  write_file_atomically(out / "metrics.csv", subject_tables_csv(merged));
  for (const Diagnostic& problem : table_problems)
    std::cerr << "warning: " << problem.location << ": " << problem.message << "\n";
  return merged;
}

// Subjects cohort.json has as submitted or running: their run records say
// how they ended (a Slurm task, or a run this process did not see end).
void refresh_states(ordered_json& study) {
  std::map<std::string, int> counts;
  for (auto& subject : study["subjects"]) {
    const std::string state = subject.value("state", std::string());
    if (state == "submitted" || state == "running") {
      if (const auto record = read_json(subject.value("run_record", std::string()))) {
        const bool succeeded = record->value("exit_status", std::string()) == "succeeded";
        subject["state"] = succeeded ? "done" : "failed";
        subject["seconds"] = record->value("wall_seconds", 0.0);
        subject["peak_memory_bytes"] = record->value("peak_memory_bytes", 0.0);
        if (!succeeded) subject["error"] = record->value("error", std::string("the run failed"));
      }
    }
    ++counts[subject.value("state", std::string())];
  }
  study["counts"] = counts;
}

void write_study_report(const fs::path& out, const SubjectTables& metrics) {
  auto study = read_json(out / "cohort.json");
  if (!study) throw std::runtime_error("cannot read " + (out / "cohort.json").string());
  refresh_states(*study);
  const std::string page = study_report_html({&*study, out, &metrics}, web_assets_directory());
  write_file_atomically(out / "report.html", page);
  std::cerr << "cohort: study report " << (out / "report.html").string() << "\n";
}

// A cohort and its pipeline, checked as `cohort check` reports them: the
// cohort's problems, then the pipeline with each subject's values. Prints
// every problem and returns nothing when there is one.
struct CheckedCohort {
  PipelineVariables variables;
  Cohort cohort;
  std::string pipeline_sha256;
};

std::optional<CheckedCohort> check_cohort(Session& session, const CohortArguments& arguments) {
  std::vector<Diagnostic> problems;
  auto variables = read_pipeline_variables(arguments.pipeline, session.registry(), problems);
  if (!variables) {
    for (const Diagnostic& problem : problems) print_problem(problem);
    return std::nullopt;
  }
  CohortLoad cohort = load_cohort(arguments.cohort, *variables, fs::absolute(arguments.out));
  std::size_t count = cohort.problems.size();
  for (const Diagnostic& problem : cohort.problems) print_problem(problem);
  std::string pipeline_sha256;
  if (cohort.ok()) {
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
      if (loaded.ok()) pipeline_sha256 = loaded.pipeline->source_sha256;
    }
  }
  if (count > 0) {
    std::cerr << arguments.cohort << ": " << count << (count == 1 ? " problem" : " problems")
              << " found; nothing was run\n";
    return std::nullopt;
  }
  return CheckedCohort{std::move(*variables), std::move(*cohort.cohort), pipeline_sha256};
}

}  // namespace

int cohort_run_command(Session& session, const GlobalOptions& global, const CohortArguments& arguments) {
  std::optional<std::uint64_t> cache_limit;
  if (!arguments.cache_max_size.empty()) {
    try {
      if (arguments.cache_dir.empty()) throw std::invalid_argument("it needs --cache DIR");
      cache_limit = parse_byte_size(arguments.cache_max_size);
    } catch (const std::invalid_argument& error) {
      std::cerr << "error: --cache-max-size: " << error.what() << "\n";
      return kInvalid;
    }
  }
  if (!arguments.cache_dir.empty()) {
    try {
      NodeCache{arguments.cache_dir};  // made now, so a folder that cannot be one fails before any subject
    } catch (const std::exception& error) {
      std::cerr << "error: --cache: " << error.what() << "\n";
      return kInvalid;
    }
  }
  const auto checked = check_cohort(session, arguments);
  if (!checked) return kInvalid;
  const PipelineVariables* variables = &checked->variables;
  const std::string& pipeline_sha256 = checked->pipeline_sha256;
  const fs::path out = fs::absolute(arguments.out);

  fs::create_directories(out);
  std::vector<SubjectRun> runs;
  double largest_peak_bytes = 0;  // of the runs recorded before: the Slurm memory default
  for (const CohortSubject& subject : checked->cohort.subjects) {
    SubjectRun run;
    run.subject = &subject;
    run.folder = out / subject.id;
    fs::create_directories(run.folder);
    run.fingerprint = fingerprint(pipeline_sha256, subject, *variables);
    const auto state = read_json(run.folder / "cohort-state.json");
    const auto record = read_json(run.folder / "run.json");
    if (record) largest_peak_bytes = std::max(largest_peak_bytes, record->value("peak_memory_bytes", 0.0));
    const std::string last = state ? state->value("state", std::string()) : std::string();
    // Done: its run record says it succeeded (records are removed before a
    // subject starts), with this fingerprint (recorded before it started).
    if (state && state->value("fingerprint", std::string()) == run.fingerprint && record &&
        record->value("exit_status", std::string()) == "succeeded") {
      run.state = "done";  // resumed: the same run completed before
      run.seconds = state->value("seconds", 0.0);
      run.peak_memory_bytes = state->value("peak_memory_bytes", 0.0);
    } else if (arguments.retry_failed && last != "failed") {
      // Only failures run again; the others stay as they were (a done one
      // whose inputs changed since is "changed").
      run.left_alone = true;
      run.state = last == "done" ? "changed" : last.empty() || last == "running" ? "pending" : last;
    }
    runs.push_back(std::move(run));
  }

  // Subjects at once and threads each: never more threads than the budget.
  const int budget = arguments.threads > 0 ? arguments.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<SubjectRun*> queue;
  for (SubjectRun& run : runs) {
    if (run.state == "done" || run.left_alone) continue;
    queue.push_back(&run);
  }
  const int parallel = std::max(1, std::min<int>(arguments.parallel > 0 ? arguments.parallel : budget,
                                                 int(std::max<std::size_t>(1, queue.size()))));
  const int threads = std::max(1, budget / parallel);
  std::cerr << "cohort: " << runs.size() << " subjects, " << (runs.size() - queue.size())
            << " done or left as they are, " << queue.size() << " to run ("
            << std::min<int>(parallel, int(queue.size())) << " at once, " << threads << " thread(s) each)\n";
  write_study(out, arguments, pipeline_sha256, session, runs);
  if (arguments.engine == "slurm" && !queue.empty()) {
    CohortArguments submit = arguments;
    if (submit.mem_mb == 0 && largest_peak_bytes > 0) {
      // 1.5 times the largest peak of the earlier runs, in steps of 100 MB.
      submit.mem_mb = long(std::ceil(1.5 * largest_peak_bytes / (1024.0 * 1024.0) / 100.0)) * 100;
      std::cerr << "cohort: " << submit.mem_mb << " MB per task (1.5 x the largest peak memory of the earlier runs, "
                << long(largest_peak_bytes / (1024.0 * 1024.0)) << " MiB; --mem-mb sets it)\n";
    }
    for (SubjectRun* run : queue) {
      std::error_code ec;
      fs::remove(run->folder / "run.json", ec);  // a killed task leaves no record that says done
      run->state = "submitted";
      run->error.clear();
      write_state(*run);
    }
    write_study(out, arguments, pipeline_sha256, session, runs);
    const std::string job = submit_slurm_array(queue, out, submit, global);
    std::cerr << "cohort: Slurm job array " << job << " (" << queue.size() << " tasks)"
              << (arguments.wait ? ", waiting for it" : "; fusionflow cohort status " + out.string()) << "\n";
    if (!arguments.wait) return kSuccess;
    for (SubjectRun* run : queue) {
      read_run_outcome(*run);
      write_state(*run);
    }
    queue.clear();  // nothing for the local engine to run
  }
  std::map<pid_t, SubjectRun*> running;
  std::size_t next = 0, finished = 0;
  const auto started = std::chrono::steady_clock::now();
  while (next < queue.size() || !running.empty()) {
    while (next < queue.size() && int(running.size()) < parallel) {
      SubjectRun& run = *queue[next++];
      std::error_code ec;
      fs::remove(run.folder / "run.json", ec);  // a killed run leaves no record that says done
      run.state = "running";
      run.error.clear();
      write_state(run);
      running[start_subject(run, arguments, global, threads)] = &run;
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    const auto it = running.find(pid);
    if (it == running.end()) continue;
    SubjectRun& run = *it->second;
    running.erase(it);
    if (WIFSIGNALED(status)) run.error = "fusionflow run ended by signal " + std::to_string(WTERMSIG(status));
    read_run_outcome(run);
    write_state(run);
    write_study(out, arguments, pipeline_sha256, session, runs);
    ++finished;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    // Progress: one line a subject, with the counts and an estimate of the rest.
    std::size_t done = 0, failed_now = 0;
    for (const SubjectRun& each : runs) {
      done += each.state == "done" ? 1 : 0;
      failed_now += each.state == "failed" ? 1 : 0;
    }
    const double remaining = double(queue.size() - finished);
    const double eta = elapsed / double(finished) * remaining;
    std::cerr << "[" << finished << "/" << queue.size() << "] " << run.subject->id << " " << run.state << " in "
              << run.seconds << " s" << (run.error.empty() ? "" : ": " + run.error) << "  (" << done << " done, "
              << running.size() << " running, " << failed_now << " failed; " << elapsed << " s"
              << (remaining > 0 ? ", about " + std::to_string(long(std::ceil(eta))) + " s to go" : std::string())
              << ")\n";
  }

  std::vector<std::pair<std::string, fs::path>> done;
  for (const SubjectRun& run : runs) {
    if (run.state == "done") done.emplace_back(run.subject->id, run.subject->variables.at("out"));
  }
  const SubjectTables metrics = write_study_metrics(out, done);
  write_study(out, arguments, pipeline_sha256, session, runs);
  if (cache_limit) {
    const CachePruneResult pruned = NodeCache(arguments.cache_dir).prune(*cache_limit);
    std::cerr << "cohort: cache pruned to " << format_byte_size(*cache_limit) << " (" << pruned.removed_entries
              << " entries removed, " << format_byte_size(pruned.left.bytes) << " left)\n";
  }
  if (arguments.report) write_study_report(out, metrics);
  std::size_t failed = 0;
  for (const SubjectRun& run : runs) failed += run.state == "failed" ? 1 : 0;
  std::cerr << "cohort: " << (runs.size() - failed) << " of " << runs.size() << " subjects done"
            << (failed ? ", " + std::to_string(failed) + " failed (fusionflow cohort status " + out.string() + ")" : "")
            << "\n";
  return failed > 0 ? kRunFailed : kSuccess;
}

int cohort_status_command(const std::string& folder, bool summary_only) {
  auto study = read_json(fs::path(folder) / "cohort.json");
  if (!study) {
    std::cerr << "error: " << folder << " holds no cohort.json (run fusionflow cohort run ... --out " << folder
              << ")\n";
    return kInvalid;
  }
  refresh_states(*study);
  if (!summary_only) {
    for (const auto& subject : (*study)["subjects"]) {
      std::cout << subject.value("subject", std::string()) << "\t" << subject.value("state", std::string()) << "\t"
                << subject.value("seconds", 0.0) << " s";
      const std::string error = subject.value("error", std::string());
      if (!error.empty()) std::cout << "\t" << error;
      std::cout << "\n";
    }
  }
  std::cout << "subjects: " << (*study)["subjects"].size();
  for (const auto& [state, count] : (*study)["counts"].items()) std::cout << ", " << state << " " << count.dump();
  std::cout << "\n";
  return kSuccess;
}

int cohort_report_command(const std::string& folder) {
  const fs::path out = fs::absolute(folder).lexically_normal();
  auto study = read_json(out / "cohort.json");
  if (!study || !study->contains("subjects") || !(*study)["subjects"].is_array()) {
    std::cerr << "error: " << folder << " holds no cohort.json (run fusionflow cohort run ... --out " << folder
              << ")\n";
    return kInvalid;
  }
  refresh_states(*study);
  std::vector<std::pair<std::string, fs::path>> done;
  for (const auto& subject : (*study)["subjects"]) {
    if (subject.value("state", std::string()) != "done") continue;
    const std::string id = subject.value("subject", std::string());
    // Studies written before cohort.json named each subject's out folder: the default, STUDY/<subject>.
    done.emplace_back(id, subject.value("out", (out / id).string()));
  }
  try {
    write_study_report(out, write_study_metrics(out, done));
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return kRunFailed;
  }
  std::cout << (out / "report.html").string() << "\n";
  return kSuccess;
}

int cohort_check_command(Session& session, const CohortArguments& arguments) {
  const auto checked = check_cohort(session, arguments);
  if (!checked) return kInvalid;
  const auto& subjects = checked->cohort.subjects;
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
