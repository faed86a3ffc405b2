// One long-lived Apertium pipeline (`sh -c "<mode pipeline with -z>"`) in its own process
// group, spoken to in null-flush mode: each request is a NUL-terminated block of Apertium
// stream format, answered by a NUL-terminated block. Internal to ApertiumEngine.
// Not thread-safe: one caller at a time (the engine's pool hands each out exclusively).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace transnotes::translation {

// The pipeline died, hung, or broke protocol. The pipeline must be discarded.
class PipelineError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ApertiumPipeline {
 public:
  // Starts `/bin/sh -c shell_command sh <unknown_flag> ''` ($1 = generator flag, $2 = tagger
  // flag as in Apertium mode files). Throws PipelineError if it cannot be spawned.
  ApertiumPipeline(const std::string& shell_command, const std::string& unknown_flag);
  // Kills the whole process group and reaps the shell, and every stage that was re-parented to
  // this process (when it is PID 1 or a subreaper).
  ~ApertiumPipeline();
  ApertiumPipeline(const ApertiumPipeline&) = delete;
  ApertiumPipeline& operator=(const ApertiumPipeline&) = delete;

  // Sends `block` (must not contain NUL) and returns the answer without its NUL.
  // Throws PipelineError on EOF, EPIPE, timeout or I/O error.
  std::string exchange(std::string_view block, std::chrono::milliseconds timeout);
  // Sends every block without waiting for answers in between, so all stages of the pipeline
  // work at once on different blocks, and hands each answer to `on_answer(index, answer)` in
  // order as it arrives. `timeout` bounds the wait for each answer. Throws PipelineError as
  // exchange does; the answers handed over before the error are valid.
  void exchange_all(const std::vector<std::string>& blocks, std::chrono::milliseconds timeout,
                    const std::function<void(std::size_t, std::string&&)>& on_answer);
  // False once the shell has exited.
  bool alive();
  pid_t process_group() const { return pid_; }

 private:
  // Writes what the pipe takes now. False once the pipeline has closed its input (EPIPE): its
  // answers to what it did read may still be waiting to be read.
  bool write_some(std::string_view payload, std::size_t& written);
  void terminate();
  void reap_group();

  pid_t pid_ = -1;  // the shell; also the process group id
  int to_child_ = -1;
  int from_child_ = -1;
  bool reaped_ = false;
};

}  // namespace transnotes::translation
