// Production mode under faults: PostgreSQL + Redis, several API and worker processes, all real.
// Workers are killed (-9) and terminated mid-job, Redis is crashed and restarted, PostgreSQL is
// stopped under load, and readers race writers through two API processes sharing one cache.
//
// Redis is always a private instance per test (the job stream and cache keys have fixed names, so
// sharing one Redis between suites would let their workers steal each other's wake-ups).
// PostgreSQL is the shared test server with a fresh schema, except where the test stops it: then
// it is a private cluster made by initdb.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <boost/asio.hpp>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "e2e/fault_services.h"
#include "e2e/harness.h"

namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using e2e::request;
using std::chrono::milliseconds;
using std::chrono::seconds;

using Env = std::map<std::string, std::string>;

// Fails the calling test (returns from it) when the shared PostgreSQL or redis-server is missing.
#define REQUIRE_PRODUCTION_SERVICES()                                                           \
  do {                                                                                          \
    if (!std::getenv("TRANSNOTES_TEST_DATABASE_URL"))                                           \
      GTEST_FAIL() << "TRANSNOTES_TEST_DATABASE_URL unset: the production fault tests need it"; \
    if (!faults::RedisServer::available())                                                      \
      GTEST_FAIL() << "redis-server not installed: the production fault tests need it";         \
  } while (0)

Env production_env(const std::string& database_url, const std::string& redis_url) {
  return {{"DATABASE_URL", database_url}, {"REDIS_URL", redis_url}, {"LOG_LEVEL", "info"}};
}

// These tests push hundreds of translations through one user in seconds: far beyond the per-user
// limits, which have tests of their own (auth_test.cpp).
e2e::ServiceOptions api_process(const Env& env) {
  return {.args = {"--workers", "0", "--throttle-translate", "off", "--max-active-jobs", "0"},
          .env = env,
          .data_dir = "",
          .subcommand = "serve"};
}

e2e::ServiceOptions worker_process(const Env& env, int threads, int lease_seconds) {
  return {.args = {"--workers", std::to_string(threads), "--lease-seconds",
                   std::to_string(lease_seconds)},
          .env = env,
          .data_dir = "",
          .subcommand = "worker"};
}

// A note long enough that translating it takes seconds: a job can be caught "running".
std::string long_text(int sentences) {
  std::string text;
  for (int i = 0; i < sentences; ++i) {
    text += "The dog number " + std::to_string(i) + " is in the big house near the river. ";
  }
  return text;
}

std::string note_path(std::int64_t id) { return "/api/v1/notes/" + std::to_string(id) + "/"; }
std::string job_path(std::int64_t id) { return "/api/v1/translations/" + std::to_string(id) + "/"; }

std::int64_t create_note(int port, const std::string& title, const std::string& text) {
  auto res = request(port, "POST", "/api/v1/notes/",
                     json::serialize(json::object{{"title", title}, {"original_text", text}}));
  EXPECT_EQ(res.status, 201) << res.body;
  return res.status == 201 ? res.json().at("id").as_int64() : -1;
}

std::int64_t translate(int port, std::int64_t note_id, const std::string& target = "es") {
  auto res = request(port, "POST", note_path(note_id) + "translate/",
                     json::serialize(json::object{{"target_language", target}}));
  EXPECT_EQ(res.status, 202) << res.body;
  return res.status == 202 ? res.json().at("translation").at("id").as_int64() : -1;
}

json::object get_object(int port, const std::string& path) {
  auto res = request(port, "GET", path);
  EXPECT_EQ(res.status, 200) << path << ": " << res.body;
  return res.status == 200 ? res.json().as_object() : json::object{};
}

