// The web app served at "/": index.html and its hashed, precompressed assets under "/static/",
// all built into the binary at build time (src/webapp/app, bundled by bundle_assets.py).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace transnotes::webapp {

inline constexpr std::string_view kIndexPath = "/";
inline constexpr std::string_view kStaticPrefix = "/static/";

struct Asset {
  std::string_view body;
  std::string_view content_type;
  // index.html is revalidated on every load (it names the current assets); an asset's name
  // changes with its content, so it is kept for a year and never revalidated.
  std::string_view cache_control;
  bool gzipped = false;  // body is gzip: send Content-Encoding: gzip
};

// The file for `path` ("/" or "/static/<name>"), gzipped when gzip_ok and the file has a gzip
// form; nullopt for any other path. Every answer varies on Accept-Encoding.
std::optional<Asset> webapp_asset(std::string_view path, bool gzip_ok);

// Whether an Accept-Encoding header value admits gzip (RFC 9110 12.5.3: "gzip" or "*" with a
// non-zero q; "x-gzip" is the same coding).
bool accepts_gzip(std::string_view accept_encoding);

// Every path webapp_asset answers, "/" first.
std::vector<std::string_view> webapp_asset_paths();

// The Content-Security-Policy sent with every webapp_asset answer: nothing inline, nothing from
// elsewhere, no framing.
std::string_view content_security_policy();

}  // namespace transnotes::webapp
