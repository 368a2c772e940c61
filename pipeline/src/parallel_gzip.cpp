#include "fusionflow/parallel_gzip.hpp"

#include <fcntl.h>
#include <libdeflate.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

namespace fusionflow {
namespace fs = std::filesystem;

namespace {

// Blocks compressed per round: bounds the compressed bytes held in memory
// (at most this many blocks' worth) while keeping both cores busy.
constexpr std::size_t kBlocksPerRound = 32;

struct FileDescriptor {
  int fd = -1;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

struct CompressorDeleter {
  void operator()(libdeflate_compressor* compressor) const { libdeflate_free_compressor(compressor); }
};
using Compressor = std::unique_ptr<libdeflate_compressor, CompressorDeleter>;

std::string system_error_text() { return std::strerror(errno); }

// Reads exactly `size` bytes at `offset` (pread: the blocks are read by
// several threads at once, each at its own offset).
void read_block(int fd, const fs::path& path, std::size_t offset, char* into, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t got = ::pread(fd, into + done, size - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      throw std::runtime_error("cannot read '" + path.string() + "' at byte " + std::to_string(offset + done) + ": " +
                               (got == 0 ? std::string("the file ended early") : system_error_text()));
    }
    done += static_cast<std::size_t>(got);
  }
}

void write_all(int fd, const fs::path& path, const char* bytes, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t put = ::write(fd, bytes + done, size - done);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) throw std::runtime_error("cannot write '" + path.string() + "': " + system_error_text());
    done += static_cast<std::size_t>(put);
  }
}

}  // namespace

void gzip_file_in_blocks(const fs::path& input, const fs::path& output, int level) {
  if (level < 1 || level > 12) {
    throw std::invalid_argument("gzip level " + std::to_string(level) + " is outside libdeflate's 1..12");
  }
  FileDescriptor in;
  in.fd = ::open(input.c_str(), O_RDONLY | O_CLOEXEC);
  if (in.fd < 0) throw std::runtime_error("cannot open '" + input.string() + "': " + system_error_text());
  struct stat status {};
  if (::fstat(in.fd, &status) != 0) {
    throw std::runtime_error("cannot read '" + input.string() + "': " + system_error_text());
  }
  const auto total = static_cast<std::size_t>(status.st_size);
  FileDescriptor out;
  out.fd = ::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out.fd < 0) throw std::runtime_error("cannot open '" + output.string() + "' for writing: " + system_error_text());

  // Each thread keeps one compressor (libdeflate's are not shared across
  // threads) and one input buffer.
  struct Worker {
    Compressor compressor;
    std::vector<char> block;
  };
  tbb::enumerable_thread_specific<Worker> workers([level] {
    Worker worker{Compressor(libdeflate_alloc_compressor(level)), std::vector<char>(kGzipBlockBytes)};
    if (!worker.compressor) throw std::runtime_error("libdeflate could not allocate a compressor");
    return worker;
  });
  // An empty file is still one (empty) member, as gzip writes it.
  const std::size_t block_count = std::max<std::size_t>(1, (total + kGzipBlockBytes - 1) / kGzipBlockBytes);
  std::vector<std::vector<char>> members(std::min(block_count, kBlocksPerRound));
  for (std::size_t first = 0; first < block_count; first += kBlocksPerRound) {
    const std::size_t round = std::min(kBlocksPerRound, block_count - first);
    tbb::parallel_for(std::size_t{0}, round, [&](std::size_t i) {
      Worker& worker = workers.local();
      const std::size_t offset = (first + i) * kGzipBlockBytes;
      const std::size_t size = std::min(kGzipBlockBytes, total - std::min(total, offset));
      read_block(in.fd, input, offset, worker.block.data(), size);
      std::vector<char>& member = members[i];
      member.resize(libdeflate_gzip_compress_bound(worker.compressor.get(), size));
      const std::size_t written =
          libdeflate_gzip_compress(worker.compressor.get(), worker.block.data(), size, member.data(), member.size());
      if (written == 0) throw std::runtime_error("libdeflate could not compress block " + std::to_string(first + i));
      member.resize(written);
    });
    // In block order, whatever order the threads finished in.
    for (std::size_t i = 0; i < round; ++i) write_all(out.fd, output, members[i].data(), members[i].size());
  }
  if (::fsync(out.fd) != 0) throw std::runtime_error("cannot write '" + output.string() + "': " + system_error_text());
  const int descriptor = out.fd;
  out.fd = -1;
  if (::close(descriptor) != 0) {
    throw std::runtime_error("cannot write '" + output.string() + "': " + system_error_text());
  }
}

}  // namespace fusionflow
