#include "marian/generate.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "domain/errors.h"
#include "marian/parallel.h"
#include "marian/simd.h"

namespace transnotes::marian {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The logits processors of the checkpoint (HF order does not matter: all set -inf, except
// forced EOS which replaces the whole row).
struct Processors {
  const GenerationConfig& gen;
  int max_length;
  int min_new_tokens;
  int eos;

  // Marks banned ids of a hypothesis (history incl. start token) in `banned` (true = -inf).
  // Returns the forced token id or -1.
  int apply(const std::vector<int>& history, int cur_len, std::vector<int>& banned) const {
    banned.clear();
    if (gen.forced_eos_token_id >= 0 && cur_len == max_length - 1) return gen.forced_eos_token_id;
    for (const auto& seq : gen.bad_words_ids) {
      const size_t prefix = seq.size() - 1;
      if (prefix > history.size()) continue;
      if (std::equal(seq.begin(), seq.end() - 1, history.end() - prefix))
        banned.push_back(seq.back());
    }
    if (cur_len - 1 < min_new_tokens) banned.push_back(eos);
    return -1;
  }
};

int effective_max_length(const MarianModel& model, const GenerateOptions& o) {
  int max_length = o.max_new_tokens > 0 ? 1 + o.max_new_tokens : o.max_length;
  // Decoder positions 0..max_length-2 are fed; HF would fail beyond the position table.
  max_length = std::min(max_length, model.config().max_position_embeddings + 1);
  return std::max(max_length, 1);
}

std::vector<GenerateResult> greedy(const MarianModel& model,
                                   const std::vector<std::vector<int>>& input_ids,
                                   const GenerateOptions& o) {
  const auto& gen = model.generation_config();
  const int max_length = effective_max_length(model, o);
  const int n_rows = static_cast<int>(input_ids.size());
  const int eos = gen.eos_token_id;
  Processors proc{gen, max_length, o.min_new_tokens, eos};
  std::vector<GenerateResult> results(n_rows);
  for (auto& r : results) r.ids.push_back(gen.decoder_start_token_id);
  if (max_length <= 1 || n_rows == 0) return results;
  auto enc = model.encode(input_ids);
  std::vector<int> active(n_rows);
  std::iota(active.begin(), active.end(), 0);
  auto state = model.start_decoder(enc, active, max_length - 1);
  std::vector<int> tokens(n_rows, gen.decoder_start_token_id);
  std::vector<int> chosen(n_rows);
  std::vector<std::vector<int>> banned(n_rows);
  std::vector<int> keep;
  for (int cur_len = 1; cur_len < max_length && !active.empty(); ++cur_len) {
    const int n = static_cast<int>(active.size());
    for (int i = 0; i < n; ++i) chosen[i] = proc.apply(results[active[i]].ids, cur_len, banned[i]);
    model.decoder_step_greedy(*state, std::span<const int>(tokens.data(), n),
                              std::span<const std::vector<int>>(banned.data(), n), chosen.data());
    keep.clear();
    std::copy_n(chosen.begin(), n, tokens.begin());
    for (int i = 0; i < n; ++i) {
      results[active[i]].ids.push_back(tokens[i]);
      if (tokens[i] != eos) keep.push_back(i);
    }
    if (static_cast<int>(keep.size()) != n) {
      std::vector<int> still;
      for (size_t j = 0; j < keep.size(); ++j) {
        still.push_back(active[keep[j]]);
        tokens[j] = tokens[keep[j]];
      }
      active.swap(still);
      if (!active.empty()) model.select_hypotheses(*state, keep);
    }
  }
  return results;
}

// sum_t exp(x[t] - shift) for x[t] <= shift, accumulated in double. The AVX2 path uses the
// engine's Cephes-style expf polynomial (simd::exp256, relative error ~1e-7).
__attribute__((target("avx2,fma"))) double sum_exp_avx2(const float* x, int n, float shift) {
  const __m256 vshift = _mm256_set1_ps(shift);
  __m256d acc_lo = _mm256_setzero_pd();
  __m256d acc_hi = _mm256_setzero_pd();
  int t = 0;
  for (; t + 8 <= n; t += 8) {
    const __m256 y = simd::exp256(_mm256_sub_ps(_mm256_loadu_ps(x + t), vshift));
    acc_lo = _mm256_add_pd(acc_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(y)));
    acc_hi = _mm256_add_pd(acc_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(y, 1)));
  }
  alignas(32) double parts[4];
  _mm256_store_pd(parts, _mm256_add_pd(acc_lo, acc_hi));
  double sum = parts[0] + parts[1] + parts[2] + parts[3];
  for (; t < n; ++t) sum += std::exp(static_cast<double>(x[t] - shift));
  return sum;
}

