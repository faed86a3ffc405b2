#include "marian/argmax_screen.h"

// GCC 12 reports its own AVX-512 intrinsics as uninitialized once inlined (as in int8_gemm.cpp).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#ifndef __clang__  // a GCC-only warning group; clang (the fuzz build) warns about the name
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "marian/parallel.h"
#include "marian/simd.h"

namespace transnotes::marian {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

#define TN_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

__attribute__((target("avx2,fma"))) float row_max_avx2(const float* x, int n) {
  __m256 mx = _mm256_set1_ps(kNegInf);
  int t = 0;
  for (; t + 8 <= n; t += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(x + t));
  float m = simd::horizontal_max(mx);
  for (; t < n; ++t) m = std::max(m, x[t]);
  return m;
}

TN_AVX512_TARGET float dot_avx512(const float* x, const float* w, int n) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
  int k = 0;
  for (; k + 64 <= n; k += 64)
    for (int a = 0; a < 4; ++a)
      acc[a] =
          _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 16 * a), _mm512_loadu_ps(w + k + 16 * a), acc[a]);
  for (; k + 16 <= n; k += 16)
    acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), _mm512_loadu_ps(w + k), acc[0]);
  if (k < n) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (n - k)) - 1);
    acc[1] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, x + k), _mm512_maskz_loadu_ps(tail, w + k),
                             acc[1]);
  }
  return _mm512_reduce_add_ps(
      _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

// Appends to `out` every o with y[o] >= threshold, in increasing order.
TN_AVX512_TARGET void collect_at_least(const float* y, int n, float threshold,
                                       std::vector<int>& out) {
  const __m512 t = _mm512_set1_ps(threshold);
  int o = 0;
  for (; o + 16 <= n; o += 16) {
    unsigned mask = _mm512_cmp_ps_mask(_mm512_loadu_ps(y + o), t, _CMP_GE_OQ);
    while (mask) {
      out.push_back(o + __builtin_ctz(mask));
      mask &= mask - 1;
    }
  }
  for (; o < n; ++o)
    if (y[o] >= threshold) out.push_back(o);
}

// Squared norms of a weight row w, of its quantized values scale * q and of the difference,
// accumulated in double (exact products of floats; only the sums round, by ~1e-16 relative).
struct RowNorms {
  double exact2 = 0, quantized2 = 0, residual2 = 0;
};

TN_AVX512_TARGET RowNorms row_norms(const float* w, const int8_t* q, int in, float scale) {
  const __m512d s = _mm512_set1_pd(scale);
  __m512d exact2 = _mm512_setzero_pd(), quantized2 = exact2, residual2 = exact2;
  int k = 0;
  for (; k + 8 <= in; k += 8) {
    const __m512d wv = _mm512_cvtps_pd(_mm256_loadu_ps(w + k));
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + k));
    const __m512d qv = _mm512_mul_pd(_mm512_cvtepi32_pd(_mm256_cvtepi8_epi32(bytes)), s);
    const __m512d rv = _mm512_sub_pd(wv, qv);
    exact2 = _mm512_fmadd_pd(wv, wv, exact2);
    quantized2 = _mm512_fmadd_pd(qv, qv, quantized2);
    residual2 = _mm512_fmadd_pd(rv, rv, residual2);
  }
  RowNorms n{_mm512_reduce_add_pd(exact2), _mm512_reduce_add_pd(quantized2),
             _mm512_reduce_add_pd(residual2)};
  for (; k < in; ++k) {
    const double exact = w[k], quantized = static_cast<double>(scale) * q[k];
    n.exact2 += exact * exact;
    n.quantized2 += quantized * quantized;
    n.residual2 += (exact - quantized) * (exact - quantized);
  }
  return n;
}

// Rows whose logits could come near FLT_MAX are not screened (see argmax()).
constexpr double kMaxMagnitude = 1e30;

// Beyond this many candidates after the first cut, their own bounds are worth computing.
constexpr size_t kFewCandidates = 4;

double norm(const float* x, int n) {
  double sum = 0.0;
  for (int k = 0; k < n; ++k) sum += static_cast<double>(x[k]) * x[k];
  return std::sqrt(sum);
}

}  // namespace

int first_argmax(const float* x, int n) {
  if (!simd::have_avx2_fma()) return static_cast<int>(std::max_element(x, x + n) - x);
  const float m = row_max_avx2(x, n);
  return static_cast<int>(std::find(x, x + n, m) - x);
}

bool ArgmaxScreen::supported() { return int8::have_vnni(); }

ArgmaxScreen::ArgmaxScreen(const float* w, const float* b, int out, int in)
    : w_(w), b_(b), packed_(int8::PackedWeights::pack(w, b, out, in)) {
  if (!supported()) throw std::logic_error("ArgmaxScreen needs AVX-512 VNNI");
  // An fp32 dot product of `in` terms in any summation order is within (in - 1) u sum|x_k w_k|
  // of the exact value (u = 2^-24); twice that plus a little covers it with room to spare.
  const double dot_rounding = (in + 16) * std::ldexp(1.0, -23);
  residual_.resize(out);
  quantized_.resize(out);
  std::vector<int8_t> q(in);
  for (int o = 0; o < out; ++o) {
    int8::unpack_row(packed_, o, q.data());
    const RowNorms norms =
        row_norms(w + static_cast<size_t>(o) * in, q.data(), in, packed_.scale()[o]);
    residual_[o] = std::sqrt(norms.residual2) + dot_rounding * std::sqrt(norms.exact2);
    quantized_[o] = std::sqrt(norms.quantized2);
    max_residual_ = std::max(max_residual_, residual_[o]);
    max_quantized_ = std::max(max_quantized_, quantized_[o]);
  }
  if (b)
    for (int o = 0; o < out; ++o) max_bias_ = std::max(max_bias_, std::fabs(double{b[o]}));
}

