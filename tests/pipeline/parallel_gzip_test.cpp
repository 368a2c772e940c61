// gzip_file_in_blocks: the output is a gzip file every reader takes (zlib's
// gzread, as ITK's NIfTI reader uses it), one member per block, the same bytes
// for any thread count.
#include <gtest/gtest.h>
#include <tbb/global_control.h>
#include <zlib.h>

#include <cstdint>
#include <fusionflow/parallel_gzip.hpp>
#include <random>
#include <stdexcept>
#include <string>

#include "test_support.hpp"

namespace fusionflow {
namespace {
namespace fs = std::filesystem;

// Half noise, half runs: some blocks barely compress, others a lot.
std::string sample_bytes(std::size_t size) {
  std::mt19937 random(7);
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    bytes[i] = (i / 4096) % 2 == 0 ? static_cast<char>(random() & 0xff) : static_cast<char>((i / 512) & 0x0f);
  }
  return bytes;
}

// What zlib's gzread makes of the file: the concatenated members' bytes.
std::string gzread_all(const fs::path& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw std::runtime_error("gzopen failed on " + path.string());
  std::string bytes;
  char buffer[1 << 16];
  int got = 0;
  while ((got = gzread(file, buffer, sizeof buffer)) > 0) bytes.append(buffer, static_cast<std::size_t>(got));
  const bool ok = got == 0;
  gzclose(file);
  if (!ok) throw std::runtime_error("gzread failed on " + path.string());
  return bytes;
}

// The number of gzip members, each inflated to its end with a valid trailer.
std::size_t member_count(const std::string& gzip) {
  std::size_t members = 0, offset = 0;
  std::string scratch(1 << 16, '\0');
  while (offset < gzip.size()) {
    z_stream stream{};
    if (inflateInit2(&stream, 16 + 15) != Z_OK) throw std::runtime_error("inflateInit2 failed");
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gzip.data() + offset));
    stream.avail_in = static_cast<uInt>(gzip.size() - offset);
    int status = Z_OK;
    while (status == Z_OK) {
      stream.next_out = reinterpret_cast<Bytef*>(scratch.data());
      stream.avail_out = static_cast<uInt>(scratch.size());
      status = inflate(&stream, Z_NO_FLUSH);
    }
    const std::size_t used = gzip.size() - offset - stream.avail_in;
    inflateEnd(&stream);
    if (status != Z_STREAM_END) throw std::runtime_error("member " + std::to_string(members) + " is not complete");
    offset += used;
    ++members;
  }
  return members;
}

class ParallelGzip : public ::testing::Test {
 protected:
  fs::path dir_ = testing::fresh_temp_directory("parallel-gzip");
  void TearDown() override { fs::remove_all(dir_); }
};

TEST_F(ParallelGzip, EveryBlockIsAMemberAndGzreadReturnsTheBytesInOrder) {
  const std::string bytes = sample_bytes(kGzipBlockBytes * 5 / 2);
  testing::write_file(dir_ / "in.bin", bytes);
  gzip_file_in_blocks(dir_ / "in.bin", dir_ / "out.gz", 6);
  const std::string gzip = testing::read_file(dir_ / "out.gz");
  ASSERT_GE(gzip.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(gzip[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(gzip[1]), 0x8b);
  EXPECT_EQ(member_count(gzip), 3u);  // two whole blocks and a half one
  EXPECT_LT(gzip.size(), bytes.size() * 3 / 4) << "the runs compress";
  EXPECT_EQ(gzread_all(dir_ / "out.gz"), bytes);
}

TEST_F(ParallelGzip, TheBytesAreTheSameForAnyThreadCount) {
  // More blocks than one round of compression holds, so rounds are covered too.
  const std::string bytes = sample_bytes(kGzipBlockBytes * 40 + 123);
  testing::write_file(dir_ / "in.bin", bytes);
  std::string by_threads[2];
  for (int threads : {1, 2}) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
    const fs::path out = dir_ / ("out" + std::to_string(threads) + ".gz");
    gzip_file_in_blocks(dir_ / "in.bin", out, 6);
    by_threads[threads - 1] = testing::read_file(out);
  }
  EXPECT_EQ(by_threads[0], by_threads[1]);
  EXPECT_EQ(member_count(by_threads[0]), 41u);
  EXPECT_EQ(gzread_all(dir_ / "out2.gz"), bytes);
}

TEST_F(ParallelGzip, AnEmptyFileIsOneEmptyMember) {
  testing::write_file(dir_ / "empty.bin", "");
  gzip_file_in_blocks(dir_ / "empty.bin", dir_ / "empty.gz", 6);
  EXPECT_EQ(member_count(testing::read_file(dir_ / "empty.gz")), 1u);
  EXPECT_EQ(gzread_all(dir_ / "empty.gz"), "");
}

TEST_F(ParallelGzip, FailuresNameTheFile) {
  try {
    gzip_file_in_blocks(dir_ / "missing.bin", dir_ / "out.gz", 6);
    FAIL() << "a missing input was accepted";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("missing.bin"), std::string::npos) << error.what();
  }
  testing::write_file(dir_ / "in.bin", "abc");
  try {
    gzip_file_in_blocks(dir_ / "in.bin", dir_ / "no-such-folder" / "out.gz", 6);
    FAIL() << "an output in a missing folder was accepted";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("no-such-folder"), std::string::npos) << error.what();
  }
  EXPECT_THROW(gzip_file_in_blocks(dir_ / "in.bin", dir_ / "out.gz", 0), std::invalid_argument);
}

}  // namespace
}  // namespace fusionflow
