// Process configuration: command-line flags, each also settable from the environment (the
// original deployment's .env names where it had one). Bad values are ConfigError: one line,
// exit code 2.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace transnotes::app {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Config {
  // HTTP (serve)
  std::string host = "127.0.0.1";  // TRANSNOTES_HOST
  int port = 8000;                 // TRANSNOTES_PORT (or PORT)
  int http_threads = 4;            // TRANSNOTES_HTTP_THREADS
  // TRANSNOTES_HANDLER_THREADS: threads that run requests which may block on the database;
  // -1 picks: 0 (run on the event loop) for SQLite, the pool size for PostgreSQL.
  int handler_threads = -1;
  std::size_t max_body_bytes = 1 << 20;  // TRANSNOTES_MAX_BODY_BYTES
  // TRANSNOTES_MAX_CONNECTIONS: open connections at once; 0 picks min(10000, fd limit - 64)
  int max_connections = 0;
  // TRANSNOTES_TRUST_PROXY: links use X-Forwarded-Host/-Proto (only behind a proxy that sets them)
  bool trust_proxy = false;
  // Storage
  std::string data_dir = "./data";  // TRANSNOTES_DATA_DIR: SQLite file lives here
  std::string database_url;         // DATABASE_URL; else POSTGRES_*; else SQLite in data_dir
  int db_pool_size = 16;            // TRANSNOTES_DB_POOL_SIZE
  int db_write_batch = 64;          // TRANSNOTES_DB_WRITE_BATCH
  // TRANSNOTES_SQLITE_SYNC: "full" (an acknowledged write survives a power cut) or "normal"
  // (faster; a power cut may lose the last writes, a crash of the process loses none)
  std::string sqlite_sync = "full";
  // Redis: cache (db 1 by default, as the original) and job bus (db 0)
  std::string redis_url;        // REDIS_URL; else REDIS_HOST/REDIS_PORT
  int redis_cache_db = 1;       // REDIS_CACHE_DB
  int cache_capacity = 10000;   // TRANSNOTES_CACHE_CAPACITY (embedded LRU entries)
  int cache_ttl_seconds = 300;  // TRANSNOTES_CACHE_TTL
  std::size_t cache_max_bytes = std::size_t{256} << 20;  // TRANSNOTES_CACHE_MAX_BYTES (embedded)
  // Workers
  // TRANSNOTES_WORKERS: worker threads, i.e. jobs a process translates at once; -1 picks
  // (resolved_workers): 2, or kBatchingWorkers when a MarianMT model is loaded and cross-job
  // batching is on, so that many jobs' sentences can meet in one forward pass.
  int workers = -1;
  int max_attempts = 3;    // TRANSNOTES_MAX_ATTEMPTS
  int lease_seconds = 30;  // TRANSNOTES_LEASE_SECONDS
  // TRANSNOTES_SHUTDOWN_GRACE_SECONDS: on SIGTERM running translations get this long to finish;
  // then they are abandoned and their jobs queued again for the next worker.
  int shutdown_grace_seconds = 10;
  // Engines
  std::string engines = "marian,apertium";  // TRANSNOTES_ENGINES: priority order
  std::string models_dir = "./models";      // MODELS_DIR
  std::string apertium_modes_dir = "/usr/share/apertium/modes";  // APERTIUM_MODES_DIR
  int engine_threads = 2;    // TRANSNOTES_ENGINE_THREADS: BLAS threads
  bool marian_int8 = false;  // TRANSNOTES_MARIAN_INT8: int8 MarianMT weights (and products)
  // TRANSNOTES_MARIAN_BEAMS / TRANSNOTES_MARIAN_MAX_LENGTH: beam size (1: greedy) and longest
  // output in tokens (with the decoder start) for serve and worker; 0: each model's
  // generation_config.json.
  int marian_beams = 0;
  int marian_max_length = 0;
  // TRANSNOTES_BATCH_WAIT_MS: MarianMT translates the sentences of concurrent jobs of one pair in
  // one batch (translation::BatchingEngine); the first job after a quiet spell waits this long
  // for company. 0: no wait (jobs still share a batch when they queue behind a running one);
  // -1: no cross-job batching, every job's batch runs on its own.
  int batch_wait_ms = 2;
  // TRANSNOTES_BATCH_MAX_SEGMENTS: sentences per cross-job batch.
  int batch_max_segments = 64;
  // TRANSNOTES_BATCH_RUNNING: cross-job batches of one pair in the engine at once.
  int batch_running = 1;
  // Accounts and limits (serve)
  std::string auth_mode = "jwt";  // TRANSNOTES_AUTH: jwt | open
  // TRANSNOTES_ALLOW_OPEN_AUTH_ON_NETWORK: open mode on an address other than loopback
  bool allow_open_auth_on_network = false;
  int access_token_lifetime_seconds = 300;     // TRANSNOTES_ACCESS_TOKEN_LIFETIME
  int refresh_token_lifetime_seconds = 86400;  // TRANSNOTES_REFRESH_TOKEN_LIFETIME
  bool rotate_refresh_tokens = false;          // TRANSNOTES_ROTATE_REFRESH_TOKENS
  bool blacklist_after_rotation = true;        // TRANSNOTES_BLACKLIST_AFTER_ROTATION
  // TRANSNOTES_USER_RECHECK_SECONDS: a token checked with its user is trusted this long before
  // the user is looked up again (deleted or deactivated users lose access within it)
  int user_recheck_seconds = 30;
  // DRF-style rates "N/period", period s|sec|m|min|h|hour|d|day (a bucket of N refilled per
  // period); "off" disables that limit.
  std::string throttle_translate = "120/min";     // TRANSNOTES_THROTTLE_TRANSLATE (per user)
  std::string throttle_auth = "60/min";           // TRANSNOTES_THROTTLE_AUTH (per address)
  std::string throttle_failed_logins = "10/min";  // TRANSNOTES_THROTTLE_FAILED_LOGINS (per name)
  int max_active_jobs_per_user = 100;             // TRANSNOTES_MAX_ACTIVE_JOBS (0: no cap)
  int max_note_characters = 100'000;              // TRANSNOTES_MAX_NOTE_CHARACTERS (0: none)
  // Misc (from the original's .env)
  std::string secret_key;          // SECRET_KEY
  bool debug = false;              // DEBUG
  std::string log_level = "info";  // LOG_LEVEL
  // Observability
  // TRANSNOTES_LOG_FORMAT: text | json; "" picks json when the log stream (stderr) is not a
  // terminal, text when it is.
  std::string log_format;
  bool access_log = true;  // TRANSNOTES_ACCESS_LOG: one line per request (on | off)
  // TRANSNOTES_METRICS_PORT (worker): serves /metrics, /healthz and /readyz on this port; 0: none.
  // serve reports its in-process workers on its own /metrics.
  int metrics_port = 0;
  std::string metrics_host = "0.0.0.0";  // TRANSNOTES_METRICS_HOST (worker)
  // TRANSNOTES_EVENT_KEEPALIVE_SECONDS (serve): a quiet event stream gets a `: keep-alive`
  // comment this often, so proxies do not close it.
  int event_keepalive_seconds = 15;
  // TRANSNOTES_LIST_CACHE_BYTES (serve): rendered note list pages kept per process, checked
  // against the owner's notes version in the database on every request; 0: none.
  std::size_t list_cache_bytes = 64u << 20;

  // Resolved database URL: DATABASE_URL, else POSTGRES_* env, else sqlite in data_dir.
  std::string resolved_database_url() const;
  // The database URL with any password replaced by "***", for logs.
  std::string redacted_database_url() const;
  bool uses_postgres() const { return !resolved_database_url().starts_with("sqlite"); }
  int resolved_handler_threads() const {
    if (handler_threads >= 0) return handler_threads;
    return uses_postgres() ? db_pool_size : 0;
  }
  // Durable SQLite commits wait for an fsync. With handlers on the event loop, writes then run on
  // the server's slow pool instead, as many at once as the database pool, so that group commit
  // has writes to gather (one fsync for all of them); reads stay on the event loop.
  bool writes_on_slow_pool() const {
    return resolved_handler_threads() == 0 && !uses_postgres() && sqlite_sync == "full";
  }
  bool uses_redis() const { return !redis_url.empty(); }
  // Production deployments (PostgreSQL) must be given SECRET_KEY; the embedded default keeps a
  // generated one in data_dir.
  bool is_production() const { return uses_postgres(); }
  bool open_auth() const { return auth_mode == "open"; }
  std::vector<std::string> engine_order() const;
  // Worker threads when workers is -1 and a batching MarianMT engine is loaded: enough jobs in
  // flight to fill a batch while the previous one runs (notes have a few sentences each).
  static constexpr int kBatchingWorkers = 32;
  static constexpr int kDefaultWorkers = 2;
  bool batches_across_jobs() const { return batch_wait_ms >= 0; }
  // Worker threads to run: `workers` when set (0: none, serve only), else kBatchingWorkers
  // when `batching_engine_loaded`, else kDefaultWorkers.
  int resolved_workers(bool batching_engine_loaded) const {
    if (workers >= 0) return workers;
    return batching_engine_loaded ? kBatchingWorkers : kDefaultWorkers;
  }
  // Throws ConfigError describing the first bad value.
  void validate() const;
};

