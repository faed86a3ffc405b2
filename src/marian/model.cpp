#include "marian/model.h"

#include <cblas.h>
#include <immintrin.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "marian/argmax_screen.h"
#include "marian/int8_gemm.h"
#include "marian/parallel.h"
#include "marian/safetensors.h"
#include "marian/simd.h"

namespace transnotes::marian {

namespace {

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
struct LayerNormW {
  const float* gamma = nullptr;
  const float* beta = nullptr;
};
struct AttentionW {
  Linear q, k, v, o;
};
struct EncoderLayerW {
  AttentionW self;
  LayerNormW self_ln;
  Linear fc1, fc2;
  LayerNormW final_ln;
};
struct DecoderLayerW {
  AttentionW self;
  LayerNormW self_ln;
  AttentionW cross;
  LayerNormW cross_ln;
  Linear fc1, fc2;
  LayerNormW final_ln;
};

enum class Act { kSwish, kGelu, kGeluTanh, kGeluFast, kQuickGelu, kRelu, kTanh, kSigmoid, kLinear };

Act activation_of(const std::string& a) {
  if (a == "swish" || a == "silu") return Act::kSwish;
  if (a == "gelu" || a == "gelu_python") return Act::kGelu;
  if (a == "gelu_new" || a == "gelu_pytorch_tanh") return Act::kGeluTanh;
  if (a == "gelu_fast") return Act::kGeluFast;
  if (a == "quick_gelu") return Act::kQuickGelu;
  if (a == "relu") return Act::kRelu;
  if (a == "tanh") return Act::kTanh;
  if (a == "sigmoid") return Act::kSigmoid;
  if (a == "linear") return Act::kLinear;
  throw ModelLoadError("unknown activation_function '" + a + "'");
}

__attribute__((target("avx2,fma"))) size_t swish_avx2(float* x, size_t n) {
  size_t i = 0;
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 e = simd::exp256(_mm256_sub_ps(_mm256_setzero_ps(), v));
    _mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(one, e)));
  }
  return i;
}

void apply_activation_serial(Act act, float* x, size_t n) {
  switch (act) {
    case Act::kSwish: {
      size_t i = simd::have_avx2_fma() ? swish_avx2(x, n) : 0;
      for (; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
      break;
    }
    case Act::kGelu:
      for (size_t i = 0; i < n; ++i)
        x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
      break;
    case Act::kGeluTanh:
      for (size_t i = 0; i < n; ++i) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
      }
      break;
    case Act::kGeluFast:
      for (size_t i = 0; i < n; ++i) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + std::tanh(v * 0.7978845608f * (1.0f + 0.044715f * v * v)));
      }
      break;
    case Act::kQuickGelu:
      for (size_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-1.702f * x[i]));
      break;
    case Act::kRelu:
      for (size_t i = 0; i < n; ++i) x[i] = std::max(x[i], 0.0f);
      break;
    case Act::kTanh:
      for (size_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]);
      break;
    case Act::kSigmoid:
      for (size_t i = 0; i < n; ++i) x[i] = 1.0f / (1.0f + std::exp(-x[i]));
      break;
    case Act::kLinear:
      break;
  }
}

// Element-wise activation over `rows` rows of `cols`, rows split across the worker pool.
void apply_activation(Act act, float* x, int rows, int cols) {
  if (act == Act::kLinear) return;
  parallel_for(rows, 1, [&](int begin, int end) {
    apply_activation_serial(act, x + static_cast<size_t>(begin) * cols,
                            static_cast<size_t>(end - begin) * cols);
  });
}

// Few rows (greedy/beam search on one sentence, small batches): OpenBLAS sgemm would repack
// the whole weight matrix on every call (costlier than the multiply) and its threads spin on
// small problems. This kernel streams each weight row once and dots it with all N (<= 8) input
// rows held in cache; R weight rows at a time give independent FMA chains.
constexpr int kSmallRows = 8;

using simd::horizontal_sum;

struct KernelArgs {
  const float* x;      // [n, in]
  const float* w;      // [out, in] fp32, or
  const int8_t* q;     // [out, in] int8 with per-row scale
  const float* scale;  // [out]
  const float* b;      // [out]
  int out, in;
  float* y;               // [n, out]
  bool prefetch = false;  // software-prefetch weight rows ahead (they stream from memory)
};

template <bool Q8>
__attribute__((target("avx2,fma"))) inline __m256 load_weights(const KernelArgs& a, size_t at) {
  if constexpr (Q8) {
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a.q + at));
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
  } else {
    return _mm256_loadu_ps(a.w + at);
  }
}

