#include "data/tokenizers/hf_pipeline.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include <cctype>
#include <cstring>
#include <unordered_map>

#include "data/tokenizers/tokenizer.h"

namespace phantom::data::hf {
using nlohmann::json;

// ---- regex (PCRE2, UTF + UCP: \p{L}, \s, ... as the Rust onig/regex crates see them) ---------------------------

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
      throw std::runtime_error(file + ": regex does not compile at offset " + std::to_string(off) + ": " +
                               reinterpret_cast<char*>(msg));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // best effort: falls back to the interpreter
  }
  ~Regex() { pcre2_code_free(code_); }
  // Calls f(start, end) for every match, left to right (empty matches advance one character).
  // Linear in the text: PCRE2 checks the UTF-8 of the subject from the start offset to its end on every call, so
  // the text is checked once (the first call, from offset 0) and the later calls say PCRE2_NO_UTF_CHECK; without
  // this a 100k-word segment took 49 s (quadratic). Invalid UTF-8 stops matching at the first call, as before.
  template <class F>
  void for_each_match(const std::string& s, F&& f) const {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t pos = 0;
    uint32_t options = 0;
    while (pos <= s.size()) {
      int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), pos, options, md, nullptr);
      if (rc < 0) break;
      options = PCRE2_NO_UTF_CHECK;
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      f(static_cast<size_t>(ov[0]), static_cast<size_t>(ov[1]));
      pos = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
      while (pos < s.size() && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) ++pos;  // stay on a char start
    }
    pcre2_match_data_free(md);
  }
  // "Isolated" split: every match and every gap between matches becomes a piece, as [begin, end) byte ranges.
  std::vector<std::pair<size_t, size_t>> split_ranges(const std::string& s) const {
    std::vector<std::pair<size_t, size_t>> out;
    size_t last = 0;
    for_each_match(s, [&](size_t a, size_t b) {
      if (a > last) out.emplace_back(last, a);
      if (b > a) out.emplace_back(a, b);
      last = std::max(last, b);
    });
    if (last < s.size()) out.emplace_back(last, s.size());
    return out;
  }
  // Each replacement's bytes map to the span of the text it replaces.
  std::string replace_all(const std::string& s, const std::string& with, Alignment* align) const {
    std::string out;
    Alignment out_align;
    size_t last = 0;
    auto keep = [&](size_t a, size_t b) {
      out.append(s, a, b - a);
      if (align) out_align.insert(out_align.end(), align->begin() + static_cast<long>(a), align->begin() + static_cast<long>(b));
    };
    for_each_match(s, [&](size_t a, size_t b) {
      if (a < last) return;
      keep(last, a);
      out += with;
      if (align) out_align.insert(out_align.end(), with.size(), cover(*align, a, b));
      last = b;
    });
    keep(last, s.size());
    if (align) *align = std::move(out_align);
    return out;
  }

 private:
  pcre2_code* code_ = nullptr;
};

namespace {

const char* kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, Alignment* align = nullptr) {
  if (from.empty()) return s;
  std::string out;
  Alignment out_align;
  size_t last = 0;
  auto keep = [&](size_t a, size_t b) {
    out.append(s, a, b - a);
    if (align) out_align.insert(out_align.end(), align->begin() + static_cast<long>(a), align->begin() + static_cast<long>(b));
  };
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, last)) {
    keep(last, p);
    out += to;
    if (align) out_align.insert(out_align.end(), to.size(), cover(*align, p, p + from.size()));
    last = p + from.size();
  }
  keep(last, s.size());
  if (align) *align = std::move(out_align);
  return out;
}

const icu::Normalizer2* normalizer_of(const std::string& form) {
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* n = form == "NFC"    ? icu::Normalizer2::getNFCInstance(err)
                              : form == "NFKC" ? icu::Normalizer2::getNFKCInstance(err)
                              : form == "NFD"  ? icu::Normalizer2::getNFDInstance(err)
                                               : icu::Normalizer2::getNFKDInstance(err);
  return U_FAILURE(err) ? nullptr : n;
}

