#include "marian/int8_gemm.h"

// GCC 12 reports its own AVX-512 intrinsics (their _mm512_undefined_* self-initialization) as
// uninitialized once they are inlined here; the warning is a known false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#ifndef __clang__  // a GCC-only warning group; clang (the fuzz build) warns about the name
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "marian/parallel.h"

namespace transnotes::marian::int8 {

namespace {

constexpr size_t kAlign = 64;
constexpr int kPanelBlocks = 4;                   // blocks per register tile (4 x 16 outputs)
constexpr int kMaxRows = 6;                       // input rows per register tile
constexpr size_t kTileBytes = size_t{192} << 10;  // packed weights per L2 tile
constexpr int kRowsPerProgress = 256;             // pack(): rows between rows_done calls

template <class T>
T* alloc_aligned(size_t count) {
  const size_t bytes = std::max<size_t>(kAlign, (count * sizeof(T) + kAlign - 1) / kAlign * kAlign);
  void* p = std::aligned_alloc(kAlign, bytes);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  return static_cast<T*>(p);
}

// Per-row activation quantization parameters from the row's min and max, shared by the scalar
// reference and the AVX-512 path so that both compute them identically. The range always
// includes 0; x ~= sa * (q - zp). Returns 1 / sa (0 for an all-zero row).
float row_quantization(float lo, float hi, float* sa, int32_t* zp) {
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  const float range = hi - lo;
  if (!(range > 0.0f)) {
    *sa = 1.0f;
    *zp = 0;
    return 0.0f;
  }
  *sa = range / 255.0f;
  const float inv = 255.0f / range;
  *zp = static_cast<int32_t>(std::lrint(-lo * inv));
  return inv;
}

struct GemmArgs {
  const int8_t* w;  // packed weights
  int quads;        // in_padded / 4
  const uint8_t* q;
  int ldq;            // bytes between quantized input rows
  const float* sa;    // [n] activation scales
  const int32_t* zp;  // [n] activation zero points
  const float* scale;
  const int32_t* row_sum;
  const float* bias;
  int out;
  float* y;    // [n, out] (float output), or
  int32_t* c;  // [n, out] (raw output)
};

#define TN_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

// acc += u8 x s8 dot products of 4 bytes per int32 lane. Inline asm because GCC 12 copies the
// accumulator to another register around every _mm512_dpbusd_epi32 in the unrolled tile.
TN_VNNI_TARGET inline __m512i dpbusd(__m512i acc, __m512i u8, __m512i s8) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "v"(s8));
  return acc;
}

// The zero point's share: c = sum_k (q - zp) * qw = acc - zp * row_sum (exact in int32).
TN_VNNI_TARGET inline __m512i remove_zero_point(__m512i acc, int32_t zp, __m512i row_sum) {
  return _mm512_sub_epi32(acc, _mm512_mullo_epi32(_mm512_set1_epi32(zp), row_sum));
}

// q = clamp(round(v * inv) + zp, 0, 255) for 16 values.
TN_VNNI_TARGET inline __m128i quantize16(__m512 v, __m512 inv, __m512i zp) {
  const __m512i i = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, inv)), zp);
  return _mm512_cvtepi32_epi8(
      _mm512_min_epi32(_mm512_max_epi32(i, _mm512_setzero_si512()), _mm512_set1_epi32(255)));
}

// Register tile: MB blocks (16 outputs each) x NR input rows of int32 accumulators.
template <int MB, int NR, bool kRaw>
TN_VNNI_TARGET void micro_kernel(const GemmArgs& a, int block0, int row0) {
  __m512i acc[MB][NR];
  for (int m = 0; m < MB; ++m)
    for (int r = 0; r < NR; ++r) acc[m][r] = _mm512_setzero_si512();
  const int8_t* wp = a.w + static_cast<size_t>(block0) * a.quads * 64;
  const size_t block_stride = static_cast<size_t>(a.quads) * 64;
  const uint8_t* xp = a.q + static_cast<size_t>(row0) * a.ldq;
  for (int g = 0; g < a.quads; ++g) {
    __m512i wv[MB];
    for (int m = 0; m < MB; ++m)
      wv[m] = _mm512_load_si512(reinterpret_cast<const void*>(wp + m * block_stride + g * 64));
    for (int r = 0; r < NR; ++r) {
      int32_t four;
      std::memcpy(&four, xp + static_cast<size_t>(r) * a.ldq + 4 * g, 4);
      const __m512i xv = _mm512_set1_epi32(four);
      for (int m = 0; m < MB; ++m) acc[m][r] = dpbusd(acc[m][r], xv, wv[m]);
    }
  }
  for (int m = 0; m < MB; ++m) {
    const int o0 = (block0 + m) * kBlockRows;
    const int valid = std::min(kBlockRows, a.out - o0);
    const __mmask16 mask = valid >= kBlockRows ? __mmask16(0xffff) : __mmask16((1u << valid) - 1);
    const __m512i row_sum = _mm512_load_si512(reinterpret_cast<const void*>(a.row_sum + o0));
    if constexpr (kRaw) {
      for (int r = 0; r < NR; ++r)
        _mm512_mask_storeu_epi32(a.c + static_cast<size_t>(row0 + r) * a.out + o0, mask,
                                 remove_zero_point(acc[m][r], a.zp[row0 + r], row_sum));
    } else {
      const __m512 scale = _mm512_load_ps(a.scale + o0);
      const __m512 bias = _mm512_load_ps(a.bias + o0);
      for (int r = 0; r < NR; ++r) {
        const __m512 c = _mm512_cvtepi32_ps(remove_zero_point(acc[m][r], a.zp[row0 + r], row_sum));
        const __m512 s = _mm512_mul_ps(scale, _mm512_set1_ps(a.sa[row0 + r]));
        _mm512_mask_storeu_ps(a.y + static_cast<size_t>(row0 + r) * a.out + o0, mask,
                              _mm512_fmadd_ps(c, s, bias));
      }
    }
  }
}

