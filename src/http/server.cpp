#include "http/server.h"

#include <spdlog/spdlog.h>
#include <strings.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/version.hpp>
#include <optional>
#include <system_error>
#include <thread>

namespace transnotes::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

std::string_view Request::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() && strncasecmp(key.data(), name.data(), key.size()) == 0) {
      return value;
    }
  }
  return {};
}

struct Server::Impl {
  ServerOptions options;
  Handler handler;
  asio::io_context ioc;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  std::atomic<bool> stopping{false};
  std::atomic<int> in_flight{0};
  // AsyncFastHandler callbacks not yet delivered; stop() waits for them, since they post to ioc.
  std::atomic<int> async_pending{0};
  std::unique_ptr<asio::thread_pool> handler_pool;  // set when options.handler_threads > 0
  // Keeps the event loop running while a request is away on the handler pool and nothing else
  // is pending (after stop() closed the acceptor); stop() ends the loop explicitly.
  asio::executor_work_guard<asio::io_context::executor_type> keep_running{ioc.get_executor()};

  Impl(ServerOptions opts, Handler h)
      : options(std::move(opts)),
        handler(std::move(h)),
        ioc(options.threads),
        acceptor(asio::make_strand(ioc)) {
    if (options.handler_threads > 0) {
      handler_pool = std::make_unique<asio::thread_pool>(options.handler_threads);
    }
  }

  void do_accept();
};

namespace {

const char* json_error_body(int status) {
  switch (status) {
    case 400:
      return R"({"detail":"Malformed HTTP request."})";
    case 413:
      return R"({"detail":"Request body is too large."})";
    case 431:
      return R"({"detail":"Request headers are too large."})";
    default:
      return R"({"detail":"A server error occurred."})";
  }
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, Server::Impl& server)
      : stream_(std::move(socket)), server_(server) {}