std::string normalize_whole(const icu::Normalizer2* n, const std::string& s) {
  UErrorCode err = U_ZERO_ERROR;
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(s);
  if (!n || n->isNormalized(u, err) || U_FAILURE(err)) return s;
  err = U_ZERO_ERROR;
  icu::UnicodeString r = n->normalize(u, err);
  std::string out;
  r.toUTF8String(out);
  return out;
}

// With an alignment the text is normalised in chunks cut where the normaliser has a boundary (a character no
// neighbour combines with), each output chunk mapped to its input chunk; the chunks' concatenation is the whole
// string's normal form (checked: otherwise the whole output maps to the whole input).
std::string unicode_normalize(const std::string& s, const std::string& form, Alignment* align) {
  const icu::Normalizer2* n = normalizer_of(form);
  const std::string whole = normalize_whole(n, s);
  if (!align || whole == s) return whole;
  std::string out;
  Alignment out_align;
  size_t chunk = 0;
  auto flush = [&](size_t end) {
    if (end == chunk) return;
    const std::string part = normalize_whole(n, s.substr(chunk, end - chunk));
    out += part;
    out_align.insert(out_align.end(), part.size(), cover(*align, chunk, end));
    chunk = end;
  };
  for (size_t i = 0, len = 0; i < s.size(); i += len) {
    const int32_t cp = utf8_next(s, i, &len);
    if (i > chunk && n->hasBoundaryBefore(cp)) flush(i);
  }
  flush(s.size());
  if (out != whole) out_align.assign(whole.size(), cover(*align, 0, s.size()));
  *align = std::move(out_align);
  return whole;
}

// The pattern of a Replace/Split component: {"String": s} or {"Regex": r}.
std::string pattern_of(const json& j, bool* is_regex) {
  const json& p = j.at("pattern");
  *is_regex = p.contains("Regex");
  return *is_regex ? p["Regex"].get<std::string>() : p.at("String").get<std::string>();
}

struct ByteAlphabet {
  std::string to_utf8[256];
  std::unordered_map<int32_t, uint8_t> from_cp;
  ByteAlphabet() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const int cp = printable ? b : 256 + n++;
      icu::UnicodeString(static_cast<UChar32>(cp)).toUTF8String(to_utf8[b]);
      from_cp[cp] = static_cast<uint8_t>(b);
    }
  }
};
const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}

}  // namespace

const std::string& byte_to_unicode(uint8_t b) { return alphabet().to_utf8[b]; }

std::string utf8_lossy(const std::string& s) {
  static const std::string kReplacement = "\xEF\xBF\xBD";
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += s[i++];
      continue;
    }
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // valid range of the second byte
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    size_t ok = 1;  // bytes of a valid prefix
    if (len) {
      while (ok < len && i + ok < s.size()) {
        const auto b = static_cast<unsigned char>(s[i + ok]);
        if (ok == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
        ++ok;
      }
    }
    if (len && ok == len) out.append(s, i, len);
    else out += kReplacement;
    i += ok;
  }
  return out;
}

Alignment char_alignment(const std::string& s, size_t offset) {
  Alignment a(s.size());
  for (size_t i = 0, n = 0; i < s.size(); i += n) {
    n = std::min(utf8_len(static_cast<unsigned char>(s[i])), s.size() - i);
    for (size_t k = 0; k < n; ++k) a[i + k] = {static_cast<uint32_t>(offset + i), static_cast<uint32_t>(offset + i + n)};
  }
  return a;
}

TokenSpan cover(const Alignment& a, size_t b, size_t e) {
  if (a.empty()) return {};
  if (b >= e) {
    const uint32_t at = b < a.size() ? a[b].begin : a.back().end;
    return {at, at};
  }
  TokenSpan t = a[b];
  for (size_t i = b + 1; i < e && i < a.size(); ++i) t.begin = std::min(t.begin, a[i].begin), t.end = std::max(t.end, a[i].end);
  return t;
}

