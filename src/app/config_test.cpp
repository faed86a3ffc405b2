// Settings parsing: flags and environment resolve to one Config, and bad values are one-line
// errors.
#include "app/config.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <stdlib.h>

#include <initializer_list>
#include <map>
#include <string>

#include "redis/redis_client.h"

namespace transnotes::app {
namespace {

// Sets environment variables for one test and restores the previous values afterwards.
class ScopedEnv {
 public:
  ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> values) {
    for (const auto& [name, value] : values) {
      const char* old = std::getenv(name);
      saved_.emplace(name, old ? std::optional<std::string>(old) : std::nullopt);
      if (value) {
        ::setenv(name, value, 1);
      } else {
        ::unsetenv(name);
      }
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

constexpr std::initializer_list<std::pair<const char*, const char*>> kNoServiceEnv = {
    {"POSTGRES_DB", nullptr},   {"POSTGRES_USER", nullptr}, {"POSTGRES_PASSWORD", nullptr},
    {"POSTGRES_HOST", nullptr}, {"POSTGRES_PORT", nullptr}, {"REDIS_HOST", nullptr},
    {"REDIS_PORT", nullptr},    {"REDIS_DB", nullptr},      {"REDIS_PASSWORD", nullptr},
    {"DEBUG", nullptr}};

TEST(PostgresUrl, PartsArePercentEscapedAndParseBack) {
  std::string url =
      postgres_url_from_parts("my db/1", "us@er", "p:a/s?s#w%rd", "db.example", "6543");
  EXPECT_EQ(url, "postgresql://us%40er:p%3Aa%2Fs%3Fs%23w%25rd@db.example:6543/my%20db%2F1");
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  ASSERT_NE(options, nullptr) << (error ? error : "");
  std::map<std::string, std::string> parsed;
  for (auto* o = options; o->keyword != nullptr; ++o) {
    if (o->val != nullptr) parsed[o->keyword] = o->val;
  }
  PQconninfoFree(options);
  EXPECT_EQ(parsed["dbname"], "my db/1");
  EXPECT_EQ(parsed["user"], "us@er");
  EXPECT_EQ(parsed["password"], "p:a/s?s#w%rd");
  EXPECT_EQ(parsed["host"], "db.example");
  EXPECT_EQ(parsed["port"], "6543");

  EXPECT_EQ(postgres_url_from_parts("db", "", "", "", ""), "postgresql:///db");
  EXPECT_EQ(postgres_url_from_parts("db", "u", "", "::1", "5432"), "postgresql://u@[::1]:5432/db");
  EXPECT_EQ(postgres_url_from_parts("db", "u", "", "/var/run/postgresql", ""),
            "postgresql://u@/db?host=%2Fvar%2Frun%2Fpostgresql");
}

TEST(RedisUrl, PartsParseBackToTheSameSettings) {
  auto config = redis::parse_redis_url(redis_url_from_parts("redis", "6390", "3", "p@ss:w/rd"));
  EXPECT_EQ(config.host, "redis");
  EXPECT_EQ(config.port, 6390);
  EXPECT_EQ(config.db, 3);
  EXPECT_EQ(config.password, "p@ss:w/rd");
  auto defaults = redis::parse_redis_url(redis_url_from_parts("cache.local", "", "", ""));
  EXPECT_EQ(defaults.host, "cache.local");
  EXPECT_EQ(defaults.port, 6379);
  EXPECT_EQ(defaults.db, 0);
  EXPECT_EQ(defaults.password, "");
}

TEST(EnvironmentFallbacks, PostgresPartsBuildTheDatabaseUrl) {
  ScopedEnv clean(kNoServiceEnv);
  ScopedEnv env({{"POSTGRES_DB", "notes"},
                 {"POSTGRES_USER", "app"},
                 {"POSTGRES_PASSWORD", "s3cret"},
                 {"POSTGRES_HOST", "db"},
                 {"POSTGRES_PORT", "5433"}});
  Config config;
  apply_environment_fallbacks(config);
  EXPECT_EQ(config.database_url, "postgresql://app:s3cret@db:5433/notes");
  EXPECT_TRUE(config.uses_postgres());
  EXPECT_EQ(config.redacted_database_url(), "postgresql://app:***@db:5433/notes");
}

TEST(EnvironmentFallbacks, AnExplicitDatabaseUrlWins) {
  ScopedEnv clean(kNoServiceEnv);
  ScopedEnv env({{"POSTGRES_DB", "notes"}});
  Config config;
  config.database_url = "postgresql://other/db";
  apply_environment_fallbacks(config);
  EXPECT_EQ(config.database_url, "postgresql://other/db");
}

TEST(EnvironmentFallbacks, NoServicesMeansSqliteInTheDataDir) {
  ScopedEnv clean(kNoServiceEnv);
  Config config;
  config.data_dir = "/var/lib/transnotes";
  apply_environment_fallbacks(config);
  EXPECT_EQ(config.resolved_database_url(), "sqlite:///var/lib/transnotes/transnotes.sqlite3");
  EXPECT_FALSE(config.uses_postgres());
  EXPECT_FALSE(config.uses_redis());
}

TEST(EnvironmentFallbacks, RedisPartsIncludingTheDatabaseNumber) {
  ScopedEnv clean(kNoServiceEnv);
  ScopedEnv env({{"REDIS_HOST", "redis"},
                 {"REDIS_PORT", "6400"},
                 {"REDIS_DB", "2"},
                 {"REDIS_PASSWORD", "pw"}});
  Config config;
  apply_environment_fallbacks(config);
  ASSERT_TRUE(config.uses_redis());
  auto parsed = redis::parse_redis_url(config.redis_url);
  EXPECT_EQ(parsed.host, "redis");
  EXPECT_EQ(parsed.port, 6400);
  EXPECT_EQ(parsed.db, 2);
  EXPECT_EQ(parsed.password, "pw");
  EXPECT_NO_THROW(config.validate());
}

TEST(EnvironmentFallbacks, ABadRedisPortIsAConfigError) {
  ScopedEnv clean(kNoServiceEnv);
  ScopedEnv env({{"REDIS_HOST", "redis"}, {"REDIS_PORT", "sixty"}});
  Config config;
  apply_environment_fallbacks(config);
  EXPECT_THROW(config.validate(), ConfigError);
}

TEST(EnvironmentFallbacks, DebugAcceptsTheOriginalsSpellings) {
  for (const char* yes : {"1", "true", "True", "yes"}) {
    ScopedEnv env({{"DEBUG", yes}});
    Config config;
    apply_environment_fallbacks(config);
    EXPECT_TRUE(config.debug) << yes;
  }
  for (const char* no : {"0", "false", "", "no"}) {
    ScopedEnv env({{"DEBUG", no}});
    Config config;
    apply_environment_fallbacks(config);
    EXPECT_FALSE(config.debug) << no;
  }
}

// Durable SQLite writes wait for an fsync, so by default they run on the slow pool, where group
// commit can gather them, while reads stay on the event loop; with "normal", or with handler
// threads, nothing moves.
TEST(HandlerThreads, SqliteFullRunsWritesOnTheSlowPoolReadsOnTheEventLoop) {
  ScopedEnv clean(kNoServiceEnv);
  Config config;
  apply_environment_fallbacks(config);
  ASSERT_FALSE(config.uses_postgres());
  EXPECT_EQ(config.sqlite_sync, "full");
  EXPECT_EQ(config.resolved_handler_threads(), 0);
  EXPECT_TRUE(config.writes_on_slow_pool());
  config.sqlite_sync = "normal";
  EXPECT_FALSE(config.writes_on_slow_pool());
  config.sqlite_sync = "full";
  config.handler_threads = 3;
  EXPECT_EQ(config.resolved_handler_threads(), 3);
  EXPECT_FALSE(config.writes_on_slow_pool());
}

TEST(EngineOrder, ItemsAreTrimmedAndEmptyOnesIgnored) {
  Config config;
  config.engines = " marian , apertium,, ";
  EXPECT_EQ(config.engine_order(), (std::vector<std::string>{"marian", "apertium"}));
  EXPECT_NO_THROW(config.validate());
}

TEST(EngineOrder, UnknownEngineIsAConfigErrorNamingIt) {
  Config config;
  config.engines = "marian, deepl";
  try {
    config.validate();
    FAIL() << "validate() accepted an unknown engine";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'deepl'"), std::string::npos) << e.what();
  }
}

// Each bad value is refused with a message naming the setting.
TEST(Validate, RefusesOutOfRangeValues) {
  struct Case {
    const char* setting;
    void (*spoil)(Config&);
  };
  const Case cases[] = {
      {"port", [](Config& c) { c.port = 70000; }},
      {"http threads", [](Config& c) { c.http_threads = 0; }},
      {"handler threads", [](Config& c) { c.handler_threads = -2; }},
      {"workers", [](Config& c) { c.workers = -2; }},  // -1 is "automatic"
      {"workers", [](Config& c) { c.workers = 257; }},
      {"marian beams", [](Config& c) { c.marian_beams = -1; }},
      {"marian beams", [](Config& c) { c.marian_beams = 17; }},
      {"marian max length", [](Config& c) { c.marian_max_length = 1; }},
      {"marian max length", [](Config& c) { c.marian_max_length = 1025; }},
      {"batch wait ms", [](Config& c) { c.batch_wait_ms = -2; }},
      {"batch wait ms", [](Config& c) { c.batch_wait_ms = 1001; }},
      {"batch max segments", [](Config& c) { c.batch_max_segments = 0; }},
      {"batch running", [](Config& c) { c.batch_running = 0; }},
      {"batch running", [](Config& c) { c.batch_running = 9; }},
      {"max attempts", [](Config& c) { c.max_attempts = 0; }},
      {"lease seconds", [](Config& c) { c.lease_seconds = 0; }},
      {"pool size", [](Config& c) { c.db_pool_size = 0; }},
      {"write batch", [](Config& c) { c.db_write_batch = 65; }},
      {"sqlite sync", [](Config& c) { c.sqlite_sync = "off"; }},
      {"max body bytes", [](Config& c) { c.max_body_bytes = 10; }},
      {"max connections", [](Config& c) { c.max_connections = -1; }},
      {"cache capacity", [](Config& c) { c.cache_capacity = 1; }},
      {"cache TTL", [](Config& c) { c.cache_ttl_seconds = 0; }},
      {"cache max bytes", [](Config& c) { c.cache_max_bytes = 1000; }},
      {"shutdown grace", [](Config& c) { c.shutdown_grace_seconds = -1; }},
      {"REDIS_URL", [](Config& c) { c.redis_url = "http://not-redis"; }},
      {"log format", [](Config& c) { c.log_format = "xml"; }},
      {"metrics port", [](Config& c) { c.metrics_port = 65536; }},
      {"event keep-alive", [](Config& c) { c.event_keepalive_seconds = 0; }},
  };
  for (const auto& bad : cases) {
    Config config;
    bad.spoil(config);
    try {
      config.validate();
      ADD_FAILURE() << bad.setting << ": accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(bad.setting), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(Config{}.validate());
}

TEST(Validate, AcceptsTheEdgesOfTheEngineAndBatchingRanges) {
  Config config;
  config.marian_beams = 1;
  config.marian_max_length = 2;
  config.batch_wait_ms = -1;
  config.batch_max_segments = 1;
  config.workers = 0;
  EXPECT_NO_THROW(config.validate());
  config.marian_beams = 16;
  config.marian_max_length = 1024;
  config.batch_wait_ms = 1000;
  config.workers = 256;
  EXPECT_NO_THROW(config.validate());
}

TEST(Workers, AutomaticCountDependsOnWhetherABatchingEngineIsLoaded) {
  Config config;
  EXPECT_EQ(config.workers, -1);
  EXPECT_EQ(config.resolved_workers(false), Config::kDefaultWorkers);
  EXPECT_EQ(config.resolved_workers(true), Config::kBatchingWorkers);
  config.workers = 3;  // an operator's number is kept either way
  EXPECT_EQ(config.resolved_workers(false), 3);
  EXPECT_EQ(config.resolved_workers(true), 3);
  config.workers = 0;
  EXPECT_EQ(config.resolved_workers(true), 0);
  EXPECT_TRUE(config.batches_across_jobs());
  config.batch_wait_ms = -1;
  EXPECT_FALSE(config.batches_across_jobs());
}

}  // namespace
}  // namespace transnotes::app
