#include "api/pagination.h"

#include <algorithm>
#include <charconv>

#include "domain/errors.h"

namespace transnotes::api {

namespace {

std::int64_t non_negative_int(const boost::urls::params_view& params, std::string_view key,
                              std::int64_t fallback) {
  auto it = params.find(key);
  if (it == params.end()) return fallback;
  const auto value = (*it).value;
  std::int64_t parsed = 0;
  auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
  if (error != std::errc() || end != value.data() + value.size() || parsed < 0) return fallback;
  return parsed;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_name_char(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '-';
}

bool is_ipv6_char(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

// The first entry of a comma-separated forwarding header, without surrounding blanks.
std::string_view first_entry(std::string_view value) {
  value = value.substr(0, value.find(','));
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  return value;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return (x >= 'A' && x <= 'Z' ? static_cast<char>(x - 'A' + 'a') : x) == y;
  });
}

std::string page_url_with(std::string_view page_url, std::int64_t limit, std::int64_t offset) {
  std::string url = "<";
  url += page_url;
  url += "?limit=" + std::to_string(limit) + "&offset=" + std::to_string(offset) + ">";
  return url;
}

}  // namespace

ListQuery list_query_from(const boost::urls::params_view& params) {
  ListQuery query;
  query.limit = std::min(non_negative_int(params, "limit", kDefaultPageLimit), kMaxPageLimit);
  if (query.limit == 0) query.limit = kDefaultPageLimit;
  query.offset = non_negative_int(params, "offset", 0);
  return query;
}

bool is_valid_host(std::string_view host) {
  std::size_t name_end = 0;
  if (!host.empty() && host.front() == '[') {
    name_end = host.find(']');
    if (name_end == std::string_view::npos || name_end < 2) return false;
    if (!std::all_of(host.begin() + 1, host.begin() + static_cast<std::ptrdiff_t>(name_end),
                     is_ipv6_char)) {
      return false;
    }
    ++name_end;
  } else {
    while (name_end < host.size() && is_name_char(host[name_end])) ++name_end;
    if (name_end == 0) return false;
  }
  std::string_view port = host.substr(name_end);
  if (port.empty()) return true;
  if (port.front() != ':' || port.size() == 1) return false;
  return std::all_of(port.begin() + 1, port.end(), is_digit);
}

std::string_view checked_host(const http::Request& request, bool trust_proxy) {
  std::string_view host = request.header("Host");
  if (trust_proxy) {
    if (auto forwarded = first_entry(request.header("X-Forwarded-Host")); !forwarded.empty()) {
      host = forwarded;
    }
  }
  if (!host.empty() && !is_valid_host(host)) throw BadRequest("Invalid Host header.");
  return host;
}

std::string base_url(const http::Request& request, bool trust_proxy) {
  std::string_view host = checked_host(request, trust_proxy);
  // HTTP/1.0 clients may send no Host at all.
  if (host.empty()) host = "localhost";
  const bool https = trust_proxy && equals_ignoring_case(
                                        first_entry(request.header("X-Forwarded-Proto")), "https");
  std::string url = https ? "https://" : "http://";
  url += host;
  return url;
}

std::string page_links(std::string_view page_url, const ListQuery& query, std::int64_t returned,
                       bool more_after) {
  std::string links;
  if (more_after) {
    links += page_url_with(page_url, query.limit, query.offset + returned) + "; rel=\"next\"";
  }
  if (query.offset > 0) {
    if (!links.empty()) links += ", ";
    links += page_url_with(page_url, query.limit,
                           std::max<std::int64_t>(0, query.offset - query.limit)) +
             "; rel=\"prev\"";
  }
  return links;
}

}  // namespace transnotes::api
