#include "pipeline_json.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <system_error>

namespace fusionflow::detail {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string mebibytes(std::size_t bytes) {
  constexpr std::size_t kMebibyte = 1u << 20;
  const std::size_t tenths = bytes / kMebibyte * 10 + (bytes % kMebibyte * 10 + kMebibyte / 2) / kMebibyte;
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + " MiB";
}

const std::string kSizeLimit = std::to_string(PipelineLimits::max_file_bytes >> 20) + " MiB (" +
                               std::to_string(PipelineLimits::max_file_bytes) + " bytes)";

Diagnostic too_large(std::size_t bytes, const std::string& what) {
  return {"",
          what + " is " + (bytes > PipelineLimits::max_file_bytes ? mebibytes(bytes) : "more than " + kSizeLimit) +
              "; the limit is " + kSizeLimit,
          "a pipeline holds nodes, parameters and variables; large data belongs in the files its nodes read"};
}

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// Closes a file descriptor when it goes out of scope.
struct FileDescriptor {
  int fd = -1;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

FileBytes read_pipeline_bytes(const fs::path& file) {
  FileBytes result;
  auto fail = [&](std::string message, std::string hint) {
    result.problems.push_back({"", std::move(message), std::move(hint)});
    return result;
  };
  // O_NONBLOCK: opening a FIFO must not wait for a writer; the type is checked
  // on the open descriptor (fstat), so it cannot change between check and read.
  FileDescriptor descriptor{::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)};
  if (descriptor.fd < 0) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR) return fail("the pipeline file does not exist", "check the path");
    if (error == EACCES || error == EPERM) return fail("cannot read the pipeline file", "check its permissions");
    return fail("cannot open the pipeline file: " + std::generic_category().message(error),
                "give the path of a pipeline JSON file");
  }
  struct stat status {};
  if (::fstat(descriptor.fd, &status) != 0) {
    return fail("cannot read the pipeline file: " + std::generic_category().message(errno), "");
  }
  if (!S_ISREG(status.st_mode)) {
    const bool directory = S_ISDIR(status.st_mode);
    return fail(std::string("the pipeline path is ") + file_kind(status.st_mode) + ", not a regular file",
                directory ? "give the path of a pipeline JSON file in it"
                          : "pipelines are read from regular files only (not pipes, devices or sockets), so that "
                            "their size is known before reading: save it to a file first");
  }
  if (static_cast<std::size_t>(status.st_size) > PipelineLimits::max_file_bytes) {
    result.problems.push_back(too_large(static_cast<std::size_t>(status.st_size), "the pipeline file"));
    return result;
  }
  // Read at most one byte past the limit: a file that grew after fstat is
  // refused instead of read without bound.
  result.bytes.resize(static_cast<std::size_t>(status.st_size) + 1);
  std::size_t used = 0;
  while (true) {
    if (used == result.bytes.size()) {
      if (used > PipelineLimits::max_file_bytes) {
        result.bytes.clear();
        result.problems.push_back(too_large(used, "the pipeline file"));
        return result;
      }
      result.bytes.resize(std::min(PipelineLimits::max_file_bytes + 1, used * 2));
    }
    const ssize_t count = ::read(descriptor.fd, result.bytes.data() + used, result.bytes.size() - used);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return fail("cannot read the pipeline file: " + std::generic_category().message(errno), "");
    if (count == 0) break;
    used += static_cast<std::size_t>(count);
  }
  result.bytes.resize(used);
  return result;
}