// Polls the job until it reaches `status`; false on timeout or when it finished otherwise.
bool wait_for_status(int port, std::int64_t job_id, const std::string& status, seconds limit) {
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    auto res = request(port, "GET", job_path(job_id));
    if (res.status == 200) {
      auto current = res.json().at("status").as_string();
      if (current == status) return true;
      if (current == "succeeded" || current == "failed") return false;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  return false;
}

bool exited_zero(const std::optional<int>& status) {
  return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
}

std::string describe_status(const std::optional<int>& status) {
  if (!status) return "did not exit in time (killed)";
  if (WIFEXITED(*status)) return "exit code " + std::to_string(WEXITSTATUS(*status));
  if (WIFSIGNALED(*status)) return "killed by signal " + std::to_string(WTERMSIG(*status));
  return "status " + std::to_string(*status);
}

// The outcome of one request made under faults: an HTTP status, or a transport error.
struct Outcome {
  int status = 0;  // 0: no HTTP answer
  std::string body;
  std::string error;
  double seconds = 0;
};

Outcome attempt(int port, const std::string& method, const std::string& target,
                const std::string& body = "") {
  Outcome out;
  auto start = Clock::now();
  try {
    auto res = request(port, method, target, body);
    out.status = res.status;
    out.body = res.body;
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return out;
}

// Every note title, through the paginated list.
std::set<std::string> all_titles(int port) {
  std::set<std::string> titles;
  for (std::int64_t offset = 0;; offset += 1000) {
    auto res = request(port, "GET", "/api/v1/notes/?limit=1000&offset=" + std::to_string(offset));
    EXPECT_EQ(res.status, 200) << res.body;
    if (res.status != 200) break;
    auto items = res.json().as_array();
    for (const auto& item : items) titles.insert(std::string(item.at("title").as_string()));
    if (items.size() < 1000) break;
  }
  return titles;
}

// ---------------------------------------------------------------------------------------------
// 1. kill -9 of a worker mid-translation: the job is re-run elsewhere once the lease lapses.

TEST(ProductionFaults, JobOfKilledWorkerFinishesOnAnotherAfterItsLeaseLapses) {
  REQUIRE_PRODUCTION_SERVICES();
  faults::RedisServer redis;
  Env env = production_env(e2e::database_url_for("postgres"), redis.url());
  e2e::Service api(api_process(env));
  e2e::Service first_worker(worker_process(env, 1, 2));

  std::int64_t note = create_note(api.port(), "long", long_text(600));
  std::int64_t job = translate(api.port(), note);
  ASSERT_GT(job, 0);
  auto queued_at = Clock::now();
  ASSERT_TRUE(wait_for_status(api.port(), job, "running", seconds(60)))
      << "the job never ran on the first worker:\n"
      << first_worker.log();
  first_worker.kill_hard();
  auto after_kill = get_object(api.port(), job_path(job));
  ASSERT_EQ(after_kill["status"], "running")
      << "the translation finished before the kill; the test needs a longer text: "
      << json::serialize(after_kill);

  e2e::Service second_worker(worker_process(env, 1, 2));
  auto restarted_at = Clock::now();
  auto done = e2e::wait_for_job(api.port(), job, seconds(120));
  std::cout << "queued->killed " << std::chrono::duration<double>(restarted_at - queued_at).count()
            << " s, second worker finished after "
            << std::chrono::duration<double>(Clock::now() - restarted_at).count() << " s\n";
  EXPECT_EQ(done["status"], "succeeded") << json::serialize(done) << "\n" << second_worker.log();
  EXPECT_EQ(done["attempts"], 2) << json::serialize(done);
  ASSERT_TRUE(done["text"].is_string());
  EXPECT_TRUE(done["text"].as_string().starts_with("El número de perro 0 es en la casa grande"))
      << done["text"];

  auto note_json = get_object(api.port(), note_path(note));
  EXPECT_EQ(note_json["translated_text"], done["text"]);
  EXPECT_EQ(note_json["translated_language"], "es");
  auto jobs = request(api.port(), "GET", note_path(note) + "translations/").json().as_array();
  EXPECT_EQ(jobs.size(), 1u) << json::serialize(jobs);
  // The second worker ran it as attempt 2, exactly once.
  std::string log = second_worker.log();
  std::string marker = "job " + std::to_string(job) + " note";
  std::size_t runs = 0;
  for (auto at = log.find(marker); at != std::string::npos; at = log.find(marker, at + 1)) ++runs;
  EXPECT_EQ(runs, 1u) << log;
}

// ---------------------------------------------------------------------------------------------
// 2. Redis crashes and comes back empty, twice, while 200 translations are requested.

TEST(ProductionFaults, TwoHundredTranslationsSurviveTwoRedisRestarts) {
  REQUIRE_PRODUCTION_SERVICES();
  faults::RedisServer redis;
  Env env = production_env(e2e::database_url_for("postgres"), redis.url());
  e2e::Service api(api_process(env));
  e2e::Service worker(worker_process(env, 2, 30));

  constexpr int kRequests = 200;
  constexpr int kClients = 4;
  std::atomic<int> completed{0};
  std::mutex mutex;
  std::vector<std::pair<std::int64_t, std::int64_t>> note_and_job;  // guarded by mutex
  std::vector<std::string> failures;                                // guarded by mutex
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int i = c; i < kRequests; i += kClients) {
        std::string number = std::to_string(i);
        std::string text = "The dog number " + number + " is in the house.";
        std::string title = "r";
        title += number;
        auto created =
            attempt(api.port(), "POST", "/api/v1/notes/",
                    json::serialize(json::object{{"title", title}, {"original_text", text}}));
        if (created.status != 201) {
          std::lock_guard lock(mutex);
          failures.push_back("create " + std::to_string(i) + ": " + std::to_string(created.status) +
                             " " + created.body + created.error);
          completed.fetch_add(1);
          continue;
        }
        auto note = json::parse(created.body).at("id").as_int64();
        auto queued = attempt(api.port(), "POST", note_path(note) + "translate/",
                              R"({"target_language": "es"})");
        std::lock_guard lock(mutex);
        if (queued.status == 202) {
          note_and_job.emplace_back(note,
                                    json::parse(queued.body).at("translation").at("id").as_int64());
        } else {
          failures.push_back("translate " + std::to_string(i) + ": " +
                             std::to_string(queued.status) + " " + queued.body + queued.error);
        }
        completed.fetch_add(1);
      }
    });
  }
  // Crash Redis twice mid-load: it is down while requests [40, 80) and [120, 160) complete.
  auto wait_for_completed = [&](int count) {
    auto deadline = Clock::now() + seconds(30);
    while (completed.load() < count && Clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(2));
    }
  };
  for (int kill_at : {40, 120}) {
    wait_for_completed(kill_at);
    redis.kill();
    auto killed_at = Clock::now();
    int first = completed.load();
    wait_for_completed(kill_at + 40);
    redis.start();
    std::cout << "Redis was down from request " << first << " to " << completed.load() << " ("
              << std::chrono::duration<double>(Clock::now() - killed_at).count() << " s)\n";
  }
  for (auto& t : clients) t.join();

  EXPECT_TRUE(failures.empty()) << failures.size() << " requests failed, first: " << failures[0];
  std::set<std::int64_t> distinct_jobs;
  for (const auto& [note, job] : note_and_job) distinct_jobs.insert(job);
  EXPECT_EQ(distinct_jobs.size(), static_cast<std::size_t>(kRequests));

  std::map<std::int64_t, int> attempts_histogram;
  auto deadline = Clock::now() + seconds(90);
  for (const auto& [note, job] : note_and_job) {
    auto left = std::chrono::duration_cast<seconds>(deadline - Clock::now());
    auto done = e2e::wait_for_job(api.port(), job, std::max(left, seconds(1)));
    ASSERT_EQ(done["status"], "succeeded") << json::serialize(done) << "\n" << worker.log();
    attempts_histogram[done["attempts"].as_int64()]++;
    // Leases live in PostgreSQL: a Redis outage must not make a job run twice.
    EXPECT_EQ(done["attempts"], 1) << json::serialize(done);
    auto jobs = request(api.port(), "GET", note_path(note) + "translations/").json().as_array();
    EXPECT_EQ(jobs.size(), 1u) << "note " << note << ": " << json::serialize(jobs);
    auto note_json = get_object(api.port(), note_path(note));
    EXPECT_EQ(note_json["translated_text"], done["text"]) << "note " << note;
  }
  // Each job was executed by a worker exactly once.
  std::string log = worker.log();
  for (const auto& [note, job] : note_and_job) {
    std::string marker = "job " + std::to_string(job) + " note";
    auto first = log.find(marker);
    EXPECT_NE(first, std::string::npos) << marker;
    if (first != std::string::npos) {
      EXPECT_EQ(log.find(marker, first + 1), std::string::npos) << "job " << job << " ran twice";
    }
  }
  EXPECT_TRUE(faults::process_alive(api.pid())) << api.log();
  EXPECT_TRUE(faults::process_alive(worker.pid())) << worker.log();
  for (const auto& [attempts, count] : attempts_histogram) {
    std::cout << "attempts=" << attempts << ": " << count << " jobs\n";
  }
}

