// Cached list pages (issue 13) are never stale: two API processes share one database (SQLite
// file, or PostgreSQL with Redis), each with its own page cache, and a list asked of either after
// a write was acknowledged by either shows that write.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "e2e/fault_services.h"
#include "e2e/harness.h"

namespace {

namespace json = boost::json;
using e2e::request;

using Titles = std::map<std::int64_t, std::string>;  // id -> title

constexpr const char* kList = "/api/v1/notes/?limit=1000";

std::string note_path(std::int64_t id) { return "/api/v1/notes/" + std::to_string(id) + "/"; }

std::int64_t create_note(int port, const std::string& title) {
  auto res = request(port, "POST", "/api/v1/notes/",
                     json::serialize(json::object{{"title", title}, {"original_text", "x"}}));
  EXPECT_EQ(res.status, 201) << res.body;
  return res.status == 201 ? res.json().at("id").as_int64() : -1;
}

// id -> title, in the page's order.
std::vector<std::pair<std::int64_t, std::string>> list_page(int port) {
  auto res = request(port, "GET", kList);
  EXPECT_EQ(res.status, 200) << res.body;
  std::vector<std::pair<std::int64_t, std::string>> page;
  if (res.status != 200) return page;
  const boost::json::value items = res.json();  // kept: as_array() refers into it
  for (const auto& item : items.as_array()) {
    page.emplace_back(item.at("id").as_int64(), std::string(item.at("title").as_string()));
  }
  return page;
}

class ListCache : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::map<std::string, std::string> env = {{"LOG_LEVEL", "warn"}};
    if (GetParam() == "postgres") {
      if (!std::getenv("TRANSNOTES_TEST_DATABASE_URL")) {
        GTEST_FAIL() << "TRANSNOTES_TEST_DATABASE_URL unset; start scripts/services.sh";
      }
      if (!faults::RedisServer::available()) GTEST_FAIL() << "redis-server not installed";
      redis_ = std::make_unique<faults::RedisServer>();
      env["DATABASE_URL"] = e2e::database_url_for("postgres");
      env["REDIS_URL"] = redis_->url();
    }
    const std::string data_dir = e2e::make_temp_dir("transnotes-e2e-list");
    auto options = [&] {
      return e2e::ServiceOptions{.args = {"--workers", "0", "--list-cache-bytes", "1048576"},
                                 .env = env,
                                 .data_dir = data_dir};
    };
    a_ = std::make_unique<e2e::Service>(options());
    b_ = std::make_unique<e2e::Service>(options());
  }

  std::unique_ptr<faults::RedisServer> redis_;
  std::unique_ptr<e2e::Service> a_, b_;
};

TEST_P(ListCache, AListAfterAnAcknowledgedWriteInEitherProcessShowsIt) {
  const int ports[2] = {a_->port(), b_->port()};
  std::map<std::int64_t, std::string> expected;  // id -> title
  for (int i = 0; i < 5; ++i) {
    const std::string title = "seed " + std::to_string(i);
    expected[create_note(ports[0], title)] = title;
  }
  auto expect_lists = [&](const std::string& after) {
    for (int port : ports) {
      auto page = list_page(port);
      std::map<std::int64_t, std::string> seen(page.begin(), page.end());
      EXPECT_EQ(seen, expected) << "port " << port << " after " << after;
    }
  };
  expect_lists("seeding");  // both caches now hold the page
  expect_lists("a second look (from the caches)");
  for (int round = 0; round < 12; ++round) {
    const int writer = ports[round % 2];
    const std::string what = "round " + std::to_string(round);
    switch (round % 3) {
      case 0: {
        expected[create_note(writer, "created " + what)] = "created " + what;
        break;
      }
      case 1: {
        const std::int64_t id = expected.begin()->first;
        auto res = request(writer, "PATCH", note_path(id),
                           json::serialize(json::object{{"title", "patched " + what}}));
        EXPECT_EQ(res.status, 200) << res.body;
        expected[id] = "patched " + what;
        break;
      }
      case 2: {
        const std::int64_t id = expected.rbegin()->first;
        EXPECT_EQ(request(writer, "DELETE", note_path(id)).status, 204);
        expected.erase(id);
        break;
      }
    }
    expect_lists(what);
  }
}

TEST_P(ListCache, AfterConcurrentWritesAndListsInBothProcessesTheLastListsShowTheLastWrites) {
  const int ports[2] = {a_->port(), b_->port()};
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(create_note(ports[i % 2], "note " + std::to_string(i)));
  std::atomic<int> writers_left{3};
  std::atomic<int> lists{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 3; ++w) {
    threads.emplace_back([&, w] {
      for (int round = 0; round < 40; ++round) {
        const std::int64_t id = ids[static_cast<std::size_t>(w * 2 + round % 2)];
        auto res = request(ports[(w + round) % 2], "PATCH", note_path(id),
                           json::serialize(json::object{
                               {"title", "w" + std::to_string(w) + " r" + std::to_string(round)}}));
        EXPECT_EQ(res.status, 200) << res.body;
      }
      writers_left.fetch_sub(1);
    });
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      while (writers_left.load() > 0) {
        EXPECT_EQ(list_page(ports[r]).size(), ids.size());
        lists.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_GT(lists.load(), 0);
  // Each note's last patch: round 38 or 39 of its writer.
  std::map<std::int64_t, std::string> expected;
  for (int w = 0; w < 3; ++w) {
    expected[ids[static_cast<std::size_t>(w * 2)]] = "w" + std::to_string(w) + " r38";
    expected[ids[static_cast<std::size_t>(w * 2 + 1)]] = "w" + std::to_string(w) + " r39";
  }
  for (int port : ports) {
    auto page = list_page(port);
    const Titles seen(page.begin(), page.end());
    EXPECT_EQ(seen, expected) << "port " << port;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, ListCache, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
