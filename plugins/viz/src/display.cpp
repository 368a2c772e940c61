// X display handling for VTK rendering (see vtk_support.hpp: ensure_display,
// lock_rendering). Kept in its own translation unit: Xlib's headers define
// macros (Status, Bool, None, ...) that clash with VTK and the standard library.
#include "vtk_support.hpp"

#include <X11/Xlib.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <vector>

extern char** environ;

namespace fusionflow::viz {
namespace {

// Opens `name`, checks that it offers GLX (VTK's OpenGL windows abort without
// it) and closes it again. Returns an empty string if usable, else the reason.
std::string check_display(const std::string& name) {
  Display* display = XOpenDisplay(name.c_str());
  if (display == nullptr) return "cannot connect to X display '" + name + "'";
  int opcode = 0, event = 0, error = 0;
  const bool glx = XQueryExtension(display, "GLX", &opcode, &event, &error) != 0;
  XCloseDisplay(display);
  if (!glx) return "X display '" + name + "' has no GLX extension (OpenGL)";
  return {};
}

std::string find_on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return {};
  std::stringstream directories(path);
  std::string directory;
  while (std::getline(directories, directory, ':')) {
    if (directory.empty()) directory = ".";
    const std::string candidate = directory + "/" + program;
    struct stat info {};
    if (::stat(candidate.c_str(), &info) == 0 && S_ISREG(info.st_mode) && ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return {};
}

// The Xvfb this process started, stopped when the process exits (this
// object's static destructor). If the process dies without running
// destructors, Xvfb still goes away: it runs with -terminate, and `sentinel`
// is the connection whose closing (by the kernel, at process death) makes it
// the last client to leave.
class VirtualFramebuffer {
 public:
  ~VirtualFramebuffer() { stop(); }

  // Starts Xvfb on a display number it picks itself (-displayfd: no race with
  // other processes choosing numbers) and waits until it accepts connections.
  // Returns the display name (":N").
  std::string start(const std::string& executable) {
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    // The child gets the write end as fd 3 (dup2 clears close-on-exec).
    constexpr int kChildFd = 3;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, ready[1], kChildFd);
    // Its own process group: a Ctrl-C meant for us (we cancel cleanly) must
    // not kill the X server under a render in progress.
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attributes, 0);
    std::vector<std::string> arguments{executable,  "-displayfd", std::to_string(kChildFd),
                                       "-screen",   "0",          "1280x1024x24",
                                       "-nolisten", "tcp",        "-terminate"};
    std::vector<char*> argv;
    for (std::string& argument : arguments) argv.push_back(argument.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int spawned = posix_spawn(&pid, executable.c_str(), &actions, &attributes, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    ::close(ready[1]);
    if (spawned != 0) {
      ::close(ready[0]);
      throw std::runtime_error("cannot start " + executable + ": " + std::strerror(spawned));
    }
    pid_ = pid;

    // Xvfb writes "N\n" once it listens; EOF means it exited.
    std::string number;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (number.empty() || number.back() != '\n') {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd poll_fd{ready[0], POLLIN, 0};
      const int polled = ::poll(&poll_fd, 1, static_cast<int>(left.count()));
      if (polled < 0 && errno == EINTR) continue;
      if (polled <= 0) break;
      char buffer[32];
      const ssize_t got = ::read(ready[0], buffer, sizeof buffer);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) break;
      number.append(buffer, static_cast<std::size_t>(got));
    }
    ::close(ready[0]);
    if (number.empty() || number.back() != '\n') {
      stop();
      throw std::runtime_error(executable + " did not start (no display number within 20 s)");
    }
    number.pop_back();
    name_ = ":" + number;
    sentinel_ = XOpenDisplay(name_.c_str());
    if (sentinel_ == nullptr) {
      stop();
      throw std::runtime_error("started " + executable + " on " + name_ + " but cannot connect to it");
    }
    return name_;
  }

  void stop() {
    if (sentinel_ != nullptr) {
      XCloseDisplay(sentinel_);
      sentinel_ = nullptr;
    }
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
    }
  }

  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  Display* sentinel_ = nullptr;
  std::string name_;
};

std::mutex& display_mutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace

std::string ensure_display() {
  static VirtualFramebuffer framebuffer;  // destroyed (Xvfb stopped) at exit
  static std::optional<std::string> established;
  std::lock_guard<std::mutex> lock(display_mutex());
  if (established) return *established;

  // Xlib from several threads (VTK's windows, our checks) needs this first.
  XInitThreads();
  std::string reason;
  const char* current = std::getenv("DISPLAY");
  if (current != nullptr && *current != '\0') {
    reason = check_display(current);
    if (reason.empty()) {
      established = std::string("X display ") + current;
      return *established;
    }
  } else {
    reason = "DISPLAY is not set";
  }
  const std::string xvfb = find_on_path("Xvfb");
  if (xvfb.empty()) {
    throw std::runtime_error(std::string(kNoDisplayMessage) + " (" + reason + "; no Xvfb on PATH)");
  }
  const std::string name = framebuffer.start(xvfb);
  // Once per process, under the lock; VTK and child processes (the viewer)
  // read DISPLAY from the environment.
  ::setenv("DISPLAY", name.c_str(), 1);
  const std::string glx = check_display(name);
  if (!glx.empty()) {
    framebuffer.stop();
    throw std::runtime_error(std::string(kNoDisplayMessage) + " (" + reason + "; the Xvfb started on " + name +
                             " is unusable: " + glx + ")");
  }
  established = "started Xvfb on " + name + " (pid " + std::to_string(framebuffer.pid()) + ", " + reason + ")";
  return *established;
}

void* shared_display_connection() {
  static std::mutex mutex;
  static Display* display = nullptr;  // open until the process exits
  std::lock_guard<std::mutex> lock(mutex);
  if (display != nullptr) return display;
  const char* name = std::getenv("DISPLAY");
  if (name == nullptr || *name == '\0') {
    throw std::runtime_error(std::string(kNoDisplayMessage) + " (DISPLAY is not set; call ensure_display() first)");
  }
  // A busy X server may refuse a connection it would accept a moment later.
  for (int attempt = 0; attempt < 10 && display == nullptr; ++attempt) {
    if (attempt > 0) ::usleep(200 * 1000);
    display = XOpenDisplay(name);
  }
  if (display == nullptr) {
    throw std::runtime_error(std::string("cannot connect to the X display '") + name +
                             "' for rendering (10 attempts over 2 s): the X server stopped or refuses connections");
  }
  return display;
}

std::unique_lock<std::recursive_mutex> lock_rendering() {
  static std::recursive_mutex mutex;
  return std::unique_lock<std::recursive_mutex>(mutex);
}

}  // namespace fusionflow::viz
