// MarianTokenizer equivalent (Hugging Face, slow sentencepiece version).
// encode: optional ">>xx<<" target-language code, source.spm pieces -> vocab.json ids
// (unknown piece -> <unk>), then </s>. decode: drops </s>, <pad>, <unk>; target.spm
// DecodePieces, "▁" -> " ", trimmed. With separate vocabularies (target_vocab.json present)
// decode maps ids through the target vocabulary. Immutable after load: thread-safe.
#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "marian/checkpoint.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace transnotes::marian {

class MarianTokenizer {
 public:
  // Loads source.spm, target.spm, vocab.json (+ target_vocab.json). Throws ModelLoadError naming
  // the file and the field: every id must index the model's embeddings (below vocab_size for
  // vocab.json, below decoder_vocab_size for the vocabulary decode() reads), and no two target
  // pieces may share an id. The first form reads config.json for the sizes.
  explicit MarianTokenizer(const std::filesystem::path& model_dir);
  MarianTokenizer(const std::filesystem::path& model_dir, const MarianConfig& config);
  ~MarianTokenizer();

  std::vector<std::string> pieces(const std::string& text) const;  // without </s>
  std::vector<int> encode(const std::string& text) const;          // ids incl. final </s>
  // ids of pieces() output (or a run of it), plus the final </s>.
  std::vector<int> encode_pieces(const std::vector<std::string>& pieces) const;
  std::string decode(const std::vector<int>& ids) const;  // skip special tokens

  int eos_id() const { return eos_id_; }
  int unk_id() const { return unk_id_; }
  int pad_id() const { return pad_id_; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> source_spm_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> target_spm_;
  std::unordered_map<std::string, int> source_vocab_;
  std::vector<std::string> target_pieces_;  // id -> piece
  std::array<int, 3> target_special_{};     // </s>, <unk>, <pad> in the target vocabulary
  int eos_id_ = 0;
  int unk_id_ = 1;
  int pad_id_ = 0;
};

}  // namespace transnotes::marian