// ---- normalizer ---------------------------------------------------------------------------------------------

Normalizer::Normalizer(const json& j, const std::string& file) { read(j, file); }

void Normalizer::read(const json& n, const std::string& file) {
  if (n.is_null()) return;
  const std::string type = n.value("type", "");
  if (type == "Sequence") {
    for (auto& x : n.at("normalizers")) read(x, file);
  } else if (type == "NFC" || type == "NFKC" || type == "NFD" || type == "NFKD") {
    steps_.push_back({type, "", "", nullptr});
  } else if (type == "Prepend") {
    steps_.push_back({type, n.at("prepend").get<std::string>(), "", nullptr});
  } else if (type == "Replace") {
    bool is_regex = false;
    const std::string pat = pattern_of(n, &is_regex);
    steps_.push_back({type, pat, n.at("content").get<std::string>(), is_regex ? std::make_shared<Regex>(pat, file) : nullptr});
  } else {
    throw std::runtime_error(file + ": normalizer '" + type +
                             "' is not supported (NFC, NFKC, NFD, NFKD, Prepend, Replace, Sequence)");
  }
}

std::string Normalizer::apply(const std::string& in, Alignment* align) const {
  std::string s = in;
  for (auto& st : steps_) {
    if (st.kind == "Prepend") {  // the prepended text belongs to the first character (as HF aligns it)
      if (s.empty()) continue;
      s = st.a + s;
      if (align) align->insert(align->begin(), st.a.size(), align->front());
    } else if (st.kind == "Replace") {
      s = st.re ? st.re->replace_all(s, st.b, align) : replace_all(s, st.a, st.b, align);
    } else {
      s = unicode_normalize(s, st.kind, align);
    }
  }
  return s;
}

std::string Normalizer::describe() const {
  std::string d;
  for (auto& s : steps_) d += (d.empty() ? "" : "+") + s.kind;
  return d.empty() ? "none" : d;
}

// ---- pre-tokenizer ------------------------------------------------------------------------------------------

PreTokenizer::PreTokenizer(const json& j, const std::string& file) { read(j, file); }

void PreTokenizer::read(const json& p, const std::string& file) {
  if (p.is_null()) return;
  const std::string type = p.value("type", "");
  Step st;
  if (type == "Sequence") {
    for (auto& x : p.at("pretokenizers")) read(x, file);
    return;
  } else if (type == "Split") {
    const std::string behavior = p.value("behavior", "");
    if (behavior != "Isolated" || p.value("invert", false))
      throw std::runtime_error(file + ": Split pre-tokenizer with behavior '" + behavior + "' is not supported (Isolated)");
    bool is_regex = false;
    std::string pat = pattern_of(p, &is_regex);
    if (!is_regex) {  // a literal: escape it for PCRE2
      std::string q;
      for (char c : pat) q += std::string(std::strchr("\\^$.|?*+()[]{}", c) && c ? "\\" : "") + c;
      pat = q;
    }
    st.kind = "split", st.re = std::make_shared<Regex>(pat, file);
  } else if (type == "ByteLevel") {
    byte_level_ = true;
    st.kind = "byte_level";
    st.prefix_space = p.value("add_prefix_space", false);
    if (p.value("use_regex", true)) st.re = std::make_shared<Regex>(kGpt2Regex, file);
  } else if (type == "Metaspace") {
    st.kind = "metaspace";
    st.replacement = p.value("replacement", "\xE2\x96\x81");
    // tokenizers >= 0.14 write prepend_scheme; older files a boolean add_prefix_space.
    st.prepend = p.contains("prepend_scheme") ? p["prepend_scheme"].get<std::string>()
                                              : (p.value("add_prefix_space", true) ? "always" : "never");
    if (st.prepend != "always" && st.prepend != "first" && st.prepend != "never")
      throw std::runtime_error(file + ": Metaspace prepend_scheme '" + st.prepend + "' is not supported");
    st.split = p.value("split", true);
  } else {
    throw std::runtime_error(file + ": pre-tokenizer '" + type +
                             "' is not supported (Split, ByteLevel, Metaspace, Sequence)");
  }
  steps_.push_back(st);
}