using MicroKernel = void (*)(const GemmArgs&, int, int);

template <bool kRaw, int MB, size_t... R>
constexpr auto kernel_row(std::index_sequence<R...>) {
  return std::array<MicroKernel, kMaxRows>{micro_kernel<MB, static_cast<int>(R) + 1, kRaw>...};
}

template <bool kRaw>
constexpr std::array<std::array<MicroKernel, kMaxRows>, kPanelBlocks> kKernels = {
    kernel_row<kRaw, 1>(std::make_index_sequence<kMaxRows>()),
    kernel_row<kRaw, 2>(std::make_index_sequence<kMaxRows>()),
    kernel_row<kRaw, 3>(std::make_index_sequence<kMaxRows>()),
    kernel_row<kRaw, 4>(std::make_index_sequence<kMaxRows>())};

// Each L2 tile of packed weight blocks is loaded once and every input row passes over it.
template <bool kRaw>
void run_gemm(const GemmArgs& a, int blocks, int n) {
  const size_t block_bytes = static_cast<size_t>(a.quads) * 64;
  size_t tile = std::max<size_t>(1, kTileBytes / block_bytes);
  // At least ~4 tiles per matrix so that small matrices still split across the threads.
  const size_t quarter = (static_cast<size_t>(blocks) + 3) / 4;
  tile = std::min(tile, quarter);
  if (tile > kPanelBlocks) tile = tile / kPanelBlocks * kPanelBlocks;
  const int tile_blocks = static_cast<int>(std::max<size_t>(1, tile));
  parallel_for(blocks, tile_blocks, [&](int begin, int end) {
    for (int t0 = begin; t0 < end; t0 += tile_blocks) {
      const int t1 = std::min(end, t0 + tile_blocks);
      for (int row0 = 0; row0 < n; row0 += kMaxRows) {
        const int nr = std::min(kMaxRows, n - row0);
        for (int b = t0; b < t1; b += kPanelBlocks) {
          const int mb = std::min(kPanelBlocks, t1 - b);
          kKernels<kRaw>[mb - 1][nr - 1](a, b, row0);
        }
      }
    }
  });
}

TN_VNNI_TARGET void quantize_rows_avx512(const float* x, int rows, int in, int in_padded,
                                         uint8_t* q, float* sa, int32_t* zp) {
  for (int j = 0; j < rows; ++j) {
    const float* row = x + static_cast<size_t>(j) * in;
    __m512 lo = _mm512_setzero_ps(), hi = lo;
    int k = 0;
    for (; k + 16 <= in; k += 16) {
      const __m512 v = _mm512_loadu_ps(row + k);
      lo = _mm512_min_ps(lo, v);
      hi = _mm512_max_ps(hi, v);
    }
    const __mmask16 tail = static_cast<__mmask16>((1u << (in - k)) - 1);
    if (k < in) {
      const __m512 v = _mm512_maskz_loadu_ps(tail, row + k);  // zeros do not change the range
      lo = _mm512_min_ps(lo, v);
      hi = _mm512_max_ps(hi, v);
    }
    const float inv =
        row_quantization(_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi), sa + j, zp + j);
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i zero_point = _mm512_set1_epi32(zp[j]);
    uint8_t* dst = q + static_cast<size_t>(j) * in_padded;
    for (k = 0; k + 16 <= in; k += 16)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + k),
                       quantize16(_mm512_loadu_ps(row + k), vinv, zero_point));
    if (k < in)
      _mm_mask_storeu_epi8(dst + k, tail,
                           quantize16(_mm512_maskz_loadu_ps(tail, row + k), vinv, zero_point));
    for (int p = in; p < in_padded; ++p) dst[p] = static_cast<uint8_t>(zp[j]);
  }
}

