#include "translation/apertium_pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <vector>

extern char** environ;

namespace transnotes::translation {
namespace {

std::string errno_text(const char* what, int error) {
  return std::string(what) + ": " + std::strerror(error);
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// write() that cannot raise SIGPIPE in this process: SIGPIPE is blocked for this thread during
// the call and a SIGPIPE it generated is consumed before unblocking. Returns write()'s result;
// errno as set by write().
ssize_t write_without_sigpipe(int fd, const char* data, std::size_t size) {
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &pipe_only, &previous);
  sigset_t pending;
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  const ssize_t result = ::write(fd, data, size);
  const int saved = errno;
  if (result < 0 && saved == EPIPE && !was_pending) {
    const timespec no_wait{0, 0};
    while (sigtimedwait(&pipe_only, nullptr, &no_wait) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  errno = saved;
  return result;
}

}  // namespace

ApertiumPipeline::ApertiumPipeline(const std::string& shell_command,
                                   const std::string& unknown_flag) {
  int input[2];
  int output[2];
  if (::pipe2(input, O_CLOEXEC) != 0) throw PipelineError(errno_text("pipe", errno));
  if (::pipe2(output, O_CLOEXEC) != 0) {
    const int error = errno;
    ::close(input[0]);
    ::close(input[1]);
    throw PipelineError(errno_text("pipe", error));
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, input[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, output[1], STDOUT_FILENO);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t no_signals;
  sigemptyset(&no_signals);
  sigset_t default_signals;
  sigemptyset(&default_signals);
  sigaddset(&default_signals, SIGPIPE);  // the server may ignore SIGPIPE; the children must not
  posix_spawnattr_setsigmask(&attributes, &no_signals);
  posix_spawnattr_setsigdefault(&attributes, &default_signals);
  posix_spawnattr_setpgroup(&attributes, 0);  // own group: kill(-pgid) reaches every stage
  posix_spawnattr_setflags(&attributes,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::string arg0 = "/bin/sh", arg1 = "-c", arg2 = shell_command, arg3 = "sh", arg4 = unknown_flag,
              arg5;
  std::vector<char*> argv = {arg0.data(), arg1.data(), arg2.data(), arg3.data(),
                             arg4.data(), arg5.data(), nullptr};
  const int spawned = posix_spawn(&pid_, "/bin/sh", &actions, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(input[0]);
  ::close(output[1]);
  to_child_ = input[1];
  from_child_ = output[0];
  if (spawned != 0) {
    pid_ = -1;
    close_fd(to_child_);
    close_fd(from_child_);
    throw PipelineError(errno_text("posix_spawn /bin/sh", spawned));
  }
  ::fcntl(to_child_, F_SETFL, ::fcntl(to_child_, F_GETFL) | O_NONBLOCK);
  ::fcntl(from_child_, F_SETFL, ::fcntl(from_child_, F_GETFL) | O_NONBLOCK);
}

ApertiumPipeline::~ApertiumPipeline() { terminate(); }

void ApertiumPipeline::terminate() {
  close_fd(to_child_);
  close_fd(from_child_);
  if (pid_ > 0 && !reaped_) reap_group();
}

void ApertiumPipeline::reap_group() {
  ::kill(-pid_, SIGKILL);
  // The stages are the shell's children. When this process is PID 1 (a container) or a child
  // subreaper, the shell's death re-parents them here, so they must be waited for here or they
  // stay <defunct>; otherwise waitpid soon answers ECHILD. Waiting on the group also reaps the
  // shell, and cannot take a child of anybody else's.
  for (;;) {
    const pid_t reaped = ::waitpid(-pid_, nullptr, 0);
    if (reaped > 0 || (reaped < 0 && errno == EINTR)) continue;
    break;
  }
  reaped_ = true;
}

bool ApertiumPipeline::alive() {
  if (pid_ <= 0 || reaped_) return false;
  int status = 0;
  const pid_t result = ::waitpid(pid_, &status, WNOHANG);
  if (result == pid_) {
    reap_group();  // stages that outlived the shell
    return false;
  }
  return result == 0;
}

bool ApertiumPipeline::write_some(std::string_view payload, std::size_t& written) {
  while (written < payload.size()) {
    const ssize_t n =
        write_without_sigpipe(to_child_, payload.data() + written, payload.size() - written);
    if (n > 0) {
      written += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n < 0 && errno == EPIPE) return false;
    throw PipelineError(errno_text("write to apertium", errno));
  }
  return true;
}

std::string ApertiumPipeline::exchange(std::string_view block, std::chrono::milliseconds timeout) {
  std::string result;
  exchange_all({std::string(block)}, timeout,
               [&result](std::size_t, std::string&& answer) { result = std::move(answer); });
  return result;
}

void ApertiumPipeline::exchange_all(
    const std::vector<std::string>& blocks, std::chrono::milliseconds timeout,
    const std::function<void(std::size_t, std::string&&)>& on_answer) {
  if (to_child_ < 0 || from_child_ < 0) throw PipelineError("apertium pipeline is closed");
  if (blocks.empty()) return;
  std::string payload;
  std::vector<std::size_t> block_ends;  // a block's answer may only come once it is all sent
  block_ends.reserve(blocks.size());
  for (const std::string& block : blocks) {
    payload.append(block).push_back('\0');
    block_ends.push_back(payload.size());
  }
  std::size_t written = 0;
  bool input_open = true;
  std::size_t answered = 0;
  std::string pending;  // bytes of answers not yet complete
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buffer[16384];
  while (answered < blocks.size()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw PipelineError("apertium timed out");
    pollfd fds[2] = {{from_child_, POLLIN, 0}, {to_child_, POLLOUT, 0}};
    const nfds_t count = input_open && written < payload.size() ? 2 : 1;
    const int ready = ::poll(fds, count, static_cast<int>(left.count()) + 1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      throw PipelineError(errno_text("poll", errno));
    }
    if (count == 2 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
      input_open = write_some(payload, written);
    }
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    const ssize_t n = ::read(from_child_, buffer, sizeof buffer);
    if (n == 0) throw PipelineError("apertium exited");
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      throw PipelineError(errno_text("read from apertium", errno));
    }
    std::size_t searched = pending.size();
    pending.append(buffer, static_cast<std::size_t>(n));
    for (;;) {
      const std::size_t nul = pending.find('\0', searched);
      if (nul == std::string::npos) break;
      if (answered >= blocks.size() || written < block_ends[answered]) {
        throw PipelineError("apertium answered out of step");
      }
      std::string answer = pending.substr(0, nul);
      pending.erase(0, nul + 1);
      searched = 0;
      on_answer(answered++, std::move(answer));
      deadline = std::chrono::steady_clock::now() + timeout;
    }
  }
  if (!pending.empty()) throw PipelineError("apertium answered out of step");
}

}  // namespace transnotes::translation
