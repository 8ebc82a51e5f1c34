// Path parser for MAIL FROM / RCPT TO, following the ABNF of RFC 5321
// section 4.1.2 literally, plus UTF8-non-ascii wherever RFC 6531 allows it.
#include "protocols/smtp/address.h"

#include "protocols/smtp/text.h"

namespace mb::smtp {
namespace {

// RFC 5321 section 4.5.3.1: 64 octets of local part, 255 of domain.
constexpr size_t kMaxLocalPart = 64;
constexpr size_t kMaxDomain = 255;

bool isAtext(unsigned char c) {
  if (isAlnum(c)) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '/': case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

class Cursor {
 public:
  explicit Cursor(std::string_view text) : text_(text) {}
  bool atEnd() const { return pos_ >= text_.size(); }
  unsigned char peek() const { return atEnd() ? 0 : static_cast<unsigned char>(text_[pos_]); }
  bool take(char c) {
    if (atEnd() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  // Consumes one UTF-8 sequence (>= 0x80) if well-formed.
  bool takeUtf8(bool& sawUtf8) {
    size_t n = utf8SequenceLength(text_, pos_);
    if (n == 0) return false;
    pos_ += n;
    sawUtf8 = true;
    return true;
  }
  void advance() { ++pos_; }
  size_t pos() const { return pos_; }
  std::string_view slice(size_t from) const { return text_.substr(from, pos_ - from); }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

// Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str].
// A U-label byte sequence counts as letters (RFC 6531 section 3.3).
bool parseDomain(Cursor& c, bool& sawUtf8) {
  size_t start = c.pos();
  if (c.take('[')) {
    // address-literal: accepted by shape (dtext), not by IPv4/IPv6 grammar;
    // we never route on it, the upstream does.
    bool any = false;
    while (!c.atEnd() && c.peek() != ']') {
      unsigned char ch = c.peek();
      if (ch < 33 || ch > 126 || ch == '[' || ch == '\\') return false;
      c.advance();
      any = true;
    }
    return any && c.take(']') && c.pos() - start <= kMaxDomain;
  }
  for (;;) {
    size_t labelStart = c.pos();
    unsigned char last = 0;
    while (!c.atEnd()) {
      unsigned char ch = c.peek();
      if (isAlnum(ch) || (ch == '-' && c.pos() != labelStart)) {
        last = ch;
        c.advance();
      } else if (ch >= 0x80) {
        if (!c.takeUtf8(sawUtf8)) return false;
        last = 'a';
      } else {
        break;
      }
    }
    if (c.pos() == labelStart || last == '-') return false;
    if (!c.take('.')) break;
  }
  return c.pos() - start <= kMaxDomain;
}

// Local-part = Dot-string / Quoted-string.
bool parseLocalPart(Cursor& c, bool& sawUtf8) {
  size_t start = c.pos();
  if (c.take('"')) {
    for (;;) {
      if (c.atEnd()) return false;
      unsigned char ch = c.peek();
      if (ch == '"') break;
      if (ch == '\\') {
        c.advance();
        unsigned char q = c.peek();
        if (c.atEnd() || q < 32 || q > 126) return false;
        c.advance();
      } else if (ch >= 0x80) {
        if (!c.takeUtf8(sawUtf8)) return false;
      } else if (ch >= 32 && ch <= 126) {
        c.advance();
      } else {
        return false;
      }
    }
    c.advance();  // closing quote
  } else {
    for (;;) {
      size_t atomStart = c.pos();
      while (!c.atEnd()) {
        unsigned char ch = c.peek();
        if (isAtext(ch)) {
          c.advance();
        } else if (ch >= 0x80) {
          if (!c.takeUtf8(sawUtf8)) return false;
        } else {
          break;
        }
      }
      if (c.pos() == atomStart) return false;
      if (!c.take('.')) break;
    }
  }
  return c.pos() - start <= kMaxLocalPart;
}

}  // namespace

std::string Path::address() const {
  if (domain.empty()) return localPart;
  return localPart + "@" + domain;
}

bool isValidDomain(std::string_view domain) {
  Cursor c(domain);
  bool utf8 = false;
  return parseDomain(c, utf8) && c.atEnd();
}

Result<Path> parsePath(std::string_view text, PathKind kind, size_t& consumed) {
  Cursor c(text);
  if (!c.take('<')) return fail(ErrorKind::Syntax, "path must start with '<'");
  Path path;
  if (c.take('>')) {
    if (kind != PathKind::Reverse) return fail(ErrorKind::Syntax, "null path not allowed here");
    consumed = c.pos();
    return path;
  }
  // A-d-l ":" : a source route, obsolete; RFC 5321 section 3.3 says to ignore it.
  if (c.peek() == '@') {
    for (;;) {
      if (!c.take('@')) return fail(ErrorKind::Syntax, "bad source route");
      bool ignored = false;
      if (!parseDomain(c, ignored)) return fail(ErrorKind::Syntax, "bad source route domain");
      if (c.take(':')) break;
      if (!c.take(',')) return fail(ErrorKind::Syntax, "bad source route");
    }
  }
  size_t localStart = c.pos();
  if (!parseLocalPart(c, path.needsUtf8)) return fail(ErrorKind::Syntax, "bad local part");
  path.localPart = std::string(c.slice(localStart));
  if (c.take('@')) {
    size_t domainStart = c.pos();
    if (!parseDomain(c, path.needsUtf8)) return fail(ErrorKind::Syntax, "bad domain");
    path.domain = std::string(c.slice(domainStart));
  } else if (!(kind == PathKind::Forward && iequals(path.localPart, "postmaster"))) {
    // RFC 5321 section 4.1.1.3: only <Postmaster> may come without a domain.
    return fail(ErrorKind::Syntax, "address has no domain");
  }
  if (!c.take('>')) return fail(ErrorKind::Syntax, "path must end with '>'");
  consumed = c.pos();
  return path;
}

}  // namespace mb::smtp
