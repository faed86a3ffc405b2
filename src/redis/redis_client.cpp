#include "redis/redis_client.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <boost/url/parse.hpp>
#include <boost/uuid/detail/sha1.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <utility>
#include <vector>

#include "domain/errors.h"

namespace transnotes::redis {
namespace {

timeval to_timeval(std::chrono::milliseconds timeout) {
  auto ms = std::max<long long>(1, timeout.count());
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

int parse_int(std::string_view text, std::string_view what, int min, int max) {
  std::string copy(text);
  char* end = nullptr;
  errno = 0;
  long value = std::strtol(copy.c_str(), &end, 10);
  if (copy.empty() || *end != '\0' || errno != 0 || value < min || value > max) {
    throw std::invalid_argument("invalid Redis " + std::string(what) + ": '" + copy + "'");
  }
  return static_cast<int>(value);
}

Reply decode(const redisReply* raw) {
  Reply reply;
  switch (raw->type) {
    case REDIS_REPLY_STRING:
      reply.type = Reply::Type::String;
      reply.str.assign(raw->str, raw->len);
      break;
    case REDIS_REPLY_STATUS:
      reply.type = Reply::Type::Status;
      reply.str.assign(raw->str, raw->len);
      break;
    case REDIS_REPLY_ERROR:
      reply.type = Reply::Type::Error;
      reply.str.assign(raw->str, raw->len);
      break;
    case REDIS_REPLY_INTEGER:
      reply.type = Reply::Type::Integer;
      reply.integer = raw->integer;
      break;
    case REDIS_REPLY_ARRAY:
      reply.type = Reply::Type::Array;
      reply.elements.reserve(raw->elements);
      for (size_t i = 0; i < raw->elements; ++i) reply.elements.push_back(decode(raw->element[i]));
      break;
    default:
      reply.type = Reply::Type::Nil;
  }
  return reply;
}

std::int64_t now_ticks() { return std::chrono::steady_clock::now().time_since_epoch().count(); }

}  // namespace

bool Reply::is_error_code(std::string_view code) const {
  return is_error() && str.size() >= code.size() &&
         std::string_view(str).substr(0, code.size()) == code &&
         (str.size() == code.size() || str[code.size()] == ' ');
}

RedisConfig parse_redis_url(std::string_view url) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) throw std::invalid_argument("invalid Redis URL");
  const auto& uri = *parsed;
  if (uri.scheme() != "redis") {
    throw std::invalid_argument("unsupported Redis URL scheme '" + std::string(uri.scheme()) +
                                "' (expected redis://)");
  }
  RedisConfig config;
  if (!uri.host().empty()) config.host = uri.host_address();
  if (config.host.size() > 2 && config.host.front() == '[') {  // IPv6 literal
    config.host = config.host.substr(1, config.host.size() - 2);
  }
  if (uri.has_port()) config.port = parse_int(uri.port(), "port", 1, 65535);
  if (uri.has_userinfo()) {
    config.username = uri.user();
    if (uri.has_password()) config.password = uri.password();
  }
  std::string path = uri.path();
  while (!path.empty() && path.front() == '/') path.erase(0, 1);
  if (!path.empty()) config.db = parse_int(path, "db", 0, 1 << 20);
  return config;
}

LuaScript::LuaScript(std::string source) : source_(std::move(source)) {
  boost::uuids::detail::sha1 hasher;
  hasher.process_bytes(source_.data(), source_.size());
  boost::uuids::detail::sha1::digest_type digest;
  hasher.get_digest(digest);
  char hex[41];
  for (int i = 0; i < 5; ++i) std::snprintf(hex + i * 8, 9, "%08x", digest[i]);
  sha1_.assign(hex, 40);
}

RedisConnection::~RedisConnection() {
  if (context_ != nullptr) redisFree(context_);
}

std::unique_ptr<RedisConnection> RedisConnection::open(const RedisConfig& config) {
  redisContext* context =
      redisConnectWithTimeout(config.host.c_str(), config.port, to_timeval(config.connect_timeout));
  if (context == nullptr) throw Unavailable("Redis: cannot allocate connection");
  if (context->err != 0) {
    std::string message = context->errstr;
    redisFree(context);
    throw Unavailable("Redis " + config.host + ":" + std::to_string(config.port) +
                      " unreachable: " + message);
  }
  std::unique_ptr<RedisConnection> connection(new RedisConnection(context));
  redisEnableKeepAlive(context);
  connection->set_read_timeout(config.command_timeout);
  if (!config.password.empty()) {
    Reply reply = config.username.empty()
                      ? connection->command({"AUTH", config.password})
                      : connection->command({"AUTH", config.username, config.password});
    if (reply.is_error()) throw Unavailable("Redis AUTH failed: " + reply.str);
  }
  if (config.db != 0) {
    std::string db = std::to_string(config.db);
    Reply reply = connection->command({"SELECT", db});
    if (reply.is_error()) throw Unavailable("Redis SELECT failed: " + reply.str);
  }
  return connection;
}

void RedisConnection::set_read_timeout(std::chrono::milliseconds timeout) {
  if (timeout == read_timeout_) return;
  if (redisSetTimeout(context_, to_timeval(timeout)) != REDIS_OK) {
    broken_ = true;
    throw Unavailable("Redis: cannot set socket timeout");
  }
  read_timeout_ = timeout;
}

