// Private to src/storage: the PostgreSQL Store over libpq (use open_store(); only storage.cpp
// includes this).
#pragma once

#include <memory>
#include <string>

#include "domain/ports.h"
#include "storage/storage.h"

namespace transnotes::storage {

// `url` is a libpq connection URI; an optional `schema=<name>` query parameter (letters, digits,
// underscore) selects the schema the tables live in (created by migrate()). Throws Error if the
// URL cannot be parsed.
std::unique_ptr<Store> make_postgres_store(const std::string& url, const StorageConfig& config);

// Tests only: applies the migrations up to `version` and no further, to build a database as an
// older release left it.
void migrate_postgres_to_version(const std::string& url, const StorageConfig& config, int version);

}  // namespace transnotes::storage
