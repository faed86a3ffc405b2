// ApertiumEngine: rule-based translation with the installed Apertium language data.
// Pairs come from the mode files (`<modes_dir>/eng-spa.mode` -> en->es; variant modes with
// '_' such as spa-eng_US are skipped). Each pair keeps a small pool of long-lived pipelines
// in null-flush mode, started on first use; a dead or hung pipeline is killed, restarted and
// the segment retried once before TranslationFailed. Thread-safe. SIGPIPE-safe (writes block
// SIGPIPE for the writing thread), so the server need not ignore SIGPIPE for this engine.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "translation/engine.h"

namespace transnotes::translation {

struct ApertiumOptions {
  std::string modes_dir = "/usr/share/apertium/modes";
  // Pipelines per pair at most (size it like the number of translation worker threads).
  std::size_t pipelines_per_pair = 2;
  // Longest wait for one segment's answer before the pipeline counts as hung.
  std::chrono::milliseconds segment_timeout{30000};
  // Apertium marks unknown words with '*' when true; off by default (apertium -u).
  bool mark_unknown_words = false;
};

class ApertiumEngine : public Engine {
 public:
  // Scans the modes directory (a missing directory means no pairs); starts no process.
  explicit ApertiumEngine(ApertiumOptions options = {});
  ~ApertiumEngine() override;

  std::string name() const override { return "apertium"; }
  std::vector<LanguagePair> pairs() const override;
  // Throws TranslationFailed for an unknown pair or a pipeline failing twice.
  std::vector<std::string> translate_batch(const std::string& source, const std::string& target,
                                           const std::vector<std::string>& segments) override;

  // Kills the pipelines translating now (their process groups), and refuses later batches.
  void abandon() override;

  // Diagnostics / tests: process-group ids of the pair's currently idle pipelines.
  std::vector<pid_t> idle_pipeline_groups(const std::string& source,
                                          const std::string& target) const;

  // The mode file's pipeline with "-z" added after every program (null-flush everywhere).
  static std::string null_flush_command(const std::string& mode_pipeline);
  // Apertium stream format for one plain-text segment, and back (exposed for tests).
  static std::string encode_segment(const std::string& segment);
  static std::string decode_segment(const std::string& answer);

 private:
  class Pool;
  class InFlight;
  ApertiumOptions options_;
  std::atomic<bool> abandoned_{false};
  std::mutex in_flight_mutex_;
  std::multiset<pid_t> in_flight_;  // process groups of pipelines inside translate_batch
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Pool>> pools_;  // fixed at start
};

}  // namespace transnotes::translation
