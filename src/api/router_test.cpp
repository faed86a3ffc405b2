#include "api/router.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "domain/errors.h"

namespace transnotes::api {
namespace {

http::Request request_for(std::string method, std::string target = "/") {
  return http::Request{std::move(method), std::move(target), {}, {}, {}};
}

// Each handler answers with its name and the id it was given, so a test sees what ran.
RouteHandler answer(std::string name) {
  return [name](const http::Request&, const PathParams& params) {
    return http::Response{200, name + ":" + std::to_string(params.id), "text/plain", {}};
  };
}

Router sample_router() {
  return Router({
      {"/health/", "", {{"GET", answer("health")}}},
      {"/metrics", "", {{"GET", answer("metrics")}}},
      {"/api/v1/notes/", "Note List", {{"GET", answer("list")}, {"POST", answer("create")}}},
      {"/api/v1/notes/{id}/",
       "Note Instance",
       {{"GET", answer("get")}, {"PUT", answer("put")}, {"DELETE", answer("delete")}}},
      {"/api/v1/notes/{id}/translate/", "Translate Note", {{"POST", answer("translate")}}},
  });
}

std::string body_of(const Router& router, const std::string& method, const std::string& path) {
  return router.dispatch(request_for(method, path), path).body;
}

TEST(Router, MatchesWithAndWithoutTheTrailingSlash) {
  Router router = sample_router();
  EXPECT_EQ(body_of(router, "GET", "/api/v1/notes/"), "list:0");
  EXPECT_EQ(body_of(router, "GET", "/api/v1/notes"), "list:0");
  EXPECT_EQ(body_of(router, "GET", "/api/v1/notes/7/"), "get:7");
  EXPECT_EQ(body_of(router, "GET", "/api/v1/notes/7"), "get:7");
  EXPECT_EQ(body_of(router, "POST", "/api/v1/notes/7/translate"), "translate:7");
  EXPECT_EQ(body_of(router, "GET", "/metrics/"), "metrics:0");
  EXPECT_EQ(body_of(router, "GET", "/health"), "health:0");
}

TEST(Router, PathsAreBoundedAtSegments) {
  Router router = sample_router();
  for (const char* path : {"/api/v1notes/1/", "/api/v1notes/", "/api/v1/notes1/", "/api/v1/notesx",
                           "/api/v1/notes/1/x/", "/api/v1/notes/1/translatex/", "/api/v1//notes/",
                           "/api/v1/notes//", "/api/v1/notes/1//", "//api/v1/notes/", "/metricsx",
                           "/healthz/", "/", "", "api/v1/notes/"}) {
    EXPECT_THROW(router.dispatch(request_for("GET", path), path), NotFound) << path;
  }
}

TEST(Router, IdsAreDigitsWithinInt64AsDjangosIntConverter) {
  Router router = sample_router();
  EXPECT_EQ(body_of(router, "GET", "/api/v1/notes/007/"), "get:7");
  EXPECT_EQ(body_of(router, "GET", "/api/v1/notes/9223372036854775807/"),
            "get:9223372036854775807");
  for (const char* id : {"9223372036854775808", "99999999999999999999999", "-1", "+1", "abc", "1.5",
                         "%31", "1%00", " 1"}) {
    const std::string path = std::string("/api/v1/notes/") + id + "/";
    EXPECT_THROW(router.dispatch(request_for("GET", path), path), NotFound) << id;
    // A bad id is "not found" whatever the method, before any method check.
    EXPECT_THROW(router.dispatch(request_for("PATCH", path), path), NotFound) << id;
  }
}

TEST(Router, OtherMethodsAre405WithTheRoutesAllow) {
  Router router = sample_router();
  try {
    router.dispatch(request_for("DELETE", "/api/v1/notes/"), "/api/v1/notes/");
    FAIL() << "expected MethodNotAllowed";
  } catch (const MethodNotAllowed& e) {
    EXPECT_STREQ(e.what(), "Method \"DELETE\" not allowed.");
    EXPECT_EQ(e.allowed(), "GET, POST, HEAD, OPTIONS");
  }
  try {
    router.dispatch(request_for("HEAD", "/api/v1/notes/1/translate/"),
                    "/api/v1/notes/1/translate/");
    FAIL() << "expected MethodNotAllowed";
  } catch (const MethodNotAllowed& e) {
    EXPECT_STREQ(e.what(), "Method \"HEAD\" not allowed.");
    EXPECT_EQ(e.allowed(), "POST, OPTIONS");  // HEAD only where GET is
  }
  try {
    // fuzz_api's finding: bytes that are not UTF-8 must not reach the 405's JSON.
    router.dispatch(request_for("\xf8GET", "/api/v1/notes/"), "/api/v1/notes/");
    FAIL() << "expected MethodNotAllowed";
  } catch (const MethodNotAllowed& e) {
    EXPECT_STREQ(e.what(), "Method \"\xEF\xBF\xBDGET\" not allowed.");
  }
  EXPECT_EQ(router.allow_for("/api/v1/notes/3"), "GET, PUT, DELETE, HEAD, OPTIONS");
  EXPECT_EQ(router.allow_for("/metrics"), "GET, HEAD, OPTIONS");
  EXPECT_EQ(router.allow_for("/nothing/"), "");
}

// Metrics and logs name the template (the table's literal), never the ids of a raw path; also
// for a 405 on a known route.
TEST(Router, DispatchNamesTheTemplateThatMatched) {
  Router router = sample_router();
  std::string_view matched;
  router.dispatch(request_for("GET", "/api/v1/notes/3"), "/api/v1/notes/3", &matched);
  EXPECT_EQ(matched, "/api/v1/notes/{id}/");
  matched = {};
  EXPECT_THROW(router.dispatch(request_for("PATCH", "/api/v1/notes/3/translate/"),
                               "/api/v1/notes/3/translate/", &matched),
               MethodNotAllowed);
  EXPECT_EQ(matched, "/api/v1/notes/{id}/translate/");
  matched = {};
  EXPECT_THROW(router.dispatch(request_for("GET", "/nothing/"), "/nothing/", &matched), NotFound);
  EXPECT_EQ(matched, "");
  const auto all = router.templates();
  EXPECT_NE(std::find(all.begin(), all.end(), "/api/v1/notes/{id}/"), all.end());
}

TEST(Router, HeadRunsTheGetHandlerAndKeepsItsBody) {
  Router router = sample_router();
  auto get = router.dispatch(request_for("GET", "/api/v1/notes/5/"), "/api/v1/notes/5/");
  auto head = router.dispatch(request_for("HEAD", "/api/v1/notes/5/"), "/api/v1/notes/5/");
  EXPECT_EQ(head.status, get.status);
  EXPECT_EQ(head.body, get.body);
  EXPECT_EQ(head.content_type, get.content_type);
}

TEST(Router, OptionsAnswersFromTheTable) {
  Router router = sample_router();
  auto named = router.dispatch(request_for("OPTIONS", "/api/v1/notes/"), "/api/v1/notes/");
  EXPECT_EQ(named.status, 200);
  EXPECT_EQ(named.content_type, "application/json");
  EXPECT_EQ(named.body, R"({"name":"Note List","renders":["application/json"],)"
                        R"("parses":["application/json","application/x-www-form-urlencoded"]})");
  ASSERT_EQ(named.headers.size(), 1u);
  EXPECT_EQ(named.headers[0],
            (std::pair<std::string, std::string>{"Allow", "GET, POST, HEAD, OPTIONS"}));

  auto plain = router.dispatch(request_for("OPTIONS", "/metrics"), "/metrics");
  EXPECT_EQ(plain.status, 200);
  EXPECT_TRUE(plain.body.empty());
  ASSERT_EQ(plain.headers.size(), 1u);
  EXPECT_EQ(plain.headers[0].second, "GET, HEAD, OPTIONS");

  EXPECT_THROW(router.dispatch(request_for("OPTIONS", "/api/v1/nothing/"), "/api/v1/nothing/"),
               NotFound);
}

TEST(Router, HandlerErrorsPassThrough) {
  Router router(
      {{"/boom/", "", {{"GET", [](const http::Request&, const PathParams&) -> http::Response {
                          throw Unavailable("down");
                        }}}}});
  EXPECT_THROW(router.dispatch(request_for("GET", "/boom/"), "/boom/"), Unavailable);
}

}  // namespace
}  // namespace transnotes::api
