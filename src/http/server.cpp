#include "http/server.h"

#include <spdlog/spdlog.h>
#include <strings.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/version.hpp>
#include <cstdio>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "logging/logging.h"

namespace transnotes::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
// A connection's executor is its loop's, by its concrete type: the type-erased default
// (any_io_executor) costs a copy and a destroy of the erased object per operation.
using LoopExecutor = asio::io_context::executor_type;
using LoopSocket = tcp::socket::rebind_executor<LoopExecutor>::other;
using LoopStream = beast::basic_stream<tcp, LoopExecutor>;

std::string_view Request::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() && strncasecmp(key.data(), name.data(), key.size()) == 0) {
      return value;
    }
  }
  return {};
}

bool is_valid_request_id(std::string_view id) {
  static constexpr auto kAllowed = [] {
    std::array<bool, 256> allowed{};
    for (char c = 'a'; c <= 'z'; ++c) allowed[static_cast<unsigned char>(c)] = true;
    for (char c = 'A'; c <= 'Z'; ++c) allowed[static_cast<unsigned char>(c)] = true;
    for (char c = '0'; c <= '9'; ++c) allowed[static_cast<unsigned char>(c)] = true;
    for (char c : std::string_view("._:@/+=-")) allowed[static_cast<unsigned char>(c)] = true;
    return allowed;
  }();
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return kAllowed[static_cast<unsigned char>(c)]; });
}

namespace {

// SplitMix64 over a per-thread random start: ids are for correlating log lines, not secrets, so
// a seed from the OS once per thread is enough, and each id after it costs a few multiplies.
std::uint64_t next_request_id_bits() {
  thread_local std::uint64_t state = [] {
    std::random_device seed;
    return (std::uint64_t{seed()} << 32) ^ seed();
  }();
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void assign_generated_request_id(std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.resize(32);
  char* digit = out.data();
  for (int half = 0; half < 2; ++half) {
    const std::uint64_t bits = next_request_id_bits();
    for (int shift = 0; shift < 64; shift += 8) {
      const auto byte = static_cast<unsigned>(bits >> shift) & 0xFFu;
      *digit++ = kHex[byte >> 4];
      *digit++ = kHex[byte & 0xFu];
    }
  }
}

}  // namespace

std::string generate_request_id() {
  std::string id;
  assign_generated_request_id(id);
  return id;
}

namespace {

// Says whether a recurring warning may be logged now: at most once per interval, counting the
// ones it held back, so that a persistent failure does not flood the log.
class LogThrottle {
 public:
  explicit LogThrottle(std::chrono::steady_clock::duration interval) : interval_(interval) {}

  // Returns how many were held back since the last one logged, or nullopt to hold this one back.
  std::optional<std::uint64_t> admit(std::chrono::steady_clock::time_point now) {
    if (logged_once_ && now - last_ < interval_) {
      ++held_back_;
      return std::nullopt;
    }
    logged_once_ = true;
    last_ = now;
    return std::exchange(held_back_, 0);
  }

 private:
  std::chrono::steady_clock::duration interval_;
  std::chrono::steady_clock::time_point last_{};
  bool logged_once_ = false;
  std::uint64_t held_back_ = 0;
};

bool out_of_resources(const beast::error_code& ec) {
  return ec == asio::error::no_descriptors || ec == std::errc::too_many_files_open_in_system ||
         ec == asio::error::no_buffer_space || ec == asio::error::no_memory;
}

}  // namespace

struct Server::Impl {
  // Sessions may outlive the threads and be destroyed with the io_context below; what they touch
  // on the way out is declared before it, so it is still alive then.
  std::atomic<bool> stopping{false};
  std::atomic<int> open_connections{0};
  std::atomic<std::uint64_t> accept_errors{0};
  // Set while the accept loop waits for a connection to close (the cap is reached).
  std::atomic<bool> accept_paused{false};
  std::atomic<int> open_streams{0};
  // The streams being written, so that stop() can end them; keyed by the stream's address.
  std::mutex streams_mutex;
  std::unordered_map<const void*, std::weak_ptr<ResponseStream>> streams;
  ServerOptions options;
  Handler handler;
  // One event loop per thread; each connection stays on the loop that accepted it. A shared
  // io_context handed every ready socket to whichever thread was idle, and the threads woke one
  // another through a futex for it (about one wake per two cached reads): on these machines the
  // wake-ups cost more than the reads.
  std::vector<std::unique_ptr<asio::io_context>> loops;
  std::size_t next_loop = 0;  // on loops[0], where the acceptor lives
  tcp::acceptor acceptor;
  // On the acceptor's loop (loops[0]), like everything else the accept loop touches.
  asio::steady_timer accept_retry{acceptor.get_executor()};
  LogThrottle accept_log{std::chrono::seconds(10)};
  std::uint16_t bound_port = 0;
  std::vector<std::thread> threads;
  std::atomic<int> in_flight{0};
  // AsyncFastHandler callbacks not yet delivered; stop() waits for them, since they post to a
  // loop.
  std::atomic<int> async_pending{0};
  std::unique_ptr<asio::thread_pool> handler_pool;  // set when options.handler_threads > 0
  std::unique_ptr<asio::thread_pool> slow_pool;     // for options.slow_request, without the above
  // Keep each event loop running while a request is away on the handler pool and nothing else
  // is pending (after stop() closed the acceptor); stop() ends the loops explicitly.
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;

