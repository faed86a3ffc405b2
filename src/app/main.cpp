// transnotes: one binary, subcommands. See README.md for the configuration table.
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "app/application.h"
#include "app/backup_commands.h"
#include "app/config.h"
#include "app/job_commands.h"
#include "app/model_commands.h"
#include "app/user_commands.h"
#include "domain/errors.h"
#include "logging/logging.h"
#include "marian/model_hub.h"

namespace {

using transnotes::app::Config;

void add_storage_options(CLI::App& cmd, Config& config) {
  cmd.add_option("--data-dir", config.data_dir, "Folder for the embedded SQLite database")
      ->envname("TRANSNOTES_DATA_DIR");
  cmd.add_option("--database-url", config.database_url,
                 "postgresql://user:pass@host:port/db (default: SQLite in --data-dir)")
      ->envname("DATABASE_URL");
  cmd.add_option("--db-pool-size", config.db_pool_size, "Database connections per process")
      ->envname("TRANSNOTES_DB_POOL_SIZE");
  cmd.add_option("--db-write-batch", config.db_write_batch,
                 "Most concurrent writes committed together (1 = one commit each; PostgreSQL: "
                 "creates)")
      ->envname("TRANSNOTES_DB_WRITE_BATCH");
  cmd.add_option("--sqlite-sync", config.sqlite_sync,
                 "SQLite durability: full (a write is acknowledged once it survives a power cut) "
                 "or normal (faster; a power cut may lose the last writes)")
      ->envname("TRANSNOTES_SQLITE_SYNC");
}

void add_engine_options(CLI::App& cmd, Config& config) {
  cmd.add_option("--engines", config.engines, "Engine priority order")
      ->envname("TRANSNOTES_ENGINES");
  cmd.add_option("--models-dir", config.models_dir, "Folder of MarianMT checkpoints")
      ->envname("MODELS_DIR");
  cmd.add_option("--apertium-modes-dir", config.apertium_modes_dir, "Apertium modes folder")
      ->envname("APERTIUM_MODES_DIR");
  cmd.add_option("--engine-threads", config.engine_threads, "Threads for neural inference")
      ->envname("TRANSNOTES_ENGINE_THREADS");
  cmd.add_flag("--marian-int8", config.marian_int8,
               "MarianMT in int8 (per-row weights; with AVX-512 VNNI also the products): "
               "several times faster, scores differ slightly from float32")
      ->envname("TRANSNOTES_MARIAN_INT8");
}

void add_runtime_options(CLI::App& cmd, Config& config) {
  add_storage_options(cmd, config);
  add_engine_options(cmd, config);
  cmd.add_option("--marian-beams", config.marian_beams,
                 "MarianMT beam size (1: greedy; 0: each model's generation_config.json)")
      ->envname("TRANSNOTES_MARIAN_BEAMS");
  cmd.add_option("--marian-max-length", config.marian_max_length,
                 "Longest MarianMT output in tokens (0: each model's generation_config.json)")
      ->envname("TRANSNOTES_MARIAN_MAX_LENGTH");
  cmd.add_option("--batch-wait-ms", config.batch_wait_ms,
                 "MarianMT batches the sentences of concurrent jobs of one language pair; the "
                 "first job after a quiet spell waits this long for company (0: no wait; -1: no "
                 "cross-job batching)")
      ->envname("TRANSNOTES_BATCH_WAIT_MS");
  cmd.add_option("--batch-max-segments", config.batch_max_segments,
                 "Sentences per cross-job MarianMT batch")
      ->envname("TRANSNOTES_BATCH_MAX_SEGMENTS");
  cmd.add_option("--batch-running", config.batch_running,
                 "Cross-job MarianMT batches of one language pair in the engine at once")
      ->envname("TRANSNOTES_BATCH_RUNNING");
  cmd.add_option("--redis-url", config.redis_url, "redis://host:port/db (cache and job bus)")
      ->envname("REDIS_URL");
  cmd.add_option("--redis-cache-db", config.redis_cache_db, "Redis database for the note cache")
      ->envname("REDIS_CACHE_DB");
  cmd.add_option("--cache-capacity", config.cache_capacity, "Embedded cache entries")
      ->envname("TRANSNOTES_CACHE_CAPACITY");
  cmd.add_option("--cache-ttl", config.cache_ttl_seconds, "Cache TTL in seconds")
      ->envname("TRANSNOTES_CACHE_TTL");
  cmd.add_option("--cache-max-bytes", config.cache_max_bytes, "Embedded cache size bound in bytes")
      ->envname("TRANSNOTES_CACHE_MAX_BYTES");
  cmd.add_option("--max-attempts", config.max_attempts, "Attempts per translation job")
      ->envname("TRANSNOTES_MAX_ATTEMPTS");
  cmd.add_option("--shutdown-grace-seconds", config.shutdown_grace_seconds,
                 "On SIGTERM, how long running translations may finish before they are "
                 "abandoned and re-queued")
      ->envname("TRANSNOTES_SHUTDOWN_GRACE_SECONDS");
  cmd.add_option("--lease-seconds", config.lease_seconds,
                 "Job lease before another worker may take over")
      ->envname("TRANSNOTES_LEASE_SECONDS");
}

void add_auth_options(CLI::App& cmd, Config& config) {
  cmd.add_option("--auth", config.auth_mode,
                 "jwt: users and Bearer tokens; open: the original's open API, one shared owner")
      ->envname("TRANSNOTES_AUTH");
  cmd.add_flag("--allow-open-auth-on-network", config.allow_open_auth_on_network,
               "Allow --auth open on an address other than loopback")
      ->envname("TRANSNOTES_ALLOW_OPEN_AUTH_ON_NETWORK");
  cmd.add_option("--access-token-lifetime", config.access_token_lifetime_seconds,
                 "Access token lifetime in seconds")
      ->envname("TRANSNOTES_ACCESS_TOKEN_LIFETIME");
  cmd.add_option("--refresh-token-lifetime", config.refresh_token_lifetime_seconds,
                 "Refresh token lifetime in seconds")
      ->envname("TRANSNOTES_REFRESH_TOKEN_LIFETIME");
  cmd.add_option("--rotate-refresh-tokens", config.rotate_refresh_tokens,
                 "A refresh also returns a new refresh token (true/false)")
      ->envname("TRANSNOTES_ROTATE_REFRESH_TOKENS");
  cmd.add_option("--blacklist-after-rotation", config.blacklist_after_rotation,
                 "With rotation, the rotated refresh token stops working (true/false)")
      ->envname("TRANSNOTES_BLACKLIST_AFTER_ROTATION");
  cmd.add_option("--user-recheck-seconds", config.user_recheck_seconds,
                 "Seconds a checked token is trusted before its user is looked up again")
      ->envname("TRANSNOTES_USER_RECHECK_SECONDS");
  cmd.add_option("--throttle-translate", config.throttle_translate,
                 "Translate requests per user, N/period (s, min, hour, day) or off")
      ->envname("TRANSNOTES_THROTTLE_TRANSLATE");
  cmd.add_option("--throttle-auth", config.throttle_auth,
                 "Register and token requests per client address, N/period or off")
      ->envname("TRANSNOTES_THROTTLE_AUTH");
  cmd.add_option("--throttle-failed-logins", config.throttle_failed_logins,
                 "Failed logins per username, N/period or off")
      ->envname("TRANSNOTES_THROTTLE_FAILED_LOGINS");
  cmd.add_option("--max-active-jobs", config.max_active_jobs_per_user,
                 "Queued + running translations per user (0: no cap)")
      ->envname("TRANSNOTES_MAX_ACTIVE_JOBS");
  cmd.add_option("--max-note-characters", config.max_note_characters,
                 "Longest note text in characters (0: no limit)")
      ->envname("TRANSNOTES_MAX_NOTE_CHARACTERS");
}

// Answers of a few hundred KB (a rendered page of 1,000 notes, a translated long note) are
// allocated and freed thousands of times a second. Above glibc's mmap threshold each one was a
// fresh mmap, page-faulted in while being written and unmapped when sent: an uncached 1,000-note
// list cost 1.6-2.0 ms of CPU instead of 0.84 (bench/http list with --list-cache-bytes 0). Such
// blocks now come from the heap, which keeps up to 64 MiB of freed memory for reuse.
void tune_malloc_for_large_answers() {
  constexpr int kMmapThreshold = 8 << 20;
  constexpr int kTrimThreshold = 64 << 20;
  ::mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  ::mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
}

}  // namespace

