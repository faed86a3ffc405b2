// GET /api/v1/events/ against real processes: the Server-Sent Events a user's stream carries,
// in the embedded default and across processes in production (PostgreSQL + Redis).
//
// The streams are read by a small SSE client over a raw socket (not e2e::request, which waits for
// a whole answer and checks it against the OpenAPI document's JSON schemas).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "e2e/fault_services.h"
#include "e2e/harness.h"

namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

struct Event {
  std::string id;
  std::string kind;  // "event:" field
  std::string data;
  json::object object() const { return json::parse(data).as_object(); }
};

// One GET /api/v1/events/ held open: reads the header, then decodes the chunked body into events
// and comments.
class EventStream {
 public:
  EventStream(int port, const std::string& token, const std::string& last_event_id = "")
      : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      ADD_FAILURE() << "cannot connect to port " << port;
      return;
    }
    std::string request =
        "GET /api/v1/events/ HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
        "\r\nAccept: text/event-stream\r\n";
    if (!token.empty()) request += "Authorization: Bearer " + token + "\r\n";
    if (!last_event_id.empty()) request += "Last-Event-ID: " + last_event_id + "\r\n";
    request += "\r\n";
    ::send(fd_, request.data(), request.size(), MSG_NOSIGNAL);
    const auto deadline = Clock::now() + seconds(20);
    std::size_t end = std::string::npos;
    while ((end = raw_.find("\r\n\r\n")) == std::string::npos && read_some(deadline)) {
    }
    if (end == std::string::npos) {
      ADD_FAILURE() << "no header within 20 s: " << raw_;
      return;
    }
    header_ = raw_.substr(0, end + 2);
    raw_.erase(0, end + 4);
    status_ = std::atoi(header_.substr(9, 3).c_str());
  }
  ~EventStream() { ::close(fd_); }
  EventStream(const EventStream&) = delete;
  EventStream& operator=(const EventStream&) = delete;

  int status() const { return status_; }
  // The header field's value (names compared without case); "" when absent.
  std::string header(const std::string& name) const {
    std::string lower_header = lower(header_);
    auto at = lower_header.find("\r\n" + lower(name) + ":");
    if (at == std::string::npos) return "";
    at += name.size() + 3;
    auto end = header_.find("\r\n", at);
    auto value = header_.substr(at, end - at);
    return value.substr(value.find_first_not_of(' '));
  }
  // The body so far when it is not a stream (an error answer).
  std::string rest() {
    read_some(Clock::now() + seconds(2));
    return raw_;
  }

  // The next event (comments are counted, not returned); nullopt when none came within `limit`.
  std::optional<Event> next(milliseconds limit = milliseconds(30'000)) {
    const auto deadline = Clock::now() + limit;
    for (;;) {
      if (auto event = take_event()) return event;
      if (!read_some(deadline)) return std::nullopt;
    }
  }
  // Waits for a ":" comment line; true when one came within `limit`.
  bool comment(milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    for (;;) {
      // Events met on the way are kept for next().
      while (auto event = parse_event()) skipped_.push_back(*event);
      if (comments_ > 0) return true;
      if (!read_some(deadline)) return false;
    }
  }

 private:
  static std::string lower(std::string text) {
    for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
  }

  // Moves whole chunks from raw_ into body_.
  void decode_chunks() {
    for (;;) {
      auto line_end = raw_.find("\r\n");
      if (line_end == std::string::npos) return;
      const std::size_t size = std::stoul(raw_.substr(0, line_end), nullptr, 16);
      if (raw_.size() < line_end + 2 + size + 2) return;
      body_ += raw_.substr(line_end + 2, size);
      raw_.erase(0, line_end + 2 + size + 2);
      if (size == 0) ended_ = true;
    }
  }

  std::optional<Event> take_event() {
    if (!skipped_.empty()) {
      Event event = skipped_.front();
      skipped_.erase(skipped_.begin());
      return event;
    }
    return parse_event();
  }

  // The next whole event in the body; comments on the way are counted.
  std::optional<Event> parse_event() {
    decode_chunks();
    for (;;) {
      auto end = body_.find("\n\n");
      if (end == std::string::npos) return std::nullopt;
      std::string block = body_.substr(0, end + 1);
      body_.erase(0, end + 2);
      Event event;
      bool any_field = false;
      std::size_t pos = 0;
      while (pos < block.size()) {
        auto eol = block.find('\n', pos);
        std::string line = block.substr(pos, eol - pos);
        pos = eol + 1;
        if (line.starts_with(":")) {
          ++comments_;
          continue;
        }
        auto colon = line.find(':');
        std::string field = line.substr(0, colon);
        std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
        if (value.starts_with(" ")) value.erase(0, 1);
        any_field = true;
        if (field == "id") event.id = value;
        if (field == "event") event.kind = value;
        if (field == "data") event.data += value;
      }
      if (any_field) return event;
    }
  }

  bool read_some(Clock::time_point deadline) {
    if (ended_) return false;
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    char buf[65536];
    const auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      ended_ = true;
      return false;
    }
    raw_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  int fd_;
  std::string raw_;
  std::string header_;
  std::string body_;
  int status_ = 0;
  bool ended_ = false;
  int comments_ = 0;
  std::vector<Event> skipped_;
};

