// Language-code helpers shared by the engines and the registry. Pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "domain/text.h"

namespace transnotes::translation {

// The domain's normalize_language (BCP 47 primary subtag, lower case: "EN" -> "en",
// "en-US" -> "en", "es_ES" -> "es"), refused as "" when the result is not 1-8 ASCII letters and
// so cannot name an engine's language.
std::string normalize_language_code(std::string_view code);

// Apertium's 3-letter code to ISO 639-1 ("eng" -> "en"); codes without a 2-letter equivalent
// (or unknown ones) come back lower-cased unchanged ("ast" -> "ast").
std::string apertium_to_iso(std::string_view code);

}  // namespace transnotes::translation
