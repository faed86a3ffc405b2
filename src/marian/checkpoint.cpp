#include "marian/checkpoint.h"

#include <boost/json.hpp>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>

#include "marian/json_file.h"

namespace transnotes::marian {

namespace json = boost::json;

void require_regular_file(const std::filesystem::path& path, std::uintmax_t max_bytes) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status))
    throw ModelLoadError(path.string() + ": missing or unreadable");
  if (!std::filesystem::is_regular_file(status))
    throw ModelLoadError(path.string() + ": not a regular file");
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw ModelLoadError(path.string() + ": cannot read its size: " + ec.message());
  if (size > max_bytes)
    throw ModelLoadError(path.string() + ": " + std::to_string(size) + " bytes, more than the " +
                         std::to_string(max_bytes) + " allowed");
}

json::object read_json_object(const std::filesystem::path& path, const char* expected) {
  require_regular_file(path, kMaxJsonFileBytes);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelLoadError(path.string() + ": missing or unreadable");
  std::stringstream buffer;
  buffer << in.rdbuf();
  json::value v;
  try {
    v = json::parse(buffer.str());
  } catch (const std::exception& e) {
    throw ModelLoadError(path.string() + ": malformed JSON: " + e.what());
  }
  if (!v.is_object()) throw ModelLoadError(path.string() + ": expected " + expected);
  return v.as_object();
}

namespace {

// Bounds on what a checkpoint may ask the engine to allocate or index. Real OPUS-MT models sit far
// inside them (d_model 512-1024, 6-12 layers, vocabularies of ~60k, 512 positions); a value beyond
// them is a corrupt or hostile file, refused before it sizes any buffer.
constexpr std::int64_t kMaxDModel = 1 << 14;
constexpr std::int64_t kMaxLayers = 256;
constexpr std::int64_t kMaxFfnDim = 1 << 18;
constexpr std::int64_t kMaxVocab = 1 << 22;
constexpr std::int64_t kMaxPositions = 1 << 16;
// The sinusoid table is computed at load (max_position_embeddings x d_model floats).
constexpr std::int64_t kMaxPositionTable = std::int64_t{1} << 27;
constexpr std::int64_t kMaxGenerationLength = 1 << 20;
constexpr std::int64_t kMaxBeams = 256;

std::string outside(const std::filesystem::path& path, const std::string& field,
                    const std::string& value, std::int64_t lo, std::int64_t hi) {
  return path.string() + ": " + field + " " + value + " is outside " + std::to_string(lo) + ".." +
         std::to_string(hi);
}

// A JSON integer within [lo, hi]; anything else (fraction, string, a value beyond int64) is refused
// naming the field, so that no value is ever truncated into range.
int checked_int(const json::value& v, const std::string& field, const std::filesystem::path& path,
                std::int64_t lo, std::int64_t hi) {
  if (v.is_uint64())
    throw ModelLoadError(outside(path, field, std::to_string(v.as_uint64()), lo, hi));
  if (!v.is_int64()) throw ModelLoadError(path.string() + ": " + field + " is not an integer");
  const std::int64_t value = v.as_int64();
  if (value < lo || value > hi)
    throw ModelLoadError(outside(path, field, std::to_string(value), lo, hi));
  return static_cast<int>(value);
}

// Reads an integer field within [lo, hi]; missing or null -> fallback (or error when required).
// A list (eos_token_id may be one) yields its first element.
int get_int(const json::object& o, const char* key, const std::filesystem::path& path,
            std::optional<int> fallback, std::int64_t lo, std::int64_t hi) {
  const auto* v = o.if_contains(key);
  if (!v || v->is_null()) {
    if (fallback) return *fallback;
    throw ModelLoadError(path.string() + ": missing field '" + key + "'");
  }
  if (const auto* list = v->if_array()) {
    if (list->empty()) throw ModelLoadError(path.string() + ": " + key + " is an empty list");
    return checked_int((*list)[0], key, path, lo, hi);
  }
  return checked_int(*v, key, path, lo, hi);
}

bool get_bool(const json::object& o, const char* key, bool fallback) {
  const auto* v = o.if_contains(key);
  if (!v || !v->is_bool()) return fallback;
  return v->as_bool();
}

bool is_known_activation(const std::string& a) {
  return a == "swish" || a == "silu" || a == "gelu" || a == "gelu_new" || a == "gelu_fast" ||
         a == "gelu_pytorch_tanh" || a == "relu" || a == "quick_gelu" || a == "tanh" ||
         a == "sigmoid" || a == "gelu_python" || a == "linear";
}

void read_generation_fields(const json::object& o, const std::filesystem::path& path,
                            const MarianConfig& config, GenerationConfig& g) {
  const std::int64_t last_target_id = config.decoder_vocab_size - 1;
  const std::int64_t last_id = std::max(config.vocab_size, config.decoder_vocab_size) - 1;
  g.max_length = get_int(o, "max_length", path, g.max_length, 1, kMaxGenerationLength);
  g.num_beams = get_int(o, "num_beams", path, g.num_beams, 1, kMaxBeams);
  if (const auto* v = o.if_contains("length_penalty"); v && v->is_number()) {
    const double penalty = v->to_number<double>();
    if (!std::isfinite(penalty) || std::fabs(penalty) > 1e6)
      throw ModelLoadError(path.string() + ": length_penalty " + json::serialize(*v) +
                           " is not a finite number of sane size");
    g.length_penalty = static_cast<float>(penalty);
  }
  if (const auto* v = o.if_contains("early_stopping"); v && v->is_bool())
    g.early_stopping = v->as_bool();
  g.forced_eos_token_id =
      get_int(o, "forced_eos_token_id", path, g.forced_eos_token_id, -1, last_target_id);
  g.renormalize_logits = get_bool(o, "renormalize_logits", g.renormalize_logits);
  g.eos_token_id = get_int(o, "eos_token_id", path, g.eos_token_id, 0, last_target_id);
  g.pad_token_id = get_int(o, "pad_token_id", path, g.pad_token_id, 0, last_id);
  g.decoder_start_token_id =
      get_int(o, "decoder_start_token_id", path, g.decoder_start_token_id, 0, last_target_id);
  if (const auto* v = o.if_contains("bad_words_ids"); v && v->is_array()) {
    g.bad_words_ids.clear();
    for (const auto& seq : v->as_array()) {
      if (!seq.is_array()) throw ModelLoadError(path.string() + ": bad_words_ids malformed");
      std::vector<int> ids;
      for (const auto& id : seq.as_array())
        ids.push_back(checked_int(id, "bad_words_ids entry", path, 0, last_target_id));
      if (!ids.empty()) g.bad_words_ids.push_back(std::move(ids));
    }
  }
}

}  // namespace

