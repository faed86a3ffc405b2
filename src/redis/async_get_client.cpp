#include "redis/async_get_client.h"

#include <hiredis/hiredis.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <deque>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

namespace transnotes::redis {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Counters {
  std::atomic<std::uint64_t> sent{0}, failed{0}, refused{0}, connects{0};
};

void append_command(std::string& out, std::initializer_list<std::string_view> args) {
  out += '*';
  out += std::to_string(args.size());
  out += "\r\n";
  for (std::string_view arg : args) {
    out += '$';
    out += std::to_string(arg.size());
    out += "\r\n";
    out.append(arg);
    out += "\r\n";
  }
}

struct ReaderDeleter {
  void operator()(redisReader* reader) const { redisReaderFree(reader); }
};

// One Redis connection with its queue of outstanding commands. Socket, resolver, timer and
// reader are touched only on the I/O thread; the rest is guarded by mutex_. Every handler
// carries the generation it was started in and does nothing once the connection has failed
// (or been redialed) since.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::io_context& ioc, const RedisConfig& config, Counters& counters)
      : ioc_(ioc),
        config_(config),
        counters_(counters),
        socket_(ioc),
        resolver_(ioc),
        timer_(ioc) {}

  // Any thread. See AsyncGetClient::get.
  bool get(std::string_view key, AsyncGetClient::Callback& done) {
    std::unique_lock lock(mutex_);
    if (state_ == State::kStopped || state_ == State::kConnecting) return false;
    if (state_ == State::kIdle) {
      if (Clock::now() < retry_at_) return false;
      state_ = State::kConnecting;
      const std::uint64_t gen = ++generation_;
      lock.unlock();
      asio::post(ioc_, [self = shared_from_this(), gen] { self->connect(gen); });
      return false;
    }
    if (pending_.empty()) last_progress_ = Clock::now();
    append_command(out_, {"GET", key});
    pending_.push_back(Entry{std::move(done), false});
    if (!writing_) {
      writing_ = true;
      const std::uint64_t gen = generation_;
      lock.unlock();
      asio::post(ioc_, [self = shared_from_this(), gen] { self->write_queued(gen); });
    }
    return true;
  }

  // I/O thread: fails everything outstanding and refuses all later gets.
  void stop() {
    std::uint64_t gen;
    {
      std::lock_guard lock(mutex_);
      state_ = State::kStopped;
      gen = generation_;
    }
    fail(gen, "redis client stopped");
  }

 private:
  enum class State { kIdle, kConnecting, kReady, kStopped };
  struct Entry {
    AsyncGetClient::Callback done;
    bool handshake;  // AUTH/SELECT sent by the connection itself
  };

  bool stale(std::uint64_t gen) {
    std::lock_guard lock(mutex_);
    return gen != generation_;
  }

  void connect(std::uint64_t gen) {
    if (stale(gen)) return;
    arm_timer(gen, config_.connect_timeout, "connect timed out");
    resolver_.async_resolve(
        config_.host, std::to_string(config_.port),
        [self = shared_from_this(), gen](boost::system::error_code ec,
                                         const tcp::resolver::results_type& endpoints) {
          if (self->stale(gen)) return;
          if (ec) return self->fail(gen, "cannot resolve redis host: " + ec.message());
          asio::async_connect(self->socket_, endpoints,
                              [self, gen](boost::system::error_code ec, const tcp::endpoint&) {
                                if (self->stale(gen)) return;
                                if (ec) return self->fail(gen, "cannot connect: " + ec.message());
                                self->connected(gen);
                              });
        });
  }

  void connected(std::uint64_t gen) {
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    reader_.reset(redisReaderCreate());
    counters_.connects.fetch_add(1, std::memory_order_relaxed);
    std::string handshake;
    std::deque<Entry> handshake_entries;
    if (!config_.password.empty()) {
      if (config_.username.empty()) {
        append_command(handshake, {"AUTH", config_.password});
      } else {
        append_command(handshake, {"AUTH", config_.username, config_.password});
      }
      handshake_entries.push_back(Entry{nullptr, true});
    }
    if (config_.db != 0) {
      append_command(handshake, {"SELECT", std::to_string(config_.db)});
      handshake_entries.push_back(Entry{nullptr, true});
    }
    {
      std::lock_guard lock(mutex_);
      if (gen != generation_) return;
      state_ = State::kReady;
      out_ = handshake + out_;
      for (auto it = handshake_entries.rbegin(); it != handshake_entries.rend(); ++it) {
        pending_.push_front(std::move(*it));
      }
      last_progress_ = Clock::now();
      writing_ = !out_.empty();
    }
    read_replies(gen);
    watch(gen);
    write_queued(gen);
  }

