#include "logging/logging.h"

#include <spdlog/details/log_msg.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>

#include "logging/line_format.h"

namespace transnotes::logging {

using namespace std::string_view_literals;

namespace {

thread_local std::vector<LogFieldView> t_context;
// Fields of one log_with_fields() call, after the context's.
thread_local std::initializer_list<LogFieldView> t_line_fields;

struct Configuration {
  std::mutex mutex;
  LogFormat format = LogFormat::text;
  std::shared_ptr<LogOutput> output = std::make_shared<LogOutput>(STDERR_FILENO);
};

// Never destroyed: threads may log while static objects are torn down.
Configuration& configuration() {
  static auto* config = new Configuration;
  return *config;
}

constexpr std::string_view kLoggerName = "transnotes";

bool is_reserved_key(std::string_view key) {
  return key == "time" || key == "level" || key == "message";
}

// Calls emit(key, value) for the context's fields and then the line's own, skipping one that a
// later field of the same key replaces, and the keys every line has already.
template <class Emit>
void for_each_field(Emit emit) {
  const auto& context = t_context;
  const auto& own = t_line_fields;
  const std::size_t total = context.size() + own.size();
  const auto at = [&](std::size_t i) -> const LogFieldView& {
    return i < context.size() ? context[i] : own.begin()[i - context.size()];
  };
  for (std::size_t i = 0; i < total; ++i) {
    const auto& [key, value] = at(i);
    if (is_reserved_key(key)) continue;
    bool replaced = false;
    for (std::size_t later = i + 1; later < total && !replaced; ++later) {
      replaced = at(later).first == key;
    }
    if (!replaced) emit(key, value);
  }
}

void render_text(std::string& line, const spdlog::details::log_msg& msg, bool colour) {
  line.push_back('[');
  append_local_timestamp(line, msg.time);
  line.append("] ["sv);
  line.append(msg.logger_name.data(), msg.logger_name.size());
  line.append("] ["sv);
  const auto level_name = spdlog::level::to_string_view(msg.level);
  const auto start_colour = colour ? level_colour(msg.level) : std::string_view{};
  line.append(start_colour);
  line.append(level_name.data(), level_name.size());
  if (!start_colour.empty()) line.append(kColourReset);
  line.append("] "sv);
  append_text_message(line, std::string_view(msg.payload.data(), msg.payload.size()));
  for_each_field([&](std::string_view key, std::string_view value) {
    line.push_back(' ');
    append_text_message(line, key);
    line.push_back('=');
    append_text_value(line, value);
  });
  line.push_back('\n');
}

void render_json(std::string& line, const spdlog::details::log_msg& msg) {
  line.append(R"({"time":")"sv);
  append_utc_timestamp(line, msg.time);
  line.append(R"(","level":")"sv);
  const auto level_name = spdlog::level::to_string_view(msg.level);
  line.append(level_name.data(), level_name.size());
  line.append(R"(","message":)"sv);
  append_json_string(line, std::string_view(msg.payload.data(), msg.payload.size()));
  for_each_field([&](std::string_view key, std::string_view value) {
    line.push_back(',');
    append_json_string(line, key);
    line.push_back(':');
    append_json_string(line, value);
  });
  line.append("}\n"sv);
}

// Renders on the logging thread (so it sees that thread's context) and writes each line whole.
class LineSink final : public spdlog::sinks::sink {
 public:
  LineSink(LogFormat format, std::shared_ptr<LogOutput> output)
      : format_(format), colour_(output->is_terminal()), output_(std::move(output)) {}

  void log(const spdlog::details::log_msg& msg) override {
    thread_local std::string line;
    line.clear();
    if (format_ == LogFormat::json) {
      render_json(line, msg);
    } else {
      render_text(line, msg, colour_);
    }
    output_->write(line);
  }
  void flush() override {}  // every line is written as it is logged
  // The format is chosen by configure_logging(), not by spdlog patterns.
  void set_pattern(const std::string&) override {}
  void set_formatter(std::unique_ptr<spdlog::formatter>) override {}

 private:
  LogFormat format_;
  bool colour_;
  std::shared_ptr<LogOutput> output_;
};

}  // namespace

std::optional<LogFormat> parse_log_format(std::string_view name) {
  if (name == "text") return LogFormat::text;
  if (name == "json") return LogFormat::json;
  return std::nullopt;
}

std::string_view to_string(LogFormat format) { return format == LogFormat::json ? "json" : "text"; }

LogFormat default_log_format() {
  return ::isatty(STDERR_FILENO) == 1 ? LogFormat::text : LogFormat::json;
}

void configure_logging(LogFormat format, spdlog::level::level_enum level, int fd) {
  auto output = std::make_shared<LogOutput>(fd);
  auto logger = std::make_shared<spdlog::logger>(std::string(kLoggerName),
                                                 std::make_shared<LineSink>(format, output));
  logger->set_level(level);
  {
    auto& config = configuration();
    std::lock_guard lock(config.mutex);
    config.format = format;
    config.output = std::move(output);
  }
  spdlog::set_default_logger(std::move(logger));
}

LogFormat configured_log_format() {
  auto& config = configuration();
  std::lock_guard lock(config.mutex);
  return config.format;
}

std::shared_ptr<LogOutput> configured_output() {
  auto& config = configuration();
  std::lock_guard lock(config.mutex);
  return config.output;
}

std::string_view configured_logger_name() { return kLoggerName; }

ScopedLogContext::ScopedLogContext(std::string_view key, std::string_view value)
    : restore_size_(t_context.size()) {
  t_context.emplace_back(key, value);
}

ScopedLogContext::ScopedLogContext(LogFields fields)
    : owned_(std::move(fields)), restore_size_(t_context.size()) {
  for (const auto& [key, value] : owned_) t_context.emplace_back(key, value);
}

ScopedLogContext::~ScopedLogContext() { t_context.resize(restore_size_); }

const std::vector<LogFieldView>& current_log_context() { return t_context; }

void log_with_fields(spdlog::level::level_enum level, std::string_view message,
                     std::initializer_list<LogFieldView> fields) {
  auto* logger = spdlog::default_logger_raw();
  if (!logger->should_log(level)) return;
  const auto previous = std::exchange(t_line_fields, fields);
  logger->log(level, spdlog::string_view_t(message.data(), message.size()));
  t_line_fields = previous;
}

}  // namespace transnotes::logging