int main(int argc, char** argv) {
  tune_malloc_for_large_answers();
  Config config;
  CLI::App app{"transnotes: notes with asynchronous machine translation"};
  app.require_subcommand(1);
  auto* log_level = app.add_option("--log-level", config.log_level, "trace|debug|info|warn|error")
                        ->envname("LOG_LEVEL");
  app.add_option("--log-format", config.log_format,
                 "text or json (default: json when stderr is not a terminal)")
      ->envname("TRANSNOTES_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}));

  auto* serve = app.add_subcommand("serve", "Run the HTTP API (and in-process workers)");
  serve->add_option("--host", config.host, "Address to listen on")->envname("TRANSNOTES_HOST");
  serve->add_option("--port", config.port, "Port to listen on (0: any free port)")
      ->envname("TRANSNOTES_PORT");
  serve->add_option("--threads", config.http_threads, "HTTP threads")
      ->envname("TRANSNOTES_HTTP_THREADS");
  serve
      ->add_option("--handler-threads", config.handler_threads,
                   "Threads for requests that may block on the database (-1: auto)")
      ->envname("TRANSNOTES_HANDLER_THREADS");
  serve->add_option("--max-body-bytes", config.max_body_bytes, "Largest request body")
      ->envname("TRANSNOTES_MAX_BODY_BYTES");
  serve
      ->add_option("--max-connections", config.max_connections,
                   "Open connections at once (0: min(10000, open-file limit - 64))")
      ->envname("TRANSNOTES_MAX_CONNECTIONS");
  serve
      ->add_flag("--trust-proxy", config.trust_proxy,
                 "Links name X-Forwarded-Host/-Proto (set only behind a proxy that sets them)")
      ->envname("TRANSNOTES_TRUST_PROXY");
  serve
      ->add_option("--workers", config.workers,
                   "In-process worker threads = jobs translated at once (0: none; -1: 2, or 32 "
                   "when MarianMT batches across jobs)")
      ->envname("TRANSNOTES_WORKERS");
  serve
      ->add_option("--event-keepalive-seconds", config.event_keepalive_seconds,
                   "A quiet event stream gets a keep-alive comment this often")
      ->envname("TRANSNOTES_EVENT_KEEPALIVE_SECONDS");
  serve
      ->add_option("--list-cache-bytes", config.list_cache_bytes,
                   "Rendered note list pages kept per process, in bytes (0: none)")
      ->envname("TRANSNOTES_LIST_CACHE_BYTES");
  std::string access_log = "on";
  serve->add_option("--access-log", access_log, "One log line per request: on or off")
      ->envname("TRANSNOTES_ACCESS_LOG")
      ->check(CLI::IsMember({"on", "off"}));
  add_auth_options(*serve, config);
  add_runtime_options(*serve, config);

  auto* worker = app.add_subcommand("worker", "Run translation workers only");
  worker
      ->add_option("--workers,--threads", config.workers,
                   "Worker threads = jobs translated at once (-1: 2, or 32 when MarianMT "
                   "batches across jobs)")
      ->envname("TRANSNOTES_WORKERS");
  worker
      ->add_option("--metrics-port", config.metrics_port,
                   "Serve /metrics, /healthz and /readyz on this port (0: none)")
      ->envname("TRANSNOTES_METRICS_PORT");
  worker->add_option("--metrics-host", config.metrics_host, "Address for --metrics-port")
      ->envname("TRANSNOTES_METRICS_HOST");
  add_runtime_options(*worker, config);

  auto* migrate = app.add_subcommand("migrate", "Apply database schema migrations");
  add_storage_options(*migrate, config);

  auto* users = app.add_subcommand("users", "Manage user accounts (passwords from stdin)");
  users->require_subcommand(1);
  transnotes::app::UserCommand user_command;
  auto* users_create = users->add_subcommand("create", "Create a user; reads the password");
  users_create->add_option("username", user_command.username, "Login name")->required();
  users_create->add_option("--email", user_command.email, "Email address");
  users_create->add_flag("--admin", user_command.admin,
                         "May administer every user's translation jobs over HTTP");
  auto* users_list = users->add_subcommand("list", "List users");
  auto* users_delete = users->add_subcommand("delete", "Delete a user and all their notes");
  users_delete->add_option("username", user_command.username, "Login name")->required();
  auto* users_password = users->add_subcommand("set-password", "Set a user's password");
  users_password->add_option("username", user_command.username, "Login name")->required();
  auto* users_adopt = users->add_subcommand(
      "adopt-open-notes", "Give the notes made in open mode (or before accounts) to a user");
  users_adopt->add_option("username", user_command.username, "Login name")->required();
  auto* users_admin = users->add_subcommand(
      "set-admin", "Let a user administer every user's translation jobs (--off: no longer)");
  users_admin->add_option("username", user_command.username, "Login name")->required();
  bool users_admin_off = false;
  users_admin->add_flag("--off", users_admin_off, "Take the right away");
  for (auto* cmd :
       {users_create, users_list, users_delete, users_password, users_adopt, users_admin}) {
    add_storage_options(*cmd, config);
  }

  transnotes::app::JobCommand job_command;
  auto* jobs = app.add_subcommand(
      "jobs",
      "Administer every user's translation jobs. With --redis-url a requeued job is announced on "
      "the Redis job bus; in the embedded default the serving process's workers find it in the "
      "database by themselves (their poll and sweep intervals, a few seconds)");
  jobs->require_subcommand(1);
  auto* jobs_list = jobs->add_subcommand("list", "Every user's jobs, newest first");
  jobs_list->add_option("--state", job_command.state, "queued|running|succeeded|failed|cancelled");
  jobs_list->add_option("--note", job_command.note, "Only this note's jobs");
  jobs_list->add_option("--limit", job_command.limit, "Most rows shown (default 100)");
  jobs_list->add_option("--before", job_command.before,
                        "Only jobs older than this job ID (the next page)");
  auto* jobs_retry = jobs->add_subcommand(
      "retry", "Queue a failed or cancelled job again, its attempts starting over");
  jobs_retry->add_option("id", job_command.job_id, "Job ID");
  jobs_retry->add_flag("--all-failed", job_command.all_failed, "Every failed job");
  auto* jobs_cancel = jobs->add_subcommand(
      "cancel", "Cancel a queued job; a running one stops at its next segment");
  jobs_cancel->add_option("id", job_command.job_id, "Job ID");
  auto* jobs_purge =
      jobs->add_subcommand("purge", "Delete jobs that ended (notes keep their translations)");
  jobs_purge->add_option("--finished-before", job_command.finished_before,
                         "Required: how long ago they ended at least (30s, 15m, 12h, 7d)");
  for (auto* cmd : {jobs_list, jobs_retry, jobs_cancel, jobs_purge}) {
    add_storage_options(*cmd, config);
    cmd->add_option("--redis-url", config.redis_url,
                    "redis://host:port/db: requeued jobs are announced on its job bus")
        ->envname("REDIS_URL");
  }

  transnotes::app::TranslateOptions translate_options;
  auto* translate = app.add_subcommand("translate", "Translate stdin to stdout");
  translate->add_option("--from", translate_options.from, "Source language")->required();
  translate->add_option("--to", translate_options.to, "Target language")->required();
  translate->add_option("--engine", translate_options.engine, "marian or apertium");
  translate->add_option("--model", translate_options.model_dir, "A MarianMT checkpoint folder");
  translate->add_option("--beams", translate_options.beams, "Beam size (1: greedy)");
  translate->add_option("--max-length", translate_options.max_length, "Maximum output length");
  translate->add_flag("--lines", translate_options.lines,
                      "Translate each input line as one sequence, one output line each");
  add_engine_options(*translate, config);

  auto* languages = app.add_subcommand("languages", "List the language pairs installed");
  add_engine_options(*languages, config);

  auto* models = app.add_subcommand("models", "Manage MarianMT checkpoints");
  models->require_subcommand(1);
  std::string hf_endpoint = "https://huggingface.co";
  std::string repo_id;
  std::string revision = "main";
  auto* models_list = models->add_subcommand("list", "Show installed models");
  auto* models_pull = models->add_subcommand("pull", "Download a model from the hub");
  for (auto* cmd : {models_list, models_pull}) {
    cmd->add_option("--models-dir", config.models_dir, "Folder of MarianMT checkpoints")
        ->envname("MODELS_DIR");
  }
  models_pull->add_option("repo", repo_id, "e.g. Helsinki-NLP/opus-mt-en-es")->required();
  models_pull->add_option("--revision", revision, "Branch, tag or commit");
  models_pull->add_option("--endpoint", hf_endpoint, "Hub base URL")->envname("HF_ENDPOINT");
  std::uint64_t max_download_bytes = transnotes::app::kDefaultMaxDownloadBytes;
  models_pull
      ->add_option("--max-download-bytes", max_download_bytes,
                   "Refuse a model whose files add up to more than this")
      ->envname("TRANSNOTES_MAX_DOWNLOAD_BYTES");

  std::string backup_path;
  bool backup_force = false;
  auto* backup = app.add_subcommand(
      "backup", "Copy the embedded database to PATH while the service runs (PostgreSQL: pg_dump)");
  backup->add_option("path", backup_path, "Where to write the copy (must not exist)")->required();
  backup->add_flag("--force", backup_force, "Replace PATH when it exists");
  add_storage_options(*backup, config);
  auto* restore = app.add_subcommand(
      "restore", "Replace the embedded database with a backup (the service must be stopped)");
  restore->add_option("path", backup_path, "A file made by transnotes backup")->required();
  add_storage_options(*restore, config);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error is a configuration error: 2.
    return app.exit(e) == 0 ? 0 : 2;
  }

  // Logs go to stderr: stdout belongs to command output (translate, models list).
  if (log_level->count() == 0 &&
      (*translate || *languages || *models || *users || *jobs || *backup || *restore)) {
    config.log_level = "warn";
  }
  transnotes::logging::configure_logging(
      config.log_format.empty() ? transnotes::logging::default_log_format()
                                : *transnotes::logging::parse_log_format(config.log_format),
      spdlog::level::from_str(config.log_level));
  config.access_log = access_log == "on";
  transnotes::app::apply_environment_fallbacks(config);
  try {
    config.validate();
    if (*serve) return transnotes::app::run_serve(config);
    if (*worker) return transnotes::app::run_worker(config);
    if (*migrate) return transnotes::app::run_migrate(config);
    if (*backup) {
      return transnotes::app::run_backup(config, backup_path, backup_force, std::cout, std::cerr);
    }
    if (*restore) return transnotes::app::run_restore(config, backup_path, std::cout, std::cerr);
    if (*users) {
      user_command.action = *users_create   ? "create"
                            : *users_list   ? "list"
                            : *users_delete ? "delete"
                            : *users_adopt  ? "adopt-open-notes"
                            : *users_admin  ? "set-admin"
                                            : "set-password";
      if (*users_admin) user_command.admin = !users_admin_off;
      return transnotes::app::run_users(config, user_command, std::cin, std::cout, std::cerr);
    }
    if (*jobs) {
      job_command.action = *jobs_list     ? "list"
                           : *jobs_retry  ? "retry"
                           : *jobs_cancel ? "cancel"
                                          : "purge";
      return transnotes::app::run_jobs(config, job_command, std::cout, std::cerr);
    }
    if (*translate) {
      return transnotes::app::run_translate(config, translate_options, std::cin, std::cout,
                                            std::cerr);
    }
    if (*languages) return transnotes::app::run_languages(config, std::cout);
    if (*models_list) {
      return transnotes::app::run_models_list(
          std::cout, transnotes::marian::model_search_dirs(config.models_dir));
    }
    if (*models_pull) {
      return transnotes::app::run_models_pull(std::cout, std::cerr, hf_endpoint, repo_id, revision,
                                              config.models_dir, isatty(2) != 0,
                                              max_download_bytes);
    }
  } catch (const transnotes::app::ConfigError& e) {
    std::cerr << "transnotes: configuration error: " << e.what() << "\n";
    return 2;
  } catch (const transnotes::Unavailable& e) {
    std::cerr << "transnotes: " << e.what() << "\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "transnotes: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
