// The API contract, end to end: the real binary, real HTTP over a socket, a real database.
// The same suite runs against the embedded SQLite default and PostgreSQL, each with JWT auth on
// (the harness registers and logs in a user whose token every request carries) and in open mode.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include "e2e/harness.h"

namespace {

namespace json = boost::json;
using e2e::request;

class ApiTest : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {
 protected:
  static const std::string& backend() { return std::get<0>(GetParam()); }
  static const std::string& auth() { return std::get<1>(GetParam()); }

  void SetUp() override {
    e2e::ServiceOptions options;
    options.auth = auth();
    if (backend() == "postgres") {
      std::string url = e2e::database_url_for("postgres");
      if (url.empty())
        GTEST_FAIL() << "TRANSNOTES_TEST_DATABASE_URL unset: the PostgreSQL run needs it "
                        "(scripts/test.sh starts one)";
      options.env["DATABASE_URL"] = url;
    }
    // Notes of a megabyte (the body limit) are part of this contract's tests; the default note
    // limit (100,000 characters) has its own test in auth_test.cpp.
    options.args = {"--workers", "2", "--max-note-characters", "1000000"};
    service_ = std::make_unique<e2e::Service>(options);
    port_ = service_->port();
  }

  json::object create(const std::string& title, const std::string& text,
                      const std::string& language = "") {
    json::object body{{"title", title}, {"original_text", text}};
    if (!language.empty()) body["original_language"] = language;
    auto res = request(port_, "POST", "/api/v1/notes/", json::serialize(body));
    EXPECT_EQ(res.status, 201) << res.body;
    return res.json().as_object();
  }

  std::string note_path(std::int64_t id) { return "/api/v1/notes/" + std::to_string(id) + "/"; }

