// Payload codecs: how a payload type is written to bytes and read back, for
// the node cache (fusionflow/node_cache.hpp). A payload's content hash is the
// SHA-256 of its encoding, so an encoding must be canonical: equal values give
// equal bytes, and decode(encode(v)) == v exactly (floats bit for bit).
//
// The SDK's types (Volume, Table, Latent, Transform, ColorVolume) have codecs; a plugin
// gives its own types one through PluginRegistrar::add_payload_type. A node
// that makes or takes a payload type without a codec is never cached.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <istream>
#include <string>

#include "fusionflow/payload.hpp"

namespace fusionflow {

// Receives the encoding in pieces (to a file, to a hash, or both).
using ByteSink = std::function<void(const void* data, std::size_t size)>;

// Bytes to decode, with their exact count known before anything is read, so
// a decoder refuses a size it cannot hold instead of allocating it.
class ByteSource {
 public:
  ByteSource(std::istream& in, std::uint64_t size) : in_(in), remaining_(size) {}
  // Throws std::runtime_error if fewer than `size` bytes remain.
  void read(void* data, std::size_t size);
  std::uint64_t remaining() const { return remaining_; }

 private:
  std::istream& in_;
  std::uint64_t remaining_;
};

struct PayloadCodec {
  std::function<void(const Payload& value, const ByteSink& out)> encode;
  // Throws std::runtime_error for bytes that are not a valid encoding.
  std::function<Payload(ByteSource& in)> decode;
  // Optional: the value with a file path it records (a loaded Volume's
  // metadata.source) changed from `from` to `to`, used when a cached
  // loader's input file has moved. Without it the value is kept as cached.
  std::function<Payload(const Payload& value, const std::string& from, const std::string& to)> relocate;

  bool usable() const { return encode && decode; }
};

// The codecs of the SDK's payload types.
PayloadCodec volume_codec();
PayloadCodec table_codec();
PayloadCodec latent_codec();
PayloadCodec transform_codec();
PayloadCodec color_volume_codec();

// SHA-256 (hex) of a payload's encoding.
std::string payload_content_sha256(const PayloadCodec& codec, const Payload& value);

}  // namespace fusionflow
