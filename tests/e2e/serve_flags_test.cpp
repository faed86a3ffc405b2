// `serve` flags that change what clients see, through the real binary over HTTP.
#include <gtest/gtest.h>

#include "e2e/harness.h"

namespace {

using e2e::request;

void create_notes(int port, int count) {
  for (int i = 0; i < count; ++i) {
    auto res = request(port, "POST", "/api/v1/notes/",
                       R"({"title": "n", "original_text": "The dog is in the house."})");
    ASSERT_EQ(res.status, 201) << res.body;
  }
}

// The Link header of a first page asked for through a proxy that sets X-Forwarded-*.
std::string link_through_a_proxy(const std::vector<std::string>& serve_args) {
  e2e::Service service({.args = serve_args});
  create_notes(service.port(), 2);
  auto res = request(service.port(), "GET", "/api/v1/notes/?limit=1", "", "application/json",
                     {{"Host", "10.0.0.5:8000"},
                      {"X-Forwarded-Proto", "https"},
                      {"X-Forwarded-Host", "notes.example.com"}});
  EXPECT_EQ(res.status, 200) << res.body;
  return res.header("Link");
}

TEST(ServeFlags, TrustProxyLetsLinksNameTheForwardedHostAndScheme) {
  EXPECT_EQ(link_through_a_proxy({"--workers", "0", "--trust-proxy"}),
            "<https://notes.example.com/api/v1/notes/?limit=1&offset=1>; rel=\"next\"");
}

TEST(ServeFlags, WithoutTrustProxyForwardedHeadersAreIgnored) {
  EXPECT_EQ(link_through_a_proxy({"--workers", "0"}),
            "<http://10.0.0.5:8000/api/v1/notes/?limit=1&offset=1>; rel=\"next\"");
}

// The README writes the engine list with a space after the comma.
TEST(ServeFlags, EngineListWithSpacesIsAccepted) {
  e2e::Service service({.args = {"--workers", "1", "--engines", "marian, apertium"}});
  auto note = request(service.port(), "POST", "/api/v1/notes/",
                      R"({"title": "n", "original_text": "The dog is in the house."})");
  ASSERT_EQ(note.status, 201) << note.body;
  auto id = std::to_string(note.json().at("id").as_int64());
  auto queued = request(service.port(), "POST", "/api/v1/notes/" + id + "/translate/",
                        R"({"target_language": "es"})");
  ASSERT_EQ(queued.status, 202) << queued.body;
  auto job = e2e::wait_for_job(service.port(), queued.json().at("translation").at("id").as_int64());
  EXPECT_EQ(job["status"], "succeeded");
}

}  // namespace
