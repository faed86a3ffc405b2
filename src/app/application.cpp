#include "app/application.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>
#include <iterator>
#include <sstream>

#include "api/api.h"
#include "app/accounts.h"
#include "app/telemetry.h"
#include "app/user_commands.h"
#include "auth/account_service.h"
#include "cache/cache.h"
#include "domain/errors.h"
#include "domain/job_admin.h"
#include "domain/note_service.h"
#include "domain/user_events.h"
#include "http/server.h"
#include "marian/marian_engine.h"
#include "marian/model_hub.h"
#include "metrics/metrics.h"
#include "queue/bus.h"
#include "queue/worker_pool.h"
#include "redis/redis_client.h"
#include "storage/storage.h"
#include "translation/apertium_engine.h"
#include "translation/batching_engine.h"
#include "translation/registry.h"

namespace transnotes::app {

// The composition root: it names the adapters of every layer.
using cache::CacheSettings;
using cache::open_cache;
using cache::open_rate_limiter;
using cache::OpenedCache;
using marian::discover_marian_models_default;
using marian::marian_pair_from_name;
using marian::MarianEngine;
using marian::MarianEngineOptions;
using marian::MarianModelDir;
using queue::open_bus;
using queue::WorkerOptions;
using queue::WorkerPool;
using storage::open_store;
using storage::StorageConfig;
using translation::ApertiumEngine;
using translation::ApertiumOptions;
using translation::BatchingEngine;
using translation::BatchingOptions;
using translation::Engine;
using translation::EngineRegistry;

namespace {

// Blocks SIGINT/SIGTERM in every thread (call before starting any) so one thread can wait.
sigset_t block_shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client or child process going away must not kill us
  return set;
}

int wait_for_shutdown_signal(const sigset_t& set) {
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

std::shared_ptr<Engine> make_apertium(const Config& config, int pipelines) {
  ApertiumOptions options;
  options.modes_dir = config.apertium_modes_dir;
  options.pipelines_per_pair = static_cast<std::size_t>(std::max(1, pipelines));
  auto engine = std::make_shared<ApertiumEngine>(options);
  if (engine->pairs().empty()) return nullptr;
  return engine;
}

// With `model_dir`, loads that one checkpoint; its pair comes from the folder name
// (opus-mt-en-es) or, for any other name, from `pair_for_dir`.
std::shared_ptr<Engine> make_marian(const Config& config, const MarianEngineOptions& options,
                                    const std::string& model_dir = {},
                                    const LanguagePair& pair_for_dir = {}) {
  std::vector<MarianModelDir> models;
  if (!model_dir.empty()) {
    MarianModelDir m;
    m.dir = model_dir;
    auto name = std::filesystem::path(model_dir).lexically_normal().filename().string();
    if (name.empty()) name = std::filesystem::path(model_dir).parent_path().filename().string();
    auto pair = marian_pair_from_name(name);
    m.pair = pair ? *pair : pair_for_dir;
    models.push_back(m);
  } else {
    models = discover_marian_models_default(config.models_dir);
  }
  if (models.empty()) return nullptr;
  return std::make_shared<MarianEngine>(models, options);
}

// What serve and worker run many jobs through at once; a one-off command translates alone.
enum class JobConcurrency { kOneAtATime, kManyJobs };

// Builds the engines named in the config, in priority order, loading every model once; notes
// each one's load in `loaded` when given. With kManyJobs and config.batches_across_jobs(), the
// MarianMT engine is wrapped in a BatchingEngine and `*batching` (when given) is set.
std::unique_ptr<EngineRegistry> build_translator(const Config& config, int pipelines,
                                                 std::vector<LoadedEngine>* loaded = nullptr,
                                                 JobConcurrency jobs = JobConcurrency::kOneAtATime,
                                                 bool* batching = nullptr) {
  auto registry = std::make_unique<EngineRegistry>();
  for (const auto& name : config.engine_order()) {
    try {
      const auto started = std::chrono::steady_clock::now();
      std::shared_ptr<Engine> engine;
      LoadedEngine load;
      load.name = name;
      if (name == "apertium") {
        engine = make_apertium(config, pipelines);
      } else if (name == "marian") {
        MarianEngineOptions options;
        options.num_threads = config.engine_threads;
        options.int8 = config.marian_int8;
        if (config.marian_beams > 0) options.num_beams = config.marian_beams;
        if (config.marian_max_length > 0) options.max_length = config.marian_max_length;
        engine = make_marian(config, options);
        if (auto* marian = dynamic_cast<MarianEngine*>(engine.get())) {
          load.model_bytes = marian->model_bytes();
          load.tokens = [marian] { return marian->translated_tokens(); };
        }
        if (engine && !engine->pairs().empty() && jobs == JobConcurrency::kManyJobs &&
            config.batches_across_jobs()) {
          BatchingOptions batching_options;
          batching_options.wait = std::chrono::milliseconds(config.batch_wait_ms);
          batching_options.max_segments = static_cast<std::size_t>(config.batch_max_segments);
          batching_options.max_running_batches = config.batch_running;
          engine = std::make_shared<BatchingEngine>(engine, batching_options);
          if (batching) *batching = true;
          spdlog::info(
              "engine marian: jobs of one pair share batches (wait {} ms, {} sentences, {} at "
              "once)",
              config.batch_wait_ms, config.batch_max_segments, config.batch_running);
        }
      }
      load.load_time = std::chrono::steady_clock::now() - started;
      if (engine) {
        spdlog::info("engine {}: {} language pairs, loaded in {:.2f} s", name,
                     engine->pairs().size(), load.load_time.count());
        registry->add(engine);
        if (loaded) loaded->push_back(std::move(load));
      } else {
        spdlog::info("engine {}: nothing installed", name);
      }
    } catch (const std::exception& e) {
      spdlog::error("engine {} could not be loaded: {}", name, e.what());
    }
  }
  registry->set_priority(config.engine_order());
  return registry;
}

// The API's event loop reads cached notes through a few non-blocking, pipelined Redis
// connections (NoteCache::get_async); everything else uses the blocking client.
constexpr int kAsyncCacheConnections = 2;

OpenedCache make_cache(const Config& config, std::shared_ptr<redis::RedisClient> client,
                       bool serves_http) {
  CacheSettings settings;
  settings.redis = std::move(client);
  settings.redis_options.ttl = std::chrono::seconds(config.cache_ttl_seconds);
  settings.redis_options.async_connections = serves_http ? kAsyncCacheConnections : 0;
  settings.memory.capacity = static_cast<std::size_t>(config.cache_capacity);
  settings.memory.ttl = std::chrono::seconds(config.cache_ttl_seconds);
  settings.memory.max_bytes = config.cache_max_bytes;
  return open_cache(settings);
}

struct RedisClients {
  std::shared_ptr<redis::RedisClient> broker;
  std::shared_ptr<redis::RedisClient> cache;
};

RedisClients connect_redis(const Config& config) {
  RedisClients clients;
  if (!config.uses_redis()) return clients;
  redis::RedisConfig broker;
  try {
    broker = redis::parse_redis_url(config.redis_url);
  } catch (const std::exception& e) {
    throw ConfigError(std::string("bad REDIS_URL: ") + e.what());
  }
  redis::RedisConfig cache = broker;
  cache.db = config.redis_cache_db;
  clients.broker = std::make_shared<redis::RedisClient>(broker);
  clients.cache = std::make_shared<redis::RedisClient>(cache);
  return clients;
}

WorkerOptions worker_options(const Config& config, int threads, EngineRegistry& translator,
                             queue::JobObserver* observer, UserEventPublisher* events) {
  WorkerOptions options;
  options.events = events;
  options.threads = threads;
  options.observer = observer;
  options.lease = std::chrono::seconds(config.lease_seconds);
  options.abandon_translations = [&translator] { translator.abandon(); };
  return options;
}

// What serve and worker processes share: the store (migrated), cache, bus and engines.
struct Backends {
  std::unique_ptr<Store> store;
  RedisClients redis;
  std::unique_ptr<NoteCache> cache;
  metrics::Collector cache_metrics;
  std::unique_ptr<JobBus> bus;
  // Users' live events: through Redis when there is one, so that workers anywhere reach the
  // streams every API process holds.
  std::unique_ptr<UserEvents> events;
  std::unique_ptr<UserEventPublisher> event_publisher;
  std::unique_ptr<EngineRegistry> translator;  // engines stay alive as long as it does
  std::vector<LoadedEngine> engines;
  bool batching = false;  // a MarianMT engine batches across jobs: run more of them at once
};

Backends open_backends(const Config& config, int engine_pipelines, bool serves_http) {
  Backends b;
  b.store = open_and_migrate(config);
  b.redis = connect_redis(config);
  auto cache = make_cache(config, b.redis.cache, serves_http);
  b.cache = std::move(cache.cache);
  b.cache_metrics = std::move(cache.families);
  b.bus = open_bus(b.redis.broker);
  b.events = queue::open_user_events(b.redis.broker);
  b.event_publisher =
      std::make_unique<UserEventPublisher>(*b.events, api::render_note, api::render_job);
  b.translator = build_translator(config, engine_pipelines, &b.engines, JobConcurrency::kManyJobs,
                                  &b.batching);
  return b;
}

}  // namespace

std::unique_ptr<Store> open_and_migrate(const Config& config) {
  StorageConfig storage;
  storage.database_url = config.resolved_database_url();
  storage.pool_size = config.db_pool_size;
  storage.write_batch = config.db_write_batch;
  storage.sqlite_sync =
      config.sqlite_sync == "normal" ? storage::SqliteSync::kNormal : storage::SqliteSync::kFull;
  if (storage.database_url.starts_with("sqlite")) {
    std::filesystem::create_directories(config.data_dir);
  }
  auto store = open_store(storage);
  store->migrate();
  return store;
}

int run_migrate(const Config& config) {
  auto store = open_and_migrate(config);
  std::cout << "migrations applied to " << config.redacted_database_url() << "\n";
  return 0;
}

namespace {

RateLimit to_rate_limit(const std::string& rate_text) {
  auto rate = parse_throttle_rate(rate_text);
  // "off": an empty limit, which the API never asks the limiter about.
  if (!rate) return RateLimit{0, std::chrono::seconds(0)};
  return RateLimit{rate->requests, std::chrono::seconds(rate->period_seconds)};
}

// What `probe` throws, or "" when it returns: one readiness check.
std::string problem_of(const std::function<void()>& probe) {
  try {
    probe();
    return {};
  } catch (const std::exception& e) {
    return e.what();
  }
}

void log_auth_mode(const Config& config) {
  if (config.open_auth()) {
    spdlog::warn(
        "auth mode: open (no accounts: every client reads and writes the same notes, no limits)");
    return;
  }
  spdlog::info(
      "auth mode: jwt (access tokens {} s, refresh tokens {} s, rotation {}, limits: translate "
      "{} per user, auth {} per address, failed logins {} per username, {} active jobs per user)",
      config.access_token_lifetime_seconds, config.refresh_token_lifetime_seconds,
      config.rotate_refresh_tokens ? "on" : "off", config.throttle_translate, config.throttle_auth,
      config.throttle_failed_logins, config.max_active_jobs_per_user);
}

// The checks /readyz runs: the database, Redis when the process uses it, and the engines.
ReadinessChecks readiness_checks(const Backends& b) {
  return [store = b.store.get(), redis_client = b.redis.broker, translator = b.translator.get()] {
    api::ReadinessResults checks;
    const auto check = [&checks](const char* name, const std::function<void()>& probe) {
      checks.emplace_back(name, problem_of(probe));
    };
    check("database", [store] { store->stats(kOpenModeOwner); });
    if (redis_client) {
      check("redis", [&redis_client] {
        auto reply = redis_client->command({"PING"});
        if (reply.is_error()) throw Unavailable("Redis answered PING with an error");
      });
    }
    check("engines", [translator] {
      if (translator->pairs().empty()) throw Error("no translation engine is loaded");
    });
    return checks;
  };
}

// What every process's registry shows of the backends: database pool and cache figures.
void add_backend_metrics(metrics::MetricsRegistry& registry, const Backends& b) {
  metrics::add_pool_metrics(registry, [store = b.store.get()] { return store->pool_stats(); });
  if (b.cache_metrics) registry.add(b.cache_metrics);
}

api::ApiOptions api_options_for(const Config& config, const Backends& b) {
  api::ApiOptions options;
  options.max_body_bytes = config.max_body_bytes;
  options.trust_proxy = config.trust_proxy;
  options.list_cache_bytes = config.list_cache_bytes;
  options.readiness_check = [store = b.store.get()] {
    return problem_of([store] { store->stats(kOpenModeOwner); });
  };
  options.readiness_checks = readiness_checks(b);
  options.event_keepalive = std::chrono::seconds(config.event_keepalive_seconds);
  options.auth_mode = config.open_auth() ? api::AuthMode::kOpen : api::AuthMode::kJwt;
  options.throttle.translate_per_user = to_rate_limit(config.throttle_translate);
  options.throttle.auth_per_address = to_rate_limit(config.throttle_auth);
  options.throttle.failed_logins_per_username = to_rate_limit(config.throttle_failed_logins);
  return options;
}

// The HTTP server's settings, its handlers answering through `api` (which must outlive it).
http::ServerOptions server_options_for(const Config& config, api::Api& api) {
  http::ServerOptions options;
  options.max_connections =
      config.max_connections > 0 ? config.max_connections : http::default_max_connections();
  options.host = config.host;
  options.port = static_cast<std::uint16_t>(config.port);
  options.threads = config.http_threads;
  options.max_body_bytes = config.max_body_bytes;
  options.handler_threads = config.resolved_handler_threads();
  // Registration and login hash a password (~75 ms of CPU): with handlers on the event loop
  // (SQLite's default) they run on a pool of their own rather than stall every connection. So do
  // durable SQLite writes, which wait for their commit's fsync (see writes_on_slow_pool).
  const bool writes_off_loop = config.writes_on_slow_pool();
  options.slow_request = [writes_off_loop](const http::Request& r) {
    if (r.target.starts_with("/api/v1/auth/")) return true;
    return writes_off_loop && r.method != "GET" && r.method != "HEAD" && r.method != "OPTIONS";
  };
  if (writes_off_loop) options.slow_threads = std::max(2, config.db_pool_size);
  options.fast_handler = [&api](const http::Request& r) { return api.try_cached(r); };
  if (config.uses_redis()) {
    options.async_fast_handler = [&api](const http::Request& r, http::AsyncDone done) {
      return api.try_cached_async(r, std::move(done));
    };
  }
  return options;
}

}  // namespace

int run_serve(const Config& config) {
  if (config.open_auth() && !is_loopback_host(config.host) && !config.allow_open_auth_on_network) {
    throw ConfigError(
        "--auth open serves everyone's notes to anyone; it listens only on a "
        "loopback address unless --allow-open-auth-on-network is given (host " +
        config.host + ")");
  }
  const std::string secret_key =
      config.open_auth() && !config.is_production() ? std::string() : resolve_secret_key(config);
  sigset_t signals = block_shutdown_signals();
  // Apertium runs one pipeline per pair per worker thread it was built for: the batching
  // worker count is for MarianMT, whose jobs wait in its batcher rather than in a pipeline.
  Backends b = open_backends(config, std::max(1, config.resolved_workers(false)),
                             /*serves_http=*/true);
  const int worker_threads = config.resolved_workers(b.batching);
  NoteServiceOptions note_options;
  note_options.max_attempts = config.max_attempts;
  note_options.max_text_characters = static_cast<std::size_t>(config.max_note_characters);
  // Open mode is the original's API: one shared owner, no per-user cap.
  note_options.max_active_jobs_per_owner = config.open_auth() ? 0 : config.max_active_jobs_per_user;
  NoteService notes(*b.store, *b.cache, *b.bus, *b.translator, api::render_note, note_options,
                    b.event_publisher.get());
  api::ApiOptions api_options = api_options_for(config, b);
  Accounts accounts;
  api::ApiServices services{notes};
  if (!config.open_auth()) {
    accounts = make_accounts(config, *b.store, secret_key);
    services.accounts = accounts.service.get();
  }
  // Shared through Redis when there is one, so every API process draws from the same buckets.
  auto limiter = open_rate_limiter(b.redis.broker);
  services.limiter = limiter.get();
  services.idempotency_store = b.store.get();
  JobAdmin job_admin(*b.store, *b.bus, b.event_publisher.get());
  services.job_admin = &job_admin;
  services.events = b.events.get();
  metrics::MetricsRegistry registry;
  add_backend_metrics(registry, b);
  registry.add([limiter = limiter.get()] { return cache::rate_limiter_families(*limiter); });
  api_options.metrics_text = [&registry] { return registry.render(); };
  log_auth_mode(config);
  api::Api api(services, api_options);
  HttpTelemetry telemetry(registry, api.route_templates(), config.access_log);
  telemetry.metrics().watch_api([&api] {
    const auto& counters = api.counters();
    metrics::ApiFigures figures;
    figures.translations_requested = counters.translations_requested.load();
    figures.throttled_translate = counters.throttled_translate.load();
    figures.throttled_auth = counters.throttled_auth.load();
    figures.throttled_failed_login = counters.throttled_failed_login.load();
    return figures;
  });

  // Connections are file descriptors: take every one the hard limit allows before sizing the cap.
  const auto fd_limit = http::raise_open_file_limit();
  http::ServerOptions server_options = server_options_for(config, api);
  server_options.on_response = [&telemetry](const http::CompletedExchange& exchange) {
    telemetry.on_response(exchange);
  };
  http::Server server(server_options, [&api](const http::Request& r) { return api.handle(r); });
  telemetry.metrics().watch_connections([&server] {
    const auto stats = server.stats();
    metrics::ConnectionFigures figures;
    figures.open_connections = stats.open_connections;
    figures.rejected_connections = stats.rejected_connections;
    figures.in_flight = stats.in_flight;
    figures.open_streams = stats.open_streams;
    return figures;
  });

  // serve reports its in-process workers on its own /metrics.
  std::unique_ptr<JobTelemetry> job_telemetry;
  std::unique_ptr<WorkerPool> workers;
  if (worker_threads > 0) {
    job_telemetry = std::make_unique<JobTelemetry>(registry, *b.store, b.engines);
    workers =
        std::make_unique<WorkerPool>(*b.store, *b.bus, *b.translator, *b.cache,
                                     worker_options(config, worker_threads, *b.translator,
                                                    job_telemetry.get(), b.event_publisher.get()));
    workers->start();
  }
  server.start();
  spdlog::info(
      "transnotes listening on http://{}:{} (database {}, {} in-process workers, at most {} "
      "connections, open-file limit {})",
      config.host, server.port(),
      config.resolved_database_url().starts_with("sqlite") ? "sqlite" : "postgresql",
      worker_threads, server_options.max_connections, fd_limit);
  // Tests and scripts read this line to learn the port when --port 0 is used.
  std::cout << "listening on " << config.host << ":" << server.port() << std::endl;

  int sig = wait_for_shutdown_signal(signals);
  spdlog::info("signal {}: shutting down", sig);
  server.stop();
  if (workers) workers->stop(std::chrono::seconds(config.shutdown_grace_seconds));
  return 0;
}

int run_worker(const Config& config) {
  sigset_t signals = block_shutdown_signals();
  Backends b =
      open_backends(config, std::max(1, config.resolved_workers(false)), /*serves_http=*/false);
  const int threads = std::max(1, config.resolved_workers(b.batching));
  metrics::MetricsRegistry registry;
  add_backend_metrics(registry, b);
  JobTelemetry telemetry(registry, *b.store, b.engines);
  WorkerPool workers(
      *b.store, *b.bus, *b.translator, *b.cache,
      worker_options(config, threads, *b.translator, &telemetry, b.event_publisher.get()));
  workers.start();
  std::unique_ptr<http::Server> metrics_server;
  if (config.metrics_port > 0) {
    metrics_server = start_worker_metrics_server(config, registry, readiness_checks(b));
  }
  spdlog::info("transnotes worker running {} threads", threads);
  std::cout << "worker ready" << std::endl;
  int sig = wait_for_shutdown_signal(signals);
  spdlog::info("signal {}: finishing running jobs", sig);
  workers.stop(std::chrono::seconds(config.shutdown_grace_seconds));
  if (metrics_server) metrics_server->stop();
  return 0;
}

int run_languages(const Config& config, std::ostream& out) {
  auto translator = build_translator(config, 1);
  for (const auto& pair : translator->pairs()) {
    out << pair.source << " -> " << pair.target << "  (" << pair.engine << ")\n";
  }
  return 0;
}

int run_translate(const Config& config, const TranslateOptions& options, std::istream& in,
                  std::ostream& out, std::ostream& err) {
  signal(SIGPIPE, SIG_IGN);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::shared_ptr<Engine> engine;
  if (options.engine == "marian" || !options.model_dir.empty()) {
    MarianEngineOptions marian;
    marian.num_threads = config.engine_threads;
    marian.int8 = config.marian_int8;
    marian.num_beams = options.beams;
    marian.max_length = options.max_length;
    // A model named on the command line is the one wanted: its load error is the answer.
    marian.skip_invalid_models = options.model_dir.empty();
    engine = make_marian(config, marian, options.model_dir, LanguagePair{options.from, options.to});
    if (!engine) {
      err << "transnotes: no Marian model for " << options.from << "->" << options.to
          << " (looked in " << config.models_dir << " and "
          << transnotes::marian::model_search_dirs(config.models_dir).hub_cache.string() << ")\n";
      return 1;
    }
  } else if (options.engine == "apertium") {
    engine = make_apertium(config, 1);
    if (!engine) {
      err << "transnotes: no Apertium language pairs installed\n";
      return 1;
    }
  } else if (!options.engine.empty()) {
    err << "transnotes: unknown engine '" << options.engine << "' (marian or apertium)\n";
    return 2;
  }

  try {
    if (options.lines) {
      std::vector<std::string> lines;
      std::stringstream stream(text);
      std::string line;
      while (std::getline(stream, line)) lines.push_back(line);
      if (!engine) {
        err << "transnotes: --lines needs --engine or --model\n";
        return 2;
      }
      auto results = engine->translate_batch(options.from, options.to, lines);
      for (const auto& r : results) out << r << "\n";
      return 0;
    }
    std::unique_ptr<EngineRegistry> registry;
    if (engine) {
      registry = std::make_unique<EngineRegistry>();
      registry->add(engine);
    } else {
      registry = build_translator(config, 1);
    }
    auto result = registry->translate(options.from, options.to, text);
    out << result.text;
    if (!result.text.empty() && result.text.back() != '\n') out << "\n";
    return 0;
  } catch (const std::exception& e) {
    err << "transnotes: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace transnotes::app
