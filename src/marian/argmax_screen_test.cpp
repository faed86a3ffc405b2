// ArgmaxScreen: its bound holds for every logit, and its choice is the argmax of the fp32 logits
// (brute force over every id) including ties, near-ties, banned and forced rows.
#include "marian/argmax_screen.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <random>
#include <span>
#include <stdexcept>
#include <vector>

#include "marian/int8_gemm.h"
#include "marian/model.h"
#include "marian/parallel.h"
#include "marian/tiny_fixture_test_support.h"
#include "marian/tokenizer.h"

using namespace transnotes::marian;

namespace {

const std::filesystem::path kFixtureDir = tiny_fixture::dir();

// Feeds the same tokens to two decoders of `model` and checks that every greedy step chooses the
// first argmax of that step's fp32 logits (decoder_step computes all of them), with or without
// the screen.
void expect_greedy_steps_take_the_fp32_argmax(const MarianModel& model) {
  const std::vector<int> source = MarianTokenizer(kFixtureDir).encode("The cat is on the table.");
  const auto encoded = model.encode({source});
  constexpr int kSteps = 8;
  auto all_logits = model.start_decoder(encoded, {0}, kSteps);
  auto greedy = model.start_decoder(encoded, {0}, kSteps);
  const int vocab = model.decoder_vocab_size();
  std::vector<float> logits(static_cast<size_t>(vocab));
  const std::vector<std::vector<int>> nothing_banned(1);
  int token = model.config().decoder_start_token_id;
  for (int step = 0; step < kSteps; ++step) {
    model.decoder_step(*all_logits, std::span<const int>(&token, 1), logits.data());
    int chosen = -1;
    model.decoder_step_greedy(*greedy, std::span<const int>(&token, 1), nothing_banned, &chosen);
    ASSERT_EQ(chosen, first_argmax(logits.data(), vocab)) << "step " << step;
    token = chosen;
  }
}

// On a CPU without AVX-512 VNNI there is no screen: greedy search computes every logit in fp32.
// There a screen test checks instead that this fallback is what runs, and ends (a skip would fail
// the test run, and would not show that the fallback works).
void expect_fp32_greedy_fallback() {
  EXPECT_FALSE(int8::have_vnni());
  std::vector<float> w(64 * 16, 0.5f), b(64, 0.0f);
  EXPECT_THROW(ArgmaxScreen(w.data(), b.data(), 64, 16), std::logic_error);
  const auto model = MarianModel::load(kFixtureDir);  // the screen is on by default
  EXPECT_FALSE(model->has_greedy_screen());
  EXPECT_EQ(model->greedy_screen(), nullptr);
  expect_greedy_steps_take_the_fp32_argmax(*model);
}

#define REQUIRE_SCREEN_ELSE_CHECK_FALLBACK() \
  if (!ArgmaxScreen::supported()) {          \
    expect_fp32_greedy_fallback();           \
    return;                                  \
  }

struct Projection {
  int out, in;
  std::vector<float> w, b;
};

// Rows of different norms (like embeddings of frequent and rare words) with a few outliers.
Projection make_projection(int out, int in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Projection p{out, in, std::vector<float>(static_cast<size_t>(out) * in), std::vector<float>(out)};
  for (int o = 0; o < out; ++o) {
    const float row_scale = 0.02f * (1 + o % 5);
    for (int k = 0; k < in; ++k) p.w[static_cast<size_t>(o) * in + k] = row_scale * normal(rng);
    if (o % 97 == 0) p.w[static_cast<size_t>(o) * in + o % in] = 1.5f;
    p.b[o] = 0.1f * normal(rng);
  }
  return p;
}

// Hidden states: LayerNorm-like rows, a row with one huge activation, an all-zero row and a row
// of tiny values.
std::vector<float> make_rows(int n, int in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n) * in);
  for (int j = 0; j < n; ++j)
    for (int k = 0; k < in; ++k) {
      float v = normal(rng);
      if (j % 4 == 1 && k == 3) v = 40.0f;
      if (j % 4 == 2) v = 0.0f;
      if (j % 4 == 3) v *= 1e-6f;
      x[static_cast<size_t>(j) * in + k] = v;
    }
  return x;
}

