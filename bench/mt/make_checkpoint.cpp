// Writes an OPUS-MT-base shaped MarianMT checkpoint with random weights, in Hugging Face layout,
// for the mt_bench throughput benchmark (the numbers depend on shapes, not on weight values):
// d_model 512, 6+6 layers, 8 heads, ffn 2048, swish, vocab 58101 (pad = decoder start = 58100,
// eos = 0), shared embeddings, static sinusoidal positions, max_position_embeddings 512.
//
//   mt_make_checkpoint --out DIR [--seed N] [--spm-from FIXTURE_DIR]
//
// Files: config.json, generation_config.json, model.safetensors (float32, transformers tensor
// names, tied copies not stored), vocab.json (synthetic, 58101 entries so that it matches
// vocab_size), source.spm/target.spm copied from --spm-from (the tiny fixture by default; the
// benchmark feeds token ids directly and never tokenizes).
#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

constexpr int kDModel = 512;
constexpr int kLayers = 6;
constexpr int kHeads = 8;
constexpr int kFfn = 2048;
constexpr int kVocab = 58101;
constexpr int kPad = 58100;
constexpr int kEos = 0;
constexpr int kMaxPositions = 512;

enum class Init { kRandom, kZeros, kOnes };

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
  Init init;
  int64_t elements() const {
    int64_t n = 1;
    for (const auto d : shape) n *= d;
    return n;
  }
};

void add_linear(std::vector<Tensor>& t, const std::string& prefix, int out, int in) {
  t.push_back({prefix + ".weight", {out, in}, Init::kRandom});
  t.push_back({prefix + ".bias", {out}, Init::kRandom});
}

void add_layer_norm(std::vector<Tensor>& t, const std::string& prefix) {
  t.push_back({prefix + ".weight", {kDModel}, Init::kOnes});
  t.push_back({prefix + ".bias", {kDModel}, Init::kZeros});
}

void add_attention(std::vector<Tensor>& t, const std::string& prefix) {
  for (const char* proj : {"k_proj", "v_proj", "q_proj", "out_proj"}) {
    add_linear(t, prefix + "." + proj, kDModel, kDModel);
  }
}

std::vector<Tensor> marian_tensors() {
  std::vector<Tensor> t;
  t.push_back({"final_logits_bias", {1, kVocab}, Init::kZeros});
  t.push_back({"model.shared.weight", {kVocab, kDModel}, Init::kRandom});
  for (int i = 0; i < kLayers; ++i) {
    const std::string p = "model.encoder.layers." + std::to_string(i) + ".";
    add_attention(t, p + "self_attn");
    add_layer_norm(t, p + "self_attn_layer_norm");
    add_linear(t, p + "fc1", kFfn, kDModel);
    add_linear(t, p + "fc2", kDModel, kFfn);
    add_layer_norm(t, p + "final_layer_norm");
  }
  for (int i = 0; i < kLayers; ++i) {
    const std::string p = "model.decoder.layers." + std::to_string(i) + ".";
    add_attention(t, p + "self_attn");
    add_layer_norm(t, p + "self_attn_layer_norm");
    add_attention(t, p + "encoder_attn");
    add_layer_norm(t, p + "encoder_attn_layer_norm");
    add_linear(t, p + "fc1", kFfn, kDModel);
    add_linear(t, p + "fc2", kDModel, kFfn);
    add_layer_norm(t, p + "final_layer_norm");
  }
  return t;
}

// splitmix64: fast, seeded, good enough for benchmark weights.
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform with standard deviation 0.02 (HF's init_std).
  float weight() {
    const double u = static_cast<double>(next() >> 11) * 0x1.0p-53;  // [0, 1)
    return static_cast<float>((2.0 * u - 1.0) * 0.02 * std::sqrt(3.0));
  }
};

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text << "\n";
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

