// The log lines as a collector reads them: real files, parsed back with Boost.JSON.
#include "logging/logging.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "logging/access_log.h"
#include "logging/line_format.h"

namespace transnotes::logging {
namespace {

using namespace std::chrono_literals;

// A temporary file the log is written to, read back line by line.
class LogFile {
 public:
  LogFile() {
    char name[] = "/tmp/transnotes-log-XXXXXX";
    fd_ = ::mkstemp(name);
    path_ = name;
  }
  ~LogFile() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  LogFile(const LogFile&) = delete;
  LogFile& operator=(const LogFile&) = delete;

  int fd() const { return fd_; }
  std::vector<std::string> lines() const {
    std::ifstream in(path_);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
  std::vector<boost::json::object> json_lines() const {
    std::vector<boost::json::object> out;
    for (const auto& line : lines()) out.push_back(boost::json::parse(line).as_object());
    return out;
  }

 private:
  int fd_ = -1;
  std::string path_;
};

class LoggingTest : public ::testing::Test {
 protected:
  void TearDown() override { configure_logging(LogFormat::text, spdlog::level::info); }
  LogFile file_;
};

// Whether `text` has the shape of `pattern`, where '9' stands for any digit.
bool has_shape(std::string_view text, std::string_view pattern) {
  if (text.size() != pattern.size()) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool digit = text[i] >= '0' && text[i] <= '9';
    if (pattern[i] == '9' ? !digit : text[i] != pattern[i]) return false;
  }
  return true;
}
constexpr std::string_view kUtcTime = "9999-99-99T99:99:99.999999Z";
constexpr std::string_view kTextPrefix = "[9999-99-99 99:99:99.999] ";

// A text line: the local time in its shape, then exactly `rest`.
void expect_text_line(const std::string& line, std::string_view rest) {
  EXPECT_TRUE(has_shape(line.substr(0, kTextPrefix.size()), kTextPrefix)) << line;
  EXPECT_EQ(line.substr(std::min(line.size(), kTextPrefix.size())), rest);
}

std::string text_of(const boost::json::object& line, std::string_view key) {
  const auto* value = line.if_contains(key);
  return value && value->is_string() ? std::string(value->as_string()) : "<absent>";
}

TEST(LogFormatNames, ParseAndPrint) {
  EXPECT_EQ(parse_log_format("json"), LogFormat::json);
  EXPECT_EQ(parse_log_format("text"), LogFormat::text);
  EXPECT_EQ(parse_log_format("JSON"), std::nullopt);
  EXPECT_EQ(parse_log_format(""), std::nullopt);
  EXPECT_EQ(to_string(LogFormat::json), "json");
  EXPECT_EQ(default_log_format(), ::isatty(STDERR_FILENO) == 1 ? LogFormat::text : LogFormat::json);
}

TEST_F(LoggingTest, JsonLinesCarryTimeLevelMessageAndFields) {
  configure_logging(LogFormat::json, spdlog::level::info, file_.fd());
  spdlog::debug("below the level");
  spdlog::info("translated {} segments", 3);
  log_with_fields(spdlog::level::warn, "slow job", {{"job_id", "42"}, {"engine", "marian"}});
  const auto lines = file_.json_lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(text_of(lines[0], "level"), "info");
  EXPECT_EQ(text_of(lines[0], "message"), "translated 3 segments");
  EXPECT_TRUE(has_shape(text_of(lines[0], "time"), kUtcTime)) << text_of(lines[0], "time");
  EXPECT_EQ(lines[0].size(), 3u);
  EXPECT_EQ(text_of(lines[1], "level"), "warning");
  EXPECT_EQ(text_of(lines[1], "job_id"), "42");
  EXPECT_EQ(text_of(lines[1], "engine"), "marian");
}

TEST_F(LoggingTest, AnyBytesMakeValidJson) {
  configure_logging(LogFormat::json, spdlog::level::info, file_.fd());
  std::string every_byte;
  for (int c = 0; c < 256; ++c) every_byte.push_back(static_cast<char>(c));
  spdlog::info("{}", every_byte);
  const std::string kept = "quote\" backslash\\ newline\n tab\t bell\x07 del\x7f é € 𝄞";
  spdlog::info("{}", kept);
  // Overlong, surrogate, truncated, above U+10FFFF, stray continuation: each byte becomes U+FFFD.
  log_with_fields(spdlog::level::info, "bad",
                  {{"overlong", "\xC0\xAF"},
                   {"surrogate", "\xED\xA0\x80"},
                   {"truncated", "a\xE2\x82"},
                   {"too_high", "\xF4\x90\x80\x80"},
                   {"continuation", "\x80z"},
                   {"key \"quoted\"\n", "v"}});
  const auto lines = file_.json_lines();  // throws, failing the test, on invalid JSON
  ASSERT_EQ(lines.size(), 3u);
  const std::string first = text_of(lines[0], "message");
  EXPECT_EQ(first.substr(0, 128), every_byte.substr(0, 128));
  EXPECT_EQ(text_of(lines[1], "message"), kept);
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(text_of(lines[2], "overlong"), fffd + fffd);
  EXPECT_EQ(text_of(lines[2], "surrogate"), fffd + fffd + fffd);
  EXPECT_EQ(text_of(lines[2], "truncated"), "a" + fffd + fffd);
  EXPECT_EQ(text_of(lines[2], "too_high"), fffd + fffd + fffd + fffd);
  EXPECT_EQ(text_of(lines[2], "continuation"), fffd + "z");
  EXPECT_EQ(text_of(lines[2], "key \"quoted\"\n"), "v");
  // Every raw line is one line: no control character survived unescaped.
  for (const auto& raw : file_.lines()) {
    for (const char c : raw) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << raw;
  }
}

// Plain stretches are scanned eight bytes at a time: a byte that needs escaping must be found at
// every position of a word, and judged as it would be alone.
TEST(LineFormat, EveryByteAtEveryPositionIsEscapedAsAlone) {
  const std::string plain = "abcdefghijklmnopqrstuvwx";
  for (int c = 0; c < 256; ++c) {
    for (std::size_t at = 0; at < plain.size(); ++at) {
      std::string value = plain;
      value[at] = static_cast<char>(c);
      std::string expected_json = "\"", expected_text;
      for (const char ch : value) {
        std::string alone;
        append_json_string(alone, std::string_view(&ch, 1));
        expected_json += alone.substr(1, alone.size() - 2);
        append_text_message(expected_text, std::string_view(&ch, 1));
      }
      expected_json += "\"";
      std::string json, text;
      append_json_string(json, value);
      append_text_message(text, value);
      ASSERT_EQ(json, expected_json) << "byte " << c << " at " << at;
      ASSERT_EQ(text, expected_text) << "byte " << c << " at " << at;
    }
  }
}

TEST_F(LoggingTest, ContextFieldsLastForTheirScopeOnTheirThread) {
  configure_logging(LogFormat::json, spdlog::level::info, file_.fd());
  {
    ScopedLogContext request("request_id", "req-1");
    spdlog::info("outer");
    {
      ScopedLogContext job(LogFields{{"job_id", "7"}, {"request_id", "req-2"}});
      spdlog::info("inner");
      std::thread([] { spdlog::info("other thread"); }).join();
    }
    spdlog::info("outer again");
    EXPECT_EQ(current_log_context().size(), 1u);
  }
  spdlog::info("none");
  EXPECT_TRUE(current_log_context().empty());
  const auto lines = file_.json_lines();
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(text_of(lines[0], "request_id"), "req-1");
  EXPECT_EQ(text_of(lines[0], "job_id"), "<absent>");
  // The inner scope's request_id replaces the outer one: one key, once.
  EXPECT_EQ(text_of(lines[1], "request_id"), "req-2");
  EXPECT_EQ(text_of(lines[1], "job_id"), "7");
  EXPECT_EQ(file_.lines()[1].find("req-1"), std::string::npos) << file_.lines()[1];
  EXPECT_EQ(text_of(lines[2], "message"), "other thread");
  EXPECT_EQ(text_of(lines[2], "request_id"), "<absent>");
  EXPECT_EQ(text_of(lines[3], "request_id"), "req-1");
  EXPECT_EQ(text_of(lines[3], "job_id"), "<absent>");
  EXPECT_EQ(text_of(lines[4], "request_id"), "<absent>");
}

TEST_F(LoggingTest, TextKeepsItsLookWithFieldsAfterTheMessage) {
  configure_logging(LogFormat::text, spdlog::level::info, file_.fd());
  ScopedLogContext request("request_id", "abc");
  log_with_fields(spdlog::level::info, "job done", {{"note", "a b"}, {"empty", ""}});
  spdlog::error("two\nlines");
  const auto lines = file_.lines();
  ASSERT_EQ(lines.size(), 2u);
  expect_text_line(lines[0], "[transnotes] [info] job done request_id=abc note=\"a b\" empty=\"\"");
  EXPECT_NE(lines[1].find("[error] two\\nlines request_id=abc"), std::string::npos) << lines[1];
}

AccessEntry sample_entry() {
  AccessEntry entry;
  entry.method = "GET";
  entry.route = "/api/v1/notes/{id}/";
  entry.status = 200;
  entry.duration = 1234us;
  entry.bytes = 224;
  entry.request_id = "0123456789abcdef0123456789abcdef";
  entry.user_id = "17";
  entry.remote_address = "127.0.0.1";
  return entry;
}

TEST_F(LoggingTest, AccessLinesCarryTheRequestFields) {
  configure_logging(LogFormat::json, spdlog::level::info, file_.fd());
  {
    AccessLog access;
    access.record(sample_entry());
    auto anonymous = sample_entry();
    anonymous.user_id = "";
    anonymous.route = "";
    anonymous.method = "B\"AD";
    access.record(anonymous);
  }
  const auto lines = file_.json_lines();
  ASSERT_EQ(lines.size(), 2u);
  const auto& line = lines[0];
  EXPECT_EQ(text_of(line, "message"), "request");
  EXPECT_EQ(text_of(line, "level"), "info");
  EXPECT_EQ(text_of(line, "method"), "GET");
  EXPECT_EQ(text_of(line, "route"), "/api/v1/notes/{id}/");
  EXPECT_EQ(line.at("status").as_int64(), 200);
  EXPECT_DOUBLE_EQ(line.at("duration_ms").as_double(), 1.234);
  EXPECT_EQ(line.at("bytes").as_int64(), 224);
  EXPECT_EQ(text_of(line, "request_id"), "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(text_of(line, "user_id"), "17");
  EXPECT_EQ(text_of(line, "remote_address"), "127.0.0.1");
  EXPECT_TRUE(has_shape(text_of(line, "time"), kUtcTime)) << text_of(line, "time");
  EXPECT_EQ(line.size(), 11u);
  EXPECT_EQ(text_of(lines[1], "user_id"), "<absent>");
  EXPECT_EQ(text_of(lines[1], "route"), "");
  EXPECT_EQ(text_of(lines[1], "method"), "B\"AD");
}

TEST_F(LoggingTest, AccessLinesInTextFormat) {
  configure_logging(LogFormat::text, spdlog::level::info, file_.fd());
  {
    AccessLog access;
    access.record(sample_entry());
  }
  const auto lines = file_.lines();
  ASSERT_EQ(lines.size(), 1u);
  expect_text_line(lines[0],
                   "[transnotes] [info] request method=GET route=/api/v1/notes/{id}/ status=200 "
                   "duration_ms=1.234 bytes=224 request_id=0123456789abcdef0123456789abcdef "
                   "user_id=17 remote_address=127.0.0.1");
}

// Nothing is written until shutdown (the interval is an hour): every line recorded by every
// thread is there afterwards, whole.
TEST_F(LoggingTest, AccessLinesAreAllWrittenAtShutdown) {
  configure_logging(LogFormat::json, spdlog::level::info, file_.fd());
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  {
    AccessLogOptions options;
    options.flush_interval = std::chrono::hours(1);
    options.flush_threshold_bytes = 1 << 30;
    options.max_buffer_bytes = 1 << 30;
    AccessLog access(options);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&access, t] {
        auto entry = sample_entry();
        const std::string id = "thread-" + std::to_string(t);
        entry.request_id = id;
        for (int i = 0; i < kPerThread; ++i) {
          entry.bytes = static_cast<std::uint64_t>(i);
          access.record(entry);
        }
      });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_TRUE(file_.lines().empty());
  }
  const auto lines = file_.json_lines();
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(kThreads * kPerThread));
  std::vector<std::int64_t> next(kThreads, 0);
  for (const auto& line : lines) {
    const int t = std::stoi(text_of(line, "request_id").substr(7));
    // Each thread's lines stay in the order it recorded them.
    EXPECT_EQ(line.at("bytes").as_int64(), next[static_cast<std::size_t>(t)]++);
  }
}