// The first o with the largest screen.logit among ids not banned (what greedy search wants).
int brute_force(const ArgmaxScreen& screen, const float* x, const std::vector<int>& banned) {
  int best = 0;
  float best_logit = -std::numeric_limits<float>::infinity();
  for (int o = 0; o < screen.out(); ++o) {
    if (std::find(banned.begin(), banned.end(), o) != banned.end()) continue;
    const float y = screen.logit(x, o);
    if (y > best_logit) {
      best_logit = y;
      best = o;
    }
  }
  return best;
}

TEST(ArgmaxScreen, BoundCoversEveryLogit) {
  REQUIRE_SCREEN_ELSE_CHECK_FALLBACK();
  for (int in : {77, 512}) {
    SCOPED_TRACE("in=" + std::to_string(in));
    const Projection p = make_projection(3001, in, 7);
    const ArgmaxScreen screen(p.w.data(), p.b.data(), p.out, p.in);
    const int n = 8;
    const auto x = make_rows(n, in, 11);
    std::vector<float> approx(static_cast<size_t>(n) * p.out), radius(approx.size());
    screen.bounds(x.data(), n, approx.data(), radius.data());
    for (int j = 0; j < n; ++j) {
      const float* xj = x.data() + static_cast<size_t>(j) * in;
      double sum = 0, sum2 = 0, radius_sum = 0;
      for (int o = 0; o < p.out; ++o) {
        double exact = p.b[o];
        for (int k = 0; k < in; ++k) exact += double{xj[k]} * p.w[static_cast<size_t>(o) * in + k];
        const size_t at = static_cast<size_t>(j) * p.out + o;
        ASSERT_LE(std::fabs(exact - approx[at]), radius[at]) << "j=" << j << " o=" << o;
        ASSERT_LE(std::fabs(screen.logit(xj, o) - approx[at]), radius[at])
            << "j=" << j << " o=" << o;
        sum += exact;
        sum2 += exact * exact;
        radius_sum += radius[at];
      }
      // The bound must also be useful: well below the spread of the logits. One huge activation
      // coarsens the row's uint8 quantization and widens it (more candidates, same answer); for
      // the all-zero and the tiny rows it is about the rounding allowance alone.
      const double spread = std::sqrt(sum2 / p.out - (sum / p.out) * (sum / p.out));
      const double mean_radius = radius_sum / p.out;
      const double limit[4] = {0.35 * spread, 0.8 * spread, 1e-5, 1e-5};
      EXPECT_LT(mean_radius, limit[j % 4]) << "j=" << j;
    }
  }
}

