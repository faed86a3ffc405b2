#include "api/json_io.h"

#include <gtest/gtest.h>

namespace transnotes::api {
namespace {

namespace json = boost::json;

http::Request post(std::string body, std::string content_type = "application/json") {
  http::Request request{"POST", "/api/v1/notes/", {}, std::move(body), {}};
  if (!content_type.empty()) request.headers.emplace_back("Content-Type", std::move(content_type));
  return request;
}

TEST(ParseBody, EmptyBodyIsAnEmptyObject) {
  EXPECT_TRUE(parse_body(post("", "")).empty());
  EXPECT_TRUE(parse_body(post("", "text/plain")).empty());
}

TEST(ParseBody, JsonObjectsOfEveryJsonMediaType) {
  EXPECT_EQ(parse_body(post(R"({"title":"t"})")), (json::object{{"title", "t"}}));
  EXPECT_EQ(parse_body(post(R"({"a":1})", "Application/JSON; charset=utf-8")),
            (json::object{{"a", 1}}));
  EXPECT_EQ(parse_body(post(R"({"a":1})", "application/vnd.api+json")), (json::object{{"a", 1}}));
}

TEST(ParseBody, JsonThatIsNotAnObjectIsANonFieldError) {
  try {
    parse_body(post("[1, 2]"));
    FAIL() << "expected ValidationError";
  } catch (const ValidationError& e) {
    EXPECT_EQ(e.errors().at("non_field_errors"),
              std::vector<std::string>{"Invalid data. Expected a dictionary, but got list."});
  }
}

TEST(ParseBody, MalformedJsonIsAParseError) {
  for (std::string body :
       {std::string("{\"title\": "), std::string(100, '['), std::string("{\"t\": \"\xFF\"}")}) {
    try {
      parse_body(post(body));
      FAIL() << "expected MalformedBody for " << body;
    } catch (const MalformedBody& e) {
      EXPECT_TRUE(std::string(e.what()).starts_with("JSON parse error - ")) << e.what();
    }
  }
}

TEST(ParseBody, FormBodiesDecodePlusAndPercentAndKeepTheLastValue) {
  auto form = parse_body(post("title=Hi+there%21&original_text=a%2Bb&title=Last+one",
                              "application/x-www-form-urlencoded"));
  EXPECT_EQ(form.at("title"), "Last one");
  EXPECT_EQ(form.at("original_text"), "a+b");
  // Bytes are passed on as decoded: the domain, not the parser, judges whether they are text.
  EXPECT_EQ(parse_body(post("title=%FF", "application/x-www-form-urlencoded")).at("title"), "\xFF");
}

TEST(ParseBody, OtherMediaTypesAre415AndNeverEchoInvalidBytes) {
  try {
    parse_body(post("x", "text/plain"));
    FAIL() << "expected UnsupportedMediaType";
  } catch (const UnsupportedMediaType& e) {
    EXPECT_STREQ(e.what(), "Unsupported media type \"text/plain\" in request.");
  }
  try {
    parse_body(post("x", "text/\xFF"));
    FAIL() << "expected UnsupportedMediaType";
  } catch (const UnsupportedMediaType& e) {
    EXPECT_STREQ(e.what(), "Unsupported media type \"text/\xEF\xBF\xBD\" in request.");
  }
}

TEST(ReadNoteFields, ConvertsNumbersRejectsOtherKindsIgnoresReadOnlyFields) {
  auto fields = read_note_fields(json::parse(R"({"title": 12, "original_text": 1.5,
      "translated_text": "ignored", "id": 9})")
                                     .as_object());
  EXPECT_EQ(fields.title, "12");
  EXPECT_EQ(fields.original_text, "1.5");
  EXPECT_FALSE(fields.original_language);
  try {
    read_note_fields(json::parse(R"({"title": null, "original_text": [1]})").as_object());
    FAIL() << "expected ValidationError";
  } catch (const ValidationError& e) {
    EXPECT_EQ(e.errors().at("title"), std::vector<std::string>{"This field may not be null."});
    EXPECT_EQ(e.errors().at("original_text"), std::vector<std::string>{"Not a valid string."});
  }
}

Note tricky_note() {
  Note note;
  note.id = 42;
  note.title = "quote \" backslash \\ slash / tab \t newline \n";
  note.original_text = std::string("controls \x01\x1f\x7f nul ") + '\0' + " \xC3\xB1 \xE2\x80\xA8";
  note.original_language = "en";
  note.translated_text = "\xF0\x9F\x98\x80";
  note.created_at = 1'700'000'000'123'456;
  note.updated_at = 1'700'000'001'000'000;
  return note;
}

TEST(RenderNote, ByteIdenticalToSerializingTheJsonObject) {
  Note note = tricky_note();
  EXPECT_EQ(render_note_json(note), json::serialize(note_to_json(note)));
  note.translated_text.reset();
  note.translated_language = "es";
  EXPECT_EQ(render_note_json(note), json::serialize(note_to_json(note)));
}

TEST(RenderNotePage, StopsBeforeTheBudgetButAlwaysHoldsOneNote) {
  std::vector<Note> notes(5, tricky_note());
  for (int i = 0; i < 5; ++i) notes[i].id = i + 1;
  const std::size_t one = render_note_json(notes[0]).size();

  std::size_t rendered = 0;
  std::string all = render_note_page(notes, 1 << 20, rendered);
  EXPECT_EQ(rendered, 5u);
  json::array expected;
  for (const auto& note : notes) expected.push_back(note_to_json(note));
  EXPECT_EQ(all, json::serialize(expected));

  // Room for exactly two notes: "[" + note + "," + note + "]".
  std::string two = render_note_page(notes, 2 * one + 3, rendered);
  EXPECT_EQ(rendered, 2u);
  EXPECT_EQ(two.size(), 2 * one + 3);
  EXPECT_EQ(json::parse(two).as_array().size(), 2u);
  render_note_page(notes, 2 * one + 2, rendered);
  EXPECT_EQ(rendered, 1u);

  std::string first = render_note_page(notes, 10, rendered);
  EXPECT_EQ(rendered, 1u);
  EXPECT_EQ(json::parse(first).as_array()[0].at("id"), 1);

  EXPECT_EQ(render_note_page({}, 10, rendered), "[]");
  EXPECT_EQ(rendered, 0u);
}

}  // namespace
}  // namespace transnotes::api
