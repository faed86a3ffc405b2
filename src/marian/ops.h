// Internal to src/marian: not part of the engine's API; only the engine's own sources include it.
//
// Ops: the transformer's building blocks (linear layer, layer norm, feed-forward block,
// embedding lookup, multi-head attention) over the parameter structs of one layer, built on the
// kernels (kernels.h), BLAS and the int8 GEMM (int8_gemm.h). Each op picks the kernel for its
// shape and splits the work across the engine's worker pool (parallel.h); results do not
// depend on how the work was split.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "marian/int8_gemm.h"
#include "marian/kernels.h"
#include "marian/parallel.h"

namespace transnotes::marian::ops {

using kernels::Activation;

// A linear layer y = x W^T + b. The weights point into the mapped checkpoint or into storage
// owned by ModelWeights (weights.h); a Linear owns nothing.
struct Linear {
  const float* w = nullptr;  // [out, in]
  const float* b = nullptr;  // [out]
  int out = 0;
  int in = 0;
  // Optional int8 copy (ModelOptions::int8), used by the few-rows kernel: w ~= q * scale[row].
  const int8_t* q = nullptr;
  const float* scale = nullptr;
  // Packed int8 copy for the AVX-512 VNNI kernel (ModelOptions::int8 on CPUs with VNNI; then
  // q/scale stay null and w is not read): activations are quantized too, at every row count.
  const int8::PackedWeights* packed = nullptr;
};
struct LayerNorm {
  const float* gamma = nullptr;
  const float* beta = nullptr;
};
struct Attention {
  Linear q, k, v, o;
};
struct FeedForward {
  Linear fc1, fc2;
};

// The activation named by config.json's activation_function. Throws ModelLoadError for names
// transformers' Marian does not support.
Activation activation_of(const std::string& name);

// y[n, out] = x[n, in] W^T + b.
void linear(const Linear& l, const float* x, int n, float* y);

// x = LayerNorm(x + r), row-wise over rows of d floats (the post-norm residual of Marian).
void add_layer_norm(float* x, const float* r, int rows, int d, const LayerNorm& ln);

// out = fc2(act(fc1(x))) for `rows` rows; hidden: scratch of rows * fc1.out floats.
void feed_forward(const FeedForward& ffn, Activation act, const float* x, int rows, float* hidden,
                  float* out);

// out[0..d) = tokens[id] * scale + positions[position] (rows of d floats; id and position are
// the caller's to check).
inline void embed(const float* tokens, const float* positions, float scale, int d, int id,
                  int position, float* out) {
  const float* e = tokens + static_cast<size_t>(id) * d;
  const float* pe = positions + static_cast<size_t>(position) * d;
  for (int j = 0; j < d; ++j) out[j] = e[j] * scale + pe[j];
}

// Self-attention of a padded batch [batch, src_len, d] (queries already scaled): every query of
// row b, padded positions included, attends to the first lengths[b] keys of its row.
// scores: scratch of batch * heads * src_len floats; out: [batch, src_len, d].
void attend_padded_rows(const float* q, const float* k, const float* v, int batch, int src_len,
                        const int* lengths, int heads, int d, float* scores, float* out);

// The keys and values one query attends to: row (rows ? rows[t] : t), t < len, of k and v,
// rows d floats apart (the head's offset is added by attend_each).
struct KeysValues {
  const float* k;
  const float* v;
  const int* rows;
  int len;
};

// Multi-head attention of n query rows [n, d] (already scaled), query i over keys_of(i) (a
// KeysValues). scores: scratch of n * heads * score_stride floats (score_stride >= every len);
// out: [n, d].
template <class KeysOf>
void attend_each(const float* q, int n, int heads, int d, const KeysOf& keys_of, float* scores,
                 size_t score_stride, float* out) {
  const int hd = d / heads;
  parallel_for(n * heads, 1, [&](int begin, int end) {
    for (int task = begin; task < end; ++task) {
      const int i = task / heads, h = task % heads;
      const KeysValues kv = keys_of(i);
      kernels::attend(q + i * d + h * hd, kv.k + h * hd, kv.v + h * hd, kv.rows, kv.len, d, hd,
                      scores + task * score_stride, out + i * d + h * hd);
    }
  });
}

}  // namespace transnotes::marian::ops
