// Hostile and corrupt checkpoints: every value read from a model folder that sizes or indexes
// something is checked, and a bad folder is refused with one ModelLoadError whose message names
// the file and the field, never a crash, a hang or a silently truncated value. Each case corrupts
// a copy of the tiny-en-es fixture in a temporary folder.
#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>

#include "marian/checkpoint.h"
#include "marian/marian_engine.h"
#include "marian/model.h"
#include "marian/safetensors.h"
#include "marian/tiny_fixture_test_support.h"
#include "marian/tokenizer.h"
#include "marian/translator.h"

namespace transnotes::marian {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

const std::filesystem::path kFixtureDir = tiny_fixture::dir();
const char* const kCheckpointFiles[] = {"config.json",       "generation_config.json",
                                        "model.safetensors", "source.spm",
                                        "target.spm",        "vocab.json"};

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

json::object read_object(const fs::path& path) { return json::parse(read_bytes(path)).as_object(); }

void edit_json(const fs::path& path, const std::function<void(json::object&)>& edit) {
  json::object object = read_object(path);
  edit(object);
  write_bytes(path, json::serialize(object));
}

// Rewrites the JSON header of a safetensors file, keeping its data section (offsets are relative
// to the data section, so they stay valid whatever the new header's length).
void edit_safetensors_header(const fs::path& path, const std::function<void(json::object&)>& edit) {
  const std::string bytes = read_bytes(path);
  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i)
    header_len = (header_len << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  json::object header = json::parse(bytes.substr(8, header_len)).as_object();
  edit(header);
  const std::string new_header = json::serialize(header);
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[static_cast<size_t>(i)] = static_cast<char>((new_header.size() >> (8 * i)) & 0xff);
  write_bytes(path, out + new_header + bytes.substr(8 + header_len));
}

// The message of the ModelLoadError that `load` throws, or a marker when it throws none.
std::string load_error(const std::function<void()>& load) {
  try {
    load();
  } catch (const ModelLoadError& e) {
    return e.what();
  }
  return "<loaded without error>";
}

class CheckpointValidation : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::is_regular_file(kFixtureDir / "model.safetensors"))
        << "MarianMT fixture not found at " << kFixtureDir;
    std::string pattern = (fs::temp_directory_path() / "checkpoint_validation-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    dir_ = copy_fixture(root_ / "opus-mt-en-es");
  }
  void TearDown() override {
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
  }

  static fs::path copy_fixture(const fs::path& dir) {
    fs::create_directories(dir);
    for (const char* file : kCheckpointFiles) fs::copy_file(kFixtureDir / file, dir / file);
    return dir;
  }

  // Loads the folder as `translate` and `serve` do; the message must name the file and field.
  void expect_refused(const std::string& file, const std::vector<std::string>& fragments) {
    const std::string message = load_error([&] { MarianTranslator translator(dir_); });
    EXPECT_NE(message.find((dir_ / file).string()), std::string::npos) << message;
    for (const auto& fragment : fragments)
      EXPECT_NE(message.find(fragment), std::string::npos) << "'" << fragment << "' in " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;  // one line
  }

  fs::path root_;
  fs::path dir_;
};

// ---- vocab.json / target_vocab.json ----

TEST_F(CheckpointValidation, VocabIdOf32BitsIsRefused) {
  // Cast to int, 4294967295 became -1 and indexed the piece table backwards (a segfault).
  edit_json(dir_ / "vocab.json", [](json::object& v) { v["foo"] = 4294967295LL; });
  expect_refused("vocab.json", {"id 4294967295 for \"foo\" is outside 0..490"});
  EXPECT_NE(load_error([&] { MarianTokenizer tokenizer(dir_); }).find("id 4294967295"),
            std::string::npos);
}

TEST_F(CheckpointValidation, VocabIdJustBeyondInt32IsRefused) {
  edit_json(dir_ / "vocab.json", [](json::object& v) { v["foo"] = 2147483648LL; });
  expect_refused("vocab.json", {"id 2147483648 for \"foo\" is outside 0..490"});
}

TEST_F(CheckpointValidation, VocabIdOneBeyondTheEmbeddingsIsRefused) {
  // 491 rows in model.shared.weight: id 491 would read past them in the encoder.
  edit_json(dir_ / "vocab.json", [](json::object& v) {
    v["\xE2\x96\x81"
      "foo\n"] = 491;
  });
  // The piece is shown escaped: a hostile piece cannot break the log line.
  expect_refused("vocab.json", {"id 491 for \"\\xe2\\x96\\x81foo\\x0a\" is outside 0..490"});
}

