// The Api as the server calls it, over a real SQLite store, the in-process cache and job bus.
#include "api/api.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <filesystem>
#include <functional>
#include <thread>

#include "cache/memory_cache.h"
#include "domain/text.h"
#include "queue/memory_bus.h"
#include "storage/storage.h"

namespace transnotes::api {
namespace {

namespace json = boost::json;

// Covers en <-> es, so translate requests can be accepted; nothing here runs a translation.
class TwoLanguages final : public Translator {
 public:
  std::vector<SupportedPair> pairs() const override {
    return {{{"en", "es"}, "test"}, {{"es", "en"}, "test"}};
  }
  std::optional<std::string> engine_for(const std::string& source,
                                        const std::string& target) const override {
    if ((source == "en" && target == "es") || (source == "es" && target == "en")) return "test";
    return std::nullopt;
  }
  using Translator::translate;
  TranslationOutput translate(const std::string&, const std::string&, const std::string& text,
                              const std::function<bool()>&) override {
    return {text, "test"};
  }
};

class ApiUnit : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = std::filesystem::temp_directory_path() /
                 ("transnotes-api-test-" + std::to_string(::getpid()) + "-" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(directory_);
    std::filesystem::create_directories(directory_);
    storage::StorageConfig config;
    config.database_url = "sqlite:///" + (directory_ / "notes.db").string();
    store_ = storage::open_store(config);
    store_->migrate();
    notes_ = std::make_unique<NoteService>(*store_, cache_, bus_, translator_, render_note);
  }
  void TearDown() override {
    api_.reset();
    notes_.reset();
    store_.reset();
    std::filesystem::remove_all(directory_);
  }

  // The open API (no accounts) unless the options say otherwise; AuthUnit tests JWT.
  Api& api(ApiOptions options = open_options()) {
    api_ = std::make_unique<Api>(ApiServices{*notes_}, std::move(options));
    return *api_;
  }
  static ApiOptions open_options() {
    ApiOptions options;
    options.auth_mode = AuthMode::kOpen;
    return options;
  }

  static http::Request make(std::string method, std::string target, std::string body = "",
                            std::vector<std::pair<std::string, std::string>> headers = {
                                {"Host", "127.0.0.1:8000"}}) {
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    http::Request request;
    request.method = std::move(method);
    request.target = std::move(target);
    request.headers = std::move(headers);
    request.body = std::move(body);
    request.remote_address = "127.0.0.1";
    return request;
  }

  static std::string header(const http::Response& response, std::string_view name) {
    for (const auto& [key, value] : response.headers) {
      if (key == name) return value;
    }
    return {};
  }

  std::int64_t create(Api& api, const std::string& title, const std::string& text) {
    auto response =
        api.handle(make("POST", "/api/v1/notes/",
                        json::serialize(json::object{{"title", title}, {"original_text", text}})));
    EXPECT_EQ(response.status, 201) << response.body;
    return json::parse(response.body).at("id").as_int64();
  }

