// A small asynchronous HTTP/1.1 server (Boost.Beast) that holds many keep-alive connections on a
// few threads and hands each complete request to one synchronous handler. It knows nothing about
// the API: routing, JSON and error shapes live in src/api.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace transnotes::http {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query as sent, e.g. "/api/v1/notes/?limit=5"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The peer's IP address ("127.0.0.1", "::1"); empty if the socket could not tell.
  std::string remote_address;
  // The client's X-Request-ID when it is a valid one (see is_valid_request_id), else one the
  // server generated; the response carries it back. While a handler runs, every line it logs
  // carries it as the field request_id.
  std::string request_id{};
  // Case-insensitive header lookup; empty when absent.
  std::string_view header(std::string_view name) const;
};

// The writing end of a streamed answer (see StreamedBody). Thread-safe; never blocks: a chunk is
// queued and written by the event loop.
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  // Queues `chunk` (sent as one HTTP chunk). False once the stream has ended: the client went
  // away, the server is stopping, close() was called, or the client reads too slowly (its
  // unsent bytes would pass ServerOptions::max_stream_pending_bytes: it is disconnected rather
  // than letting them pile up).
  virtual bool write(std::string_view chunk) = 0;
  // Ends the stream cleanly (the terminating chunk, then the connection closes).
  virtual void close() = 0;
  virtual bool ended() const = 0;
};

// A long-lived answer whose body is written piece by piece after the handler returned (Server-
// Sent Events): the header goes out at once with chunked transfer coding, then whatever is
// written to the ResponseStream. The server drops this object (and what its callbacks hold)
// when the stream ends, on the event loop or in stop().
struct StreamedBody {
  // Called once, on the event loop, right after the header was sent. Keep it cheap. Not called
  // when the header could not be sent, nor for HEAD (which gets the header only).
  std::function<void(std::shared_ptr<ResponseStream>)> on_open;
  // When > 0: `heartbeat_chunk` is written whenever nothing else was for this long, so proxies
  // keep the connection open, and a client gone without a FIN is found by the failing write.
  std::chrono::milliseconds heartbeat{0};
  std::string heartbeat_chunk;
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  // Added to the answer's header; the server adds Server, Content-Length and X-Request-ID.
  std::vector<std::pair<std::string, std::string>> headers;
  // For ServerOptions::on_response only, never sent. The route template that matched
  // ("/api/v1/notes/{id}/"), with static storage; "" when none did.
  std::string_view route{};
  // The authenticated user's id as text; "" when none.
  std::string user{};
  // Set: a streamed answer (`body` is ignored; no Content-Length). on_response is told once,
  // when the stream ends, with the body bytes it sent.
  std::shared_ptr<StreamedBody> stream{};
  // Set: sent instead of `body` (last here so that Response{status, body, type, headers}
  // still reads as before), without a copy, and kept alive until it has been written. For
  // answers that many requests share (a cached list page): each holds a reference, not a copy.
  std::shared_ptr<const std::string> shared_body{};

  // The bytes of the answer's body: shared_body's when set, else body's.
  std::string_view payload() const { return shared_body ? std::string_view(*shared_body) : body; }
};

// What on_response learns of one answered request. Views are valid during the call only.
struct CompletedExchange {
  std::string_view method;  // "" when the request line could not be read
  std::string_view route;   // Response::route; "" for the server's own error answers
  int status = 0;
  std::uint64_t body_bytes = 0;  // response body bytes sent (none for HEAD)
  // From the request's first byte arriving to the answer written (or failing to be written).
  std::chrono::microseconds duration{0};
  std::string_view request_id;
  std::string_view user;
  std::string_view remote_address;
  bool delivered = true;  // false when writing the answer failed
};

// Called for every request; should not throw (the server answers 500 if it does).
using Handler = std::function<Response(const Request&)>;
// Tried first, on the event loop: answers what it can answer without blocking (a cache hit),
// nullopt for everything else, which then goes to the Handler.
using FastHandler = std::function<std::optional<Response>(const Request&)>;
// Like FastHandler, for answers that arrive later without blocking the event loop (a cache read
// over the network). Returns false when it will not answer: the request goes on as if there
// were none. Returns true when it will call `done` exactly once, from any thread, with the
// response, or with nullopt to pass the request on to the Handler. Must not throw after it
// decided to return true.
using AsyncDone = std::function<void(std::optional<Response>)>;
using AsyncFastHandler = std::function<bool(const Request&, AsyncDone done)>;

