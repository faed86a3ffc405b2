// The files built into the binary. The definitions are generated at build time by
// embed_assets.py (see CMakeLists.txt); internal to src/apidocs.
#pragma once

#include <string_view>

namespace transnotes::apidocs::embedded {

extern const std::string_view openapi_yaml;
extern const std::string_view openapi_json;
extern const std::string_view docs_html;
extern const std::string_view docs_js;
extern const std::string_view swagger_ui_bundle_js;
extern const std::string_view swagger_ui_css;
// Swagger UI's licence (Apache-2.0) and notice, and those of what its bundle holds: shipped
// with the bundle, as the licences ask.
extern const std::string_view swagger_ui_bundle_licenses;
extern const std::string_view swagger_ui_license;
extern const std::string_view swagger_ui_notice;

}  // namespace transnotes::apidocs::embedded
