#include "e2e/harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace e2e {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

boost::json::value HttpResult::json() const { return boost::json::parse(body); }

std::string HttpResult::header(const std::string& name) const {
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = headers.find(lower);
  return it == headers.end() ? std::string() : it->second;
}

namespace {
std::mutex tokens_mutex;
std::map<int, std::string> tokens_by_port;

// ---- Exchange log (tests/e2e/response_schema_check.py) -------------------------------------
// With TRANSNOTES_E2E_EXCHANGE_LOG set (ctest sets it), every request() exchange is appended to
// that file as one JSON line, and so is the name of every test that starts, so the check after
// the suite validates each response against docs/openapi.yaml and knows whether the whole suite
// ran. Each line is one write() on an O_APPEND descriptor: the tests' processes and threads
// append to the same file without interleaving.
constexpr std::size_t kMaxRecordedBody = 4 * 1024 * 1024;

const char* exchange_log_path() {
  static const char* path = std::getenv("TRANSNOTES_E2E_EXCHANGE_LOG");
  return path != nullptr && *path != '\0' ? path : nullptr;
}

void append_to_exchange_log(boost::json::object record) {
  const char* path = exchange_log_path();
  if (path == nullptr) return;
  auto line = boost::json::serialize(record);
  line += '\n';
  static std::mutex write_mutex;
  std::lock_guard lock(write_mutex);
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    ADD_FAILURE() << "cannot open the exchange log " << path;
    return;
  }
  const auto written = ::write(fd, line.data(), line.size());
  ::close(fd);
  if (written != static_cast<ssize_t>(line.size())) {
    ADD_FAILURE() << "short write to the exchange log " << path;
  }
}

std::string current_test_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return info == nullptr ? std::string()
                         : std::string(info->test_suite_name()) + "." + info->name();
}

void record_exchange(const std::string& method, const std::string& target,
                     const HttpResult& result) {
  if (exchange_log_path() == nullptr) return;
  boost::json::object record{{"kind", "exchange"},
                             {"test", current_test_name()},
                             {"method", method},
                             {"target", target},
                             {"status", result.status},
                             {"content_type", result.header("content-type")},
                             {"body_size", result.body.size()}};
  // Only JSON bodies are validated; the docs page's scripts need not travel through the log.
  boost::json::object headers;
  for (const auto& [name, value] : result.headers) headers[name] = value;
  record["headers"] = std::move(headers);
  const bool json = result.header("content-type").find("json") != std::string::npos;
  if (json && result.body.size() <= kMaxRecordedBody) record["body"] = result.body;
  append_to_exchange_log(std::move(record));
}

class TestStartRecorder : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo& info) override {
    append_to_exchange_log(
        {{"kind", "test"}, {"test", std::string(info.test_suite_name()) + "." + info.name()}});
  }
};

// Registered before gtest's main runs; the listener list takes ownership.
[[maybe_unused]] const bool test_start_recorder_registered = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new TestStartRecorder);
  return true;
}();
}  // namespace

std::string default_token(int port) {
  std::lock_guard lock(tokens_mutex);
  auto it = tokens_by_port.find(port);
  return it == tokens_by_port.end() ? std::string() : it->second;
}

void set_default_token(int port, const std::string& access_token) {
  std::lock_guard lock(tokens_mutex);
  if (access_token.empty()) {
    tokens_by_port.erase(port);
  } else {
    tokens_by_port[port] = access_token;
  }
}

std::vector<std::pair<std::string, std::string>> bearer(const std::string& access_token) {
  return {{"Authorization", "Bearer " + access_token}};
}

Tokens register_and_login(int port, const std::string& username, const std::string& password) {
  const auto credentials =
      boost::json::serialize(boost::json::object{{"username", username}, {"password", password}});
  // No default token on these: the account routes need none.
  const std::vector<std::pair<std::string, std::string>> anonymous{{"Authorization", ""}};
  auto registered =
      request(port, "POST", "/api/v1/auth/register/", credentials, "application/json", anonymous);
  if (registered.status != 201 && registered.body.find("already exists") == std::string::npos) {
    ADD_FAILURE() << "register " << username << ": " << registered.status << " " << registered.body;
    return {};
  }
  auto login =
      request(port, "POST", "/api/v1/auth/token/", credentials, "application/json", anonymous);
  if (login.status != 200) {
    ADD_FAILURE() << "login " << username << ": " << login.status << " " << login.body;
    return {};
  }
  auto body = login.json().as_object();
  return {std::string(body.at("access").as_string()), std::string(body.at("refresh").as_string())};
}

HttpResult request(int port, const std::string& method, const std::string& target,
                   const std::string& body, const std::string& content_type,
                   const std::vector<std::pair<std::string, std::string>>& extra_headers) {
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.expires_after(std::chrono::seconds(60));
  stream.connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  bhttp::request<bhttp::string_body> req(bhttp::string_to_verb(method), target, 11);
  if (req.method() == bhttp::verb::unknown) req.method_string(method);
  req.set(bhttp::field::host, "127.0.0.1:" + std::to_string(port));
  if (!body.empty() && !content_type.empty()) req.set(bhttp::field::content_type, content_type);
  bool names_authorization = false;
  for (const auto& [k, v] : extra_headers) {
    if (beast::iequals(k, "Authorization")) {
      names_authorization = true;
      if (v.empty()) continue;  // "": explicitly anonymous
    }
    req.set(k, v);
  }
  if (!names_authorization) {
    if (auto token = default_token(port); !token.empty()) {
      req.set(bhttp::field::authorization, "Bearer " + token);
    }
  }
  req.body() = body;
  req.prepare_payload();
  beast::error_code write_error;
  bhttp::write(stream, req, write_error);  // the server may answer early (413) and stop reading
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  if (method == "HEAD") parser.skip(true);
  bhttp::read(stream, buffer, parser);
  auto& res = parser.get();
  HttpResult out;
  out.status = res.result_int();
  out.body = res.body();
  for (const auto& field : res) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.headers[name] = std::string(field.value());
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  record_exchange(method, target, out);
  return out;
}