TEST(ArgmaxScreen, ChoosesTheFp32ArgmaxWithTiesBansAndForcedRows) {
  REQUIRE_SCREEN_ELSE_CHECK_FALLBACK();
  const int in = 96;
  Projection p = make_projection(5000, in, 3);
  auto row = [&](int o) { return p.w.data() + static_cast<size_t>(o) * in; };
  // Exact ties: rows 4300 and 4999 repeat row 4200 (the first of them must win). A near-tie:
  // row 2500 is row 1200 with one weight one ulp larger. Rows 600 and 601 are ranked one way by
  // their int8 logits and the other way by their fp32 logits. These rows are made long enough
  // for the hidden states aimed at them below to give them the largest logits.
  for (int k = 0; k < in; ++k) {
    row(600)[k] *= 5.0f;
    row(1200)[k] *= 5.0f;
    row(4200)[k] *= 8.0f;
  }
  std::copy_n(row(4200), in, row(4300));
  std::copy_n(row(4200), in, row(4999));
  p.b[4300] = p.b[4999] = p.b[4200];
  std::copy_n(row(1200), in, row(2500));
  row(2500)[5] = std::nextafter(row(2500)[5], 10.0f);
  p.b[2500] = p.b[1200];
  {
    // Two weights k1, k2 of row 600 sit just past the middle of their quantization buckets in
    // opposite directions; row 601 has them just before it. Row 601's int8 logit is one
    // quantized step times x_k1 lower, its fp32 logit ~0.8 step times x higher.
    float max_abs = 0.0f;
    for (int k = 0; k < in; ++k) max_abs = std::max(max_abs, std::fabs(row(600)[k]));
    const float step = max_abs / 127.0f;
    auto inner = [&](int k) { return row(600)[k] >= 8 * step && row(600)[k] < max_abs - 8 * step; };
    int k1 = 0;
    while (!inner(k1)) ++k1;
    int k2 = k1 + 1;
    while (!inner(k2)) ++k2;
    const float q1 = std::round(row(600)[k1] / step), q2 = std::round(row(600)[k2] / step);
    std::copy_n(row(600), in, row(601));
    row(600)[k1] = (q1 + 0.55f) * step;
    row(601)[k1] = (q1 + 0.45f) * step;
    row(600)[k2] = (q2 - 0.45f) * step;
    row(601)[k2] = (q2 + 0.45f) * step;
    p.b[601] = p.b[600];
  }
  const ArgmaxScreen screen(p.w.data(), p.b.data(), p.out, p.in);

  const int n = 24;
  auto x = make_rows(n, in, 5);
  auto aim = [&](int j, int o) {
    for (int k = 0; k < in; ++k) x[static_cast<size_t>(j) * in + k] = 60.0f * row(o)[k];
  };
  for (int j = 0; j < 3; ++j) aim(j, 600);
  for (int j = 3; j < 6; ++j) aim(j, 1200);
  aim(6, 4200);
  aim(7, 4200);
  std::vector<std::vector<int>> banned(n);
  banned[7] = {4200};            // the tie's first id is banned: the next copy wins
  banned[10] = {0, 1, 2, 3, 4};  // banned ids that are not the answer
  for (int j = 8; j < 10; ++j) banned[j] = {brute_force(screen, x.data() + j * in, {})};
  std::vector<int> chosen(n, -1);
  chosen[12] = 4242;  // forced

  for (int threads : {1, 2}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    set_parallel_threads(threads);
    std::vector<int> got = chosen;
    std::vector<float> scratch(static_cast<size_t>(n) * p.out);
    screen.argmax(x.data(), n, banned, got.data(), scratch.data());
    int int8_alone_wrong = 0;
    for (int j = 0; j < n; ++j) {
      const int want = j == 12 ? 4242 : brute_force(screen, x.data() + j * in, banned[j]);
      EXPECT_EQ(got[j], want) << "j=" << j;
      // scratch holds the int8 logits (banned ids at -inf).
      if (j != 12 && first_argmax(scratch.data() + static_cast<size_t>(j) * p.out, p.out) != want)
        ++int8_alone_wrong;
    }
    // The case the fp32 recheck exists for did occur.
    EXPECT_GT(int8_alone_wrong, 0);
    EXPECT_EQ(got[0], 601);
    EXPECT_EQ(got[6], 4200);
    EXPECT_EQ(got[7], 4300);
  }
  set_parallel_threads(1);
  // Far fewer fp32 logits than ids were computed.
  EXPECT_GT(screen.rows_screened(), 0u);
  EXPECT_LT(screen.logits_verified(), screen.rows_screened() * (p.out / 20));
}

