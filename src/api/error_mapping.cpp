#include "api/error_mapping.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include "domain/errors.h"

namespace transnotes::api {

namespace json = boost::json;

namespace {
// DRF answers 401 (not 403) when the authenticator names a challenge; simplejwt's is this.
constexpr const char* kBearerChallenge = "Bearer realm=\"api\"";
}  // namespace

http::Response json_response(int status, const json::value& body) {
  return http::Response{status, json::serialize(body), "application/json", {}};
}

http::Response detail_response(int status, std::string message) {
  return json_response(status, json::object{{"detail", std::move(message)}});
}

http::Response error_response(const http::Request& request) {
  try {
    throw;
  } catch (const ValidationError& e) {
    json::object body;
    for (const auto& [field, messages] : e.errors()) {
      json::array list;
      for (const auto& m : messages) list.push_back(json::value(m));
      body[field] = std::move(list);
    }
    return json_response(400, body);
  } catch (const NotAuthenticated& e) {
    auto response = detail_response(401, e.what());
    response.headers.emplace_back("WWW-Authenticate", kBearerChallenge);
    return response;
  } catch (const AuthenticationFailed& e) {
    // simplejwt's shape: detail, then code when there is one, then each token class's reason.
    json::object body{{"detail", e.detail()}};
    if (!e.code().empty()) body["code"] = e.code();
    if (!e.messages().empty()) {
      json::array messages;
      for (const auto& refusal : e.messages()) {
        messages.push_back(json::object{{"token_class", refusal.token_class},
                                        {"token_type", refusal.token_type},
                                        {"message", refusal.message}});
      }
      body["messages"] = std::move(messages);
    }
    auto response = json_response(401, body);
    response.headers.emplace_back("WWW-Authenticate", kBearerChallenge);
    return response;
  } catch (const Throttled& e) {
    auto response = detail_response(429, e.what());
    response.headers.emplace_back("Retry-After", std::to_string(e.retry_after().count()));
    return response;
  } catch (const PermissionDenied& e) {
    return detail_response(403, e.what());
  } catch (const Conflict& e) {
    return detail_response(409, e.what());
  } catch (const BadRequest& e) {  // MalformedBody too
    return detail_response(400, e.what());
  } catch (const NotFound& e) {
    return detail_response(404, e.what());
  } catch (const MethodNotAllowed& e) {
    auto response = detail_response(405, e.what());
    response.headers.emplace_back("Allow", e.allowed());
    return response;
  } catch (const UnsupportedMediaType& e) {
    return detail_response(415, e.what());
  } catch (const Unavailable& e) {
    spdlog::warn("{} {}: {}", request.method, request.target, e.what());
    auto response = detail_response(503, "Service temporarily unavailable, try again later.");
    response.headers.emplace_back("Retry-After", "1");
    return response;
  } catch (const std::exception& e) {
    spdlog::error("{} {}: unexpected error: {}", request.method, request.target, e.what());
    return detail_response(500, "A server error occurred.");
  } catch (...) {
    spdlog::error("{} {}: unexpected non-standard exception", request.method, request.target);
    return detail_response(500, "A server error occurred.");
  }
}

}  // namespace transnotes::api