template <bool Q8>
__attribute__((always_inline)) inline void prefetch_weights(const KernelArgs& a, size_t at) {
  if constexpr (Q8) {
    _mm_prefetch(reinterpret_cast<const char*>(a.q + at), _MM_HINT_T0);
  } else {
    _mm_prefetch(reinterpret_cast<const char*>(a.w + at), _MM_HINT_T0);
  }
}
// Weight rows are read R at a time, each only 2 KB long in OPUS-MT-base: too short for the
// hardware prefetcher to ramp up per row. When the weights stream from memory (few input rows,
// no L2 tiling), the rows this many groups ahead are prefetched one cache line per step.
constexpr int kPrefetchGroups = 4;

// y[j, row] = b[row] + (sum of acc lanes + the in % 8 tail) (* scale[row]).
template <bool Q8>
__attribute__((target("avx2,fma"), always_inline)) inline void finish_dot(const KernelArgs& a,
                                                                          __m256 acc, int row,
                                                                          int j, int vec_end) {
  float sum = horizontal_sum(acc);
  const size_t wr = static_cast<size_t>(row) * a.in;
  const float* xr = a.x + static_cast<size_t>(j) * a.in;
  for (int k = vec_end; k < a.in; ++k) sum += (Q8 ? a.q[wr + k] : a.w[wr + k]) * xr[k];
  if constexpr (Q8) sum *= a.scale[row];
  a.y[static_cast<size_t>(j) * a.out + row] = a.b[row] + sum;
}

template <int N, bool Q8>
__attribute__((target("avx2,fma"))) void small_linear_rows(const KernelArgs& a, int row_begin,
                                                           int row_end) {
  // R x N accumulators (<= 12 of the 16 ymm registers); more weight rows per pass means fewer
  // loads per FMA.
  constexpr int R = N <= 3 ? 4 : (N == 4 ? 3 : (N <= 6 ? 2 : 1));
  const int in = a.in;
  const int vec_end = in - in % 8;
  int o = row_begin;
  for (; o + R <= row_end; o += R) {
    __m256 acc[R][N];
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < N; ++j) acc[r][j] = _mm256_setzero_ps();
    for (int k = 0; k < vec_end; k += 8) {
      if (N >= 2 && a.prefetch && (k & 15) == 0 && o + (kPrefetchGroups + 1) * R <= row_end) {
        for (int r = 0; r < R; ++r)
          prefetch_weights<Q8>(a, static_cast<size_t>(o + kPrefetchGroups * R + r) * in + k);
      }
      for (int r = 0; r < R; ++r) {
        const __m256 wv = load_weights<Q8>(a, static_cast<size_t>(o + r) * in + k);
        for (int j = 0; j < N; ++j)
          acc[r][j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(a.x + static_cast<size_t>(j) * in + k),
                                      acc[r][j]);
      }
    }
    if constexpr (R == 4) {
      if (vec_end == in) {
        // Four rows' sums at once: two rounds of hadd, then the two 128-bit halves.
        for (int j = 0; j < N; ++j) {
          const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(acc[0][j], acc[1][j]),
                                          _mm256_hadd_ps(acc[2][j], acc[3][j]));
          __m128 sum = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
          if constexpr (Q8) sum = _mm_mul_ps(sum, _mm_loadu_ps(a.scale + o));
          _mm_storeu_ps(a.y + static_cast<size_t>(j) * a.out + o,
                        _mm_add_ps(_mm_loadu_ps(a.b + o), sum));
        }
        continue;
      }
    }
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < N; ++j) finish_dot<Q8>(a, acc[r][j], o + r, j, vec_end);
  }
  for (; o < row_end; ++o) {
    __m256 acc[N];
    for (int j = 0; j < N; ++j) acc[j] = _mm256_setzero_ps();
    for (int k = 0; k < vec_end; k += 8) {
      const __m256 wv = load_weights<Q8>(a, static_cast<size_t>(o) * in + k);
      for (int j = 0; j < N; ++j)
        acc[j] =
            _mm256_fmadd_ps(wv, _mm256_loadu_ps(a.x + static_cast<size_t>(j) * in + k), acc[j]);
    }
    for (int j = 0; j < N; ++j) finish_dot<Q8>(a, acc[j], o, j, vec_end);
  }
}

using SmallKernel = void (*)(const KernelArgs&, int, int);
template <bool Q8>
constexpr SmallKernel kSmallKernels[kSmallRows + 1] = {nullptr,
                                                       small_linear_rows<1, Q8>,
                                                       small_linear_rows<2, Q8>,
                                                       small_linear_rows<3, Q8>,
                                                       small_linear_rows<4, Q8>,
                                                       small_linear_rows<5, Q8>,
                                                       small_linear_rows<6, Q8>,
                                                       small_linear_rows<7, Q8>,
                                                       small_linear_rows<8, Q8>};