  std::unique_ptr<e2e::Service> service_;
  int port_ = 0;
};

TEST_P(ApiTest, CreateReturnsFullNoteWithDefaults) {
  auto note = create("Hello", "Hello world.");
  EXPECT_GT(note["id"].as_int64(), 0);
  EXPECT_EQ(note["title"], "Hello");
  EXPECT_EQ(note["original_text"], "Hello world.");
  EXPECT_EQ(note["original_language"], "en");
  EXPECT_TRUE(note["translated_text"].is_null());
  EXPECT_TRUE(note["translated_language"].is_null());
  std::string created = std::string(note["created_at"].as_string());
  EXPECT_EQ(created.size(), 27u) << created;  // 2026-11-29T17:08:07.123456Z
  EXPECT_EQ(created.back(), 'Z');
  EXPECT_EQ(created[19], '.');
}

TEST_P(ApiTest, ValidationErrorsAreDrfShaped) {
  auto res = request(port_, "POST", "/api/v1/notes/", R"({"original_text": "x"})");
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(res.json(), json::parse(R"({"title": ["This field is required."]})"));

  res = request(port_, "POST", "/api/v1/notes/", R"({"title": "", "original_text": "x"})");
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(res.json(), json::parse(R"({"title": ["This field may not be blank."]})"));

  std::string long_title(201, 'a');
  res = request(port_, "POST", "/api/v1/notes/",
                json::serialize(json::object{{"title", long_title}, {"original_text", "x"}}));
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(res.json(),
            json::parse(R"({"title": ["Ensure this field has no more than 200 characters."]})"));

  res = request(port_, "POST", "/api/v1/notes/", R"({"title": null, "original_text": [1]})");
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(res.json(), json::parse(R"({"title": ["This field may not be null."],
                                        "original_text": ["Not a valid string."]})"));

  res = request(port_, "POST", "/api/v1/notes/", R"([1, 2])");
  EXPECT_EQ(res.status, 400);
  EXPECT_TRUE(res.json().as_object().contains("non_field_errors")) << res.body;

  // U+0000 is refused as DRF does (PostgreSQL text could not store it anyway).
  res = request(port_, "POST", "/api/v1/notes/", R"({"title": "a\u0000b", "original_text": "x"})");
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(res.json(), json::parse(R"({"title": ["Null characters are not allowed."]})"));

  // DRF's CharField turns numbers into strings.
  res = request(port_, "POST", "/api/v1/notes/", R"({"title": 12, "original_text": 1.5})");
  EXPECT_EQ(res.status, 201) << res.body;
  EXPECT_EQ(res.json().at("title"), "12");
  EXPECT_EQ(res.json().at("original_text"), "1.5");
}

TEST_P(ApiTest, MalformedBodiesAreClientErrors) {
  auto res = request(port_, "POST", "/api/v1/notes/", "{\"title\": ");
  EXPECT_EQ(res.status, 400);
  EXPECT_TRUE(std::string(res.json().at("detail").as_string()).starts_with("JSON parse error - "));

  std::string deep(100000, '[');
  res = request(port_, "POST", "/api/v1/notes/", deep);
  EXPECT_EQ(res.status, 400) << res.body;

  res = request(port_, "POST", "/api/v1/notes/",
                "{\"title\": \"\xff\xfe\", \"original_text\": \"x\"}");
  EXPECT_EQ(res.status, 400) << res.body;

  res = request(port_, "POST", "/api/v1/notes/", "title=x", "text/plain");
  EXPECT_EQ(res.status, 415);
  EXPECT_EQ(res.json().at("detail"), "Unsupported media type \"text/plain\" in request.");

  std::string big(2 * 1024 * 1024, 'a');
  res = request(port_, "POST", "/api/v1/notes/",
                json::serialize(json::object{{"title", "big"}, {"original_text", big}}));
  EXPECT_EQ(res.status, 413);

  // Form bodies work as in DRF.
  res = request(port_, "POST", "/api/v1/notes/", "title=Form&original_text=Hi+there",
                "application/x-www-form-urlencoded");
  EXPECT_EQ(res.status, 201) << res.body;
  EXPECT_EQ(res.json().at("original_text"), "Hi there");

  auto raw = e2e::raw_exchange(port_, "GARBAGE\r\n\r\n");
  EXPECT_NE(raw.find("400"), std::string::npos) << raw;
}

TEST_P(ApiTest, UnknownIdsAreNotFoundNeverServerErrors) {
  for (std::string id : {"999999", "-1", "abc", "99999999999999999999999", "1.5", "%00"}) {
    auto res = request(port_, "GET", "/api/v1/notes/" + id + "/");
    EXPECT_EQ(res.status, 404) << id << " " << res.body;
    EXPECT_EQ(res.json(), json::parse(R"({"detail": "Not found."})"));
  }
  EXPECT_EQ(request(port_, "GET", "/api/v1/nothing/").status, 404);
  EXPECT_EQ(request(port_, "GET", "/api/v1/translations/77/").status, 404);
  EXPECT_EQ(request(port_, "POST", "/api/v1/notes/424242/translate/", R"({"target_language":"es"})")
                .status,
            404);
}

TEST_P(ApiTest, WrongMethodIs405WithAllow) {
  auto res = request(port_, "DELETE", "/api/v1/notes/");
  EXPECT_EQ(res.status, 405);
  EXPECT_EQ(res.json().at("detail"), "Method \"DELETE\" not allowed.");
  EXPECT_NE(res.header("Allow").find("POST"), std::string::npos);
  res = request(port_, "GET", "/api/v1/notes/1/translate/");
  EXPECT_EQ(res.status, 405);
}

TEST_P(ApiTest, RetrieveUpdatePatchDelete) {
  auto note = create("T", "Text", "en");
  auto id = note["id"].as_int64();
  auto res = request(port_, "GET", note_path(id));
  ASSERT_EQ(res.status, 200);
  EXPECT_EQ(res.json(), json::value(note));
  // Without the trailing slash too.
  EXPECT_EQ(request(port_, "GET", "/api/v1/notes/" + std::to_string(id)).status, 200);

  res = request(port_, "PUT", note_path(id), R"({"title": "T2", "original_text": "Text2",
                 "translated_text": "ignored", "id": 999})");
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.json().at("title"), "T2");
  EXPECT_EQ(res.json().at("id"), id);
  EXPECT_TRUE(res.json().at("translated_text").is_null());

  res = request(port_, "PUT", note_path(id), R"({"title": "only title"})");
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(res.json(), json::parse(R"({"original_text": ["This field is required."]})"));

  res = request(port_, "PATCH", note_path(id), R"({"title": "T3"})");
  ASSERT_EQ(res.status, 200);
  EXPECT_EQ(res.json().at("title"), "T3");
  EXPECT_EQ(res.json().at("original_text"), "Text2");
  EXPECT_GT(res.json().at("updated_at").as_string(), note["updated_at"].as_string());

  // The cached copy was invalidated, under any spelling of the id.
  EXPECT_EQ(request(port_, "GET", note_path(id)).json().at("title"), "T3");
  EXPECT_EQ(request(port_, "GET", "/api/v1/notes/0" + std::to_string(id) + "/").json().at("title"),
            "T3");

  res = request(port_, "DELETE", note_path(id));
  EXPECT_EQ(res.status, 204);
  EXPECT_TRUE(res.body.empty());
  EXPECT_EQ(request(port_, "GET", note_path(id)).status, 404);
  EXPECT_EQ(request(port_, "DELETE", note_path(id)).status, 404);
  EXPECT_EQ(request(port_, "PATCH", note_path(id), R"({"title": "x"})").status, 404);
}

