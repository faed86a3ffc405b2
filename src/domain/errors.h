// The typed errors of transnotes: the one vocabulary every layer throws. Each names what went
// wrong, not how to answer it; src/api/error_mapping.cpp is the one place that turns them into
// HTTP status codes and DRF-shaped bodies. Every message is safe to show to clients: it never
// carries bytes a client sent unless they were checked to be valid UTF-8.
#pragma once

#include <chrono>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace transnotes {

// Anything else: a bug or a misconfiguration (maps to 500 and is logged).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Some fields of the input are invalid: DRF's `{"field": ["message", ...]}`.
class ValidationError : public Error {
 public:
  using FieldErrors = std::map<std::string, std::vector<std::string>>;
  explicit ValidationError(FieldErrors errors)
      : Error("validation failed"), errors_(std::move(errors)) {}
  ValidationError(const std::string& field, const std::string& message)
      : ValidationError(FieldErrors{{field, {message}}}) {}
  const FieldErrors& errors() const { return errors_; }

 private:
  FieldErrors errors_;
};

// The request as a whole cannot be served as asked; the message explains why.
class BadRequest : public Error {
 public:
  using Error::Error;
};

// The system of record refused a value it cannot hold (e.g. text that is not UTF-8 in a
// PostgreSQL text column). Storage says this in its own terms; the API answers it like a
// BadRequest. The domain's own validation normally refuses such values first.
class InvalidValue : public BadRequest {
 public:
  using BadRequest::BadRequest;
};

// A body that cannot be read in its declared format ("JSON parse error - ...").
class MalformedBody : public BadRequest {
 public:
  using BadRequest::BadRequest;
};

// A body in a format no parser reads.
class UnsupportedMediaType : public Error {
 public:
  using Error::Error;
};

// The resource exists but does not offer this operation; `allowed` lists those it offers.
class MethodNotAllowed : public Error {
 public:
  MethodNotAllowed(const std::string& method, std::string allowed)
      : Error("Method \"" + method + "\" not allowed."), allowed_(std::move(allowed)) {}
  const std::string& allowed() const { return allowed_; }

 private:
  std::string allowed_;
};

// No such resource (also for ids that cannot exist).
class NotFound : public Error {
 public:
  NotFound() : Error("Not found.") {}
};

// The request needs a user and names none (no Authorization header, or not a Bearer one).
class NotAuthenticated : public Error {
 public:
  NotAuthenticated() : Error("Authentication credentials were not provided.") {}
};

// One token class's reason for refusing a token, as simplejwt lists them under "messages".
struct TokenRefusal {
  std::string token_class;  // "AccessToken"
  std::string token_type;   // "access"
  std::string message;      // "Token is expired"
};

// Credentials were given and are not good: a bad password, a bad or expired token, a deleted
// user. DRF's AuthenticationFailed / simplejwt's InvalidToken: `detail`, `code` when set, and
// `messages` when a token was refused by each token class.
class AuthenticationFailed : public Error {
 public:
  explicit AuthenticationFailed(std::string detail, std::string code = {},
                                std::vector<TokenRefusal> messages = {})
      : Error(detail),
        detail_(std::move(detail)),
        code_(std::move(code)),
        messages_(std::move(messages)) {}
  const std::string& detail() const { return detail_; }
  const std::string& code() const { return code_; }
  const std::vector<TokenRefusal>& messages() const { return messages_; }

 private:
  std::string detail_;
  std::string code_;
  std::vector<TokenRefusal> messages_;
};

// The user a still-valid token names no longer exists (deleted by an operator).
class UnknownUser : public AuthenticationFailed {
 public:
  UnknownUser() : AuthenticationFailed("User not found", "user_not_found") {}
};

// Too many requests: a rate limit or a queue cap. `retry_after` is whole seconds, at least 1.
class Throttled : public Error {
 public:
  explicit Throttled(std::chrono::seconds retry_after)
      : Throttled(retry_after, "Request was throttled. Expected available in " +
                                   std::to_string(retry_after.count()) + " second" +
                                   (retry_after.count() == 1 ? "" : "s") + ".") {}
  Throttled(std::chrono::seconds retry_after, std::string detail)
      : Error(std::move(detail)), retry_after_(retry_after) {}
  std::chrono::seconds retry_after() const { return retry_after_; }

 private:
  std::chrono::seconds retry_after_;
};

// The request collides with another still in progress (the same Idempotency-Key).
// The caller is authenticated but may not do this (a non-admin on an admin route): 403.
class PermissionDenied : public Error {
 public:
  PermissionDenied() : Error("You do not have permission to perform this action.") {}
};

class Conflict : public Error {
 public:
  using Error::Error;
};

// A backing service (database) cannot be reached right now. Retrying later may work.
class Unavailable : public Error {
 public:
  using Error::Error;
};

// A translation engine could not translate (process died, model failed). Retryable by workers.
class TranslationFailed : public Error {
 public:
  using Error::Error;
};

// A translation stopped because its job was cancelled (Translator::translate's `cancelled`).
class TranslationCancelled : public Error {
 public:
  using Error::Error;
};

}  // namespace transnotes
