// Fuzzes the Authorization header as the API reads it before any handler runs: the raw token as
// simplejwt's get_raw_token finds it (auth::raw_token_from_authorization), then the access token's
// check (TokenCodec::decode), and the 401 each refusal becomes.
//
// Input: the header's value.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "auth/tokens.h"
#include "domain/errors.h"
#include "jwt_support.h"

namespace {

using namespace transnotes;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view header(reinterpret_cast<const char*>(data), size);
  try {
    const auto token = auth::raw_token_from_authorization(header);
    if (!token) return 0;  // anonymous
    // The token is one word of the header itself, after "Bearer".
    if (token->empty() || token->data() < header.data() ||
        token->data() + token->size() > header.data() + header.size())
      __builtin_trap();
    for (char c : *token)
      if (is_space(c)) __builtin_trap();
    if (header.find("Bearer") == std::string_view::npos) __builtin_trap();
    const auth::DecodeResult decoded = fuzz::token_codec().decode(*token, auth::TokenType::kAccess);
    if (decoded) return 0;
    throw auth::authentication_failure(decoded.problem());
  } catch (const AuthenticationFailed&) {
    fuzz::check_authentication_answer();
  }
  return 0;
}