std::string raw_exchange(int port, const std::string& bytes) {
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  boost::system::error_code ec;
  asio::write(socket, asio::buffer(bytes), ec);
  std::string out;
  char buf[4096];
  // Read until the server closes or a complete short answer has arrived.
  struct timeval tv {
    10, 0
  };
  setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (;;) {
    std::size_t n = socket.read_some(asio::buffer(buf), ec);
    if (ec || n == 0) break;
    out.append(buf, n);
    if (out.find("\r\n\r\n") != std::string::npos) {
      auto cl = out.find("Content-Length: ");
      auto header_end = out.find("\r\n\r\n");
      if (cl != std::string::npos) {
        std::size_t length = std::stoul(out.substr(cl + 16));
        if (out.size() >= header_end + 4 + length) break;
      }
    }
  }
  return out;
}

std::string make_temp_dir(const std::string& prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  return buf.data();
}

std::string database_url_for(const std::string& backend) {
  if (backend == "sqlite") return "";
  const char* base = std::getenv("TRANSNOTES_TEST_DATABASE_URL");
  if (!base) return "";
  static std::mt19937_64 rng{std::random_device{}()};
  std::string schema = "e2e_" + std::to_string(rng() % 1'000'000'000'000ULL);
  std::string url = base;
  url += (url.find('?') == std::string::npos ? "?" : "&");
  return url + "schema=" + schema;
}

Service::Service(ServiceOptions options) : options_(std::move(options)) {
  data_dir_ = options_.data_dir.empty() ? make_temp_dir("transnotes-e2e") : options_.data_dir;
  log_path_ = data_dir_ + "/service-" + std::to_string(std::random_device{}()) + ".log";
  std::string stdout_path = log_path_ + ".out";
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int out = open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    dup2(err, 2);
    setenv("TRANSNOTES_DATA_DIR", data_dir_.c_str(), 1);
    setenv("SECRET_KEY", kTestSecretKey, 1);
    for (const auto& [k, v] : options_.env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<std::string> args{TRANSNOTES_BINARY, options_.subcommand};
    if (options_.subcommand == "serve") {
      args.insert(args.end(), {"--host", "127.0.0.1", "--port", "0", "--auth", options_.auth});
    }
    args.insert(args.end(), options_.args.begin(), options_.args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  // Wait for the "listening on" (or "worker ready") line.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(stdout_path);
    std::string line;
    while (std::getline(in, line)) {
      if (line.starts_with("listening on ")) {
        port_ = std::stoi(line.substr(line.rfind(':') + 1));
        set_default_token(port_, {});  // a port may be reused by a later service
        if (options_.auth == "jwt")
          set_default_token(port_, register_and_login(port_, kTestUser).access);
        return;
      }
      if (line.starts_with("worker ready")) return;
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("transnotes exited during start-up:\n" + log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("transnotes did not start in time:\n" + log());
}

void Service::expect_no_server_errors() const {
  if (pid_ <= 0 || port_ == 0 || options_.subcommand != "serve" || options_.allow_server_errors) {
    return;
  }
  HttpResult metrics;
  try {
    metrics = request(port_, "GET", "/metrics");
  } catch (const std::exception& e) {
    ADD_FAILURE() << "could not read /metrics to count 5xx answers: " << e.what();
    return;
  }
  if (metrics.body.find("# TYPE http_requests_total counter\n") == std::string::npos) {
    ADD_FAILURE() << "no http_requests_total in /metrics:\n" << metrics.body;
    return;
  }
  // Sum http_requests_total{code="5..",...} over every method and route.
  long long count = 0;
  std::istringstream lines(metrics.body);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("http_requests_total{") || line.find("code=\"5") == std::string::npos) {
      continue;
    }
    count += std::stoll(line.substr(line.rfind(' ') + 1));
  }
  EXPECT_EQ(count, 0) << "the service answered " << count << " request(s) with 5xx; its log:\n"
                      << log();
}

Service::~Service() {
  expect_no_server_errors();
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

void Service::kill_hard() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

int Service::terminate() {
  if (pid_ <= 0) return -1;
  expect_no_server_errors();
  ::kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

std::string Service::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::int64_t translate_new_note(int port, const std::string& text, const std::string& target) {
  auto note =
      request(port, "POST", "/api/v1/notes/",
              boost::json::serialize(boost::json::object{{"title", "n"}, {"original_text", text}}));
  EXPECT_EQ(note.status, 201) << note.body;
  const auto id = note.json().at("id").as_int64();
  auto res = request(port, "POST", "/api/v1/notes/" + std::to_string(id) + "/translate/",
                     boost::json::serialize(boost::json::object{{"target_language", target}}));
  EXPECT_EQ(res.status, 202) << res.body;
  return res.json().at("translation").at("id").as_int64();
}

CommandResult run_command(const std::string& command_line) {
  CommandResult result;
  FILE* pipe = popen(command_line.c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) result.output.append(buf, n);
  const int status = pclose(pipe);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

boost::json::object wait_for_job(int port, std::int64_t job_id, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  boost::json::object job;
  while (std::chrono::steady_clock::now() < deadline) {
    auto res = request(port, "GET", "/api/v1/translations/" + std::to_string(job_id) + "/");
    if (res.status == 200) {
      job = res.json().as_object();
      auto status = job["status"].as_string();
      if (status == "succeeded" || status == "failed") return job;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return job;
}

}  // namespace e2e
