// Shared by fuzz_jwt and fuzz_authorization: one TokenCodec with a fixed key and a fixed clock (so
// that a seed token stays valid, and a run is repeatable), and an HS256 signer for tokens whose
// header and claims the fuzzer writes.
#pragma once

#include <sodium.h>

#include <boost/json.hpp>
#include <chrono>
#include <string>
#include <string_view>

#include "api/error_mapping.h"
#include "auth/tokens.h"
#include "http/server.h"

namespace transnotes::fuzz {

// The corpus's tokens are signed with this key for this instant (fuzz/README.md).
inline constexpr std::string_view kTokenKey = "transnotes-fuzz-secret-key-0123456789abcdef";
inline constexpr std::int64_t kTokenNow = 1'800'000'000;

inline const auth::TokenCodec& token_codec() {
  static const auth::TokenCodec codec(
      std::string(kTokenKey), std::chrono::minutes(5), std::chrono::hours(24),
      [] { return std::chrono::system_clock::time_point(std::chrono::seconds(kTokenNow)); });
  return codec;
}

inline std::string base64url(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = static_cast<unsigned char>(bytes[i]) << 16 |
                       static_cast<unsigned char>(bytes[i + 1]) << 8 |
                       static_cast<unsigned char>(bytes[i + 2]);
    for (int shift : {18, 12, 6, 0}) out += kAlphabet[(v >> shift) & 63];
  }
  if (i + 1 == bytes.size()) {
    const unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (i + 2 == bytes.size()) {
    const unsigned v =
        static_cast<unsigned char>(bytes[i]) << 16 | static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

// "header.payload.signature" with a valid HS256 signature under kTokenKey, whatever the two hold.
inline std::string signed_token(std::string_view header, std::string_view payload) {
  std::string token = base64url(header) + "." + base64url(payload);
  crypto_auth_hmacsha256_state state;
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(kTokenKey.data()),
                              kTokenKey.size());
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(token.data()),
                                token.size());
  crypto_auth_hmacsha256_final(&state, mac);
  return token + "." + base64url(std::string_view(reinterpret_cast<const char*>(mac), sizeof mac));
}

// Answers the exception being handled as the API would and checks the answer: a 401 whose body
// is JSON and names a challenge. Call only inside a catch block.
inline void check_authentication_answer() {
  const http::Request request;
  const http::Response response = api::error_response(request);
  if (response.status != 401) __builtin_trap();
  boost::system::error_code ec;
  boost::json::parse(response.body, ec);
  if (ec) __builtin_trap();
  bool challenge = false;
  for (const auto& [name, value] : response.headers) challenge |= name == "WWW-Authenticate";
  if (!challenge) __builtin_trap();
}

}  // namespace transnotes::fuzz
