// Language-code helpers shared by the engines and the registry. Pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace transnotes {

// Lower-cases a client-supplied code and drops a region suffix: "EN" -> "en", "en-US" -> "en",
// "es_ES" -> "es". Returns "" for an empty or malformed code (non-letters in the base).
std::string normalize_language_code(std::string_view code);

// Apertium's 3-letter code to ISO 639-1 ("eng" -> "en"); codes without a 2-letter equivalent
// (or unknown ones) come back lower-cased unchanged ("ast" -> "ast").
std::string apertium_to_iso(std::string_view code);

}  // namespace transnotes
