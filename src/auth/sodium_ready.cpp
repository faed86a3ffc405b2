#include "auth/sodium_ready.h"

#include <sodium.h>

#include "domain/errors.h"

namespace transnotes::auth {

void ensure_sodium_ready() {
  // A function-local static runs sodium_init exactly once, even with racing first callers.
  static const bool ready = sodium_init() >= 0;
  if (!ready) throw Error("libsodium could not be initialized");
}

}  // namespace transnotes::auth