  std::filesystem::path directory_;
  std::unique_ptr<Store> store_;
  cache::MemoryNoteCache cache_;
  queue::MemoryJobBus bus_;
  TwoLanguages translator_;
  std::unique_ptr<NoteService> notes_;
  std::unique_ptr<Api> api_;
};

TEST_F(ApiUnit, HeadGivesGetsStatusBodyAndType) {
  Api& service = api();
  auto id = create(service, "T", "Text");
  for (std::string target : {"/api/v1/notes/" + std::to_string(id) + "/",
                             std::string("/api/v1/notes/?limit=1"), std::string("/api/v1/stats/"),
                             std::string("/api/v1/notes/999/"), std::string("/health/")}) {
    auto get = service.handle(make("GET", target));
    auto head = service.handle(make("HEAD", target));
    EXPECT_EQ(head.status, get.status) << target;
    EXPECT_EQ(head.payload(), get.payload()) << target;
    EXPECT_FALSE(head.payload().empty()) << target;
    EXPECT_EQ(head.content_type, get.content_type) << target;
    EXPECT_EQ(head.headers, get.headers) << target;
  }
}

TEST_F(ApiUnit, ErrorsKeepTheirStatusAndShape) {
  Api& service = api();
  auto res = service.handle(make("DELETE", "/api/v1/notes/"));
  EXPECT_EQ(res.status, 405);
  EXPECT_EQ(res.body, R"({"detail":"Method \"DELETE\" not allowed."})");
  EXPECT_EQ(header(res, "Allow"), "GET, POST, HEAD, OPTIONS");
  res = service.handle(make("GET", "/api/v1/notes/abc/"));
  EXPECT_EQ(res.status, 404);
  EXPECT_EQ(res.body, R"({"detail":"Not found."})");
  res = service.handle(make("POST", "/api/v1/notes/", R"({"original_text": "x"})"));
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(res.body, R"({"title":["This field is required."]})");
  res = service.handle(make("POST", "/api/v1/notes/", "{"));
  EXPECT_EQ(res.status, 400);
  EXPECT_TRUE(res.body.starts_with(R"({"detail":"JSON parse error - )")) << res.body;
  auto unsupported = make("POST", "/api/v1/notes/", "x", {{"Content-Type", "text/plain"}});
  res = service.handle(unsupported);
  EXPECT_EQ(res.status, 415);
  EXPECT_EQ(res.body, R"({"detail":"Unsupported media type \"text/plain\" in request."})");
  res = service.handle(make("GET", "/api/v1/notes/", "", {{"Host", "a b"}}));
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(res.body, R"({"detail":"Invalid Host header."})");
  EXPECT_EQ(service.counters().responses_5xx.load(), 0u);
}

TEST_F(ApiUnit, ABadHostIsRefusedEvenWhenTheCacheHoldsTheNote) {
  Api& service = api();
  auto id = create(service, "T", "Text");
  auto target = "/api/v1/notes/" + std::to_string(id) + "/";
  ASSERT_EQ(service.handle(make("GET", target)).status, 200);  // fills the cache
  ASSERT_TRUE(service.try_cached(make("GET", target)));
  auto bad = make("GET", target, "", {{"Host", "x>, <http://evil/>"}});
  EXPECT_FALSE(service.try_cached(bad));
  EXPECT_EQ(service.handle(bad).status, 400);
}

TEST_F(ApiUnit, PagesStopAtTheByteBudgetAndNextContinuesExactly) {
  ApiOptions options = open_options();
  options.max_list_bytes = 4096;
  Api& service = api(options);
  std::vector<std::int64_t> created;
  for (int i = 0; i < 12; ++i)
    created.push_back(create(service, std::string("n").append(std::to_string(i)),
                             std::string(1000, 'a' + i % 26)));
  std::vector<std::int64_t> seen;
  std::string target = "/api/v1/notes/?limit=1000";
  for (int pages = 0; !target.empty() && pages < 20; ++pages) {
    auto res = service.handle(make("GET", target));
    ASSERT_EQ(res.status, 200);
    EXPECT_LE(res.payload().size(), options.max_list_bytes);
    auto items = json::parse(res.payload()).as_array();
    ASSERT_FALSE(items.empty());
    for (const auto& item : items) seen.push_back(item.at("id").as_int64());
    std::string links = header(res, "Link");
    auto next = links.find(">; rel=\"next\"");
    if (next == std::string::npos) {
      target.clear();
    } else {
      // Links are absolute; requests carry the path.
      auto start = links.rfind('<', next) + 1;
      target = links.substr(start, next - start);
      target = target.substr(target.find("/api/"));
      EXPECT_NE(target.find("limit=1000&offset=" + std::to_string(seen.size())), std::string::npos)
          << target;
    }
  }
  std::vector<std::int64_t> newest_first(created.rbegin(), created.rend());
  EXPECT_EQ(seen, newest_first);
}

