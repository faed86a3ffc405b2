// Rules for text that enters transnotes from clients: UTF-8 validity, character counting and
// language codes. Pure functions, thread-safe; every layer that checks text uses these.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace transnotes {

// Strict UTF-8 (RFC 3629): no overlong forms, no UTF-16 surrogates, nothing above U+10FFFF.
bool is_valid_utf8(std::string_view text);

// Unicode code points in valid UTF-8, as Django's max_length counts them.
std::size_t count_characters(std::string_view valid_utf8);

// `text` with every byte that is not part of a valid sequence replaced by U+FFFD, for echoing
// client-supplied strings (such as a Content-Type) in an error without passing bad bytes on.
std::string replace_invalid_utf8(std::string_view text);

// The one normalization of language codes: the BCP 47 primary language subtag, lower case, with
// surrounding whitespace dropped ("en-US" -> "en", " ES_es " -> "es", "EN" -> "en"). It does not
// judge whether the result is a language; "" when nothing precedes the first separator.
std::string normalize_language(std::string_view code);

// `text` without the whitespace around it (space, tab, CR, LF, VT, FF), as DRF's CharField
// trims what clients send before validating it.
std::string trim_whitespace(std::string_view text);

// A stable 64-bit digest (FNV-1a, 16 lower-case hex digits) of a note's text and language: the
// same on every process and machine, so stores can tell whether a queued job translates the text
// the note holds now (translate de-duplication). Not cryptographic: it only compares one owner's
// own texts.
std::string source_digest(std::string_view text, std::string_view language);

}  // namespace transnotes