std::vector<std::string> PreTokenizer::apply(const std::string& s, bool at_input_start, const Alignment* align,
                                             std::vector<Alignment>* word_align) const {
  const bool track = align && word_align;
  std::vector<std::string> words{s};
  std::vector<Alignment> aligns;
  if (track) aligns.push_back(*align);
  for (auto& st : steps_) {
    std::vector<std::string> next;
    std::vector<Alignment> next_align;
    // Word `wi` (aligned as `a`) cut into the byte ranges `r`.
    auto cut = [&](const std::string& w, const Alignment& a, const std::vector<std::pair<size_t, size_t>>& r) {
      for (auto& [b, e] : r) {
        next.push_back(w.substr(b, e - b));
        if (track) next_align.emplace_back(a.begin() + static_cast<long>(b), a.begin() + static_cast<long>(e));
      }
    };
    for (size_t wi = 0; wi < words.size(); ++wi) {
      std::string w = words[wi];
      Alignment a = track ? aligns[wi] : Alignment();
      auto prepend = [&](const std::string& p) {  // a prefix belongs to the character after it
        w = p + w;
        if (track) a.insert(a.begin(), p.size(), a.empty() ? TokenSpan{} : a.front());
      };
      if (st.kind == "split") {
        cut(w, a, st.re->split_ranges(w));
      } else if (st.kind == "byte_level") {
        if (st.prefix_space && w.rfind(' ', 0) != 0) prepend(" ");
        if (!st.re) cut(w, a, {{0, w.size()}});
        else cut(w, a, st.re->split_ranges(w));
      } else {  // metaspace: spaces become ▁, ▁ prepended, words start at each ▁
        w = replace_all(w, " ", st.replacement, track ? &a : nullptr);
        const bool first = at_input_start && wi == 0;
        if ((st.prepend == "always" || (st.prepend == "first" && first)) && w.rfind(st.replacement, 0) != 0)
          prepend(st.replacement);
        if (!st.split) {
          cut(w, a, {{0, w.size()}});
          continue;
        }
        std::vector<std::pair<size_t, size_t>> r;
        size_t from = 0;
        for (size_t p = w.find(st.replacement, 1); p != std::string::npos; p = w.find(st.replacement, p + 1)) {
          r.emplace_back(from, p);
          from = p;
        }
        r.emplace_back(from, w.size());
        cut(w, a, r);
      }
    }
    words = std::move(next);
    aligns = std::move(next_align);
  }
  if (track) *word_align = std::move(aligns);
  return words;
}

std::string PreTokenizer::describe() const {
  std::string d;
  for (auto& s : steps_)
    d += (d.empty() ? "" : "+") + (s.kind == "metaspace" ? "Metaspace(" + s.prepend + ")" : s.kind == "split" ? "Split" : "ByteLevel");
  return d.empty() ? "none" : d;
}

// ---- decoder ------------------------------------------------------------------------------------------------

Decoder::Decoder(const json& j, const std::string& file) { read(j, file); }