TEST_P(ApiTest, ListIsNewestFirstAndPaginated) {
  for (int i = 0; i < 5; ++i) create(std::string("n").append(std::to_string(i)), "text");
  auto res = request(port_, "GET", "/api/v1/notes/");
  ASSERT_EQ(res.status, 200);
  auto items = res.json().as_array();
  ASSERT_EQ(items.size(), 5u);
  EXPECT_EQ(items[0].at("title"), "n4");
  EXPECT_EQ(items[4].at("title"), "n0");
  EXPECT_TRUE(res.header("Link").empty());

  res = request(port_, "GET", "/api/v1/notes/?limit=2");
  ASSERT_EQ(res.json().as_array().size(), 2u);
  EXPECT_NE(res.header("Link").find("offset=2>; rel=\"next\""), std::string::npos)
      << res.header("Link");
  res = request(port_, "GET", "/api/v1/notes/?limit=2&offset=4");
  ASSERT_EQ(res.json().as_array().size(), 1u);
  EXPECT_EQ(res.json().as_array()[0].at("title"), "n0");
  EXPECT_EQ(res.header("Link").find("rel=\"next\""), std::string::npos);
  // Invalid values fall back to defaults as in DRF.
  EXPECT_EQ(request(port_, "GET", "/api/v1/notes/?limit=abc&offset=-3").json().as_array().size(),
            5u);
}

TEST_P(ApiTest, StatsCountNotesTranslationsAndLanguages) {
  create("a", "x", "en");
  create("b", "y", "en");
  create("c", "z", "es");
  auto res = request(port_, "GET", "/api/v1/stats/");
  ASSERT_EQ(res.status, 200);
  EXPECT_EQ(res.json(), json::parse(R"({"total_notes": 3, "total_translations": 0,
      "language_breakdown": [{"original_language": "en", "count": 2},
                             {"original_language": "es", "count": 1}]})"));
}

TEST_P(ApiTest, TranslateErrors) {
  auto note = create("T", "Hello world.", "en");
  std::string path = note_path(note["id"].as_int64()) + "translate/";
  auto res = request(port_, "POST", path, "{}");
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(res.json(), json::parse(R"({"target_language": ["This field is required."]})"));
  res = request(port_, "POST", path, R"({"target_language": "en"})");
  EXPECT_EQ(res.status, 400);
  res = request(port_, "POST", path, R"({"target_language": "xx"})");
  EXPECT_EQ(res.status, 400);
  std::string message = std::string(res.json().at("target_language").as_array()[0].as_string());
  EXPECT_NE(message.find("es"), std::string::npos) << message;  // lists what is supported
}