  void run() {
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&Session::read_request, shared_from_this()));
  }

 private:
  void read_request() {
    parser_.emplace();
    parser_->body_limit(server_.options.max_body_bytes);
    parser_->header_limit(64 * 1024);
    // A keep-alive connection may idle longer than a request may take to arrive.
    stream_.expires_after(buffer_.size() == 0 ? server_.options.idle_timeout
                                              : server_.options.read_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             beast::bind_front_handler(&Session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    // From here on the request counts as in flight, so a graceful stop waits for its body too.
    begin_request();
    if (parser_->is_done()) return handle();
    auto length = parser_->content_length();
    if (length && *length > server_.options.max_body_bytes) return send_plain_error(413);
    // Clients such as curl ask before sending a larger body and would otherwise wait a second.
    if (beast::iequals(parser_->get()[bhttp::field::expect], "100-continue")) {
      auto go_on = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_,
                                                                        parser_->get().version());
      stream_.expires_after(server_.options.read_timeout);
      return bhttp::async_write(
          stream_, *go_on, [self = shared_from_this(), go_on](beast::error_code ec, std::size_t) {
            if (ec) return self->on_read_error(ec);
            self->read_body();
          });
    }
    read_body();
  }

  void read_body() {
    stream_.expires_after(server_.options.read_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&Session::on_body, shared_from_this()));
  }

  void on_body(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    handle();
  }

  void begin_request() {
    if (!request_open_) {
      request_open_ = true;
      server_.in_flight.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void end_request() {
    if (request_open_) {
      request_open_ = false;
      server_.in_flight.fetch_sub(1, std::memory_order_relaxed);
    }
  }

  void on_read_error(beast::error_code ec) {
    end_request();
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
        ec == asio::error::eof) {
      return close();
    }
    int status = 400;
    if (ec == bhttp::error::body_limit) {
      status = 413;
    } else if (ec == bhttp::error::header_limit) {
      status = 431;
    }
    send_plain_error(status);
  }

  void send_plain_error(int status) {
    end_request();
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
    res->result(static_cast<unsigned>(status));
    res->version(11);
    res->set(bhttp::field::server, server_.options.server_name);
    res->set(bhttp::field::content_type, "application/json");
    res->set(bhttp::field::connection, "close");
    res->body() = json_error_body(status);
    res->keep_alive(false);
    res->prepare_payload();
    stream_.expires_after(server_.options.read_timeout);
    bhttp::async_write(stream_, *res,
                       [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                         if (ec) return self->close();
                         self->linger();
                       });
  }

  // After an early error answer the client may still be sending its request. Closing with unread
  // data makes the kernel reset the connection, and the client may never read our answer; so
  // stop sending, and discard what arrives for a short while first.
  void linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(5));
    drain_.resize(64 * 1024);
    stream_.async_read_some(asio::buffer(drain_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > 64 * 1024 * 1024) return self->close();
                              self->linger();
                            });
  }

  void handle() {
    begin_request();
    auto& msg = parser_->get();
    Request req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    req.headers.reserve(8);
    for (const auto& field : msg) {
      req.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    req.body = std::move(msg.body());

    if (server_.options.async_fast_handler) {
      auto pending = std::make_shared<Request>(std::move(req));
      ++server_.async_pending;
      bool accepted = false;
      try {
        accepted = server_.options.async_fast_handler(
            *pending, [self = shared_from_this(), pending](std::optional<Response> answer) {
              auto& server = self->server_;
              asio::post(self->stream_.get_executor(),
                         [self, pending, answer = std::move(answer)]() mutable {
                           if (answer) return self->respond(std::move(*answer));
                           self->dispatch(std::move(*pending));
                         });
              --server.async_pending;
            });
      } catch (const std::exception& e) {
        spdlog::warn("async fast handler threw for {} {}: {}", pending->method, pending->target,
                     e.what());
      }
      if (accepted) return;
      --server_.async_pending;
      req = std::move(*pending);
    }
    if (server_.options.fast_handler) {
      std::optional<Response> quick;
      try {
        quick = server_.options.fast_handler(req);
      } catch (const std::exception& e) {
        spdlog::warn("fast handler threw for {} {}: {}", req.method, req.target, e.what());
      }
      if (quick) return respond(std::move(*quick));
    }
    dispatch(std::move(req));
  }

  // Runs the Handler: on the handler pool when there is one, answering on the event loop.
  void dispatch(Request req) {
    if (!server_.handler_pool) return respond(run_handler(server_.handler, req));
    // Handlers may block on the database: run them off the event loop, answer on it.
    asio::post(*server_.handler_pool, [self = shared_from_this(), req = std::move(req)] {
      Response out = run_handler(self->server_.handler, req);
      asio::post(self->stream_.get_executor(),
                 [self, out = std::move(out)]() mutable { self->respond(std::move(out)); });
    });
  }

  static Response run_handler(const Handler& handler, const Request& req) {
    try {
      return handler(req);
    } catch (const std::exception& e) {
      spdlog::error("handler threw for {} {}: {}", req.method, req.target, e.what());
      return Response{500, R"({"detail":"A server error occurred."})", "application/json", {}};
    }
  }

  void respond(Response out) {
    auto& msg = parser_->get();
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
    res->result(static_cast<unsigned>(out.status));
    res->version(msg.version());
    res->set(bhttp::field::server, server_.options.server_name);
    if (!out.content_type.empty()) res->set(bhttp::field::content_type, out.content_type);
    for (auto& [name, value] : out.headers) res->insert(name, value);
    res->body() = std::move(out.body);
    res->keep_alive(msg.keep_alive() && !server_.stopping.load(std::memory_order_relaxed));
    res->prepare_payload();
    write(std::move(res));
  }

  void write(std::shared_ptr<bhttp::response<bhttp::string_body>> res) {
    stream_.expires_after(server_.options.read_timeout);
    bhttp::async_write(stream_, *res,
                       [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                         self->end_request();
                         if (ec || !res->keep_alive()) return self->close();
                         self->read_request();
                       });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  bool request_open_ = false;  // headers read, answer not yet written
  std::vector<char> drain_;
  std::size_t drained_ = 0;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  Server::Impl& server_;
};

}  // namespace

void Server::Impl::do_accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping) return;
      spdlog::warn("accept failed: {}", ec.message());
    } else {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<Session>(std::move(socket), *this)->run();
    }
    if (!stopping) do_accept();
  });
}

Server::Server(ServerOptions options, Handler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {
  auto& o = impl_->options;
  beast::error_code ec;
  auto address = asio::ip::make_address(o.host, ec);
  if (ec) throw std::system_error(ec, "invalid listen address '" + o.host + "'");
  tcp::endpoint endpoint(address, o.port);
  auto& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::system_error(ec, "cannot listen on " + o.host + ":" + std::to_string(o.port));
  }
}

Server::~Server() { stop(std::chrono::milliseconds(0)); }

std::uint16_t Server::port() const { return impl_->acceptor.local_endpoint().port(); }

void Server::start() {
  impl_->do_accept();
  int n = std::max(1, impl_->options.threads);
  for (int i = 0; i < n; ++i) {
    impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  }
}

void Server::stop(std::chrono::milliseconds grace) {
  if (impl_->threads.empty()) return;
  impl_->stopping = true;
  asio::post(impl_->acceptor.get_executor(), [this] {
    beast::error_code ignored;
    impl_->acceptor.close(ignored);
  });
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (impl_->in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Answers still owed by an AsyncFastHandler will post to ioc: let them land first (their
  // sources answer within their own timeouts).
  auto async_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (impl_->async_pending.load() > 0 && std::chrono::steady_clock::now() < async_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  if (impl_->handler_pool) impl_->handler_pool->join();
}

}  // namespace transnotes::http
