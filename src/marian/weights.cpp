#include "marian/weights.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <unordered_set>

namespace transnotes::marian {

namespace {

using ops::Linear;

float half_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

class Binder {
 public:
  Binder(const SafetensorsFile& file, ModelWeights& w) : file_(file), w_(w) {}

  // Returns fp32 data of `name` with exactly `shape`; nullptr when absent and !required.
  const float* get(const std::string& name, std::vector<int64_t> shape, bool required = true) {
    const TensorInfo* t = file_.find(name);
    if (!t) {
      if (!required) return nullptr;
      throw ModelLoadError(file_.path().string() + ": missing tensor '" + name + "'");
    }
    if (t->shape != shape) {
      // A [1, n] vs [n] difference (final_logits_bias) is tolerated.
      int64_t want = 1;
      for (auto d : shape) want *= d;
      bool squeezable = t->elements() == want && shape.size() == 1;
      if (!squeezable) {
        throw ModelLoadError(file_.path().string() + ": tensor '" + name + "' has shape " +
                             shape_str(t->shape) + ", expected " + shape_str(shape));
      }
    }
    const size_t n = static_cast<size_t>(t->elements());
    if (t->dtype == DType::kF32) {
      if (reinterpret_cast<uintptr_t>(t->data) % alignof(float) == 0) {
        const auto* mapped = reinterpret_cast<const float*>(t->data);
        mapped_.insert(mapped);
        return mapped;
      }
      auto& buf = w_.owned.emplace_back(n);
      std::memcpy(buf.data(), t->data, n * 4);
      return buf.data();
    }
    if (t->dtype == DType::kF16 || t->dtype == DType::kBF16) {
      auto& buf = w_.owned.emplace_back(n);
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t->data + 2 * i, 2);
        if (t->dtype == DType::kF16) {
          buf[i] = half_to_float(h);
        } else {
          uint32_t bits = static_cast<uint32_t>(h) << 16;
          std::memcpy(&buf[i], &bits, 4);
        }
      }
      return buf.data();
    }
    throw ModelLoadError(file_.path().string() + ": tensor '" + name + "' has unsupported dtype " +
                         t->dtype_name);
  }

  Linear linear(const std::string& prefix, int out, int in) {
    return Linear{get(prefix + ".weight", {out, in}), get(prefix + ".bias", {out}), out, in};
  }
  // Whether p was returned by get() as a pointer into the read-only file mapping (rather than a
  // converted copy). Safe to call from several threads once binding is done.
  bool is_mapped(const float* p) const { return mapped_.count(p) != 0; }
  ops::LayerNorm layer_norm(const std::string& prefix, int d) {
    return ops::LayerNorm{get(prefix + ".weight", {d}), get(prefix + ".bias", {d})};
  }
  ops::Attention attention(const std::string& prefix, int d) {
    return ops::Attention{linear(prefix + ".q_proj", d, d), linear(prefix + ".k_proj", d, d),
                          linear(prefix + ".v_proj", d, d), linear(prefix + ".out_proj", d, d)};
  }

 private:
  static std::string shape_str(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
  }
  const SafetensorsFile& file_;
  ModelWeights& w_;
  std::unordered_set<const float*> mapped_;
};

