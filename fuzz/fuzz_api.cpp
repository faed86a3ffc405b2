// Fuzzes the whole API as the HTTP server hands it requests (api/api.h, Api::handle): the real
// route table, Host and query parsing, bodies, Bearer authentication and the token routes, and
// every use case behind them, over a real SQLite store (a file in the fuzz scratch folder), the
// in-process cache and job bus. No translation runs: nothing consumes the bus.
//
// Input, as text: "METHOD TARGET\n", "Name: value\n" header lines, an empty line, then the body.
// A first byte of '!' (skipped) sends the request to the API with accounts (JWT), else to the
// open one. "$ACCESS" and "$REFRESH" anywhere are replaced by a fresh token pair of the one
// registered user, so that the fuzzer reaches what lies behind authentication.
//
// Checked (README: "No client input produces a 500"): never a 500, and a JSON answer is valid
// UTF-8 JSON.
#include <algorithm>
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "api/api.h"
#include "auth/account_service.h"
#include "auth/password_policy.h"
#include "auth/passwords.h"
#include "auth/tokens.h"
#include "cache/memory_cache.h"
#include "domain/note_service.h"
#include "domain/text.h"
#include "fuzz_support.h"
#include "jwt_support.h"
#include "queue/memory_bus.h"
#include "storage/storage.h"

namespace {

using namespace transnotes;

// The pairs the API accepts translate requests for; nothing here translates.
class EnglishSpanish final : public Translator {
 public:
  std::vector<SupportedPair> pairs() const override {
    return {{{"en", "es"}, "fuzz"}, {{"es", "en"}, "fuzz"}};
  }
  std::optional<std::string> engine_for(const std::string& source,
                                        const std::string& target) const override {
    if ((source == "en" && target == "es") || (source == "es" && target == "en")) return "fuzz";
    return std::nullopt;
  }
  using Translator::translate;
  TranslationOutput translate(const std::string&, const std::string&, const std::string& text,
                              const std::function<bool()>&) override {
    return {text, "fuzz"};
  }
};

struct Service {
  std::unique_ptr<Store> store;
  cache::MemoryNoteCache cache;
  queue::MemoryJobBus bus;
  EnglishSpanish translator;
  std::unique_ptr<NoteService> notes;
  auth::PasswordPolicy policy;
  auth::PasswordHashing hashing = auth::PasswordHashing::fast_for_tests();
  std::unique_ptr<auth::AccountService> accounts;
  std::unique_ptr<api::Api> open_api;
  std::unique_ptr<api::Api> jwt_api;
  UserId user = 0;

  Service() {
    storage::StorageConfig config;
    config.database_url = "sqlite:///" + (fuzz::scratch_dir() / "notes.db").string();
    store = storage::open_store(config);
    store->migrate();
    notes = std::make_unique<NoteService>(*store, cache, bus, translator, api::render_note);
    // Not the codec of jwt_support.h: that one signs for a fixed instant, and the API checks
    // tokens against the real clock.
    codec = std::make_unique<auth::TokenCodec>(std::string(fuzz::kTokenKey));
    accounts = std::make_unique<auth::AccountService>(*store, *codec, policy, hashing);
    user = accounts->register_user("fuzzer", "correct horse battery staple", "fuzz@example.com").id;
    api::ApiOptions open_options;
    open_options.auth_mode = api::AuthMode::kOpen;
    open_api = std::make_unique<api::Api>(api::ApiServices{*notes}, open_options);
    api::ApiOptions jwt_options;
    jwt_options.auth_mode = api::AuthMode::kJwt;
    jwt_api = std::make_unique<api::Api>(
        api::ApiServices{*notes, accounts.get(), nullptr, store.get()}, jwt_options);
  }
  std::unique_ptr<auth::TokenCodec> codec;
};

Service& service() {
  static Service* running = new Service();  // never destroyed: libFuzzer exits from anywhere
  return *running;
}

void replace_all(std::string& text, std::string_view from, const std::string& to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
}

http::Request request_from(std::string text, const auth::TokenPair& tokens) {
  replace_all(text, "$ACCESS", tokens.access);
  replace_all(text, "$REFRESH", tokens.refresh);
  http::Request request;
  request.remote_address = "127.0.0.1";
  std::string_view rest = text;
  auto take_line = [&rest] {
    const auto end = std::min(rest.find('\n'), rest.size());
    const std::string_view line = rest.substr(0, end);
    rest.remove_prefix(std::min(end + 1, rest.size()));
    return line;
  };
  const std::string_view line = take_line();
  const auto space = std::min(line.find(' '), line.size());
  request.method = line.substr(0, space);
  request.target = line.substr(std::min(space + 1, line.size()));
  while (!rest.empty()) {
    const std::string_view header = take_line();
    if (header.empty()) break;
    const auto colon = header.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = header.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    request.headers.emplace_back(header.substr(0, colon), value);
  }
  request.body = rest;
  return request;
}

// Says what went wrong (bytes outside printable ASCII escaped), for the reproducer's reader.
[[noreturn]] void fail(const http::Request& request, const http::Response& response,
                       const char* what) {
  auto shown = [](std::string_view text) {
    std::string out;
    for (unsigned char c : text.substr(0, 300)) {
      if (c >= 0x20 && c < 0x7f) {
        out += static_cast<char>(c);
      } else {
        char escaped[8];
        std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
        out += escaped;
      }
    }
    return out;
  };
  std::fprintf(stderr, "fuzz_api: %s %s answered %s: %d %s\n", shown(request.method).c_str(),
               shown(request.target).c_str(), what, response.status, shown(response.body).c_str());
  __builtin_trap();
}

// What the HTTP layer (Beast's parser) lets through to the API: a method of token characters, a
// target without controls or spaces, header names of token characters and values without
// controls but tabs. Anything else never reaches Api::handle from a client.
bool is_token_char(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}
bool is_token(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return is_token_char(static_cast<unsigned char>(c));
  });
}
bool http_can_deliver(const http::Request& request) {
  if (!is_token(request.method) || request.target.empty()) return false;
  for (unsigned char c : request.target)
    if (c <= 0x20 || c == 0x7f) return false;
  for (const auto& [name, value] : request.headers) {
    if (!is_token(name)) return false;
    for (unsigned char c : value)
      if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& s = service();
  std::string text(reinterpret_cast<const char*>(data), size);
  const bool with_accounts = !text.empty() && text.front() == '!';
  if (with_accounts) text.erase(0, 1);
  // A new pair each time: the fuzzer may have blacklisted the last refresh token.
  const http::Request request = request_from(std::move(text), s.codec->issue_pair(s.user));
  if (!http_can_deliver(request)) return 0;
  const http::Response response = (with_accounts ? s.jwt_api : s.open_api)->handle(request);
  if (response.status == 500) fail(request, response, "a 500");
  if (response.content_type == "application/json" && !response.body.empty()) {
    if (!is_valid_utf8(response.body)) fail(request, response, "JSON that is not UTF-8");
    boost::system::error_code ec;
    boost::json::parse(response.body, ec);
    if (ec) fail(request, response, "malformed JSON");
  }
  return 0;
}
