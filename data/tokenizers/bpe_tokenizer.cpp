// Byte-level BPE from a Hugging Face tokenizer.json, as Qwen2 (and GPT-2) use it:
//   added tokens split out atomically -> NFC normaliser (ICU) -> pre-tokenizer regex (PCRE2, Unicode) ->
//   bytes mapped to GPT-2's printable alphabet -> BPE merges by rank -> vocabulary ids.
// Decoding maps the alphabet back to bytes.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "data/tokenizers/tokenizer.h"

namespace phantom::data {
using nlohmann::json;

namespace {

// GPT-2's byte <-> printable unicode mapping (bytes that are printable map to themselves).
struct ByteAlphabet {
  std::string to_utf8[256];
  std::unordered_map<std::string, uint8_t> from_utf8;
  ByteAlphabet() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const int cp = printable ? b : 256 + n++;
      std::string s;
      icu::UnicodeString(static_cast<UChar32>(cp)).toUTF8String(s);
      to_utf8[b] = s;
      from_utf8[s] = static_cast<uint8_t>(b);
    }
  }
};
const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}

// UTF-8 characters of a string (the BPE symbols start as single characters of the byte alphabet).
std::vector<std::string> utf8_chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

const char* kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class Regex {
 public:
  Regex(const std::string& pattern, const std::string& file) {
    int err = 0;
    PCRE2_SIZE off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &err,
                          &off, nullptr);
    if (!code_) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      throw std::runtime_error(file + ": pre-tokenizer regex does not compile at offset " + std::to_string(off) + ": " +
                               reinterpret_cast<char*>(msg));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // best effort: falls back to the interpreter
  }
  ~Regex() { pcre2_code_free(code_); }
  // "Isolated" split: every match and every gap between matches becomes a piece.
  std::vector<std::string> split(const std::string& s) const {
    std::vector<std::string> out;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t pos = 0, last = 0;
    while (pos <= s.size()) {
      int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), pos, 0, md, nullptr);
      if (rc < 0) break;
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      if (ov[0] > last) out.push_back(s.substr(last, ov[0] - last));
      if (ov[1] > ov[0]) out.push_back(s.substr(ov[0], ov[1] - ov[0]));
      last = ov[1];
      pos = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
      while (pos < s.size() && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) ++pos;  // stay on a char start
    }
    if (last < s.size()) out.push_back(s.substr(last));
    pcre2_match_data_free(md);
    return out;
  }

 private:
  pcre2_code* code_ = nullptr;
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
    const json& model = j.value("model", json::object());
    if (model.value("type", "") != "BPE")
      throw std::runtime_error(path + ": model.type '" + model.value("type", "") + "' is not supported (byte-level BPE only)");
    if (model.value("byte_fallback", false)) throw std::runtime_error(path + ": BPE byte_fallback is not supported");
    ignore_merges_ = model.value("ignore_merges", false);
    for (auto& [tok, id] : model.at("vocab").items()) {
      vocab_[tok] = id.get<int32_t>();
      max_id_ = std::max(max_id_, id.get<int32_t>());
    }
    int rank = 0;
    for (auto& m : model.at("merges")) {
      std::string a, b;
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const auto sp = s.find(' ', 1);
        if (sp == std::string::npos) throw std::runtime_error(path + ": malformed merge '" + s + "'");
        a = s.substr(0, sp), b = s.substr(sp + 1);
      } else {
        a = m.at(0).get<std::string>(), b = m.at(1).get<std::string>();
      }
      ranks_[a + '\x01' + b] = rank++;
    }
    for (auto& t : j.value("added_tokens", json::array())) {
      const std::string content = t.at("content").get<std::string>();
      const int32_t id = t.at("id").get<int32_t>();
      matcher_.add(content, id);
      added_[id] = content;
      if (t.value("special", false)) special_.insert(id);
      max_id_ = std::max(max_id_, id);
    }
    read_normalizer(j.value("normalizer", json()));
    read_pre_tokenizer(j.value("pre_tokenizer", json()));
    if (!byte_level_) throw std::runtime_error(path + ": only byte-level BPE is supported (no ByteLevel pre-tokenizer)");
    for (auto& [tok, id] : vocab_) id_to_tok_[id] = tok;
  }

  std::vector<int32_t> encode(const std::string& text) const override {
    std::vector<int32_t> ids;
    for (auto& piece : matcher_.split(text)) {
      if (piece.special_id >= 0) {
        ids.push_back(piece.special_id);
        continue;
      }
      std::string s = nfc_ ? normalize(piece.text) : piece.text;
      std::vector<std::string> words;
      if (regexes_.empty()) words.push_back(s);
      else {
        words.push_back(s);
        for (auto& re : regexes_) {
          std::vector<std::string> next;
          for (auto& w : words)
            for (auto& p : re->split(w)) next.push_back(std::move(p));
          words = std::move(next);
        }
      }
      for (auto& w : words) encode_word(w, ids);
    }
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
    std::string out, symbols;
    auto flush = [&] {
      for (auto& c : utf8_chars(symbols)) {
        auto it = alphabet().from_utf8.find(c);
        out += it != alphabet().from_utf8.end() ? std::string(1, static_cast<char>(it->second)) : c;
      }
      symbols.clear();
    };
    for (auto id : ids) {
      auto a = added_.find(id);
      if (a != added_.end()) {
        flush();
        if (!(skip_special && special_.count(id))) out += a->second;
        continue;
      }
      auto it = id_to_tok_.find(id);
      // An id past the tokenizer (a padded embedding row) decodes to nothing, as HF's fast tokenizers do.
      if (it == id_to_tok_.end()) continue;
      symbols += it->second;
    }
    flush();
    return out;
  }

  std::optional<int32_t> token_to_id(const std::string& token) const override {
    for (auto& [id, content] : added_)
      if (content == token) return id;
    auto it = vocab_.find(token);
    if (it == vocab_.end()) return std::nullopt;
    return it->second;
  }
  std::string id_to_token(int32_t id) const override {
    auto a = added_.find(id);
    if (a != added_.end()) return a->second;
    auto it = id_to_tok_.find(id);
    return it == id_to_tok_.end() ? "" : it->second;
  }
  int64_t vocab_size() const override { return max_id_ + 1; }

 private:
  void read_normalizer(const json& n) {
    if (n.is_null()) return;
    const std::string type = n.value("type", "");
    if (type == "NFC") nfc_ = true;
    else if (type == "Sequence") {
      for (auto& x : n.at("normalizers")) read_normalizer(x);
    } else {
      throw std::runtime_error(path_ + ": normalizer '" + type + "' is not supported (NFC only)");
    }
  }
  void read_pre_tokenizer(const json& p) {
    if (p.is_null()) throw std::runtime_error(path_ + ": no pre_tokenizer (a byte-level BPE needs ByteLevel)");
    const std::string type = p.value("type", "");
    if (type == "Sequence") {
      for (auto& x : p.at("pretokenizers")) read_pre_tokenizer(x);
    } else if (type == "Split") {
      const std::string behavior = p.value("behavior", "");
      if (behavior != "Isolated" || p.value("invert", false))
        throw std::runtime_error(path_ + ": Split pre-tokenizer with behavior '" + behavior + "' is not supported");
      const json& pat = p.at("pattern");
      std::string re = pat.contains("Regex") ? pat["Regex"].get<std::string>() : pat.at("String").get<std::string>();
      regexes_.push_back(std::make_shared<Regex>(re, path_));
    } else if (type == "ByteLevel") {
      byte_level_ = true;
      if (p.value("add_prefix_space", false))
        throw std::runtime_error(path_ + ": ByteLevel add_prefix_space is not supported");
      if (p.value("use_regex", true)) regexes_.push_back(std::make_shared<Regex>(kGpt2Regex, path_));
    } else {
      throw std::runtime_error(path_ + ": pre-tokenizer '" + type + "' is not supported");
    }
  }

  static std::string normalize(const std::string& s) {
    UErrorCode err = U_ZERO_ERROR;
    const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(err);
    icu::UnicodeString u = icu::UnicodeString::fromUTF8(s);
    if (U_FAILURE(err) || nfc->isNormalized(u, err)) return s;
    err = U_ZERO_ERROR;
    icu::UnicodeString n = nfc->normalize(u, err);
    std::string out;
    n.toUTF8String(out);
    return out;
  }

  void encode_word(const std::string& word, std::vector<int32_t>& ids) const {
    std::string mapped;
    for (unsigned char c : word) mapped += alphabet().to_utf8[c];
    {
      std::lock_guard<std::mutex> lock(cache_mu_);
      auto it = cache_.find(mapped);
      if (it != cache_.end()) {
        ids.insert(ids.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> out;
    auto direct = vocab_.find(mapped);
    if (ignore_merges_ && direct != vocab_.end()) {
      out.push_back(direct->second);
    } else {
      // Greedy BPE: merge the adjacent pair of lowest rank until none is mergeable.
      std::vector<std::string> sym = utf8_chars(mapped);
      while (sym.size() > 1) {
        int best = -1;
        size_t at = 0;
        for (size_t i = 0; i + 1 < sym.size(); ++i) {
          auto r = ranks_.find(sym[i] + '\x01' + sym[i + 1]);
          if (r != ranks_.end() && (best < 0 || r->second < best)) best = r->second, at = i;
        }
        if (best < 0) break;
        sym[at] += sym[at + 1];
        sym.erase(sym.begin() + static_cast<long>(at) + 1);
      }
      for (auto& s : sym) {
        auto v = vocab_.find(s);
        if (v == vocab_.end()) throw std::runtime_error(path_ + ": symbol '" + s + "' is not in the vocabulary");
        out.push_back(v->second);
      }
    }
    ids.insert(ids.end(), out.begin(), out.end());
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() > 200000) cache_.clear();
    cache_.emplace(mapped, std::move(out));
  }

  std::string path_;
  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<int32_t, std::string> id_to_tok_;
  std::unordered_map<std::string, int> ranks_;
  std::map<int32_t, std::string> added_;
  std::set<int32_t> special_;
  AddedTokenMatcher matcher_;
  std::vector<std::shared_ptr<Regex>> regexes_;
  bool nfc_ = false, byte_level_ = false, ignore_merges_ = false;
  int32_t max_id_ = -1;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::string& path) { return std::make_unique<BpeTokenizer>(path); }

}  // namespace phantom::data
