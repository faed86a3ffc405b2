// Translation engines that really fail, end to end: the real binary runs Apertium "modes" whose
// pipelines exit at once or fail a few times, and the jobs are watched over HTTP.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "e2e/harness.h"

namespace {

namespace json = boost::json;
using e2e::request;

// A modes folder whose en->es pipeline is `pipeline` (a shell pipeline, as in a .mode file).
std::string modes_dir_with(const std::string& pipeline) {
  const std::string dir = e2e::make_temp_dir("transnotes-failing-modes");
  std::ofstream(dir + "/eng-spa.mode") << pipeline << "\n";
  return dir;
}

TEST(WorkerFailure, AlwaysFailingEngineFailsTheJobAfterMaxAttempts) {
  e2e::Service service(
      {.args = {"--workers", "1", "--max-attempts", "2"},
       .env = {{"APERTIUM_MODES_DIR", modes_dir_with("false")}, {"TRANSNOTES_ENGINES", "apertium"}},
       .data_dir = ""});
  const auto job_id = e2e::translate_new_note(service.port(), "Hello world.");
  auto job = e2e::wait_for_job(service.port(), job_id);
  EXPECT_EQ(job["status"], "failed") << json::serialize(job);
  EXPECT_EQ(job["attempts"], 2) << json::serialize(job);
  EXPECT_TRUE(job["text"].is_null());
  ASSERT_TRUE(job["error"].is_string()) << json::serialize(job);
  EXPECT_NE(std::string(job["error"].as_string()).find("apertium"), std::string::npos)
      << json::serialize(job);
  auto note = request(service.port(), "GET",
                      "/api/v1/notes/" + std::to_string(job["note_id"].as_int64()) + "/")
                  .json();
  EXPECT_TRUE(note.at("translated_text").is_null());
}

TEST(WorkerFailure, EngineFailingTheFirstAttemptIsRetriedAndSucceeds) {
  // The first two pipeline starts exit at once (the engine restarts a broken pipeline once per
  // attempt, so that is exactly one failed attempt); later starts translate.
  const std::string dir = e2e::make_temp_dir("transnotes-flaky-modes");
  const std::string script = dir + "/flaky.sh";
  std::ofstream(script) << "#!/bin/sh\n"
                        << "count=$(cat '" << dir << "/starts' 2>/dev/null || echo 0)\n"
                        << "count=$((count + 1))\n"
                        << "echo $count > '" << dir << "/starts'\n"
                        << "[ $count -le 2 ] && exit 1\n"
                        << "exec sed -z -u s/Hello/Hola/\n";
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  std::ofstream(dir + "/eng-spa.mode") << script << "\n";

  e2e::Service service({.args = {"--workers", "1", "--max-attempts", "3"},
                        .env = {{"APERTIUM_MODES_DIR", dir}, {"TRANSNOTES_ENGINES", "apertium"}},
                        .data_dir = ""});
  const auto job_id = e2e::translate_new_note(service.port(), "Hello world.");
  auto job = e2e::wait_for_job(service.port(), job_id);
  EXPECT_EQ(job["status"], "succeeded") << json::serialize(job) << service.log();
  EXPECT_EQ(job["attempts"], 2) << json::serialize(job);
  EXPECT_EQ(job["text"], "Hola world.");
  EXPECT_TRUE(job["error"].is_null()) << json::serialize(job);
}

}  // namespace
