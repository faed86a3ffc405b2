// The AVX-512 VNNI int8 GEMM against a plain scalar evaluation of the same quantized arithmetic.
#include "marian/int8_gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <vector>

#include "marian/model.h"
#include "marian/parallel.h"
#include "marian/tiny_fixture_test_support.h"

using namespace transnotes::marian;

namespace {

const std::filesystem::path kFixtureDir = tiny_fixture::dir();

// On a CPU without AVX-512 VNNI (avx512f/bw/vl/vnni) this kernel is never used: an int8 model
// multiplies with weight-only int8 copies (AVX2) instead. There a kernel test checks that this
// fallback is what runs — the default int8 model computes exactly what the forced weight-only
// path computes — and ends (a skip would fail the test run, and would not show the fallback).
void expect_weight_only_fallback() {
  ASSERT_TRUE(std::filesystem::exists(kFixtureDir / "model.safetensors")) << kFixtureDir;
  ModelOptions default_int8;
  default_int8.int8 = true;
  ModelOptions weight_only = default_int8;
  weight_only.int8_vnni = false;
  const auto chosen_by_cpu = MarianModel::load(kFixtureDir, default_int8);
  const auto forced = MarianModel::load(kFixtureDir, weight_only);
  const std::vector<std::vector<int>> source = {{6, 25, 40, 7, 2, 0}, {5, 9, 0, 490, 490, 490}};
  const std::vector<std::vector<int>> target = {{490, 6, 25, 40}, {490, 5, 9, 0}};
  EXPECT_EQ(chosen_by_cpu->teacher_forced_logits(source, target),
            forced->teacher_forced_logits(source, target));
}

#define REQUIRE_VNNI_ELSE_CHECK_FALLBACK() \
  if (!int8::have_vnni()) {                \
    expect_weight_only_fallback();         \
    return;                                \
  }

struct Problem {
  int n, out, in;
  std::vector<float> w, b, x;
};

Problem make_problem(int n, int out, int in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Problem p{n, out, in, {}, {}, {}};
  p.w.resize(static_cast<size_t>(out) * in);
  for (size_t i = 0; i < p.w.size(); ++i) p.w[i] = 0.05f * u(rng) * (1 + i % 7);
  p.b.resize(out);
  for (auto& v : p.b) v = u(rng);
  p.x.resize(static_cast<size_t>(n) * in);
  for (int j = 0; j < n; ++j)
    for (int k = 0; k < in; ++k)  // rows of very different magnitudes; row 2 all zero
      p.x[static_cast<size_t>(j) * in + k] = j == 2 ? 0.0f : u(rng) * std::pow(3.0f, j % 5 - 2);
  return p;
}

// Integer result c[j, o] = sum_k (q[j, k] - zp[j]) * qw[o, k], evaluated plainly.
std::vector<int32_t> reference_int32(const int8::PackedWeights& pw, const std::vector<uint8_t>& q,
                                     const std::vector<int32_t>& zp, int n) {
  std::vector<int32_t> c(static_cast<size_t>(n) * pw.out());
  for (int j = 0; j < n; ++j)
    for (int o = 0; o < pw.out(); ++o) {
      int64_t acc = 0;
      for (int k = 0; k < pw.in(); ++k)
        acc += (static_cast<int64_t>(q[static_cast<size_t>(j) * pw.in_padded() + k]) - zp[j]) *
               int8::weight_at(pw, o, k);
      c[static_cast<size_t>(j) * pw.out() + o] = static_cast<int32_t>(acc);
    }
  return c;
}

void check_shape(int n, int out, int in, uint32_t seed) {
  SCOPED_TRACE("n=" + std::to_string(n) + " out=" + std::to_string(out) +
               " in=" + std::to_string(in));
  const Problem p = make_problem(n, out, in, seed);
  const auto pw = int8::PackedWeights::pack(p.w.data(), p.b.data(), out, in);
  ASSERT_EQ(pw.in_padded() % 4, 0);
  // The packed weights are the per-row symmetric quantization of w.
  for (int o = 0; o < out; o += std::max(1, out / 7)) {
    float mx = 0.0f;
    for (int k = 0; k < in; ++k) mx = std::max(mx, std::fabs(p.w[static_cast<size_t>(o) * in + k]));
    ASSERT_FLOAT_EQ(pw.scale()[o], mx / 127.0f);
    for (int k = 0; k < in; ++k)
      ASSERT_EQ(int8::weight_at(pw, o, k),
                std::lrint(p.w[static_cast<size_t>(o) * in + k] / pw.scale()[o]));
  }

  std::vector<uint8_t> q(static_cast<size_t>(n) * pw.in_padded());
  std::vector<float> sa(n);
  std::vector<int32_t> zp(n);
  int8::quantize_rows_reference(p.x.data(), n, in, pw.in_padded(), q.data(), sa.data(), zp.data());
  const auto want = reference_int32(pw, q, zp, n);
  std::vector<int32_t> got(want.size(), -7);
  int8::gemm_int32(pw, q.data(), zp.data(), n, got.data());
  ASSERT_EQ(got, want);

  // Dequantized output: exactly the scalar formula (the kernel quantizes the activations itself,
  // bit-identically to the reference) and close to the fp32 product.
  std::vector<float> y(static_cast<size_t>(n) * out, NAN);
  int8::linear(pw, p.x.data(), n, y.data());
  for (int j = 0; j < n; ++j)
    for (int o = 0; o < out; ++o) {
      const size_t at = static_cast<size_t>(j) * out + o;
      const float expect = std::fma(static_cast<float>(want[at]), pw.scale()[o] * sa[j], p.b[o]);
      ASSERT_EQ(y[at], expect) << "j=" << j << " o=" << o;
      // |x w - x~ w~| <= |ex| |w| + |x| |ew| + |ex| |ew| with |ew| <= sw / 2 and |ex| <= sa (half a
      // step, or one step at the top of the range where q is clamped to 255).
      double exact = p.b[o], bound = 1e-5;
      for (int k = 0; k < in; ++k) {
        const double xv = p.x[static_cast<size_t>(j) * in + k];
        const double wv = p.w[static_cast<size_t>(o) * in + k];
        exact += xv * wv;
        bound += sa[j] * std::fabs(wv) + 0.5 * pw.scale()[o] * std::fabs(xv) +
                 0.5 * sa[j] * pw.scale()[o];
      }
      ASSERT_NEAR(y[at], exact, 1.01 * bound) << "j=" << j << " o=" << o;
    }
}

TEST(Int8Gemm, MatchesScalarQuantizedArithmeticOnOddShapes) {
  REQUIRE_VNNI_ELSE_CHECK_FALLBACK();
  uint32_t seed = 1;
  for (int in : {7, 13, 64, 512})
    for (int out : {1, 17, 64, 1001})
      for (int n : {1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 31, 64, 127, 130})
        check_shape(n, out, in, seed++);
  // Every row count 1..130 on a small odd shape (register-tile and row-group edges).
  for (int n = 1; n <= 130; ++n) check_shape(n, 17, 13, seed++);
}

TEST(Int8Gemm, WorkerPoolGivesTheSameResult) {
  REQUIRE_VNNI_ELSE_CHECK_FALLBACK();
  struct RestoreOneThread {
    ~RestoreOneThread() { set_parallel_threads(1); }
  } restore;
  set_parallel_threads(2);
  for (int n : {1, 5, 64, 130}) check_shape(n, 1001, 512, 100 + n);
  check_shape(33, 2048, 512, 7);
  check_shape(9, 512, 2048, 8);
}

TEST(Int8Gemm, ReferenceQuantizationContract) {
  const float x[5] = {0.5f, -0.25f, 0.25f, 0.0f, 1.0f};
  uint8_t q[8];
  float sa = 0.0f;
  int32_t zp = -1;
  int8::quantize_rows_reference(x, 1, 5, 8, q, &sa, &zp);
  EXPECT_FLOAT_EQ(sa, 1.25f / 255.0f);
  EXPECT_EQ(zp, 51);          // 0.25 * 204
  EXPECT_EQ(q[0], 51 + 102);  // 0.5 * 204
  EXPECT_EQ(q[1], 0);         // the minimum
  EXPECT_EQ(q[2], 51 + 51);
  EXPECT_EQ(q[3], 51);                              // 0 is exact
  EXPECT_EQ(q[4], 255);                             // the maximum
  for (int k = 5; k < 8; ++k) EXPECT_EQ(q[k], 51);  // padding is the zero point
  const float positive[3] = {1.0f, 2.0f, 3.0f};     // the range always includes 0
  int8::quantize_rows_reference(positive, 1, 3, 4, q, &sa, &zp);
  EXPECT_EQ(zp, 0);
  EXPECT_EQ(q[0], 85);
  EXPECT_EQ(q[2], 255);
  const float zeros[3] = {0, 0, 0};
  int8::quantize_rows_reference(zeros, 1, 3, 4, q, &sa, &zp);
  EXPECT_EQ(sa, 1.0f);
  for (int k = 0; k < 4; ++k) EXPECT_EQ(q[k], zp);
}

// Rows longer than the int32 accumulators allow are refused rather than silently overflowing.
TEST(Int8Gemm, PackRejectsRowsTooLongForInt32Sums) {
  std::vector<float> w(int8::kMaxIn + 1, 0.5f);
  EXPECT_THROW(int8::PackedWeights::pack(w.data(), nullptr, 1, int8::kMaxIn + 1),
               std::invalid_argument);
  EXPECT_THROW(int8::PackedWeights::pack(w.data(), nullptr, 0, 4), std::invalid_argument);
  const auto ok = int8::PackedWeights::pack(w.data(), nullptr, 1, int8::kMaxIn);
  EXPECT_EQ(ok.in_padded(), int8::kMaxIn);
  EXPECT_EQ(int8::weight_at(ok, 0, int8::kMaxIn - 1), 127);
}

}  // namespace
