// Liveness and readiness of a production API process: /healthz answers while the process runs;
// /readyz turns 503, naming the failed dependency, while PostgreSQL or Redis is down, and comes
// back when they do.
#include <gtest/gtest.h>

#include <thread>

#include "e2e/fault_services.h"
#include "e2e/harness.h"

namespace {

namespace json = boost::json;
using e2e::request;

// Polls /readyz until `done` holds for its answer (or 30 s pass); returns the last answer.
template <typename Condition>
e2e::HttpResult readyz_until(int port, Condition done) {
  e2e::HttpResult res;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    res = request(port, "GET", "/readyz");
    if (done(res)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return res;
}

std::string check_of(const e2e::HttpResult& res, const char* name) {
  try {
    return std::string(res.json().at("checks").at(name).as_string());
  } catch (const std::exception&) {
    return "(no " + std::string(name) + " check in " + res.body + ")";
  }
}

TEST(Readiness, FollowsPostgresAndRedisAndComesBack) {
  if (faults::PostgresServer::bin_dir().empty()) GTEST_FAIL() << "PostgreSQL not installed";
  if (!faults::RedisServer::available()) GTEST_FAIL() << "redis-server not installed";
  faults::PostgresServer pg;
  faults::RedisServer redis;
  e2e::ServiceOptions options;
  options.args = {"--workers", "0"};
  options.env = {{"DATABASE_URL", pg.url("ready")}, {"REDIS_URL", redis.url()}};
  options.allow_server_errors = true;  // /readyz answers 503 during the outages on purpose
  e2e::Service api(options);
  const int port = api.port();

  auto ready = [](const e2e::HttpResult& r) { return r.status == 200; };
  auto res = readyz_until(port, ready);
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.json(), json::parse(R"({"status": "ok", "checks": {"database": "ok",
                                        "redis": "ok", "engines": "ok"}})"));
  EXPECT_EQ(request(port, "GET", "/healthz").body, R"({"status":"ok"})");

  redis.kill();
  res = readyz_until(port, [](const e2e::HttpResult& r) { return r.status == 503; });
  ASSERT_EQ(res.status, 503) << res.body;
  EXPECT_EQ(res.json().at("status"), "unavailable");
  EXPECT_NE(check_of(res, "redis"), "ok");
  EXPECT_EQ(check_of(res, "database"), "ok");
  EXPECT_EQ(res.header("Retry-After"), "1");
  EXPECT_EQ(request(port, "GET", "/healthz").status, 200);  // alive all the same
  redis.start();
  res = readyz_until(port, ready);
  EXPECT_EQ(res.status, 200) << res.body;

  pg.stop();
  res = readyz_until(port, [](const e2e::HttpResult& r) { return r.status == 503; });
  ASSERT_EQ(res.status, 503) << res.body;
  EXPECT_NE(check_of(res, "database"), "ok");
  EXPECT_EQ(check_of(res, "redis"), "ok");
  EXPECT_EQ(request(port, "GET", "/healthz").status, 200);
  pg.start();
  res = readyz_until(port, ready);
  EXPECT_EQ(res.status, 200) << res.body;
}

}  // namespace