TEST_F(CheckpointValidation, NegativeOrFractionalVocabIdIsRefused) {
  edit_json(dir_ / "vocab.json", [](json::object& v) { v["foo"] = -1; });
  expect_refused("vocab.json", {"id -1 for \"foo\""});
  edit_json(dir_ / "vocab.json", [](json::object& v) { v["foo"] = 2.5; });
  expect_refused("vocab.json", {"for \"foo\" is outside 0..490"});
  edit_json(dir_ / "vocab.json", [](json::object& v) { v["foo"] = "7"; });
  expect_refused("vocab.json", {"id \"7\" for \"foo\" is outside 0..490"});
}

TEST_F(CheckpointValidation, TwoPiecesWithOneIdAreRefused) {
  edit_json(dir_ / "vocab.json", [](json::object& v) { v["foo"] = 0; });  // 0 is </s>
  expect_refused("vocab.json", {"id 0 of ", "is also the id of "});
}

TEST_F(CheckpointValidation, TargetVocabIdBeyondTheDecoderIsRefused) {
  fs::copy_file(dir_ / "vocab.json", dir_ / "target_vocab.json");
  edit_json(dir_ / "target_vocab.json", [](json::object& v) { v["bar"] = 4294967295LL; });
  expect_refused("target_vocab.json", {"id 4294967295 for \"bar\" is outside 0..490"});
}

TEST_F(CheckpointValidation, SharedVocabMustFitTheSmallerVocabulary) {
  // One vocab.json serves both sides, so its ids must index the decoder's 300 rows too.
  edit_json(dir_ / "config.json", [](json::object& c) {
    c["decoder_vocab_size"] = 300;
    c["decoder_start_token_id"] = 299;
  });
  const std::string message = load_error([&] { MarianTokenizer tokenizer(dir_); });
  EXPECT_NE(message.find((dir_ / "vocab.json").string() + ": id "), std::string::npos) << message;
  EXPECT_NE(message.find("is outside 0..299"), std::string::npos) << message;
}

// ---- config.json ----

TEST_F(CheckpointValidation, ConfigIntegerBeyond32BitsIsNotTruncated) {
  // 4294967360 = 2^32 + 64: an int cast made it 64, the fixture's d_model, and it loaded.
  edit_json(dir_ / "config.json", [](json::object& c) { c["d_model"] = 4294967360LL; });
  expect_refused("config.json", {"d_model 4294967360 is outside 1..16384"});
}

TEST_F(CheckpointValidation, EachConfigIntegerIsRangeChecked) {
  struct Case {
    const char* field;
    json::value value;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"d_model", 0, "d_model 0 is outside 1..16384"},
      {"d_model", "64", "d_model is not an integer"},
      {"encoder_layers", -1, "encoder_layers -1 is outside 0..256"},
      {"decoder_layers", 0, "decoder_layers 0 is outside 1..256"},
      {"decoder_layers", 100000, "decoder_layers 100000 is outside 1..256"},
      {"encoder_attention_heads", 0, "encoder_attention_heads 0 is outside 1..64"},
      {"decoder_attention_heads", 3, "d_model 64 is not divisible by decoder_attention_heads 3"},
      {"encoder_ffn_dim", std::int64_t{1} << 40, "encoder_ffn_dim 1099511627776 is outside"},
      {"decoder_ffn_dim", -128, "decoder_ffn_dim -128 is outside 1..262144"},
      {"vocab_size", 0, "vocab_size 0 is outside 1..4194304"},
      {"vocab_size", std::uint64_t{18446744073709551615u},
       "vocab_size 18446744073709551615 is outside 1..4194304"},
      {"decoder_vocab_size", 5000000, "decoder_vocab_size 5000000 is outside 1..4194304"},
      {"max_position_embeddings", 0, "max_position_embeddings 0 is outside 1..65536"},
      {"max_position_embeddings", 1 << 20, "max_position_embeddings 1048576 is outside 1..65536"},
      {"pad_token_id", 491, "pad_token_id 491 is outside 0..490"},
      {"eos_token_id", -1, "eos_token_id -1 is outside 0..490"},
      {"eos_token_id", json::array{4294967296LL}, "eos_token_id 4294967296 is outside 0..490"},
      {"decoder_start_token_id", 4294967296LL, "decoder_start_token_id 4294967296 is outside"},
  };
  const std::string original = read_bytes(kFixtureDir / "config.json");
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.field) + " = " + json::serialize(c.value));
    write_bytes(dir_ / "config.json", original);
    edit_json(dir_ / "config.json", [&](json::object& config) { config[c.field] = c.value; });
    expect_refused("config.json", {c.message});
  }
}

