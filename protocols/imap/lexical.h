// The IMAP grammar's character classes and ASCII case rules (RFC 3501 9,
// RFC 9051 9), shared by the server's command parser, the framer, the
// client's response parser and command builder, and the response writer: one
// definition, so the two directions cannot disagree on what a tag or an atom is.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "protocols/common/ascii.h"

namespace mb::imap {

using ascii::iequals;
using ascii::toUpper;

// int: also takes a reader's end-of-input value (negative).
constexpr bool isDigit(int c) { return c >= '0' && c <= '9'; }

// ATOM-CHAR: any CHAR except atom-specials (CTL, SP, ( ) { % * " \ ]).
constexpr bool isAtomChar(char ch) {
  auto c = static_cast<unsigned char>(ch);
  if (c <= 0x20 || c >= 0x7F) return false;
  switch (c) {
    case '(': case ')': case '{': case '%': case '*': case '"': case '\\': case ']':
      return false;
    default:
      return true;
  }
}

// ASTRING-CHAR: ATOM-CHAR or resp-specials ("]").
constexpr bool isAstringChar(char c) { return isAtomChar(c) || c == ']'; }

// tag = 1*<any ASTRING-CHAR except "+">.
constexpr bool isTagChar(char c) { return isAstringChar(c) && c != '+'; }

// True when the line ends inside a quoted string, so a trailing "{N}" is
// quoted text, not a literal header.
constexpr bool endsInsideQuote(std::string_view line) {
  bool inQuote = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (inQuote) {
      if (c == '\\' && i + 1 < line.size()) ++i;
      else if (c == '"') inQuote = false;
    } else if (c == '"') {
      inQuote = true;
    }
  }
  return inQuote;
}

}  // namespace mb::imap