std::int64_t create_note(int port, const std::string& title,
                         const std::string& text = "Hello world.") {
  auto res = e2e::request(port, "POST", "/api/v1/notes/",
                          json::serialize(json::object{{"title", title}, {"original_text", text}}));
  EXPECT_EQ(res.status, 201) << res.body;
  return res.json().at("id").as_int64();
}

std::int64_t translate(int port, std::int64_t note_id) {
  auto res = e2e::request(port, "POST", "/api/v1/notes/" + std::to_string(note_id) + "/translate/",
                          R"({"target_language": "es"})");
  EXPECT_EQ(res.status, 202) << res.body;
  return res.json().at("translation").at("id").as_int64();
}

// The events of one translation, from the note's creation to its translation landing, in order:
// note created, job queued, running, succeeded, note updated. Returns the last event.
Event expect_translation_events(EventStream& stream, std::int64_t note_id, std::int64_t job_id) {
  auto created = stream.next();
  EXPECT_TRUE(created);
  if (!created) return {};
  EXPECT_EQ(created->kind, "note");
  EXPECT_EQ(created->object().at("action"), "created");
  EXPECT_EQ(created->object().at("note").at("id").as_int64(), note_id);
  Event last = *created;
  for (const char* status : {"queued", "running", "succeeded"}) {
    auto job = stream.next();
    EXPECT_TRUE(job) << "no job event '" << status << "'";
    if (!job) return last;
    EXPECT_EQ(job->kind, "job") << job->data;
    EXPECT_EQ(job->object().at("id").as_int64(), job_id);
    EXPECT_EQ(job->object().at("note_id").as_int64(), note_id);
    EXPECT_EQ(job->object().at("status"), status) << job->data;
    EXPECT_GT(std::stoull(job->id), std::stoull(last.id));
    last = *job;
  }
  EXPECT_EQ(last.object().at("text"), "Hola Mundo.");
  auto updated = stream.next();
  EXPECT_TRUE(updated);
  if (!updated) return last;
  EXPECT_EQ(updated->kind, "note");
  EXPECT_EQ(updated->object().at("action"), "updated");
  EXPECT_EQ(updated->object().at("note").at("id").as_int64(), note_id);
  EXPECT_EQ(updated->object().at("note").at("translated_text"), "Hola Mundo.");
  EXPECT_GT(std::stoull(updated->id), std::stoull(last.id));
  return *updated;
}

TEST(Events, EmbeddedStreamFollowsATranslationAndResumes) {
  e2e::Service service({});
  const int port = service.port();
  const std::string token = e2e::default_token(port);
  std::string last_id;
  {
    EventStream stream(port, token);
    ASSERT_EQ(stream.status(), 200);
    EXPECT_EQ(stream.header("Content-Type"), "text/event-stream");
    EXPECT_EQ(stream.header("Cache-Control"), "no-cache");
    EXPECT_EQ(stream.header("X-Accel-Buffering"), "no");
    EXPECT_EQ(stream.header("Transfer-Encoding"), "chunked");
    const auto note = create_note(port, "live");
    const auto job = translate(port, note);
    last_id = expect_translation_events(stream, note, job).id;
    ASSERT_FALSE(last_id.empty());
  }
  // Missed while disconnected: a note made and deleted.
  const auto missed = create_note(port, "missed");
  ASSERT_EQ(e2e::request(port, "DELETE", "/api/v1/notes/" + std::to_string(missed) + "/").status,
            204);
  EventStream resumed(port, token, last_id);
  ASSERT_EQ(resumed.status(), 200);
  auto created = resumed.next();
  ASSERT_TRUE(created);
  EXPECT_EQ(created->object().at("action"), "created");
  EXPECT_EQ(created->object().at("note").at("id").as_int64(), missed);
  auto deleted = resumed.next();
  ASSERT_TRUE(deleted);
  EXPECT_EQ(deleted->kind, "note");
  EXPECT_EQ(deleted->data,
            "{\"action\":\"deleted\",\"note\":{\"id\":" + std::to_string(missed) + "}}");
  // Then live again.
  create_note(port, "after resume");
  auto live = resumed.next();
  ASSERT_TRUE(live);
  EXPECT_EQ(live->object().at("note").at("title"), "after resume");
}