struct ServerOptions {
  std::string host = "127.0.0.1";  // address to bind
  std::uint16_t port = 8000;       // 0 picks a free port (see Server::port)
  int threads = 4;                 // threads running the event loop
  // > 0: the Handler runs on a pool of this many threads, so requests that block on the
  // database do not stall the event loop; 0: it runs on the event-loop thread.
  int handler_threads = 0;
  // With handler_threads 0: requests for which this returns true run on a pool of their own
  // (slow_threads), so CPU-heavy handlers (password hashing) do not stall the event loop and
  // every connection on it. Called on the event loop; must be cheap.
  std::function<bool(const Request&)> slow_request;
  int slow_threads = 2;
  FastHandler fast_handler;              // optional, see FastHandler
  AsyncFastHandler async_fast_handler;   // optional, tried first; see AsyncFastHandler
  std::size_t max_body_bytes = 1 << 20;  // larger bodies get 413
  // Request line and headers together; chunk extensions and trailers count against it too.
  std::size_t max_header_bytes = 64 * 1024;
  // A request must arrive whole (headers, then body) within this time of its first byte.
  std::chrono::milliseconds read_timeout{30'000};
  // A keep-alive connection with no byte of a next request closes after this long.
  std::chrono::milliseconds idle_timeout{75'000};
  // After an early error answer (400, 413, 431) the server discards what the client still sends
  // so that the client can read the answer, but only this long in all, ...
  std::chrono::milliseconds linger_time{30'000};
  // ... with at most this long between reads, ...
  std::chrono::milliseconds linger_timeout{5'000};
  // ... and at most this many bytes.
  std::size_t linger_max_bytes = 64u << 20;
  // Open connections; when reached, the server stops accepting until one closes. 0 means
  // default_max_connections().
  int max_connections = 0;
  std::string server_name = "transnotes";  // Server header
  // A streamed answer whose client has this many bytes not yet taken by the socket is dropped.
  std::size_t max_stream_pending_bytes = 1u << 20;
  // A streamed answer whose socket write has not completed for this long is dropped (a client
  // that stopped reading but keeps its connection open). Checked at each heartbeat.
  std::chrono::milliseconds stream_write_timeout{60'000};
  // Called once per answer (handlers', fast paths' and the server's own 400/413/431/500 alike)
  // after it was written or failed to be, on the event loop: keep it cheap; must not throw.
  // Not called for connections that end before an answer is due (timeouts, resets).
  std::function<void(const CompletedExchange&)> on_response;
};

// 1 to 128 characters of A-Z a-z 0-9 . _ : @ / + = - (anything else could forge log lines or
// headers downstream).
bool is_valid_request_id(std::string_view id);
// 32 random hex characters, from a per-thread generator (no system call after a thread's first).
std::string generate_request_id();

// min(10000, the soft RLIMIT_NOFILE - 64): leaves descriptors for files, the database and logs.
int default_max_connections();

// Raises the soft RLIMIT_NOFILE to the hard limit (call once at start, before the Server is
// built, so that default_max_connections() sees it). Returns the soft limit now in force.
std::uint64_t raise_open_file_limit();

struct ServerStats {
  int open_connections = 0;
  std::uint64_t accept_errors = 0;  // failed accept calls, e.g. out of file descriptors
  int in_flight = 0;  // requests whose header was read and whose answer is not yet written
  // Connections the server could not take: failed accepts. (At max_connections the server does
  // not reject: further connections wait in the listen queue.)
  std::uint64_t rejected_connections = 0;
  // Streamed answers being written (counted here, not in in_flight).
  int open_streams = 0;
};

class Server {
 public:
  // Binds immediately (throws std::system_error with a clear message if it cannot).
  Server(ServerOptions options, Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The port bound at construction (the one picked when ServerOptions::port was 0).
  std::uint16_t port() const;
  ServerStats stats() const;
  // Starts the threads and returns.
  void start();
  // Stops accepting, ends open streams (their terminating chunk), lets in-flight requests finish
  // (up to `grace`), then closes everything.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

  struct Impl;  // defined in server.cpp; public only so connection sessions there can reach it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace transnotes::http
