// Added-token matching with HF's rules (tokenizers' AddedVocabulary; the slow PreTrainedTokenizer.tokenize strips
// the neighbouring text the same way): leftmost match, longest at a position; single_word rejects a match glued
// to a word character; lstrip/rstrip widen the match over adjacent whitespace, which is then never encoded.
#include <unicode/uchar.h>

#include <algorithm>

#include "data/tokenizers/tokenizer.h"

namespace phantom::data {

size_t utf8_len(unsigned char c) { return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1; }

int32_t utf8_next(const std::string& s, size_t i, size_t* n) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t len = std::min(utf8_len(c), s.size() - i);
  int32_t cp = len == 1 ? c : c & (0xFF >> (len + 1));
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  *n = len;
  return cp;
}

int32_t utf8_prev(const std::string& s, size_t end, size_t* n) {
  size_t b = end - 1;
  while (b > 0 && end - b < 4 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  size_t len = 0;
  const int32_t cp = utf8_next(s, b, &len);
  *n = end - b;
  return cp;
}

// Rust's char::is_whitespace (the Unicode White_Space property); Python's str.strip differs only on U+001C..1F.
bool is_unicode_whitespace(int32_t cp) { return u_isUWhiteSpace(cp); }

namespace {
// Rust's char::is_alphanumeric: Alphabetic or a Number category.
bool is_word_char(int32_t cp) {
  if (u_hasBinaryProperty(cp, UCHAR_ALPHABETIC)) return true;
  const auto t = u_charType(cp);
  return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}
}  // namespace

void AddedTokenMatcher::add(const AddedToken& token, const std::string& pattern) {
  if (pattern.empty()) return;
  tokens_.push_back({pattern, token});
  std::stable_sort(tokens_.begin(), tokens_.end(),
                   [](const Entry& a, const Entry& b) { return a.pattern.size() > b.pattern.size(); });
  for (auto& v : by_first_byte_) v.clear();
  for (size_t i = 0; i < tokens_.size(); ++i)
    by_first_byte_[static_cast<unsigned char>(tokens_[i].pattern[0])].push_back(i);
}

std::vector<Piece> AddedTokenMatcher::split(const std::string& text) const {
  std::vector<Piece> out;
  size_t start = 0, i = 0;  // start: end of the previous match (with its stripped whitespace)
  while (i < text.size()) {
    const Entry* hit = nullptr;
    for (size_t k : by_first_byte_[static_cast<unsigned char>(text[i])]) {  // longest first
      const Entry& e = tokens_[k];
      if (text.compare(i, e.pattern.size(), e.pattern) != 0) continue;
      if (e.token.single_word) {
        size_t n = 0;
        const size_t stop = i + e.pattern.size();
        if ((i > 0 && is_word_char(utf8_prev(text, i, &n))) ||
            (stop < text.size() && is_word_char(utf8_next(text, stop, &n))))
          continue;
      }
      hit = &e;
      break;
    }
    if (!hit) {
      i += utf8_len(static_cast<unsigned char>(text[i]));
      continue;
    }
    size_t s = i, e = i + hit->pattern.size(), n = 0;
    if (hit->token.lstrip)
      while (s > start && is_unicode_whitespace(utf8_prev(text, s, &n))) s -= n;
    if (hit->token.rstrip)
      while (e < text.size() && is_unicode_whitespace(utf8_next(text, e, &n))) e += n;
    if (s > start) out.push_back({text.substr(start, s - start), -1, start, 0, 0});
    out.push_back({hit->token.content, hit->token.id, s, i, i + hit->pattern.size()});
    start = i = e;
  }
  if (start < text.size()) out.push_back({text.substr(start), -1, start, 0, 0});
  return out;
}

}  // namespace phantom::data
