// Nothing is lost on kill -9: queued jobs resume after a restart, jobs left running are re-run.
#include <gtest/gtest.h>

#include <fstream>
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

}  // namespace
