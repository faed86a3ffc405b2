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

// Thrown for bodies the parser cannot read; becomes 400 {"detail": "JSON parse error - ..."}.
class ParseError : public BadRequest {
 public:
  using BadRequest::BadRequest;
};

// Thrown for a Content-Type we do not parse; becomes 415.
class UnsupportedMediaType : public Error {
 public:
  using Error::Error;
};

// Parses the request body (JSON or application/x-www-form-urlencoded) into a JSON object.
// An empty body is an empty object. A body that is valid JSON but not an object is a
// ValidationError on non_field_errors, as in DRF.
boost::json::object parse_body(const http::Request& request);

// Reads a string field the way DRF's CharField does: strings as they are, numbers converted,
// null/bool/arrays/objects rejected into `errors`. Returns nullopt when absent or invalid.
std::optional<std::string> read_string_field(const boost::json::object& body, const char* field,
                                             ValidationError::FieldErrors& errors);

// Reads the writable note fields; read-only fields in the body are ignored as DRF does.
NoteFields read_note_fields(const boost::json::object& body);

boost::json::object note_to_json(const Note& note);
boost::json::object job_to_json(const TranslationJob& job);
boost::json::object stats_to_json(const Stats& stats);
boost::json::array languages_to_json(const std::vector<LanguagePair>& pairs);

}  // namespace transnotes::api
