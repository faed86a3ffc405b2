// Private to src/storage, for tests only: builds a database at an older schema version, so that
// tests can check that upgrading it keeps the data an older release wrote.
#pragma once

#include "storage/storage.h"

namespace transnotes::storage {

// Applies the migrations up to `version` (and none after it) to `config.database_url`.
void migrate_to_version_for_tests(const StorageConfig& config, int version);

}  // namespace transnotes::storage