TEST_F(CheckpointValidation, PositionTableSizeIsBounded) {
  // Each bound alone passes, but the sinusoid table computed at load would be 16384 x 65536.
  edit_json(dir_ / "config.json", [](json::object& c) {
    c["d_model"] = 16384;
    c["max_position_embeddings"] = 65536;
  });
  expect_refused("config.json", {"max_position_embeddings 65536 is outside 1..8192"});
}

// ---- generation_config.json ----

TEST_F(CheckpointValidation, EachGenerationSettingIsRangeChecked) {
  struct Case {
    const char* field;
    json::value value;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"max_length", 0, "max_length 0 is outside 1..1048576"},
      {"max_length", 4294967360LL, "max_length 4294967360 is outside"},
      {"num_beams", 100000, "num_beams 100000 is outside 1..256"},
      {"forced_eos_token_id", 491, "forced_eos_token_id 491 is outside -1..490"},
      {"eos_token_id", 2147483648LL, "eos_token_id 2147483648 is outside 0..490"},
      {"decoder_start_token_id", -5, "decoder_start_token_id -5 is outside 0..490"},
      {"pad_token_id", 4294967295LL, "pad_token_id 4294967295 is outside 0..490"},
      // 4294967296 was cast to 0, a valid id, and banned </s>.
      {"bad_words_ids", json::array{json::array{4294967296LL}},
       "bad_words_ids entry 4294967296 is outside 0..490"},
      {"length_penalty", 1e300, "length_penalty 1E300 is not a finite number"},
  };
  const std::string original = read_bytes(kFixtureDir / "generation_config.json");
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.field) + " = " + json::serialize(c.value));
    write_bytes(dir_ / "generation_config.json", original);
    edit_json(dir_ / "generation_config.json",
              [&](json::object& generation) { generation[c.field] = c.value; });
    expect_refused("generation_config.json", {c.message});
  }
}

TEST_F(CheckpointValidation, GenerationFieldsInConfigJsonNameConfigJson) {
  fs::remove(dir_ / "generation_config.json");
  edit_json(dir_ / "config.json", [](json::object& c) { c["num_beams"] = -4; });
  expect_refused("config.json", {"num_beams -4 is outside 1..256"});
}

// ---- model.safetensors ----

TEST_F(CheckpointValidation, ShapeWhoseElementCountOverflowsIsRefused) {
  // 2^62 x 4 elements wrap to 0 in 64 bits: an unchecked product matched the empty byte range.
  edit_safetensors_header(dir_ / "model.safetensors", [](json::object& h) {
    h["final_logits_bias"].as_object()["shape"] = json::array{std::int64_t{1} << 62, 4};
    h["final_logits_bias"].as_object()["data_offsets"] = json::array{0, 0};
  });
  const auto path = dir_ / "model.safetensors";
  const std::string message = load_error([&] { SafetensorsFile file(path); });
  EXPECT_NE(message.find(path.string() + ": tensor 'final_logits_bias': shape"), std::string::npos)
      << message;
  EXPECT_NE(message.find("more elements than any file can hold"), std::string::npos) << message;
  expect_refused("model.safetensors", {"final_logits_bias", "more elements"});
}

TEST_F(CheckpointValidation, OffsetsBeyondTheFileAreRefused) {
  const auto data_bytes = fs::file_size(kFixtureDir / "model.safetensors");
  edit_safetensors_header(dir_ / "model.safetensors", [&](json::object& h) {
    h["final_logits_bias"].as_object()["data_offsets"] = json::array{data_bytes, data_bytes + 1964};
  });
  expect_refused("model.safetensors", {"tensor 'final_logits_bias'", "outside the data section"});
}

TEST_F(CheckpointValidation, DtypeThatDoesNotMatchTheByteLengthIsRefused) {
  edit_safetensors_header(dir_ / "model.safetensors", [](json::object& h) {
    h["final_logits_bias"].as_object()["dtype"] = "F16";  // 491 x 2 bytes, but 1964 are stored
  });
  expect_refused("model.safetensors",
                 {"tensor 'final_logits_bias'", "hold 1964 bytes", "F16 needs 491 x 2"});
}

TEST_F(CheckpointValidation, HeaderLengthBeyondTheFileIsRefused) {
  std::string bytes = read_bytes(dir_ / "model.safetensors");
  for (int i = 0; i < 8; ++i) bytes[static_cast<size_t>(i)] = '\x7f';
  write_bytes(dir_ / "model.safetensors", bytes);
  expect_refused("model.safetensors", {"header length 9187201950435737471 exceeds file size"});
}

