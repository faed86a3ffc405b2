// `transnotes users create|list|delete|set-password|set-admin`: the operator's account commands,
// and the secret key that signs tokens. Passwords come from stdin or a prompt, never from argv
// (which every local user can read in /proc).
#pragma once

#include <iosfwd>
#include <string>

#include "app/config.h"

namespace transnotes::app {

// The key that signs tokens: SECRET_KEY when set (at least 32 bytes); without it, production
// (PostgreSQL) refuses to start (ConfigError), and the embedded default reads — or creates, mode
// 0600 — `secret_key` in the data directory, so tokens survive restarts.
std::string resolve_secret_key(const Config& config);

struct UserCommand {
  std::string action;  // create | list | delete | set-password | set-admin | adopt-open-notes
  std::string username;
  std::string email;
  // create: the new user administers every user's translation jobs (User::is_staff).
  // set-admin: the value to set (false for --off).
  bool admin = false;
};

// Runs one users command. The password is read from `in`: prompted twice without echo when
// `in` is a terminal, else its first line. Returns the exit code (0 ok, 1 refused or failed,
// 2 unknown command).
int run_users(const Config& config, const UserCommand& command, std::istream& in, std::ostream& out,
              std::ostream& err);

}  // namespace transnotes::app
