// libsodium must be initialized once before its random numbers and hashes are used.
#pragma once

namespace transnotes::auth {

// Initializes libsodium the first time it is called (thread-safe); throws transnotes::Error if
// libsodium cannot start (no source of randomness).
void ensure_sodium_ready();

}  // namespace transnotes::auth
