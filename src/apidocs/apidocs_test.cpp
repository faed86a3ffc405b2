#include "apidocs/apidocs.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace transnotes::apidocs {
namespace {

std::string read_source_file(const std::string& relative) {
  std::ifstream in(std::string(TRANSNOTES_SOURCE_DIR) + "/" + relative, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

TEST(OpenapiDocument, JsonParsesAndIsOpenapi31) {
  const auto document = boost::json::parse(openapi_json()).as_object();
  const std::string version(document.at("openapi").as_string());
  EXPECT_TRUE(version.starts_with("3.1.")) << version;
  EXPECT_GT(document.at("paths").as_object().size(), 10u);
  EXPECT_TRUE(document.at("components").as_object().contains("schemas"));
}

TEST(OpenapiDocument, YamlIsTheSourceFileByteForByte) {
  const auto source = read_source_file("docs/openapi.yaml");
  ASSERT_FALSE(source.empty());
  EXPECT_EQ(openapi_yaml(), source);
}

TEST(OpenapiDocument, JsonHoldsEveryPathOfTheYaml) {
  const auto paths = boost::json::parse(openapi_json()).as_object().at("paths").as_object();
  // Path keys are the lines "  /...:" of the block-style document.
  std::set<std::string> yaml_paths;
  std::istringstream yaml{std::string(openapi_yaml())};
  for (std::string line; std::getline(yaml, line);) {
    if (line.starts_with("  /") && line.ends_with(":")) {
      yaml_paths.insert(line.substr(2, line.size() - 3));
    }
  }
  std::set<std::string> json_paths;
  for (const auto& entry : paths) json_paths.insert(std::string(entry.key()));
  EXPECT_EQ(json_paths, yaml_paths);
}

TEST(DocsPage, EveryAssetIsNonEmptyWithAContentType) {
  const auto paths = docs_asset_paths();
  ASSERT_EQ(paths.front(), kDocsPath);
  for (const auto path : paths) {
    const auto asset = docs_asset(path);
    ASSERT_TRUE(asset) << path;
    EXPECT_GT(asset->body.size(), 0u) << path;
    EXPECT_FALSE(asset->content_type.empty()) << path;
  }
  EXPECT_TRUE(docs_asset(kDocsPath)->content_type.starts_with("text/html"));
  EXPECT_GT(docs_asset("/api/v1/docs/swagger-ui-bundle.js")->body.size(), 100'000u)
      << "the Swagger UI bundle from npm";
}

TEST(DocsPage, PageAnswersWithAndWithoutTrailingSlashAndNothingElse) {
  EXPECT_EQ(docs_asset("/api/v1/docs")->body, docs_asset("/api/v1/docs/")->body);
  EXPECT_FALSE(docs_asset("/api/v1/docs/missing.js"));
  EXPECT_FALSE(docs_asset("/api/v1/docs/docs.js/"));
  EXPECT_FALSE(docs_asset("/api/v1/docs/../openapi.json"));
  EXPECT_FALSE(docs_asset("/api/v1/docs//docs.js"));
  EXPECT_FALSE(docs_asset(""));
}

// The values of every `attribute="..."` in `html`. (No std::regex: GCC 12 warns inside it under
// the sanitizers.)
std::vector<std::string> attribute_values(const std::string& html, const std::string& attribute) {
  std::vector<std::string> values;
  const std::string opening = " " + attribute + "=\"";
  for (auto at = html.find(opening); at != std::string::npos; at = html.find(opening, at + 1)) {
    const auto start = at + opening.size();
    values.push_back(html.substr(start, html.find('"', start) - start));
  }
  return values;
}

TEST(DocsPage, IndexLoadsOnlyOurOwnAssetsAndRunsNoInlineScript) {
  const std::string page(docs_asset(kDocsPath)->body);
  auto references = attribute_values(page, "src");
  const auto links = attribute_values(page, "href");
  references.insert(references.end(), links.begin(), links.end());
  EXPECT_EQ(references.size(), 3u);
  for (const auto& target : references) {
    EXPECT_TRUE(docs_asset(target)) << "the page references " << target << ", which is not served";
  }
  // Every <script> has a src and no body: the policy refuses inline scripts.
  int scripts = 0;
  for (auto at = page.find("<script"); at != std::string::npos; at = page.find("<script", at + 1)) {
    ++scripts;
    const auto tag_end = page.find('>', at);
    const auto close = page.find("</script>", at);
    ASSERT_NE(close, std::string::npos);
    EXPECT_NE(page.substr(at, tag_end - at).find(" src=\""), std::string::npos);
    EXPECT_EQ(close, tag_end + 1) << "inline script body: " << page.substr(at, close - at);
  }
  EXPECT_EQ(scripts, 2);
  EXPECT_EQ(page.find("<style"), std::string::npos);
  EXPECT_EQ(page.find(" on"), std::string::npos) << "no inline event handlers";
  EXPECT_EQ(page.find("//"), std::string::npos) << "nothing from another origin";
}

TEST(DocsPage, SwaggerUiLicencesAreServedBesideTheBundle) {
  const std::string bundle(docs_asset("/api/v1/docs/swagger-ui-bundle.js")->body);
  const auto pointer = bundle.substr(0, bundle.find('\n'));
  ASSERT_NE(pointer.find("swagger-ui-bundle.js.LICENSE.txt"), std::string::npos) << pointer;
  EXPECT_TRUE(docs_asset("/api/v1/docs/swagger-ui-bundle.js.LICENSE.txt"));
  const auto license = docs_asset("/api/v1/docs/LICENSE");
  const auto notice = docs_asset("/api/v1/docs/NOTICE");
  ASSERT_TRUE(license && notice);
  EXPECT_NE(license->body.find("Apache License"), std::string::npos);
  EXPECT_NE(notice->body.find("swagger-ui"), std::string::npos);
}

TEST(DocsPage, InitScriptRendersTheServedDocumentWithoutTheOnlineValidator) {
  const std::string init(docs_asset("/api/v1/docs/docs.js")->body);
  EXPECT_NE(init.find("\"/api/v1/openapi.json\""), std::string::npos);
  EXPECT_NE(init.find("validatorUrl: null"), std::string::npos);
}

TEST(DocsPage, ContentSecurityPolicyIsStrict) {
  const std::string policy(docs_content_security_policy());
  for (const char* directive :
       {"default-src 'none'", "script-src 'self';", "connect-src 'self'",
        "img-src 'self' data:", "base-uri 'none'", "frame-ancestors 'none'"}) {
    EXPECT_NE(policy.find(directive), std::string::npos) << directive;
  }
  EXPECT_EQ(policy.find("unsafe-eval"), std::string::npos);
  EXPECT_EQ(policy.find("http"), std::string::npos);
}

}  // namespace
}  // namespace transnotes::apidocs
