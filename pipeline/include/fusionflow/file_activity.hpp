// What a node does with files while it runs, recorded for the node cache
// (fusionflow/node_cache.hpp): the output files it commits, the files it
// reads beyond its input path parameters, and inputs the cache cannot track.
//
// Output files are recorded by AtomicFileWriter::commit(), which every writer
// uses. A node whose input path names a file that points at further files (an
// .mhd header and its data file, an Analyze .hdr and its .img) reports those
// with note_file_read(), so that a cached result is used only while they are
// unchanged; one that reads files it cannot name reports note_untracked_input()
// and is never stored. Both are recorded for the thread that runs the node:
// call them, and commit output files, from that thread.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace fusionflow {

void note_file_read(const std::filesystem::path& file);
void note_untracked_input(const std::string& reason);

struct FileActivity {
  std::vector<std::filesystem::path> written;  // absolute, in commit order
  std::vector<std::filesystem::path> read;     // absolute
  std::vector<std::string> untracked;          // reasons
};

// Records the activity of the current thread while it lives (the executor
// opens one around each node it runs); scopes nest.
class FileActivityScope {
 public:
  FileActivityScope();
  ~FileActivityScope();
  FileActivityScope(const FileActivityScope&) = delete;
  FileActivityScope& operator=(const FileActivityScope&) = delete;
  const FileActivity& activity() const { return activity_; }

 private:
  FileActivity activity_;
  FileActivity* previous_;
};

namespace detail {
void note_file_written(const std::filesystem::path& file);  // AtomicFileWriter::commit
}

}  // namespace fusionflow
