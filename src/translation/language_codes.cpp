#include "translation/language_codes.h"

#include <array>
#include <utility>

namespace transnotes::translation {
namespace {

// ISO 639-2/3 codes Apertium uses in its mode names, with their ISO 639-1 equivalents.
constexpr std::array<std::pair<std::string_view, std::string_view>, 62> kThreeToTwo = {{
    {"afr", "af"}, {"ara", "ar"}, {"arg", "an"}, {"aze", "az"}, {"bel", "be"}, {"ben", "bn"},
    {"bos", "bs"}, {"bre", "br"}, {"bul", "bg"}, {"cat", "ca"}, {"ces", "cs"}, {"cym", "cy"},
    {"dan", "da"}, {"deu", "de"}, {"ell", "el"}, {"eng", "en"}, {"epo", "eo"}, {"est", "et"},
    {"eus", "eu"}, {"fao", "fo"}, {"fin", "fi"}, {"fra", "fr"}, {"gle", "ga"}, {"glg", "gl"},
    {"heb", "he"}, {"hin", "hi"}, {"hrv", "hr"}, {"hun", "hu"}, {"ind", "id"}, {"isl", "is"},
    {"ita", "it"}, {"kaz", "kk"}, {"kir", "ky"}, {"lat", "la"}, {"lav", "lv"}, {"lit", "lt"},
    {"mkd", "mk"}, {"mlt", "mt"}, {"msa", "ms"}, {"nld", "nl"}, {"nno", "nn"}, {"nob", "nb"},
    {"oci", "oc"}, {"pol", "pl"}, {"por", "pt"}, {"ron", "ro"}, {"rus", "ru"}, {"slk", "sk"},
    {"slv", "sl"}, {"sme", "se"}, {"spa", "es"}, {"sqi", "sq"}, {"srd", "sc"}, {"srp", "sr"},
    {"swe", "sv"}, {"tat", "tt"}, {"tur", "tr"}, {"ukr", "uk"}, {"urd", "ur"}, {"uzb", "uz"},
    {"zho", "zh"}, {"hye", "hy"},
}};

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

std::string normalize_language_code(std::string_view code) {
  std::string primary = normalize_language(code);
  // Engines key their pairs by ISO 639 codes; anything else cannot name a pair.
  if (primary.empty() || primary.size() > 8) return "";
  for (char c : primary) {
    if (c < 'a' || c > 'z') return "";
  }
  return primary;
}

std::string apertium_to_iso(std::string_view code) {
  std::string lowered = lower(code);
  for (const auto& [three, two] : kThreeToTwo) {
    if (three == lowered) return std::string(two);
  }
  return lowered;
}

}  // namespace transnotes::translation