double sum_exp(const float* x, int n, float shift) {
  if (simd::have_avx2_fma()) return sum_exp_avx2(x, n, shift);
  double sum = 0.0;
  for (int t = 0; t < n; ++t) sum += std::exp(static_cast<double>(x[t] - shift));
  return sum;
}

struct Finished {
  float score;
  std::vector<int> ids;  // incl. </s> when it ended with one
};

// HF BeamHypotheses.
struct BeamHypotheses {
  int num_beams;
  float length_penalty;
  bool early_stopping;
  std::vector<Finished> beams;
  float worst = 1e9f;
  bool done = false;

  void add(std::vector<int> ids, float sum_logprobs, int generated_len) {
    float score = sum_logprobs / std::pow(static_cast<float>(generated_len), length_penalty);
    if (static_cast<int>(beams.size()) < num_beams || score > worst) {
      beams.push_back({score, std::move(ids)});
      if (static_cast<int>(beams.size()) > num_beams) {
        // Remove the worst (lowest score, earliest on ties); worst becomes the second lowest.
        std::vector<std::pair<float, size_t>> sorted;
        for (size_t i = 0; i < beams.size(); ++i) sorted.emplace_back(beams[i].score, i);
        std::sort(sorted.begin(), sorted.end());
        beams.erase(beams.begin() + static_cast<long>(sorted[0].second));
        worst = sorted[1].first;
      } else {
        worst = std::min(score, worst);
      }
    }
  }
  bool is_done(float best_sum_logprobs, int cur_len) const {
    if (static_cast<int>(beams.size()) < num_beams) return false;
    if (early_stopping) return true;
    float highest = best_sum_logprobs / std::pow(static_cast<float>(cur_len - 1), length_penalty);
    return worst >= highest;
  }
};

struct TopEntry {
  float logit;
  int token;
};

// Keeps the k largest (logit, token) seen, earliest token first among equal logits (a min-heap
// on logit; a later equal logit never displaces an earlier one).
struct TopK {
  TopEntry* heap;
  int k;
  int size = 0;
  static bool greater(const TopEntry& a, const TopEntry& b) { return a.logit > b.logit; }
  float threshold() const { return heap[0].logit; }
  void push(float logit, int token) {
    if (size < k) {
      heap[size++] = {logit, token};
      std::push_heap(heap, heap + size, greater);
    } else if (logit > heap[0].logit) {
      std::pop_heap(heap, heap + size, greater);
      heap[size - 1] = {logit, token};
      std::push_heap(heap, heap + size, greater);
    }
  }
};

// Max and top-k of row[from, n) for a full heap (top.size == k): one pass, vectorised compare
// against the heap's threshold so that only the rare improving logits take the scalar path.
__attribute__((target("avx2,fma"))) float max_and_topk_avx2(const float* row, int from, int n,
                                                            TopK& top, float mx) {
  int t = from;
  for (; t < n && t % 8 != 0; ++t) {
    mx = std::max(mx, row[t]);
    top.push(row[t], t);
  }
  __m256 vmax = _mm256_set1_ps(mx);
  __m256 thr = _mm256_set1_ps(top.threshold());
  for (; t + 8 <= n; t += 8) {
    const __m256 v = _mm256_loadu_ps(row + t);
    vmax = _mm256_max_ps(vmax, v);
    int mask = _mm256_movemask_ps(_mm256_cmp_ps(v, thr, _CMP_GT_OQ));
    if (mask == 0) continue;
    while (mask) {
      const int lane = __builtin_ctz(mask);
      mask &= mask - 1;
      top.push(row[t + lane], t + lane);
    }
    thr = _mm256_set1_ps(top.threshold());
  }
  mx = std::max(mx, simd::horizontal_max(vmax));
  for (; t < n; ++t) {
    mx = std::max(mx, row[t]);
    top.push(row[t], t);
  }
  return mx;
}

