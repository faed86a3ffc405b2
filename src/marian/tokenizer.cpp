#include "marian/tokenizer.h"

#include <sentencepiece_processor.h>

#include <boost/json.hpp>

#include "marian/checkpoint.h"
#include "marian/json_file.h"

namespace transnotes::marian {

namespace json = boost::json;

namespace {

std::unordered_map<std::string, int> read_vocab(const std::filesystem::path& path) {
  const json::object vocab_json = read_json_object(path, "piece -> id object");
  std::unordered_map<std::string, int> vocab;
  for (const auto& [piece, id] : vocab_json) {
    if (!id.is_int64() || id.as_int64() < 0)
      throw ModelLoadError(path.string() + ": id of '" + std::string(piece) + "' is not valid");
    vocab.emplace(std::string(piece), static_cast<int>(id.as_int64()));
  }
  return vocab;
}

std::unique_ptr<sentencepiece::SentencePieceProcessor> load_spm(const std::filesystem::path& p) {
  auto spm = std::make_unique<sentencepiece::SentencePieceProcessor>();
  if (!std::filesystem::exists(p)) throw ModelLoadError(p.string() + ": missing");
  auto status = spm->Load(p.string());
  if (!status.ok()) throw ModelLoadError(p.string() + ": " + status.ToString());
  return spm;
}

int special_id(const std::unordered_map<std::string, int>& vocab, const std::string& piece,
               const std::filesystem::path& path) {
  auto it = vocab.find(piece);
  if (it == vocab.end()) throw ModelLoadError(path.string() + ": no '" + piece + "' entry");
  return it->second;
}

}  // namespace

MarianTokenizer::MarianTokenizer(const std::filesystem::path& model_dir) {
  source_spm_ = load_spm(model_dir / "source.spm");
  target_spm_ = load_spm(model_dir / "target.spm");
  const auto vocab_path = model_dir / "vocab.json";
  source_vocab_ = read_vocab(vocab_path);
  eos_id_ = special_id(source_vocab_, "</s>", vocab_path);
  unk_id_ = special_id(source_vocab_, "<unk>", vocab_path);
  pad_id_ = special_id(source_vocab_, "<pad>", vocab_path);
  const auto target_path = model_dir / "target_vocab.json";
  const auto target_vocab =
      std::filesystem::exists(target_path) ? read_vocab(target_path) : source_vocab_;
  int max_id = -1;
  for (const auto& [piece, id] : target_vocab) max_id = std::max(max_id, id);
  target_pieces_.assign(static_cast<size_t>(max_id + 1), std::string());
  for (const auto& [piece, id] : target_vocab) target_pieces_[static_cast<size_t>(id)] = piece;
  // decode() skips these by id; with a separate target vocabulary use its own special ids.
  target_special_ = {special_id(target_vocab, "</s>", target_path),
                     special_id(target_vocab, "<unk>", target_path),
                     special_id(target_vocab, "<pad>", target_path)};
}

MarianTokenizer::~MarianTokenizer() = default;

std::vector<std::string> MarianTokenizer::pieces(const std::string& input) const {
  // MarianTokenizer: a leading ">>xx<<" language code becomes its own token.
  std::vector<std::string> out;
  std::string text = input;
  if (text.rfind(">>", 0) == 0) {
    auto close = text.rfind("<<");
    if (close != std::string::npos && close >= 3) {
      out.push_back(text.substr(0, close + 2));
      text = text.substr(close + 2);
    }
  }
  std::vector<std::string> spm_pieces;
  auto status = source_spm_->Encode(text, &spm_pieces);
  if (!status.ok()) throw ModelLoadError("source.spm encode failed: " + status.ToString());
  // Surface pieces: a character unknown to source.spm may still be in the joint vocab.json.
  out.insert(out.end(), spm_pieces.begin(), spm_pieces.end());
  return out;
}

std::vector<int> MarianTokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  for (const auto& piece : pieces(text)) {
    auto it = source_vocab_.find(piece);
    ids.push_back(it == source_vocab_.end() ? unk_id_ : it->second);
  }
  ids.push_back(eos_id_);
  return ids;
}

std::string MarianTokenizer::decode(const std::vector<int>& ids) const {
  std::vector<std::string> pieces;
  for (int id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= target_pieces_.size()) continue;
    if (id == target_special_[0] || id == target_special_[1] || id == target_special_[2]) continue;
    if (target_pieces_[static_cast<size_t>(id)].empty()) continue;
    pieces.push_back(target_pieces_[static_cast<size_t>(id)]);
  }
  std::string text;
  auto status = target_spm_->Decode(pieces, &text);
  if (!status.ok()) throw ModelLoadError("target.spm decode failed: " + status.ToString());
  // HF replaces the remaining U+2581 by spaces and strips.
  const std::string_view underline = "\xE2\x96\x81";
  std::string spaced;
  spaced.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (std::string_view(text).substr(i, underline.size()) == underline) {
      spaced += ' ';
      i += underline.size();
    } else {
      spaced += text[i++];
    }
  }
  text.swap(spaced);
  const char* ws = " \t\n\r\f\v";
  auto begin = text.find_first_not_of(ws);
  if (begin == std::string::npos) return "";
  auto end = text.find_last_not_of(ws);
  return text.substr(begin, end - begin + 1);
}

}  // namespace transnotes::marian
