#include "marian/tokenizer.h"

#include <sentencepiece_processor.h>

#include <boost/json.hpp>
#include <string_view>

#include "marian/checkpoint.h"
#include "marian/json_file.h"

namespace transnotes::marian {

namespace json = boost::json;

namespace {

// A piece as it may appear in a one-line message: quoted, with control and non-ASCII bytes
// escaped so that a hostile vocabulary cannot break the log line it is reported in.
std::string quoted_piece(std::string_view piece) {
  constexpr std::size_t kShown = 64;
  std::string out = "\"";
  for (std::size_t i = 0; i < piece.size() && i < kShown; ++i) {
    const auto c = static_cast<unsigned char>(piece[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (piece.size() > kShown) out += "...";
  return out + "\"";
}

// piece -> id, every id in [0, id_count): the ids index embedding rows and the id -> piece table.
std::unordered_map<std::string, int> read_vocab(const std::filesystem::path& path, int id_count) {
  const json::object vocab_json = read_json_object(path, "piece -> id object");
  std::unordered_map<std::string, int> vocab;
  vocab.reserve(vocab_json.size());
  for (const auto& [piece, id] : vocab_json) {
    const bool in_range = id.is_int64() && id.as_int64() >= 0 && id.as_int64() < id_count;
    if (!in_range) {
      std::string shown = json::serialize(id);
      if (shown.size() > 40) shown = shown.substr(0, 40) + "...";
      throw ModelLoadError(path.string() + ": id " + shown + " for " + quoted_piece(piece) +
                           " is outside 0.." + std::to_string(id_count - 1));
    }
    vocab.emplace(std::string(piece), static_cast<int>(id.as_int64()));
  }
  return vocab;
}

std::unique_ptr<sentencepiece::SentencePieceProcessor> load_spm(const std::filesystem::path& p) {
  auto spm = std::make_unique<sentencepiece::SentencePieceProcessor>();
  // sentencepiece models are a few MB; the bound only keeps a hostile file from exhausting memory.
  require_regular_file(p, std::uintmax_t{1} << 30);
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

MarianTokenizer::MarianTokenizer(const std::filesystem::path& model_dir)
    : MarianTokenizer(model_dir, load_marian_config(model_dir)) {}

MarianTokenizer::MarianTokenizer(const std::filesystem::path& model_dir,
                                 const MarianConfig& config) {
  source_spm_ = load_spm(model_dir / "source.spm");
  target_spm_ = load_spm(model_dir / "target.spm");
  const auto vocab_path = model_dir / "vocab.json";
  const auto target_path = model_dir / "target_vocab.json";
  const bool separate_target = std::filesystem::exists(target_path);
  // A shared vocabulary serves both sides, so its ids must also fit the decoder's rows.
  source_vocab_ = read_vocab(
      vocab_path,
      separate_target ? config.vocab_size : std::min(config.vocab_size, config.decoder_vocab_size));
  eos_id_ = special_id(source_vocab_, "</s>", vocab_path);
  unk_id_ = special_id(source_vocab_, "<unk>", vocab_path);
  pad_id_ = special_id(source_vocab_, "<pad>", vocab_path);
  const auto& target_vocab_path = separate_target ? target_path : vocab_path;
  std::unordered_map<std::string, int> separate_vocab;
  if (separate_target) separate_vocab = read_vocab(target_path, config.decoder_vocab_size);
  const auto& target_vocab = separate_target ? separate_vocab : source_vocab_;
  target_pieces_.assign(static_cast<size_t>(config.decoder_vocab_size), std::string());
  std::vector<bool> taken(static_cast<size_t>(config.decoder_vocab_size), false);
  for (const auto& [piece, id] : target_vocab) {
    // Two pieces for one id would make decoding depend on the map's iteration order.
    if (taken[static_cast<size_t>(id)])
      throw ModelLoadError(target_vocab_path.string() + ": id " + std::to_string(id) + " of " +
                           quoted_piece(piece) + " is also the id of " +
                           quoted_piece(target_pieces_[static_cast<size_t>(id)]));
    taken[static_cast<size_t>(id)] = true;
    target_pieces_[static_cast<size_t>(id)] = piece;
  }
  // decode() skips these by id; with a separate target vocabulary use its own special ids.
  target_special_ = {special_id(target_vocab, "</s>", target_vocab_path),
                     special_id(target_vocab, "<unk>", target_vocab_path),
                     special_id(target_vocab, "<pad>", target_vocab_path)};
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
  return encode_pieces(pieces(text));
}

std::vector<int> MarianTokenizer::encode_pieces(const std::vector<std::string>& pieces) const {
  std::vector<int> ids;
  ids.reserve(pieces.size() + 1);
  for (const auto& piece : pieces) {
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