float max_abs(const float* row, int in) {
  float mx = 0.0f;
  for (int k = 0; k < in; ++k) mx = std::max(mx, std::fabs(row[k]));
  return mx;
}

TN_VNNI_TARGET float max_abs_avx512(const float* row, int in) {
  __m512 mx = _mm512_setzero_ps();
  int k = 0;
  for (; k + 16 <= in; k += 16) mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(row + k)));
  float m = _mm512_reduce_max_ps(mx);
  for (; k < in; ++k) m = std::max(m, std::fabs(row[k]));
  return m;
}

// Weight quantization of columns [0, in rounded down to 16): q = round(w / s) (the same as
// std::lrint(w / s): IEEE division, round to nearest even) clamped to [-127, 127] (only a
// subnormal, inexact s = max|w| / 127 can push |w / s| past 127), written to
// dst + (k / 4) * 64 + k % 4; adds the q to *sum. Returns the first column not done.
TN_VNNI_TARGET int quantize_weight_row_avx512(const float* row, int in, float s, int8_t* dst,
                                              int32_t* sum) {
  const __m512 vs = _mm512_set1_ps(s);
  const __m512i limit = _mm512_set1_epi32(127);
  __m512i acc = _mm512_setzero_si512();
  int k = 0;
  for (; k + 16 <= in; k += 16) {
    const __m512i q = _mm512_max_epi32(
        _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_div_ps(_mm512_loadu_ps(row + k), vs)), limit),
        _mm512_sub_epi32(_mm512_setzero_si512(), limit));
    acc = _mm512_add_epi32(acc, q);
    const __m128i bytes = _mm512_cvtepi32_epi8(q);
    int32_t quad[4];
    std::memcpy(quad, &bytes, 16);
    for (int i = 0; i < 4; ++i) std::memcpy(dst + static_cast<size_t>(k / 4 + i) * 64, &quad[i], 4);
  }
  *sum += _mm512_reduce_add_epi32(acc);
  return k;
}

GemmArgs make_args(const PackedWeights& w) {
  GemmArgs a{};
  a.w = w.data();
  a.quads = w.in_padded() / 4;
  a.ldq = w.in_padded();
  a.scale = w.scale();
  a.row_sum = w.row_sum();
  a.bias = w.bias();
  a.out = w.out();
  return a;
}

}  // namespace

bool have_vnni() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  return ok;
}

void PackedWeights::FreeAligned::operator()(void* p) const { std::free(p); }

size_t PackedWeights::bytes() const {
  const size_t rows = static_cast<size_t>(blocks_) * kBlockRows;
  return rows * in_padded_ + rows * (4 + 4 + 4);
}

PackedWeights PackedWeights::pack(const float* w, const float* bias, int out, int in,
                                  const std::function<void(int rows_done)>& rows_done) {
  // int32 accumulators: |sum_k (q - zp) * qw| <= 255 * 127 * in must stay below 2^31.
  if (in <= 0 || in > kMaxIn || out <= 0)
    throw std::invalid_argument("int8 GEMM: unsupported weight shape [" + std::to_string(out) +
                                ", " + std::to_string(in) + "]");
  PackedWeights p;
  p.out_ = out;
  p.in_ = in;
  p.in_padded_ = (in + 3) / 4 * 4;
  p.blocks_ = (out + kBlockRows - 1) / kBlockRows;
  const size_t rows = static_cast<size_t>(p.blocks_) * kBlockRows;
  p.data_.reset(alloc_aligned<int8_t>(rows * p.in_padded_));
  p.scale_.reset(alloc_aligned<float>(rows));
  p.row_sum_.reset(alloc_aligned<int32_t>(rows));
  p.bias_.reset(alloc_aligned<float>(rows));
  const int quads = p.in_padded_ / 4;
  const bool vector = have_vnni();
  for (int o = 0; o < out; ++o) {
    const float* row = w + static_cast<size_t>(o) * in;
    const float mx = vector ? max_abs_avx512(row, in) : max_abs(row, in);
    const float s = mx > 0.0f ? mx / 127.0f : 1.0f;
    p.scale_[o] = s;
    p.bias_[o] = bias ? bias[o] : 0.0f;
    // Row o's quad g lives at block + (g * 16 + r) * 4.
    int8_t* dst =
        p.data_.get() + static_cast<size_t>(o / kBlockRows) * quads * 64 + (o % kBlockRows) * 4;
    int k = 0;
    int32_t sum = 0;
    if (vector) k = quantize_weight_row_avx512(row, in, s, dst, &sum);
    for (; k < in; ++k) {
      const int8_t v = quantize_weight(row[k], s);
      dst[static_cast<size_t>(k / 4) * 64 + k % 4] = v;
      sum += v;
    }
    p.row_sum_[o] = sum;
    if (rows_done && ((o + 1) % kRowsPerProgress == 0 || o + 1 == out)) rows_done(o + 1);
  }
  return p;
}

