#include "app/config.h"

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "redis/redis_client.h"
#include "storage/storage.h"

namespace transnotes::app {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

void apply_environment_fallbacks(Config& config) {
  if (config.database_url.empty() && !env("POSTGRES_DB").empty()) {
    std::string host = env("POSTGRES_HOST");
    config.database_url =
        postgres_url_from_parts(env("POSTGRES_DB"), env("POSTGRES_USER"), env("POSTGRES_PASSWORD"),
                                host.empty() ? "127.0.0.1" : host, env("POSTGRES_PORT"));
  }
  if (config.redis_url.empty() && !env("REDIS_HOST").empty()) {
    std::string port = env("REDIS_PORT");
    config.redis_url = "redis://" + env("REDIS_HOST") + ":" + (port.empty() ? "6379" : port) + "/0";
    std::string password = env("REDIS_PASSWORD");
    if (!password.empty()) {
      config.redis_url = "redis://:" + percent_encode(password) + "@" + env("REDIS_HOST") + ":" +
                         (port.empty() ? "6379" : port) + "/0";
    }
  }
  std::string debug = env("DEBUG");
  if (debug == "1" || debug == "true" || debug == "True" || debug == "yes") config.debug = true;
}

std::string Config::resolved_database_url() const {
  if (!database_url.empty()) return database_url;
  auto path = std::filesystem::absolute(std::filesystem::path(data_dir) / "transnotes.sqlite3");
  return "sqlite://" + path.lexically_normal().string();
}

std::string Config::redacted_database_url() const {
  std::string url = resolved_database_url();
  auto scheme_end = url.find("://");
  auto at = url.find('@');
  if (scheme_end == std::string::npos || at == std::string::npos || at < scheme_end) return url;
  auto colon = url.find(':', scheme_end + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

std::vector<std::string> Config::engine_order() const {
  std::vector<std::string> order;
  std::stringstream in(engines);
  std::string name;
  while (std::getline(in, name, ',')) {
    if (!name.empty()) order.push_back(name);
  }
  return order;
}

void Config::validate() const {
  if (port < 0 || port > 65535)
    throw ConfigError("port must be in 0..65535, got " + std::to_string(port));
  if (http_threads < 1 || http_threads > 256) throw ConfigError("http threads must be in 1..256");
  if (handler_threads < -1 || handler_threads > 1024)
    throw ConfigError("handler threads must be in 0..1024");
  if (workers < 0 || workers > 256) throw ConfigError("workers must be in 0..256");
  if (max_attempts < 1 || max_attempts > 100) throw ConfigError("max attempts must be in 1..100");
  if (lease_seconds < 1) throw ConfigError("lease seconds must be at least 1");
  if (db_pool_size < 1) throw ConfigError("database pool size must be at least 1");
  if (db_write_batch < 1 || db_write_batch > 64) {
    throw ConfigError("database write batch must be between 1 and 64");
  }
  if (max_body_bytes < 1024) throw ConfigError("max body bytes must be at least 1024");
  if (cache_capacity < 16) throw ConfigError("cache capacity must be at least 16");
  if (cache_ttl_seconds < 1) throw ConfigError("cache TTL must be at least 1 second");
  if (!redis_url.empty()) {
    try {
      redis::parse_redis_url(redis_url);
    } catch (const std::exception& e) {
      throw ConfigError(std::string("bad REDIS_URL: ") + e.what());
    }
  }
  for (const auto& e : engine_order()) {
    if (e != "marian" && e != "apertium") {
      throw ConfigError("unknown engine '" + e + "' in engine list (known: marian, apertium)");
    }
  }
}

}  // namespace transnotes::app
