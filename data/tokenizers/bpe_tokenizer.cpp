// BPE from a Hugging Face tokenizer.json, the two flavours the Phantom backbones ship:
//   byte-level (Qwen2):   NFC -> Split regex -> bytes as GPT-2's printable alphabet -> merges -> ids
//   SentencePiece-style (Phi-3, Llama, InternLM2 via LlamaTokenizerFast): Prepend ▁ + Replace ' ' -> ▁ (or a
//     Metaspace pre-tokenizer) -> merges over characters, a character outside the vocabulary as its <0xNN> byte
//     tokens (byte_fallback) or <unk> -> ids
// Added tokens are split out first: those with normalized=false on the raw text, the others on the normalised text
// (as tokenizers' AddedVocabulary does). Merging follows tokenizers' Word::merge_all (lowest rank, then leftmost).
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <set>
#include <tuple>
#include <unordered_map>

#include "data/tokenizers/hf_pipeline.h"
#include "data/tokenizers/tokenizer.h"

namespace phantom::data {
using nlohmann::json;

namespace {

struct PairHash {
  size_t operator()(const std::pair<int32_t, int32_t>& p) const {
    return std::hash<uint64_t>()((static_cast<uint64_t>(static_cast<uint32_t>(p.first)) << 32) | static_cast<uint32_t>(p.second));
  }
};

class BpeTokenizer : public Tokenizer {
 public:
  explicit BpeTokenizer(const std::string& path) : path_(path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open tokenizer " + path);
    json j;
    try {
      j = json::parse(in);
    } catch (const json::exception& e) {
      throw std::runtime_error(path + ": invalid JSON: " + e.what());
    }
    try {
      read(j);
    } catch (const json::exception& e) {
      throw std::runtime_error(path + ": unexpected tokenizer.json layout: " + e.what());
    }
  }

  std::vector<int32_t> encode_with_spans(const std::string& text, std::vector<TokenSpan>* spans) const override {
    std::vector<int32_t> ids;
    if (spans) spans->clear();
    hf::Alignment align;
    std::vector<hf::Alignment> word_align;
    for (auto& raw : raw_added_.split(text)) {
      if (raw.special_id >= 0) {
        ids.push_back(raw.special_id);
        if (spans) spans->push_back({static_cast<uint32_t>(raw.token_begin), static_cast<uint32_t>(raw.token_end)});
        continue;
      }
      if (spans) align = hf::char_alignment(raw.text, raw.offset);
      const std::string norm = normalizer_.apply(raw.text, spans ? &align : nullptr);
      for (auto& seg : normalized_added_.split(norm)) {
        if (seg.special_id >= 0) {
          ids.push_back(seg.special_id);
          if (spans) spans->push_back(hf::cover(align, seg.token_begin, seg.token_end));
          continue;
        }
        const bool first = raw.offset == 0 && seg.offset == 0;
        if (!spans) {
          for (auto& w : pre_.apply(seg.text, first)) encode_word(w, nullptr, ids, nullptr);
          continue;
        }
        const hf::Alignment seg_align(align.begin() + static_cast<long>(seg.offset),
                                      align.begin() + static_cast<long>(seg.offset + seg.text.size()));
        const auto words = pre_.apply(seg.text, first, &seg_align, &word_align);
        for (size_t k = 0; k < words.size(); ++k) encode_word(words[k], &word_align[k], ids, spans);
      }
    }
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (auto id : ids) {
      auto a = added_.find(id);
      if (a != added_.end()) {
        if (!(skip_special && a->second.special)) tokens.push_back(a->second.content);
        continue;
      }
      // An id past the tokenizer (a padded embedding row) decodes to nothing, as HF's fast tokenizers do.
      if (id < 0 || static_cast<size_t>(id) >= id_to_tok_.size() || !has_id_[static_cast<size_t>(id)]) continue;
      tokens.push_back(id_to_tok_[static_cast<size_t>(id)]);
    }
    return decoder_.decode(std::move(tokens));
  }

  std::optional<int32_t> token_to_id(const std::string& token) const override {
    for (auto& [id, t] : added_)
      if (t.content == token) return id;
    auto it = vocab_.find(token);
    if (it == vocab_.end()) return std::nullopt;
    return it->second;
  }
  std::string id_to_token(int32_t id) const override {
    auto a = added_.find(id);
    if (a != added_.end()) return a->second.content;
    return id >= 0 && static_cast<size_t>(id) < id_to_tok_.size() ? id_to_tok_[static_cast<size_t>(id)] : "";
  }
  int64_t vocab_size() const override { return max_id_ + 1; }
  std::string describe() const override {
    return path_ + " (tokenizer.json: " + std::string(pre_.byte_level() ? "byte-level BPE" : "BPE") +
           (byte_fallback_ ? " with byte fallback" : "") + "; normalizer " + normalizer_.describe() +
           ", pre-tokenizer " + pre_.describe() + ", decoder " + decoder_.describe() + "; " +
           std::to_string(vocab_.size()) + " tokens, " + std::to_string(added_.size()) + " added)";
  }