// Inputs near the ends of the float range (found in review): the answer must still be the
// brute-force argmax over ArgmaxScreen::logit.
TEST(ArgmaxScreen, ExtremeMagnitudesStillGiveTheFp32Argmax) {
  REQUIRE_SCREEN_ELSE_CHECK_FALLBACK();
  struct Case {
    const char* name;
    int out, in;
    std::vector<float> w, b, x;
    std::vector<int> banned;
  };
  std::vector<Case> cases;
  // The kernel's scale product overflows: an int8 logit would be NaN.
  cases.push_back(
      {"scale overflow", 2, 2, {0.f, 1.27e21f, 0.f, 0.f}, {0.f, -1.f}, {2.55e22f, 0.f}, {}});
  {  // The threshold would round to -inf and let the banned id 0 in.
    Case c{"banned id below -FLT_MAX threshold",
           3,
           17,
           std::vector<float>(3 * 17, 0.f),
           {0.f, 0.f, -1.f},
           std::vector<float>(17, 0.f),
           {0}};
    for (int k = 0; k < 16; ++k) c.x[k] = 1e22f;
    c.w[0] = 1.f;
    c.w[17 + 16] = 1e21f;
    cases.push_back(c);
  }
  {  // Subnormal weights: w / s can pass 127 (the packed int8 must be clamped).
    const int in = 16;
    Case c{"subnormal weights",         2, in, std::vector<float>(2 * in, 0.f), {0.f, 0.f},
           std::vector<float>(in, 0.f), {}};
    const float v = std::ldexp(190.0f, -149);
    for (int k = 0; k < 8; ++k) {
      c.x[k] = 1e37f;
      c.w[k] = v;
      c.w[in + k] = -v;
    }
    c.x[8] = -1e37f;
    const ArgmaxScreen probe(c.w.data(), c.b.data(), 2, in);
    c.b[1] = (probe.logit(c.x.data(), 0) - probe.logit(c.x.data(), 1)) * 0.999f;
    cases.push_back(c);
  }
  {  // One fp32 dot product overflows to +inf although its exact value is 0.
    const int in = 128;
    Case c{"fp32 dot overflow",         2, in, std::vector<float>(2 * in, 0.f), {0.f, 0.f},
           std::vector<float>(in, 0.f), {}};
    c.x[0] = c.x[64] = 1e20f;
    c.w[0] = 1e19f;
    c.w[64] = -1e19f;
    c.w[in] = 3e18f;
    cases.push_back(c);
  }
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const ArgmaxScreen screen(c.w.data(), c.b.data(), c.out, c.in);
    std::vector<std::vector<int>> banned{c.banned};
    std::vector<float> scratch(c.out);
    int chosen = -1;
    screen.argmax(c.x.data(), 1, banned, &chosen, scratch.data());
    EXPECT_EQ(chosen, brute_force(screen, c.x.data(), c.banned));
    std::vector<float> approx(c.out), radius(c.out);
    screen.bounds(c.x.data(), 1, approx.data(), radius.data());
    for (int o = 0; o < c.out; ++o) {
      const float y = screen.logit(c.x.data(), o);
      if (std::isfinite(y) && std::isfinite(approx[o]) && std::fabs(y) < 1e30f) {
        EXPECT_LE(std::fabs(double{y} - approx[o]), radius[o]) << "o=" << o;
      }
    }
  }
}

TEST(ArgmaxScreen, AllBannedOrNonFiniteRowsStillGetAnAnswer) {
  REQUIRE_SCREEN_ELSE_CHECK_FALLBACK();
  const Projection p = make_projection(300, 32, 9);
  const ArgmaxScreen screen(p.w.data(), p.b.data(), p.out, p.in);
  std::vector<float> x = make_rows(2, 32, 1);
  x[5] = std::numeric_limits<float>::quiet_NaN();  // row 0
  std::vector<std::vector<int>> banned(2);
  for (int o = 0; o < p.out; ++o) banned[1].push_back(o);
  std::vector<int> chosen(2, -1);
  std::vector<float> scratch(2 * p.out);
  screen.argmax(x.data(), 2, banned, chosen.data(), scratch.data());
  EXPECT_GE(chosen[0], 0);
  EXPECT_LT(chosen[0], p.out);
  EXPECT_EQ(chosen[1], 0);  // as first_argmax over a row of -inf
}

// Runs on every CPU: greedy steps pick the fp32 argmax through the screen where the CPU has one
// and the model uses it, and through every fp32 logit otherwise.
TEST(ArgmaxScreen, GreedyStepsTakeTheFp32ArgmaxWithAndWithoutScreen) {
  ASSERT_TRUE(std::filesystem::exists(kFixtureDir / "model.safetensors")) << kFixtureDir;
  const auto screened = MarianModel::load(kFixtureDir);
  EXPECT_EQ(screened->has_greedy_screen(), ArgmaxScreen::supported());
  expect_greedy_steps_take_the_fp32_argmax(*screened);
  ModelOptions every_logit;
  every_logit.greedy_screen = false;
  const auto unscreened = MarianModel::load(kFixtureDir, every_logit);
  EXPECT_FALSE(unscreened->has_greedy_screen());
  EXPECT_EQ(unscreened->greedy_screen(), nullptr);
  expect_greedy_steps_take_the_fp32_argmax(*unscreened);
}

}  // namespace