std::string line_and_column(const std::string& text, std::size_t byte_offset) {
  std::size_t line = 1, column = 1;
  std::size_t start = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;  // a byte order mark is no column
  for (std::size_t i = start; i < byte_offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {  // not a UTF-8 continuation byte
      ++column;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

std::string excerpt(const std::string& text) {
  constexpr std::size_t kShown = 40;
  if (text.size() <= 2 * kShown) return text;
  std::size_t cut = kShown;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // whole UTF-8 characters
  return text.substr(0, cut) + "... (" + std::to_string(text.size()) + " bytes)";
}

std::string pointer_token(const std::string& key) {
  const std::string& shown = key.size() > PipelineLimits::max_name_length ? excerpt(key) : key;
  std::string escaped;
  for (char c : shown) {
    if (c == '~')
      escaped += "~0";
    else if (c == '/')
      escaped += "~1";
    else
      escaped += c;
  }
  return escaped;
}

namespace {

// Iterates over the text for nlohmann's lexer and tells the document builder
// how far the lexer has read: SAX events carry no positions, and the
// position of a duplicate key is the one a user needs.
class TrackedIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  TrackedIterator(const char* position, const char** read_to) : position_(position), read_to_(read_to) {}
  reference operator*() const { return *position_; }
  TrackedIterator& operator++() {
    *read_to_ = ++position_;
    return *this;
  }
  TrackedIterator operator++(int) {
    TrackedIterator before = *this;
    ++*this;
    return before;
  }
  bool operator==(const TrackedIterator& other) const { return position_ == other.position_; }
  bool operator!=(const TrackedIterator& other) const { return position_ != other.position_; }

 private:
  const char* position_;
  const char** read_to_;
};

// Builds the document from nlohmann's SAX events (its parser keeps its own
// stack, so no recursion follows the file's nesting), refusing nesting deeper
// than the limit before it is built and reporting duplicate keys, which
// nlohmann's own DOM parser accepts silently (keeping the last value).
class DocumentBuilder : public json::json_sax_t {
 public:
  DocumentBuilder(const std::string& text, const char* const& read_to) : text_(text), read_to_(read_to) {}

  bool null() override { return add(json(nullptr)); }
  bool boolean(bool value) override { return add(json(value)); }
  bool number_integer(number_integer_t value) override { return add(json(value)); }
  bool number_unsigned(number_unsigned_t value) override { return add(json(value)); }
  bool number_float(number_float_t value, const string_t&) override { return add(json(value)); }
  bool string(string_t& value) override { return add(json(std::move(value))); }
  bool binary(binary_t&) override { return add(json()); }  // never sent for JSON text

  bool start_object(std::size_t) override { return open(json::object()); }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(json::array()); }
  bool end_array() override { return close(); }

  bool key(string_t& key) override {
    json& object = *stack_.back();
    if (object.contains(key)) {
      // The lexer has just read the key's closing quote; its opening quote is
      // the nearest earlier quote not escaped by an odd run of backslashes.
      std::size_t quote = offset() - 1;
      while (quote > 0) {
        --quote;
        if (text_[quote] != '"') continue;
        std::size_t backslashes = 0;
        while (backslashes < quote && text_[quote - 1 - backslashes] == '\\') ++backslashes;
        if (backslashes % 2 == 0) break;
      }
      problem(located(pointer(false) + "/" + pointer_token(key), quote), "duplicate key '" + excerpt(key) + "'",
              "a key may appear only once in an object (a JSON reader would silently keep one of the values): "
              "remove or rename one");
    }
    keys_.back() = key;
    pending_ = &object[key];  // the duplicate's value replaces the first: the document is refused anyway
    return problems_.size() < PipelineLimits::max_diagnostics;
  }

  bool parse_error(std::size_t position, const std::string& last_token, const json::exception& error) override {
    constexpr int kNumberOverflow = 406;  // nlohmann's out_of_range.406
    if (error.id == kNumberOverflow) {
      const std::size_t start = position >= last_token.size() ? position - last_token.size() : 0;
      problem(located(pointer(), start),
              "number " + excerpt(last_token) + " is beyond the range of a double (about 1.8e308)",
              "write a smaller number");
      return false;
    }
    // nlohmann reports the byte after the offending token; point at it.
    const std::size_t at = position > 0 ? position - 1 : 0;
    std::string message = error.what();
    const std::size_t prefix = message.find("syntax error");
    if (prefix != std::string::npos) message = message.substr(prefix);
    // The token read last can be a whole (megabytes long) string: keep its
    // end, where the problem is.
    const std::size_t last_read = message.find("; last read: '");
    if (last_read != std::string::npos && last_token.size() > 80) {
      std::size_t cut = last_token.size() - 40;
      while (cut < last_token.size() && (static_cast<unsigned char>(last_token[cut]) & 0xC0) == 0x80) ++cut;
      message = message.substr(0, last_read) + "; last read: '..." + last_token.substr(cut) + "' (" +
                std::to_string(last_token.size()) + " bytes)";
    }
    std::string hint = syntax_hint(at);
    if (message.find("invalid string") != std::string::npos) {
      hint = "strings must be UTF-8, with control characters escaped (\\t, \\n, \\u0001, ...)";
    }
    problem(line_and_column(text_, at), "invalid JSON: " + message, hint);
    return false;
  }

  json& document() { return root_; }
  std::vector<Diagnostic>& problems() { return problems_; }

 private:
  std::size_t offset() const { return static_cast<std::size_t>(read_to_ - text_.data()); }

  void problem(std::string location, std::string message, std::string hint) {
    problems_.push_back({std::move(location), std::move(message), std::move(hint)});
  }

  // "/nodes/0/params (line 3, column 7)"
  std::string located(const std::string& pointer, std::size_t at) const {
    const std::string position = line_and_column(text_, at);
    return pointer.empty() ? position : pointer + " (" + position + ")";
  }

  // The JSON pointer of the innermost open container (`of_value`: of the value
  // being read in it).
  std::string pointer(bool of_value = true) const {
    std::string text;
    const std::size_t levels = of_value ? stack_.size() : stack_.size() - 1;
    for (std::size_t level = 0; level < levels; ++level) {
      const json& container = *stack_[level];
      if (container.is_object()) {
        text += "/" + pointer_token(keys_[level]);
      } else {
        const bool being_read = level + 1 == stack_.size();  // not added yet
        text += "/" + std::to_string(being_read ? container.size() : container.size() - 1);
      }
    }
    return text;
  }

  std::string syntax_hint(std::size_t at) const {
    const char c = at < text_.size() ? text_[at] : '\0';
    if (c == '/') return "JSON has no comments: remove them (the pipeline and each node may have a \"description\")";
    if (c == '\'') return "JSON strings and keys take double quotes";
    if (c == '}' || c == ']') {
      std::size_t before = at;
      while (before > 0 && std::strchr(" \t\r\n", text_[before - 1]) != nullptr) --before;
      if (before > 0 && text_[before - 1] == ',') {
        return std::string("remove the comma before this '") + c + "': JSON allows no trailing commas";
      }
    }
    return "check for a missing comma, quote or bracket just before this point";
  }

  bool add(json&& value) {
    if (stack_.empty()) {
      root_ = std::move(value);
      return true;
    }
    json& container = *stack_.back();
    if (container.is_array()) {
      container.push_back(std::move(value));
    } else {
      *pending_ = std::move(value);
    }
    return true;
  }

  bool open(json&& container) {
    if (stack_.size() >= PipelineLimits::max_depth) {
      problem(located(pointer(), offset() - 1),
              "nesting deeper than " + std::to_string(PipelineLimits::max_depth) + " levels",
              "a pipeline nests objects and lists only a few levels deep: parameter values are numbers, strings, "
              "booleans or flat lists");
      return false;
    }
    json* slot = nullptr;
    if (stack_.empty()) {
      root_ = std::move(container);
      slot = &root_;
    } else if (stack_.back()->is_array()) {
      stack_.back()->push_back(std::move(container));
      slot = &stack_.back()->back();
    } else {
      *pending_ = std::move(container);
      slot = pending_;
    }
    stack_.push_back(slot);
    keys_.emplace_back();
    return true;
  }

  bool close() {
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }

  const std::string& text_;
  const char* const& read_to_;
  json root_;
  std::vector<json*> stack_;       // open containers, outermost first
  std::vector<std::string> keys_;  // per open container: the key being read (objects)
  json* pending_ = nullptr;        // where the value after the last key goes
  std::vector<Diagnostic> problems_;
};

bool only_white_space(const std::string& text) {
  const std::size_t start = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  return text.find_first_not_of(" \t\r\n", start) == std::string::npos;
}

}  // namespace

ParsedDocument parse_pipeline_json(const std::string& text) {
  ParsedDocument result;
  if (text.size() > PipelineLimits::max_file_bytes) {
    result.problems.push_back(too_large(text.size(), "the pipeline"));
    return result;
  }
  if (only_white_space(text)) {
    result.problems.push_back({"", text.empty() ? "the file is empty" : "the file holds only white space",
                               "a pipeline is a JSON object: start from an example in examples/pipelines/"});
    return result;
  }
  // nlohmann's lexer takes a NUL byte for the end of the input and would
  // accept whatever follows it.
  if (const void* nul = std::memchr(text.data(), '\0', text.size())) {
    const std::size_t at = static_cast<std::size_t>(static_cast<const char*>(nul) - text.data());
    result.problems.push_back({line_and_column(text, at), "the file contains a NUL byte",
                               "a pipeline is UTF-8 JSON text: is this a binary or UTF-16 file? (save it as UTF-8; "
                               "a NUL inside a string is written \\u0000)"});
    return result;
  }
  const char* read_to = text.data();
  DocumentBuilder builder(text, read_to);
  const TrackedIterator first(text.data(), &read_to), last(text.data() + text.size(), &read_to);
  json::sax_parse(first, last, &builder);
  result.problems = std::move(builder.problems());
  if (result.problems.size() >= PipelineLimits::max_diagnostics) {
    result.problems.push_back({"", "too many duplicate keys: stopped reading", "fix those listed first"});
  }
  if (result.problems.empty()) result.document = std::move(builder.document());
  return result;
}

}  // namespace fusionflow::detail