// Without a flush or shutdown, a line reaches the output within the flush interval.
TEST_F(LoggingTest, AccessLinesAreWrittenByTheBackgroundWriter) {
  configure_logging(LogFormat::json, spdlog::level::info, file_.fd());
  AccessLogOptions options;
  options.flush_interval = 20ms;
  AccessLog access(options);
  access.record(sample_entry());
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (file_.lines().empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(file_.lines().size(), 1u);
}

// A writer that does not keep up costs lines, never unbounded memory; what is dropped is counted
// and reported.
TEST_F(LoggingTest, AccessLinesBeyondTheBufferBoundAreDroppedAndCounted) {
  configure_logging(LogFormat::json, spdlog::level::info, file_.fd());
  constexpr int kRecorded = 100;
  std::uint64_t dropped = 0;
  {
    AccessLogOptions options;
    options.flush_interval = std::chrono::hours(1);
    options.max_buffer_bytes = 2000;  // room for a handful of lines
    AccessLog access(options);
    for (int i = 0; i < kRecorded; ++i) access.record(sample_entry());
    access.flush();
    dropped = access.dropped_lines();
  }
  const auto lines = file_.json_lines();
  EXPECT_GT(dropped, 0u);
  std::size_t requests = 0, warnings = 0;
  for (const auto& line : lines) {
    if (text_of(line, "message") == "request") ++requests;
    if (text_of(line, "level") == "warning" &&
        text_of(line, "message").find(std::to_string(dropped) + " lines dropped") !=
            std::string::npos) {
      ++warnings;
    }
  }
  EXPECT_EQ(requests + dropped, static_cast<std::size_t>(kRecorded));
  EXPECT_EQ(warnings, 1u);
}

TEST_F(LoggingTest, AccessLinesFollowTheLogLevel) {
  configure_logging(LogFormat::json, spdlog::level::warn, file_.fd());
  {
    AccessLog access;
    access.record(sample_entry());
  }
  EXPECT_TRUE(file_.lines().empty());
}

// An AccessLog given its own fd writes there, in the format asked for.
TEST_F(LoggingTest, AccessLogToItsOwnFile) {
  configure_logging(LogFormat::text, spdlog::level::info, file_.fd());
  LogFile own;
  {
    AccessLogOptions options;
    options.fd = own.fd();
    options.format = LogFormat::json;
    AccessLog access(options);
    access.record(sample_entry());
  }
  EXPECT_TRUE(file_.lines().empty());
  ASSERT_EQ(own.json_lines().size(), 1u);
}

}  // namespace
}  // namespace transnotes::logging
