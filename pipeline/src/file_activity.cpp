#include "fusionflow/file_activity.hpp"

#include <system_error>

namespace fusionflow {
namespace fs = std::filesystem;

namespace {

thread_local FileActivity* current_activity = nullptr;

fs::path absolute_path(const fs::path& file) {
  std::error_code ec;
  fs::path absolute = fs::absolute(file, ec);
  return ec ? file : absolute.lexically_normal();
}

}  // namespace

void note_file_read(const fs::path& file) {
  if (current_activity != nullptr) current_activity->read.push_back(absolute_path(file));
}

void note_untracked_input(const std::string& reason) {
  if (current_activity != nullptr) current_activity->untracked.push_back(reason);
}

void detail::note_file_written(const fs::path& file) {
  if (current_activity != nullptr) current_activity->written.push_back(absolute_path(file));
}

FileActivityScope::FileActivityScope() : previous_(current_activity) { current_activity = &activity_; }

FileActivityScope::~FileActivityScope() { current_activity = previous_; }

}  // namespace fusionflow
