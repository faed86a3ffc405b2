// Private to src/marian: reads a checkpoint's JSON files (config.json, generation_config.json,
// vocab.json) with errors that name the file.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <filesystem>

namespace transnotes::marian {

// Parses `path` as a JSON object. Throws ModelLoadError naming the file when it is missing, not a
// regular file, larger than kMaxJsonFileBytes, malformed, or not an object ("expected <expected>").
// Checks that `path` is a regular file (symlinks followed) of at most max_bytes, so that a FIFO,
// device or oversized file in a checkpoint folder cannot block or exhaust the loader. Throws
// ModelLoadError naming the file.
void require_regular_file(const std::filesystem::path& path, std::uintmax_t max_bytes);

// Largest JSON file a checkpoint may hold (a 4M-entry vocab.json is ~100 MB).
inline constexpr std::uintmax_t kMaxJsonFileBytes = std::uintmax_t{256} << 20;

boost::json::object read_json_object(const std::filesystem::path& path,
                                     const char* expected = "a JSON object");

}  // namespace transnotes::marian
