#include "webapp/webapp.h"

#include <cctype>

#include "webapp/embedded.h"

namespace transnotes::webapp {

namespace {

constexpr std::string_view kIndexCacheControl = "no-cache";
constexpr std::string_view kAssetCacheControl = "public, max-age=31536000, immutable";

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// The weight of one Accept-Encoding element's parameters: 1 unless a valid "q=" says otherwise
// (qvalue = 0[.ddd] / 1[.000]); a malformed weight counts as 0, so it never turns gzip on.
bool weight_is_positive(std::string_view parameters) {
  while (!parameters.empty()) {
    const auto semicolon = parameters.find(';');
    const std::string_view parameter = trim(parameters.substr(0, semicolon));
    parameters =
        semicolon == std::string_view::npos ? std::string_view{} : parameters.substr(semicolon + 1);
    if (parameter.size() < 2 || (parameter[0] != 'q' && parameter[0] != 'Q') ||
        parameter[1] != '=') {
      continue;
    }
    const std::string_view value = trim(parameter.substr(2));
    if (value.empty() || (value[0] != '0' && value[0] != '1')) return false;
    if (value.size() > 1 && (value[1] != '.' || value.size() > 5)) return false;
    bool any_nonzero = value[0] == '1';
    for (std::size_t i = 2; i < value.size(); ++i) {
      if (!std::isdigit(static_cast<unsigned char>(value[i]))) return false;
      if (value[i] != '0') any_nonzero = true;
    }
    return any_nonzero;
  }
  return true;
}

}  // namespace

bool accepts_gzip(std::string_view accept_encoding) {
  std::optional<bool> gzip;
  std::optional<bool> any;
  while (!accept_encoding.empty()) {
    const auto comma = accept_encoding.find(',');
    const std::string_view element = accept_encoding.substr(0, comma);
    accept_encoding =
        comma == std::string_view::npos ? std::string_view{} : accept_encoding.substr(comma + 1);
    const auto semicolon = element.find(';');
    const std::string_view coding = trim(element.substr(0, semicolon));
    const std::string_view parameters =
        semicolon == std::string_view::npos ? std::string_view{} : element.substr(semicolon + 1);
    if (equals_ignoring_case(coding, "gzip") || equals_ignoring_case(coding, "x-gzip")) {
      gzip = weight_is_positive(parameters);
    } else if (coding == "*") {
      any = weight_is_positive(parameters);
    }
  }
  // A coding named outright wins over "*" (so "*, gzip;q=0" refuses gzip).
  if (gzip) return *gzip;
  return any.value_or(false);
}

std::optional<Asset> webapp_asset(std::string_view path, bool gzip_ok) {
  for (const auto& file : embedded::files) {
    if (file.path != path) continue;
    const bool index = path == kIndexPath;
    // Tiny files can come out larger gzipped; those go as they are.
    const bool gzipped = gzip_ok && file.gzip.size() < file.plain.size();
    return Asset{gzipped ? file.gzip : file.plain, file.content_type,
                 index ? kIndexCacheControl : kAssetCacheControl, gzipped};
  }
  return std::nullopt;
}

std::vector<std::string_view> webapp_asset_paths() {
  std::vector<std::string_view> paths;
  for (const auto& file : embedded::files) paths.push_back(file.path);
  return paths;
}

std::string_view content_security_policy() {
  return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
         "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
}

}  // namespace transnotes::webapp