  // Hands everything queued to the socket, one async_write at a time.
  void write_queued(std::uint64_t gen) {
    {
      std::lock_guard lock(mutex_);
      if (gen != generation_) return;
      if (out_.empty()) {
        writing_ = false;
        return;
      }
      writing_buf_.swap(out_);
      out_.clear();
    }
    asio::async_write(socket_, asio::buffer(writing_buf_),
                      [self = shared_from_this(), gen](boost::system::error_code ec, std::size_t) {
                        if (self->stale(gen)) return;
                        if (ec) return self->fail(gen, "write failed: " + ec.message());
                        self->write_queued(gen);
                      });
  }

  void read_replies(std::uint64_t gen) {
    socket_.async_read_some(
        asio::buffer(read_buf_),
        [self = shared_from_this(), gen](boost::system::error_code ec, std::size_t n) {
          if (self->stale(gen)) return;
          if (ec) {
            return self->fail(gen, ec == asio::error::eof ? "connection closed by redis"
                                                          : "read failed: " + ec.message());
          }
          if (self->dispatch(gen, n)) self->read_replies(gen);
        });
  }

  // Parses the replies in the first n bytes of read_buf_ and completes their gets in order.
  // False when the connection failed meanwhile.
  bool dispatch(std::uint64_t gen, std::size_t n) {
    if (redisReaderFeed(reader_.get(), read_buf_.data(), n) != REDIS_OK) {
      fail(gen, "unreadable reply from redis");
      return false;
    }
    for (;;) {
      void* raw = nullptr;
      if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK) {
        fail(gen, "unreadable reply from redis");
        return false;
      }
      if (raw == nullptr) return true;
      auto* reply = static_cast<redisReply*>(raw);
      AsyncGetClient::Outcome outcome = AsyncGetClient::Outcome::kFailed;
      std::string value;
      if (reply->type == REDIS_REPLY_STRING) {
        outcome = AsyncGetClient::Outcome::kValue;
        value.assign(reply->str, reply->len);
      } else if (reply->type == REDIS_REPLY_NIL) {
        outcome = AsyncGetClient::Outcome::kNil;
      } else if (reply->type == REDIS_REPLY_STATUS) {
        outcome = AsyncGetClient::Outcome::kValue;  // +OK of AUTH/SELECT
      } else if (reply->type == REDIS_REPLY_ERROR) {
        value.assign(reply->str, reply->len);
      } else {
        value = "unexpected reply type";
      }
      freeReplyObject(reply);
      Entry entry;
      {
        std::lock_guard lock(mutex_);
        if (gen != generation_) return false;
        if (pending_.empty()) {
          entry.handshake = true;  // a reply nobody asked for: the stream is out of step
          outcome = AsyncGetClient::Outcome::kFailed;
          value = "unexpected reply from redis";
        } else {
          entry = std::move(pending_.front());
          pending_.pop_front();
          last_progress_ = Clock::now();
        }
      }
      if (entry.handshake) {
        if (outcome == AsyncGetClient::Outcome::kFailed) {
          fail(gen, "redis refused the connection setup: " + value);
          return false;
        }
        continue;
      }
      if (outcome == AsyncGetClient::Outcome::kFailed) {
        counters_.failed.fetch_add(1, std::memory_order_relaxed);
      }
      entry.done(outcome, std::move(value));
    }
  }

  // While commands are outstanding, fails the connection if no reply came for command_timeout.
  void watch(std::uint64_t gen) {
    const auto period = std::max(std::chrono::milliseconds(5), config_.command_timeout / 4);
    timer_.expires_after(period);
    timer_.async_wait([self = shared_from_this(), gen](boost::system::error_code ec) {
      if (ec) return;  // cancelled: the connection failed or was redialed
      bool overdue = false;
      {
        std::lock_guard lock(self->mutex_);
        if (gen != self->generation_) return;
        overdue = !self->pending_.empty() &&
                  Clock::now() - self->last_progress_ > self->config_.command_timeout;
      }
      if (overdue) return self->fail(gen, "no reply from redis in time");
      self->watch(gen);
    });
  }

  void arm_timer(std::uint64_t gen, std::chrono::milliseconds after, std::string reason) {
    timer_.expires_after(after);
    timer_.async_wait(
        [self = shared_from_this(), gen, reason = std::move(reason)](boost::system::error_code ec) {
          if (ec) return;
          bool still_connecting;
          {
            std::lock_guard lock(self->mutex_);
            still_connecting = gen == self->generation_ && self->state_ == State::kConnecting;
          }
          if (still_connecting) self->fail(gen, reason);
        });
  }

  // I/O thread. Closes the connection and completes its outstanding gets with kFailed.
  void fail(std::uint64_t gen, const std::string& reason) {
    std::deque<Entry> failed;
    {
      std::lock_guard lock(mutex_);
      if (gen != generation_) return;
      ++generation_;
      if (state_ != State::kStopped) state_ = State::kIdle;
      retry_at_ = Clock::now() + config_.reconnect_backoff;
      failed.swap(pending_);
      out_.clear();
      writing_ = false;
    }
    boost::system::error_code ignored;
    socket_.close(ignored);
    timer_.cancel();
    resolver_.cancel();
    for (auto& entry : failed) {
      if (entry.handshake) continue;
      counters_.failed.fetch_add(1, std::memory_order_relaxed);
      entry.done(AsyncGetClient::Outcome::kFailed, reason);
    }
  }

  asio::io_context& ioc_;
  const RedisConfig& config_;
  Counters& counters_;

  std::mutex mutex_;
  State state_ = State::kIdle;
  std::uint64_t generation_ = 0;
  Clock::time_point retry_at_{};
  Clock::time_point last_progress_{};
  std::string out_;
  bool writing_ = false;
  std::deque<Entry> pending_;

  tcp::socket socket_;
  tcp::resolver resolver_;
  asio::steady_timer timer_;
  std::string writing_buf_;
  std::array<char, 64 * 1024> read_buf_{};
  std::unique_ptr<redisReader, ReaderDeleter> reader_;
};

}  // namespace

