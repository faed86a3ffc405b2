// Private to src/storage: the SQLite schema, as the ordered list of migrations that builds it.
// A schema change is a new entry at the end of that list (in sqlite_schema.cpp); applied entries
// are never edited, because databases in the field have already run them.
#pragma once

#include <climits>

#include "storage/sqlite_connection.h"

namespace transnotes::storage::sqlite {

// Brings the database up to the newest schema: creates the bookkeeping table and applies every
// migration not yet recorded there, in order. Must run inside one write transaction (BEGIN
// IMMEDIATE) that the caller commits, so that the whole upgrade lands or none of it does and no
// other writer sees a half-built schema. `up_to_version` stops early (tests build an older schema
// with it, to check that upgrades keep data).
void migrate(Connection& conn, int up_to_version = INT_MAX);

}  // namespace transnotes::storage::sqlite
