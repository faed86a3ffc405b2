// The HTTP server over real loopback sockets: keep-alive, limits, malformed input.
#include "http/server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio.hpp>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace transnotes::http {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.port = 0;
    options.threads = 2;
    options.max_body_bytes = 1024;
    options.read_timeout = std::chrono::milliseconds(500);
    options.idle_timeout = std::chrono::milliseconds(500);
    server_ = std::make_unique<Server>(options, [](const Request& r) {
      if (r.target == "/throw") throw std::runtime_error("boom");
      return Response{
          200,
          r.method + " " + r.target + " " + r.body + " " + std::string(r.header("x-test")),
          "text/plain",
          {{"X-Reply", "yes"}}};
    });
    server_->start();
  }
  void TearDown() override { server_->stop(); }

  // Writes `bytes` on one connection and reads until the server closes or `until` appears.
  std::string exchange(const std::string& bytes, const std::string& until = "") {
    asio::io_context ioc;
    tcp::socket socket(ioc);
    socket.connect({asio::ip::make_address("127.0.0.1"), server_->port()});
    boost::system::error_code ec;
    asio::write(socket, asio::buffer(bytes), ec);
    std::string out;
    char buf[4096];
    for (;;) {
      std::size_t n = socket.read_some(asio::buffer(buf), ec);
      if (ec) break;
      out.append(buf, n);
      if (!until.empty() && out.find(until) != std::string::npos) break;
    }
    return out;
  }

  std::unique_ptr<Server> server_;
};

TEST_F(ServerTest, AnswersAndKeepsTheConnectionAlive) {
  std::string two =
      "GET /a HTTP/1.1\r\nHost: x\r\nX-Test: one\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
  auto out = exchange(two, "POST /b abc");
  EXPECT_NE(out.find("GET /a  one"), std::string::npos) << out;
  EXPECT_NE(out.find("POST /b abc"), std::string::npos) << out;
  EXPECT_NE(out.find("X-Reply: yes"), std::string::npos) << out;
}

