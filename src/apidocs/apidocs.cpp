#include "apidocs/apidocs.h"

#include <array>

#include "apidocs/embedded.h"

namespace transnotes::apidocs {

namespace {

struct NamedAsset {
  std::string_view path;
  const std::string_view* body;  // points at the embedded definition, set before main runs
  std::string_view content_type;
};

constexpr std::string_view kJavaScript = "text/javascript; charset=utf-8";

constexpr std::string_view kText = "text/plain; charset=utf-8";

const std::array<NamedAsset, 7> kAssets{{
    {"/api/v1/docs/", &embedded::docs_html, "text/html; charset=utf-8"},
    {"/api/v1/docs/docs.js", &embedded::docs_js, kJavaScript},
    {"/api/v1/docs/swagger-ui-bundle.js", &embedded::swagger_ui_bundle_js, kJavaScript},
    {"/api/v1/docs/swagger-ui.css", &embedded::swagger_ui_css, "text/css; charset=utf-8"},
    // The bundle's first line points readers at this name, next to it.
    {"/api/v1/docs/swagger-ui-bundle.js.LICENSE.txt", &embedded::swagger_ui_bundle_licenses, kText},
    {"/api/v1/docs/LICENSE", &embedded::swagger_ui_license, kText},
    {"/api/v1/docs/NOTICE", &embedded::swagger_ui_notice, kText},
}};

}  // namespace

std::string_view openapi_yaml() { return embedded::openapi_yaml; }

std::string_view openapi_json() { return embedded::openapi_json; }

std::optional<Asset> docs_asset(std::string_view path) {
  // The page's own path without its slash (the router's convention); the assets have no slash.
  if (path == kDocsPath.substr(0, kDocsPath.size() - 1)) path = kDocsPath;
  for (const auto& asset : kAssets) {
    if (asset.path == path) return Asset{*asset.body, asset.content_type};
  }
  return std::nullopt;
}

std::vector<std::string_view> docs_asset_paths() {
  std::vector<std::string_view> paths;
  for (const auto& asset : kAssets) paths.push_back(asset.path);
  return paths;
}

std::string_view docs_content_security_policy() {
  return "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
         "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
         "frame-ancestors 'none'";
}

}  // namespace transnotes::apidocs
