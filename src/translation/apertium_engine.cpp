#include "translation/apertium_engine.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "domain/errors.h"
#include "translation/apertium_pipeline.h"
#include "translation/language_codes.h"

namespace transnotes::translation {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::string trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return std::string(text);
}

bool is_apertium_code(std::string_view code) {
  if (code.size() < 2 || code.size() > 3) return false;
  return std::all_of(code.begin(), code.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

// The ".[]" Apertium's txt deformatter appends: a sentence end for the tagger plus an empty
// superblank, so the last word is complete when the NUL flush arrives.
constexpr std::string_view kBlockEnd = ".[]";

}  // namespace

// Idle pipelines of one pair plus a cap on how many exist. Thread-safe.
class ApertiumEngine::Pool {
 public:
  Pool(std::string command, std::size_t capacity)
      : command_(std::move(command)), capacity_(capacity) {}

  // Blocks until a pipeline is idle or one more may be started. May return null: the caller
  // starts a new pipeline in that slot.
  std::unique_ptr<ApertiumPipeline> acquire() {
    std::unique_lock lock(mutex_);
    available_.wait(lock, [this] { return !idle_.empty() || in_use_ + idle_.size() < capacity_; });
    ++in_use_;
    if (idle_.empty()) return nullptr;
    auto pipeline = std::move(idle_.back());
    idle_.pop_back();
    return pipeline;
  }
  // Returns the slot; a null pipeline (discarded) frees the slot for a new one.
  void release(std::unique_ptr<ApertiumPipeline> pipeline) {
    {
      std::lock_guard lock(mutex_);
      --in_use_;
      if (pipeline) idle_.push_back(std::move(pipeline));
    }
    available_.notify_one();
  }
  std::vector<pid_t> idle_groups() const {
    std::lock_guard lock(mutex_);
    std::vector<pid_t> groups;
    for (const auto& pipeline : idle_) groups.push_back(pipeline->process_group());
    return groups;
  }
  const std::string& command() const { return command_; }

 private:
  const std::string command_;
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<ApertiumPipeline>> idle_;
  std::size_t in_use_ = 0;
};

// The pipeline a translate_batch call is using, registered so abandon() can kill it. A pipeline
// is untracked before it is destroyed, so abandon() never signals a reaped (reusable) group id.
class ApertiumEngine::InFlight {
 public:
  explicit InFlight(ApertiumEngine& engine) : engine_(engine) {}
  ~InFlight() { set(nullptr); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

  void set(const ApertiumPipeline* pipeline) {
    std::lock_guard lock(engine_.in_flight_mutex_);
    if (group_ > 0) engine_.in_flight_.erase(engine_.in_flight_.find(group_));
    group_ = pipeline ? pipeline->process_group() : -1;
    if (group_ <= 0) return;
    engine_.in_flight_.insert(group_);
    // Started after abandon() made its sweep: it must not run to completion either.
    if (engine_.abandoned_) ::kill(-group_, SIGKILL);
  }

 private:
  ApertiumEngine& engine_;
  pid_t group_ = -1;
};

void ApertiumEngine::abandon() {
  std::lock_guard lock(in_flight_mutex_);
  abandoned_ = true;
  for (const pid_t group : in_flight_) ::kill(-group, SIGKILL);
}

ApertiumEngine::ApertiumEngine(ApertiumOptions options) : options_(std::move(options)) {
  options_.pipelines_per_pair = std::max<std::size_t>(1, options_.pipelines_per_pair);
  namespace fs = std::filesystem;
  std::error_code error;
  std::vector<fs::path> modes;
  for (fs::directory_iterator it(options_.modes_dir, error), end; !error && it != end;
       it.increment(error)) {
    if (it->path().extension() == ".mode") modes.push_back(it->path());
  }
  std::sort(modes.begin(), modes.end());
  for (const fs::path& mode : modes) {
    const std::string stem = mode.stem().string();
    const std::size_t dash = stem.find('-');
    if (dash == std::string::npos || stem.find('-', dash + 1) != std::string::npos) continue;
    const std::string from = stem.substr(0, dash);
    const std::string to = stem.substr(dash + 1);
    if (!is_apertium_code(from) || !is_apertium_code(to)) continue;  // e.g. spa-eng_US
    std::ifstream file(mode);
    std::stringstream content;
    content << file.rdbuf();
    const std::string pipeline = trim(content.str());
    if (pipeline.empty()) continue;
    pools_.try_emplace(
        {apertium_to_iso(from), apertium_to_iso(to)},
        std::make_unique<Pool>(null_flush_command(pipeline), options_.pipelines_per_pair));
  }
}

ApertiumEngine::~ApertiumEngine() = default;

std::vector<LanguagePair> ApertiumEngine::pairs() const {
  std::vector<LanguagePair> result;
  for (const auto& [key, pool] : pools_) result.push_back(LanguagePair{key.first, key.second});
  return result;
}

std::vector<pid_t> ApertiumEngine::idle_pipeline_groups(const std::string& source,
                                                        const std::string& target) const {
  const auto found = pools_.find({source, target});
  if (found == pools_.end()) return {};
  return found->second->idle_groups();
}

std::string ApertiumEngine::null_flush_command(const std::string& mode_pipeline) {
  // Split at '|' outside quotes; add "-z" after each stage's program unless present.
  std::vector<std::string> stages(1);
  char quote = 0;
  for (char c : mode_pipeline) {
    if (quote != 0) {
      if (c == quote) quote = 0;
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '|') {
      stages.emplace_back();
      continue;
    }
    stages.back().push_back(c == '\n' || c == '\r' ? ' ' : c);
  }
  std::string command;
  for (std::string& stage : stages) {
    stage = trim(stage);
    const std::string padded = " " + stage + " ";
    if (padded.find(" -z ") == std::string::npos) {
      std::size_t program_end = 0;
      while (program_end < stage.size() && !is_space(stage[program_end])) ++program_end;
      stage.insert(program_end, " -z");
    }
    if (!command.empty()) command += " | ";
    command += stage;
  }
  return command;
}

std::string ApertiumEngine::encode_segment(const std::string& segment) {
  std::string out;
  out.reserve(segment.size() + 16);
  for (char c : segment) {
    switch (c) {
      case '\0':
        break;  // NUL is the block delimiter: never sent
      case '\\':
      case '[':
      case ']':
      case '^':
      case '$':
      case '/':
      case '<':
      case '>':
      case '{':
      case '}':
      case '@':
        out.push_back('\\');
        out.push_back(c);
        break;
      case '\n':
      case '\r':
      case '\t':
      case '~':
        out.push_back('[');
        out.push_back(c);
        out.push_back(']');
        break;
      default:
        out.push_back(c);
    }
  }
  out.append(kBlockEnd);
  return out;
}

std::string ApertiumEngine::decode_segment(const std::string& answer) {
  std::string_view in(answer);
  if (in.size() >= kBlockEnd.size() && in.substr(in.size() - kBlockEnd.size()) == kBlockEnd) {
    in.remove_suffix(kBlockEnd.size());
  }
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '\\' && i + 1 < in.size()) {
      out.push_back(in[++i]);
    } else if (c == '[' || c == ']') {
      // superblank delimiters: keep their content only
    } else if (c == '@' && (out.empty() || is_space(out.back())) && i + 1 < in.size() &&
               !is_space(in[i + 1])) {
      // transfer mark for a word missing from the bilingual dictionary: drop the mark
    } else {
      out.push_back(c);
    }
  }
  return trim(out);
}

