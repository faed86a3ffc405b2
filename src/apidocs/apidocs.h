// The API's description as the service serves it: the OpenAPI document (docs/openapi.yaml, built
// into the binary, also converted to JSON at build time) and a documentation page rendering it
// with Swagger UI (taken from npm at build time and built in too, so the page works offline).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace transnotes::apidocs {

// docs/openapi.yaml exactly as in the source tree, and the same document as JSON.
std::string_view openapi_yaml();
std::string_view openapi_json();
inline constexpr std::string_view kOpenapiYamlContentType = "application/yaml";
inline constexpr std::string_view kOpenapiJsonContentType = "application/json";

// Where the documentation page lives; its assets are the files under it.
inline constexpr std::string_view kDocsPath = "/api/v1/docs/";

struct Asset {
  std::string_view body;
  std::string_view content_type;
};

// The page for "/api/v1/docs/" (also "/api/v1/docs", as every route answers without its trailing
// slash) and each of its assets for "/api/v1/docs/<name>"; nullopt for any other path.
std::optional<Asset> docs_asset(std::string_view path);

// Every path docs_asset answers, the page first.
std::vector<std::string_view> docs_asset_paths();

// The Content-Security-Policy to send with every docs_asset answer. Nothing may load from
// elsewhere and no inline script may run; styles allow 'unsafe-inline' because Swagger UI sets
// style attributes on the elements it renders (swagger-api/swagger-ui#10655).
std::string_view docs_content_security_policy();

}  // namespace transnotes::apidocs