TEST(Events, AnIdOlderThanTheHistoryGetsAReset) {
  e2e::Service service({});
  const int port = service.port();
  create_note(port, "something happened");
  EventStream stream(port, e2e::default_token(port), "1");
  ASSERT_EQ(stream.status(), 200);
  auto reset = stream.next();
  ASSERT_TRUE(reset);
  EXPECT_EQ(reset->kind, "reset");
  EXPECT_EQ(reset->data, "{}");
  // Resuming from the reset's id is whole again.
  create_note(port, "later");
  EventStream resumed(port, e2e::default_token(port), reset->id);
  auto later = resumed.next();
  ASSERT_TRUE(later);
  EXPECT_EQ(later->kind, "note");
  EXPECT_EQ(later->object().at("note").at("title"), "later");
}

TEST(Events, AUserNeverSeesAnotherUsersEvents) {
  e2e::Service service({});
  const int port = service.port();
  const auto bob = e2e::register_and_login(port, "events-bob");
  EventStream alice_stream(port, e2e::default_token(port));
  EventStream bob_stream(port, bob.access);
  ASSERT_EQ(bob_stream.status(), 200);
  const auto alice_note = create_note(port, "alice's");
  translate(port, alice_note);
  auto alice_first = alice_stream.next();
  ASSERT_TRUE(alice_first);
  EXPECT_EQ(alice_first->object().at("note").at("id").as_int64(), alice_note);
  auto res =
      e2e::request(port, "POST", "/api/v1/notes/", R"({"title": "bob's", "original_text": "Hi."})",
                   "application/json", e2e::bearer(bob.access));
  ASSERT_EQ(res.status, 201) << res.body;
  // Bob's first event is his own note: nothing of Alice's came before it.
  auto bob_first = bob_stream.next();
  ASSERT_TRUE(bob_first);
  EXPECT_EQ(bob_first->object().at("note").at("title"), "bob's");
  EXPECT_FALSE(bob_stream.next(milliseconds(1500))) << "bob got a second event";
}

TEST(Events, WithoutAValidTokenIs401) {
  e2e::Service service({});
  EventStream anonymous(service.port(), "");
  EXPECT_EQ(anonymous.status(), 401);
  EXPECT_NE(anonymous.header("WWW-Authenticate"), "");
  EventStream forged(service.port(), "not-a-token");
  EXPECT_EQ(forged.status(), 401);
  // A token in the query string is not a way in.
  auto query = e2e::request(service.port(), "GET",
                            "/api/v1/events/?token=" + e2e::default_token(service.port()), "",
                            "application/json", {{"Authorization", ""}});
  EXPECT_EQ(query.status, 401) << query.body;
}

TEST(Events, AQuietStreamGetsKeepAliveComments) {
  e2e::Service service(e2e::ServiceOptions{.args = {"--event-keepalive-seconds", "1"}});
  EventStream stream(service.port(), e2e::default_token(service.port()));
  ASSERT_EQ(stream.status(), 200);
  EXPECT_TRUE(stream.comment(milliseconds(5'000)));
}

TEST(Events, StreamsEndWhenTheServerStops) {
  e2e::Service service({});
  EventStream stream(service.port(), e2e::default_token(service.port()));
  ASSERT_EQ(stream.status(), 200);
  const auto began = Clock::now();
  EXPECT_EQ(service.terminate(), 0);
  EXPECT_LT(Clock::now() - began, seconds(8)) << "shutdown waited on the open stream";
  EXPECT_FALSE(stream.next(milliseconds(2000)));
}

// Production: two API processes and a worker process over PostgreSQL and Redis. A stream held on
// the first API process sees a note made through the second and the job the worker finished.
TEST(Events, ProductionStreamOnOneApiProcessSeesTheWorkerFinishAJobAskedOfAnother) {
  if (!std::getenv("TRANSNOTES_TEST_DATABASE_URL")) {
    GTEST_FAIL() << "TRANSNOTES_TEST_DATABASE_URL unset: the production test needs it";
  }
  if (!faults::RedisServer::available()) GTEST_FAIL() << "redis-server not installed";
  faults::RedisServer redis;
  const std::map<std::string, std::string> env{{"DATABASE_URL", e2e::database_url_for("postgres")},
                                               {"REDIS_URL", redis.url()}};
  e2e::Service api1({.args = {"--workers", "0"}, .env = env});
  e2e::Service api2({.args = {"--workers", "0"}, .env = env});
  e2e::Service worker({.args = {"--workers", "1"}, .env = env, .subcommand = "worker"});
  EventStream stream(api1.port(), e2e::default_token(api1.port()));
  ASSERT_EQ(stream.status(), 200);
  const auto note = create_note(api2.port(), "across processes");
  const auto job = translate(api2.port(), note);
  const auto last = expect_translation_events(stream, note, job);
  // The same ids on the other API process: resuming there from an earlier point works too.
  create_note(api1.port(), "seen from both");
  EventStream other(api2.port(), e2e::default_token(api2.port()), last.id);
  auto next = other.next();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->object().at("note").at("title"), "seen from both");
  auto same = stream.next();
  ASSERT_TRUE(same);
  EXPECT_EQ(same->id, next->id);
}

}  // namespace
