// Internal to src/marian: not part of the engine's API; only ops.cpp and the other engine
// sources include it.
//
// Kernels: the engine's CPU primitives on raw float/int8 arrays (CTranslate2's "primitives"
// level). Each runs on the calling thread over the range it is given; splitting work across
// threads is the ops' job (ops.h). The AVX2 variants are chosen at run time; callers only
// need have_avx2_fma() where a kernel has no portable fallback (few_rows_matmul).
#pragma once

#include <cstddef>
#include <cstdint>

namespace transnotes::marian::kernels {

bool have_avx2_fma();

// Element-wise activations of transformers' ACT2FN that Marian checkpoints name.
enum class Activation {
  kSwish,
  kGelu,
  kGeluTanh,
  kGeluFast,
  kQuickGelu,
  kRelu,
  kTanh,
  kSigmoid,
  kLinear
};

// x[0..n) = act(x[0..n)).
void activate(Activation act, float* x, std::size_t n);

// Operands of y = x W^T + b for the few-rows kernels. The weights are fp32 (w), or int8 (q,
// w[o, k] ~= q[o, k] * scale[o]) when q is set.
struct MatmulArgs {
  const float* x;      // [n, in]
  const float* w;      // [out, in] fp32, or
  const int8_t* q;     // [out, in] int8 with per-row scale
  const float* scale;  // [out]
  const float* b;      // [out]
  int out, in;
  float* y;               // [n, out]
  bool prefetch = false;  // software-prefetch weight rows ahead (they stream from memory)
};

// Most input rows few_rows_matmul takes at once.
inline constexpr int kFewRowsMax = 8;

// Output columns [row_begin, row_end) of y for input rows 0..n (1 <= n <= kFewRowsMax): each
// weight row is streamed once and dotted with all n input rows held in cache. AVX2+FMA only.
void few_rows_matmul(const MatmulArgs& args, int n, int row_begin, int row_end);

// Rows [begin, end) of x = LayerNorm(x + r) (rows of d floats, eps 1e-5, statistics in double).
void add_layer_norm_rows(float* x, const float* r, int begin, int end, int d, const float* gamma,
                         const float* beta);

// Scaled dot-product attention of one query (one head's slice, already scaled) over `len`
// keys/values: key t is row (rows ? rows[t] : t) of k and v, rows `stride` floats apart, each
// hd floats long. scores: scratch of len floats. out: hd floats.
void attend(const float* q, const float* k, const float* v, const int* rows, int len, int stride,
            int hd, float* scores, float* out);

}  // namespace transnotes::marian::kernels