// Drops the resident pages wholly inside [p, p + bytes) of the read-only, privately mapped
// weights file: RSS falls, and a later read faults the data in again from the page cache.
// Best effort (errors ignored).
void release_pages(const void* p, size_t bytes) {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto at = reinterpret_cast<uintptr_t>(p);
  const uintptr_t begin = (at + page - 1) / page * page;
  const uintptr_t end = (at + bytes) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace

std::unique_ptr<ModelWeights> bind_weights(const SafetensorsFile& file, const MarianConfig& c,
                                           const ModelOptions& options) {
  auto weights = std::make_unique<ModelWeights>();
  auto& w = *weights;
  const auto& weights_path = file.path();
  const int d = c.d_model;
  Binder bind(file, w);
  w.act = ops::activation_of(c.activation_function);
  w.embed_scale = c.scale_embedding ? std::sqrt(static_cast<float>(d)) : 1.0f;

  const float* shared = bind.get("model.shared.weight", {c.vocab_size, d}, false);
  w.encoder_embed = bind.get("model.encoder.embed_tokens.weight", {c.vocab_size, d}, false);
  if (!w.encoder_embed) w.encoder_embed = shared;
  w.decoder_embed = bind.get("model.decoder.embed_tokens.weight", {c.decoder_vocab_size, d}, false);
  if (!w.decoder_embed && c.decoder_vocab_size == c.vocab_size) w.decoder_embed = shared;
  if (!w.encoder_embed || !w.decoder_embed)
    throw ModelLoadError(
        weights_path.string() +
        ": missing tensor 'model.shared.weight' (or encoder/decoder embed_tokens)");
  const float* lm = bind.get("lm_head.weight", {c.decoder_vocab_size, d}, false);
  w.lm_head.w = lm ? lm : w.decoder_embed;
  w.lm_head.out = c.decoder_vocab_size;
  w.lm_head.in = d;
  w.lm_head.b = bind.get("final_logits_bias", {c.decoder_vocab_size}, false);
  if (!w.lm_head.b) {
    w.lm_head.b = w.owned.emplace_back(static_cast<size_t>(c.decoder_vocab_size), 0.0f).data();
  }

  for (int i = 0; i < c.encoder_layers; ++i) {
    const std::string p = "model.encoder.layers." + std::to_string(i) + ".";
    EncoderLayerWeights l;
    l.self = bind.attention(p + "self_attn", d);
    l.self_ln = bind.layer_norm(p + "self_attn_layer_norm", d);
    l.ffn.fc1 = bind.linear(p + "fc1", c.encoder_ffn_dim, d);
    l.ffn.fc2 = bind.linear(p + "fc2", d, c.encoder_ffn_dim);
    l.final_ln = bind.layer_norm(p + "final_layer_norm", d);
    w.encoder.push_back(l);
  }
  for (int i = 0; i < c.decoder_layers; ++i) {
    const std::string p = "model.decoder.layers." + std::to_string(i) + ".";
    DecoderLayerWeights l;
    l.self = bind.attention(p + "self_attn", d);
    l.self_ln = bind.layer_norm(p + "self_attn_layer_norm", d);
    l.cross = bind.attention(p + "encoder_attn", d);
    l.cross_ln = bind.layer_norm(p + "encoder_attn_layer_norm", d);
    l.ffn.fc1 = bind.linear(p + "fc1", c.decoder_ffn_dim, d);
    l.ffn.fc2 = bind.linear(p + "fc2", d, c.decoder_ffn_dim);
    l.final_ln = bind.layer_norm(p + "final_layer_norm", d);
    w.decoder.push_back(l);
  }

  const int load_threads =
      std::max(1, options.num_threads > 0 ? options.num_threads
                                          : static_cast<int>(std::thread::hardware_concurrency()));
  std::vector<Linear*> all_linears;
  for (auto& l : w.encoder)
    for (Linear* lin : {&l.self.q, &l.self.k, &l.self.v, &l.self.o, &l.ffn.fc1, &l.ffn.fc2})
      all_linears.push_back(lin);
  for (auto& l : w.decoder)
    for (Linear* lin : {&l.self.q, &l.self.k, &l.self.v, &l.self.o, &l.cross.q, &l.cross.k,
                        &l.cross.v, &l.cross.o, &l.ffn.fc1, &l.ffn.fc2})
      all_linears.push_back(lin);
  all_linears.push_back(&w.lm_head);
  const bool vnni_shapes = std::all_of(all_linears.begin(), all_linears.end(),
                                       [](const Linear* l) { return l->in <= int8::kMaxIn; });
  if (options.int8 && options.int8_vnni && int8::have_vnni() && vnni_shapes) {
    // Every linear layer gets packed int8 weights for the VNNI kernel, which then serves all
    // row counts; the fp32 weights of those layers are never read again.
    const std::vector<Linear*>& targets = all_linears;
    w.packed.resize(targets.size());
    std::atomic<size_t> next{0};
    std::vector<std::thread> packers;
    for (int t = 0; t < load_threads; ++t)
      packers.emplace_back([&] {
        for (size_t i; (i = next.fetch_add(1)) < targets.size();) {
          const Linear& l = *targets[i];
          // The fp32 tensor's pages go back to the page cache as soon as they are packed, so
          // that RSS never holds both copies of a tensor (a tied embedding's pages are faulted
          // in again as rows are looked up).
          const size_t row_bytes = static_cast<size_t>(l.in) * sizeof(float);
          int released = 0;
          auto release_packed_rows = [&](int rows_done) {
            release_pages(l.w + static_cast<size_t>(released) * l.in,
                          (rows_done - released) * row_bytes);
            released = rows_done;
          };
          w.packed[i] = int8::PackedWeights::pack(
              l.w, l.b, l.out, l.in,
              bind.is_mapped(l.w) ? std::function<void(int)>(release_packed_rows) : nullptr);
        }
      });
    for (auto& packer : packers) packer.join();
    for (size_t i = 0; i < targets.size(); ++i) targets[i]->packed = &w.packed[i];
  } else if (options.int8) {
    // Without VNNI: symmetric per-row int8 copies of the decoder linear layers and the output
    // projection for the AVX2 few-rows kernels (weight-only quantization), used where <= 64 rows
    // are multiplied; larger products keep the fp32 weights.
    std::vector<Linear*> targets;
    for (auto& l : w.decoder)
      for (Linear* lin : {&l.self.q, &l.self.k, &l.self.v, &l.self.o, &l.cross.q, &l.cross.o,
                          &l.ffn.fc1, &l.ffn.fc2})
        targets.push_back(lin);
    targets.push_back(&w.lm_head);
    for (Linear* l : targets) {  // storage first (sequentially), then fill in parallel
      l->q = w.owned_q.emplace_back(static_cast<size_t>(l->out) * l->in).data();
      l->scale = w.owned.emplace_back(static_cast<size_t>(l->out)).data();
    }
    auto quantize_rows = [](Linear* l, int row_begin, int row_end) {
      auto* q = const_cast<int8_t*>(l->q);
      auto* scale = const_cast<float*>(l->scale);
      for (int o = row_begin; o < row_end; ++o) {
        const float* row = l->w + static_cast<size_t>(o) * l->in;
        float mx = 0.0f;
        for (int k = 0; k < l->in; ++k) mx = std::max(mx, std::fabs(row[k]));
        const float s = mx > 0.0f ? mx / 127.0f : 1.0f;
        scale[o] = s;
        for (int k = 0; k < l->in; ++k)
          q[static_cast<size_t>(o) * l->in + k] = int8::quantize_weight(row[k], s);
      }
    };
    std::vector<std::thread> workers;
    for (int t = 0; t < load_threads; ++t)
      workers.emplace_back([&, t] {
        for (Linear* l : targets) {
          const int chunk = (l->out + load_threads - 1) / load_threads;
          quantize_rows(l, std::min(l->out, t * chunk), std::min(l->out, (t + 1) * chunk));
        }
      });
    for (auto& worker : workers) worker.join();
  }
  w.screen_enabled = !options.int8 && options.greedy_screen && ArgmaxScreen::supported() &&
                     w.lm_head.in <= int8::kMaxIn;

  // Sinusoids as MarianSinusoidalPositionalEmbedding: sin half, then cos half (float64 math).
  const int max_pos = std::max(c.max_position_embeddings, 1);
  w.positions.assign(static_cast<size_t>(max_pos) * d, 0.0f);
  const int half = d / 2 + d % 2;  // sin columns
  for (int p = 0; p < max_pos; ++p) {
    float* row = w.positions.data() + static_cast<size_t>(p) * d;
    for (int j = 0; j < d; ++j) {
      int col = j < half ? 2 * j : 2 * (j - half) + 1;  // source column in the interleaved table
      double angle = p / std::pow(10000.0, 2.0 * (col / 2) / d);
      row[j] = static_cast<float>(j < half ? std::sin(angle) : std::cos(angle));
    }
  }
  return weights;
}

}  // namespace transnotes::marian