// What a list page must show: each note's id, title and translation, newest first, read from
// the store directly.
std::string describe_notes(const std::vector<Note>& notes) {
  std::string out;
  for (const Note& note : notes) {
    out +=
        std::to_string(note.id) + ":" + note.title + ":" + note.translated_text.value_or("-") + " ";
  }
  return out;
}

std::string describe_page(std::string_view body) {
  std::string out;
  const json::value page = json::parse(body);
  for (const auto& item : page.as_array()) {
    const auto& note = item.as_object();
    out += std::to_string(note.at("id").as_int64()) + ":" +
           std::string(note.at("title").as_string()) + ":" +
           (note.at("translated_text").is_null()
                ? std::string("-")
                : std::string(note.at("translated_text").as_string())) +
           " ";
  }
  return out;
}

ApiOptions cached_list_options() {
  ApiOptions options;
  options.auth_mode = AuthMode::kOpen;
  options.list_cache_bytes = 1 << 20;
  return options;
}

TEST_F(ApiUnit, ACachedListPageIsSharedNotCopiedAndNeverStaleWhoeverWrites) {
  Api& service = api(cached_list_options());
  // Another process's view of the same database: its own store and service.
  storage::StorageConfig config;
  config.database_url = "sqlite:///" + (directory_ / "notes.db").string();
  auto other_store = storage::open_store(config);
  cache::MemoryNoteCache other_cache;
  NoteService other_notes(*other_store, other_cache, bus_, translator_, render_note);
  Api other(ApiServices{other_notes}, cached_list_options());

  const std::string target = "/api/v1/notes/?limit=1000";
  auto list = [&] {
    auto response = service.handle(make("GET", target));
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(describe_page(response.payload()),
              describe_notes(store_->list_notes(kOpenModeOwner, {1000, 0})));
    return response;
  };
  const std::int64_t first = create(service, "first", "one");
  const std::int64_t second = create(service, "second", "two");
  auto filled = list();
  auto served = list();
  ASSERT_TRUE(filled.shared_body && served.shared_body);
  EXPECT_EQ(filled.shared_body.get(), served.shared_body.get()) << "the second list was no hit";

  const std::vector<std::pair<std::string, std::function<void()>>> writes = {
      {"create", [&] { create(service, "third", "three"); }},
      {"patch",
       [&] {
         auto target_note = "/api/v1/notes/" + std::to_string(first) + "/";
         EXPECT_EQ(service.handle(make("PATCH", target_note, R"({"title":"patched"})")).status,
                   200);
       }},
      {"another process's patch",
       [&] {
         auto target_note = "/api/v1/notes/" + std::to_string(second) + "/";
         EXPECT_EQ(other.handle(make("PATCH", target_note, R"({"title":"elsewhere"})")).status,
                   200);
       }},
      {"another process's create", [&] { create(other, "fourth", "four"); }},
      {"a translation landing",
       [&] {
         JobRequest request;
         request.note_id = first;
         request.source_language = "en";
         request.target_language = "es";
         request.engine = "test";
         request.max_attempts = 3;
         auto job = other_store->request_job(request).job;
         ASSERT_TRUE(job);
         ASSERT_TRUE(other_store->claim_job("w", std::chrono::seconds(30), job->id));
         ASSERT_TRUE(other_store->complete_job(job->id, "w", "primero", "test").applied);
       }},
      {"a store write outside the services",
       [&] {
         NoteFields title;
         title.title = "direct";
         ASSERT_TRUE(other_store->update_note(kOpenModeOwner, second, title));
       }},
      {"delete",
       [&] {
         auto target_note = "/api/v1/notes/" + std::to_string(first) + "/";
         EXPECT_EQ(other.handle(make("DELETE", target_note)).status, 204);
       }},
  };
  for (const auto& [what, write] : writes) {
    SCOPED_TRACE(what);
    other.handle(make("GET", target));  // the other process caches its page too
    write();
    list();
    auto again = list();
    EXPECT_EQ(describe_page(other.handle(make("GET", target)).payload()),
              describe_page(again.payload()));
  }
}

