// Greedy search's argmax over a large output projection (y = W x + b over ~58k words) at int8
// speed, with the fp32 answer.
//
// An int8 pass (int8_gemm.h) gives every logit approximately, y~_o, and a rigorous bound B on
// |y_o - y~_o| for the row, where y_o is the logit computed in fp32. With x~, w~_o the quantized
// activation and weight row, x.w - x~.w~ = x.(w - w~) + (x - x~).w~, so by Cauchy-Schwarz
//   |x.w_o - x~.w~_o| <= ||x|| ||w_o - w~_o|| + ||x - x~|| ||w~_o||,
// plus margins for the fp32 rounding of the kernel's output and of an fp32 dot product of any
// summation order (the weight norms are computed once, at construction). A first cut uses the
// largest bound over all o: only ids with y~_o >= max(y~) - 2 max_o B_o can hold the largest fp32
// logit. If more than a few remain, each one's own bound narrows them further (an outlier weight
// row widens only its own bound). The survivors are computed in fp32 and the first largest is the
// answer. (A hidden state with one huge activation gets a coarse uint8 quantization and a wider
// bound: more candidates, the same answer.) The result is therefore the argmax of fp32 logits,
// each computed as one fp32 dot product (logit()), not an approximation: only 1-2 of 58k logits
// per row (in bench/mt) are computed in fp32. decoder_step's logits for the same ids come from
// other kernels and agree up to summation order (a few ulps), so only ids closer than that can be
// ordered differently with the screen on and off. Rows whose logits could approach FLT_MAX are
// not screened: every id is computed in fp32.
//
// Thread safety: immutable after construction; argmax() uses the worker pool (parallel.h) and
// thread-local scratch, like int8::linear.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include "marian/int8_gemm.h"

namespace transnotes::marian {

// Index of the first maximum of x[0, n) (std::max_element semantics; x holds no NaN).
int first_argmax(const float* x, int n);

class ArgmaxScreen {
 public:
  // True when the CPU has the int8 kernel (AVX-512 VNNI) the screen runs on.
  static bool supported();

  // w [out, in] and b [out] (may be null) must outlive the screen: candidates are recomputed
  // from them. Requires supported().
  ArgmaxScreen(const float* w, const float* b, int out, int in);

  // For each of the n rows of x [n, in]: unless chosen[j] >= 0 already (a forced token, left
  // as is), chosen[j] = the first o with the largest logit(x_j, o) among the o not in banned[j].
  // scratch must hold n * out floats.
  void argmax(const float* x, int n, std::span<const std::vector<int>> banned, int* chosen,
              float* scratch) const;

  // The fp32 logit dot(x, w_o) + b_o, as argmax() computes it for a candidate.
  float logit(const float* x, int o) const;

  // For tests: the int8 logits approx [n, out] and the bounds radius [n, out] with
  // |logit(x_j, o) - approx[j, o]| <= radius[j, o].
  void bounds(const float* x, int n, float* approx, float* radius) const;

  int out() const { return packed_.out(); }
  int in() const { return packed_.in(); }
  size_t bytes() const { return packed_.bytes(); }
  // Rows screened and fp32 logits computed for them so far (for benchmarks).
  uint64_t rows_screened() const { return rows_.load(std::memory_order_relaxed); }
  uint64_t logits_verified() const { return verified_.load(std::memory_order_relaxed); }

 private:
  // The bound for an id with the given weight figures (or their maxima, for all ids at once).
  static double radius(double x_norm, double error_norm, double residual, double quantized,
                       double bias);
  // The largest |logit| (and |partial dot product|) the same figures allow.
  static double magnitude(double x_norm, double error_norm, double residual, double quantized,
                          double bias);
  // Drops the candidates whose own upper bound is below the best own lower bound.
  void narrow(std::vector<int>& candidates, const float* approx, double x_norm,
              double error_norm) const;

  const float* w_;
  const float* b_;
  int8::PackedWeights packed_;
  std::vector<double> residual_;   // ||w_o - w~_o|| + dot-rounding allowance * ||w_o||
  std::vector<double> quantized_;  // ||w~_o||
  double max_residual_ = 0, max_quantized_ = 0, max_bias_ = 0;
  mutable std::atomic<uint64_t> rows_{0}, verified_{0};
};

}  // namespace transnotes::marian