TEST_P(ApiTest, TranslationRunsInBackgroundAndUpdatesNote) {
  auto note = create("Greeting", "Hello world.", "en");
  auto id = note["id"].as_int64();
  request(port_, "GET", note_path(id));  // warm the cache
  auto res = request(port_, "POST", note_path(id) + "translate/", R"({"target_language": "es"})");
  ASSERT_EQ(res.status, 202) << res.body;
  auto body = res.json().as_object();
  EXPECT_EQ(body["message"], "Translation task started.");
  EXPECT_EQ(body["status"], "Translation in progress");
  auto job_id = body["translation"].at("id").as_int64();
  EXPECT_EQ(res.header("Location"), "/api/v1/translations/" + std::to_string(job_id) + "/");

  auto job = e2e::wait_for_job(port_, job_id);
  ASSERT_EQ(job["status"], "succeeded") << json::serialize(job) << service_->log();
  EXPECT_EQ(job["text"], "Hola Mundo.");
  EXPECT_EQ(job["engine"], "apertium");
  EXPECT_EQ(job["attempts"], 1);
  EXPECT_FALSE(job["finished_at"].is_null());

  auto fresh = request(port_, "GET", note_path(id)).json();
  EXPECT_EQ(fresh.at("translated_text"), "Hola Mundo.");  // cache invalidated by the worker
  EXPECT_EQ(fresh.at("translated_language"), "es");

  auto list = request(port_, "GET", note_path(id) + "translations/").json().as_array();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].at("id"), job_id);

  auto stats = request(port_, "GET", "/api/v1/stats/").json();
  EXPECT_EQ(stats.at("total_translations"), 1);

  auto languages = request(port_, "GET", "/api/v1/languages/").json().as_array();
  bool found = false;
  for (const auto& l : languages) {
    if (l.at("code") == "en") {
      for (const auto& t : l.at("targets").as_array()) found = found || t == "es";
    }
  }
  EXPECT_TRUE(found) << json::serialize(languages);
}

TEST_P(ApiTest, LongTextIsTranslatedWholeWithParagraphs) {
  std::string text;
  for (int p = 0; p < 3; ++p) {
    for (int s = 0; s < 40; ++s) text += "The house is big. ";
    text += "\n\n";
  }
  text += "Goodbye.";
  auto note = create("Long", text, "en");
  auto res = request(port_, "POST", note_path(note["id"].as_int64()) + "translate/",
                     R"({"target_language": "es"})");
  ASSERT_EQ(res.status, 202);
  auto job = e2e::wait_for_job(port_, res.json().at("translation").at("id").as_int64());
  ASSERT_EQ(job["status"], "succeeded") << json::serialize(job);
  std::string out(job["text"].as_string());
  std::size_t count = 0;
  for (std::size_t pos = 0; (pos = out.find("casa", pos)) != std::string::npos; ++pos) ++count;
  EXPECT_EQ(count, 120u) << out;
  std::size_t breaks = 0;
  for (std::size_t pos = 0; (pos = out.find("\n\n", pos)) != std::string::npos; pos += 2) ++breaks;
  EXPECT_EQ(breaks, 3u);
  EXPECT_NE(out.find("Adi"), std::string::npos) << out;  // the last sentence is there
}