class AsyncGetClient::Impl {
 public:
  Impl(const RedisConfig& config, int connections) : config_(config) {
    for (int i = 0; i < std::max(1, connections); ++i) {
      connections_.push_back(std::make_shared<Connection>(ioc_, config_, counters_));
    }
    thread_ = std::thread([this] { ioc_.run(); });
  }

  ~Impl() {
    asio::post(ioc_, [this] {
      for (auto& connection : connections_) connection->stop();
      ioc_.stop();  // the stopped connections' handlers would do nothing
    });
    thread_.join();
  }

  bool get(std::string_view key, Callback& done) {
    const std::size_t n = connections_.size();
    const std::size_t first = next_.fetch_add(1, std::memory_order_relaxed);
    for (std::size_t i = 0; i < n; ++i) {
      if (connections_[(first + i) % n]->get(key, done)) {
        counters_.sent.fetch_add(1, std::memory_order_relaxed);
        return true;
      }
    }
    counters_.refused.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

  Stats stats() const {
    return Stats{counters_.sent.load(), counters_.failed.load(), counters_.refused.load(),
                 counters_.connects.load()};
  }

 private:
  RedisConfig config_;
  Counters counters_;
  asio::io_context ioc_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_{ioc_.get_executor()};
  std::vector<std::shared_ptr<Connection>> connections_;
  std::atomic<std::size_t> next_{0};
  std::thread thread_;
};

AsyncGetClient::AsyncGetClient(const RedisConfig& config, int connections)
    : impl_(std::make_unique<Impl>(config, connections)) {}

AsyncGetClient::~AsyncGetClient() = default;

bool AsyncGetClient::get(std::string_view key, Callback done) { return impl_->get(key, done); }

AsyncGetClient::Stats AsyncGetClient::stats() const { return impl_->stats(); }

}  // namespace transnotes::redis
