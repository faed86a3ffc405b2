#include "webapp/webapp.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <array>
#include <set>
#include <string>

namespace transnotes::webapp {
namespace {

std::string sha256_hex(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_sha256(), nullptr), 1);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

std::string gunzip(std::string_view data) {
  z_stream stream{};
  EXPECT_EQ(inflateInit2(&stream, 16 + MAX_WBITS), Z_OK);  // 16: gzip framing only
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  std::string out;
  std::array<char, 16384> buffer{};
  int status = Z_OK;
  while (status == Z_OK) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer.data());
    stream.avail_out = buffer.size();
    status = inflate(&stream, Z_NO_FLUSH);
    out.append(buffer.data(), buffer.size() - stream.avail_out);
  }
  EXPECT_EQ(status, Z_STREAM_END);
  inflateEnd(&stream);
  return out;
}

// Every "/static/<name>" the text names, up to the closing quote.
std::set<std::string> static_references(std::string_view text) {
  std::set<std::string> names;
  for (auto at = text.find(kStaticPrefix); at != std::string_view::npos;
       at = text.find(kStaticPrefix, at + 1)) {
    const auto end = text.find_first_of("\"'", at);
    names.emplace(text.substr(at, end - at));
  }
  return names;
}

// "./name.js" the text imports.
std::set<std::string> module_imports(std::string_view text) {
  std::set<std::string> names;
  for (auto at = text.find("\"./"); at != std::string_view::npos; at = text.find("\"./", at + 1)) {
    const auto end = text.find('"', at + 1);
    names.emplace(std::string(kStaticPrefix) + std::string(text.substr(at + 3, end - at - 3)));
  }
  return names;
}

TEST(WebappAssets, IndexIsServedAtTheRootUncachedAndEveryAssetIsHashedAndImmutable) {
  const auto paths = webapp_asset_paths();
  ASSERT_GE(paths.size(), 3u);
  EXPECT_EQ(paths.front(), "/");
  auto index = webapp_asset("/", false);
  ASSERT_TRUE(index);
  EXPECT_EQ(index->content_type, "text/html; charset=utf-8");
  EXPECT_EQ(index->cache_control, "no-cache");
  for (std::size_t i = 1; i < paths.size(); ++i) {
    SCOPED_TRACE(paths[i]);
    ASSERT_TRUE(paths[i].starts_with(kStaticPrefix));
    auto asset = webapp_asset(paths[i], false);
    ASSERT_TRUE(asset);
    EXPECT_EQ(asset->cache_control, "public, max-age=31536000, immutable");
    EXPECT_FALSE(asset->gzipped);
  }
}

TEST(WebappAssets, EachNameCarriesTheHashOfItsContent) {
  for (auto path : webapp_asset_paths()) {
    if (path == "/") continue;
    SCOPED_TRACE(path);
    // "<stem>.<16 hex>.<ext>"
    const auto last_dot = path.rfind('.');
    const auto hash_dot = path.rfind('.', last_dot - 1);
    ASSERT_NE(hash_dot, std::string_view::npos);
    const auto hash = path.substr(hash_dot + 1, last_dot - hash_dot - 1);
    ASSERT_EQ(hash.size(), 16u);
    EXPECT_EQ(hash, sha256_hex(webapp_asset(path, false)->body).substr(0, 16));
  }
}

TEST(WebappAssets, GzipFormsUnpackToThePlainBytes) {
  for (auto path : webapp_asset_paths()) {
    SCOPED_TRACE(path);
    const auto plain = webapp_asset(path, false);
    const auto packed = webapp_asset(path, true);
    ASSERT_TRUE(plain && packed);
    EXPECT_EQ(packed->content_type, plain->content_type);
    EXPECT_EQ(packed->cache_control, plain->cache_control);
    if (packed->gzipped) {
      EXPECT_LT(packed->body.size(), plain->body.size());
      EXPECT_EQ(gunzip(packed->body), plain->body);
    } else {
      EXPECT_EQ(packed->body, plain->body);
    }
  }
  EXPECT_TRUE(webapp_asset("/", true)->gzipped);  // the page is large enough to gain
}

TEST(WebappAssets, IndexAndModulesReferOnlyToAssetsThatExistAndEveryAssetIsReachable) {
  std::set<std::string> reachable;
  std::vector<std::string> pending{"/"};
  while (!pending.empty()) {
    const std::string path = pending.back();
    pending.pop_back();
    if (!reachable.insert(path).second) continue;
    const auto asset = webapp_asset(path, false);
    ASSERT_TRUE(asset) << path << " is referenced but not served";
    auto refs = static_references(asset->body);
    if (path.ends_with(".js")) refs.merge(module_imports(asset->body));
    for (const auto& ref : refs) pending.push_back(ref);
  }
  const auto paths = webapp_asset_paths();
  EXPECT_EQ(reachable, std::set<std::string>(paths.begin(), paths.end()));
}

TEST(WebappAssets, TheWholeFirstLoadIsUnder150KilobytesCompressed) {
  std::size_t total = 0;
  for (auto path : webapp_asset_paths()) total += webapp_asset(path, true)->body.size();
  RecordProperty("first_load_gzip_bytes", static_cast<int>(total));
  EXPECT_LT(total, 150u * 1024u);
}

TEST(WebappAssets, UnknownPathsAreNotServed) {
  for (std::string_view path : {"", "/static/", "/static", "/index.html", "/static/app.css",
                                "/static/../", "/api/v1/notes/"}) {
    EXPECT_FALSE(webapp_asset(path, true)) << path;
  }
}

TEST(WebappAssets, ContentSecurityPolicyAllowsNothingInlineNorForeign) {
  EXPECT_EQ(content_security_policy(),
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
  EXPECT_EQ(content_security_policy().find("unsafe"), std::string_view::npos);
}

TEST(WebappAssets, IndexHasNoInlineScriptOrStyle) {
  const auto index = webapp_asset("/", false)->body;
  EXPECT_EQ(index.find("<style"), std::string_view::npos);
  EXPECT_EQ(index.find(" style="), std::string_view::npos);
  EXPECT_EQ(index.find(" onclick="), std::string_view::npos);
  for (auto at = index.find("<script"); at != std::string_view::npos;
       at = index.find("<script", at + 1)) {
    const auto end = index.find('>', at);
    EXPECT_NE(index.substr(at, end - at).find(" src="), std::string_view::npos)
        << "an inline script: " << index.substr(at, 80);
  }
}

TEST(AcceptsGzip, FollowsTheCodingsAndWeights) {
  EXPECT_TRUE(accepts_gzip("gzip"));
  EXPECT_TRUE(accepts_gzip("gzip, deflate, br, zstd"));
  EXPECT_TRUE(accepts_gzip("br;q=1.0, GZIP;q=0.5"));
  EXPECT_TRUE(accepts_gzip("x-gzip"));
  EXPECT_TRUE(accepts_gzip("*"));
  EXPECT_TRUE(accepts_gzip("identity, *;q=0.1"));
  EXPECT_FALSE(accepts_gzip(""));
  EXPECT_FALSE(accepts_gzip("identity"));
  EXPECT_FALSE(accepts_gzip("br, deflate"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0"));
  EXPECT_FALSE(accepts_gzip("gzip; q=0.000"));
  EXPECT_FALSE(accepts_gzip("*, gzip;q=0"));
  EXPECT_FALSE(accepts_gzip("gzip;q=2"));
  EXPECT_FALSE(accepts_gzip("gzip;q=abc"));
  EXPECT_FALSE(accepts_gzip("gzipped"));
}

}  // namespace
}  // namespace transnotes::webapp
