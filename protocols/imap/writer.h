// Building server responses with the right quoting: atom, quoted or literal
// per RFC 3501 4.3/9 (and UTF-8 quoted strings under UTF8=ACCEPT, RFC 6855).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mb::imap {

// How a string value must be sent.
enum class StringForm { Atom, Quoted, Literal, Literal8 };

// The cheapest legal form for `s` in an astring position (an atom is never
// chosen for "NIL", which would read as nil in nstring positions).
StringForm astringForm(std::string_view s, bool utf8);
// For string positions (no atom allowed): quoted when every octet is a
// TEXT-CHAR (no CR, LF, NUL; 8-bit only as valid UTF-8 under utf8), else a
// literal; literal8 when it contains NUL (RFC 3516).
StringForm stringForm(std::string_view s, bool utf8);

// Builds one or more response lines. Elements are separated by single
// spaces automatically; "(" and ")" nest lists.
//
//   ResponseWriter w;
//   w.untagged().atom("LIST").beginList().atom("\\HasNoChildren").endList()
//    .quoted("/").astring("INBOX").end();
//   w.tagged("a1", "OK", "READ-WRITE", "SELECT completed");
class ResponseWriter {
 public:
  explicit ResponseWriter(bool utf8 = false) : utf8_(utf8) {}

  void setUtf8(bool on) { utf8_ = on; }

  // Line starters.
  ResponseWriter& untagged();                          // "* "
  ResponseWriter& continuation(std::string_view text);  // "+ text\r\n", whole line
  // A whole status line: "<tag> OK [code] text\r\n". Control characters in
  // text are replaced so a message can never break the line (RFC 3501 9
  // resp-text excludes CR/LF); an empty text becomes "done".
  ResponseWriter& tagged(std::string_view tag, std::string_view status, std::string_view code,
                         std::string_view text);
  ResponseWriter& untaggedStatus(std::string_view status, std::string_view code, std::string_view text);

  // Elements.
  ResponseWriter& atom(std::string_view a);  // caller guarantees atom syntax
  ResponseWriter& number(uint64_t n);
  ResponseWriter& nil();
  ResponseWriter& string(std::string_view s);   // quoted or literal
  ResponseWriter& astring(std::string_view s);  // atom when possible
  ResponseWriter& nstring(std::optional<std::string_view> s);
  ResponseWriter& quoted(std::string_view s);   // forces quoted; s must be quotable
  ResponseWriter& literal(std::string_view s);  // "{N}\r\n" data
  ResponseWriter& literal8(std::string_view s);  // "~{N}\r\n" data
  // "{N}\r\n", then the caller appends exactly N bytes to the returned buffer
  // (a message read straight from storage into the response).
  std::string& literalBuffer(uint64_t size);
  ResponseWriter& beginList();
  ResponseWriter& endList();
  // A parenthesised list of atoms, e.g. flags: "(\Seen \Answered)".
  ResponseWriter& atomList(const std::vector<std::string>& atoms);
  // Text appended with no separator handling (e.g. "BODY[1]" before a literal).
  ResponseWriter& raw(std::string_view text);
  ResponseWriter& end();  // CRLF

  const std::string& data() const { return out_; }
  std::string take();
  // Continues after what `buffer` holds (taken over): a FETCH response with
  // large literals is then built in the caller's output buffer instead of
  // being copied there afterwards.
  ResponseWriter& appendTo(std::string&& buffer);

 private:
  void separate();
  void text(std::string_view text);

  std::string out_;
  bool utf8_;
  bool needSpace_ = false;
};

}  // namespace mb::imap
