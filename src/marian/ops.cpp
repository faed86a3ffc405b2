#include "marian/ops.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "marian/checkpoint.h"

namespace transnotes::marian::ops {

namespace {

void small_linear(const Linear& l, const float* x, int n, float* y) {
  const kernels::MatmulArgs args{x, l.w, l.q, l.scale, l.b, l.out, l.in, y, true};
  // The pool's hand-off costs a few microseconds: worth it from ~64k weights on.
  if (static_cast<size_t>(l.out) * l.in < (size_t{1} << 16)) {
    kernels::few_rows_matmul(args, n, 0, l.out);
    return;
  }
  parallel_for(l.out, 8,
               [&](int begin, int end) { kernels::few_rows_matmul(args, n, begin, end); });
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
        const kernels::MatmulArgs args{
            x + static_cast<size_t>(j) * l.in,  l.w,  q8 ? l.q : nullptr, l.scale, l.b, l.out, l.in,
            y + static_cast<size_t>(j) * l.out, false};
        kernels::few_rows_matmul(args, g, b0, b1);
      }
    }
  });
}

}  // namespace

Activation activation_of(const std::string& a) {
  if (a == "swish" || a == "silu") return Activation::kSwish;
  if (a == "gelu" || a == "gelu_python") return Activation::kGelu;
  if (a == "gelu_new" || a == "gelu_pytorch_tanh") return Activation::kGeluTanh;
  if (a == "gelu_fast") return Activation::kGeluFast;
  if (a == "quick_gelu") return Activation::kQuickGelu;
  if (a == "relu") return Activation::kRelu;
  if (a == "tanh") return Activation::kTanh;
  if (a == "sigmoid") return Activation::kSigmoid;
  if (a == "linear") return Activation::kLinear;
  throw ModelLoadError("unknown activation_function '" + a + "'");
}

void linear(const Linear& l, const float* x, int n, float* y) {
  if (n <= 0) return;
  const bool avx2 = kernels::have_avx2_fma();
  if (l.packed) {  // int8 mode on a CPU with VNNI: faster than the fp32 paths at every n
    int8::linear(*l.packed, x, n, y);
    return;
  }
  if (n <= kernels::kFewRowsMax && avx2) {
    small_linear(l, x, n, y);
    return;
  }
  if (n <= kTiledMaxRows && avx2) {
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

void add_layer_norm(float* x, const float* r, int rows, int d, const LayerNorm& ln) {
  // The pool's hand-off costs a few microseconds: only worth it for more than a few rows.
  if (static_cast<size_t>(rows) * d < (size_t{1} << 13)) {
    kernels::add_layer_norm_rows(x, r, 0, rows, d, ln.gamma, ln.beta);
  } else {
    parallel_for(rows, 4, [&](int begin, int end) {
      kernels::add_layer_norm_rows(x, r, begin, end, d, ln.gamma, ln.beta);
    });
  }
}

void feed_forward(const FeedForward& ffn, Activation act, const float* x, int rows, float* hidden,
                  float* out) {
  linear(ffn.fc1, x, rows, hidden);
  if (act != Activation::kLinear) {
    const int cols = ffn.fc1.out;
    parallel_for(rows, 1, [&](int begin, int end) {
      kernels::activate(act, hidden + static_cast<size_t>(begin) * cols,
                        static_cast<size_t>(end - begin) * cols);
    });
  }
  linear(ffn.fc2, hidden, rows, out);
}

void attend_padded_rows(const float* q, const float* k, const float* v, int batch, int src_len,
                        const int* lengths, int heads, int d, float* scores, float* out) {
  const int hd = d / heads;
  parallel_for(batch * heads, 1, [&](int begin, int end) {
    for (int task = begin; task < end; ++task) {
      const int b = task / heads, h = task % heads;
      const size_t base = static_cast<size_t>(b) * src_len * d + h * hd;
      float* row_scores = scores + static_cast<size_t>(task) * src_len;
      for (int t = 0; t < src_len; ++t) {
        const size_t at = base + static_cast<size_t>(t) * d;
        kernels::attend(q + at, k + base, v + base, nullptr, lengths[b], d, hd, row_scores,
                        out + at);
      }
    }
  });
}

}  // namespace transnotes::marian::ops
