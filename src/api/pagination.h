// DRF's LimitOffsetPagination for the note list: reading `limit`/`offset`, and the `Link` header
// with absolute URLs built from a checked Host. Private to src/api.
#pragma once

#include <boost/url/params_view.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "domain/model.h"
#include "http/server.h"

namespace transnotes::api {

inline constexpr std::int64_t kDefaultPageLimit = 100;
inline constexpr std::int64_t kMaxPageLimit = 1000;

// `limit` and `offset` as DRF reads them: a missing, malformed, negative or zero limit is the
// default, a larger one is capped at kMaxPageLimit; a missing, malformed or negative offset is 0.
ListQuery list_query_from(const boost::urls::params_view& params);

// True for a Host value made only of RFC 3986 host[:port] characters, as Django's host check
// accepts them: a name of letters, digits, '.' and '-', or a bracketed IPv6 literal, then an
// optional ':' and digits. Everything else (spaces, '<', ',', '/', non-ASCII) is refused.
bool is_valid_host(std::string_view host);

// The host links will name: Host, or with `trust_proxy` a non-empty X-Forwarded-Host; ""
// when neither is sent. Throws BadRequest when it is not a valid host.
std::string_view checked_host(const http::Request& request, bool trust_proxy);

// "scheme://host" for absolute links. Host comes from the Host header ("localhost" when absent);
// with `trust_proxy`, X-Forwarded-Host and X-Forwarded-Proto (their first entries) override it.
// Throws BadRequest when the host to be used is not valid.
std::string base_url(const http::Request& request, bool trust_proxy);

// The `Link` header of one page ("" when it has neither neighbour). `page_url` is the absolute
// list URL without a query. `returned` is how many notes the page holds: fewer than the limit
// when it stopped early, and then the next page starts right after the last one returned.
std::string page_links(std::string_view page_url, const ListQuery& query, std::int64_t returned,
                       bool more_after);

}  // namespace transnotes::api