using simd::have_avx2_fma;

void small_linear(const Linear& l, const float* x, int n, float* y) {
  const KernelArgs args{x, l.w, l.q, l.scale, l.b, l.out, l.in, y, true};
  const SmallKernel kernel = l.q ? kSmallKernels<true>[n] : kSmallKernels<false>[n];
  // The pool's hand-off costs a few microseconds: worth it from ~64k weights on.
  if (static_cast<size_t>(l.out) * l.in < (size_t{1} << 16)) {
    kernel(args, 0, l.out);
    return;
  }
  parallel_for(l.out, 8, [&](int begin, int end) { kernel(args, begin, end); });
}

// Medium row counts (batched decoding): OpenBLAS would repack the whole weight matrix on every
// call, which costs more than the multiply for the output projection. Instead each block of
// weight rows (sized to stay in L2) is streamed from memory once and all input rows pass over
// it, 8 at a time, with the few-rows kernel.
constexpr int kTiledMaxRows = 128;
constexpr int kTiledMaxInt8Rows = 64;
constexpr size_t kTileBytes = size_t{128} << 10;
constexpr int kTiledGroup = 3;  // input rows per pass: the 3 x 4 register tile

void tiled_linear(const Linear& l, const float* x, int n, float* y) {
  // int8 weights halve the memory traffic but cost two conversions per 8 weights: with many
  // input rows the kernel is compute-bound and the fp32 weights are faster.
  const bool q8 = l.q && n <= kTiledMaxInt8Rows;
  const size_t row_bytes = static_cast<size_t>(l.in) * (q8 ? 1 : 4);
  // At least ~4 blocks per matrix so that small matrices still split across the threads.
  const size_t quarter = (static_cast<size_t>(l.out) / 4 + 7) / 8 * 8;
  const int block =
      static_cast<int>(std::max<size_t>(8, std::min(kTileBytes / row_bytes / 8 * 8, quarter)));
  parallel_for(l.out, block, [&](int begin, int end) {
    for (int b0 = begin; b0 < end; b0 += block) {
      const int b1 = std::min(end, b0 + block);
      for (int j = 0; j < n; j += kTiledGroup) {
        const int g = std::min(kTiledGroup, n - j);
        const KernelArgs args{
            x + static_cast<size_t>(j) * l.in,  l.w,  q8 ? l.q : nullptr, l.scale, l.b, l.out, l.in,
            y + static_cast<size_t>(j) * l.out, false};
        (q8 ? kSmallKernels<true>[g] : kSmallKernels<false>[g])(args, b0, b1);
      }
    }
  });
}

// y[n, out] = x[n, in] W^T + b
void linear(const Linear& l, const float* x, int n, float* y) {
  if (n <= 0) return;
  if (l.packed) {  // int8 mode on a CPU with VNNI: faster than the fp32 paths at every n
    int8::linear(*l.packed, x, n, y);
    return;
  }
  if (n <= kSmallRows && have_avx2_fma()) {
    small_linear(l, x, n, y);
    return;
  }
  if (n <= kTiledMaxRows && have_avx2_fma()) {
    tiled_linear(l, x, n, y);
    return;
  }
  for (int i = 0; i < n; ++i) std::memcpy(y + static_cast<size_t>(i) * l.out, l.b, l.out * 4);
  if (n == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, l.out, l.in, 1.0f, l.w, l.in, x, 1, 1.0f, y, 1);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, l.out, l.in, 1.0f, x, l.in, l.w, l.in,
                1.0f, y, l.out);
  }
}

// x = LayerNorm(x + r) row-wise, eps 1e-5. Rows are split across the worker pool; each row's
// arithmetic is the same whichever thread does it.
void add_layer_norm(float* x, const float* r, int rows, int d, const LayerNormW& ln) {
  auto norm_rows = [&](int begin, int end) {
    for (int i = begin; i < end; ++i) {
      float* row = x + static_cast<size_t>(i) * d;
      const float* res = r + static_cast<size_t>(i) * d;
      double mean = 0.0;
      for (int j = 0; j < d; ++j) {
        row[j] += res[j];
        mean += row[j];
      }
      mean /= d;
      double var = 0.0;
      for (int j = 0; j < d; ++j) {
        double c = row[j] - mean;
        var += c * c;
      }
      var /= d;
      const float inv = static_cast<float>(1.0 / std::sqrt(var + 1e-5));
      const float m = static_cast<float>(mean);
      for (int j = 0; j < d; ++j) row[j] = (row[j] - m) * inv * ln.gamma[j] + ln.beta[j];
    }
  };
  // The pool's hand-off costs a few microseconds: only worth it for more than a few rows.
  if (static_cast<size_t>(rows) * d < (size_t{1} << 13)) {
    norm_rows(0, rows);
  } else {
    parallel_for(rows, 4, norm_rows);
  }
}

