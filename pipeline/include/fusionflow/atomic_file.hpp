// Atomic output files: a result appears under its final name complete or not
// at all. Content is written to a temporary file in the same directory (same
// filesystem, so rename(2) is atomic) and renamed over the target on commit.
#pragma once

#include <filesystem>
#include <string_view>

namespace fusionflow {

class AtomicFileWriter {
 public:
  // Creates missing parent directories of `final_path`. Throws
  // std::runtime_error naming the directory if that fails.
  explicit AtomicFileWriter(std::filesystem::path final_path);
  // Removes the temporary file unless commit() succeeded.
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  // Where to write. Hidden file in the target directory that keeps the full
  // file name as suffix, so extension-driven writers (ITK: ".nii.gz") pick the
  // same format: "dir/.fftmp-<pid>-<n>-name.nii.gz".
  const std::filesystem::path& temp_path() const { return temp_path_; }
  const std::filesystem::path& final_path() const { return final_path_; }

  // Renames the temporary file to the final path. Throws std::runtime_error
  // naming both paths if the temporary file is missing or rename fails.
  void commit();

 private:
  std::filesystem::path final_path_;
  std::filesystem::path temp_path_;
  bool committed_ = false;
};

// Writes `bytes` to `path` atomically (flushes before rename).
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

}  // namespace fusionflow