std::vector<std::string> ApertiumEngine::translate_batch(const std::string& source,
                                                         const std::string& target,
                                                         const std::vector<std::string>& segments) {
  const auto found = pools_.find({source, target});
  if (found == pools_.end()) {
    throw TranslationFailed("apertium cannot translate " + source + " -> " + target);
  }
  Pool& pool = *found->second;
  const std::string unknown_flag = options_.mark_unknown_words ? "-g" : "-n";
  const auto refuse_if_abandoned = [&] {
    if (abandoned_) {
      throw TranslationFailed("apertium " + source + "->" + target + " abandoned at shutdown");
    }
  };
  refuse_if_abandoned();
  std::unique_ptr<ApertiumPipeline> pipeline = pool.acquire();
  InFlight in_flight(*this);
  in_flight.set(pipeline.get());
  const auto discard_pipeline = [&] {
    in_flight.set(nullptr);
    pipeline.reset();  // kills and reaps the whole process group
  };
  // Blank segments are answered here; the others go to the pipeline all at once, so its
  // stages work on different segments of the batch at the same time.
  std::vector<std::string> translated(segments.size());
  std::vector<std::size_t> sent_index;
  std::vector<std::string> blocks;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (trim(segments[i]).empty()) {
      translated[i] = segments[i];
    } else {
      sent_index.push_back(i);
      blocks.push_back(encode_segment(segments[i]));
    }
  }
  std::size_t answered = 0;
  // The first unanswered block when the pipeline last failed: a block that fails a second time
  // ends the batch; any other failure restarts the pipeline and resends what is unanswered.
  std::size_t last_failure_at = blocks.size();
  try {
    while (answered < blocks.size()) {
      try {
        refuse_if_abandoned();
        if (!pipeline || !pipeline->alive()) {
          discard_pipeline();
          pipeline = std::make_unique<ApertiumPipeline>(pool.command(), unknown_flag);
          in_flight.set(pipeline.get());
        }
        const std::vector<std::string> unanswered(
            blocks.begin() + static_cast<std::ptrdiff_t>(answered), blocks.end());
        pipeline->exchange_all(unanswered, options_.segment_timeout,
                               [&](std::size_t, std::string&& answer) {
                                 translated[sent_index[answered++]] = decode_segment(answer);
                               });
      } catch (const PipelineError& error) {
        discard_pipeline();
        refuse_if_abandoned();
        const bool failed_twice = last_failure_at == answered;
        spdlog::warn("apertium {}->{} pipeline failed (attempt {}): {}", source, target,
                     failed_twice ? 2 : 1, error.what());
        if (failed_twice) {
          throw TranslationFailed("apertium " + source + "->" + target +
                                  " failed: " + error.what());
        }
        last_failure_at = answered;
      }
    }
  } catch (...) {
    if (abandoned_) discard_pipeline();
    in_flight.set(nullptr);
    pool.release(std::move(pipeline));
    throw;
  }
  in_flight.set(nullptr);
  pool.release(std::move(pipeline));
  return translated;
}

}  // namespace transnotes::translation
