#pragma once
// Block-parallel gzip: a file compressed as a series of gzip members, one per
// fixed-size block of its bytes, the blocks compressed in parallel with
// libdeflate. Concatenated members are one valid gzip file (RFC 1952, section
// 2.2): gzip, zlib's gzread (ITK's NIfTI reader), Python's gzip (nibabel) and
// fusionflow's own loaders read it as the bytes in order; bgzip and pigz's
// independent mode write the same structure.
//
// The output bytes depend only on the input bytes and the level: the block
// size is fixed, not derived from the thread count, and every member's header
// has modification time 0.

#include <cstddef>
#include <filesystem>

namespace fusionflow {

// Uncompressed bytes per gzip member. Deflate's window is 32 KiB, so blocks of
// 1 MiB cost about 0.01 % in size against one member, and a 256x256x180 float
// volume (45 MiB) still gives two cores dozens of blocks to share.
inline constexpr std::size_t kGzipBlockBytes = std::size_t{1} << 20;

// Compresses the file `input` into `output` (created or truncated; flushed and
// synced before returning). `level` is libdeflate's, 1 (fastest) to 12.
// Throws std::runtime_error naming the file on a read, write or compression
// failure; `output` may then hold partial data (callers write to an
// AtomicFileWriter's temporary file, which is removed).
void gzip_file_in_blocks(const std::filesystem::path& input, const std::filesystem::path& output, int level);

}  // namespace fusionflow