 private:
  void read(const json& j) {
    const json& model = j.value("model", json::object());
    if (model.value("type", "BPE") != "BPE")
      throw std::runtime_error(path_ + ": model.type '" + model.value("type", "") + "' is not supported (BPE only)");
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (model.contains(k) && !model[k].is_null() && !model[k].get<std::string>().empty())
        throw std::runtime_error(path_ + ": BPE " + k + " is not supported");
    if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"].get<double>() > 0)
      throw std::runtime_error(path_ + ": BPE dropout is not supported (tokenisation would not be deterministic)");
    byte_fallback_ = model.value("byte_fallback", false);
    fuse_unk_ = model.value("fuse_unk", false);
    ignore_merges_ = model.value("ignore_merges", false);
    for (auto& [tok, id] : model.at("vocab").items()) {
      const int32_t i = id.get<int32_t>();
      vocab_[tok] = i;
      max_id_ = std::max(max_id_, i);
    }
    id_to_tok_.resize(static_cast<size_t>(max_id_ + 1));
    has_id_.assign(static_cast<size_t>(max_id_ + 1), false);
    for (auto& [tok, id] : vocab_) id_to_tok_[static_cast<size_t>(id)] = tok, has_id_[static_cast<size_t>(id)] = true;
    if (model.contains("unk_token") && model["unk_token"].is_string()) {
      auto it = vocab_.find(model["unk_token"].get<std::string>());
      if (it == vocab_.end())
        throw std::runtime_error(path_ + ": unk_token '" + model["unk_token"].get<std::string>() + "' is not in the vocabulary");
      unk_ = it->second;
    }
    if (byte_fallback_)
      for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        auto it = vocab_.find(name);
        byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
      }
    int32_t rank = 0;
    for (auto& m : model.at("merges")) {
      std::string a, b;
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const auto sp = s.find(' ', 1);
        if (sp == std::string::npos) throw std::runtime_error(path_ + ": malformed merge '" + s + "'");
        a = s.substr(0, sp), b = s.substr(sp + 1);
      } else {
        a = m.at(0).get<std::string>(), b = m.at(1).get<std::string>();
      }
      auto ia = vocab_.find(a), ib = vocab_.find(b), ic = vocab_.find(a + b);
      if (ia == vocab_.end() || ib == vocab_.end() || ic == vocab_.end())
        throw std::runtime_error(path_ + ": merge '" + a + " " + b + "' uses a token missing from the vocabulary");
      merges_.emplace(std::make_pair(ia->second, ib->second), std::make_pair(rank++, ic->second));
    }
    normalizer_ = hf::Normalizer(j.value("normalizer", json()), path_);
    pre_ = hf::PreTokenizer(j.value("pre_tokenizer", json()), path_);
    decoder_ = hf::Decoder(j.value("decoder", json()), path_);
    for (auto& t : j.value("added_tokens", json::array())) {
      AddedToken a;
      a.content = t.at("content").get<std::string>();
      a.id = t.at("id").get<int32_t>();
      a.special = t.value("special", false);
      a.lstrip = t.value("lstrip", false);
      a.rstrip = t.value("rstrip", false);
      a.single_word = t.value("single_word", false);
      a.normalized = t.value("normalized", !a.special);
      // A normalised added token is looked for in normalised text, in its normalised form.
      if (a.normalized) normalized_added_.add(a, normalizer_.apply(a.content));
      else raw_added_.add(a);
      added_[a.id] = a;
      max_id_ = std::max(max_id_, a.id);
    }
  }

  // A token of a merged word and the bytes [begin, end) of the word's model string it covers.
  struct Merged {
    int32_t id;
    uint32_t begin, end;
  };

