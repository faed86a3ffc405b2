#include "api/json_io.h"

#include <algorithm>
#include <boost/url/decode_view.hpp>
#include <boost/url/parse_query.hpp>
#include <cstdio>
#include <map>
#include <set>

#include "domain/text.h"

namespace transnotes::api {

namespace json = boost::json;

namespace {

std::string media_type_of(std::string_view content_type) {
  auto semicolon = content_type.find(';');
  std::string type(content_type.substr(0, semicolon));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.pop_back();
  for (auto& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type;
}

bool is_json_media_type(const std::string& type) {
  return type == "application/json" ||
         (type.starts_with("application/") && type.ends_with("+json"));
}

json::object parse_form(const std::string& raw) {
  // In form encoding '+' is a space; Boost.URL decodes query parameters by RFC 3986 rules.
  std::string body;
  body.reserve(raw.size());
  for (char c : raw) {
    if (c == '+') {
      body += "%20";
    } else {
      body += c;
    }
  }
  auto params = boost::urls::parse_query(body);
  if (!params) throw MalformedBody("Form parse error - malformed form data.");
  json::object out;
  for (auto param : *params) {
    auto key = *param.key;
    auto value = *param.value;
    // The last value wins, as with QueryDict.get.
    out[std::string(key.begin(), key.end())] = std::string(value.begin(), value.end());
  }
  return out;
}

const char* json_kind_name(const json::value& v) {
  switch (v.kind()) {
    case json::kind::array:
      return "list";
    case json::kind::string:
      return "str";
    case json::kind::bool_:
      return "bool";
    case json::kind::null:
      return "NoneType";
    case json::kind::double_:
      return "float";
    default:
      return "int";
  }
}

std::string format_double(double d) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", d);
  // Prefer the shortest representation that round-trips, like Python's repr.
  for (int precision = 1; precision <= 17; ++precision) {
    char shorter[64];
    std::snprintf(shorter, sizeof shorter, "%.*g", precision, d);
    if (std::strtod(shorter, nullptr) == d) {
      std::string s = shorter;
      if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
      return s;
    }
  }
  return buf;
}

json::value optional_string(const std::optional<std::string>& s) {
  if (s) return json::value(*s);
  return nullptr;
}

json::value optional_time(const std::optional<Timestamp>& t) {
  if (t) return json::value(format_timestamp(*t));
  return nullptr;
}

}  // namespace

json::object parse_body(const http::Request& request) {
  if (request.body.empty()) return {};
  std::string type = media_type_of(request.header("Content-Type"));
  if (type == "application/x-www-form-urlencoded") return parse_form(request.body);
  if (!is_json_media_type(type)) {
    // The header is echoed as DRF does, but never with bytes that are not UTF-8.
    throw UnsupportedMediaType("Unsupported media type \"" +
                               replace_invalid_utf8(request.header("Content-Type")) +
                               "\" in request.");
  }
  json::parse_options options;
  options.max_depth = 64;
  boost::system::error_code ec;
  json::value value = json::parse(request.body, ec, {}, options);
  if (ec) throw MalformedBody("JSON parse error - " + ec.message());
  if (!value.is_object()) {
    throw ValidationError(
        "non_field_errors",
        std::string("Invalid data. Expected a dictionary, but got ") + json_kind_name(value) + ".");
  }
  return std::move(value.as_object());
}

std::optional<std::string> read_string_field(const json::object& body, const char* field,
                                             ValidationError::FieldErrors& errors) {
  auto it = body.find(field);
  if (it == body.end()) return std::nullopt;
  const json::value& v = it->value();
  switch (v.kind()) {
    case json::kind::string:
      return std::string(v.get_string());
    case json::kind::int64:
      return std::to_string(v.get_int64());
    case json::kind::uint64:
      return std::to_string(v.get_uint64());
    case json::kind::double_:
      return format_double(v.get_double());
    case json::kind::null:
      errors[field].push_back("This field may not be null.");
      return std::nullopt;
    default:
      errors[field].push_back("Not a valid string.");
      return std::nullopt;
  }
}

NoteFields read_note_fields(const json::object& body) {
  ValidationError::FieldErrors errors;
  NoteFields fields;
  fields.title = read_string_field(body, "title", errors);
  fields.original_text = read_string_field(body, "original_text", errors);
  fields.original_language = read_string_field(body, "original_language", errors);
  if (!errors.empty()) throw ValidationError(std::move(errors));
  return fields;
}

json::object note_to_json(const Note& note) {
  json::object o;
  o.reserve(8);
  o["id"] = note.id;
  o["title"] = note.title;
  o["original_text"] = note.original_text;
  o["original_language"] = note.original_language;
  o["translated_text"] = optional_string(note.translated_text);
  o["translated_language"] = optional_string(note.translated_language);
  o["created_at"] = format_timestamp(note.created_at);
  o["updated_at"] = format_timestamp(note.updated_at);
  return o;
}

namespace {

// Appends `text` as a JSON string, escaped exactly as json::serialize escapes it.
void append_json_string(std::string& out, std::string_view text, json::serializer& serializer) {
  char chunk[4096];
  serializer.reset(text);
  while (!serializer.done()) out.append(serializer.read(chunk, sizeof chunk));
}

void append_optional_string(std::string& out, const std::optional<std::string>& text,
                            json::serializer& serializer) {
  if (text) {
    append_json_string(out, *text, serializer);
  } else {
    out += "null";
  }
}

void append_note_json(std::string& out, const Note& note, json::serializer& serializer) {
  out += "{\"id\":";
  out += std::to_string(note.id);
  out += ",\"title\":";
  append_json_string(out, note.title, serializer);
  out += ",\"original_text\":";
  append_json_string(out, note.original_text, serializer);
  out += ",\"original_language\":";
  append_json_string(out, note.original_language, serializer);
  out += ",\"translated_text\":";
  append_optional_string(out, note.translated_text, serializer);
  out += ",\"translated_language\":";
  append_optional_string(out, note.translated_language, serializer);
  // Timestamps are digits and punctuation: nothing to escape.
  out += ",\"created_at\":\"";
  out += format_timestamp(note.created_at);
  out += "\",\"updated_at\":\"";
  out += format_timestamp(note.updated_at);
  out += "\"}";
}

}  // namespace

void append_note_json(std::string& out, const Note& note) {
  json::serializer serializer;
  append_note_json(out, note, serializer);
}

std::string render_note_json(const Note& note) {
  std::string out;
  out.reserve(note.title.size() + note.original_text.size() +
              (note.translated_text ? note.translated_text->size() : 0) + 256);
  append_note_json(out, note);
  return out;
}

std::string render_note_page(const std::vector<Note>& notes, std::size_t max_bytes,
                             std::size_t& rendered) {
  // Reserve what the page will about take, so the body is not copied while it grows.
  std::size_t expected = 2;
  for (const auto& note : notes) {
    if (expected >= max_bytes) break;
    expected += note.title.size() + note.original_text.size() + note.original_language.size() +
                (note.translated_text ? note.translated_text->size() : 0) + 256;
  }
  json::serializer serializer;
  std::string out;
  out.reserve(std::min(expected, max_bytes));
  out += '[';
  rendered = 0;
  for (const auto& note : notes) {
    const std::size_t before = out.size();
    if (rendered > 0) out += ',';
    append_note_json(out, note, serializer);
    // +1 for the closing bracket. The first note always goes in, or the page could not move on.
    if (rendered > 0 && out.size() + 1 > max_bytes) {
      out.resize(before);
      break;
    }
    ++rendered;
  }
  out += ']';
  return out;
}

json::object job_to_json(const TranslationJob& job) {
  json::object o;
  o.reserve(13);
  o["id"] = job.id;
  o["note_id"] = job.note_id;
  o["source_language"] = job.source_language;
  o["target_language"] = job.target_language;
  o["status"] = to_string(job.status);
  o["text"] = optional_string(job.text);
  o["error"] = optional_string(job.error);
  o["engine"] = job.engine;
  o["attempts"] = job.attempts;
  o["max_attempts"] = job.max_attempts;
  o["created_at"] = format_timestamp(job.created_at);
  o["started_at"] = optional_time(job.started_at);
  o["finished_at"] = optional_time(job.finished_at);
  return o;
}

json::object stats_to_json(const Stats& stats) {
  json::array breakdown;
  for (const auto& entry : stats.language_breakdown) {
    breakdown.push_back(
        json::object{{"original_language", entry.language}, {"count", entry.count}});
  }
  return json::object{{"total_notes", stats.total_notes},
                      {"total_translations", stats.total_translations},
                      {"language_breakdown", std::move(breakdown)}};
}

json::array languages_to_json(const std::vector<SupportedPair>& pairs) {
  static const std::map<std::string, std::string> kNames = {
      {"ar", "Arabic"},     {"ca", "Catalan"},
      {"da", "Danish"},     {"de", "German"},
      {"en", "English"},    {"eo", "Esperanto"},
      {"es", "Spanish"},    {"eu", "Basque"},
      {"fi", "Finnish"},    {"fr", "French"},
      {"gl", "Galician"},   {"it", "Italian"},
      {"ja", "Japanese"},   {"nb", "Norwegian Bokmål"},
      {"nl", "Dutch"},      {"nn", "Norwegian Nynorsk"},
      {"oc", "Occitan"},    {"pl", "Polish"},
      {"pt", "Portuguese"}, {"ro", "Romanian"},
      {"ru", "Russian"},    {"sv", "Swedish"},
      {"uk", "Ukrainian"},  {"zh", "Chinese"}};
  std::map<std::string, std::vector<const SupportedPair*>> by_source;
  for (const auto& pair : pairs) by_source[pair.source].push_back(&pair);
  json::array out;
  for (const auto& [source, list] : by_source) {
    json::array targets;
    json::array detailed;
    for (const auto* pair : list) {
      targets.push_back(json::value(pair->target));
      detailed.push_back(json::object{{"target", pair->target}, {"engine", pair->engine}});
    }
    auto name = kNames.find(source);
    out.push_back(json::object{{"code", source},
                               {"name", name == kNames.end() ? source : name->second},
                               {"targets", std::move(targets)},
                               {"pairs", std::move(detailed)}});
  }
  return out;
}

}  // namespace transnotes::api
