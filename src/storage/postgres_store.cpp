#include "storage/postgres_store.h"

#include "domain/errors.h"

namespace transnotes::storage {

std::unique_ptr<Store> make_postgres_store(const std::string&, const StorageConfig&) {
  throw Error("invalid database URL: PostgreSQL support is not built yet");
}

}  // namespace transnotes::storage
