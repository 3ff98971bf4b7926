// SentencePiece tokenizers (a tokenizer.model: InternLM2's official tokenizer, slow Llama/Phi-3) through the
// sentencepiece library. Added tokens are split out first (with their lstrip/rstrip/single_word rules) and every
// plain segment is encoded on its own, as HF's slow tokenizers do (InternLM2Tokenizer, LlamaTokenizer with
// legacy=True): each segment gets SentencePiece's dummy-prefix space when the model asks for one.
#include <sentencepiece_processor.h>

#include <map>
#include <set>
#include <stdexcept>

#include "data/tokenizers/tokenizer.h"

namespace phantom::data {

namespace {

class SentencePieceTokenizer : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::string& path, const std::vector<AddedToken>& added) : path_(path) {
    // A corrupt model can also throw from inside the library (darts_clone: "zero-length key").
    sentencepiece::util::Status status;
    try {
      status = sp_.Load(path);
    } catch (const std::exception& e) {
      throw std::runtime_error(path + ": cannot load SentencePiece model: " + e.what());
    }
    if (!status.ok()) throw std::runtime_error(path + ": cannot load SentencePiece model: " + status.ToString());
    // Added ids index the embedding: within [0, pieces + added tokens), one token per id (the content of an id
    // the model already has must be that piece, as tokenizer_config.json repeats <s>, </s>, <unk>).
    const int64_t limit = sp_.GetPieceSize() + static_cast<int64_t>(added.size());
    const std::string origin = path + ": added token ";
    for (auto& t : added) {
      const std::string what = origin + "'" + t.content + "' (tokenizer_config.json added_tokens_decoder or added_tokens.json)";
      if (t.content.empty())
        throw std::runtime_error(origin + "with id " + std::to_string(t.id) +
                                 " (tokenizer_config.json added_tokens_decoder or added_tokens.json): empty content");
      if (t.id < 0 || t.id >= limit)
        throw std::runtime_error(what + ": id " + std::to_string(t.id) + " is outside the vocabulary (0.." +
                                 std::to_string(limit - 1) + ")");
      if (added_.count(t.id))
        throw std::runtime_error(what + ": id " + std::to_string(t.id) + " is already the id of added token '" +
                                 added_[t.id] + "'");
      matcher_.add(t);
      added_[t.id] = t.content;
      if (t.special) special_.insert(t.id);
    }
    // Control pieces of the model (other than BOS/EOS/UNK) are matched atomically too; user-defined pieces
    // already are by SentencePiece itself.
    for (int i = 0; i < sp_.GetPieceSize(); ++i)
      if (sp_.IsControl(i)) {
        const std::string piece = sp_.IdToPiece(i);
        if (!piece.empty() && !added_.count(i) && piece != "<s>" && piece != "</s>" && piece != "<unk>")
          matcher_.add(AddedToken{piece, i, true}), added_[i] = piece, special_.insert(i);
      }
  }

  std::vector<int32_t> encode_with_spans(const std::string& text, std::vector<TokenSpan>* spans) const override {
    std::vector<int32_t> ids;
    if (spans) spans->clear();
    for (auto& piece : matcher_.split(text)) {
      if (piece.special_id >= 0) {
        ids.push_back(piece.special_id);
        if (spans) spans->push_back({static_cast<uint32_t>(piece.token_begin), static_cast<uint32_t>(piece.token_end)});
        continue;
      }
      if (spans) {  // SentencePiece's own byte offsets of each piece in the segment (the dummy prefix: none)
        sentencepiece::ImmutableSentencePieceText spt;
        const auto st = sp_.Encode(piece.text, spt.mutable_proto());
        if (!st.ok()) throw std::runtime_error(path_ + ": encode failed: " + st.ToString());
        for (const auto& p : spt.pieces()) {
          ids.push_back(static_cast<int32_t>(p.id()));
          spans->push_back({static_cast<uint32_t>(piece.offset + p.begin()), static_cast<uint32_t>(piece.offset + p.end())});
        }
        continue;
      }
      std::vector<int> part;
      const auto st = sp_.Encode(piece.text, &part);
      if (!st.ok()) throw std::runtime_error(path_ + ": encode failed: " + st.ToString());
      ids.insert(ids.end(), part.begin(), part.end());
    }
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
    std::string out;
    std::vector<int> run;
    auto flush = [&] {
      if (run.empty()) return;
      std::string s;
      sp_.Decode(run, &s);
      out += s;
      run.clear();
    };
    for (auto id : ids) {
      auto a = added_.find(id);
      // A skipped special token is removed before decoding, as transformers' decode(skip_special_tokens=True)
      // does: the pieces around it stay one run ("that" <|im_end|> "▁work" -> "that work", not "thatwork").
      if (a != added_.end() && skip_special && special_.count(id)) continue;
      if (a != added_.end()) {
        flush();
        out += a->second;
      } else if (id >= 0 && id < sp_.GetPieceSize()) {  // ids past the model (padded rows) decode to nothing
        run.push_back(id);
      }
    }
    flush();
    return out;
  }

  std::optional<int32_t> token_to_id(const std::string& token) const override {
    for (auto& [id, content] : added_)
      if (content == token) return id;
    const int id = sp_.PieceToId(token);
    if (id == sp_.unk_id() && token != sp_.IdToPiece(sp_.unk_id())) return std::nullopt;
    return id;
  }
  std::string id_to_token(int32_t id) const override {
    auto a = added_.find(id);
    if (a != added_.end()) return a->second;
    return id >= 0 && id < sp_.GetPieceSize() ? sp_.IdToPiece(id) : "";
  }
  std::string describe() const override {
    return path_ + " (tokenizer.model: SentencePiece " + std::to_string(sp_.GetPieceSize()) + " pieces, " +
           std::to_string(added_.size()) + " added tokens)";
  }
  int64_t vocab_size() const override {
    int64_t n = sp_.GetPieceSize();
    for (auto& kv : added_) n = std::max<int64_t>(n, kv.first + 1);
    return n;
  }

 private:
  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
  AddedTokenMatcher matcher_;
  std::map<int32_t, std::string> added_;
  std::set<int32_t> special_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path, const std::vector<AddedToken>& added) {
  return std::make_unique<SentencePieceTokenizer>(path, added);
}

}  // namespace phantom::data