TEST_F(ApiUnit, AfterConcurrentWritesAndListsTheLastListShowsTheLastWrite) {
  Api& service = api(cached_list_options());
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 8; ++i)
    ids.push_back(create(service, std::string("n").append(std::to_string(i)), "x"));
  const std::string target = "/api/v1/notes/?limit=1000";
  std::atomic<bool> writing{true};
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      for (int round = 0; round < 100; ++round) {
        const std::int64_t id = ids[static_cast<std::size_t>((round + w) % 8)];
        auto body = json::serialize(json::object{{"title", std::string("w")
                                                               .append(std::to_string(w))
                                                               .append("r")
                                                               .append(std::to_string(round))}});
        EXPECT_EQ(
            service.handle(make("PATCH", "/api/v1/notes/" + std::to_string(id) + "/", body)).status,
            200);
        if (round % 25 == 0) create(service, "extra", "y");
      }
    });
  }
  std::atomic<int> lists{0};
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&] {
      while (writing.load()) {
        EXPECT_EQ(service.handle(make("GET", target)).status, 200);
        ++lists;
      }
    });
  }
  threads[0].join();
  threads[1].join();
  writing = false;
  threads[2].join();
  threads[3].join();
  EXPECT_GT(lists.load(), 0);
  auto last = service.handle(make("GET", target));
  EXPECT_EQ(describe_page(last.payload()),
            describe_notes(store_->list_notes(kOpenModeOwner, {1000, 0})));
}

TEST_F(ApiUnit, WithoutAListCacheEveryPageIsRenderedAfresh) {
  Api& service = api();
  create(service, "a", "x");
  auto one = service.handle(make("GET", "/api/v1/notes/"));
  auto two = service.handle(make("GET", "/api/v1/notes/"));
  ASSERT_TRUE(one.shared_body && two.shared_body);
  EXPECT_NE(one.shared_body.get(), two.shared_body.get());
  EXPECT_EQ(*one.shared_body, *two.shared_body);
}

TEST_F(ApiUnit, AnIdempotencyKeyLeftReservedByADeadProcessIsFreedAfterAWhile) {
  api_ =
      std::make_unique<Api>(ApiServices{*notes_, nullptr, nullptr, store_.get()}, open_options());
  const std::string body = R"({"title": "t", "original_text": "x"})";
  auto post = [&](const std::string& key) {
    auto request = make("POST", "/api/v1/notes/", body);
    request.headers.emplace_back("Idempotency-Key", key);
    return api_->handle(request);
  };
  // A process reserved the key and died before answering.
  const std::string fingerprint = "POST /api/v1/notes/ " + source_digest(body, "application/json");
  ASSERT_FALSE(store_->reserve_idempotency_key(kOpenModeOwner, "k", fingerprint, 0));
  EXPECT_EQ(post("k").status, 409);  // it might still be running
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((directory_ / "notes.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "UPDATE idempotency_keys SET created_at = created_at - 600000000 "
                         "WHERE key = 'k'",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto first = post("k");  // ten minutes on, nobody is running it any more
  EXPECT_EQ(first.status, 201) << first.body;
  auto replay = post("k");
  EXPECT_EQ(replay.status, 201);
  EXPECT_EQ(replay.body, first.body);
  EXPECT_EQ(header(replay, "Idempotent-Replayed"), "true");
}

TEST_F(ApiUnit, TrustedProxyHeadersNameTheLinks) {
  ApiOptions options = open_options();
  options.trust_proxy = true;
  Api& service = api(options);
  create(service, "a", "x");
  create(service, "b", "x");
  auto res = service.handle(make("GET", "/api/v1/notes/?limit=1", "",
                                 {{"Host", "10.0.0.5:8000"},
                                  {"X-Forwarded-Proto", "https"},
                                  {"X-Forwarded-Host", "notes.example"}}));
  ASSERT_EQ(res.status, 200);
  EXPECT_EQ(header(res, "Link"),
            "<https://notes.example/api/v1/notes/?limit=1&offset=1>; rel=\"next\"");
}

}  // namespace
}  // namespace transnotes::api
