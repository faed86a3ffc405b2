// Private to src/storage: the PostgreSQL schema, as the ordered list of migrations that builds it.
// A schema change is a new entry at the end of that list (in postgres_schema.cpp); applied
// entries are never edited, because databases in the field have already run them.
#pragma once

#include <climits>
#include <optional>
#include <string>

#include "storage/postgres_connection.h"

namespace transnotes::storage::postgres {

// Brings the database up to the newest schema: creates `schema` if given (the connection's
// search_path already points there), then applies every migration not yet recorded, each in its
// own transaction. Migrators in other processes wait on an advisory lock per schema. On failure
// the connection is marked broken, so that closing it releases the lock.
// `up_to_version` stops early (tests build an older schema with it, to check that upgrades keep
// data).
void migrate(Connection& conn, const std::optional<std::string>& schema,
             int up_to_version = INT_MAX);

}  // namespace transnotes::storage::postgres
