// `fusionflow view`: the interactive viewer, driven like a user would: real X
// key events (xdotool, through the X server) into its window, which go
// through VTK's interactor and the viewer's key handling.
#include <gtest/gtest.h>

#include "viz_test_support.hpp"

namespace fusionflow::viz_test {
namespace {

// Sends one key to the window with xdotool; returns xdotool's exit status.
int send_key(const std::string& window, const std::string& key, const fs::path& dir) {
  const Child xdotool = spawn({XDOTOOL_EXE, "key", "--window", window, key}, {}, dir);
  const int status = wait_for(xdotool, std::chrono::seconds(20));
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(Viewer, StartsRendersTakesScreenshotsSwitchesPresetsAndQuitsOnQ) {
  // A display for the viewer and for xdotool: ours, or an Xvfb we start (the
  // child inherits DISPLAY).
  const std::string display = viz::ensure_display();
  SCOPED_TRACE(display);
  const fs::path dir = scratch_dir("viewer");
  testdata::PhantomOptions options;
  options.size = {40, 40, 40};
  options.pet_displacement = {};
  testdata::write_phantom(testdata::generate_phantom(options), dir);
  const fs::path shot = dir / "shot.png";

  const Child viewer = spawn({FUSIONFLOW_EXE, "view", (dir / "ct.nii.gz").string(), "--overlay",
                              (dir / "pet.nii.gz").string(), "--size", "400x300", "--screenshot", shot.string()},
                             {}, dir);
  ASSERT_GT(viewer.pid, 0);
  ASSERT_TRUE(wait_for_text(viewer.out, "ready window=", std::chrono::seconds(90)))
      << read_text(viewer.out) << read_text(viewer.err);
  const std::string ready = read_text(viewer.out);
  const auto start = ready.find("ready window=") + std::string("ready window=").size();
  const std::string window = ready.substr(start, ready.find(' ', start) - start);
  EXPECT_NE(ready.find("width=400 height=300"), std::string::npos) << ready;

  // 's': a screenshot of the window's size, not blank.
  ASSERT_EQ(send_key(window, "s", dir), 0);
  ASSERT_TRUE(wait_for_text(viewer.out, "screenshot " + shot.string(), std::chrono::seconds(60)))
      << read_text(viewer.out);
  const viz::RgbImage first = viz::read_png(shot);
  EXPECT_EQ(first.width, 400);
  EXPECT_EQ(first.height, 300);
  EXPECT_GT(picture_stats(first).foreground, 0.1);
  EXPECT_GT(picture_stats(first).grey_std, 10.0);

  // 'p' switches the CT preset (ct_bone -> ct_soft_tissue), '+' raises the
  // overlay opacity; the next screenshot shows the change.
  ASSERT_EQ(send_key(window, "p", dir), 0);
  ASSERT_TRUE(wait_for_text(viewer.out, "preset ct_soft_tissue", std::chrono::seconds(60))) << read_text(viewer.out);
  ASSERT_EQ(send_key(window, "plus", dir), 0);
  ASSERT_TRUE(wait_for_text(viewer.out, "overlay_opacity 0.7", std::chrono::seconds(60))) << read_text(viewer.out);
  fs::remove(shot);
  ASSERT_EQ(send_key(window, "s", dir), 0);
  ASSERT_TRUE(wait_for_text(viewer.out, "screenshot " + shot.string(), std::chrono::seconds(60), 2));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const viz::RgbImage second = viz::read_png(shot);
  EXPECT_GT(mean_difference(first, second), 2.0);

  // 'q' quits with status 0. (xdotool may report the window gone before the
  // key release: its status is not checked.)
  send_key(window, "q", dir);
  const int status = wait_for(viewer, std::chrono::seconds(30));
  ASSERT_NE(status, -1) << "the viewer did not quit on q";
  ASSERT_TRUE(WIFEXITED(status)) << "signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 0) << read_text(viewer.err);
  EXPECT_NE(read_text(viewer.out).find("quit"), std::string::npos);
}

TEST(Viewer, HelpListsTheKeysAndAMissingFileIsAnError) {
  const fs::path dir = scratch_dir("viewer-help");
  const Child help = spawn({FUSIONFLOW_EXE, "view", "--help"}, {}, dir);
  const int help_status = wait_for(help, std::chrono::seconds(30));
  ASSERT_TRUE(WIFEXITED(help_status));
  EXPECT_EQ(WEXITSTATUS(help_status), 0);
  const std::string text = read_text(help.out);
  for (const char* key : {"p next preset", "+/- overlay opacity", "s screenshot", "q quit", "--overlay"}) {
    EXPECT_NE(text.find(key), std::string::npos) << key << " missing in:\n" << text;
  }
  const Child missing = spawn({FUSIONFLOW_EXE, "view", (dir / "nope.nii.gz").string()}, {}, dir);
  const int missing_status = wait_for(missing, std::chrono::seconds(30));
  ASSERT_TRUE(WIFEXITED(missing_status));
  EXPECT_EQ(WEXITSTATUS(missing_status), 2);
}

}  // namespace
}  // namespace fusionflow::viz_test