TEST_F(ServerTest, ExpectContinueGetsAnInterimAnswer) {
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect({asio::ip::make_address("127.0.0.1"), server_->port()});
  asio::write(socket,
              asio::buffer(std::string("POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                       "Content-Length: 4\r\n\r\n")));
  char buf[256];
  std::size_t n = socket.read_some(asio::buffer(buf));
  EXPECT_EQ(std::string(buf, n).rfind("HTTP/1.1 100 Continue", 0), 0u) << std::string(buf, n);
  asio::write(socket, asio::buffer(std::string("data")));
  std::string out;
  boost::system::error_code ec;
  while (out.find("POST /up data") == std::string::npos) {
    n = socket.read_some(asio::buffer(buf), ec);
    if (ec) break;
    out.append(buf, n);
  }
  EXPECT_NE(out.find("HTTP/1.1 200"), std::string::npos) << out;
}

TEST_F(ServerTest, OversizeBodyIs413) {
  auto out = exchange("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" +
                      std::string(5000, 'a'));
  EXPECT_EQ(out.rfind("HTTP/1.1 413", 0), 0u) << out;
}

TEST_F(ServerTest, GarbageIs400) {
  auto out = exchange("NOT HTTP AT ALL\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << out;
}

TEST_F(ServerTest, HandlerExceptionIs500NotACrash) {
  auto out = exchange("GET /throw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 500", 0), 0u) << out;
  out = exchange("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 200", 0), 0u) << out;
}

TEST_F(ServerTest, SlowClientIsDisconnected) {
  // Sends half a request and stalls: the read timeout closes the connection.
  auto start = std::chrono::steady_clock::now();
  auto out = exchange("GET / HTTP/1.1\r\nHo");
  EXPECT_TRUE(out.empty()) << out;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

// Reads from `socket` until `answers` 200 responses arrived or the connection ends.
std::string read_answers(tcp::socket& socket, std::size_t answers) {
  std::string out;
  char buf[4096];
  boost::system::error_code ec;
  while (count_of(out, "HTTP/1.1 200") < answers) {
    std::size_t n = socket.read_some(asio::buffer(buf), ec);
    if (ec) break;
    out.append(buf, n);
  }
  return out;
}

TEST(ServerPools, HandlerPoolAndFastPathBothAnswer) {
  ServerOptions options;
  options.port = 0;
  options.threads = 1;
  options.handler_threads = 3;
  options.fast_handler = [](const Request& r) -> std::optional<Response> {
    if (r.target == "/fast") return Response{200, "fast", "text/plain", {}};
    return std::nullopt;
  };
  std::atomic<int> on_pool{0};
  Server server(options, [&](const Request& r) {
    on_pool++;
    return Response{200, "slow " + r.target, "text/plain", {}};
  });
  server.start();
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect({asio::ip::make_address("127.0.0.1"), server.port()});
  std::string requests;
  for (int i = 0; i < 20; ++i) {
    requests += std::string("GET ") + (i % 2 ? "/fast" : "/slow") + " HTTP/1.1\r\nHost: x\r\n\r\n";
  }
  asio::write(socket, asio::buffer(requests));
  const std::string out = read_answers(socket, 20);
  // Pipelined answers come back in order, whichever thread produced them.
  EXPECT_EQ(count_of(out, "\r\n\r\nfast"), 10u);
  EXPECT_EQ(count_of(out, "\r\n\r\nslow /slow"), 10u);
  EXPECT_EQ(on_pool.load(), 10);
  EXPECT_LT(out.find("slow /slow"), out.find("fast"));
  server.stop();
}

// The async fast path answers from another thread later; nullopt passes the request on to the
// Handler, and a refusal (false) lets it go through the synchronous paths. Pipelined answers
// still come back in request order.
TEST(ServerPools, AsyncFastPathAnswersLaterFromAnotherThread) {
  ServerOptions options;
  options.port = 0;
  options.threads = 1;
  options.handler_threads = 2;
  std::mutex mutex;
  std::vector<std::thread> answerers;
  options.async_fast_handler = [&](const Request& r, AsyncDone done) {
    if (r.target == "/refuse") return false;
    std::lock_guard lock(mutex);
    answerers.emplace_back([target = r.target, done = std::move(done)] {
      std::this_thread::sleep_for(std::chrono::milliseconds(target == "/async/1" ? 50 : 1));
      if (target.starts_with("/async")) {
        done(Response{200, "async " + target, "text/plain", {}});
      } else {
        done(std::nullopt);
      }
    });
    return true;
  };
  std::atomic<int> on_pool{0};
  Server server(options, [&](const Request& r) {
    on_pool++;
    return Response{200, "handler " + r.target, "text/plain", {}};
  });
  server.start();
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect({asio::ip::make_address("127.0.0.1"), server.port()});
  const std::string requests =
      "GET /async/1 HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /miss HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /refuse HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /async/2 HTTP/1.1\r\nHost: x\r\n\r\n";
  asio::write(socket, asio::buffer(requests));
  const std::string out = read_answers(socket, 4);
  const auto first = out.find("async /async/1");
  const auto miss = out.find("handler /miss");
  const auto refuse = out.find("handler /refuse");
  const auto second = out.find("async /async/2");
  ASSERT_NE(first, std::string::npos) << out;
  ASSERT_NE(miss, std::string::npos) << out;
  ASSERT_NE(refuse, std::string::npos) << out;
  ASSERT_NE(second, std::string::npos) << out;
  EXPECT_LT(first, miss);
  EXPECT_LT(miss, refuse);
  EXPECT_LT(refuse, second);
  EXPECT_EQ(on_pool.load(), 2);
  server.stop();
  std::lock_guard lock(mutex);
  for (auto& t : answerers) t.join();
}

}  // namespace
}  // namespace transnotes::http
