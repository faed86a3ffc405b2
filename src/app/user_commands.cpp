#include "app/user_commands.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "app/accounts.h"
#include "auth/account_service.h"
#include "auth/tokens.h"
#include "domain/errors.h"

namespace transnotes::app {

namespace {

// HS256's key should be at least as long as its output; the codec refuses shorter ones.
constexpr std::size_t kMinSecretKeyBytes = auth::TokenCodec::kMinKeyLength;
constexpr const char* kSecretKeyFile = "secret_key";

std::string random_hex(std::size_t bytes) {
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  std::string raw(bytes, '\0');
  if (!urandom.read(raw.data(), static_cast<std::streamsize>(bytes))) {
    throw ConfigError("cannot read /dev/urandom to generate a secret key");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes * 2);
  for (unsigned char byte : raw) {
    hex += kHex[byte >> 4];
    hex += kHex[byte & 0xf];
  }
  return hex;
}

std::string read_key_file(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::string key((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  return key;
}

// Reads a password without echoing it when `in` is the terminal; otherwise its next line.
std::string read_password(std::istream& in, std::ostream& err, const char* prompt) {
  const bool terminal = &in == &std::cin && ::isatty(STDIN_FILENO);
  termios saved{};
  if (terminal) {
    err << prompt << std::flush;
    ::tcgetattr(STDIN_FILENO, &saved);
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string password;
  const bool got = static_cast<bool>(std::getline(in, password));
  if (terminal) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    err << "\n";
  }
  if (!got) throw Error("no password given on stdin");
  if (!password.empty() && password.back() == '\r') password.pop_back();
  return password;
}

std::string new_password(std::istream& in, std::ostream& err) {
  std::string password = read_password(in, err, "Password: ");
  if (&in == &std::cin && ::isatty(STDIN_FILENO)) {
    if (read_password(in, err, "Password (again): ") != password) {
      throw Error("the two passwords differ");
    }
  }
  return password;
}

void print_validation(const ValidationError& e, std::ostream& err) {
  for (const auto& [field, messages] : e.errors()) {
    for (const auto& message : messages) err << "transnotes: " << field << ": " << message << "\n";
  }
}

}  // namespace

std::string resolve_secret_key(const Config& config) {
  if (!config.secret_key.empty()) {
    if (config.secret_key.size() < kMinSecretKeyBytes) {
      throw ConfigError("SECRET_KEY must be at least 32 bytes long (it signs every token)");
    }
    return config.secret_key;
  }
  if (config.is_production()) {
    throw ConfigError(
        "SECRET_KEY is not set: production (PostgreSQL) needs one of at least 32 bytes, the same "
        "on every API process");
  }
  const auto path = std::filesystem::path(config.data_dir) / kSecretKeyFile;
  std::filesystem::create_directories(config.data_dir);
  // O_EXCL: of two processes starting at once, one writes the key and the other reads it.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    const std::string key = random_hex(32);
    const std::string line = key + "\n";
    const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    const bool synced = ::fsync(fd) == 0;
    ::close(fd);
    if (!written || !synced) {
      std::filesystem::remove(path);
      throw ConfigError("cannot write " + path.string());
    }
    return key;
  }
  if (errno != EEXIST) {
    throw ConfigError("cannot create " + path.string() + ": " + std::strerror(errno));
  }
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0 && (info.st_mode & 077) != 0) {
    throw ConfigError(path.string() + " must not be readable by others (chmod 600 it)");
  }
  std::string key = read_key_file(path);
  if (key.size() < kMinSecretKeyBytes) {
    throw ConfigError(path.string() +
                      " holds no usable key (at least 32 bytes); remove it to "
                      "generate a new one");
  }
  return key;
}

int run_users(const Config& config, const UserCommand& command, std::istream& in, std::ostream& out,
              std::ostream& err) {
  auto accounts = open_accounts(config);
  auto& service = *accounts.service;
  try {
    if (command.action == "list") {
      for (const auto& user : service.list_users()) {
        out << user.id << "\t" << user.username << "\t" << user.email << "\t"
            << (user.is_active ? "active" : "inactive") << "\t" << (user.is_staff ? "admin" : "-")
            << "\t" << format_timestamp(user.date_joined) << "\n";
      }
      return 0;
    }
    if (command.action == "create") {
      const std::string password = new_password(in, err);
      User user = service.create_user(command.username, password, command.email);
      if (command.admin && !accounts.owned_store->set_staff(user.id, true)) {
        // Deleted between the two statements by another command: nothing left to make admin.
        err << "transnotes: user " << user.username << " was removed before becoming an admin\n";
        return 1;
      }
      out << "created " << (command.admin ? "admin " : "user ") << user.username << " (id "
          << user.id << ")\n";
      return 0;
    }
    if (command.action == "set-admin") {
      const auto user = accounts.owned_store->find_user(command.username);
      if (!user || !accounts.owned_store->set_staff(user->id, command.admin)) {
        err << "transnotes: no user named " << command.username << "\n";
        return 1;
      }
      out << user->username << (command.admin ? " is now an admin" : " is no longer an admin")
          << "\n";
      return 0;
    }
    if (command.action == "delete") {
      if (!service.delete_user(command.username)) {
        err << "transnotes: no user named " << command.username << "\n";
        return 1;
      }
      out << "deleted user " << command.username << " and their notes\n";
      return 0;
    }
    if (command.action == "adopt-open-notes") {
      const auto moved = service.adopt_open_notes(command.username);
      out << moved << " note" << (moved == 1 ? "" : "s") << " given to " << command.username
          << "\n";
      return 0;
    }
    if (command.action == "set-password") {
      const std::string password = new_password(in, err);
      service.set_password(command.username, password);
      out << "password changed for " << command.username << "\n";
      return 0;
    }
  } catch (const ValidationError& e) {
    print_validation(e, err);
    return 1;
  } catch (const NotFound&) {
    err << "transnotes: no user named " << command.username << "\n";
    return 1;
  }
  err << "transnotes: unknown users command '" << command.action << "'\n";
  return 2;
}

}  // namespace transnotes::app