  static std::vector<std::unique_ptr<asio::io_context>> make_loops(int threads) {
    std::vector<std::unique_ptr<asio::io_context>> made;
    for (int i = 0; i < std::max(1, threads); ++i) {
      made.push_back(std::make_unique<asio::io_context>(1));
      // Opens the loop's reactor (epoll, eventfd, timerfd) now: made lazily, it would be the
      // first accept onto this loop, and out of descriptors that would throw out of the loop.
      asio::steady_timer opens_reactor(*made.back());
    }
    return made;
  }

  Impl(ServerOptions opts, Handler h)
      : options(std::move(opts)),
        handler(std::move(h)),
        loops(make_loops(options.threads)),
        acceptor(loops.front()->get_executor()) {
    for (auto& loop : loops) keep_running.push_back(asio::make_work_guard(*loop));
    if (options.handler_threads > 0) {
      handler_pool = std::make_unique<asio::thread_pool>(options.handler_threads);
    } else if (options.slow_request && options.slow_threads > 0) {
      slow_pool = std::make_unique<asio::thread_pool>(options.slow_threads);
    }
  }

  void do_accept();
  void on_accept_error(const beast::error_code& ec);
  void accept_unless_full();
  void connection_closed();
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

// The ResponseStream a streaming handler writes to: a bounded queue of framed chunks that the
// session's event loop drains into the socket.
class StreamChannel final : public ResponseStream {
 public:
  // `wake` posts a drain to the session's event loop; it is called with the lock held, so that once
  // end_from_server() returned no further wake can reach an event loop that may be gone.
  StreamChannel(std::size_t max_pending, bool chunked, std::function<void()> wake)
      : max_pending_(max_pending), chunked_(chunked), wake_(std::move(wake)) {}

  bool write(std::string_view chunk) override {
    std::lock_guard lock(mutex_);
    if (ended_) return false;
    if (chunk.empty()) return true;  // an empty chunk would end the chunked body
    const std::size_t framed = chunk.size() + (chunked_ ? 16 : 0);
    if (queued_bytes_ + framed > max_pending_) {
      ended_ = true;
      overflowed_ = true;
      request_drain();
      return false;
    }
    if (chunked_) {
      char size_line[24];
      const int n = std::snprintf(size_line, sizeof(size_line), "%zx\r\n", chunk.size());
      pending_.append(size_line, static_cast<std::size_t>(n));
      pending_.append(chunk);
      pending_.append("\r\n");
    } else {
      pending_.append(chunk);
    }
    pending_payload_ += chunk.size();
    queued_bytes_ += framed;
    request_drain();
    return true;
  }

  void close() override {
    std::lock_guard lock(mutex_);
    if (ended_) return;
    ended_ = true;
    request_drain();
  }

  bool ended() const override {
    std::lock_guard lock(mutex_);
    return ended_;
  }

  // What the event loop takes to write.
  struct Batch {
    std::string bytes;
    std::uint64_t payload = 0;  // of which chunk contents
    std::size_t counted = 0;    // what it counts against max_pending until written
    bool ended = false;
    bool overflowed = false;
  };
  Batch take() {
    std::lock_guard lock(mutex_);
    drain_posted_ = false;
    Batch batch;
    batch.bytes = std::exchange(pending_, {});
    batch.payload = std::exchange(pending_payload_, 0);
    batch.counted = queued_bytes_ - in_write_;
    in_write_ = queued_bytes_;
    batch.ended = ended_;
    batch.overflowed = overflowed_;
    return batch;
  }
  void written(std::size_t counted) {
    std::lock_guard lock(mutex_);
    queued_bytes_ -= counted;
    in_write_ -= counted;
  }
  // The session is done with the stream: writes fail from now on and nothing wakes it again.
  void end_from_server() {
    std::lock_guard lock(mutex_);
    ended_ = true;
    wake_ = nullptr;
  }