void write_safetensors(const fs::path& path, const std::vector<Tensor>& tensors, uint64_t seed) {
  json::object header;
  header["__metadata__"] = json::object{{"format", "pt"}};
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    json::array shape;
    for (const auto d : t.shape) shape.push_back(d);
    const uint64_t bytes = static_cast<uint64_t>(t.elements()) * sizeof(float);
    header[t.name] = json::object{
        {"dtype", "F32"}, {"shape", shape}, {"data_offsets", json::array{offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = json::serialize(header);
  while (text.size() % 8 != 0) text.push_back(' ');  // keeps the data 8-byte aligned
  std::FILE* out = std::fopen(path.c_str(), "wb");
  if (out == nullptr) throw std::runtime_error("cannot write " + path.string());
  uint64_t header_size = text.size();
  unsigned char size_le[8];
  for (int i = 0; i < 8; ++i) size_le[i] = static_cast<unsigned char>(header_size >> (8 * i));
  bool ok = std::fwrite(size_le, 1, 8, out) == 8 &&
            std::fwrite(text.data(), 1, text.size(), out) == text.size();
  Rng rng{seed};
  std::vector<float> buffer;
  for (const auto& t : tensors) {
    buffer.assign(static_cast<size_t>(t.elements()), 0.0f);
    for (auto& v : buffer) {
      v = t.init == Init::kRandom ? rng.weight() : (t.init == Init::kOnes ? 1.0f : 0.0f);
    }
    ok = ok && std::fwrite(buffer.data(), sizeof(float), buffer.size(), out) == buffer.size();
  }
  ok = (std::fclose(out) == 0) && ok;
  if (!ok) throw std::runtime_error("short write to " + path.string());
}

json::object config_json() {
  return json::object{
      {"activation_dropout", 0.0},
      {"activation_function", "swish"},
      {"architectures", json::array{"MarianMTModel"}},
      {"attention_dropout", 0.0},
      {"bos_token_id", kEos},
      {"d_model", kDModel},
      {"decoder_attention_heads", kHeads},
      {"decoder_ffn_dim", kFfn},
      {"decoder_layerdrop", 0.0},
      {"decoder_layers", kLayers},
      {"decoder_start_token_id", kPad},
      {"decoder_vocab_size", kVocab},
      {"dropout", 0.1},
      {"encoder_attention_heads", kHeads},
      {"encoder_ffn_dim", kFfn},
      {"encoder_layerdrop", 0.0},
      {"encoder_layers", kLayers},
      {"eos_token_id", kEos},
      {"forced_eos_token_id", kEos},
      {"init_std", 0.02},
      {"is_encoder_decoder", true},
      {"max_position_embeddings", kMaxPositions},
      {"model_type", "marian"},
      {"normalize_embedding", false},
      {"num_hidden_layers", kLayers},
      {"pad_token_id", kPad},
      {"scale_embedding", true},
      {"share_encoder_decoder_embeddings", true},
      {"static_position_embeddings", true},
      {"torch_dtype", "float32"},
      {"use_cache", true},
      {"vocab_size", kVocab},
  };
}

json::object generation_config_json() {
  return json::object{
      {"bad_words_ids", json::array{json::array{kPad}}},
      {"bos_token_id", kEos},
      {"decoder_start_token_id", kPad},
      {"eos_token_id", kEos},
      {"forced_eos_token_id", kEos},
      {"max_length", kMaxPositions},
      {"num_beams", 4},
      {"pad_token_id", kPad},
      {"renormalize_logits", true},
  };
}

// </s> = 0, <unk> = 1, <pad> = 58100, placeholder pieces in between.
json::object vocab_json() {
  json::object vocab;
  vocab.reserve(kVocab);
  vocab["</s>"] = 0;
  vocab["<unk>"] = 1;
  for (int id = 2; id < kPad; ++id) vocab["\xe2\x96\x81piece" + std::to_string(id)] = id;
  vocab["<pad>"] = kPad;
  return vocab;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Writes a random-weight OPUS-MT-base shaped MarianMT checkpoint (benchmark input)"};
  std::string out_dir;
  uint64_t seed = 20240601;
  std::string spm_from;
#ifdef TRANSNOTES_SOURCE_DIR
  spm_from = std::string(TRANSNOTES_SOURCE_DIR) + "/tests/fixtures/marian/tiny-en-es";
#endif
  app.add_option("--out", out_dir, "output folder (created)")->required();
  app.add_option("--seed", seed, "weight seed");
  app.add_option("--spm-from", spm_from, "folder to copy source.spm / target.spm from");
  CLI11_PARSE(app, argc, argv);

  try {
    const fs::path dir(out_dir);
    fs::create_directories(dir);
    write_text(dir / "config.json", json::serialize(config_json()));
    write_text(dir / "generation_config.json", json::serialize(generation_config_json()));
    write_text(dir / "vocab.json", json::serialize(vocab_json()));
    for (const char* spm : {"source.spm", "target.spm"}) {
      fs::remove(dir / spm);  // the fixture's files are read-only: copies keep that mode
      fs::copy_file(fs::path(spm_from) / spm, dir / spm);
    }
    const auto tensors = marian_tensors();
    int64_t parameters = 0;
    for (const auto& t : tensors) parameters += t.elements();
    write_safetensors(dir / "model.safetensors", tensors, seed);
    std::cout << "wrote " << dir.string() << ": " << tensors.size() << " tensors, " << parameters
              << " parameters, " << fs::file_size(dir / "model.safetensors") << " bytes\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
