// Fuzzes JWT decoding and verification (auth/tokens.h, TokenCodec) as simplejwt's checks run on a
// client's token, in three ways chosen by the first byte (its value mod 3):
//   0: the rest is a token as a client sends it (signature, base64url and JSON parsing);
//   1: the rest is a header and a claims JSON, split at the first newline (the header alone when
//      there is none: then the claims follow a standard HS256 header), signed with the codec's
//      key, so that the claim checks behind the signature are reached;
//   2: the rest names a user id: issued tokens must decode to what they were issued for.
// Bit 2 of the first byte picks the type decode() expects (access or refresh).
// Checked: a token that decodes is unexpired, of the expected type, and decodes the same untyped;
// every refusal becomes a clean 401.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "auth/tokens.h"
#include "domain/errors.h"
#include "jwt_support.h"

namespace {

using namespace transnotes;

constexpr std::string_view kStandardHeader = R"({"alg":"HS256","typ":"JWT"})";

void check_decoding(std::string_view token, auth::TokenType expected) {
  const auto& codec = fuzz::token_codec();
  const auth::DecodeResult typed = codec.decode(token, expected);
  const auth::DecodeResult untyped = codec.decode_untyped(token);
  if (typed) {
    const auth::Claims& claims = typed.claims();
    if (claims.token_type != auth::to_string(expected)) __builtin_trap();
    if (claims.exp <= fuzz::kTokenNow || claims.iat > fuzz::kTokenNow) __builtin_trap();
    if (!untyped || untyped.claims().user_id != claims.user_id ||
        untyped.claims().jti != claims.jti || untyped.claims().exp != claims.exp)
      __builtin_trap();
    return;
  }
  for (auto failure :
       {auth::authentication_failure(typed.problem()), auth::token_view_failure(typed.problem())}) {
    try {
      throw failure;
    } catch (const AuthenticationFailed&) {
      fuzz::check_authentication_answer();
    }
  }
}

void check_issued(std::string_view rest, auth::TokenType type) {
  UserId user = 0;
  std::memcpy(&user, rest.data(), std::min(rest.size(), sizeof user));
  const auto& codec = fuzz::token_codec();
  const auth::DecodeResult decoded = codec.decode(codec.issue(user, type), type);
  if (!decoded || decoded.claims().user_id != user) __builtin_trap();
  const auth::TokenPair pair = codec.issue_pair(user);
  const auth::DecodeResult refresh = codec.decode(pair.refresh, auth::TokenType::kRefresh);
  if (!refresh || refresh.claims().user_id != user) __builtin_trap();
  const auth::DecodeResult access =
      codec.decode(codec.issue_access_from(refresh.claims()), auth::TokenType::kAccess);
  if (!access || access.claims().user_id != user || access.claims().jti == refresh.claims().jti)
    __builtin_trap();
  // The other type is refused for what it is.
  const auth::DecodeResult wrong = codec.decode(pair.access, auth::TokenType::kRefresh);
  if (wrong || wrong.problem() != auth::TokenProblem::kWrongType) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto expected = (data[0] & 4) ? auth::TokenType::kRefresh : auth::TokenType::kAccess;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 3) {
    case 0:
      check_decoding(rest, expected);
      break;
    case 1: {
      const auto newline = rest.find('\n');
      const std::string token =
          newline == std::string_view::npos
              ? fuzz::signed_token(kStandardHeader, rest)
              : fuzz::signed_token(rest.substr(0, newline), rest.substr(newline + 1));
      check_decoding(token, expected);
      break;
    }
    default:
      check_issued(rest, expected);
  }
  return 0;
}
