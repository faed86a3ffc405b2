#include "marian/kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "marian/simd.h"

namespace transnotes::marian::kernels {

namespace {

using simd::horizontal_sum;

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

// Few rows (greedy/beam search on one sentence, small batches): OpenBLAS sgemm would repack
// the whole weight matrix on every call (costlier than the multiply) and its threads spin on
// small problems. This kernel streams each weight row once and dots it with all N (<= 8) input
// rows held in cache; R weight rows at a time give independent FMA chains.
constexpr int kFewRowsMax = 8;

template <bool Q8>
__attribute__((target("avx2,fma"))) inline __m256 load_weights(const MatmulArgs& a, size_t at) {
  if constexpr (Q8) {
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a.q + at));
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
  } else {
    return _mm256_loadu_ps(a.w + at);
  }
}

template <bool Q8>
__attribute__((always_inline)) inline void prefetch_weights(const MatmulArgs& a, size_t at) {
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
__attribute__((target("avx2,fma"), always_inline)) inline void finish_dot(const MatmulArgs& a,
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
__attribute__((target("avx2,fma"))) void small_linear_rows(const MatmulArgs& a, int row_begin,
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

using SmallKernel = void (*)(const MatmulArgs&, int, int);
template <bool Q8>
constexpr SmallKernel kSmallKernels[kFewRowsMax + 1] = {nullptr,
                                                        small_linear_rows<1, Q8>,
                                                        small_linear_rows<2, Q8>,
                                                        small_linear_rows<3, Q8>,
                                                        small_linear_rows<4, Q8>,
                                                        small_linear_rows<5, Q8>,
                                                        small_linear_rows<6, Q8>,
                                                        small_linear_rows<7, Q8>,
                                                        small_linear_rows<8, Q8>};

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

}  // namespace

bool have_avx2_fma() { return simd::have_avx2_fma(); }

void activate(Activation act, float* x, size_t n) {
  switch (act) {
    case Activation::kSwish: {
      size_t i = simd::have_avx2_fma() ? swish_avx2(x, n) : 0;
      for (; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
      break;
    }
    case Activation::kGelu:
      for (size_t i = 0; i < n; ++i)
        x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
      break;
    case Activation::kGeluTanh:
      for (size_t i = 0; i < n; ++i) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
      }
      break;
    case Activation::kGeluFast:
      for (size_t i = 0; i < n; ++i) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + std::tanh(v * 0.7978845608f * (1.0f + 0.044715f * v * v)));
      }
      break;
    case Activation::kQuickGelu:
      for (size_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-1.702f * x[i]));
      break;
    case Activation::kRelu:
      for (size_t i = 0; i < n; ++i) x[i] = std::max(x[i], 0.0f);
      break;
    case Activation::kTanh:
      for (size_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]);
      break;
    case Activation::kSigmoid:
      for (size_t i = 0; i < n; ++i) x[i] = 1.0f / (1.0f + std::exp(-x[i]));
      break;
    case Activation::kLinear:
      break;
  }
}

void few_rows_matmul(const MatmulArgs& args, int n, int row_begin, int row_end) {
  (args.q ? kSmallKernels<true> : kSmallKernels<false>)[n](args, row_begin, row_end);
}

void add_layer_norm_rows(float* x, const float* r, int begin, int end, int d, const float* gamma,
                         const float* beta) {
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
    for (int j = 0; j < d; ++j) row[j] = (row[j] - m) * inv * gamma[j] + beta[j];
  }
}

void attend(const float* q, const float* k, const float* v, const int* rows, int len, int stride,
            int hd, float* scores, float* out) {
  if (hd % 8 == 0 && simd::have_avx2_fma()) {
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

}  // namespace transnotes::marian::kernels
