// Wires the layers together for each subcommand: which Store, NoteCache, JobBus and engines a
// process uses follows from its Config (embedded default: SQLite, memory cache, in-process bus;
// production: PostgreSQL, Redis cache and Redis bus).
#pragma once

#include <iosfwd>
#include <memory>
#include <optional>
#include <string>

#include "app/config.h"
#include "domain/ports.h"
#include "translation/engine.h"

namespace transnotes::app {

// `transnotes serve`: the API, plus `config.workers` in-process workers. Blocks until
// SIGINT/SIGTERM, then shuts down gracefully. Returns the exit code.
int run_serve(const Config& config);
// `transnotes worker`: translation workers only. Blocks until SIGINT/SIGTERM.
int run_worker(const Config& config);
// `transnotes migrate`: applies schema migrations and exits.
int run_migrate(const Config& config);
// The store the config names, migrated (the embedded default's data folder created first).
std::unique_ptr<Store> open_and_migrate(const Config& config);

struct TranslateOptions {
  std::string from;
  std::string to;
  std::string engine;             // "", "marian" or "apertium"
  std::string model_dir;          // a checkpoint folder for --engine marian
  std::optional<int> beams;       // 1 = greedy; default from the checkpoint
  std::optional<int> max_length;  // default from the checkpoint
  bool lines = false;             // each input line is one sequence, output line per line
};
// `transnotes translate`: stdin -> stdout with the service's engines.
int run_translate(const Config& config, const TranslateOptions& options, std::istream& in,
                  std::ostream& out, std::ostream& err);
// `transnotes languages`: the pairs the installed engines cover.
int run_languages(const Config& config, std::ostream& out);

}  // namespace transnotes::app
