#include "marian/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "marian/argmax_screen.h"
#include "marian/ops.h"
#include "marian/parallel.h"
#include "marian/safetensors.h"
#include "marian/weights.h"

namespace transnotes::marian {

struct DecoderState {
  std::shared_ptr<const EncoderOutput> encoder;
  std::vector<int> source_row;                       // hypothesis -> encoder row
  int steps = 0;                                     // tokens fed so far (same for all hypotheses)
  int capacity = 0;                                  // max steps the cache can hold
  std::vector<std::vector<float>> cross_k, cross_v;  // [layer][batch*src_len*d]
  // Self-attention cache: [layer][(step * slots + slot) * d]. Hypothesis i's key/value of step
  // t is in row cache_rows[i * capacity + t], so reordering hypotheses (beam search) moves only
  // these indices, never the cached vectors.
  int slots = 0;
  std::vector<std::vector<float>> self_k, self_v;
  std::vector<int> cache_rows, cache_rows_spare;            // [hyp * capacity]
  std::vector<float> x, tmp, q, attn, ffn, scores, logits;  // scratch
  int num_hyps() const { return static_cast<int>(source_row.size()); }
};

void DecoderStateDeleter::operator()(DecoderState* state) const { delete state; }

namespace {

using ops::linear;

void ensure(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
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
  m->weights_ = bind_weights(*m->file_, m->config_, options);
  return m;
}

std::shared_ptr<const EncoderOutput> MarianModel::encode(
    const std::vector<std::vector<int>>& input_ids,
    std::vector<std::vector<float>>* layer_outputs) const {
  const auto& c = config_;
  const auto& w = *weights_;
  const int d = c.d_model;
  const int heads = c.encoder_attention_heads;
  const float scaling = 1.0f / std::sqrt(static_cast<float>(d / heads));
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
      ops::embed(w.encoder_embed, w.positions.data(), w.embed_scale, d, id, t,
                 x.data() + (static_cast<size_t>(b) * src_len + t) * d);
    }
  }
  if (layer_outputs) {
    layer_outputs->clear();
    layer_outputs->push_back(x);
  }
  std::vector<float> q(x.size()), k(x.size()), v(x.size()), attn(x.size()), tmp(x.size());
  std::vector<float> scores(static_cast<size_t>(out->batch) * heads * src_len);
  std::vector<float> hidden(static_cast<size_t>(rows) * c.encoder_ffn_dim);
  for (const auto& l : w.encoder) {
    linear(l.self.q, x.data(), rows, q.data());
    linear(l.self.k, x.data(), rows, k.data());
    linear(l.self.v, x.data(), rows, v.data());
    for (float& value : q) value *= scaling;
    ops::attend_padded_rows(q.data(), k.data(), v.data(), out->batch, src_len, out->lengths.data(),
                            heads, d, scores.data(), attn.data());
    linear(l.self.o, attn.data(), rows, tmp.data());
    ops::add_layer_norm(x.data(), tmp.data(), rows, d, l.self_ln);  // x = LN(x + attn)
    ops::feed_forward(l.ffn, w.act, x.data(), rows, hidden.data(), tmp.data());
    ops::add_layer_norm(x.data(), tmp.data(), rows, d, l.final_ln);
    if (layer_outputs) layer_outputs->push_back(x);
  }
  return out;
}

DecoderStatePtr MarianModel::start_decoder(std::shared_ptr<const EncoderOutput> encoder,
                                           std::vector<int> source_row, int max_steps) const {
  const auto& c = config_;
  const auto& w = *weights_;
  const int d = c.d_model;
  DecoderStatePtr s(new DecoderState());
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
  const float scaling = 1.0f / std::sqrt(static_cast<float>(d / heads));
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
    ops::embed(w.decoder_embed, w.positions.data(), w.embed_scale, d, id, pos,
               x + static_cast<size_t>(i) * d);
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
    ops::attend_each(
        q, n, heads, d,
        [&](int i) {
          return ops::KeysValues{kc, vc, s.cache_rows.data() + static_cast<size_t>(i) * s.capacity,
                                 pos + 1};
        },
        s.scores.data(), score_stride, s.attn.data());
    linear(l.self.o, s.attn.data(), n, s.tmp.data());
    ops::add_layer_norm(x, s.tmp.data(), n, d, l.self_ln);
    // Cross-attention over the hypothesis' source row (valid positions only).
    linear(l.cross.q, x, n, q);
    for (size_t j = 0; j < nd; ++j) q[j] *= scaling;
    const float* ck = s.cross_k[li].data();
    const float* cv = s.cross_v[li].data();
    ops::attend_each(
        q, n, heads, d,
        [&](int i) {
          const int row = s.source_row[i];
          const size_t base = static_cast<size_t>(row) * src_len * d;
          return ops::KeysValues{ck + base, cv + base, nullptr, s.encoder->lengths[row]};
        },
        s.scores.data(), score_stride, s.attn.data());
    linear(l.cross.o, s.attn.data(), n, s.tmp.data());
    ops::add_layer_norm(x, s.tmp.data(), n, d, l.cross_ln);
    ops::feed_forward(l.ffn, w.act, x, n, s.ffn.data(), s.tmp.data());
    ops::add_layer_norm(x, s.tmp.data(), n, d, l.final_ln);
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
