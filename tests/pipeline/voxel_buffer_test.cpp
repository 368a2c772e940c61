// VoxelBuffer: a Volume's voxels, owned like a std::vector<float> or borrowed
// from memory another runtime owns (the Python module's NumPy arrays).
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include <fusionflow/volume.hpp>

namespace fusionflow {
namespace {

// Memory "owned elsewhere", with a flag that tells when its owner let it go.
struct LentMemory {
  std::vector<float> values{1.0f, 2.0f, 3.0f, 4.0f};
  std::shared_ptr<bool> released = std::make_shared<bool>(false);

  VoxelBuffer lend() {
    auto flag = released;
    auto owner = std::shared_ptr<const void>(values.data(), [flag](const void*) { *flag = true; });
    return VoxelBuffer::borrow(values.data(), values.size(), owner);
  }
};

TEST(VoxelBuffer, ABorrowedBufferReadsTheLentMemoryInPlace) {
  LentMemory memory;
  VoxelBuffer buffer = memory.lend();
  EXPECT_TRUE(buffer.borrowed());
  EXPECT_EQ(buffer.data(), memory.values.data());
  EXPECT_EQ(buffer.size(), 4u);
  EXPECT_EQ(buffer[2], 3.0f);
  VoxelBuffer moved = std::move(buffer);  // a move keeps the loan
  EXPECT_EQ(moved.data(), memory.values.data());
  EXPECT_FALSE(*memory.released);
  moved = VoxelBuffer(std::vector<float>{5.0f});
  EXPECT_TRUE(*memory.released) << "replacing the values ends the loan";
}

TEST(VoxelBuffer, ACopyOwnsItsValuesSoChangingItLeavesTheLentMemoryAlone) {
  LentMemory memory;
  Volume lent;
  lent.voxels = memory.lend();
  Volume changed = lent;  // what a node does to change its input
  EXPECT_FALSE(changed.voxels.borrowed());
  EXPECT_NE(changed.voxels.data(), memory.values.data());
  for (float& value : changed.voxels) value *= 10.0f;
  EXPECT_EQ(memory.values, (std::vector<float>{1.0f, 2.0f, 3.0f, 4.0f}));
  EXPECT_EQ(changed.voxels, (VoxelBuffer{10.0f, 20.0f, 30.0f, 40.0f}));
}

TEST(VoxelBuffer, ChangingTheSizeCopiesBorrowedValuesFirst) {
  LentMemory memory;
  VoxelBuffer buffer = memory.lend();
  buffer.push_back(5.0f);
  EXPECT_FALSE(buffer.borrowed());
  EXPECT_TRUE(*memory.released);
  EXPECT_EQ(buffer, (VoxelBuffer{1.0f, 2.0f, 3.0f, 4.0f, 5.0f}));
  EXPECT_EQ(memory.values.size(), 4u);

  LentMemory other;
  VoxelBuffer resized = other.lend();
  resized.resize(2);
  EXPECT_EQ(resized, (VoxelBuffer{1.0f, 2.0f}));
  EXPECT_EQ(other.values.size(), 4u);
}

TEST(VoxelBuffer, BehavesAsAVectorForOwnedValues) {
  VoxelBuffer buffer(3, 0.5f);
  EXPECT_FALSE(buffer.borrowed());
  buffer.assign(buffer.begin(), buffer.begin() + 2);  // a range of its own values
  EXPECT_EQ(buffer, (VoxelBuffer{0.5f, 0.5f}));
  const std::vector<float> as_vector = buffer;
  EXPECT_EQ(as_vector, (std::vector<float>{0.5f, 0.5f}));
  buffer.clear();
  EXPECT_TRUE(buffer.empty());
  EXPECT_NE(VoxelBuffer{1.0f}, VoxelBuffer{2.0f});
}

}  // namespace
}  // namespace fusionflow