// The worker finishes a translation whose note was deleted while it ran: the result must not
// bring the note back. The en->es pipeline is the installed one, each segment held 2 s, so the
// delete lands while the try is running; a second job on the same (single) worker ends only after
// the first try has written its result.
TEST_P(ApiTest, DeletedNoteIsNotResurrectedByItsTranslation) {
  const std::string modes = e2e::make_temp_dir("transnotes-slow-start");
  {
    std::ifstream installed("/usr/share/apertium/modes/eng-spa.mode");
    std::string pipeline((std::istreambuf_iterator<char>(installed)), {});
    ASSERT_FALSE(pipeline.empty()) << "apertium-en-es is not installed";
    // GNU sed runs `sleep 2` before passing on each NUL-terminated segment (the engine adds -z
    // to every stage), then the installed pipeline translates it.
    std::ofstream(modes + "/eng-spa.mode") << "sed -u 'e sleep 2' | " << pipeline;
  }
  e2e::ServiceOptions options{
      .args = {"--workers", "1"},
      .env = {{"APERTIUM_MODES_DIR", modes}, {"TRANSNOTES_ENGINES", "apertium"}}};
  options.auth = auth();
  if (backend() == "postgres") options.env["DATABASE_URL"] = e2e::database_url_for("postgres");
  e2e::Service service(options);
  const int port = service.port();
  auto post_note = [port](const std::string& title) {
    auto res = request(
        port, "POST", "/api/v1/notes/",
        json::serialize(json::object{
            {"title", title}, {"original_text", "Hello world."}, {"original_language", "en"}}));
    EXPECT_EQ(res.status, 201) << res.body;
    return res.json().at("id").as_int64();
  };
  auto translate = [port](std::int64_t note) {
    auto res = request(port, "POST", "/api/v1/notes/" + std::to_string(note) + "/translate/",
                       R"({"target_language": "es"})");
    EXPECT_EQ(res.status, 202) << res.body;
    return res.json().at("translation").at("id").as_int64();
  };
  const auto gone = post_note("Gone");
  const auto doomed_job = translate(gone);
  const auto job_path = "/api/v1/translations/" + std::to_string(doomed_job) + "/";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (request(port, "GET", job_path).json().at("status") != "running" &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(request(port, "GET", job_path).json().at("status"), "running");
  EXPECT_EQ(request(port, "DELETE", note_path(gone)).status, 204);

  const auto kept = post_note("Kept");
  auto after = e2e::wait_for_job(port, translate(kept));
  ASSERT_EQ(after["status"], "succeeded") << json::serialize(after) << service.log();
  EXPECT_EQ(after["text"], "Hola Mundo.");
  EXPECT_EQ(request(port, "GET", note_path(gone)).status, 404);
  EXPECT_EQ(request(port, "GET", job_path).status, 404);
  auto stats = request(port, "GET", "/api/v1/stats/").json();
  EXPECT_EQ(stats.at("total_notes"), 1) << stats;
}

TEST_P(ApiTest, FiftyConcurrentCreatesGetDistinctIds) {
  // Concurrent creates may be committed together (the Postgres store batches them): every
  // answer must still carry the caller's own note, and identical bodies get distinct rows.
  std::mutex mutex;
  std::map<std::int64_t, std::string> title_of;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back([&, i] {
      std::string title = "same";
      if (i < 40) title = std::string("c").append(std::to_string(i));
      std::string text = "x";
      text += std::to_string(i % 3);
      auto res = request(port_, "POST", "/api/v1/notes/",
                         json::serialize(json::object{{"title", title}, {"original_text", text}}));
      if (res.status != 201 || res.json().at("title") != title.c_str() ||
          res.json().at("original_text") != text.c_str()) {
        failures++;
        return;
      }
      std::lock_guard lock(mutex);
      title_of[res.json().at("id").as_int64()] = title;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(title_of.size(), 50u);
  EXPECT_EQ(request(port_, "GET", "/api/v1/stats/").json().at("total_notes"), 50);
  for (const auto& [id, title] : title_of) {
    auto res = request(port_, "GET", "/api/v1/notes/" + std::to_string(id) + "/");
    ASSERT_EQ(res.status, 200);
    EXPECT_EQ(res.json().at("title"), title.c_str()) << "note " << id;
  }
}

TEST_P(ApiTest, HealthAndMetrics) {
  auto res = request(port_, "GET", "/health/");
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.json().at("status"), "ok");
  // Counted by route template, never by the raw path (whose ids would grow the series without
  // end). The server counts an answer once written, so a scrape can come just before it does.
  const std::string health = "http_requests_total{code=\"200\",method=\"GET\",route=\"/health/\"} ";
  for (int i = 0; i < 100; ++i) {
    res = request(port_, "GET", "/metrics");
    if (res.body.find(health) != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(res.status, 200);
  EXPECT_NE(res.body.find(health), std::string::npos) << res.body;
  EXPECT_EQ(res.body.find("route=\"/api/v1/notes/1"), std::string::npos) << res.body;
}

// Bytes that are not UTF-8 are refused the same way from every body type and on every store,
// before a length is counted, and the error never echoes them.
TEST_P(ApiTest, InvalidUtf8IsRefusedFromEveryBodyType) {
  const std::string form = "application/x-www-form-urlencoded";
  const auto not_a_string = [](const char* field) {
    return json::value(json::object{{field, json::array{"Not a valid string."}}});
  };
  auto res = request(port_, "POST", "/api/v1/notes/", "title=%FF%FE&original_text=x", form);
  EXPECT_EQ(res.status, 400) << res.body;
  EXPECT_EQ(res.json(), not_a_string("title"));

  // Stray continuation bytes are not characters: they must not slip under the 200 limit.
  std::string continuation;
  for (int i = 0; i < 5000; ++i) continuation += "%80";
  res =
      request(port_, "POST", "/api/v1/notes/", "title=" + continuation + "&original_text=x", form);
  EXPECT_EQ(res.status, 400) << res.body;
  EXPECT_EQ(res.json(), not_a_string("title"));

  res = request(port_, "POST", "/api/v1/notes/", "title=ok&original_text=a%C0%AFb", form);
  EXPECT_EQ(res.status, 400) << res.body;  // an overlong encoding of '/'
  EXPECT_EQ(res.json(), not_a_string("original_text"));

  res = request(port_, "POST", "/api/v1/notes/",
                "title=ok&original_text=x&original_language=%ED%A0%80", form);
  EXPECT_EQ(res.status, 400) << res.body;  // a UTF-16 surrogate encoded in UTF-8
  EXPECT_EQ(res.json(), not_a_string("original_language"));

  auto note = create("Valid", "Hello world.", "en");
  auto id = note["id"].as_int64();
  res = request(port_, "PATCH", note_path(id), "title=%FF", form);
  EXPECT_EQ(res.status, 400) << res.body;
  EXPECT_EQ(res.json(), not_a_string("title"));
  res = request(port_, "POST", note_path(id) + "translate/", "target_language=e%FFs", form);
  EXPECT_EQ(res.status, 400) << res.body;
  EXPECT_EQ(res.json(), not_a_string("target_language"));

  // Multi-byte text that is valid passes and comes back intact.
  res = request(port_, "POST", "/api/v1/notes/", "title=%C3%B1and%C3%BA&original_text=%F0%9F%98%80",
                form);
  ASSERT_EQ(res.status, 201) << res.body;
  EXPECT_EQ(res.json().at("title"),
            "\xC3\xB1"
            "and\xC3\xBA");
  EXPECT_EQ(res.json().at("original_text"), "\xF0\x9F\x98\x80");

  // Nothing invalid was stored: the list parses as strict JSON and holds the two valid notes.
  res = request(port_, "GET", "/api/v1/notes/");
  ASSERT_EQ(res.status, 200);
  EXPECT_EQ(res.json().as_array().size(), 2u);
}

// Host is checked before it is copied into Link; forwarded headers are ignored unless the
// service was told it sits behind a trusted proxy.
TEST_P(ApiTest, HostIsValidatedAndForwardedHeadersAreNotTrustedByDefault) {
  for (int i = 0; i < 3; ++i) create(std::string("n").append(std::to_string(i)), "text");
  auto res = request(port_, "GET", "/api/v1/notes/?limit=1", "", "application/json",
                     {{"Host", "notes.example.com:8080"},
                      {"X-Forwarded-Proto", "https"},
                      {"X-Forwarded-Host", "attacker.example"}});
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.header("Link"),
            "<http://notes.example.com:8080/api/v1/notes/?limit=1&offset=1>; rel=\"next\"");

  for (std::string host :
       {"a>; rel=\"next\", <http://evil.example/", "a b", "a/b", "a:80x", "\xff.example"}) {
    res = request(port_, "GET", "/api/v1/notes/?limit=1", "", "application/json", {{"Host", host}});
    EXPECT_EQ(res.status, 400) << host << " " << res.body;
    EXPECT_EQ(res.json(), json::parse(R"({"detail": "Invalid Host header."})")) << host;
    EXPECT_TRUE(res.header("Link").empty()) << host;
  }
  EXPECT_EQ(request(port_, "GET", "/api/v1/notes/", "", "application/json", {{"Host", "[::1]:80"}})
                .status,
            200);
}

TEST_P(ApiTest, RoutesAreBoundedAtPathSegments) {
  auto note = create("T", "Text", "en");
  auto id = std::to_string(note["id"].as_int64());
  for (std::string path :
       std::vector<std::string>{"/api/v1notes/" + id + "/", "/api/v1notes/",
                                "/api/v1/notes" + id + "/", "/api/v1/notesx/", "/api/v1/stats/x/",
                                "/api/v1/notes/" + id + "/x/", "/metricsx", "/healthy/"}) {
    auto res = request(port_, "GET", path);
    EXPECT_EQ(res.status, 404) << path << " " << res.body;
  }
  auto options = request(port_, "OPTIONS", "/api/v1/notes/" + id + "/translate/");
  EXPECT_EQ(options.status, 200);
  EXPECT_EQ(options.header("Allow"), "POST, OPTIONS");
  EXPECT_EQ(options.json().at("name"), "Translate Note");
  EXPECT_EQ(request(port_, "OPTIONS", "/api/v1/notes/").header("Allow"),
            "GET, POST, HEAD, OPTIONS");
  auto wrong = request(port_, "PUT", "/api/v1/stats/");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(wrong.header("Allow"), "GET, HEAD, OPTIONS");
}

// HEAD gives GET's status and headers (the server leaves out the body).
TEST_P(ApiTest, HeadAnswersLikeGet) {
  auto note = create("T", "Text", "en");
  for (std::string path : {note_path(note["id"].as_int64()), std::string("/api/v1/notes/"),
                           std::string("/api/v1/stats/"), std::string("/api/v1/notes/999999/")}) {
    auto get = request(port_, "GET", path);
    auto head = request(port_, "HEAD", path);
    EXPECT_EQ(head.status, get.status) << path;
    EXPECT_EQ(head.header("Content-Length"), std::to_string(get.body.size())) << path;
    EXPECT_EQ(head.header("Content-Type"), get.header("Content-Type")) << path;
    EXPECT_TRUE(head.body.empty());
  }
}

// A list page stops before its body would pass the byte budget; `next` starts where it stopped.
TEST_P(ApiTest, LargePagesStopEarlyWithACorrectNextLink) {
  const std::string big(1'000'000, 'a');
  for (int i = 0; i < 9; ++i) create(std::string("big").append(std::to_string(i)), big);
  auto res = request(port_, "GET", "/api/v1/notes/?limit=1000");
  ASSERT_EQ(res.status, 200);
  auto first = res.json().as_array();
  EXPECT_LE(res.body.size(), 8u << 20);
  ASSERT_EQ(first.size(), 8u);
  EXPECT_EQ(first[0].at("title"), "big8");
  EXPECT_NE(res.header("Link").find("/api/v1/notes/?limit=1000&offset=8>; rel=\"next\""),
            std::string::npos)
      << res.header("Link");
  res = request(port_, "GET", "/api/v1/notes/?limit=1000&offset=8");
  ASSERT_EQ(res.status, 200);
  auto rest = res.json().as_array();
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].at("title"), "big0");
  EXPECT_EQ(res.header("Link").find("rel=\"next\""), std::string::npos) << res.header("Link");
}

// Language codes are reduced to their BCP 47 primary subtag, lower case, wherever they enter.
TEST_P(ApiTest, LanguageCodesAreNormalizedToThePrimarySubtag) {
  auto note = create("T", "Hello world.", "en-US");
  EXPECT_EQ(note["original_language"], "en");
  auto id = note["id"].as_int64();
  auto res =
      request(port_, "POST", note_path(id) + "translate/", R"({"target_language": "en-GB"})");
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(res.json(), json::parse(R"({"target_language":
      ["The note is already in 'en'; choose another language."]})"));
  res = request(port_, "POST", note_path(id) + "translate/", R"({"target_language": "es-ES"})");
  ASSERT_EQ(res.status, 202) << res.body;
  EXPECT_EQ(res.json().at("translation").at("target_language"), "es");
  EXPECT_EQ(res.json().at("translation").at("source_language"), "en");
  res = request(port_, "PATCH", note_path(id), R"({"original_language": " ES_es "})");
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.json().at("original_language"), "es");
  auto stats = request(port_, "GET", "/api/v1/stats/").json();
  EXPECT_EQ(stats.at("language_breakdown"),
            json::parse(R"([{"original_language": "es", "count": 1}])"));
}

INSTANTIATE_TEST_SUITE_P(Backends, ApiTest,
                         ::testing::Combine(::testing::Values("sqlite", "postgres"),
                                            ::testing::Values("jwt", "open")),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" + std::get<1>(info.param);
                         });

}  // namespace
