#include "marian/translator.h"

#include <algorithm>
#include <numeric>
#include <string_view>

#include "domain/errors.h"

namespace transnotes::marian {

namespace {

bool is_blank(const std::string& s) {
  return s.find_first_not_of(" \t\r\n\f\v") == std::string::npos;
}

bool is_language_token(const std::string& piece) {
  return piece.size() > 4 && piece.compare(0, 2, ">>") == 0 &&
         piece.compare(piece.size() - 2, 2, "<<") == 0;
}

bool starts_word(const std::string& piece) {
  static constexpr std::string_view kWordStart = "\xE2\x96\x81";  // U+2581, sentencepiece's space
  return std::string_view(piece).substr(0, kWordStart.size()) == kWordStart;
}

}  // namespace

std::vector<std::vector<std::string>> split_source_pieces(const std::vector<std::string>& pieces,
                                                          int max_tokens) {
  if (static_cast<long>(pieces.size()) < max_tokens) return {pieces};
  const size_t prefix = !pieces.empty() && is_language_token(pieces.front()) ? 1 : 0;
  const long room = static_cast<long>(max_tokens) - 1 - static_cast<long>(prefix);  // </s>
  if (room < 1)
    throw TranslationFailed("marian: the model's " + std::to_string(max_tokens) +
                            " source positions leave no room for text");
  const auto capacity = static_cast<size_t>(room);
  std::vector<std::vector<std::string>> runs;
  size_t begin = prefix;
  while (begin < pieces.size()) {
    size_t end = std::min(pieces.size(), begin + capacity);
    if (end < pieces.size()) {
      for (size_t cut = end; cut > begin + capacity / 2; --cut)
        if (starts_word(pieces[cut])) {
          end = cut;
          break;
        }
    }
    std::vector<std::string> run(pieces.begin(), pieces.begin() + static_cast<long>(prefix));
    run.insert(run.end(), pieces.begin() + static_cast<long>(begin),
               pieces.begin() + static_cast<long>(end));
    runs.push_back(std::move(run));
    begin = end;
  }
  return runs;
}

void check_checkpoint(const std::filesystem::path& model_dir) {
  MarianTranslator checked(model_dir);
}

MarianTranslator::MarianTranslator(const std::filesystem::path& model_dir,
                                   const MarianTranslatorOptions& options)
    : model_(MarianModel::load(model_dir, options.model)),
      tokenizer_(model_dir, model_->config()),
      defaults_(GenerateOptions::from_model(*model_)),
      options_(options) {
  if (options.num_beams) defaults_.num_beams = *options.num_beams;
  if (options.max_length) defaults_.max_length = *options.max_length;
  if (options_.max_batch_tokens < 1) options_.max_batch_tokens = 1;
}

std::vector<std::string> MarianTranslator::translate(const std::vector<std::string>& texts) const {
  return translate(texts, defaults_);
}

std::vector<std::string> MarianTranslator::translate(const std::vector<std::string>& texts,
                                                     const GenerateOptions& options) const {
  std::vector<std::string> out(texts.size());
  const int max_src =
      options_.max_source_tokens > 0
          ? std::min(options_.max_source_tokens, model_->config().max_position_embeddings)
          : model_->config().max_position_embeddings;
  // One row per text, or several when a text exceeds the model's positions; row_text[r] is the
  // text row r belongs to, in order, so that split texts are rejoined run by run.
  std::vector<std::vector<int>> ids;
  std::vector<size_t> row_text;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (is_blank(texts[i])) continue;
    for (const auto& run : split_source_pieces(tokenizer_.pieces(texts[i]), max_src)) {
      ids.push_back(tokenizer_.encode_pieces(run));
      row_text.push_back(i);
    }
  }
  std::vector<std::string> row_out(ids.size());
  std::vector<size_t> order(ids.size());
  std::iota(order.begin(), order.end(), size_t{0});
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
    for (size_t j = start; j < end; ++j)
      row_out[order[j]] = tokenizer_.decode(results[j - start].ids);
    start = end;
  }
  for (size_t r = 0; r < ids.size(); ++r) {
    std::string& text = out[row_text[r]];
    if (!text.empty() && !row_out[r].empty()) text += ' ';
    text += row_out[r];
  }
  return out;
}

std::string MarianTranslator::translate_lines(const std::string& text) const {
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