// Builds a PostgreSQL URL from the original deployment's POSTGRES_DB/USER/PASSWORD/HOST/PORT
// values, percent-escaping each part. Empty user/password/host/port are left out; a host starting
// with '/' (a Unix socket directory) is passed as the `host` query parameter.
std::string postgres_url_from_parts(const std::string& db, const std::string& user,
                                    const std::string& password, const std::string& host,
                                    const std::string& port);

// Builds a redis:// URL from REDIS_HOST/REDIS_PORT/REDIS_DB/REDIS_PASSWORD style values; empty
// port and db mean 6379 and 0. The result is checked like any REDIS_URL by Config::validate().
std::string redis_url_from_parts(const std::string& host, const std::string& port,
                                 const std::string& db, const std::string& password);

// A parsed throttle rate ("120/min"): a bucket of `requests` refilled per `period_seconds`.
// nullopt for "off". Throws ConfigError for anything else.
struct ThrottleRate {
  int requests = 0;
  int period_seconds = 0;
};
std::optional<ThrottleRate> parse_throttle_rate(const std::string& text);

// Whether `host` (a listen address) is only reachable from this machine.
bool is_loopback_host(const std::string& host);

// Percent-escapes every byte except RFC 3986 unreserved characters.
std::string percent_encode(const std::string& text);

// Fills fields that come from the environment only (POSTGRES_*, REDIS_HOST/PORT) into `config`
// where flags did not set them.
void apply_environment_fallbacks(Config& config);

}  // namespace transnotes::app
