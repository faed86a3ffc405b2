#include "apidocs/apidocs.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

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
  const std::string yaml(openapi_yaml());
  std::set<std::string> yaml_paths;
  const std::regex path_key(R"(\n  (/[^:\s]*):\n)");
  for (std::sregex_iterator it(yaml.begin(), yaml.end(), path_key), end; it != end; ++it) {
    yaml_paths.insert((*it)[1].str());
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

TEST(DocsPage, IndexLoadsOnlyOurOwnAssetsAndRunsNoInlineScript) {
  const std::string page(docs_asset(kDocsPath)->body);
  const std::regex reference(R"re((?:src|href)="([^"]*)")re");
  int references = 0;
  for (std::sregex_iterator it(page.begin(), page.end(), reference), end; it != end; ++it) {
    ++references;
    const auto target = (*it)[1].str();
    EXPECT_TRUE(docs_asset(target)) << "the page references " << target << ", which is not served";
  }
  EXPECT_EQ(references, 3);
  // Every <script> has a src and no body: the policy refuses inline scripts.
  const std::regex script(R"(<script([^>]*)>([^<]*)</script>)");
  int scripts = 0;
  for (std::sregex_iterator it(page.begin(), page.end(), script), end; it != end; ++it) {
    ++scripts;
    EXPECT_NE((*it)[1].str().find("src="), std::string::npos) << (*it)[0].str();
    EXPECT_TRUE((*it)[2].str().find_first_not_of(" \n") == std::string::npos) << (*it)[0].str();
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