MarianConfig load_marian_config(const std::filesystem::path& model_dir) {
  const auto path = model_dir / "config.json";
  const json::object o = read_json_object(path);
  MarianConfig c;
  const auto required = std::nullopt;
  c.d_model = get_int(o, "d_model", path, required, 1, kMaxDModel);
  c.encoder_layers = get_int(o, "encoder_layers", path, required, 0, kMaxLayers);
  c.decoder_layers = get_int(o, "decoder_layers", path, required, 1, kMaxLayers);
  c.encoder_attention_heads = get_int(o, "encoder_attention_heads", path, required, 1, c.d_model);
  c.decoder_attention_heads = get_int(o, "decoder_attention_heads", path, required, 1, c.d_model);
  c.encoder_ffn_dim = get_int(o, "encoder_ffn_dim", path, required, 1, kMaxFfnDim);
  c.decoder_ffn_dim = get_int(o, "decoder_ffn_dim", path, required, 1, kMaxFfnDim);
  c.vocab_size = get_int(o, "vocab_size", path, required, 1, kMaxVocab);
  c.decoder_vocab_size = get_int(o, "decoder_vocab_size", path, c.vocab_size, 1, kMaxVocab);
  c.max_position_embeddings = get_int(o, "max_position_embeddings", path, 512, 1,
                                      std::min(kMaxPositions, kMaxPositionTable / c.d_model));
  c.pad_token_id = get_int(o, "pad_token_id", path, c.vocab_size - 1, 0, c.vocab_size - 1);
  c.eos_token_id = get_int(o, "eos_token_id", path, 0, 0, c.decoder_vocab_size - 1);
  c.decoder_start_token_id =
      get_int(o, "decoder_start_token_id", path, c.pad_token_id, 0, c.decoder_vocab_size - 1);
  c.scale_embedding = get_bool(o, "scale_embedding", false);
  c.share_encoder_decoder_embeddings = get_bool(o, "share_encoder_decoder_embeddings", true);
  const auto* act = o.if_contains("activation_function");
  c.activation_function = act && act->is_string() ? std::string(act->as_string()) : "gelu";
  if (!is_known_activation(c.activation_function))
    throw ModelLoadError(path.string() + ": unknown activation_function '" + c.activation_function +
                         "'");
  for (const auto& [field, heads] :
       {std::pair{"encoder_attention_heads", c.encoder_attention_heads},
        std::pair{"decoder_attention_heads", c.decoder_attention_heads}})
    if (c.d_model % heads != 0)
      throw ModelLoadError(path.string() + ": d_model " + std::to_string(c.d_model) +
                           " is not divisible by " + field + " " + std::to_string(heads));
  return c;
}

GenerationConfig load_generation_config(const std::filesystem::path& model_dir,
                                        const MarianConfig& config) {
  GenerationConfig g;
  g.eos_token_id = config.eos_token_id;
  g.pad_token_id = config.pad_token_id;
  g.decoder_start_token_id = config.decoder_start_token_id;
  const auto gen_path = model_dir / "generation_config.json";
  const auto path = std::filesystem::exists(gen_path) ? gen_path : model_dir / "config.json";
  read_generation_fields(read_json_object(path), path, config, g);
  return g;
}

}  // namespace transnotes::marian
