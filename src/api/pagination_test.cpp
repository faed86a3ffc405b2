#include "api/pagination.h"

#include <gtest/gtest.h>

#include <boost/url/parse.hpp>

#include "domain/errors.h"

namespace transnotes::api {
namespace {

ListQuery query_of(std::string_view target) {
  auto url = boost::urls::parse_origin_form(target);
  EXPECT_TRUE(url) << target;
  return list_query_from(url->params());
}

TEST(ListQuery, DefaultsAndPlainValues) {
  EXPECT_EQ(query_of("/n/").limit, 100);
  EXPECT_EQ(query_of("/n/").offset, 0);
  EXPECT_EQ(query_of("/n/?limit=5&offset=20").limit, 5);
  EXPECT_EQ(query_of("/n/?limit=5&offset=20").offset, 20);
}

TEST(ListQuery, LimitIsCappedAtOneThousand) {
  EXPECT_EQ(query_of("/n/?limit=1000").limit, 1000);
  EXPECT_EQ(query_of("/n/?limit=1001").limit, 1000);
  EXPECT_EQ(query_of("/n/?limit=999999999999").limit, 1000);
}

TEST(ListQuery, ZeroAndInvalidLimitsFallBackToTheDefault) {
  EXPECT_EQ(query_of("/n/?limit=0").limit, 100);
  EXPECT_EQ(query_of("/n/?limit=-1").limit, 100);
  EXPECT_EQ(query_of("/n/?limit=abc").limit, 100);
  EXPECT_EQ(query_of("/n/?limit=5x").limit, 100);
  EXPECT_EQ(query_of("/n/?limit=99999999999999999999999").limit, 100);
  EXPECT_EQ(query_of("/n/?limit=").limit, 100);
}

TEST(ListQuery, InvalidOffsetsAreZero) {
  EXPECT_EQ(query_of("/n/?offset=-3").offset, 0);
  EXPECT_EQ(query_of("/n/?offset=abc").offset, 0);
  EXPECT_EQ(query_of("/n/?offset=0").offset, 0);
}

constexpr std::string_view kPage = "http://h/api/v1/notes/";

TEST(PageLinks, FirstPageHasOnlyNext) {
  EXPECT_EQ(page_links(kPage, {10, 0}, 10, true),
            "<http://h/api/v1/notes/?limit=10&offset=10>; rel=\"next\"");
  EXPECT_EQ(page_links(kPage, {10, 0}, 3, false), "");
}

TEST(PageLinks, MiddlePageHasNextAndPrevOneLimitBack) {
  EXPECT_EQ(page_links(kPage, {10, 30}, 10, true),
            "<http://h/api/v1/notes/?limit=10&offset=40>; rel=\"next\", "
            "<http://h/api/v1/notes/?limit=10&offset=20>; rel=\"prev\"");
}

TEST(PageLinks, PrevNeverGoesBelowZero) {
  EXPECT_EQ(page_links(kPage, {10, 4}, 2, false),
            "<http://h/api/v1/notes/?limit=10&offset=0>; rel=\"prev\"");
}

TEST(PageLinks, APageThatStoppedEarlyContinuesAfterItsLastNote) {
  EXPECT_EQ(page_links(kPage, {1000, 0}, 8, true),
            "<http://h/api/v1/notes/?limit=1000&offset=8>; rel=\"next\"");
  EXPECT_EQ(page_links(kPage, {1000, 8}, 3, true),
            "<http://h/api/v1/notes/?limit=1000&offset=11>; rel=\"next\", "
            "<http://h/api/v1/notes/?limit=1000&offset=0>; rel=\"prev\"");
}

TEST(Host, AcceptsNamesAddressesAndPorts) {
  for (const char* host : {"localhost", "127.0.0.1", "127.0.0.1:8000", "notes.example.com",
                           "Notes-1.Example.COM.", "[::1]", "[::1]:8000", "[2001:db8::1]:443"}) {
    EXPECT_TRUE(is_valid_host(host)) << host;
  }
}

TEST(Host, RefusesAnythingThatCouldBreakALink) {
  for (const char* host :
       {"",       "a b",    "a>",           "<a",     "a,b",  "a;b", "a/b",  "a\\b",
        "a\"b",   "a@b",    "a:",           "a:80x",  "a:-1", ":80", "[::1", "[]",
        "[::1]x", "[g::1]", "\xFF.example", "a\r\nb", "a?b",  "a#b"}) {
    EXPECT_FALSE(is_valid_host(host)) << host;
  }
}

http::Request with_headers(std::vector<std::pair<std::string, std::string>> headers) {
  return http::Request{"GET", "/api/v1/notes/", std::move(headers), {}, {}};
}

TEST(BaseUrl, UsesHostAndIgnoresForwardedHeadersUnlessTrusted) {
  auto request = with_headers({{"Host", "api.example:8080"},
                               {"X-Forwarded-Proto", "https"},
                               {"X-Forwarded-Host", "proxy.example"}});
  EXPECT_EQ(base_url(request, /*trust_proxy=*/false), "http://api.example:8080");
  EXPECT_EQ(base_url(request, /*trust_proxy=*/true), "https://proxy.example");
  EXPECT_EQ(base_url(with_headers({}), false), "http://localhost");
}

TEST(BaseUrl, TrustedForwardedHeadersUseTheirFirstEntry) {
  auto request = with_headers({{"Host", "internal:8000"},
                               {"X-Forwarded-Proto", " HTTPS , http"},
                               {"X-Forwarded-Host", "public.example, internal"}});
  EXPECT_EQ(base_url(request, true), "https://public.example");
  EXPECT_EQ(base_url(with_headers({{"Host", "h"}, {"X-Forwarded-Proto", "gopher"}}), true),
            "http://h");
}

TEST(BaseUrl, InvalidHostsAreBadRequests) {
  EXPECT_THROW(base_url(with_headers({{"Host", "evil>, <http://x/>"}}), false), BadRequest);
  // An untrusted forwarded host is never looked at, so it cannot fail a request either.
  EXPECT_NO_THROW(base_url(with_headers({{"Host", "h"}, {"X-Forwarded-Host", "a b"}}), false));
  EXPECT_THROW(base_url(with_headers({{"Host", "h"}, {"X-Forwarded-Host", "a b"}}), true),
               BadRequest);
  EXPECT_THROW(checked_host(with_headers({{"Host", "a b"}}), false), BadRequest);
}

}  // namespace
}  // namespace transnotes::api
