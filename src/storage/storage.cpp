#include "storage/storage.h"

#include "domain/errors.h"
#include "storage/migration_testing.h"
#include "storage/postgres_store.h"
#include "storage/sqlite_store.h"

namespace transnotes::storage {

namespace {

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

std::string sqlite_path_from_url(const std::string& url) {
  // "sqlite://" + path: "sqlite:///abs/db" -> "/abs/db"; "sqlite:rel.db" -> "rel.db".
  std::string path = starts_with(url, "sqlite://") ? url.substr(9) : url.substr(7);
  if (path.empty()) throw Error("invalid database URL: sqlite URL has no file path");
  if (path.find('?') != std::string::npos) {
    throw Error("invalid database URL: sqlite URL must not have query parameters");
  }
  if (path == ":memory:" || path == "/:memory:") {
    throw Error("invalid database URL: in-memory sqlite is not supported (use a file path)");
  }
  return path;
}

}  // namespace

void migrate_to_version_for_tests(const StorageConfig& config, int version) {
  if (starts_with(config.database_url, "sqlite:")) {
    migrate_sqlite_to_version(sqlite_path_from_url(config.database_url), config, version);
  } else {
    migrate_postgres_to_version(config.database_url, config, version);
  }
}

std::unique_ptr<Store> open_store(const StorageConfig& config) {
  if (config.pool_size < 1) throw Error("invalid storage settings: pool_size must be at least 1");
  if (config.connect_timeout.count() <= 0 || config.busy_timeout.count() < 0 ||
      config.statement_timeout.count() < 0) {
    throw Error("invalid storage settings: timeouts must not be negative");
  }
  const std::string& url = config.database_url;
  if (url.empty()) throw Error("invalid database URL: empty");
  if (starts_with(url, "sqlite:")) {
    return storage::make_sqlite_store(sqlite_path_from_url(url), config);
  }
  if (starts_with(url, "postgresql://") || starts_with(url, "postgres://")) {
    return storage::make_postgres_store(url, config);
  }
  auto colon = url.find(':');
  std::string scheme = colon == std::string::npos ? url : url.substr(0, colon);
  if (scheme.size() > 40) scheme = scheme.substr(0, 40) + "...";
  throw Error("invalid database URL: unsupported scheme '" + scheme +
              "' (expected sqlite: or postgresql://)");
}

}  // namespace transnotes::storage
