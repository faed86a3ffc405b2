// Fuzzes the HTTP/1.1 server (http/server.h) with raw bytes from a client: request lines,
// headers, Content-Length and chunked framing, chunk extensions and trailers, Expect, pipelined
// requests, and the early-error paths (400, 413, 431). The server parses only what arrives on a
// socket, so each input goes to a real Server over loopback: the client writes it, closes its
// sending side and reads until the server closes.
//
// Checked: every request the handler sees is within the limits, no answer is a 500, every answer
// starts as an HTTP/1.1 status line, and the server closes the connection once the client's
// bytes end (a server that waits on would hang the input: a finding, through -timeout).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "http/server.h"

namespace {

using namespace transnotes;

// Small limits, so that inputs of a few kilobytes reach them.
constexpr std::size_t kMaxBodyBytes = 2048;
constexpr std::size_t kMaxHeaderBytes = 1024;

http::Response describe(const http::Request& request) {
  if (request.method.empty() || request.body.size() > kMaxBodyBytes) __builtin_trap();
  std::size_t header_bytes = 0;
  for (const auto& [name, value] : request.headers) {
    if (name.empty()) __builtin_trap();
    header_bytes += name.size() + value.size();
  }
  if (header_bytes > kMaxHeaderBytes) __builtin_trap();
  // Sizes only: an echo of the request could itself look like a status line.
  return http::Response{200,
                        "{\"target\":" + std::to_string(request.target.size()) +
                            ",\"headers\":" + std::to_string(request.headers.size()) +
                            ",\"body\":" + std::to_string(request.body.size()) + "}",
                        "application/json",
                        {}};
}

http::Server& server() {
  static http::Server* running = [] {
    http::ServerOptions options;
    options.port = 0;
    options.threads = 1;
    options.max_body_bytes = kMaxBodyBytes;
    options.max_header_bytes = kMaxHeaderBytes;
    options.read_timeout = std::chrono::milliseconds(2000);
    options.linger_time = std::chrono::milliseconds(500);
    options.linger_timeout = std::chrono::milliseconds(200);
    // Never stopped: it serves until the process exits.
    auto* s = new http::Server(options, describe);
    s->start();
    return s;
  }();
  return *running;
}

int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) std::abort();
  // Closed with a reset once the answer is read: the client side then keeps no TIME_WAIT entry,
  // which a thousand connections a second would otherwise pile up until the ports run out.
  const linger reset{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    // libFuzzer's -timeout alarm interrupts system calls; an interrupted connect goes on in the
    // background and tells its outcome through SO_ERROR once the socket is writable.
    int error = errno;
    if (error == EINTR) {
      pollfd ready{fd, POLLOUT, 0};
      while (::poll(&ready, 1, -1) < 0 && errno == EINTR) {
      }
      socklen_t length = sizeof error;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
    }
    if (error != 0) {
      errno = error;
      std::perror("fuzz_http_request: connect");  // the harness failed, not the server
      std::abort();
    }
  }
  return fd;
}

// Every status line in `answers` that begins a response; false when one is malformed or a 500.
bool answers_are_sound(std::string_view answers) {
  if (answers.empty()) return true;  // the server may close at once, e.g. on a bare EOF
  if (!answers.starts_with("HTTP/1.")) return false;
  for (std::size_t at = 0; (at = answers.find("HTTP/1.", at)) != std::string_view::npos; at += 7) {
    const std::string_view status = answers.substr(at, 12);
    if (status.size() == 12 && status.substr(9, 3) == "500") return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const int fd = connect_to(server().port());
  // The server may answer (and close) before all was sent: a failed send is not a finding.
  std::size_t sent = 0;
  while (sent < size) {
    const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::string answers;
  char chunk[16 * 1024];
  for (;;) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // closed (or reset after an early answer)
    answers.append(chunk, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (!answers_are_sound(answers)) __builtin_trap();
  return 0;
}
