// The typed errors of transnotes: the one vocabulary every layer throws. Each names what went
// wrong, not how to answer it; src/api/error_mapping.cpp is the one place that turns them into
// HTTP status codes and DRF-shaped bodies. Every message is safe to show to clients: it never
// carries bytes a client sent unless they were checked to be valid UTF-8.
#pragma once

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

}  // namespace transnotes