// Beam-search scores of one row of raw logits: log_softmax over all ids, processors (banned ids
// -inf), then (renormalize) log_softmax again, i.e. score = logit - offset with offset the
// logsumexp over allowed ids (renormalize) or over all ids. Writes offset and the (up to) k best
// allowed tokens (unordered). Sets the banned logits to -inf.
void score_row(float* row, int V, const std::vector<int>& banned, int k, bool renormalize,
               float& offset, TopEntry* top_out, int& top_count) {
  // Save and mask the banned logits (they count for the max and the unnormalised sum).
  float banned_max = kNegInf;
  float banned_values[8];
  int n_banned = 0;
  std::vector<std::pair<int, float>> many;  // only when more than 8 bans
  for (int t : banned) {
    if (row[t] == kNegInf) continue;  // repeated ban (or already -inf)
    banned_max = std::max(banned_max, row[t]);
    if (n_banned < 8) {
      banned_values[n_banned++] = row[t];
    } else {
      many.emplace_back(t, row[t]);
    }
    row[t] = kNegInf;
  }
  TopK top{top_out, k};
  // Fill the heap with the first k allowed ids (whatever their logits), then scan the rest.
  int t = 0;
  float mx = kNegInf;
  for (; t < V && top.size < k; ++t) {
    mx = std::max(mx, row[t]);
    if (row[t] == kNegInf && std::find(banned.begin(), banned.end(), t) != banned.end()) continue;
    top.push(row[t], t);
  }
  if (top.size == k) {
    if (simd::have_avx2_fma()) {
      mx = max_and_topk_avx2(row, t, V, top, mx);
    } else {
      for (; t < V; ++t) {
        mx = std::max(mx, row[t]);
        top.push(row[t], t);
      }
    }
  }
  top_count = top.size;
  mx = std::max(mx, banned_max);
  double sum_banned = 0.0;
  for (int i = 0; i < n_banned; ++i)
    sum_banned += std::exp(static_cast<double>(banned_values[i] - mx));
  for (const auto& [token, value] : many) sum_banned += std::exp(static_cast<double>(value - mx));
  const double sum_allowed = sum_exp(row, V, mx);
  if (renormalize) {
    offset = mx + static_cast<float>(std::log(sum_allowed));
  } else {
    offset = mx + static_cast<float>(std::log(sum_allowed + sum_banned));
  }
}

struct Candidate {
  float score;
  int beam;  // within the sentence
  int token;
};

