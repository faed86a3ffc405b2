// Fuzzes request bodies as the API reads them (api/json_io.h): JSON and form decoding, DRF's
// CharField reading of the note fields and target_language, and the domain's cleaning of them
// (clean_note_fields, clean_target_language). A body that passes is rendered as a note, both ways
// the API renders notes, and the two must agree byte for byte and give back the fields. Every
// error must become a response whose body is valid UTF-8 JSON.
//
// Input: one byte, then the body. The byte's low three bits pick the Content-Type (kContentTypes);
// bit 3 makes the update partial (PATCH).
#include <array>
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string>

#include "api/error_mapping.h"
#include "api/json_io.h"
#include "domain/errors.h"
#include "domain/model.h"
#include "domain/note_service.h"
#include "domain/text.h"
#include "http/server.h"

namespace {

using namespace transnotes;
namespace json = boost::json;

constexpr std::array<const char*, 8> kContentTypes = {
    "application/json",
    "application/json; charset=utf-8",
    "application/vnd.api+json",
    "application/x-www-form-urlencoded",
    "Application/X-WWW-Form-URLencoded ; charset=latin-1",
    "text/plain",
    "",  // no Content-Type header at all
    "multipart/form-data; boundary=x",
};

void check_error_response(const http::Request& request) {
  const http::Response response = api::error_response(request);
  if (response.status < 400 || response.status >= 500) __builtin_trap();
  if (!is_valid_utf8(response.body)) __builtin_trap();
  boost::system::error_code ec;
  json::parse(response.body, ec);
  if (ec) __builtin_trap();
}

void check_rendering(const NoteFields& fields, std::int64_t id) {
  Note note;
  note.id = id;
  note.title = fields.title.value_or("");
  note.original_text = fields.original_text.value_or("");
  note.original_language = fields.original_language.value_or(kDefaultLanguage);
  note.translated_text = fields.original_text;
  note.translated_language = fields.original_language;
  note.created_at = 1'700'000'000'123'456;
  note.updated_at = note.created_at + id % 1'000'000;
  const std::string rendered = api::render_note_json(note);
  if (rendered != json::serialize(api::note_to_json(note))) __builtin_trap();
  const json::value back = json::parse(rendered);
  if (back.at("title").as_string() != note.title ||
      back.at("original_text").as_string() != note.original_text ||
      back.at("original_language").as_string() != note.original_language)
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  http::Request request;
  request.method = "POST";
  request.target = "/api/v1/notes/";
  if (const char* type = kContentTypes[data[0] & 7]; *type != '\0')
    request.headers.emplace_back("Content-Type", type);
  const bool partial = (data[0] & 8) != 0;
  request.body.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    const json::object body = api::parse_body(request);
    try {
      NoteFields fields = api::read_note_fields(body);
      if (clean_note_fields(fields, partial).empty()) {
        // What the store would be given: text the API may echo, so it must be valid UTF-8.
        for (const auto* field : {&fields.title, &fields.original_text, &fields.original_language})
          if (*field && !is_valid_utf8(**field)) __builtin_trap();
        check_rendering(fields, static_cast<std::int64_t>(size) * 7919);
      }
    } catch (const ValidationError&) {
      check_error_response(request);
    }
    ValidationError::FieldErrors errors;
    if (auto target = api::read_string_field(body, "target_language", errors)) {
      const std::string code = clean_target_language(*target);
      if (code.empty() || !is_valid_utf8(code)) __builtin_trap();
    }
  } catch (const Error&) {
    // MalformedBody, UnsupportedMediaType, ValidationError: each must answer cleanly.
    check_error_response(request);
  }
  return 0;
}