int8_t weight_at(const PackedWeights& w, int o, int k) {
  const int quads = w.in_padded() / 4;
  return w.data()[((static_cast<size_t>(o / kBlockRows) * quads + k / 4) * kBlockRows +
                   o % kBlockRows) *
                      4 +
                  k % 4];
}

void unpack_row(const PackedWeights& w, int o, int8_t* dst) {
  // Row o's quad g (columns 4g..4g+3) is 4 bytes at block + g * 64 + (o % 16) * 4.
  const int quads = w.in_padded() / 4;
  const int8_t* src =
      w.data() + static_cast<size_t>(o / kBlockRows) * quads * 64 + (o % kBlockRows) * 4;
  for (int k = 0; k < w.in(); k += 4)
    std::memcpy(dst + k, src + (k / 4) * 64, std::min(4, w.in() - k));
}

void quantize_rows_reference(const float* x, int n, int in, int in_padded, uint8_t* q, float* sa,
                             int32_t* zp) {
  for (int j = 0; j < n; ++j) {
    const float* row = x + static_cast<size_t>(j) * in;
    float lo = 0.0f, hi = 0.0f;
    for (int k = 0; k < in; ++k) {
      lo = std::min(lo, row[k]);
      hi = std::max(hi, row[k]);
    }
    const float inv = row_quantization(lo, hi, sa + j, zp + j);
    uint8_t* dst = q + static_cast<size_t>(j) * in_padded;
    for (int k = 0; k < in; ++k) {
      const long v = std::lrint(row[k] * inv) + zp[j];
      dst[k] = static_cast<uint8_t>(std::clamp<long>(v, 0, 255));
    }
    for (int k = in; k < in_padded; ++k) dst[k] = static_cast<uint8_t>(zp[j]);
  }
}

void linear(const PackedWeights& w, const float* x, int n, float* y, double* activation_error) {
  if (n <= 0) return;
  thread_local std::vector<uint8_t> q;
  thread_local std::vector<float> sa;
  thread_local std::vector<int32_t> zp;
  const size_t ld = static_cast<size_t>(w.in_padded());
  if (q.size() < static_cast<size_t>(n) * ld) q.resize(static_cast<size_t>(n) * ld);
  if (sa.size() < static_cast<size_t>(n)) {
    sa.resize(n);
    zp.resize(n);
  }
  uint8_t* qp = q.data();
  float* sp = sa.data();
  int32_t* zpp = zp.data();
  const int in = w.in();
  auto quantize = [&](int begin, int end) {
    quantize_rows_avx512(x + static_cast<size_t>(begin) * in, end - begin, in, w.in_padded(),
                         qp + begin * ld, sp + begin, zpp + begin);
    if (!activation_error) return;
    for (int j = begin; j < end; ++j) {
      const float* row = x + static_cast<size_t>(j) * in;
      const uint8_t* qr = qp + static_cast<size_t>(j) * ld;
      const double scale = sp[j];
      double sum = 0.0;
      for (int k = 0; k < in; ++k) {
        const double err = static_cast<double>(row[k]) - scale * (qr[k] - zpp[j]);
        sum += err * err;
      }
      activation_error[j] = std::sqrt(sum);
    }
  };
  // The pool's hand-off costs a few microseconds: worth it for ~32k values and more.
  if (static_cast<size_t>(n) * in >= (size_t{1} << 15)) {
    parallel_for(n, 4, quantize);
  } else {
    quantize(0, n);
  }
  GemmArgs a = make_args(w);
  a.q = qp;
  a.sa = sp;
  a.zp = zpp;
  a.y = y;
  run_gemm<false>(a, w.blocks(), n);
}

void gemm_int32(const PackedWeights& w, const uint8_t* q, const int32_t* zp, int n, int32_t* c) {
  if (n <= 0) return;
  GemmArgs a = make_args(w);
  a.q = q;
  a.zp = zp;
  a.c = c;
  run_gemm<true>(a, w.blocks(), n);
}

}  // namespace transnotes::marian::int8