double ArgmaxScreen::radius(double x_norm, double error_norm, double residual, double quantized,
                            double bias) {
  // The Cauchy-Schwarz bound, plus 1e-5 of the largest possible |logit| for the fp32 rounding of
  // the kernel's scaling and of the bias additions (each a few 2^-24), plus an absolute floor.
  const double dot = x_norm * residual + error_norm * quantized;
  return (dot + 1e-5 * magnitude(x_norm, error_norm, residual, quantized, bias) + 1e-6) *
         (1.0 + 1e-5);
}

double ArgmaxScreen::magnitude(double x_norm, double error_norm, double residual, double quantized,
                               double bias) {
  return (x_norm + error_norm) * (quantized + residual) + std::fabs(bias);
}

void ArgmaxScreen::narrow(std::vector<int>& candidates, const float* approx, double x_norm,
                          double error_norm) const {
  auto bound = [&](int o) {
    return radius(x_norm, error_norm, residual_[o], quantized_[o], b_ ? b_[o] : 0.0);
  };
  // Any id's lower bound is a lower bound of the largest logit.
  double floor = -std::numeric_limits<double>::infinity();
  for (int o : candidates) floor = std::max(floor, approx[o] - bound(o));
  std::erase_if(candidates, [&](int o) { return approx[o] + bound(o) < floor; });
}

float ArgmaxScreen::logit(const float* x, int o) const {
  const float dot = dot_avx512(x, w_ + static_cast<size_t>(o) * in(), in());
  return b_ ? dot + b_[o] : dot;
}

void ArgmaxScreen::bounds(const float* x, int n, float* approx, float* radius) const {
  std::vector<double> error(n);
  int8::linear(packed_, x, n, approx, error.data());
  for (int j = 0; j < n; ++j) {
    const double x_norm = norm(x + static_cast<size_t>(j) * in(), in());
    for (int o = 0; o < out(); ++o)
      radius[static_cast<size_t>(j) * out() + o] = static_cast<float>(
          ArgmaxScreen::radius(x_norm, error[j], residual_[o], quantized_[o], b_ ? b_[o] : 0.0));
  }
}

void ArgmaxScreen::argmax(const float* x, int n, std::span<const std::vector<int>> banned,
                          int* chosen, float* scratch) const {
  if (n <= 0) return;
  thread_local std::vector<double> error_storage;
  error_storage.resize(n);
  // A plain pointer: the pool's threads would each see their own thread_local by name.
  const double* error = error_storage.data();
  int8::linear(packed_, x, n, scratch, error_storage.data());
  const int V = out();
  std::atomic<uint64_t> screened{0}, verified{0};
  parallel_for(n, 1, [&](int begin, int end) {
    thread_local std::vector<int> candidates;
    for (int j = begin; j < end; ++j) {
      if (chosen[j] >= 0) continue;
      const float* xj = x + static_cast<size_t>(j) * in();
      float* approx = scratch + static_cast<size_t>(j) * V;
      for (int o : banned[j]) approx[o] = kNegInf;
      const double x_norm = norm(xj, in());
      const float best_approx = row_max_avx2(approx, V);
      candidates.clear();
      // The bound assumes that the kernel's scaling, every fp32 dot product and the threshold
      // below stay finite: all are at most about this magnitude (false for NaN).
      const double largest = magnitude(x_norm, error[j], max_residual_, max_quantized_, max_bias_);
      if (largest < kMaxMagnitude && std::isfinite(best_approx)) {
        const double widest = radius(x_norm, error[j], max_residual_, max_quantized_, max_bias_);
        // Rounded down so that an id exactly at the threshold stays a candidate.
        const double threshold = best_approx - 2.0 * widest;
        collect_at_least(approx, V, std::nextafter(static_cast<float>(threshold), kNegInf),
                         candidates);
        if (candidates.size() > kFewCandidates) narrow(candidates, approx, x_norm, error[j]);
        // Banned ids hold -inf and the threshold is finite: this only guards that reasoning.
        if (!banned[j].empty())
          std::erase_if(candidates, [&](int o) {
            return std::find(banned[j].begin(), banned[j].end(), o) != banned[j].end();
          });
      } else {
        // Nothing can be ruled out (all ids banned, non-finite or astronomically large
        // activations or weights): check all.
        for (int o = 0; o < V; ++o)
          if (std::find(banned[j].begin(), banned[j].end(), o) == banned[j].end())
            candidates.push_back(o);
      }
      int best = candidates.empty() ? 0 : candidates.front();
      float best_logit = kNegInf;
      for (int o : candidates) {
        const float y = logit(xj, o);
        if (y > best_logit) {
          best_logit = y;
          best = o;
        }
      }
      chosen[j] = best;
      screened.fetch_add(1, std::memory_order_relaxed);
      verified.fetch_add(candidates.size(), std::memory_order_relaxed);
    }
  });
  rows_.fetch_add(screened.load(), std::memory_order_relaxed);
  verified_.fetch_add(verified.load(), std::memory_order_relaxed);
}

}  // namespace transnotes::marian