Reply RedisConnection::command(const std::vector<std::string_view>& args) {
  if (broken_) throw Unavailable("Redis connection is broken");
  std::vector<const char*> argv;
  std::vector<size_t> argvlen;
  argv.reserve(args.size());
  argvlen.reserve(args.size());
  for (std::string_view arg : args) {
    argv.push_back(arg.data());
    argvlen.push_back(arg.size());
  }
  auto* raw = static_cast<redisReply*>(
      redisCommandArgv(context_, static_cast<int>(args.size()), argv.data(), argvlen.data()));
  if (raw == nullptr) {
    int saved_errno = errno;
    broken_ = true;
    closed_by_peer_ =
        context_->err == REDIS_ERR_EOF ||
        (context_->err == REDIS_ERR_IO && (saved_errno == ECONNRESET || saved_errno == EPIPE));
    throw Unavailable(std::string("Redis command failed: ") +
                      (context_->err != 0 ? context_->errstr : "no reply"));
  }
  Reply reply = decode(raw);
  freeReplyObject(raw);
  return reply;
}

RedisClient::RedisClient(RedisConfig config) : config_(std::move(config)) {
  static std::once_flag sigpipe_once;
  std::call_once(sigpipe_once, [] {
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      std::signal(SIGPIPE, SIG_IGN);
    }
  });
}

RedisClient::~RedisClient() = default;

std::unique_ptr<RedisConnection> RedisClient::acquire(Pool& pool, bool& reused) {
  {
    std::lock_guard lock(pool.mutex);
    if (!pool.idle.empty()) {
      auto connection = std::move(pool.idle.back());
      pool.idle.pop_back();
      reused = true;
      return connection;
    }
  }
  reused = false;
  auto backoff =
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(config_.reconnect_backoff);
  auto blocked_until = dial_blocked_until_.load(std::memory_order_acquire);
  if (blocked_until != 0) {
    // The last dial failed. Until the backoff ends everyone fails fast; after it, one caller
    // probes (and holds the gate for the length of its dial) while the others keep failing fast,
    // so an unreachable host costs one connect timeout per window, not one per caller.
    auto now = now_ticks();
    auto probe_gate = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        config_.connect_timeout + config_.reconnect_backoff);
    if (now < blocked_until ||
        !dial_blocked_until_.compare_exchange_strong(blocked_until, now + probe_gate.count(),
                                                     std::memory_order_acq_rel)) {
      throw Unavailable("Redis unavailable (recent connection failure)");
    }
  }
  try {
    auto connection = RedisConnection::open(config_);
    dial_blocked_until_.store(0, std::memory_order_release);
    return connection;
  } catch (const Unavailable&) {
    dial_blocked_until_.store(now_ticks() + backoff.count(), std::memory_order_release);
    throw;
  }
}

void RedisClient::release(Pool& pool, std::unique_ptr<RedisConnection> connection) {
  if (connection->broken()) return;
  std::size_t limit = &pool == &blocking_pool_ ? config_.max_idle_blocking_connections
                                               : config_.max_idle_connections;
  std::lock_guard lock(pool.mutex);
  if (pool.idle.size() < limit) pool.idle.push_back(std::move(connection));
}

Reply RedisClient::run(Pool& pool, const std::vector<std::string_view>& args,
                       std::chrono::milliseconds read_timeout) {
  for (int attempt = 0;; ++attempt) {
    bool reused = false;
    auto connection = acquire(pool, reused);
    try {
      connection->set_read_timeout(read_timeout);
      Reply reply = connection->command(args);
      release(pool, std::move(connection));
      return reply;
    } catch (const Unavailable&) {
      // A pooled connection may have died while idle (server restart, CLIENT KILL, idle timeout).
      // Drop every idle one: they were most likely killed by the same event.
      drop_idle_connections();
      if (attempt == 0 && reused && connection->closed_by_peer()) continue;  // one fresh retry
      throw;
    }
  }
}

Reply RedisClient::command(const std::vector<std::string_view>& args) {
  return run(pool_, args, config_.command_timeout);
}

Reply RedisClient::blocking_command(const std::vector<std::string_view>& args,
                                    std::chrono::milliseconds read_timeout) {
  return run(blocking_pool_, args, read_timeout);
}

Reply RedisClient::eval(const LuaScript& script, const std::vector<std::string_view>& keys,
                        const std::vector<std::string_view>& args) {
  std::string key_count = std::to_string(keys.size());
  std::vector<std::string_view> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back("EVALSHA");
  argv.push_back(script.sha1());
  argv.push_back(key_count);
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  Reply reply = command(argv);
  if (!reply.is_error_code("NOSCRIPT")) return reply;
  argv[0] = "EVAL";
  argv[1] = script.source();
  return command(argv);
}

void RedisClient::drop_idle_connections() {
  std::vector<std::unique_ptr<RedisConnection>> dropped;
  for (Pool* pool : {&pool_, &blocking_pool_}) {
    std::lock_guard lock(pool->mutex);
    for (auto& connection : pool->idle) dropped.push_back(std::move(connection));
    pool->idle.clear();
  }
}  // connections close here, outside the locks

}  // namespace transnotes::redis
