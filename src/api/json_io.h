// JSON (and form) bodies in and out: the serializer half of the API. Private to src/api.
#pragma once

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "domain/errors.h"
#include "domain/model.h"
#include "domain/ports.h"
#include "http/server.h"

namespace transnotes::api {

// Parses the request body (JSON or application/x-www-form-urlencoded) into a JSON object.
// An empty body is an empty object. Throws MalformedBody for a body its parser cannot read,
// UnsupportedMediaType for other types, and a ValidationError on non_field_errors for JSON that
// is not an object, as DRF does. Form values are not checked here: the domain validates the
// text of every field whatever body it came in.
boost::json::object parse_body(const http::Request& request);

// Reads a string field the way DRF's CharField does: strings as they are, numbers converted,
// null/bool/arrays/objects rejected into `errors`. Returns nullopt when absent or invalid.
std::optional<std::string> read_string_field(const boost::json::object& body, const char* field,
                                             ValidationError::FieldErrors& errors);

// Reads the writable note fields; read-only fields in the body are ignored as DRF does.
NoteFields read_note_fields(const boost::json::object& body);

boost::json::object note_to_json(const Note& note);

// Appends the note's JSON (what json::serialize(note_to_json(note)) gives, byte for byte) to
// `out` without building a JSON object or copying its texts in between.
void append_note_json(std::string& out, const Note& note);
std::string render_note_json(const Note& note);

// A JSON array of the leading notes whose rendering fits in `max_bytes` (always at least the
// first note, so a page always moves forward). `rendered` is set to how many it holds.
std::string render_note_page(const std::vector<Note>& notes, std::size_t max_bytes,
                             std::size_t& rendered);
boost::json::object job_to_json(const TranslationJob& job);
boost::json::object stats_to_json(const Stats& stats);
boost::json::array languages_to_json(const std::vector<SupportedPair>& pairs);

}  // namespace transnotes::api