void softmax_inplace(float* s, int n) {
  float mx = -INFINITY;
  for (int i = 0; i < n; ++i) mx = std::max(mx, s[i]);
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) {
    s[i] = std::exp(s[i] - mx);
    sum += s[i];
  }
  const float inv = 1.0f / sum;
  for (int i = 0; i < n; ++i) s[i] *= inv;
}

// One query row (head slice, already scaled) against `len` keys/values: key t is row
// (rows ? rows[t] : t) of k / v, rows `stride` floats apart -> out (head slice). scores: len
// floats.
// Value accumulators per pass of attend_one_avx2 (8 x 8 lanes = head_dim 64 of OPUS-MT base).
constexpr int kValueBlocks = 8;

__attribute__((target("avx2,fma"))) void attend_one_avx2(const float* q, const float* k,
                                                         const float* v, const int* rows, int len,
                                                         int stride, int hd, float* scores,
                                                         float* out) {
  auto row_of = [rows, stride](int t) { return static_cast<size_t>(rows ? rows[t] : t) * stride; };
  int t = 0;
  // Four keys at a time: independent FMA chains, one hadd reduction for four scores.
  for (; t + 4 <= len; t += 4) {
    const float* k0 = k + row_of(t);
    const float* k1 = k + row_of(t + 1);
    const float* k2 = k + row_of(t + 2);
    const float* k3 = k + row_of(t + 3);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int j = 0; j < hd; j += 8) {
      const __m256 qv = _mm256_loadu_ps(q + j);
      a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + j), a0);
      a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + j), a1);
      a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + j), a2);
      a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + j), a3);
    }
    const __m256 s4 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    _mm_storeu_ps(scores + t, _mm_add_ps(_mm256_castps256_ps128(s4), _mm256_extractf128_ps(s4, 1)));
  }
  for (; t < len; ++t) {
    const float* kt = k + row_of(t);
    __m256 acc = _mm256_setzero_ps();
    for (int j = 0; j < hd; j += 8)
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + j), _mm256_loadu_ps(kt + j), acc);
    scores[t] = simd::horizontal_sum(acc);
  }
  float mx = -INFINITY;
  for (t = 0; t < len; ++t) mx = std::max(mx, scores[t]);
  float sum = 0.0f;
  for (t = 0; t < len; ++t) {
    scores[t] = std::exp(scores[t] - mx);
    sum += scores[t];
  }
  const __m256 inv = _mm256_set1_ps(1.0f / sum);
  int j = 0;
  // kValueBlocks x 8 output lanes at a time in as many accumulators (one pass over the values).
  for (; j + 8 * kValueBlocks <= hd; j += 8 * kValueBlocks) {
    __m256 acc[kValueBlocks];
    for (int b = 0; b < kValueBlocks; ++b) acc[b] = _mm256_setzero_ps();
    for (t = 0; t < len; ++t) {
      const float* vt = v + row_of(t) + j;
      const __m256 p = _mm256_set1_ps(scores[t]);
      for (int b = 0; b < kValueBlocks; ++b)
        acc[b] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vt + 8 * b), acc[b]);
    }
    for (int b = 0; b < kValueBlocks; ++b)
      _mm256_storeu_ps(out + j + 8 * b, _mm256_mul_ps(acc[b], inv));
  }
  for (; j < hd; j += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (t = 0; t < len; ++t)
      acc = _mm256_fmadd_ps(_mm256_set1_ps(scores[t]), _mm256_loadu_ps(v + row_of(t) + j), acc);
    _mm256_storeu_ps(out + j, _mm256_mul_ps(acc, inv));
  }
}

void attend_one(const float* q, const float* k, const float* v, const int* rows, int len,
                int stride, int hd, float* scores, float* out) {
  if (hd % 8 == 0 && have_avx2_fma()) {
    attend_one_avx2(q, k, v, rows, len, stride, hd, scores, out);
    return;
  }
  for (int t = 0; t < len; ++t) {
    const float* kt = k + static_cast<size_t>(rows ? rows[t] : t) * stride;
    float s = 0.0f;
    for (int j = 0; j < hd; ++j) s += q[j] * kt[j];
    scores[t] = s;
  }
  softmax_inplace(scores, len);
  for (int j = 0; j < hd; ++j) out[j] = 0.0f;
  for (int t = 0; t < len; ++t) {
    const float* vt = v + static_cast<size_t>(rows ? rows[t] : t) * stride;
    const float p = scores[t];
    for (int j = 0; j < hd; ++j) out[j] += p * vt[j];
  }
}