 private:
  void request_drain() {
    if (drain_posted_ || !wake_) return;
    drain_posted_ = true;
    wake_();
  }

  mutable std::mutex mutex_;
  const std::size_t max_pending_;
  const bool chunked_;
  std::function<void()> wake_;
  std::string pending_;
  std::uint64_t pending_payload_ = 0;
  std::size_t queued_bytes_ = 0;  // pending_ and what the socket has not taken yet
  std::size_t in_write_ = 0;      // of queued_bytes_, handed to the socket
  bool drain_posted_ = false;
  bool ended_ = false;
  bool overflowed_ = false;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(LoopSocket&& socket, Server::Impl& server)
      : stream_(std::move(socket)), buffer_(server.options.max_header_bytes), server_(server) {
    beast::error_code ec;
    auto peer = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_address_ = peer.address().to_string();
  }
  ~Session() {
    // The event loop is gone (stop() ran out of grace) or the stream never ended: still release
    // what the stream holds and stop counting it.
    if (channel_ && !stream_done_) {
      channel_->end_from_server();
      forget_stream();
    }
    server_.connection_closed();
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void run() {
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&Session::read_request, shared_from_this()));
  }

 private:
  void read_request() {
    parser_.emplace();
    parser_->body_limit(server_.options.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(server_.options.max_header_bytes, UINT32_MAX)));
    header_bytes_ = 0;
    request_id_.clear();
    if (buffer_.size() > 0) {  // pipelined: this request's first bytes came with the last one
      note_request_start();
      stream_.expires_after(server_.options.read_timeout);
      return parse_header();
    }
    // A keep-alive connection may idle longer than a request may take to arrive, but only until
    // the request's first bytes: one read waits for them under the idle timeout.
    stream_.expires_after(server_.options.idle_timeout);
    stream_.async_read_some(
        buffer_.prepare(beast::read_size(buffer_, kReadSize)),
        beast::bind_front_handler(&Session::on_first_bytes, shared_from_this()));
  }

  void on_first_bytes(beast::error_code ec, std::size_t n) {
    if (ec) return on_read_error(ec);
    buffer_.commit(n);
    note_request_start();
    // The request has begun: the rest of its header must arrive within the read timeout.
    stream_.expires_after(server_.options.read_timeout);
    parse_header();
  }

  // Parses what the buffer holds and reads on while the header is incomplete (usually the whole
  // header came in the first read). Beast's header_limit bounds only what one put() looks at, and
  // fields an earlier put() parsed are not counted again, so a header arriving in pieces could
  // pass any limit: its size is counted here, across reads.
  void parse_header() {
    beast::error_code ec;
    const auto used = parser_->put(buffer_.data(), ec);
    buffer_.consume(used);
    header_bytes_ += used;
    const auto limit = server_.options.max_header_bytes;
    if (!ec) {
      if (header_bytes_ > limit) return on_read_error(bhttp::error::header_limit);
      return on_header({}, header_bytes_);
    }
    if (ec != bhttp::error::need_more) return on_read_error(ec);
    // Incomplete although it already holds `limit` bytes: the header is larger than the limit.
    if (header_bytes_ + buffer_.size() >= limit) return on_read_error(bhttp::error::header_limit);
    stream_.async_read_some(
        buffer_.prepare(beast::read_size(buffer_, kReadSize)),
        beast::bind_front_handler(&Session::on_more_header, shared_from_this()));
  }

  void on_more_header(beast::error_code ec, std::size_t n) {
    // The client ended its side inside a request: a partial message (400), as Beast reports it.
    if (ec == asio::error::eof) parser_->put_eof(ec);
    if (ec) return on_read_error(ec);
    buffer_.commit(n);
    parse_header();
  }

  void on_header(beast::error_code ec, std::size_t header_bytes) {
    if (ec) return on_read_error(ec);
    // From here on the request counts as in flight, so a graceful stop waits for its body too.
    begin_request();
    take_request_id(parser_->get());
    if (!framing_is_unambiguous(parser_->get())) return send_plain_error(400);
    if (parser_->chunked()) {
      // Chunk extensions and trailers share the header's allowance.
      const auto limit = server_.options.max_header_bytes;
      header_allowance_.left = limit - std::min(header_bytes, limit);
      header_fields_bytes_ = fields_bytes(parser_->get());
      parser_->on_chunk_header(header_allowance_);
    }
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
    // Trailers were merged into the header fields; what they added must fit what is left.
    if (parser_->chunked() &&
        fields_bytes(parser_->get()) - header_fields_bytes_ > header_allowance_.left) {
      return send_plain_error(431);
    }
    handle();
  }

