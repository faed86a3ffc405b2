// The app's files built into the binary. The definitions are generated at build time by
// bundle_assets.py (see CMakeLists.txt); internal to src/webapp.
#pragma once

#include <span>
#include <string_view>

namespace transnotes::webapp::embedded {

struct File {
  std::string_view path;  // "/" for index.html, "/static/<stem>.<hash>.<ext>" for the rest
  std::string_view content_type;
  std::string_view plain;
  std::string_view gzip;  // the same bytes, gzipped at build time
};

// index.html first.
extern const std::span<const File> files;

}  // namespace transnotes::webapp::embedded
