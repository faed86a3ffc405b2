// Shutdown with a hung engine, end to end: SIGTERM abandons the running try after the grace
// (--shutdown-grace-seconds) instead of waiting out the engine's own timeouts, and the job goes
// back to queued for the next worker.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <thread>

#include "e2e/harness.h"

namespace {

namespace json = boost::json;
using e2e::request;

// A modes folder whose en->es pipeline never answers.
std::string hung_modes_dir() {
  const std::string dir = e2e::make_temp_dir("transnotes-hung-modes");
  std::ofstream(dir + "/eng-spa.mode") << "cat | tail -z -f /dev/null\n";
  return dir;
}

json::object get_job(int port, std::int64_t job_id) {
  return request(port, "GET", "/api/v1/translations/" + std::to_string(job_id) + "/")
      .json()
      .as_object();
}

TEST(ShutdownGrace, AbandonsAHungTryAndTheNextServiceFinishesTheJob) {
  const std::string data_dir = e2e::make_temp_dir("transnotes-shutdown");
  std::int64_t job_id = 0;
  {
    e2e::Service hung(
        {.args = {"--workers", "1", "--shutdown-grace-seconds", "1"},
         .env = {{"APERTIUM_MODES_DIR", hung_modes_dir()}, {"TRANSNOTES_ENGINES", "apertium"}},
         .data_dir = data_dir});
    job_id = e2e::translate_new_note(hung.port(), "Hello world.");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (get_job(hung.port(), job_id)["status"] != "running" &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_EQ(get_job(hung.port(), job_id)["status"], "running") << hung.log();
    const auto began = std::chrono::steady_clock::now();
    const int status = hung.terminate();
    // The engine alone would hold on for 2 x 30 s (segment timeout, one restart).
    EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(15)) << hung.log();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << hung.log();
  }
  e2e::Service next({.args = {"--workers", "1"}, .env = {}, .data_dir = data_dir});
  auto job = e2e::wait_for_job(next.port(), job_id);
  EXPECT_EQ(job["status"], "succeeded") << json::serialize(job) << next.log();
  EXPECT_EQ(job["text"], "Hola Mundo.");
}

}  // namespace