void ensure(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

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

}  // namespace

struct MarianModel::Weights {
  std::vector<std::vector<float>> owned;  // converted / realigned tensors
  std::vector<std::vector<int8_t>> owned_q;
  std::vector<int8::PackedWeights> packed;  // int8 mode with VNNI: one per linear layer
  // fp32 mode: greedy argmax over lm_head, built by the first greedy step (beam search, the
  // usual default, never needs its int8 copy of the output projection).
  bool screen_enabled = false;
  mutable std::once_flag screen_once;
  mutable std::unique_ptr<ArgmaxScreen> screen;
  const float* encoder_embed = nullptr;  // [vocab_size, d]
  const float* decoder_embed = nullptr;  // [decoder_vocab_size, d]
  Linear lm_head;                        // [decoder_vocab_size, d] + final_logits_bias
  std::vector<float> positions;          // [max_position_embeddings, d]
  std::vector<EncoderLayerW> encoder;
  std::vector<DecoderLayerW> decoder;
  Act act = Act::kSwish;
  float embed_scale = 1.0f;
};

namespace {

class Binder {
 public:
  Binder(const SafetensorsFile& file, MarianModel::Weights& w) : file_(file), w_(w) {}

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
  LayerNormW layer_norm(const std::string& prefix, int d) {
    return LayerNormW{get(prefix + ".weight", {d}), get(prefix + ".bias", {d})};
  }
  AttentionW attention(const std::string& prefix, int d) {
    return AttentionW{linear(prefix + ".q_proj", d, d), linear(prefix + ".k_proj", d, d),
                      linear(prefix + ".v_proj", d, d), linear(prefix + ".out_proj", d, d)};
  }

 private:
  static std::string shape_str(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
  }
  const SafetensorsFile& file_;
  MarianModel::Weights& w_;
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

MarianModel::~MarianModel() = default;

std::shared_ptr<const MarianModel> MarianModel::load(const std::filesystem::path& model_dir,
                                                     const ModelOptions& options) {
  std::shared_ptr<MarianModel> m(new MarianModel());
  m->dir_ = model_dir;
  m->config_ = load_marian_config(model_dir);
  m->generation_ = load_generation_config(model_dir, m->config_);
  const auto weights_path = model_dir / "model.safetensors";
  if (!std::filesystem::exists(weights_path))
    throw ModelLoadError(weights_path.string() + ": missing (only model.safetensors is supported)");
  m->file_ = std::make_unique<SafetensorsFile>(weights_path);
  m->weights_ = std::make_unique<Weights>();
  auto& w = *m->weights_;
  const auto& c = m->config_;
  const int d = c.d_model;
  Binder bind(*m->file_, w);
  w.act = activation_of(c.activation_function);
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
    EncoderLayerW l;
    l.self = bind.attention(p + "self_attn", d);
    l.self_ln = bind.layer_norm(p + "self_attn_layer_norm", d);
    l.fc1 = bind.linear(p + "fc1", c.encoder_ffn_dim, d);
    l.fc2 = bind.linear(p + "fc2", d, c.encoder_ffn_dim);
    l.final_ln = bind.layer_norm(p + "final_layer_norm", d);
    w.encoder.push_back(l);
  }
  for (int i = 0; i < c.decoder_layers; ++i) {
    const std::string p = "model.decoder.layers." + std::to_string(i) + ".";
    DecoderLayerW l;
    l.self = bind.attention(p + "self_attn", d);
    l.self_ln = bind.layer_norm(p + "self_attn_layer_norm", d);
    l.cross = bind.attention(p + "encoder_attn", d);
    l.cross_ln = bind.layer_norm(p + "encoder_attn_layer_norm", d);
    l.fc1 = bind.linear(p + "fc1", c.decoder_ffn_dim, d);
    l.fc2 = bind.linear(p + "fc2", d, c.decoder_ffn_dim);
    l.final_ln = bind.layer_norm(p + "final_layer_norm", d);
    w.decoder.push_back(l);
  }

