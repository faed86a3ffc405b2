// The one place where transnotes' typed errors (domain/errors.h) become HTTP answers with the
// status codes and body shapes of Django REST Framework. Private to src/api.
#pragma once

#include <boost/json/value.hpp>
#include <string>

#include "http/server.h"

namespace transnotes::api {

http::Response json_response(int status, const boost::json::value& body);

// `{"detail": message}`, DRF's shape for errors that are not about one field.
http::Response detail_response(int status, std::string message);

// Call only inside a catch block: answers the exception being handled. Never throws. Logs what
// the client must not see (a database's message, a bug's exception).
http::Response error_response(const http::Request& request);

}  // namespace transnotes::api
