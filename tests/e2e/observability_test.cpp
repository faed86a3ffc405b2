// What an operator sees of a running service, end to end on real processes: /metrics of the API
// and of a worker process (checked by promtool, and moving as requests and jobs happen), the
// metric names the deploy files rely on, JSON logs with an access line per request, X-Request-ID
// from the client into the worker's lines for the job, the staff-only job routes, and the served
// API description.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e/fault_services.h"
#include "e2e/harness.h"

namespace {

namespace json = boost::json;
using e2e::request;

const std::string kBinary = TRANSNOTES_BINARY;
const std::string kSourceDir = TRANSNOTES_SOURCE_DIR;

// Runs `promtool check metrics` on `text`; its output when it complains, "" when clean.
std::string promtool_problems(const std::string& text) {
  const std::string path = e2e::make_temp_dir("transnotes-promtool") + "/metrics.txt";
  std::ofstream(path) << text;
  auto result = e2e::run_command("promtool check metrics < '" + path + "' 2>&1");
  if (result.exit_code == 0) return {};
  return "promtool exit " + std::to_string(result.exit_code) + ": " + result.output;
}

// The value of the sample `series` (name with its labels, as rendered), -1 when absent.
double sample(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

// The metric families deploy/metric-names.txt promises for a process of `kind` ("api" or
// "worker"; "every" applies to both), leaving out those that need a MarianMT model
// (marian_service_test checks those) and, without `with_redis`, those that need Redis.
std::vector<std::string> promised_families(const std::string& kind, bool with_redis = false) {
  std::ifstream in(kSourceDir + "/deploy/metric-names.txt");
  EXPECT_TRUE(in.good()) << "deploy/metric-names.txt is missing";
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    std::string name, type, where, needs;
    words >> name >> type >> where >> needs;
    if ((needs == "redis" && !with_redis) || needs == "marian") continue;
    if (where == kind || where == "every") names.push_back(name);
  }
  EXPECT_GT(names.size(), 5u);
  return names;
}

// /metrics once `series` has reached `at_least`: the server counts an answer after writing it, so
// the client can read the answer before the count moves. The last scrape when it never does.
std::string scrape_when(int port, const std::string& series, double at_least) {
  std::string text;
  for (int i = 0; i < 100; ++i) {
    text = request(port, "GET", "/metrics").body;
    if (sample(text, series) >= at_least) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return text;
}

void expect_families(const std::string& text, const std::vector<std::string>& names) {
  for (const auto& name : names) {
    EXPECT_NE(text.find("# TYPE " + name + " "), std::string::npos) << name << " missing:\n"
                                                                    << text;
  }
}

// A port nothing listens on now (the kernel's pick, released again).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// The service's log lines that are JSON objects; fails the test on any line that is not.
std::vector<json::object> json_lines(const std::string& log) {
  std::vector<json::object> lines;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    boost::system::error_code error;
    auto value = json::parse(line, error);
    if (error || !value.is_object()) {
      ADD_FAILURE() << "not a JSON log line: " << line;
      continue;
    }
    lines.push_back(value.as_object());
  }
  return lines;
}

std::string field(const json::object& line, const char* name) {
  const auto* value = line.if_contains(name);
  if (!value) return {};
  if (value->is_string()) return std::string(value->as_string());
  return json::serialize(*value);
}

std::int64_t create_note(int port, const std::string& text) {
  auto created = request(port, "POST", "/api/v1/notes/",
                         json::serialize(json::object{{"title", "t"}, {"original_text", text}}));
  EXPECT_EQ(created.status, 201) << created.body;
  return created.json().at("id").as_int64();
}

// The API's /metrics passes promtool, names routes by template, and moves with requests and jobs;
// every family deploy/metric-names.txt promises for an API process with in-process workers is
// there.
TEST(Observability, ApiMetricsPassPromtoolAndCountRequestsAndJobs) {
  e2e::Service service(e2e::ServiceOptions{.args = {"--engines", "apertium", "--workers", "1"}});
  const int port = service.port();
  const auto job = e2e::translate_new_note(port, "Hello world.", "es");
  auto finished = e2e::wait_for_job(port, job);
  EXPECT_EQ(finished["status"], "succeeded") << json::serialize(finished);
  const std::string note_path =
      "/api/v1/notes/" + std::to_string(finished["note_id"].as_int64()) + "/";
  for (int i = 0; i < 3; ++i) EXPECT_EQ(request(port, "GET", note_path).status, 200);
  EXPECT_EQ(request(port, "GET", "/api/v1/notes/999999/").status, 404);

  const std::string text = scrape_when(
      port, R"(http_requests_total{code="404",method="GET",route="/api/v1/notes/{id}/"})", 1);
  EXPECT_EQ(promtool_problems(text), "");
  expect_families(text, promised_families("api"));
  expect_families(text, promised_families("worker"));
  EXPECT_GE(
      sample(text, R"(http_requests_total{code="200",method="GET",route="/api/v1/notes/{id}/"})"),
      3);
  EXPECT_EQ(
      sample(text, R"(http_requests_total{code="404",method="GET",route="/api/v1/notes/{id}/"})"),
      1);
  EXPECT_EQ(
      sample(
          text,
          R"(http_requests_total{code="202",method="POST",route="/api/v1/notes/{id}/translate/"})"),
      1);
  EXPECT_EQ(text.find("route=\"/api/v1/notes/9"), std::string::npos) << "a raw path became a label";
  EXPECT_EQ(
      sample(
          text,
          R"(transnotes_translation_attempts_total{engine="apertium",outcome="succeeded",pair="en-es"})"),
      1);
  EXPECT_EQ(
      sample(text,
             R"(transnotes_translation_duration_seconds_count{engine="apertium",pair="en-es"})"),
      1);
  EXPECT_EQ(
      sample(text, R"(transnotes_translated_characters_total{engine="apertium",pair="en-es"})"),
      12);
  EXPECT_EQ(sample(text, R"(transnotes_jobs{state="succeeded"})"), 1);
  EXPECT_EQ(sample(text, "transnotes_queue_depth"), 0);
  EXPECT_EQ(sample(text, "transnotes_translations_requested_total"), 1);
  EXPECT_GT(sample(text, "process_resident_memory_bytes"), 0);
  EXPECT_NE(text.find("transnotes_build_info{commit=\""), std::string::npos);

  // Counters only grow: a later scrape counts the scrape before it.
  const std::string scrapes = R"(http_requests_total{code="200",method="GET",route="/metrics"})";
  EXPECT_GT(sample(scrape_when(port, scrapes, sample(text, scrapes) + 1), scrapes),
            sample(text, scrapes));
}

// In production (PostgreSQL and Redis) the API also reports the Redis cache's and the shared rate
// limiter's figures, and a cached read counts as a hit.
TEST(Observability, ProductionApiMetricsIncludeRedisFigures) {
  if (!std::getenv("TRANSNOTES_TEST_DATABASE_URL"))
    GTEST_FAIL() << "TRANSNOTES_TEST_DATABASE_URL unset";
  faults::RedisServer redis;
  e2e::Service service(e2e::ServiceOptions{
      .args = {"--engines", "apertium", "--workers", "0"},
      .env = {{"DATABASE_URL", e2e::database_url_for("postgres")}, {"REDIS_URL", redis.url()}}});
  const int port = service.port();
  const std::string path = "/api/v1/notes/" + std::to_string(create_note(port, "Hi.")) + "/";
  for (int i = 0; i < 3; ++i) EXPECT_EQ(request(port, "GET", path).status, 200);
  const std::string text = request(port, "GET", "/metrics").body;
  EXPECT_EQ(promtool_problems(text), "");
  expect_families(text, promised_families("api", /*with_redis=*/true));
  EXPECT_GT(sample(text, R"(transnotes_cache_lookups_total{result="hit"})"), 0) << text;
  EXPECT_GT(sample(text, R"(transnotes_rate_limiter_decisions_total{decision="allowed"})"), 0)
      << text;
}

// A worker process serves its own /metrics, /healthz and /readyz; the job it runs for a
// translate request sent with X-Request-ID logs that id on the worker's lines, in JSON.
TEST(Observability, WorkerProcessMetricsAndTheRequestIdInItsLogLines) {
  e2e::Service api(e2e::ServiceOptions{.args = {"--engines", "apertium", "--workers", "0"}});
  const int metrics_port = free_port();
  e2e::Service worker(
      e2e::ServiceOptions{.args = {"--engines", "apertium", "--workers", "1", "--metrics-port",
                                   std::to_string(metrics_port), "--metrics-host", "127.0.0.1"},
                          .env = {{"TRANSNOTES_LOG_FORMAT", "json"}},
                          .data_dir = api.data_dir(),
                          .subcommand = "worker"});

  const auto note = create_note(api.port(), "The cat sleeps.");
  const std::string request_id = "trace-4f2a.e2e:01";
  auto asked =
      request(api.port(), "POST", "/api/v1/notes/" + std::to_string(note) + "/translate/",
              R"({"target_language":"es"})", "application/json", {{"X-Request-ID", request_id}});
  ASSERT_EQ(asked.status, 202) << asked.body;
  EXPECT_EQ(asked.header("x-request-id"), request_id);
  const auto job = asked.json().at("translation").at("id").as_int64();
  auto finished = e2e::wait_for_job(api.port(), job);
  EXPECT_EQ(finished["status"], "succeeded") << json::serialize(finished);

  EXPECT_EQ(request(metrics_port, "GET", "/healthz").status, 200);
  auto ready = request(metrics_port, "GET", "/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  EXPECT_EQ(ready.json().at("checks").at("database"), "ok");
  const std::string attempts =
      R"(transnotes_translation_attempts_total{engine="apertium",outcome="succeeded",pair="en-es"})";
  // The worker counts an attempt (and logs its end) just after storing its outcome.
  const std::string text = scrape_when(metrics_port, attempts, 1);
  EXPECT_EQ(promtool_problems(text), "");
  expect_families(text, promised_families("worker"));
  EXPECT_EQ(text.find("# TYPE http_requests_total "), std::string::npos)
      << "a worker serves no API, so it has no API request figures";
  EXPECT_EQ(sample(text, attempts), 1);

  // The worker wrote its lines for the job (its start and its end) with the request's id.
  std::vector<json::object> lines_for_job;
  for (int i = 0; i < 100 && lines_for_job.size() < 2; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    lines_for_job.clear();
    for (auto& line : json_lines(worker.log())) {
      if (field(line, "job_id") == std::to_string(job)) lines_for_job.push_back(std::move(line));
    }
  }
  EXPECT_GE(lines_for_job.size(), 2u) << worker.log();
  for (const auto& line : lines_for_job) {
    EXPECT_EQ(field(line, "request_id"), request_id) << json::serialize(line);
  }
}

// JSON logs: one access line per request with the route template, status, size, duration, the
// request id (the client's when valid, else a generated one) and the user, never a token or a
// password; --access-log off writes none.
TEST(Observability, AccessLogLinesInJson) {
  e2e::Service service(e2e::ServiceOptions{.args = {"--engines", "apertium"},
                                           .env = {{"TRANSNOTES_LOG_FORMAT", "json"}}});
  const int port = service.port();
  const auto note = create_note(port, "secret note text");
  auto read = request(port, "GET", "/api/v1/notes/" + std::to_string(note) + "/?x=1", "",
                      "application/json", {{"X-Request-ID", "client-id-1"}});
  EXPECT_EQ(read.status, 200);
  EXPECT_EQ(read.header("x-request-id"), "client-id-1");
  auto forged = request(port, "GET", "/healthz", "", "application/json",
                        {{"X-Request-ID", std::string(200, 'a')}});
  const std::string generated = forged.header("x-request-id");
  EXPECT_EQ(generated.size(), 32u) << generated;
  EXPECT_EQ(generated.find_first_not_of("0123456789abcdef"), std::string::npos) << generated;
  service.terminate();  // flushes the access log

  const std::string log = service.log();
  EXPECT_EQ(log.find(e2e::kTestPassword), std::string::npos) << "a password reached the log";
  EXPECT_EQ(log.find(e2e::default_token(port).substr(0, 40)), std::string::npos)
      << "a token reached the log";
  EXPECT_EQ(log.find("secret note text"), std::string::npos) << "note text reached the log";
  bool saw_read = false, saw_forged = false;
  for (const auto& line : json_lines(log)) {
    EXPECT_FALSE(field(line, "time").empty()) << json::serialize(line);
    EXPECT_FALSE(field(line, "level").empty()) << json::serialize(line);
    if (field(line, "message") != "request") continue;
    if (field(line, "request_id") == "client-id-1") {
      saw_read = true;
      EXPECT_EQ(field(line, "method"), "GET");
      EXPECT_EQ(field(line, "route"), "/api/v1/notes/{id}/");
      EXPECT_EQ(field(line, "status"), "200");
      EXPECT_FALSE(field(line, "user_id").empty());
      EXPECT_FALSE(field(line, "duration_ms").empty());
      EXPECT_EQ(field(line, "bytes"), std::to_string(read.body.size()));
    }
    if (field(line, "request_id") == generated) {
      saw_forged = true;
      EXPECT_EQ(field(line, "route"), "/healthz");
    }
  }
  EXPECT_TRUE(saw_read) << log;
  EXPECT_TRUE(saw_forged) << log;

  e2e::Service quiet(e2e::ServiceOptions{.args = {"--engines", "apertium", "--access-log", "off"},
                                         .env = {{"TRANSNOTES_LOG_FORMAT", "json"}}});
  EXPECT_EQ(request(quiet.port(), "GET", "/healthz").status, 200);
  quiet.terminate();
  for (const auto& line : json_lines(quiet.log())) {
    EXPECT_NE(field(line, "message"), "request") << json::serialize(line);
  }
}

// POST /api/v1/translations/{id}/cancel/ and /retry/ are for staff accounts only: 403 for
// everyone else, whether or not the job exists; for staff they follow the job's state.
TEST(Observability, StaffCancelAndRetryJobsOverHttp) {
  const std::string data_dir = e2e::make_temp_dir("transnotes-admin");
  auto made = e2e::run_command("printf '%s\\n' '" + std::string(e2e::kTestPassword) +
                               "' | env -u DATABASE_URL " + kBinary +
                               " users create boss --admin --data-dir '" + data_dir + "' 2>&1");
  ASSERT_EQ(made.exit_code, 0) << made.output;
  // No workers: the job stays queued until it is cancelled.
  e2e::Service service(e2e::ServiceOptions{.args = {"--engines", "apertium", "--workers", "0"},
                                           .data_dir = data_dir});
  const int port = service.port();
  const auto note = create_note(port, "Good morning.");
  auto asked = request(port, "POST", "/api/v1/notes/" + std::to_string(note) + "/translate/",
                       R"({"target_language":"es"})");
  ASSERT_EQ(asked.status, 202) << asked.body;
  const std::string job = std::to_string(asked.json().at("translation").at("id").as_int64());
  const std::string cancel = "/api/v1/translations/" + job + "/cancel/";
  const std::string retry = "/api/v1/translations/" + job + "/retry/";

  const json::value denied{{"detail", "You do not have permission to perform this action."}};
  for (const auto& path : {cancel, retry, std::string("/api/v1/translations/999999/cancel/")}) {
    auto refused = request(port, "POST", path);
    EXPECT_EQ(refused.status, 403) << path << " " << refused.body;
    EXPECT_EQ(refused.json(), denied);
  }
  EXPECT_EQ(request(port, "POST", cancel, "", "application/json", {{"Authorization", ""}}).status,
            401);

  const auto boss = e2e::bearer(e2e::register_and_login(port, "boss").access);
  auto cancelled = request(port, "POST", cancel, "", "application/json", boss);
  EXPECT_EQ(cancelled.status, 200) << cancelled.body;
  EXPECT_EQ(cancelled.json().at("status"), "cancelled");
  EXPECT_EQ(request(port, "GET", "/api/v1/translations/" + job + "/").json().at("status"),
            "cancelled");
  auto again = request(port, "POST", cancel, "", "application/json", boss);
  EXPECT_EQ(again.status, 409) << again.body;
  EXPECT_TRUE(again.json().at("detail").is_string());

  auto requeued = request(port, "POST", retry, "", "application/json", boss);
  EXPECT_EQ(requeued.status, 200) << requeued.body;
  EXPECT_EQ(requeued.json().at("status"), "queued");
  EXPECT_EQ(requeued.json().at("attempts"), 0);
  EXPECT_EQ(request(port, "POST", retry, "", "application/json", boss).status, 409);
  EXPECT_EQ(
      request(port, "POST", "/api/v1/translations/999999/retry/", "", "application/json", boss)
          .status,
      404);
}

// The OpenAPI document and its docs page are served from the binary, the page under a strict
// Content-Security-Policy and with every asset it names.
TEST(Observability, ApiDescriptionAndDocsPageAreServed) {
  e2e::Service service(e2e::ServiceOptions{.args = {"--engines", "apertium"}});
  const int port = service.port();
  auto document =
      request(port, "GET", "/api/v1/openapi.json", "", "application/json", {{"Authorization", ""}});
  ASSERT_EQ(document.status, 200);
  EXPECT_TRUE(document.json().at("openapi").as_string().starts_with("3.1"));
  EXPECT_TRUE(document.json().at("paths").as_object().contains("/api/v1/notes/{id}/"));
  auto yaml = request(port, "GET", "/api/v1/openapi.yaml");
  EXPECT_EQ(yaml.status, 200);
  EXPECT_NE(yaml.body.find("openapi: 3.1"), std::string::npos);

  auto page =
      request(port, "GET", "/api/v1/docs/", "", "application/json", {{"Authorization", ""}});
  ASSERT_EQ(page.status, 200);
  const std::string policy = page.header("content-security-policy");
  EXPECT_NE(policy.find("default-src 'none'"), std::string::npos) << policy;
  EXPECT_NE(policy.find("script-src 'self'"), std::string::npos) << policy;
  EXPECT_EQ(policy.find("unsafe-eval"), std::string::npos) << policy;
  EXPECT_EQ(page.body.find("<script>"), std::string::npos) << "inline script: " << page.body;
  // Each script and stylesheet the page names is served, under the same policy.
  std::size_t assets = 0;
  for (const char* attribute : {"src=\"", "href=\""}) {
    for (auto at = page.body.find(attribute); at != std::string::npos;
         at = page.body.find(attribute, at + 1)) {
      const auto start = at + std::string(attribute).size();
      std::string target = page.body.substr(start, page.body.find('"', start) - start);
      if (!target.starts_with("/")) target = "/api/v1/docs/" + target;
      auto asset = request(port, "GET", target);
      EXPECT_EQ(asset.status, 200) << target;
      EXPECT_FALSE(asset.body.empty()) << target;
      EXPECT_EQ(asset.header("content-security-policy"), policy) << target;
      ++assets;
    }
  }
  EXPECT_GE(assets, 2u) << page.body;
  EXPECT_EQ(request(port, "POST", "/api/v1/docs/").status, 405);
  // The web app's page and the assets it names are served the same way (browser_tests drive it).
  auto app = request(port, "GET", "/", "", "application/json", {{"Authorization", ""}});
  ASSERT_EQ(app.status, 200);
  EXPECT_NE(app.header("content-security-policy").find("default-src 'none'"), std::string::npos);
  const auto script = app.body.find("/static/");
  ASSERT_NE(script, std::string::npos) << app.body;
  const std::string asset = app.body.substr(script, app.body.find('"', script) - script);
  auto served = request(port, "GET", asset);
  EXPECT_EQ(served.status, 200) << asset;
  EXPECT_NE(served.header("cache-control").find("immutable"), std::string::npos) << asset;
  EXPECT_EQ(request(port, "OPTIONS", "/").status, 200);
  EXPECT_EQ(request(port, "GET", "/static/no-such-asset.js").status, 404);
  auto options = request(port, "OPTIONS", "/api/v1/docs/docs.js");
  EXPECT_EQ(options.status, 200);
  EXPECT_EQ(options.header("allow"), "GET, HEAD, OPTIONS");
  EXPECT_EQ(request(port, "DELETE", "/api/v1/docs/docs.js").status, 405);
}

}  // namespace
