// `transnotes backup PATH` and `transnotes restore PATH`: the embedded database's backups.
// PostgreSQL deployments back up with pg_dump (docs/deployment.md); both commands refuse them.
#pragma once

#include <iosfwd>
#include <string>

#include "app/config.h"

namespace transnotes::app {

// Copies the live database to `path` while the service runs. Exit code: 0 done, 1 refused or
// failed (PATH exists without `force`, no database), 2 PostgreSQL (use pg_dump).
int run_backup(const Config& config, const std::string& path, bool force, std::ostream& out,
               std::ostream& err);

// Replaces the database with the backup at `path`. Exit code: 0 done, 1 refused (a process has
// the database open, the file is not a sound transnotes backup) or failed, 2 PostgreSQL.
int run_restore(const Config& config, const std::string& path, std::ostream& out,
                std::ostream& err);

}  // namespace transnotes::app
