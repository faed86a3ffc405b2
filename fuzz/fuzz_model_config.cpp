// Fuzzes a checkpoint's JSON files (config.json, generation_config.json, vocab.json) as
// MarianTranslator loads them, then translates one short sentence with whatever loaded, so that a
// setting the loader accepts but inference cannot honour (an id outside the vocabulary, a beam
// count, a length) is found too.
//
// Input: one selector byte (its value mod 3 picks config.json, generation_config.json or
// vocab.json), then that file's bytes. The other files are the tiny-en-es fixture's.
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "domain/errors.h"
#include "fuzz_support.h"
#include "marian/checkpoint.h"
#include "marian/translator.h"

namespace {

using namespace transnotes;

constexpr std::array<const char*, 3> kFuzzedFiles = {"config.json", "generation_config.json",
                                                     "vocab.json"};

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A copy of the fixture checkpoint; the fuzzed file is written over its copy for each input and
// the fixture's bytes are put back afterwards.
const std::filesystem::path& checkpoint() {
  static const std::filesystem::path dir = [] {
    auto copy = fuzz::scratch_dir() / "tiny-en-es";
    std::filesystem::copy(fuzz::tiny_checkpoint(), copy);
    return copy;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto& dir = checkpoint();
  const auto path = dir / kFuzzedFiles[data[0] % kFuzzedFiles.size()];
  const std::string original = read_file(fuzz::tiny_checkpoint() / path.filename());
  fuzz::write_file(path, data + 1, size - 1);
  try {
    marian::MarianTranslatorOptions options;
    options.model.num_threads = 1;
    // Short outputs keep an input fast; the ids, beams and penalties stay as the files say.
    options.max_length = 6;
    const marian::MarianTranslator translator(dir, options);
    translator.translate({"Hello world."});
  } catch (const TranslationFailed&) {
    // ModelLoadError is one: the documented answer to a bad checkpoint.
  }
  fuzz::write_file(path, reinterpret_cast<const std::uint8_t*>(original.data()), original.size());
  return 0;
}