  // RFC 9112 §6.3: a request framed by anything but exactly "Transfer-Encoding: chunked" (one
  // coding, no Content-Length beside it, HTTP/1.1) cannot be delimited reliably; guessing would
  // let a body be read as a next request.
  static bool framing_is_unambiguous(const bhttp::request<bhttp::string_body>& msg) {
    auto codings = msg.equal_range(bhttp::field::transfer_encoding);
    if (codings.first == codings.second) return true;
    if (std::next(codings.first) != codings.second) return false;
    if (msg.version() < 11 || msg.count(bhttp::field::content_length) > 0) return false;
    std::string_view value = codings.first->value();
    const auto first = value.find_first_not_of(" \t");
    if (first == std::string_view::npos) return false;
    value = value.substr(first, value.find_last_not_of(" \t") - first + 1);
    return beast::iequals(value, "chunked");
  }

  static std::size_t fields_bytes(const bhttp::request<bhttp::string_body>& msg) {
    std::size_t n = 0;
    for (const auto& field : msg) n += field.name_string().size() + field.value().size() + 4;
    return n;
  }

  void note_request_start() {
    if (server_.options.on_response) request_start_ = std::chrono::steady_clock::now();
  }

  // The client's id when it is a valid one, else a new one; every answer carries it.
  void take_request_id(const bhttp::request<bhttp::string_body>& msg) {
    const auto sent = msg.find("X-Request-ID");
    if (sent != msg.end()) {
      const std::string_view value(sent->value().data(), sent->value().size());
      if (is_valid_request_id(value)) {
        request_id_.assign(value);
        return;
      }
    }
    assign_generated_request_id(request_id_);
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
    } else if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) {
      // The read buffer holds at most max_header_bytes: it overflows only on a header, chunk
      // extension or trailer that does not end within that many bytes.
      status = 431;
    }
    send_plain_error(status);
  }

  void send_plain_error(int status) {
    end_request();
    // Rejected while its header was read (a Content-Length over the limit, a header too large):
    // take the client's id if the fields got that far, else make one.
    if (request_id_.empty()) {
      if (parser_) {
        take_request_id(parser_->get());
      } else {
        assign_generated_request_id(request_id_);
      }
    }
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
    res->result(static_cast<unsigned>(status));
    res->version(11);
    res->set(bhttp::field::server, server_.options.server_name);
    res->set(bhttp::field::content_type, "application/json");
    res->set(bhttp::field::connection, "close");
    res->insert(bhttp::field::unknown, kRequestIdField, request_id_);
    res->body() = json_error_body(status);
    res->keep_alive(false);
    res->prepare_payload();
    // Once the request line is known, a HEAD request gets no body, as in respond().
    if (parser_ && parser_->is_header_done() && parser_->get().method() == bhttp::verb::head) {
      res->body().clear();
    }
    answer_.status = status;
    answer_.body_bytes = res->body().size();
    answer_.route = {};
    answer_.user.clear();
    stream_.expires_after(server_.options.read_timeout);
    bhttp::async_write(stream_, *res,
                       [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                         self->report_answer(!ec);
                         if (ec) return self->close();
                         self->linger();
                       });
  }

  // Tells on_response about the answer just written (or not).
  void report_answer(bool delivered) {
    const auto& callback = server_.options.on_response;
    if (!callback) return;
    CompletedExchange done;
    if (parser_) {  // "" until the request line was parsed
      const auto method = parser_->get().method_string();
      done.method = std::string_view(method.data(), method.size());
    }
    done.route = answer_.route;
    done.status = answer_.status;
    done.body_bytes = answer_.body_bytes;
    done.duration = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - request_start_);
    done.request_id = request_id_;
    done.user = answer_.user;
    done.remote_address = remote_address_;
    done.delivered = delivered;
    try {
      callback(done);
    } catch (const std::exception& e) {
      spdlog::error("on_response threw: {}", e.what());
    }
  }

  // After an early error answer the client may still be sending its request. Closing with unread
  // data makes the kernel reset the connection, and the client may never read our answer; so
  // stop sending, and discard what arrives for a while first. The while is bounded in total
  // time and bytes, not only between reads, or a client trickling bytes would hold the socket.
  void linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    linger_deadline_ = std::chrono::steady_clock::now() + server_.options.linger_time;
    drain_.resize(16 * 1024);
    drain();
  }

  void drain() {
    const auto now = std::chrono::steady_clock::now();
    if (now >= linger_deadline_) return close();
    stream_.expires_at(std::min(linger_deadline_, now + server_.options.linger_timeout));
    stream_.async_read_some(asio::buffer(drain_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ >= self->server_.options.linger_max_bytes) {
                                return self->close();
                              }
                              self->drain();
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
    req.remote_address = remote_address_;
    req.request_id = request_id_;

    if (server_.options.async_fast_handler) {
      auto pending = std::make_shared<Request>(std::move(req));
      ++server_.async_pending;
      bool accepted = false;
      try {
        logging::ScopedLogContext log_context(kRequestIdLogField, pending->request_id);
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
        logging::ScopedLogContext log_context(kRequestIdLogField, pending->request_id);
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
        logging::ScopedLogContext log_context(kRequestIdLogField, req.request_id);
        quick = server_.options.fast_handler(req);
      } catch (const std::exception& e) {
        logging::ScopedLogContext log_context(kRequestIdLogField, req.request_id);
        spdlog::warn("fast handler threw for {} {}: {}", req.method, req.target, e.what());
      }
      if (quick) return respond(std::move(*quick));
    }
    dispatch(std::move(req));
  }

  // Runs the Handler: on the handler pool when there is one, answering on the event loop.
  void dispatch(Request req) {
    asio::thread_pool* pool = server_.handler_pool.get();
    if (!pool && server_.slow_pool && server_.options.slow_request(req)) {
      pool = server_.slow_pool.get();
    }
    if (!pool) return respond(run_handler(server_.handler, req));
    // Handlers may block on the database: run them off the event loop, answer on it.
    asio::post(*pool, [self = shared_from_this(), req = std::move(req)] {
      Response out = run_handler(self->server_.handler, req);
      asio::post(self->stream_.get_executor(),
                 [self, out = std::move(out)]() mutable { self->respond(std::move(out)); });
    });
  }

  static Response run_handler(const Handler& handler, const Request& req) {
    logging::ScopedLogContext log_context(kRequestIdLogField, req.request_id);
    try {
      return handler(req);
    } catch (const std::exception& e) {
      spdlog::error("handler threw for {} {}: {}", req.method, req.target, e.what());
      return Response{500, R"({"detail":"A server error occurred."})", "application/json", {}};
    }
  }

  void respond(Response out) {
    auto& msg = parser_->get();
    if (out.shared_body && !out.stream) {
      // A shared body goes out as a view of the one copy every request holds (span_body);
      // `keep` holds it alive until the write completes.
      auto res = std::make_shared<bhttp::response<bhttp::span_body<const char>>>();
      fill_header(*res, out);
      const std::string& body = *out.shared_body;
      if (msg.method() == bhttp::verb::head) {
        if (has_content(out.status)) res->content_length(body.size());
        answer_.body_bytes = 0;
      } else {
        answer_.body_bytes = body.size();
        res->body() = {body.data(), body.size()};
        res->prepare_payload();
      }
      return write(std::move(res), std::move(out.shared_body));
    }
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
    fill_header(*res, out);
    if (out.stream && msg.method() != bhttp::verb::head) {
      return start_stream(std::move(res), std::move(out.stream));
    }
    if (msg.method() == bhttp::verb::head) {
      if (has_content(out.status)) res->content_length(out.body.size());
      answer_.body_bytes = 0;
    } else {
      answer_.body_bytes = out.body.size();
      res->body() = std::move(out.body);
      res->prepare_payload();
    }
    write(std::move(res));
  }

  // RFC 9110 §9.3.2: a HEAD answer carries the GET answer's header, Content-Length included,
  // and no body. The Handler answers HEAD as it would GET.
  static bool has_content(int status) { return status >= 200 && status != 204 && status != 304; }

  // The status line and header of the answer to the current request; notes what on_response
  // will be told.
  template <class Body>
  void fill_header(bhttp::response<Body>& res, Response& out) {
    auto& msg = parser_->get();
    res.result(static_cast<unsigned>(out.status));
    res.version(msg.version());
    res.set(bhttp::field::server, server_.options.server_name);
    if (!out.content_type.empty()) res.set(bhttp::field::content_type, out.content_type);
    for (auto& [name, value] : out.headers) res.insert(name, value);
    res.insert(bhttp::field::unknown, kRequestIdField, request_id_);
    res.keep_alive(msg.keep_alive() && !server_.stopping.load(std::memory_order_relaxed));
    answer_.status = out.status;
    answer_.route = out.route;
    answer_.user = std::move(out.user);
  }

  // `keep` is whatever the message's body refers to; held until the write completes.
  template <class Body>
  void write(std::shared_ptr<bhttp::response<Body>> res,
             std::shared_ptr<const std::string> keep = nullptr) {
    stream_.expires_after(server_.options.read_timeout);
    bhttp::async_write(stream_, *res,
                       [self = shared_from_this(), res, keep = std::move(keep)](
                           beast::error_code ec, std::size_t) {
                         self->end_request();
                         self->report_answer(!ec);
                         if (ec || !res->keep_alive()) return self->close();
                         self->read_request();
                       });
  }

  // --- Streamed answers (StreamedBody). Everything here runs on the session's event loop (one
  // thread).

  void start_stream(std::shared_ptr<bhttp::response<bhttp::string_body>> res,
                    std::shared_ptr<StreamedBody> body) {
    // A stream is not a request waiting for its answer: it has its own count, and a graceful
    // stop ends it rather than waiting for it.
    end_request();
    const bool chunked = res->version() >= 11;
    res->keep_alive(false);
    if (chunked) res->chunked(true);
    std::ostringstream header;
    header << res->base();
    stream_body_ = std::move(body);
    channel_ = std::make_shared<StreamChannel>(
        server_.options.max_stream_pending_bytes, chunked,
        [weak = weak_from_this(), executor = stream_.get_executor()] {
          asio::post(executor, [weak] {
            if (auto self = weak.lock()) self->stream_drain();
          });
        });
    server_.open_streams.fetch_add(1, std::memory_order_relaxed);
    {
      std::lock_guard lock(server_.streams_mutex);
      server_.streams.emplace(channel_.get(), channel_);
    }
    // stop() may have swept the streams just before this one registered.
    if (server_.stopping.load()) channel_->close();
    stream_.expires_never();
    last_stream_activity_ = std::chrono::steady_clock::now();
    write_header_ = std::move(header).str();
    writing_ = true;
    write_started_ = last_stream_activity_;
    asio::async_write(stream_, asio::buffer(write_header_),
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        self->writing_ = false;
                        if (self->stream_done_) return;
                        if (ec) return self->close_stream();
                        if (self->stream_body_->on_open) {
                          try {
                            self->stream_body_->on_open(self->channel_);
                          } catch (const std::exception& e) {
                            spdlog::error("stream on_open threw: {}", e.what());
                            self->channel_->close();
                          }
                        }
                        self->watch_for_client_close();
                        self->arm_stream_timer();
                        self->stream_drain();
                      });
  }

  // Reads what the client sends while the stream runs (nothing, normally) to learn at once when
  // it closes the connection.
  void watch_for_client_close() {
    drain_.resize(4096);
    stream_.async_read_some(asio::buffer(drain_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (self->stream_done_) return;
                              if (ec) return self->close_stream();
                              self->watch_for_client_close();
                            });
  }

  void stream_drain() {
    if (writing_ || stream_done_ || !channel_) return;
    auto batch = channel_->take();
    if (batch.overflowed) {
      spdlog::warn("dropping a streamed answer to {}: the client reads too slowly",
                   remote_address_);
      return close_stream();
    }
    if (batch.bytes.empty()) {
      if (batch.ended) finish_stream();
      return;
    }
    write_body_ = std::move(batch.bytes);
    writing_ = true;
    write_started_ = last_stream_activity_ = std::chrono::steady_clock::now();
    asio::async_write(stream_, asio::buffer(write_body_),
                      [self = shared_from_this(), batch_payload = batch.payload,
                       counted = batch.counted](beast::error_code ec, std::size_t) {
                        self->writing_ = false;
                        if (self->stream_done_) return;
                        if (ec) return self->close_stream();
                        self->stream_bytes_ += batch_payload;
                        self->channel_->written(counted);
                        self->stream_drain();
                      });
  }

  // The stream was closed by its writer or by stop(): the terminating chunk, then the end.
  void finish_stream() {
    if (!last_chunk_sent_ && parser_->get().version() >= 11) {
      last_chunk_sent_ = true;
      writing_ = true;
      write_started_ = std::chrono::steady_clock::now();
      static constexpr std::string_view kLastChunk = "0\r\n\r\n";
      asio::async_write(stream_, asio::buffer(kLastChunk.data(), kLastChunk.size()),
                        [self = shared_from_this()](beast::error_code, std::size_t) {
                          self->writing_ = false;
                          if (!self->stream_done_) self->close_stream();
                        });
      return;
    }
    close_stream();
  }

  // Heartbeats while the stream is quiet, and the bound on how long one write may hang.
  void arm_stream_timer() {
    if (!stream_timer_) stream_timer_.emplace(stream_.get_executor());
    const auto heartbeat = stream_body_->heartbeat;
    const auto write_timeout = server_.options.stream_write_timeout;
    auto due = std::chrono::steady_clock::now() + write_timeout;
    if (heartbeat.count() > 0) due = std::min(due, last_stream_activity_ + heartbeat);
    if (writing_) due = std::min(due, write_started_ + write_timeout);
    stream_timer_->expires_at(due);
    stream_timer_->async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->stream_done_) return;
      self->on_stream_timer();
    });
  }

  void on_stream_timer() {
    const auto now = std::chrono::steady_clock::now();
    if (writing_ && now - write_started_ >= server_.options.stream_write_timeout) {
      spdlog::warn("dropping a streamed answer to {}: a write made no progress for {} ms",
                   remote_address_, server_.options.stream_write_timeout.count());
      return close_stream();
    }
    const auto heartbeat = stream_body_->heartbeat;
    if (heartbeat.count() > 0 && now - last_stream_activity_ >= heartbeat) {
      last_stream_activity_ = now;
      channel_->write(stream_body_->heartbeat_chunk);
    }
    arm_stream_timer();
  }

  // Ends the stream now (after its terminating chunk, or without when the client is gone or too
  // slow), tells on_response, and closes the connection.
  void close_stream() {
    if (stream_done_) return;
    stream_done_ = true;
    channel_->end_from_server();
    if (stream_timer_) stream_timer_->cancel();
    answer_.body_bytes = stream_bytes_;
    report_answer(true);
    forget_stream();
    close();
  }

  void forget_stream() {
    {
      std::lock_guard lock(server_.streams_mutex);
      server_.streams.erase(channel_.get());
    }
    server_.open_streams.fetch_sub(1, std::memory_order_relaxed);
    // What the stream's callbacks hold (a subscription to events) goes now.
    stream_body_.reset();
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  // Counts chunk extensions against what the header left of max_header_bytes.
  struct HeaderAllowance {
    std::size_t left = 0;
    void operator()(std::uint64_t, beast::string_view extensions, beast::error_code& ec) {
      if (extensions.size() > left) {
        ec = bhttp::error::header_limit;
        return;
      }
      left -= extensions.size();
    }
  };

  static constexpr std::size_t kReadSize = 64 * 1024;
  // Not a field Beast knows: inserted as field::unknown with its name, which spares Beast
  // looking the name up in its table of known fields on every answer.
  static constexpr std::string_view kRequestIdField = "X-Request-ID";
  static constexpr std::string_view kRequestIdLogField = "request_id";

  // The answer being written, for report_answer().
  struct Answer {
    int status = 0;
    std::uint64_t body_bytes = 0;
    std::string_view route;
    std::string user;
  };

  LoopStream stream_;
  // Bounded: a header, chunk-size line or trailer section must end within max_header_bytes.
  beast::flat_buffer buffer_;
  bool request_open_ = false;  // headers read, answer not yet written
  HeaderAllowance header_allowance_;
  std::size_t header_bytes_ = 0;         // of this request's header, parsed so far
  std::size_t header_fields_bytes_ = 0;  // of a chunked request, before its trailers
  std::vector<char> drain_;
  std::size_t drained_ = 0;
  std::chrono::steady_clock::time_point linger_deadline_{};
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  Server::Impl& server_;
  std::string remote_address_;  // the peer's IP address, read once per connection
  std::string request_id_;      // of the request being read or answered
  std::chrono::steady_clock::time_point request_start_{};  // its first byte (with on_response)
  Answer answer_;
  // A streamed answer, once start_stream() ran.
  std::shared_ptr<StreamedBody> stream_body_;
  std::shared_ptr<StreamChannel> channel_;
  std::optional<asio::steady_timer> stream_timer_;
  std::string write_header_;
  std::string write_body_;  // the batch being written
  bool writing_ = false;
  bool stream_done_ = false;
  bool last_chunk_sent_ = false;
  std::uint64_t stream_bytes_ = 0;  // chunk contents written
  std::chrono::steady_clock::time_point write_started_{};
  std::chrono::steady_clock::time_point last_stream_activity_{};
};

}  // namespace

