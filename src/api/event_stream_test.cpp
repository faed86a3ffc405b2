// The event stream answer over a real server and socket, with the in-process events.
#include "api/event_stream.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "queue/memory_events.h"

namespace transnotes::api {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Reads what arrives on a raw connection until `until` has been seen or the time is up.
class RawClient {
 public:
  RawClient(std::uint16_t port, const std::string& request)
      : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
    ::send(fd_, request.data(), request.size(), MSG_NOSIGNAL);
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool wait_for(const std::string& until, std::chrono::milliseconds limit = 10s) {
    const auto deadline = Clock::now() + limit;
    while (seen_.find(until, from_) == std::string::npos) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      char buf[4096];
      const auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return false;
      seen_.append(buf, static_cast<std::size_t>(n));
    }
    from_ = seen_.find(until, from_) + until.size();
    return true;
  }
  const std::string& seen() const { return seen_; }

 private:
  int fd_;
  std::string seen_;
  std::size_t from_ = 0;
};

class EventStreamTest : public ::testing::Test {
 protected:
  void start(std::chrono::milliseconds keepalive) {
    http::ServerOptions options;
    options.port = 0;
    options.threads = 1;
    server_ = std::make_unique<http::Server>(options, [this, keepalive](const http::Request& r) {
      EventStreamOptions stream_options;
      stream_options.keepalive = keepalive;
      return event_stream(events_, 7, r, stream_options);
    });
    server_->start();
  }
  void TearDown() override {
    if (server_) server_->stop();
  }
  std::string request(const std::string& last_event_id = "") {
    std::string out = "GET /api/v1/events/ HTTP/1.1\r\nHost: x\r\n";
    if (!last_event_id.empty()) out += "Last-Event-ID: " + last_event_id + "\r\n";
    return out + "\r\n";
  }

  queue::MemoryUserEvents events_;
  std::unique_ptr<http::Server> server_;
};

TEST(EventFormat, IsIdEventAndDataLines) {
  EXPECT_EQ(format_event(UserEvent{42, "job", R"({"id":1})"}),
            "id: 42\nevent: job\ndata: {\"id\":1}\n\n");
}

TEST_F(EventStreamTest, HeadersEventsAndKeepAliveAtTheConfiguredInterval) {
  start(100ms);
  RawClient client(server_->port(), request());
  ASSERT_TRUE(client.wait_for("\r\n\r\n"));
  EXPECT_NE(client.seen().find("Content-Type: text/event-stream"), std::string::npos);
  EXPECT_NE(client.seen().find("Cache-Control: no-cache"), std::string::npos);
  EXPECT_NE(client.seen().find("X-Accel-Buffering: no"), std::string::npos);
  EXPECT_TRUE(client.wait_for(": keep-alive\n\n"));
  // The first comment came, so the stream (and its subscription) is open.
  events_.publish(7, "note", R"({"action":"created"})");
  events_.publish(8, "note", R"({"action":"someone else's"})");
  events_.publish(7, "job", R"({"status":"queued"})");
  EXPECT_TRUE(client.wait_for("event: note\ndata: {\"action\":\"created\"}\n\n"));
  EXPECT_TRUE(client.wait_for("event: job\ndata: {\"status\":\"queued\"}\n\n"));
  EXPECT_EQ(client.seen().find("someone else"), std::string::npos);
  EXPECT_TRUE(client.wait_for(": keep-alive\n\n"));
}

TEST_F(EventStreamTest, AMalformedLastEventIdGetsAReset) {
  start(15s);
  RawClient client(server_->port(), request("not-a-number"));
  EXPECT_TRUE(client.wait_for("event: reset\ndata: {}\n\n")) << client.seen();
}

}  // namespace
}  // namespace transnotes::api