void Decoder::read(const json& d, const std::string& file) {
  if (d.is_null()) return;
  const std::string type = d.value("type", "");
  Step st;
  if (type == "Sequence") {
    for (auto& x : d.at("decoders")) read(x, file);
    return;
  } else if (type == "ByteLevel") {
    st.kind = "byte_level";
  } else if (type == "Metaspace") {
    st.kind = "metaspace";
    st.a = d.value("replacement", "\xE2\x96\x81");
    st.prepend = d.contains("prepend_scheme") ? d["prepend_scheme"].get<std::string>() != "never"
                                              : d.value("add_prefix_space", true);
  } else if (type == "Replace") {
    bool is_regex = false;
    st.kind = "replace", st.a = pattern_of(d, &is_regex), st.b = d.at("content").get<std::string>();
    if (is_regex) throw std::runtime_error(file + ": Replace decoder with a regex pattern is not supported");
  } else if (type == "ByteFallback") {
    st.kind = "byte_fallback";
  } else if (type == "Fuse") {
    st.kind = "fuse";
  } else if (type == "Strip") {
    // Up to `start` leading and `stop` trailing copies of one character (tokenizers: a char and two usize). An
    // empty content matches everywhere, and a count read through int wrapped around: the loop would not end.
    st.kind = "strip", st.a = d.at("content").get<std::string>();
    if (st.a.empty()) throw std::runtime_error(file + ": decoder Strip: empty content (expected one character)");
    auto count = [&](const char* key) {
      const json v = d.value(key, json(0));
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 1000000)
        throw std::runtime_error(file + ": decoder Strip: " + key + " must be an integer 0..1000000, got " + v.dump());
      return v.get<size_t>();
    };
    st.start = count("start"), st.stop = count("stop");
  } else {
    throw std::runtime_error(file + ": decoder '" + type +
                             "' is not supported (ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence)");
  }
  steps_.push_back(st);
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
  for (auto& st : steps_) {
    std::vector<std::string> next;
    if (st.kind == "byte_level") {  // each token back to bytes (a token outside the alphabet keeps its own bytes)
      std::string bytes;
      for (auto& t : tokens) {
        std::string b;
        bool all = true;
        for (size_t i = 0, n = 0; i < t.size() && all; i += n) {
          auto it = alphabet().from_cp.find(utf8_next(t, i, &n));
          if (it == alphabet().from_cp.end()) all = false;
          else b += static_cast<char>(it->second);
        }
        bytes += all ? b : t;
      }
      next.push_back(utf8_lossy(bytes));
    } else if (st.kind == "metaspace") {  // ▁ -> ' '; in the first token every ▁ is dropped (as tokenizers does)
      for (size_t i = 0; i < tokens.size(); ++i)
        next.push_back(replace_all(tokens[i], st.a, i == 0 && st.prepend ? "" : " "));
    } else if (st.kind == "replace") {
      for (auto& t : tokens) next.push_back(replace_all(t, st.a, st.b));
    } else if (st.kind == "byte_fallback") {  // runs of <0xNN> -> their bytes when valid UTF-8, else one U+FFFD each
      std::string run;
      size_t n = 0;
      auto flush = [&] {
        if (!n) return;
        if (utf8_lossy(run) == run) next.push_back(run);
        else
          for (size_t k = 0; k < n; ++k) next.push_back("\xEF\xBF\xBD");
        run.clear(), n = 0;
      };
      for (auto& t : tokens) {
        unsigned v = 0;
        if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) && std::isxdigit(static_cast<unsigned char>(t[4]))) {
          v = static_cast<unsigned>(std::stoul(t.substr(3, 2), nullptr, 16));
          run += static_cast<char>(v), ++n;
        } else {
          flush();
          next.push_back(t);
        }
      }
      flush();
    } else if (st.kind == "fuse") {
      std::string all;
      for (auto& t : tokens) all += t;
      next.push_back(all);
    } else {  // strip: up to `start` leading and `stop` trailing copies of the content character
      for (auto& t : tokens) {
        size_t a = 0, b = t.size();
        for (size_t k = 0; k < st.start && t.compare(a, st.a.size(), st.a) == 0 && a < b; ++k) a += st.a.size();
        for (size_t k = 0; k < st.stop && b >= a + st.a.size() && t.compare(b - st.a.size(), st.a.size(), st.a) == 0; ++k)
          b -= st.a.size();
        next.push_back(t.substr(a, b - a));
      }
    }
    tokens = std::move(next);
  }
  std::string out;
  for (auto& t : tokens) out += t;
  return out;
}

std::string Decoder::describe() const {
  std::string d;
  for (auto& s : steps_) d += (d.empty() ? "" : "+") + s.kind;
  return d.empty() ? "none" : d;
}

}  // namespace phantom::data::hf
