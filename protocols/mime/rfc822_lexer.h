// RFC 5322 / RFC 2045 lexical tokens (atoms, quoted strings, comments, MIME
// tokens) over one unfolded header value, lenient the way Dovecot is.
#pragma once

#include <string>
#include <string_view>

namespace mb::mime {

class Rfc822Lexer {
 public:
  explicit Rfc822Lexer(std::string_view text) : text_(text) {}

  bool atEnd() const { return pos_ >= text_.size(); }
  char peek() const { return atEnd() ? '\0' : text_[pos_]; }
  void advance() { ++pos_; }
  std::size_t pos() const { return pos_; }
  void seek(std::size_t pos) { pos_ = pos; }
  std::string_view rest() const { return text_.substr(pos_ < text_.size() ? pos_ : text_.size()); }

  // Skips blanks, CR/LF and (nested) comments; the last comment's text is kept
  // because a bare addr-spec's comment is its display name.
  void skipCfws();
  const std::string& lastComment() const { return lastComment_; }
  void clearLastComment() { lastComment_.clear(); }

  // Each returns false (consuming nothing useful) when the token is absent.
  bool quotedString(std::string& out);   // unescaped content appended
  bool dotAtom(std::string& out);        // atext and dots, CFWS around dots allowed
  bool phrase(std::string& out);         // words joined by one space (obs-phrase: dots too)
  bool mimeToken(std::string& out);      // RFC 2045 token
  bool domain(std::string& out);         // dot-atom or [domain literal]

  static bool isAtext(unsigned char c);

 private:
  bool atomOrDot(std::string& out);

  std::string_view text_;
  std::size_t pos_ = 0;
  std::string lastComment_;
};

}  // namespace mb::mime