std::vector<GenerateResult> beam_search(const MarianModel& model,
                                        const std::vector<std::vector<int>>& input_ids,
                                        const GenerateOptions& o) {
  const auto& gen = model.generation_config();
  const int max_length = effective_max_length(model, o);
  const int n_rows = static_cast<int>(input_ids.size());
  const int V = model.decoder_vocab_size();
  const int eos = gen.eos_token_id;
  const int beams = o.num_beams;
  const int k = 2 * beams;
  Processors proc{gen, max_length, o.min_new_tokens, eos};
  std::vector<GenerateResult> results(n_rows);
  if (n_rows == 0) return results;
  if (max_length <= 1) {
    for (auto& r : results) r.ids = {gen.decoder_start_token_id};
    return results;
  }
  std::vector<BeamHypotheses> hyps(
      n_rows, BeamHypotheses{beams, o.length_penalty, o.early_stopping, {}, 1e9f, false});
  auto enc = model.encode(input_ids);
  // Running hypotheses, sentence-major: active[s] sentences each with `beams` rows.
  std::vector<int> active(n_rows);
  std::iota(active.begin(), active.end(), 0);
  std::vector<int> rows;
  for (int s = 0; s < n_rows; ++s)
    for (int b = 0; b < beams; ++b) rows.push_back(s);
  auto state = model.start_decoder(enc, rows, max_length - 1);
  const size_t total = rows.size();
  std::vector<std::vector<int>> seqs(total, std::vector<int>{gen.decoder_start_token_id});
  std::vector<float> beam_scores(total, 0.0f);
  for (size_t i = 0; i < total; ++i)
    if (i % beams != 0) beam_scores[i] = -1e9f;
  std::vector<float> logits(total * V);
  std::vector<int> tokens(total, gen.decoder_start_token_id);
  std::vector<Candidate> cands;
  std::vector<std::vector<int>> row_banned(total);
  std::vector<int> forced(total), top_counts(total);
  std::vector<float> offsets(total);
  std::vector<TopEntry> tops(total * k);

  int cur_len = 1;
  for (; cur_len < max_length && !active.empty(); ++cur_len) {
    const int n = static_cast<int>(active.size()) * beams;
    model.decoder_step(*state, std::span<const int>(tokens.data(), n), logits.data());
    std::vector<int> next_active, keep, next_tokens;
    std::vector<float> next_scores;
    std::vector<std::vector<int>> next_seqs;
    // Processors per row (sequential: they read the histories), then every row's scores in
    // parallel: offset (log-softmax normaliser) and its k best allowed tokens.
    for (int r = 0; r < n; ++r) forced[r] = proc.apply(seqs[r], cur_len, row_banned[r]);
    parallel_for(n, 1, [&](int begin, int end) {
      for (int r = begin; r < end; ++r) {
        if (forced[r] >= 0) continue;
        score_row(logits.data() + static_cast<size_t>(r) * V, V, row_banned[r], k,
                  gen.renormalize_logits, offsets[r], tops.data() + static_cast<size_t>(r) * k,
                  top_counts[r]);
      }
    });
    for (size_t si = 0; si < active.size(); ++si) {
      const int sent = active[si];
      cands.clear();
      for (int b = 0; b < beams; ++b) {
        const int r = static_cast<int>(si) * beams + b;
        const float base = beam_scores[r];
        if (forced[r] >= 0) {
          // Every logit -inf except the forced one, which is 0 (also after renormalising).
          cands.push_back({base + 0.0f, b, forced[r]});
          for (int t = 0, added = 0; t < V && added < k - 1; ++t)
            if (t != forced[r]) cands.push_back({kNegInf, b, t}), ++added;
          continue;
        }
        for (int j = 0; j < top_counts[r]; ++j) {
          const TopEntry& e = tops[static_cast<size_t>(r) * k + j];
          cands.push_back({(e.logit - offsets[r]) + base, b, e.token});
        }
      }
      std::sort(cands.begin(), cands.end(), [V](const Candidate& a, const Candidate& c) {
        if (a.score != c.score) return a.score > c.score;
        return a.beam * V + a.token < c.beam * V + c.token;
      });
      if (static_cast<int>(cands.size()) > k) cands.resize(k);
      auto& h = hyps[sent];
      int chosen = 0;
      std::vector<int> sent_keep, sent_tokens;
      std::vector<float> sent_scores;
      for (int rank = 0; rank < static_cast<int>(cands.size()); ++rank) {
        const auto& c = cands[rank];
        const int r = static_cast<int>(si) * beams + c.beam;
        if (c.token == eos) {
          if (rank >= beams) continue;
          std::vector<int> ids = seqs[r];
          ids.push_back(eos);
          h.add(std::move(ids), c.score, cur_len);  // generated_len incl. </s>
        } else {
          sent_keep.push_back(r);
          sent_tokens.push_back(c.token);
          sent_scores.push_back(c.score);
          ++chosen;
        }
        if (chosen == beams) break;
      }
      const float best = cands.empty() ? kNegInf : cands[0].score;
      h.done = h.done || h.is_done(best, cur_len + 1);
      if (h.done) continue;
      if (chosen < beams) throw TranslationFailed("marian: beam search ran out of candidates");
      next_active.push_back(sent);
      for (int b = 0; b < beams; ++b) {
        keep.push_back(sent_keep[b]);
        next_tokens.push_back(sent_tokens[b]);
        next_scores.push_back(sent_scores[b]);
        std::vector<int> s = seqs[sent_keep[b]];
        s.push_back(sent_tokens[b]);
        next_seqs.push_back(std::move(s));
      }
    }
    active.swap(next_active);
    for (size_t i = 0; i < keep.size(); ++i) {
      tokens[i] = next_tokens[i];
      beam_scores[i] = next_scores[i];
    }
    seqs.swap(next_seqs);
    if (!active.empty()) model.select_hypotheses(*state, keep);
  }
  // Finalize: sentences still running add their beams (no </s>).
  for (size_t si = 0; si < active.size(); ++si) {
    auto& h = hyps[active[si]];
    for (int b = 0; b < beams; ++b) {
      const size_t r = si * beams + b;
      const int generated = static_cast<int>(seqs[r].size()) - 1;
      h.add(seqs[r], beam_scores[r], generated);
    }
  }
  for (int s = 0; s < n_rows; ++s) {
    const auto& beams_of = hyps[s].beams;
    if (beams_of.empty()) {
      results[s].ids = {gen.decoder_start_token_id};
      continue;
    }
    size_t best = 0;
    for (size_t i = 1; i < beams_of.size(); ++i)
      if (beams_of[i].score >= beams_of[best].score) best = i;  // ties: the later one (HF)
    results[s].ids = beams_of[best].ids;
    results[s].score = beams_of[best].score;
  }
  return results;
}

}  // namespace

GenerateOptions GenerateOptions::from_model(const MarianModel& model) {
  const auto& g = model.generation_config();
  GenerateOptions o;
  o.num_beams = g.num_beams;
  o.max_length = g.max_length;
  o.length_penalty = g.length_penalty;
  o.early_stopping = g.early_stopping;
  return o;
}

std::vector<GenerateResult> generate(const MarianModel& model,
                                     const std::vector<std::vector<int>>& input_ids,
                                     const GenerateOptions& options) {
  if (options.num_beams < 1) throw TranslationFailed("marian: num_beams must be >= 1");
  if (options.num_beams == 1) return greedy(model, input_ids, options);
  return beam_search(model, input_ids, options);
}

}  // namespace transnotes::marian
