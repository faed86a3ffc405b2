#include "e2e/fault_services.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <stdexcept>
#include <thread>
#include <vector>

#include "e2e/harness.h"

namespace faults {

namespace {

int connect_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

bool redis_answers_ping(int port) {
  int fd = connect_loopback(port);
  if (fd < 0) return false;
  const char ping[] = "PING\r\n";
  bool ok = ::write(fd, ping, sizeof ping - 1) == static_cast<ssize_t>(sizeof ping - 1);
  char buf[16] = {};
  ok = ok && ::read(fd, buf, sizeof buf - 1) > 0 && std::string(buf).starts_with("+PONG");
  ::close(fd);
  return ok;
}

bool running_as_root() { return ::geteuid() == 0; }

}  // namespace

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::runtime_error("free_port: cannot bind");
  }
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool process_alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content;
  if (!std::getline(stat, content)) return false;
  // "pid (comm) S ...": the state follows the last ')'.
  auto close = content.rfind(')');
  if (close == std::string::npos || close + 2 >= content.size()) return false;
  char state = content[close + 2];
  return state != 'Z' && state != 'X';
}

std::optional<int> terminate_within(e2e::Service& service, std::chrono::seconds limit) {
  pid_t pid = service.pid();
  auto waiting = std::async(std::launch::async, [&service] { return service.terminate(); });
  if (waiting.wait_for(limit) == std::future_status::ready) return waiting.get();
  ::kill(pid, SIGKILL);  // terminate() is blocked in waitpid on this pid, which is not reaped yet
  waiting.wait();
  return std::nullopt;
}

// ---- Redis ----

bool RedisServer::available() { return std::system("command -v redis-server >/dev/null") == 0; }

RedisServer::RedisServer() : dir_(e2e::make_temp_dir("transnotes-redis")), port_(free_port()) {
  start();
}

RedisServer::~RedisServer() {
  kill();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void RedisServer::start() {
  if (pid_ > 0) return;
  std::string log = dir_ + "/redis.log";
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(out, 1);
    dup2(out, 2);
    std::string port = std::to_string(port_);
    std::vector<std::string> args{"redis-server", "--port",           port, "--bind",
                                  "127.0.0.1",    "--save",           "",   "--appendonly",
                                  "no",           "--daemonize",      "no", "--dir",
                                  dir_,           "--protected-mode", "no"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp("redis-server", argv.data());
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (redis_answers_ping(port_)) return;
    if (!process_alive(pid_)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill();
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  throw std::runtime_error("redis-server did not start on port " + std::to_string(port_) + ":\n" +
                           text);
}

void RedisServer::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::string RedisServer::url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }

// ---- PostgreSQL ----

std::string PostgresServer::bin_dir() {
  if (const char* env = std::getenv("TRANSNOTES_TEST_PG_BIN"); env && *env) return env;
  std::string best;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    auto bin = entry.path() / "bin";
    if (std::filesystem::exists(bin / "pg_ctl") && bin.string() > best) best = bin.string();
  }
  return best;
}

PostgresServer::PostgresServer()
    : bin_(bin_dir()), dir_(e2e::make_temp_dir("transnotes-pg")), port_(free_port()) {
  if (bin_.empty()) throw std::runtime_error("PostgreSQL is not installed");
  if (running_as_root()) {
    passwd* pw = getpwnam("postgres");
    if (!pw) throw std::runtime_error("no postgres user to run PostgreSQL as");
    if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      throw std::runtime_error("cannot chown " + dir_);
    }
  }
  run_as_postgres(bin_ + "/initdb -D " + dir_ + "/pg -U postgres -A trust -E UTF8 --no-locale >" +
                  dir_ + "/initdb.log 2>&1");
  start();
}

PostgresServer::~PostgresServer() {
  if (running_) {
    try {
      run_as_postgres(bin_ + "/pg_ctl -D " + dir_ + "/pg -m immediate -w stop >/dev/null 2>&1");
    } catch (const std::exception&) {
    }
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void PostgresServer::run_as_postgres(const std::string& command) const {
  std::string full = (running_as_root() ? "runuser -u postgres -- " : "") + command;
  int rc = std::system(full.c_str());
  if (rc != 0) throw std::runtime_error("command failed (" + std::to_string(rc) + "): " + full);
}

void PostgresServer::start() {
  if (running_) return;
  run_as_postgres(bin_ + "/pg_ctl -D " + dir_ + "/pg -l " + dir_ + "/pg.log -w -t 30 -o \"-p " +
                  std::to_string(port_) + " -k " + dir_ +
                  " -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100\" start "
                  ">/dev/null");
  running_ = true;
}

void PostgresServer::stop() {
  if (!running_) return;
  run_as_postgres(bin_ + "/pg_ctl -D " + dir_ + "/pg -m fast -w -t 30 stop >/dev/null");
  running_ = false;
}

std::string PostgresServer::url(const std::string& schema) const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/postgres?schema=" + schema;
}

}  // namespace faults
