#include "marian/translator.h"

#include <algorithm>
#include <numeric>

namespace transnotes::marian {

namespace {

bool is_blank(const std::string& s) {
  return s.find_first_not_of(" \t\r\n\f\v") == std::string::npos;
}

}  // namespace

Translator::Translator(const std::filesystem::path& model_dir, const TranslatorOptions& options)
    : model_(MarianModel::load(model_dir, options.model)),
      tokenizer_(model_dir),
      defaults_(GenerateOptions::from_model(*model_)),
      options_(options) {
  if (options.num_beams) defaults_.num_beams = *options.num_beams;
  if (options.max_length) defaults_.max_length = *options.max_length;
  if (options_.max_batch_tokens < 1) options_.max_batch_tokens = 1;
}

std::vector<std::string> Translator::translate(const std::vector<std::string>& texts) const {
  return translate(texts, defaults_);
}

std::vector<std::string> Translator::translate(const std::vector<std::string>& texts,
                                               const GenerateOptions& options) const {
  std::vector<std::string> out(texts.size());
  const int max_src =
      options_.max_source_tokens > 0
          ? std::min(options_.max_source_tokens, model_->config().max_position_embeddings)
          : model_->config().max_position_embeddings;
  std::vector<std::vector<int>> ids(texts.size());
  std::vector<size_t> order;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (is_blank(texts[i])) continue;
    ids[i] = tokenizer_.encode(texts[i]);
    if (static_cast<int>(ids[i].size()) > max_src) {
      ids[i].resize(static_cast<size_t>(max_src));
      ids[i].back() = tokenizer_.eos_id();
    }
    order.push_back(i);
  }
  // Longest first: similar lengths share a batch, so little padding is computed.
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return ids[a].size() > ids[b].size(); });
  const size_t beams = static_cast<size_t>(std::max(options.num_beams, 1));
  size_t start = 0;
  while (start < order.size()) {
    const size_t longest = ids[order[start]].size();
    size_t end = start + 1;
    while (end < order.size() &&
           (end - start + 1) * longest * beams <= static_cast<size_t>(options_.max_batch_tokens))
      ++end;
    std::vector<std::vector<int>> batch;
    for (size_t j = start; j < end; ++j) batch.push_back(ids[order[j]]);
    auto results = generate(*model_, batch, options);
    for (size_t j = start; j < end; ++j) out[order[j]] = tokenizer_.decode(results[j - start].ids);
    start = end;
  }
  return out;
}

std::string Translator::translate_lines(const std::string& text) const {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (true) {
    size_t nl = text.find('\n', pos);
    lines.push_back(text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  auto translated = translate(lines);
  std::string out;
  for (size_t i = 0; i < translated.size(); ++i) {
    if (i) out += '\n';
    out += translated[i];
  }
  return out;
}

}  // namespace transnotes::marian