TEST_F(CheckpointValidation, NegativeShapeAndUnknownDtypeAreRefused) {
  edit_safetensors_header(dir_ / "model.safetensors", [](json::object& h) {
    h["final_logits_bias"].as_object()["shape"] = json::array{1, -491};
  });
  expect_refused("model.safetensors", {"'final_logits_bias'", "shape entry -491"});
  write_bytes(dir_ / "model.safetensors", read_bytes(kFixtureDir / "model.safetensors"));
  edit_safetensors_header(dir_ / "model.safetensors", [](json::object& h) {
    h["final_logits_bias"].as_object()["dtype"] = "Q4";
  });
  expect_refused("model.safetensors", {"'final_logits_bias'", "unknown dtype Q4"});
}

// ---- files that are not files ----

TEST_F(CheckpointValidation, FifoInPlaceOfAFileDoesNotHang) {
  // Opening a FIFO for reading blocks until a writer comes: a planted one would hang serve.
  for (const char* file : {"vocab.json", "model.safetensors", "source.spm", "config.json"}) {
    SCOPED_TRACE(file);
    fs::remove(dir_ / file);
    ASSERT_EQ(::mkfifo((dir_ / file).c_str(), 0600), 0);
    expect_refused(file, {"not a regular file"});
    fs::remove(dir_ / file);
    fs::copy_file(kFixtureDir / file, dir_ / file);
  }
}

// ---- serve: a bad model is skipped with one log line; the others are served ----

// Collects formatted log lines (spdlog's default logger is process-wide: restored on exit).
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    sink_ = std::make_shared<Sink>();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("captured", sink_));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  std::vector<std::string> lines(spdlog::level::level_enum level) const {
    std::lock_guard<std::mutex> lock(sink_->lines_mutex);
    std::vector<std::string> out;
    for (const auto& [l, text] : sink_->lines)
      if (l == level) out.push_back(text);
    return out;
  }

 private:
  struct Sink : spdlog::sinks::base_sink<std::mutex> {
    std::mutex lines_mutex;
    std::vector<std::pair<spdlog::level::level_enum, std::string>> lines;
    void sink_it_(const spdlog::details::log_msg& msg) override {
      std::lock_guard<std::mutex> lock(lines_mutex);
      lines.emplace_back(msg.level, std::string(msg.payload.data(), msg.payload.size()));
    }
    void flush_() override {}
  };
  std::shared_ptr<spdlog::logger> previous_;
  std::shared_ptr<Sink> sink_;
};

TEST_F(CheckpointValidation, EngineSkipsAnInvalidModelAndServesTheOthers) {
  const fs::path models = root_ / "models";
  copy_fixture(models / "opus-mt-en-es");
  const fs::path bad = copy_fixture(models / "opus-mt-es-en");
  edit_json(bad / "vocab.json", [](json::object& v) { v["foo"] = 4294967295LL; });

  CapturedLog log;
  MarianEngineOptions options;
  options.max_length = 64;
  MarianEngine engine(discover_marian_models(models), options);
  ASSERT_EQ(engine.pairs().size(), 1u);
  EXPECT_EQ(engine.pairs()[0].source, "en");
  EXPECT_EQ(engine.translate_batch("en", "es", {"Hello"}), std::vector<std::string>{"Hola."});
  const auto errors = log.lines(spdlog::level::err);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find((bad / "vocab.json").string() + ": id 4294967295 for \"foo\""),
            std::string::npos)
      << errors[0];
  EXPECT_THROW(engine.translate_batch("es", "en", {"Hola"}), TranslationFailed);

  // A model the user named is not skipped: its error is the answer.
  options.skip_invalid_models = false;
  const std::string message =
      load_error([&] { MarianEngine strict(std::vector<fs::path>{bad}, options); });
  EXPECT_NE(message.find("vocab.json: id 4294967295"), std::string::npos) << message;
}

TEST_F(CheckpointValidation, CheckCheckpointAcceptsTheFixtureAndRefusesCorruption) {
  EXPECT_NO_THROW(check_checkpoint(dir_));
  edit_json(dir_ / "vocab.json", [](json::object& v) { v["foo"] = 2147483648LL; });
  EXPECT_NE(load_error([&] { check_checkpoint(dir_); }).find("id 2147483648"), std::string::npos);
}

}  // namespace
}  // namespace transnotes::marian
