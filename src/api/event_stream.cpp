#include "api/event_stream.h"

#include <charconv>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

namespace transnotes::api {

namespace {

// Where a subscription's events go: held until the stream opens, then written straight to it.
class Mailbox {
 public:
  explicit Mailbox(std::size_t max_held) : max_held_(max_held) {}

  void deliver(const UserEvent& event) {
    std::lock_guard lock(mutex_);
    last_id_ = event.id;
    if (stream_) {
      // A false write means the stream ended (or the client was too slow and is being dropped):
      // the subscription goes with the stream.
      stream_->write(format_event(event));
      return;
    }
    if (overflowed_) return;
    std::string text = format_event(event);
    if (held_.size() + text.size() > max_held_) {
      overflowed_ = true;
      held_.clear();
      return;
    }
    held_ += text;
  }

  void open(std::shared_ptr<http::ResponseStream> stream) {
    std::lock_guard lock(mutex_);
    if (overflowed_) {
      // Too much to replay: the client reloads and resumes from the newest id instead.
      held_ = format_event(UserEvent{last_id_, "reset", "{}"});
    }
    if (!held_.empty()) stream->write(std::exchange(held_, {}));
    stream_ = std::move(stream);
  }

 private:
  std::mutex mutex_;
  const std::size_t max_held_;
  std::string held_;
  bool overflowed_ = false;
  std::uint64_t last_id_ = 0;
  std::shared_ptr<http::ResponseStream> stream_;
};

// What the open stream keeps alive: dropping it (the stream ended) unsubscribes.
struct Listening {
  std::shared_ptr<Mailbox> mailbox;
  std::unique_ptr<UserEvents::Subscription> subscription;
};

std::optional<std::uint64_t> last_event_id(const http::Request& request) {
  const auto sent = request.header("Last-Event-ID");
  if (sent.empty()) return std::nullopt;
  std::uint64_t id = 0;
  auto [end, error] = std::from_chars(sent.data(), sent.data() + sent.size(), id);
  if (error != std::errc() || end != sent.data() + sent.size()) {
    return std::numeric_limits<std::uint64_t>::max();  // newer than anything: a reset
  }
  return id;
}

}  // namespace

std::string format_event(const UserEvent& event) {
  std::string out;
  out.reserve(event.data.size() + event.kind.size() + 40);
  out.append("id: ").append(std::to_string(event.id));
  out.append("\nevent: ").append(event.kind);
  out.append("\ndata: ").append(event.data);
  out.append("\n\n");
  return out;
}

http::Response event_stream(UserEvents& events, UserId owner, const http::Request& request,
                            const EventStreamOptions& options) {
  auto listening = std::make_shared<Listening>();
  listening->mailbox = std::make_shared<Mailbox>(options.max_replay_bytes);
  listening->subscription = events.subscribe(
      owner, last_event_id(request),
      [mailbox = listening->mailbox](const UserEvent& event) { mailbox->deliver(event); });
  http::Response response{200, "", "text/event-stream", {}};
  response.headers.emplace_back("Cache-Control", "no-cache");
  // nginx would otherwise hold events back in its buffer.
  response.headers.emplace_back("X-Accel-Buffering", "no");
  response.stream = std::make_shared<http::StreamedBody>();
  response.stream->heartbeat = options.keepalive;
  response.stream->heartbeat_chunk = ": keep-alive\n\n";
  response.stream->on_open = [listening](std::shared_ptr<http::ResponseStream> stream) {
    listening->mailbox->open(std::move(stream));
  };
  return response;
}

}  // namespace transnotes::api
