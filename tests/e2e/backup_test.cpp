// `transnotes backup` while a serve takes writes, and `transnotes restore`, with the real binary:
// nothing acknowledged before the backup started is lost, and the commands refuse what would
// lose data (a running server, an existing file, a PostgreSQL database).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "e2e/harness.h"

namespace {

namespace json = boost::json;
using e2e::request;

const std::string kBinary = TRANSNOTES_BINARY;

std::string with_data_dir(const std::string& data_dir) {
  return "TRANSNOTES_DATA_DIR=" + data_dir + " " + kBinary;
}

// Creates notes one after another until stopped, remembering each one the server acknowledged.
class NoteWriter {
 public:
  explicit NoteWriter(int port) : port_(port), thread_([this] { run(); }) {}
  ~NoteWriter() { stop(); }

  void wait_for_acknowledged(std::size_t count) {
    std::unique_lock lock(mutex_);
    ASSERT_TRUE(changed_.wait_for(lock, std::chrono::seconds(60), [&] {
      return acknowledged_.size() >= count || failed_;
    })) << "the writer stalled";
    ASSERT_FALSE(failed_) << failure_;
  }
  std::vector<std::pair<std::int64_t, std::string>> acknowledged() {
    std::lock_guard lock(mutex_);
    return acknowledged_;
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::string failure() {
    std::lock_guard lock(mutex_);
    return failure_;
  }

 private:
  void run() {
    for (int i = 0; !stop_; ++i) {
      const std::string text = "Note number " + std::to_string(i) + " under load.";
      json::object body{{"title", "load " + std::to_string(i)}, {"original_text", text}};
      auto created = request(port_, "POST", "/api/v1/notes/", json::serialize(body));
      std::lock_guard lock(mutex_);
      if (created.status != 201) {
        failed_ = true;
        failure_ = std::to_string(created.status) + " " + created.body;
        changed_.notify_all();
        return;
      }
      acknowledged_.emplace_back(created.json().at("id").as_int64(), text);
      changed_.notify_all();
    }
  }

  int port_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::pair<std::int64_t, std::string>> acknowledged_;
  bool failed_ = false;
  std::string failure_;
  std::thread thread_;  // last: starts once the members it uses exist
};

TEST(Backup, ABackupUnderWriteLoadRestoresEveryNoteAcknowledgedBeforeItStarted) {
  const std::string backup_dir = e2e::make_temp_dir("transnotes-backup-file");
  const std::string backup_file = backup_dir + "/notes.backup";
  std::vector<std::pair<std::int64_t, std::string>> before_backup;
  std::size_t acknowledged_in_all = 0;
  {
    e2e::ServiceOptions options;
    e2e::Service service(options);
    NoteWriter writer(service.port());
    writer.wait_for_acknowledged(200);
    before_backup = writer.acknowledged();
    auto backup =
        e2e::run_command(with_data_dir(service.data_dir()) + " backup " + backup_file + " 2>&1");
    ASSERT_EQ(backup.exit_code, 0) << backup.output;
    // The load went on during the backup and after it.
    writer.wait_for_acknowledged(before_backup.size() + 20);
    writer.stop();
    ASSERT_EQ(writer.failure(), "");
    acknowledged_in_all = writer.acknowledged().size();
    EXPECT_EQ(service.terminate(), 0) << service.log();
  }
  ASSERT_GT(acknowledged_in_all, before_backup.size());

  const std::string fresh_dir = e2e::make_temp_dir("transnotes-restored");
  auto restored = e2e::run_command(with_data_dir(fresh_dir) + " restore " + backup_file + " 2>&1");
  ASSERT_EQ(restored.exit_code, 0) << restored.output;

  e2e::ServiceOptions options;
  options.data_dir = fresh_dir;
  e2e::Service service(options);  // logs in the same test user, restored with the notes
  for (const auto& [id, text] : before_backup) {
    auto note = request(service.port(), "GET", "/api/v1/notes/" + std::to_string(id) + "/");
    ASSERT_EQ(note.status, 200) << "note " << id << ": " << note.body;
    EXPECT_EQ(note.json().at("original_text"), text.c_str());
  }
  // The copy is one snapshot: whatever it holds beyond them was acknowledged too.
  auto stats = request(service.port(), "GET", "/api/v1/stats/");
  ASSERT_EQ(stats.status, 200) << stats.body;
  const auto total = stats.json().at("total_notes").as_int64();
  EXPECT_GE(total, static_cast<std::int64_t>(before_backup.size()));
  EXPECT_LE(total, static_cast<std::int64_t>(acknowledged_in_all));
}

TEST(Backup, RestoreRefusesWhileAServeHoldsTheDatabase) {
  const std::string backup_file = e2e::make_temp_dir("transnotes-backup-file") + "/b.sqlite3";
  e2e::ServiceOptions options;
  e2e::Service service(options);
  auto note = request(service.port(), "POST", "/api/v1/notes/",
                      R"({"title": "stays", "original_text": "Still here."})");
  ASSERT_EQ(note.status, 201) << note.body;
  auto backup =
      e2e::run_command(with_data_dir(service.data_dir()) + " backup " + backup_file + " 2>&1");
  ASSERT_EQ(backup.exit_code, 0) << backup.output;

  auto restore =
      e2e::run_command(with_data_dir(service.data_dir()) + " restore " + backup_file + " 2>&1");
  EXPECT_EQ(restore.exit_code, 1) << restore.output;
  EXPECT_NE(restore.output.find("open in another process"), std::string::npos) << restore.output;
  EXPECT_NE(restore.output.find("stop it before restoring"), std::string::npos) << restore.output;
  // The running service did not notice.
  auto again = request(service.port(), "GET",
                       "/api/v1/notes/" + std::to_string(note.json().at("id").as_int64()) + "/");
  EXPECT_EQ(again.status, 200) << again.body;
}

TEST(Backup, BackupRefusesAnExistingPathAndSendsPostgresToPgDump) {
  e2e::ServiceOptions options;
  e2e::Service service(options);
  const std::string taken = e2e::make_temp_dir("transnotes-backup-file") + "/taken";
  { std::ofstream(taken) << "an older backup"; }
  auto refused = e2e::run_command(with_data_dir(service.data_dir()) + " backup " + taken + " 2>&1");
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("already exists (use --force"), std::string::npos)
      << refused.output;
  std::ifstream in(taken);
  std::string kept((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(kept, "an older backup");

  auto forced =
      e2e::run_command(with_data_dir(service.data_dir()) + " backup --force " + taken + " 2>&1");
  EXPECT_EQ(forced.exit_code, 0) << forced.output;

  auto postgres = e2e::run_command("DATABASE_URL=postgresql://transnotes@127.0.0.1:1/transnotes " +
                                   kBinary + " backup " + taken + ".pg 2>&1");
  EXPECT_EQ(postgres.exit_code, 2) << postgres.output;
  EXPECT_NE(postgres.output.find("pg_dump"), std::string::npos) << postgres.output;
  EXPECT_EQ(std::count(postgres.output.begin(), postgres.output.end(), '\n'), 1) << postgres.output;
}

}  // namespace
