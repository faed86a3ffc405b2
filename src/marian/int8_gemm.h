// Internal to src/marian: not part of the engine's API.
// int8 x uint8 GEMM with AVX-512 VNNI (vpdpbusd) for the engine's linear layers.
//
// Weights are quantized once (symmetric int8 per output row, scale sw = max|w| / 127) and
// packed into blocks of 16 output rows x 4 consecutive input columns (64 bytes per block and
// column quad, the operand layout of vpdpbusd). Activations are quantized per input row on
// every call to uint8 over the row's range [min(x, 0), max(x, 0)]: sa = range / 255, zero
// point zp = round(-min / sa), q = clamp(round(x / sa) + zp, 0, 255), so x ~= sa * (q - zp).
// The zero point is removed exactly in int32 with the weights' row sums:
// c[j, o] = sum_k q[j, k] * qw[o, k] - zp[j] * sum_k qw[o, k];  y[j, o] = c * sa[j] * sw[o] + b[o].
//
// Thread safety: a PackedWeights is immutable after pack() and may be shared; linear() uses
// the process-wide worker pool (parallel.h) and thread-local scratch.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace transnotes::marian::int8 {

// True when the CPU (and OS) support AVX-512 F/BW/VL/VNNI, i.e. when linear() may be called.
bool have_vnni();

constexpr int kBlockRows = 16;  // output rows per packed block (one zmm of int32)
constexpr int kMaxIn = 65536;   // longest input row the int32 accumulators allow

class PackedWeights {
 public:
  PackedWeights() = default;
  // Quantizes w [out, in] (row-major) and packs it; bias [out] may be null (then 0). Throws
  // std::invalid_argument unless 0 < in <= kMaxIn and out > 0. If given,
  // rows_done(r) is called from time to time once rows [0, r) of w have been read for the last
  // time (so that the caller can drop them from memory), last with r = out.
  static PackedWeights pack(const float* w, const float* bias, int out, int in,
                            const std::function<void(int rows_done)>& rows_done = {});

  int out() const { return out_; }
  int in() const { return in_; }
  int in_padded() const { return in_padded_; }  // in rounded up to a multiple of 4
  int blocks() const { return blocks_; }
  // Packed int8: block b, quad g (columns 4g..4g+3), row r of the block, column 4g+i is at
  // data()[((b * in_padded / 4 + g) * 16 + r) * 4 + i]. Padding rows/columns hold 0.
  const int8_t* data() const { return data_.get(); }
  const float* scale() const { return scale_.get(); }        // [blocks * 16], padding 0
  const int32_t* row_sum() const { return row_sum_.get(); }  // sum_k qw[o, k], [blocks * 16]
  const float* bias() const { return bias_.get(); }          // [blocks * 16], padding 0
  // Bytes held (for memory accounting).
  size_t bytes() const;

 private:
  struct FreeAligned {
    void operator()(void* p) const;
  };
  int out_ = 0, in_ = 0, in_padded_ = 0, blocks_ = 0;
  std::unique_ptr<int8_t[], FreeAligned> data_;
  std::unique_ptr<float[], FreeAligned> scale_;
  std::unique_ptr<int32_t[], FreeAligned> row_sum_;
  std::unique_ptr<float[], FreeAligned> bias_;
};

// Quantizes n rows of x (row stride in) to uint8 rows of in_padded bytes (padding columns hold
// the zero point) with per-row scales sa and zero points zp, as described above. Scalar
// reference; the kernel's own AVX-512 quantization gives bit-identical results.
void quantize_rows_reference(const float* x, int n, int in, int in_padded, uint8_t* q, float* sa,
                             int32_t* zp);

// y[n, out] = x[n, in] W^T + b through the VNNI kernel (requires have_vnni()); splits the
// output rows across the worker pool. If activation_error is given, it receives for each row j
// the Euclidean norm ||x_j - sa_j * (q_j - zp_j)|| of that row's quantization error, computed in
// double from the quantized row the kernel multiplied (ArgmaxScreen bounds the logits with it).
void linear(const PackedWeights& w, const float* x, int n, float* y,
            double* activation_error = nullptr);

// Test hook: c[n, out] = sum_k q[j, k] * qw[o, k] - zp[j] * row_sum[o] with the VNNI kernel,
// for already quantized rows q [n, in_padded] (requires have_vnni()).
void gemm_int32(const PackedWeights& w, const uint8_t* q, const int32_t* zp, int n, int32_t* c);
// The int8 weight value of row o, column k (unpacked), for references.
int8_t weight_at(const PackedWeights& w, int o, int k);
// Copies row o's in() int8 weight values, unpacked, to dst.
void unpack_row(const PackedWeights& w, int o, int8_t* dst);

// Symmetric per-row weight quantization shared by every int8 path: round(w / scale) with
// scale = max|w| / 127, clamped to [-127, 127] (only a subnormal, inexact scale can pass 127).
inline int8_t quantize_weight(float w, float scale) {
  return static_cast<int8_t>(std::clamp(std::lrint(w / scale), -127L, 127L));
}

}  // namespace transnotes::marian::int8