void Server::Impl::do_accept() {
  asio::io_context& loop = *loops[next_loop];
  next_loop = (next_loop + 1) % loops.size();
  acceptor.async_accept(loop.get_executor(), [this](beast::error_code ec, LoopSocket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping) return;
      return on_accept_error(ec);
    }
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    open_connections.fetch_add(1);
    std::make_shared<Session>(std::move(socket), *this)->run();
    accept_unless_full();
  });
}

void Server::Impl::on_accept_error(const beast::error_code& ec) {
  accept_errors.fetch_add(1, std::memory_order_relaxed);
  if (auto held_back = accept_log.admit(std::chrono::steady_clock::now())) {
    spdlog::warn("accept failed: {} ({} similar failures not logged)", ec.message(), *held_back);
  }
  if (!out_of_resources(ec)) return accept_unless_full();
  // The connection stays queued, so accepting again at once fails again at once: wait for
  // descriptors or memory to free up.
  accept_retry.expires_after(std::chrono::milliseconds(100));
  accept_retry.async_wait([this](beast::error_code wait_ec) {
    if (!wait_ec && !stopping) accept_unless_full();
  });
}

// On the acceptor's loop. At the cap, leave further connections in the listen queue (the kernel
// holds them at no cost to us) until connection_closed() resumes. Answering them 503 instead
// would spend a descriptor and a write on each, the very resources the cap is there to keep.
void Server::Impl::accept_unless_full() {
  if (stopping) return;
  // Paused is published before the count is read, and connection_closed() lowers the count before
  // reading paused: one of the two always sees the other, so a pause cannot be missed.
  accept_paused.store(true);
  if (open_connections.load() >= options.max_connections) return;
  accept_paused.store(false);
  do_accept();
}

