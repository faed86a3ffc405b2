// Test harness: starts the real `transnotes` binary as a child process on a free port and talks
// HTTP to it over a real socket.
#pragma once

#include <boost/json.hpp>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace e2e {

struct HttpResult {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  boost::json::value json() const;
  std::string header(const std::string& name) const;
};

// One HTTP/1.1 request on a fresh connection. When a Service on `port` logged in its test user
// (see ServiceOptions::auth) and `extra_headers` name no Authorization, the request carries that
// user's Bearer token, so tests written for the open API run unchanged with auth on.
// With TRANSNOTES_E2E_EXCHANGE_LOG set (ctest does), the exchange is also appended to that file,
// whose responses tests/e2e/response_schema_check.py validates against docs/openapi.yaml after
// the suite.
HttpResult request(int port, const std::string& method, const std::string& target,
                   const std::string& body = "",
                   const std::string& content_type = "application/json",
                   const std::vector<std::pair<std::string, std::string>>& extra_headers = {});

// Sends raw bytes and returns whatever the server answers before closing (for malformed input).
std::string raw_exchange(int port, const std::string& bytes);

struct ServiceOptions {
  std::vector<std::string> args{};           // after "serve"
  std::map<std::string, std::string> env{};  // added to the environment
  std::string data_dir{};                    // default: a fresh temp dir
  std::string subcommand = "serve";
  // A serve process must never answer 5xx: before it is stopped the harness reads its 5xx counter
  // from /metrics and fails the test unless it is 0. Tests that cause outages on purpose (503)
  // set this.
  bool allow_server_errors = false;
  // serve's --auth. With "jwt" the harness registers (once per database) and logs in the test
  // user kTestUser, whose token request() then sends to this service by default.
  std::string auth = "jwt";
};

// The user every jwt-mode Service logs in, and its password.
inline constexpr const char* kTestUser = "e2e-tester";
inline constexpr const char* kTestPassword = "Correct-Horse-Battery-27";
// SECRET_KEY given to every Service unless a test sets its own: processes of one test (two API
// processes against one database) then accept each other's tokens.
inline constexpr const char* kTestSecretKey = "e2e-secret-key-0123456789abcdef0123456789abcdef";

// The token request() sends to `port` by default ("" for none), and a way to change it.
std::string default_token(int port);
void set_default_token(int port, const std::string& access_token);

// Registers `username` (ignoring "already exists") and logs in; returns {access, refresh}.
// Fails the test when either step fails otherwise.
struct Tokens {
  std::string access;
  std::string refresh;
};
Tokens register_and_login(int port, const std::string& username,
                          const std::string& password = kTestPassword);
// {"Authorization": "Bearer <access>"} for extra_headers.
std::vector<std::pair<std::string, std::string>> bearer(const std::string& access_token);

class Service {
 public:
  explicit Service(ServiceOptions options);
  ~Service();  // SIGTERM, then SIGKILL after a grace period
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& data_dir() const { return data_dir_; }
  void kill_hard();         // SIGKILL, no cleanup (crash simulation)
  int terminate();          // SIGTERM and wait; returns the exit status
  std::string log() const;  // combined stderr so far
  // Fails the current test when the service has answered any 5xx so far (see ServiceOptions).
  void expect_no_server_errors() const;

 private:
  ServiceOptions options_;
  std::string data_dir_;
  std::string log_path_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// A fresh empty temporary directory.
std::string make_temp_dir(const std::string& prefix);

// The database URL for the backend under test: "" for the embedded SQLite default, or a
// PostgreSQL URL with a fresh schema.
std::string database_url_for(const std::string& backend);

// Creates a note with `text` and asks for its translation to `target`; returns the job id.
std::int64_t translate_new_note(int port, const std::string& text,
                                const std::string& target = "es");

// Runs a shell command line and collects its standard output (redirect stderr in the command
// to see it too). exit_code is -1 when the command did not exit normally (a crash).
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult run_command(const std::string& command_line);

// Polls GET /api/v1/translations/{id}/ until the job is finished or the timeout passes.
boost::json::object wait_for_job(int port, std::int64_t job_id,
                                 std::chrono::seconds timeout = std::chrono::seconds(60));

}  // namespace e2e
