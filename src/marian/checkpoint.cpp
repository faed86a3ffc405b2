#include "marian/checkpoint.h"

#include <boost/json.hpp>
#include <fstream>
#include <optional>
#include <sstream>

#include "marian/json_file.h"

namespace transnotes::marian {

namespace json = boost::json;

json::object read_json_object(const std::filesystem::path& path, const char* expected) {
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

// Reads an integer field; missing or null -> fallback (or error when required).
int get_int(const json::object& o, const char* key, const std::filesystem::path& path,
            std::optional<int> fallback) {
  const auto* v = o.if_contains(key);
  if (!v || v->is_null()) {
    if (fallback) return *fallback;
    throw ModelLoadError(path.string() + ": missing field '" + key + "'");
  }
  if (v->is_int64()) return static_cast<int>(v->as_int64());
  if (v->is_uint64()) return static_cast<int>(v->as_uint64());
  if (v->is_array() && !v->as_array().empty() && v->as_array()[0].is_int64())
    return static_cast<int>(v->as_array()[0].as_int64());  // eos_token_id may be a list
  throw ModelLoadError(path.string() + ": field '" + key + "' is not an integer");
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
                            GenerationConfig& g) {
  g.max_length = get_int(o, "max_length", path, g.max_length);
  g.num_beams = get_int(o, "num_beams", path, g.num_beams);
  if (const auto* v = o.if_contains("length_penalty"); v && v->is_number())
    g.length_penalty = static_cast<float>(v->to_number<double>());
  if (const auto* v = o.if_contains("early_stopping"); v && v->is_bool())
    g.early_stopping = v->as_bool();
  g.forced_eos_token_id = get_int(o, "forced_eos_token_id", path, g.forced_eos_token_id);
  g.renormalize_logits = get_bool(o, "renormalize_logits", g.renormalize_logits);
  g.eos_token_id = get_int(o, "eos_token_id", path, g.eos_token_id);
  g.pad_token_id = get_int(o, "pad_token_id", path, g.pad_token_id);
  g.decoder_start_token_id = get_int(o, "decoder_start_token_id", path, g.decoder_start_token_id);
  if (const auto* v = o.if_contains("bad_words_ids"); v && v->is_array()) {
    g.bad_words_ids.clear();
    for (const auto& seq : v->as_array()) {
      if (!seq.is_array()) throw ModelLoadError(path.string() + ": bad_words_ids malformed");
      std::vector<int> ids;
      for (const auto& id : seq.as_array()) {
        if (!id.is_int64()) throw ModelLoadError(path.string() + ": bad_words_ids malformed");
        ids.push_back(static_cast<int>(id.as_int64()));
      }
      if (!ids.empty()) g.bad_words_ids.push_back(std::move(ids));
    }
  }
  if (g.max_length < 1) throw ModelLoadError(path.string() + ": max_length must be >= 1");
  if (g.num_beams < 1) throw ModelLoadError(path.string() + ": num_beams must be >= 1");
}

}  // namespace

MarianConfig load_marian_config(const std::filesystem::path& model_dir) {
  const auto path = model_dir / "config.json";
  const json::object o = read_json_object(path);
  MarianConfig c;
  c.d_model = get_int(o, "d_model", path, std::nullopt);
  c.encoder_layers = get_int(o, "encoder_layers", path, std::nullopt);
  c.decoder_layers = get_int(o, "decoder_layers", path, std::nullopt);
  c.encoder_attention_heads = get_int(o, "encoder_attention_heads", path, std::nullopt);
  c.decoder_attention_heads = get_int(o, "decoder_attention_heads", path, std::nullopt);
  c.encoder_ffn_dim = get_int(o, "encoder_ffn_dim", path, std::nullopt);
  c.decoder_ffn_dim = get_int(o, "decoder_ffn_dim", path, std::nullopt);
  c.vocab_size = get_int(o, "vocab_size", path, std::nullopt);
  c.decoder_vocab_size = get_int(o, "decoder_vocab_size", path, c.vocab_size);
  c.max_position_embeddings = get_int(o, "max_position_embeddings", path, 512);
  c.pad_token_id = get_int(o, "pad_token_id", path, c.vocab_size - 1);
  c.eos_token_id = get_int(o, "eos_token_id", path, 0);
  c.decoder_start_token_id = get_int(o, "decoder_start_token_id", path, c.pad_token_id);
  c.scale_embedding = get_bool(o, "scale_embedding", false);
  c.share_encoder_decoder_embeddings = get_bool(o, "share_encoder_decoder_embeddings", true);
  const auto* act = o.if_contains("activation_function");
  c.activation_function = act && act->is_string() ? std::string(act->as_string()) : "gelu";
  if (!is_known_activation(c.activation_function))
    throw ModelLoadError(path.string() + ": unknown activation_function '" + c.activation_function +
                         "'");
  if (c.d_model <= 0 || c.encoder_layers < 0 || c.decoder_layers < 1 ||
      c.encoder_attention_heads <= 0 || c.decoder_attention_heads <= 0 ||
      c.d_model % c.encoder_attention_heads != 0 || c.d_model % c.decoder_attention_heads != 0 ||
      c.encoder_ffn_dim <= 0 || c.decoder_ffn_dim <= 0 || c.vocab_size <= 0 ||
      c.decoder_vocab_size <= 0)
    throw ModelLoadError(path.string() + ": inconsistent model dimensions");
  if (c.eos_token_id < 0 || c.eos_token_id >= c.decoder_vocab_size || c.pad_token_id < 0 ||
      c.pad_token_id >= c.vocab_size || c.decoder_start_token_id < 0 ||
      c.decoder_start_token_id >= c.decoder_vocab_size)
    throw ModelLoadError(path.string() + ": special token id outside the vocabulary");
  return c;
}

GenerationConfig load_generation_config(const std::filesystem::path& model_dir,
                                        const MarianConfig& config) {
  GenerationConfig g;
  g.eos_token_id = config.eos_token_id;
  g.pad_token_id = config.pad_token_id;
  g.decoder_start_token_id = config.decoder_start_token_id;
  const auto gen_path = model_dir / "generation_config.json";
  if (std::filesystem::exists(gen_path)) {
    read_generation_fields(read_json_object(gen_path), gen_path, g);
  } else {
    const auto path = model_dir / "config.json";
    read_generation_fields(read_json_object(path), path, g);
  }
  for (const auto& seq : g.bad_words_ids)
    for (int id : seq)
      if (id < 0 || id >= config.decoder_vocab_size)
        throw ModelLoadError((model_dir / "generation_config.json").string() +
                             ": bad_words_ids outside the vocabulary");
  if (g.forced_eos_token_id >= config.decoder_vocab_size)
    throw ModelLoadError((model_dir / "generation_config.json").string() +
                         ": forced_eos_token_id outside the vocabulary");
  return g;
}

}  // namespace transnotes::marian