void Server::Impl::connection_closed() {
  open_connections.fetch_sub(1);
  if (accept_paused.load() && !stopping.load()) {
    asio::post(acceptor.get_executor(), [this] {
      if (accept_paused.load()) accept_unless_full();
    });
  }
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
  if (!ec) impl_->bound_port = acceptor.local_endpoint(ec).port();
  if (ec) {
    throw std::system_error(ec, "cannot listen on " + o.host + ":" + std::to_string(o.port));
  }
  if (o.max_connections <= 0) o.max_connections = default_max_connections();
}

Server::~Server() {
  impl_->stopping = true;
  stop(std::chrono::milliseconds(0));
}

// Recorded at bind time: the acceptor itself belongs to the event-loop threads once started.
std::uint16_t Server::port() const { return impl_->bound_port; }

ServerStats Server::stats() const {
  ServerStats stats;
  stats.open_connections = impl_->open_connections.load(std::memory_order_relaxed);
  stats.accept_errors = impl_->accept_errors.load(std::memory_order_relaxed);
  stats.in_flight = impl_->in_flight.load(std::memory_order_relaxed);
  stats.rejected_connections = stats.accept_errors;
  stats.open_streams = impl_->open_streams.load(std::memory_order_relaxed);
  return stats;
}

int default_max_connections() {
  constexpr int kCeiling = 10'000;
  constexpr rlim_t kReserved = 64;  // files, database and cache connections, logs
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return kCeiling;
  if (limit.rlim_cur <= kReserved) return 1;
  return static_cast<int>(std::min<rlim_t>(kCeiling, limit.rlim_cur - kReserved));
}

