// Lenient RFC 5322 / RFC 2045 lexer for address lists and MIME header values.
#include "protocols/mime/rfc822_lexer.h"

#include <string_view>

namespace mb::mime {

namespace {

// Byte classes as tables: a strchr per byte showed in the analysis's profile.
struct ByteSet {
  bool has[256] = {};
  constexpr explicit ByteSet(std::string_view chars) {
    for (char c : chars) has[static_cast<unsigned char>(c)] = true;
  }
  constexpr bool operator()(unsigned char c) const { return has[c]; }
};
constexpr ByteSet kTspecials("()<>@,;:\\\"/[]?=");

// Letters, digits, the specials of RFC 5322 atext, and 8-bit bytes (8-bit
// names happen; Dovecot takes them as atoms).
constexpr ByteSet kAtext = [] {
  ByteSet set("!#$%&'*+-/=?^_`{|}~abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
  for (int c = 0x80; c < 0x100; ++c) set.has[c] = true;
  return set;
}();

}  // namespace

bool Rfc822Lexer::isAtext(unsigned char c) { return kAtext(c); }

void Rfc822Lexer::skipCfws() {
  while (!atEnd()) {
    char c = text_[pos_];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      ++pos_;
      continue;
    }
    if (c != '(') return;
    lastComment_.clear();
    int depth = 0;
    while (!atEnd()) {
      char d = text_[pos_++];
      if (d == '\\' && !atEnd()) {
        lastComment_ += text_[pos_++];
        continue;
      }
      if (d == '(') {
        if (depth++ > 0) lastComment_ += d;
      } else if (d == ')') {
        if (--depth == 0) break;
        lastComment_ += d;
      } else if (d != '\r' && d != '\n') {
        lastComment_ += d;
      }
    }
  }
}

bool Rfc822Lexer::quotedString(std::string& out) {
  if (peek() != '"') return false;
  ++pos_;
  while (!atEnd()) {
    // Plain runs are appended whole; the loop stops only for the four bytes
    // that mean something here.
    std::size_t start = pos_;
    while (!atEnd() && text_[pos_] != '"' && text_[pos_] != '\\' && text_[pos_] != '\r' && text_[pos_] != '\n')
      ++pos_;
    out.append(text_.substr(start, pos_ - start));
    if (atEnd()) break;
    char c = text_[pos_++];
    if (c == '"') {
      skipCfws();
      return true;
    }
    if (c == '\\' && !atEnd()) c = text_[pos_++];
    else if (c == '\r' || c == '\n') continue;  // folding inside quotes
    out += c;
  }
  return true;  // unterminated: take what is there, as Dovecot does
}

bool Rfc822Lexer::dotAtom(std::string& out) {
  if (atEnd() || !isAtext(static_cast<unsigned char>(peek()))) return false;
  for (;;) {
    std::size_t start = pos_;
    while (!atEnd() && isAtext(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    out.append(text_.substr(start, pos_ - start));
    skipCfws();
    if (peek() != '.') return true;
    ++pos_;
    out += '.';
    skipCfws();
  }
}

bool Rfc822Lexer::atomOrDot(std::string& out) {
  std::size_t start = pos_;
  while (!atEnd() && (isAtext(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '.')) ++pos_;
  if (pos_ == start) return false;
  out.append(text_.substr(start, pos_ - start));
  skipCfws();
  return true;
}

bool Rfc822Lexer::phrase(std::string& out) {
  if (atEnd() || peek() == '.') return false;
  bool any = false;
  for (;;) {
    bool ok = (peek() == '"') ? quotedString(out) : atomOrDot(out);
    if (!ok) return any;
    any = true;
    unsigned char c = static_cast<unsigned char>(peek());
    if (atEnd() || (!isAtext(c) && c != '"' && c != '.')) return true;
    out += ' ';
  }
}

bool Rfc822Lexer::mimeToken(std::string& out) {
  std::size_t start = pos_;
  while (!atEnd()) {
    unsigned char c = static_cast<unsigned char>(text_[pos_]);
    if (c <= ' ' || c == 0x7f || kTspecials(c)) break;
    ++pos_;
  }
  if (pos_ == start) return false;
  out.append(text_.substr(start, pos_ - start));
  skipCfws();
  return true;
}

bool Rfc822Lexer::domain(std::string& out) {
  skipCfws();
  if (peek() != '[') return dotAtom(out);
  std::size_t start = pos_;
  while (!atEnd() && text_[pos_] != ']') {
    if (text_[pos_] == '\\' && pos_ + 1 < text_.size()) ++pos_;
    ++pos_;
  }
  if (atEnd()) return false;
  ++pos_;
  for (char c : text_.substr(start, pos_ - start)) {
    if (c != '\r' && c != '\n') out += c;
  }
  skipCfws();
  return true;
}

}  // namespace mb::mime