  const int load_threads =
      std::max(1, options.num_threads > 0 ? options.num_threads
                                          : static_cast<int>(std::thread::hardware_concurrency()));
  std::vector<Linear*> all_linears;
  for (auto& l : w.encoder)
    for (Linear* lin : {&l.self.q, &l.self.k, &l.self.v, &l.self.o, &l.fc1, &l.fc2})
      all_linears.push_back(lin);
  for (auto& l : w.decoder)
    for (Linear* lin : {&l.self.q, &l.self.k, &l.self.v, &l.self.o, &l.cross.q, &l.cross.k,
                        &l.cross.v, &l.cross.o, &l.fc1, &l.fc2})
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
      for (Linear* lin :
           {&l.self.q, &l.self.k, &l.self.v, &l.self.o, &l.cross.q, &l.cross.o, &l.fc1, &l.fc2})
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
  return m;
}

std::shared_ptr<const EncoderOutput> MarianModel::encode(
    const std::vector<std::vector<int>>& input_ids,
    std::vector<std::vector<float>>* layer_outputs) const {
  const auto& c = config_;
  const auto& w = *weights_;
  const int d = c.d_model;
  const int heads = c.encoder_attention_heads;
  const int hd = d / heads;
  const float scaling = 1.0f / std::sqrt(static_cast<float>(hd));
  auto out = std::make_shared<EncoderOutput>();
  out->batch = static_cast<int>(input_ids.size());
  out->d_model = d;
  int src_len = 0;
  for (const auto& row : input_ids) {
    if (row.empty()) throw TranslationFailed("marian: empty source row");
    src_len = std::max(src_len, static_cast<int>(row.size()));
    out->lengths.push_back(static_cast<int>(row.size()));
  }
  if (src_len > c.max_position_embeddings)
    throw TranslationFailed("marian: source longer than max_position_embeddings");
  out->src_len = src_len;
  const int rows = out->batch * src_len;
  auto& x = out->hidden;
  x.assign(static_cast<size_t>(rows) * d, 0.0f);
  for (int b = 0; b < out->batch; ++b) {
    for (int t = 0; t < src_len; ++t) {
      int id = t < out->lengths[b] ? input_ids[b][t] : c.pad_token_id;
      if (id < 0 || id >= c.vocab_size) throw TranslationFailed("marian: token id out of range");
      const float* e = w.encoder_embed + static_cast<size_t>(id) * d;
      const float* pe = w.positions.data() + static_cast<size_t>(t) * d;
      float* dst = x.data() + (static_cast<size_t>(b) * src_len + t) * d;
      for (int j = 0; j < d; ++j) dst[j] = e[j] * w.embed_scale + pe[j];
    }
  }
  if (layer_outputs) {
    layer_outputs->clear();
    layer_outputs->push_back(x);
  }
  std::vector<float> q(x.size()), k(x.size()), v(x.size()), attn(x.size()), tmp(x.size());
  std::vector<float> scores(static_cast<size_t>(out->batch) * heads * src_len);
  int ffn = c.encoder_ffn_dim;
  std::vector<float> hidden(static_cast<size_t>(rows) * ffn);
  for (const auto& l : w.encoder) {
    linear(l.self.q, x.data(), rows, q.data());
    linear(l.self.k, x.data(), rows, k.data());
    linear(l.self.v, x.data(), rows, v.data());
    for (float& value : q) value *= scaling;
    // Every query (incl. padded positions) attends to the row's valid keys only.
    parallel_for(out->batch * heads, 1, [&](int begin, int end) {
      for (int task = begin; task < end; ++task) {
        const int b = task / heads, h = task % heads;
        const int len = out->lengths[b];
        const size_t base = static_cast<size_t>(b) * src_len * d + h * hd;
        float* sc = scores.data() + static_cast<size_t>(task) * src_len;
        for (int t = 0; t < src_len; ++t) {
          const size_t at = base + static_cast<size_t>(t) * d;
          attend_one(q.data() + at, k.data() + base, v.data() + base, nullptr, len, d, hd, sc,
                     attn.data() + at);
        }
      }
    });
    linear(l.self.o, attn.data(), rows, tmp.data());
    add_layer_norm(x.data(), tmp.data(), rows, d, l.self_ln);  // x = LN(x + attn)
    linear(l.fc1, x.data(), rows, hidden.data());
    apply_activation(w.act, hidden.data(), rows, ffn);
    linear(l.fc2, hidden.data(), rows, tmp.data());
    add_layer_norm(x.data(), tmp.data(), rows, d, l.final_ln);
    if (layer_outputs) layer_outputs->push_back(x);
  }
  return out;
}

std::unique_ptr<DecoderState> MarianModel::start_decoder(
    std::shared_ptr<const EncoderOutput> encoder, std::vector<int> source_row,
    int max_steps) const {
  const auto& c = config_;
  const auto& w = *weights_;
  const int d = c.d_model;
  auto s = std::make_unique<DecoderState>();
  const int rows = encoder->batch * encoder->src_len;
  s->capacity = std::min(max_steps, c.max_position_embeddings);
  s->cross_k.resize(w.decoder.size());
  s->cross_v.resize(w.decoder.size());
  s->self_k.resize(w.decoder.size());
  s->self_v.resize(w.decoder.size());
  for (size_t i = 0; i < w.decoder.size(); ++i) {
    s->cross_k[i].resize(static_cast<size_t>(rows) * d);
    s->cross_v[i].resize(static_cast<size_t>(rows) * d);
    linear(w.decoder[i].cross.k, encoder->hidden.data(), rows, s->cross_k[i].data());
    linear(w.decoder[i].cross.v, encoder->hidden.data(), rows, s->cross_v[i].data());
    s->self_k[i].resize(source_row.size() * s->capacity * d);
    s->self_v[i].resize(source_row.size() * s->capacity * d);
  }
  for (int r : source_row)
    if (r < 0 || r >= encoder->batch) throw TranslationFailed("marian: bad source row");
  s->slots = static_cast<int>(source_row.size());
  s->cache_rows.assign(source_row.size() * s->capacity, 0);
  s->source_row = std::move(source_row);
  s->encoder = std::move(encoder);
  return s;
}

const float* MarianModel::decoder_hidden(DecoderState& s, std::span<const int> tokens) const {
  const auto& c = config_;
  const auto& w = *weights_;
  const int d = c.d_model;
  const int n = s.num_hyps();
  const int heads = c.decoder_attention_heads;
  const int hd = d / heads;
  const float scaling = 1.0f / std::sqrt(static_cast<float>(hd));
  const int pos = s.steps;
  if (static_cast<int>(tokens.size()) != n) throw TranslationFailed("marian: token count");
  if (pos >= s.capacity) throw TranslationFailed("marian: decoder state is full");
  const size_t nd = static_cast<size_t>(n) * d;
  const int src_len = s.encoder->src_len;
  ensure(s.x, nd);
  ensure(s.tmp, nd);
  ensure(s.q, nd * 3);
  ensure(s.attn, nd);
  ensure(s.ffn, static_cast<size_t>(n) * c.decoder_ffn_dim);
  const size_t score_stride = static_cast<size_t>(std::max(src_len, pos + 1));
  ensure(s.scores, static_cast<size_t>(n) * heads * score_stride);
  // This step's keys/values go to cache rows pos * slots + i.
  for (int i = 0; i < n; ++i)
    s.cache_rows[static_cast<size_t>(i) * s.capacity + pos] = pos * s.slots + i;
  float* x = s.x.data();
  for (int i = 0; i < n; ++i) {
    int id = tokens[i];
    if (id < 0 || id >= c.decoder_vocab_size) throw TranslationFailed("marian: token id range");
    const float* e = w.decoder_embed + static_cast<size_t>(id) * d;
    const float* pe = w.positions.data() + static_cast<size_t>(pos) * d;
    for (int j = 0; j < d; ++j) x[static_cast<size_t>(i) * d + j] = e[j] * w.embed_scale + pe[j];
  }
  float* q = s.q.data();
  float* kn = q + nd;
  float* vn = kn + nd;
  for (size_t li = 0; li < w.decoder.size(); ++li) {
    const auto& l = w.decoder[li];
    // Causal self-attention: the new token attends to all cached positions and itself.
    linear(l.self.q, x, n, q);
    linear(l.self.k, x, n, kn);
    linear(l.self.v, x, n, vn);
    float* kc = s.self_k[li].data();
    float* vc = s.self_v[li].data();
    const size_t step_base = static_cast<size_t>(pos) * s.slots * d;
    std::memcpy(kc + step_base, kn, nd * 4);
    std::memcpy(vc + step_base, vn, nd * 4);
    for (size_t j = 0; j < nd; ++j) q[j] *= scaling;
    parallel_for(n * heads, 1, [&](int begin, int end) {
      for (int task = begin; task < end; ++task) {
        const int i = task / heads, h = task % heads;
        attend_one(q + i * d + h * hd, kc + h * hd, vc + h * hd,
                   s.cache_rows.data() + static_cast<size_t>(i) * s.capacity, pos + 1, d, hd,
                   s.scores.data() + task * score_stride, s.attn.data() + i * d + h * hd);
      }
    });
    linear(l.self.o, s.attn.data(), n, s.tmp.data());
    add_layer_norm(x, s.tmp.data(), n, d, l.self_ln);
    // Cross-attention over the hypothesis' source row (valid positions only).
    linear(l.cross.q, x, n, q);
    for (size_t j = 0; j < nd; ++j) q[j] *= scaling;
    const float* ck = s.cross_k[li].data();
    const float* cv = s.cross_v[li].data();
    parallel_for(n * heads, 1, [&](int begin, int end) {
      for (int task = begin; task < end; ++task) {
        const int i = task / heads, h = task % heads;
        const int row = s.source_row[i];
        const int len = s.encoder->lengths[row];
        const size_t base = static_cast<size_t>(row) * src_len * d + h * hd;
        attend_one(q + i * d + h * hd, ck + base, cv + base, nullptr, len, d, hd,
                   s.scores.data() + task * score_stride, s.attn.data() + i * d + h * hd);
      }
    });
    linear(l.cross.o, s.attn.data(), n, s.tmp.data());
    add_layer_norm(x, s.tmp.data(), n, d, l.cross_ln);
    linear(l.fc1, x, n, s.ffn.data());
    apply_activation(w.act, s.ffn.data(), n, c.decoder_ffn_dim);
    linear(l.fc2, s.ffn.data(), n, s.tmp.data());
    add_layer_norm(x, s.tmp.data(), n, d, l.final_ln);
  }
  ++s.steps;
  return x;
}

void MarianModel::decoder_step(DecoderState& s, std::span<const int> tokens, float* logits) const {
  const float* x = decoder_hidden(s, tokens);
  linear(weights_->lm_head, x, s.num_hyps(), logits);
}

void MarianModel::decoder_step_greedy(DecoderState& s, std::span<const int> tokens,
                                      std::span<const std::vector<int>> banned, int* chosen) const {
  const int n = s.num_hyps();
  if (static_cast<int>(banned.size()) < n) throw TranslationFailed("marian: banned ids per row");
  const float* x = decoder_hidden(s, tokens);
  const int V = config_.decoder_vocab_size;
  ensure(s.logits, static_cast<size_t>(n) * V);
  const auto& w = *weights_;
  if (const ArgmaxScreen* screen = greedy_screen()) {
    screen->argmax(x, n, banned, chosen, s.logits.data());
    return;
  }
  linear(w.lm_head, x, n, s.logits.data());
  parallel_for(n, 1, [&](int begin, int end) {
    for (int i = begin; i < end; ++i) {
      if (chosen[i] >= 0) continue;
      float* row = s.logits.data() + static_cast<size_t>(i) * V;
      for (int b : banned[i]) row[b] = -std::numeric_limits<float>::infinity();
      chosen[i] = first_argmax(row, V);
    }
  });
}

bool MarianModel::has_greedy_screen() const { return weights_->screen_enabled; }

const ArgmaxScreen* MarianModel::greedy_screen() const {
  const auto& w = *weights_;
  if (!w.screen_enabled) return nullptr;
  std::call_once(w.screen_once, [&] {
    w.screen =
        std::make_unique<ArgmaxScreen>(w.lm_head.w, w.lm_head.b, w.lm_head.out, w.lm_head.in);
  });
  return w.screen.get();
}

void MarianModel::select_hypotheses(DecoderState& s, std::span<const int> keep) const {
  const int n = static_cast<int>(keep.size());
  bool identity = n == s.num_hyps();
  for (int i = 0; i < n && identity; ++i) identity = keep[i] == i;
  if (identity) return;
  if (n > s.slots) throw TranslationFailed("marian: more hypotheses than the decoder state holds");
  for (int k : keep)
    if (k < 0 || k >= s.num_hyps()) throw TranslationFailed("marian: bad hypothesis index");
  const size_t cap = static_cast<size_t>(s.capacity);
  s.cache_rows_spare.resize(s.cache_rows.size());
  for (int i = 0; i < n; ++i)
    std::copy_n(s.cache_rows.data() + keep[i] * cap, s.steps, s.cache_rows_spare.data() + i * cap);
  s.cache_rows.swap(s.cache_rows_spare);
  std::vector<int> rows(n);
  for (int i = 0; i < n; ++i) rows[i] = s.source_row[keep[i]];
  s.source_row = std::move(rows);
}

std::vector<float> MarianModel::teacher_forced_logits(
    const std::vector<std::vector<int>>& input_ids,
    const std::vector<std::vector<int>>& decoder_ids) const {
  auto enc = encode(input_ids);
  const int n = static_cast<int>(decoder_ids.size());
  std::vector<int> rows(n);
  for (int i = 0; i < n; ++i) rows[i] = i;
  const int steps = n ? static_cast<int>(decoder_ids[0].size()) : 0;
  auto state = start_decoder(enc, rows, steps);
  const size_t V = static_cast<size_t>(config_.decoder_vocab_size);
  std::vector<float> out(static_cast<size_t>(n) * steps * V);
  std::vector<float> step_logits(n * V);
  std::vector<int> tokens(n);
  for (int t = 0; t < steps; ++t) {
    for (int i = 0; i < n; ++i) tokens[i] = decoder_ids[i].at(t);
    decoder_step(*state, tokens, step_logits.data());
    for (int i = 0; i < n; ++i)
      std::copy_n(step_logits.data() + i * V, V,
                  out.data() + (static_cast<size_t>(i) * steps + t) * V);
  }
  return out;
}

}  // namespace transnotes::marian
