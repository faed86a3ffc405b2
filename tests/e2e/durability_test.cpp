// Nothing is lost on kill -9: queued jobs resume after a restart, jobs left running are re-run,
// and notes written concurrently (committed together) are all there once acknowledged.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "e2e/harness.h"

namespace {

namespace json = boost::json;
using e2e::request;

std::vector<std::int64_t> queue_translations(int port, int count) {
  std::vector<std::int64_t> jobs;
  for (int i = 0; i < count; ++i) {
    auto note = request(port, "POST", "/api/v1/notes/",
                        R"({"title": "n", "original_text": "The dog is in the house."})");
    EXPECT_EQ(note.status, 201);
    auto id = note.json().at("id").as_int64();
    auto res = request(port, "POST", "/api/v1/notes/" + std::to_string(id) + "/translate/",
                       R"({"target_language": "es"})");
    EXPECT_EQ(res.status, 202) << res.body;
    jobs.push_back(res.json().at("translation").at("id").as_int64());
  }
  return jobs;
}

TEST(Durability, QueuedJobsSurviveKillDashNine) {
  std::string dir = e2e::make_temp_dir("transnotes-durable");
  std::vector<std::int64_t> jobs;
  {
    e2e::Service first({.args = {"--workers", "0"}, .env = {}, .data_dir = dir});
    jobs = queue_translations(first.port(), 10);
    auto job =
        request(first.port(), "GET", "/api/v1/translations/" + std::to_string(jobs[0]) + "/");
    EXPECT_EQ(job.json().at("status"), "queued");
    first.kill_hard();
  }
  e2e::Service second({.args = {"--workers", "2"}, .env = {}, .data_dir = dir});
  for (auto id : jobs) {
    auto job = e2e::wait_for_job(second.port(), id);
    EXPECT_EQ(job["status"], "succeeded") << json::serialize(job);
    EXPECT_EQ(job["text"], "El perro es en la casa.");  // what apertium-en-es 0.8.1 answers
  }
}

// An Apertium modes folder whose en->es pipeline holds each segment `seconds` before answering
// (GNU sed runs the sleep per NUL-terminated segment; the engine adds -z to every stage, which
// sed takes and, say, sleep would refuse): a job on it stays "running" that long.
std::string slow_modes_dir(int seconds) {
  std::string dir = e2e::make_temp_dir("transnotes-slow-modes");
  std::ofstream(dir + "/eng-spa.mode") << "sed -u 'e sleep " << seconds << "'\n";
  return dir;
}

// Polls the job until it reports `running`; false if it never does within the timeout.
bool wait_until_running(int port, std::int64_t job_id, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto job = request(port, "GET", "/api/v1/translations/" + std::to_string(job_id) + "/");
    if (job.status == 200 && job.json().at("status") == "running") return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST(Durability, JobsLeftRunningAreRerunAfterTheirLeaseLapses) {
  std::string dir = e2e::make_temp_dir("transnotes-durable");
  std::vector<std::int64_t> jobs;
  {
    // The first process's engine is stuck, so its claimed jobs are certainly mid-translation
    // (status running, lease held) when it dies.
    e2e::Service first(
        {.args = {"--workers", "2", "--lease-seconds", "2"},
         .env = {{"APERTIUM_MODES_DIR", slow_modes_dir(20)}, {"TRANSNOTES_ENGINES", "apertium"}},
         .data_dir = dir});
    jobs = queue_translations(first.port(), 6);
    ASSERT_TRUE(wait_until_running(first.port(), jobs[0], std::chrono::seconds(30))) << first.log();
    first.kill_hard();
  }
  e2e::Service second(
      {.args = {"--workers", "2", "--lease-seconds", "2"}, .env = {}, .data_dir = dir});
  for (auto id : jobs) {
    auto job = e2e::wait_for_job(second.port(), id);
    EXPECT_EQ(job["status"], "succeeded") << json::serialize(job);
    EXPECT_EQ(job["text"], "El perro es en la casa.");
  }
  // The job caught running was claimed twice: once by the killed process, once after its lease.
  auto rerun =
      request(second.port(), "GET", "/api/v1/translations/" + std::to_string(jobs[0]) + "/");
  EXPECT_EQ(rerun.json().at("attempts"), 2) << rerun.body;
  auto stats = request(second.port(), "GET", "/api/v1/stats/").json();
  EXPECT_EQ(stats.at("total_translations"), 6);
}

// Many clients create and patch at once, so the embedded store commits their writes in shared
// transactions (group commit, synchronous=FULL by default). Every write the server acknowledged
// is found after kill -9 and a restart, with the text the last acknowledged patch gave it.
TEST(Durability, ConcurrentlyAcknowledgedCreatesAndPatchesSurviveKillDashNine) {
  std::string dir = e2e::make_temp_dir("transnotes-durable");
  constexpr int kClients = 8;
  constexpr int kNotesPerClient = 25;
  std::mutex mutex;
  std::map<std::int64_t, std::string> acknowledged;  // note id -> text of its last patch
  {
    e2e::Service first({.args = {"--workers", "0"}, .env = {}, .data_dir = dir});
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        for (int i = 0; i < kNotesPerClient; ++i) {
          auto note =
              request(first.port(), "POST", "/api/v1/notes/",
                      R"({"title": "c)" + std::to_string(c) + R"(", "original_text": "v1"})");
          ASSERT_EQ(note.status, 201) << note.body;
          const auto id = note.json().at("id").as_int64();
          const std::string text = "patched " + std::to_string(c) + "/" + std::to_string(i);
          auto patch = request(first.port(), "PATCH", "/api/v1/notes/" + std::to_string(id) + "/",
                               R"({"original_text": ")" + text + R"("})");
          ASSERT_EQ(patch.status, 200) << patch.body;
          std::lock_guard lock(mutex);
          acknowledged[id] = text;
        }
      });
    }
    for (auto& client : clients) client.join();
    first.kill_hard();
  }
  ASSERT_EQ(acknowledged.size(), std::size_t{kClients * kNotesPerClient});
  e2e::Service second({.args = {"--workers", "0"}, .env = {}, .data_dir = dir});
  for (const auto& [id, text] : acknowledged) {
    auto note = request(second.port(), "GET", "/api/v1/notes/" + std::to_string(id) + "/");
    ASSERT_EQ(note.status, 200) << "note " << id << " was acknowledged but is gone";
    EXPECT_EQ(note.json().at("original_text").as_string(), text);
  }
}

// --sqlite-sync takes full or normal; anything else stops the process before it serves, with
// a one-line message and the usage exit status. "normal" serves.
TEST(Durability, SqliteSyncSettingIsValidated) {
  std::string dir = e2e::make_temp_dir("transnotes-sync");
  const std::string binary = TRANSNOTES_BINARY;
  for (const std::string& how :
       {binary + " serve --sqlite-sync off", "TRANSNOTES_SQLITE_SYNC=off " + binary + " serve"}) {
    auto refused = e2e::run_command("TRANSNOTES_DATA_DIR=" + dir + " " + how + " 2>&1");
    EXPECT_EQ(refused.exit_code, 2) << refused.output;
    EXPECT_NE(refused.output.find("sqlite sync must be full or normal"), std::string::npos)
        << refused.output;
    EXPECT_EQ(refused.output.find('\n'), refused.output.size() - 1) << refused.output;
  }
  e2e::Service relaxed(
      {.args = {"--workers", "0", "--sqlite-sync", "normal"}, .env = {}, .data_dir = dir});
  auto note =
      request(relaxed.port(), "POST", "/api/v1/notes/", R"({"title": "t", "original_text": "x"})");
  EXPECT_EQ(note.status, 201) << note.body;
}

}  // namespace
