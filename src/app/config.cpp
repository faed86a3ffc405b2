#include "app/config.h"

#include <cstdlib>
#include <filesystem>

#include "redis/redis_client.h"
#include "translation/registry.h"

namespace transnotes::app {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

std::string percent_encode(const std::string& text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

std::string postgres_url_from_parts(const std::string& db, const std::string& user,
                                    const std::string& password, const std::string& host,
                                    const std::string& port) {
  std::string url = "postgresql://";
  if (!user.empty()) {
    url += percent_encode(user);
    if (!password.empty()) url.append(":").append(percent_encode(password));
    url += "@";
  }
  const bool socket_dir = !host.empty() && host.front() == '/';
  if (!host.empty() && !socket_dir) {
    // An IPv6 literal must be bracketed; other hosts are plain names or addresses.
    if (host.find(':') != std::string::npos) {
      url.append("[").append(host).append("]");
    } else {
      url += percent_encode(host);
    }
  }
  if (!port.empty()) url.append(":").append(percent_encode(port));
  url.append("/").append(percent_encode(db));
  if (socket_dir) url.append("?host=").append(percent_encode(host));
  return url;
}

std::string redis_url_from_parts(const std::string& host, const std::string& port,
                                 const std::string& db, const std::string& password) {
  std::string url = "redis://";
  if (!password.empty()) url.append(":").append(percent_encode(password)).append("@");
  if (host.find(':') != std::string::npos) {
    url.append("[").append(host).append("]");
  } else {
    url += percent_encode(host);
  }
  url.append(":").append(port.empty() ? "6379" : percent_encode(port));
  url.append("/").append(db.empty() ? "0" : percent_encode(db));
  return url;
}

void apply_environment_fallbacks(Config& config) {
  if (config.database_url.empty() && !env("POSTGRES_DB").empty()) {
    std::string host = env("POSTGRES_HOST");
    config.database_url =
        postgres_url_from_parts(env("POSTGRES_DB"), env("POSTGRES_USER"), env("POSTGRES_PASSWORD"),
                                host.empty() ? "127.0.0.1" : host, env("POSTGRES_PORT"));
  }
  if (config.redis_url.empty() && !env("REDIS_HOST").empty()) {
    config.redis_url = redis_url_from_parts(env("REDIS_HOST"), env("REDIS_PORT"), env("REDIS_DB"),
                                            env("REDIS_PASSWORD"));
  }
  // A secret belongs in the environment (or the data directory), never in argv where `ps` shows it.
  if (config.secret_key.empty()) config.secret_key = env("SECRET_KEY");
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
  return translation::EngineRegistry::parse_priority(engines);
}

void Config::validate() const {
  if (port < 0 || port > 65535)
    throw ConfigError("port must be in 0..65535, got " + std::to_string(port));
  if (http_threads < 1 || http_threads > 256) throw ConfigError("http threads must be in 1..256");
  if (handler_threads < -1 || handler_threads > 1024)
    throw ConfigError("handler threads must be in 0..1024");
  if (workers < -1 || workers > 256) {
    throw ConfigError("workers must be in 0..256 (-1: automatic), got " + std::to_string(workers));
  }
  if (marian_beams < 0 || marian_beams > 16) {
    throw ConfigError("marian beams must be in 1..16 (0: the model's own), got " +
                      std::to_string(marian_beams));
  }
  if (marian_max_length < 0 || marian_max_length == 1 || marian_max_length > 1024) {
    throw ConfigError("marian max length must be in 2..1024 (0: the model's own), got " +
                      std::to_string(marian_max_length));
  }
  if (batch_wait_ms < -1 || batch_wait_ms > 1000) {
    throw ConfigError("batch wait ms must be in 0..1000 (-1: no cross-job batching), got " +
                      std::to_string(batch_wait_ms));
  }
  if (batch_running < 1 || batch_running > 8) {
    throw ConfigError("batch running must be in 1..8, got " + std::to_string(batch_running));
  }
  if (batch_max_segments < 1 || batch_max_segments > 4096) {
    throw ConfigError("batch max segments must be in 1..4096, got " +
                      std::to_string(batch_max_segments));
  }
  if (max_attempts < 1 || max_attempts > 100) throw ConfigError("max attempts must be in 1..100");
  if (lease_seconds < 1) throw ConfigError("lease seconds must be at least 1");
  if (shutdown_grace_seconds < 0 || shutdown_grace_seconds > 3600) {
    throw ConfigError("shutdown grace seconds must be in 0..3600");
  }
  if (db_pool_size < 1) throw ConfigError("database pool size must be at least 1");
  if (db_write_batch < 1 || db_write_batch > 64) {
    throw ConfigError("database write batch must be between 1 and 64");
  }
  if (sqlite_sync != "full" && sqlite_sync != "normal") {
    throw ConfigError("sqlite sync must be full or normal, got '" + sqlite_sync + "'");
  }
  if (max_body_bytes < 1024) throw ConfigError("max body bytes must be at least 1024");
  if (max_connections < 0 || max_connections > 1'000'000) {
    throw ConfigError("max connections must be in 0..1000000 (0: automatic)");
  }
  if (cache_capacity < 16) throw ConfigError("cache capacity must be at least 16");
  if (cache_ttl_seconds < 1) throw ConfigError("cache TTL must be at least 1 second");
  if (cache_max_bytes < (std::size_t{1} << 20)) {
    throw ConfigError("cache max bytes must be at least 1048576");
  }
  if (!redis_url.empty()) {
    try {
      redis::parse_redis_url(redis_url);
    } catch (const std::exception& e) {
      throw ConfigError(std::string("bad REDIS_URL: ") + e.what());
    }
  }
  if (!log_format.empty() && log_format != "text" && log_format != "json") {
    throw ConfigError("log format must be text or json, got '" + log_format + "'");
  }
  if (event_keepalive_seconds < 1 || event_keepalive_seconds > 3600) {
    throw ConfigError("event keep-alive seconds must be in 1..3600");
  }
  if (metrics_port < 0 || metrics_port > 65535) {
    throw ConfigError("metrics port must be in 0..65535, got " + std::to_string(metrics_port));
  }
  if (auth_mode != "jwt" && auth_mode != "open") {
    throw ConfigError("auth must be jwt or open, got '" + auth_mode + "'");
  }
  if (access_token_lifetime_seconds < 1 || refresh_token_lifetime_seconds < 1) {
    throw ConfigError("token lifetimes must be at least 1 second");
  }
  if (user_recheck_seconds < 0 || user_recheck_seconds > 3600) {
    throw ConfigError("user recheck seconds must be in 0..3600");
  }
  parse_throttle_rate(throttle_translate);
  parse_throttle_rate(throttle_auth);
  parse_throttle_rate(throttle_failed_logins);
  if (max_active_jobs_per_user < 0) throw ConfigError("max active jobs must be 0 or more");
  if (max_note_characters < 0) throw ConfigError("max note characters must be 0 or more");
  for (const auto& e : engine_order()) {
    if (e != "marian" && e != "apertium") {
      throw ConfigError("unknown engine '" + e + "' in engine list (known: marian, apertium)");
    }
  }
}

std::optional<ThrottleRate> parse_throttle_rate(const std::string& text) {
  if (text == "off") return std::nullopt;
  const auto bad = [&text] {
    return ConfigError("bad throttle rate '" + text +
                       "' (expected N/period with period s, min, hour or day, or off)");
  };
  auto slash = text.find('/');
  if (slash == std::string::npos || slash == 0) throw bad();
  ThrottleRate rate;
  try {
    std::size_t used = 0;
    rate.requests = std::stoi(text.substr(0, slash), &used);
    if (used != slash || rate.requests < 1) throw bad();
  } catch (const std::logic_error&) {
    throw bad();
  }
  // As DRF reads "100/minute": only the period's first letter counts.
  const std::string period = text.substr(slash + 1);
  if (period.empty()) throw bad();
  switch (period[0]) {
    case 's':
      rate.period_seconds = 1;
      break;
    case 'm':
      rate.period_seconds = 60;
      break;
    case 'h':
      rate.period_seconds = 3600;
      break;
    case 'd':
      rate.period_seconds = 86400;
      break;
    default:
      throw bad();
  }
  return rate;
}

bool is_loopback_host(const std::string& host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  return host.starts_with("127.") && host.find_first_not_of("0123456789.") == std::string::npos;
}

}  // namespace transnotes::app