std::uint64_t raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return static_cast<std::uint64_t>(limit.rlim_cur);
}

void Server::start() {
  impl_->do_accept();
  for (auto& loop : impl_->loops) {
    impl_->threads.emplace_back([&loop] { loop->run(); });
  }
}

void Server::stop(std::chrono::milliseconds grace) {
  if (impl_->threads.empty()) return;
  impl_->stopping = true;
  asio::post(impl_->acceptor.get_executor(), [this] {
    beast::error_code ignored;
    impl_->acceptor.close(ignored);
    impl_->accept_retry.cancel();
  });
  // Streams never finish by themselves: end each (the terminating chunk goes out first).
  std::vector<std::shared_ptr<ResponseStream>> open;
  {
    std::lock_guard lock(impl_->streams_mutex);
    for (auto& [key, weak] : impl_->streams) {
      if (auto stream = weak.lock()) open.push_back(std::move(stream));
    }
  }
  for (auto& stream : open) stream->close();
  open.clear();
  auto deadline = std::chrono::steady_clock::now() + grace;
  while ((impl_->in_flight.load() > 0 || impl_->open_streams.load() > 0) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Answers still owed by an AsyncFastHandler will post to a loop: let them land first (their
  // sources answer within their own timeouts).
  auto async_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (impl_->async_pending.load() > 0 && std::chrono::steady_clock::now() < async_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // Streams that could not end in time: no writer may wake the event loop once it stops.
  {
    std::lock_guard lock(impl_->streams_mutex);
    for (auto& [key, weak] : impl_->streams) {
      if (auto stream = weak.lock()) static_cast<StreamChannel&>(*stream).end_from_server();
    }
  }
  for (auto& loop : impl_->loops) loop->stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  if (impl_->handler_pool) impl_->handler_pool->join();
  if (impl_->slow_pool) impl_->slow_pool->join();
}

}  // namespace transnotes::http