// ---------------------------------------------------------------------------------------------
// 3. PostgreSQL stops for a few seconds under load.

TEST(ProductionFaults, PostgresOutageAnswers503AndRecovers) {
  REQUIRE_PRODUCTION_SERVICES();
  if (faults::PostgresServer::bin_dir().empty()) GTEST_FAIL() << "PostgreSQL not installed";
  faults::PostgresServer pg;
  faults::RedisServer redis;
  Env env = production_env(pg.url("outage"), redis.url());
  auto api_options = api_process(env);
  api_options.allow_server_errors = true;  // the outage answers 503 on purpose
  e2e::Service api(std::move(api_options));
  e2e::Service worker(worker_process(env, 1, 5));
  std::int64_t note = create_note(api.port(), "kept", "The dog is in the house.");
  ASSERT_GT(note, 0);

  // Phases, in order; each request is labelled with the phase it started in and ended in.
  enum Phase { kBefore, kStopping, kDown, kStarting, kAfter };
  std::atomic<int> phase{kBefore};
  std::atomic<int> requests_after{0};
  struct Record {
    int started_in, ended_in;
    std::string what;
    Outcome outcome;
  };
  std::mutex mutex;
  std::vector<Record> records;  // guarded by mutex
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; !stop.load(); ++i) {
        Record r;
        r.started_in = phase.load();
        switch ((i + c) % 4) {
          case 0:
            r.what = "POST note";
            r.outcome = attempt(api.port(), "POST", "/api/v1/notes/",
                                R"({"title": "load", "original_text": "The cat sleeps."})");
            break;
          case 1:
            r.what = "GET note";
            r.outcome = attempt(api.port(), "GET", note_path(note));
            break;
          case 2:
            r.what = "GET list";
            r.outcome = attempt(api.port(), "GET", "/api/v1/notes/?limit=5");
            break;
          default:
            r.what = "POST translate";
            r.outcome = attempt(api.port(), "POST", note_path(note) + "translate/",
                                R"({"target_language": "es"})");
        }
        r.ended_in = phase.load();
        if (r.started_in == kAfter) requests_after.fetch_add(1);
        std::lock_guard lock(mutex);
        records.push_back(std::move(r));
        std::this_thread::sleep_for(milliseconds(5));
      }
    });
  }
  std::this_thread::sleep_for(milliseconds(500));
  phase = kStopping;
  pg.stop();
  phase = kDown;
  std::this_thread::sleep_for(seconds(3));
  phase = kStarting;
  pg.start();
  phase = kAfter;
  auto deadline = Clock::now() + seconds(20);
  while (requests_after.load() < 80 && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  stop = true;
  for (auto& t : clients) t.join();

  std::map<std::string, int> tally;  // "phase status" -> count, for the failure message
  int outage_503 = 0;
  for (const auto& r : records) {
    const auto& o = r.outcome;
    tally[std::to_string(r.started_in) + "/" + std::to_string(r.ended_in) + " " + r.what + " " +
          std::to_string(o.status)]++;
    EXPECT_TRUE(o.error.empty()) << r.what << " in phase " << r.started_in << ": " << o.error;
    EXPECT_NE(o.status, 500) << r.what << " in phase " << r.started_in << ": " << o.body;
    EXPECT_LT(o.seconds, 10.0) << r.what << " in phase " << r.started_in << " hung";
    if (r.started_in == kDown && r.ended_in == kDown) {
      // Only a cached note may still be served while the database is away.
      bool cached_read = r.what == "GET note" && o.status == 200;
      EXPECT_TRUE(o.status == 503 || cached_read)
          << r.what << " during the outage: " << o.status << " " << o.body;
      if (o.status == 503) ++outage_503;
    }
    if (r.started_in == kAfter) {
      EXPECT_GE(o.status, 200) << r.what << " after the restart: " << o.body;
      EXPECT_LT(o.status, 300) << r.what << " after the restart: " << o.status << " " << o.body;
    }
  }
  std::ostringstream summary;
  for (const auto& [key, count] : tally) summary << key << ": " << count << "\n";
  EXPECT_GT(outage_503, 0) << summary.str();
  EXPECT_GE(requests_after.load(), 80) << summary.str();
  EXPECT_TRUE(faults::process_alive(api.pid())) << api.log();
  EXPECT_TRUE(faults::process_alive(worker.pid())) << worker.log();
  EXPECT_EQ(request(api.port(), "GET", "/health").status, 200);
  std::cout << "started/ended phase (0 before, 2 down, 4 after restart), request, status:\n"
            << summary.str();
  if (HasFailure()) {
    std::string log = api.log();
    std::cout << "--- api log tail ---\n"
              << log.substr(log.size() > 4000 ? log.size() - 4000 : 0) << "\n";
  }
}

