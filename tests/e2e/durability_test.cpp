// Nothing is lost on kill -9: queued jobs resume after a restart, jobs left running are re-run.
#include <gtest/gtest.h>

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

TEST(Durability, JobsLeftRunningAreRerunAfterTheirLeaseLapses) {
  std::string dir = e2e::make_temp_dir("transnotes-durable");
  std::vector<std::int64_t> jobs;
  {
    e2e::Service first(
        {.args = {"--workers", "2", "--lease-seconds", "2"}, .env = {}, .data_dir = dir});
    jobs = queue_translations(first.port(), 20);
    first.kill_hard();  // some jobs are mid-translation, some queued, some done
  }
  e2e::Service second(
      {.args = {"--workers", "2", "--lease-seconds", "2"}, .env = {}, .data_dir = dir});
  for (auto id : jobs) {
    auto job = e2e::wait_for_job(second.port(), id);
    EXPECT_EQ(job["status"], "succeeded") << json::serialize(job);
  }
  auto stats = request(second.port(), "GET", "/api/v1/stats/").json();
  EXPECT_EQ(stats.at("total_translations"), 20);
}

}  // namespace
