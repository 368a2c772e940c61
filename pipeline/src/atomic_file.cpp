#include "fusionflow/atomic_file.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

#include "fusionflow/file_activity.hpp"

namespace fusionflow {
namespace fs = std::filesystem;

namespace {
std::atomic<unsigned long> temp_counter{0};
}

AtomicFileWriter::AtomicFileWriter(fs::path final_path) : final_path_(std::move(final_path)) {
  if (final_path_.filename().empty()) {
    throw std::runtime_error("output path '" + final_path_.string() + "' names a directory, not a file");
  }
  const fs::path dir = final_path_.parent_path().empty() ? fs::path(".") : final_path_.parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    throw std::runtime_error("cannot create output directory '" + dir.string() + "': " + ec.message());
  }
  temp_path_ = dir / (".fftmp-" + std::to_string(::getpid()) + "-" + std::to_string(temp_counter++) + "-" +
                      final_path_.filename().string());
}

AtomicFileWriter::~AtomicFileWriter() {
  if (!committed_) {
    std::error_code ignored;
    fs::remove(temp_path_, ignored);
  }
}

void AtomicFileWriter::commit() {
  if (committed_) return;
  std::error_code ec;
  if (!fs::exists(temp_path_, ec)) {
    throw std::runtime_error("temporary file '" + temp_path_.string() + "' for '" + final_path_.string() +
                             "' was not written");
  }
  fs::rename(temp_path_, final_path_, ec);
  if (ec) {
    throw std::runtime_error("cannot move '" + temp_path_.string() + "' to '" + final_path_.string() +
                             "': " + ec.message());
  }
  committed_ = true;
  detail::note_file_written(final_path_);
}

void write_file_atomically(const fs::path& path, std::string_view bytes) {
  AtomicFileWriter writer(path);
  std::FILE* file = std::fopen(writer.temp_path().c_str(), "wb");
  if (file == nullptr) {
    throw std::runtime_error("cannot open '" + writer.temp_path().string() + "' for writing: " + std::strerror(errno));
  }
  const bool written = std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size();
  const bool flushed = std::fflush(file) == 0 && ::fsync(::fileno(file)) == 0;
  const bool closed = std::fclose(file) == 0;
  if (!written || !flushed || !closed) {
    throw std::runtime_error("cannot write '" + path.string() + "': " + std::strerror(errno));
  }
  writer.commit();
}

}  // namespace fusionflow