  // One pre-tokenised word -> ids (and, with `align`, the span of each): characters (bytes for byte-level), then
  // merges by rank.
  void encode_word(const std::string& word, const hf::Alignment* align, std::vector<int32_t>& ids,
                   std::vector<TokenSpan>* spans) const {
    if (word.empty()) return;
    std::string w;
    if (pre_.byte_level())
      for (unsigned char c : word) w += hf::byte_to_unicode(c);
    else
      w = word;
    std::vector<Merged> out;
    const bool cacheable = w.size() < 256;
    bool cached = false;
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mu_);
      auto it = cache_.find(w);
      if (it != cache_.end()) out = it->second, cached = true;
    }
    if (!cached) {
      auto direct = vocab_.find(w);
      if (ignore_merges_ && direct != vocab_.end()) out.push_back({direct->second, 0, static_cast<uint32_t>(w.size())});
      else merge(w, out);
    }
    for (auto& m : out) ids.push_back(m.id);
    if (spans) {
      // Byte-level: the model string spells each byte of the word as one character; map back to word bytes.
      std::vector<uint32_t> word_byte(w.size() + 1, static_cast<uint32_t>(word.size()));
      if (pre_.byte_level())
        for (size_t i = 0, k = 0, n = 0; i < w.size(); i += n, ++k) n = utf8_len(static_cast<unsigned char>(w[i])), word_byte[i] = static_cast<uint32_t>(k);
      else
        for (size_t i = 0; i <= w.size(); ++i) word_byte[i] = static_cast<uint32_t>(i);
      for (auto& m : out) spans->push_back(hf::cover(*align, word_byte[m.begin], word_byte[m.end]));
    }
    if (!cacheable || cached) return;
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() > 200000) cache_.clear();
    cache_.emplace(w, std::move(out));
  }

  void merge(const std::string& w, std::vector<Merged>& out) const {
    struct Sym {
      int32_t id;
      int prev, next;
      bool alive;
      uint32_t begin, end;  // bytes of w
    };
    std::vector<Sym> sym;
    bool last_unk = false;
    for (size_t i = 0, n = 0; i < w.size(); i += n) {
      n = utf8_len(static_cast<unsigned char>(w[i]));
      auto it = vocab_.find(w.substr(i, n));
      std::vector<int32_t> ids;
      if (it != vocab_.end()) {
        ids.push_back(it->second);
      } else if (byte_fallback_) {
        for (size_t k = 0; k < n && i + k < w.size(); ++k) ids.push_back(byte_ids_[static_cast<unsigned char>(w[i + k])]);
        if (std::find(ids.begin(), ids.end(), -1) != ids.end()) ids.clear();  // some byte token missing: unk
      }
      const auto b = static_cast<uint32_t>(i), e = static_cast<uint32_t>(std::min(i + n, w.size()));
      if (ids.empty()) {
        if (unk_ < 0) continue;  // no unk token: the character is dropped (as tokenizers does)
        if (fuse_unk_ && last_unk) {
          sym.back().end = e;  // the fused unk covers this character too
          continue;
        }
        ids.push_back(unk_);
        last_unk = true;
      } else {
        last_unk = false;
      }
      // Every byte-fallback token of a character covers the whole character (as HF's offsets).
      for (auto id : ids) sym.push_back({id, static_cast<int>(sym.size()) - 1, static_cast<int>(sym.size()) + 1, true, b, e});
    }
    if (sym.empty()) return;
    sym.back().next = -1;
    // (rank, position, new id): lowest rank first, then leftmost.
    using Cand = std::tuple<int32_t, int, int32_t>;
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> q;
    auto push = [&](int pos) {
      if (pos < 0 || sym[static_cast<size_t>(pos)].next < 0) return;
      auto m = merges_.find({sym[static_cast<size_t>(pos)].id, sym[static_cast<size_t>(sym[static_cast<size_t>(pos)].next)].id});
      if (m != merges_.end()) q.emplace(m->second.first, pos, m->second.second);
    };
    for (int i = 0; i + 1 < static_cast<int>(sym.size()); ++i) push(i);
    while (!q.empty()) {
      const int pos = std::get<1>(q.top());
      const int32_t new_id = std::get<2>(q.top());
      q.pop();
      Sym& s = sym[static_cast<size_t>(pos)];
      if (!s.alive || s.next < 0) continue;
      Sym& r = sym[static_cast<size_t>(s.next)];
      auto m = merges_.find({s.id, r.id});
      if (m == merges_.end() || m->second.second != new_id) continue;  // stale entry
      s.id = new_id;
      s.begin = std::min(s.begin, r.begin), s.end = std::max(s.end, r.end);
      r.alive = false;
      s.next = r.next;
      if (s.next >= 0) sym[static_cast<size_t>(s.next)].prev = pos;
      push(s.prev);
      push(pos);
    }
    for (auto& s : sym)
      if (s.alive) out.push_back({s.id, s.begin, s.end});
  }

  std::string path_;
  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_tok_;
  std::vector<bool> has_id_;
  std::unordered_map<std::pair<int32_t, int32_t>, std::pair<int32_t, int32_t>, PairHash> merges_;  // -> (rank, new id)
  std::map<int32_t, AddedToken> added_;
  AddedTokenMatcher raw_added_, normalized_added_;
  hf::Normalizer normalizer_;
  hf::PreTokenizer pre_;
  hf::Decoder decoder_;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  int32_t unk_ = -1, max_id_ = -1;
  int32_t byte_ids_[256] = {};
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<Merged>> cache_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::string& path) { return std::make_unique<BpeTokenizer>(path); }

}  // namespace phantom::data
