#include "app/backup_commands.h"

#include <ostream>

#include "domain/errors.h"
#include "storage/sqlite_backup.h"

namespace transnotes::app {

namespace {

constexpr const char* kUsePgDump =
    "the database is PostgreSQL: back it up with pg_dump -Fc and restore with pg_restore "
    "(see docs/deployment.md, \"Backups\")";

}  // namespace

int run_backup(const Config& config, const std::string& path, bool force, std::ostream& out,
               std::ostream& err) {
  const auto database = storage::sqlite_database_path(config.resolved_database_url());
  if (!database) {
    err << "transnotes: backup: " << kUsePgDump << "\n";
    return 2;
  }
  try {
    storage::BackupOptions options;
    options.overwrite = force;
    auto report = storage::backup_sqlite_database(*database, path, options);
    out << "backed up " << *database << " to " << path << " (" << report.bytes << " bytes)\n";
    return 0;
  } catch (const Error& e) {
    err << "transnotes: backup: " << e.what() << "\n";
    return 1;
  }
}

int run_restore(const Config& config, const std::string& path, std::ostream& out,
                std::ostream& err) {
  const auto database = storage::sqlite_database_path(config.resolved_database_url());
  if (!database) {
    err << "transnotes: restore: " << kUsePgDump << "\n";
    return 2;
  }
  try {
    storage::restore_sqlite_database(path, *database);
    out << "restored " << *database << " from " << path << "\n";
    return 0;
  } catch (const Error& e) {
    err << "transnotes: restore: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace transnotes::app