// ---------------------------------------------------------------------------------------------
// 4. Readers racing writers through two API processes that share the Redis cache.

TEST(ProductionConsistency, NoReadSeesAValueOlderThanAnAcknowledgedPatch) {
  REQUIRE_PRODUCTION_SERVICES();
  faults::RedisServer redis;
  Env env = production_env(e2e::database_url_for("postgres"), redis.url());
  e2e::Service api_a(api_process(env));
  e2e::Service api_b(api_process(env));
  const int ports[2] = {api_a.port(), api_b.port()};

  constexpr int kNotes = 2;
  constexpr int kPatches = 60;
  auto value = [](const char* prefix, int v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s-%06d", prefix, v);
    return std::string(buf);
  };
  std::int64_t notes[kNotes];
  for (auto& id : notes) id = create_note(ports[0], value("title", 0), value("text", 0));
  // acknowledged[n][f]: the newest value of field f of note n whose PATCH has returned 200.
  // One writer per (note, field), so it only grows.
  std::atomic<int> acknowledged[kNotes][2] = {};
  std::atomic<int> writers_left{kNotes * 2};
  std::mutex mutex;
  std::vector<std::string> problems;  // guarded by mutex
  auto report = [&](std::string what) {
    std::lock_guard lock(mutex);
    if (problems.size() < 20) problems.push_back(std::move(what));
  };

  std::vector<std::thread> threads;
  for (int n = 0; n < kNotes; ++n) {
    for (int f = 0; f < 2; ++f) {
      threads.emplace_back([&, n, f] {
        const char* field = f == 0 ? "title" : "original_text";
        const char* prefix = f == 0 ? "title" : "text";
        for (int v = 1; v <= kPatches; ++v) {
          int port = ports[(v + f) % 2];
          auto res = attempt(port, "PATCH", note_path(notes[n]),
                             json::serialize(json::object{{field, value(prefix, v)}}));
          if (res.status != 200) {
            report("PATCH " + std::string(field) + " -> " + std::to_string(res.status) + " " +
                   res.body + res.error);
            continue;
          }
          acknowledged[n][f].store(v);
        }
        writers_left.fetch_sub(1);
      });
    }
  }
  std::atomic<int> reads{0};
  for (int r = 0; r < 6; ++r) {
    threads.emplace_back([&, r] {
      for (int i = 0; writers_left.load() > 0; ++i) {
        int n = (r + i) % kNotes;
        int port = ports[(r + i / kNotes) % 2];
        int floor[2] = {acknowledged[n][0].load(), acknowledged[n][1].load()};
        auto res = attempt(port, "GET", note_path(notes[n]));
        reads.fetch_add(1);
        if (res.status != 200) {
          report("GET -> " + std::to_string(res.status) + " " + res.body + res.error);
          continue;
        }
        auto body = json::parse(res.body).as_object();
        int seen[2] = {std::stoi(std::string(body["title"].as_string()).substr(6)),
                       std::stoi(std::string(body["original_text"].as_string()).substr(5))};
        for (int f = 0; f < 2; ++f) {
          if (seen[f] < floor[f]) {
            report("note " + std::to_string(notes[n]) + " via port " + std::to_string(port) +
                   ": field " + std::to_string(f) + " read " + std::to_string(seen[f]) +
                   " after PATCH " + std::to_string(floor[f]) + " had returned");
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();

  EXPECT_TRUE(problems.empty()) << problems.size() << " problems (of " << reads.load()
                                << " reads), first: " << problems[0];
  for (int n = 0; n < kNotes; ++n) {
    for (int port : ports) {
      auto body = get_object(port, note_path(notes[n]));
      EXPECT_EQ(body["title"], json::value(value("title", kPatches)));
      EXPECT_EQ(body["original_text"], json::value(value("text", kPatches)));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 5. Two API processes and two workers behave as one service.

TEST(ProductionTopology, TwoApisAndTwoWorkersServeTheSameNotes) {
  REQUIRE_PRODUCTION_SERVICES();
  faults::RedisServer redis;
  Env env = production_env(e2e::database_url_for("postgres"), redis.url());
  e2e::Service api_a(api_process(env));
  e2e::Service api_b(api_process(env));
  e2e::Service worker_1(worker_process(env, 1, 10));
  e2e::Service worker_2(worker_process(env, 1, 10));
  int a = api_a.port(), b = api_b.port();

  std::int64_t id = create_note(a, "Shared", "The dog is in the house.");
  ASSERT_GT(id, 0);
  auto via_b = get_object(b, note_path(id));
  EXPECT_EQ(via_b["title"], "Shared");
  EXPECT_EQ(get_object(a, note_path(id))["title"], "Shared");  // now cached

  auto patched = request(b, "PATCH", note_path(id), R"({"title": "Patched via B"})");
  EXPECT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(get_object(a, note_path(id))["title"], "Patched via B");

  auto put = request(a, "PUT", note_path(id),
                     R"({"title": "Put via A", "original_text": "The cat is in the house."})");
  EXPECT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(get_object(b, note_path(id))["original_text"], "The cat is in the house.");

  bool listed = false;
  auto list = request(b, "GET", "/api/v1/notes/").json();
  for (const auto& item : list.as_array()) {
    if (item.at("id") == id) listed = item.at("title") == "Put via A";
  }
  EXPECT_TRUE(listed);

  std::int64_t job = translate(a, id);
  auto done = e2e::wait_for_job(b, job, seconds(60));
  EXPECT_EQ(done["status"], "succeeded") << json::serialize(done);
  EXPECT_EQ(done["text"], "El gato es en la casa.");
  EXPECT_EQ(get_object(b, note_path(id))["translated_text"], "El gato es en la casa.");
  EXPECT_EQ(get_object(a, note_path(id))["translated_text"], "El gato es en la casa.");
  auto jobs_via_b = request(b, "GET", note_path(id) + "translations/").json().as_array();
  ASSERT_EQ(jobs_via_b.size(), 1u);
  EXPECT_EQ(jobs_via_b[0].at("id"), job);

  // A batch split over both APIs is finished by the workers, each job once.
  std::vector<std::pair<std::int64_t, std::int64_t>> batch;
  for (int i = 0; i < 10; ++i) {
    int port = i % 2 ? a : b;
    auto n = create_note(port, "batch", "The dog is in the house.");
    batch.emplace_back(n, translate(i % 2 ? b : a, n));
  }
  for (const auto& [n, j] : batch) {
    auto finished = e2e::wait_for_job(b, j);
    (void)n;
    EXPECT_EQ(finished["status"], "succeeded") << json::serialize(finished);
    EXPECT_EQ(finished["attempts"], 1);
  }

  // Cached reads go through the pipelined (non-blocking) Redis reads, and /metrics shows it.
  auto metric = [&](const std::string& name) -> long long {
    const std::string text = request(a, "GET", "/metrics").body;
    const auto at = text.find("\n" + name + " ");
    if (at == std::string::npos) return -1;
    return std::stoll(text.substr(at + name.size() + 2));
  };
  bool sent = false;
  for (int i = 0; i < 200 && !sent; ++i) {
    EXPECT_EQ(get_object(a, note_path(id))["title"], "Put via A");
    sent = metric("transnotes_cache_async_reads_total{outcome=\"sent\"}") > 0;
    if (!sent) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(sent);
  EXPECT_GT(metric("transnotes_cache_lookups_total{result=\"hit\"}"), 0);
  EXPECT_EQ(metric("transnotes_cache_errors_total"), 0);

  EXPECT_EQ(request(b, "DELETE", note_path(id)).status, 204);
  EXPECT_EQ(request(a, "GET", note_path(id)).status, 404);
  EXPECT_EQ(request(b, "GET", note_path(id)).status, 404);
}

// ---------------------------------------------------------------------------------------------
// 6. Graceful shutdown.

TEST(ProductionShutdown, ApiAnswersEveryRequestItTookAndExitsZeroOnSigterm) {
  REQUIRE_PRODUCTION_SERVICES();
  faults::RedisServer redis;
  Env env = production_env(e2e::database_url_for("postgres"), redis.url());
  auto api = std::make_unique<e2e::Service>(api_process(env));
  const int port = api->port();

  std::atomic<int> completed{0};
  std::mutex mutex;
  std::set<std::string> answered;        // titles whose create got 201; guarded by mutex
  std::vector<std::string> unanswered;   // titles whose create got no answer
  std::vector<std::string> bad_answers;  // anything but 201
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < 2000; ++i) {
        std::string title = "shutdown-" + std::to_string(c) + "-" + std::to_string(i);
        auto o = attempt(
            port, "POST", "/api/v1/notes/",
            json::serialize(json::object{{"title", title}, {"original_text", "The cat sleeps."}}));
        std::lock_guard lock(mutex);
        completed.fetch_add(1);
        if (o.status == 201) {
          answered.insert(title);
        } else if (o.status == 0) {
          unanswered.push_back(title);
          if (o.error.find("refused") != std::string::npos) return;  // listener gone
        } else {
          bad_answers.push_back(title + ": " + std::to_string(o.status) + " " + o.body);
        }
        if (unanswered.size() > 40) return;
      }
    });
  }
  auto deadline = Clock::now() + seconds(30);
  while (completed.load() < 40 && Clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(5));
  auto status = faults::terminate_within(*api, seconds(20));
  for (auto& t : clients) t.join();
  std::string log = api->log();
  EXPECT_TRUE(exited_zero(status)) << describe_status(status) << "\n" << log;
  EXPECT_TRUE(bad_answers.empty())
      << bad_answers.size() << " bad answers, first: " << bad_answers[0];
  // What was created is exactly what was answered: no request was processed and then dropped.
  e2e::Service checker(api_process(env));
  auto stored = all_titles(checker.port());
  std::vector<std::string> processed_unanswered;
  for (const auto& title : unanswered) {
    if (stored.count(title)) processed_unanswered.push_back(title);
  }
  EXPECT_TRUE(processed_unanswered.empty())
      << processed_unanswered.size() << " notes were created but their request got no answer, "
      << "first: " << processed_unanswered[0];
  for (const auto& title : answered) EXPECT_TRUE(stored.count(title)) << title << " lost";
  std::cout << answered.size() << " answered, " << unanswered.size()
            << " refused or reset after SIGTERM\n";
}

TEST(ProductionShutdown, RequestWhoseBodyIsStillArrivingAtSigtermIsAnswered) {
  REQUIRE_PRODUCTION_SERVICES();
  faults::RedisServer redis;
  Env env = production_env(e2e::database_url_for("postgres"), redis.url());
  e2e::Service api(api_process(env));
  const std::string body = R"({"title": "slow upload", "original_text": "The cat sleeps."})";
  // `Expect: 100-continue` makes the server say when it has taken the headers (the request is
  // then in flight); the body follows only once the server has begun shutting down, which the
  // client sees as its listening port refusing connections.
  const std::string head =
      "POST /api/v1/notes/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Content-Type: application/json\r\nConnection: close\r\nExpect: 100-continue\r\n"
      "Authorization: Bearer " +
      e2e::default_token(api.port()) + "\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n";
  std::string answer;
  std::promise<void> headers_taken;
  std::thread client([&] {
    namespace asio = boost::asio;
    asio::io_context ioc;
    const asio::ip::tcp::endpoint server{asio::ip::make_address("127.0.0.1"),
                                         static_cast<unsigned short>(api.port())};
    asio::ip::tcp::socket socket(ioc);
    socket.connect(server);
    boost::system::error_code ec;
    asio::write(socket, asio::buffer(head), ec);
    std::string interim;
    char buf[4096];
    while (!ec && interim.find("\r\n\r\n") == std::string::npos) {
      interim.append(buf, socket.read_some(asio::buffer(buf), ec));
    }
    headers_taken.set_value();
    for (int i = 0; i < 2000; ++i) {  // up to 20 s
      asio::ip::tcp::socket probe(ioc);
      boost::system::error_code refused;
      probe.connect(server, refused);
      if (refused) break;
      std::this_thread::sleep_for(milliseconds(10));
    }
    asio::write(socket, asio::buffer(body), ec);
    for (;;) {
      std::size_t n = socket.read_some(asio::buffer(buf), ec);
      if (ec || n == 0) break;
      answer.append(buf, n);
    }
  });
  headers_taken.get_future().wait();
  auto status = faults::terminate_within(api, seconds(20));
  client.join();
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 201")) << "answer: '" << answer << "'\n--- api log ---\n"
                                                  << api.log();
  EXPECT_TRUE(exited_zero(status)) << describe_status(status);
}

TEST(ProductionShutdown, WorkerSigtermedMidJobFinishesOrReleasesIt) {
  REQUIRE_PRODUCTION_SERVICES();
  faults::RedisServer redis;
  Env env = production_env(e2e::database_url_for("postgres"), redis.url());
  e2e::Service api(api_process(env));
  e2e::Service worker(worker_process(env, 1, 2));
  std::int64_t note = create_note(api.port(), "long", long_text(300));
  std::int64_t job = translate(api.port(), note);
  ASSERT_TRUE(wait_for_status(api.port(), job, "running", seconds(60))) << worker.log();

  auto status = faults::terminate_within(worker, seconds(60));
  EXPECT_TRUE(exited_zero(status)) << describe_status(status) << "\n" << worker.log();
  auto after = get_object(api.port(), job_path(job));
  std::cout << "after SIGTERM the job is " << json::serialize(after["status"]) << "\n";
  if (after["status"] != "succeeded") {
    // Released (or left to lapse): another worker must finish it.
    e2e::Service successor(worker_process(env, 1, 2));
    after = e2e::wait_for_job(api.port(), job, seconds(120));
  } else {
    EXPECT_EQ(after["attempts"], 1);
  }
  EXPECT_EQ(after["status"], "succeeded") << json::serialize(after);
  auto note_json = get_object(api.port(), note_path(note));
  EXPECT_EQ(note_json["translated_text"], after["text"]);
  auto jobs = request(api.port(), "GET", note_path(note) + "translations/").json().as_array();
  EXPECT_EQ(jobs.size(), 1u);
}

}  // namespace
