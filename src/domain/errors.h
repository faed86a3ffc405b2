// Typed errors of transnotes. Every layer throws these; the HTTP layer maps them to
// status codes in one place (src/api/error_mapping.cpp). The message is safe to show clients.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace transnotes {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// 400 with DRF's `{"field": ["message", ...]}` body.
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

// 400 with `{"detail": message}`.
class BadRequest : public Error {
 public:
  using Error::Error;
};

// 404 `{"detail": "Not found."}`.
class NotFound : public Error {
 public:
  NotFound() : Error("Not found.") {}
};

// 503: a backing service (database) cannot be reached right now. Retrying later may work.
class Unavailable : public Error {
 public:
  using Error::Error;
};

// A translation engine could not translate (process died, model failed). Retryable by workers.
class TranslationFailed : public Error {
 public:
  using Error::Error;
};

}  // namespace transnotes
