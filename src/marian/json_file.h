// Private to src/marian: reads a checkpoint's JSON files (config.json, generation_config.json,
// vocab.json) with errors that name the file.
#pragma once

#include <boost/json.hpp>
#include <filesystem>

namespace transnotes::marian {

// Parses `path` as a JSON object. Throws ModelLoadError naming the file when it is missing,
// malformed, or not an object ("expected <expected>").
boost::json::object read_json_object(const std::filesystem::path& path,
                                     const char* expected = "a JSON object");

}  // namespace transnotes::marian
