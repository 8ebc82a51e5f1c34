// IMAP quoted strings and literals for the MIME analysis output.
#include "protocols/mime/imap_quote.h"

#include <algorithm>
#include <array>
#include <charconv>

namespace mb::mime {

namespace {

// What a byte asks of an IMAP string: kEscape inside a quoted string, kLiteral
// (CR, LF, NUL, 8-bit) a literal. OR-ed over the value, one load a byte and
// no branch decides how the value is written.
constexpr unsigned char kEscape = 1, kLiteral = 2;
constexpr auto kStringClass = [] {
  std::array<unsigned char, 256> t{};
  t['"'] = t['\\'] = kEscape;
  t['\r'] = t['\n'] = t[0] = kLiteral;
  for (int c = 0x80; c < 0x100; ++c) t[c] = kLiteral;
  return t;
}();

void appendLiteralHead(std::string& out, std::size_t size) {
  char buf[20];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, size);
  out += '{';
  out.append(buf, end);
  out += "}\r\n";
}

void appendLiteral(std::string& out, std::string_view value) {
  appendLiteralHead(out, value.size());
  std::size_t from = out.size();
  out += value;
  for (std::size_t i = from; i < out.size(); ++i)
    if (out[i] == '\0') out[i] = static_cast<char>(0x80);
}

}  // namespace

void appendImapString(std::string& out, std::string_view value) {
  // One look at the bytes decides literal, plain quoted or escaped quoted;
  // the common plain case is appended whole (a byte at a time showed in the
  // analysis's profile).
  unsigned char cls = 0;
  for (unsigned char c : value) cls |= kStringClass[c];
  if (cls & kLiteral) {
    appendLiteral(out, value);
    return;
  }
  out += '"';
  if (!(cls & kEscape)) {
    out += value;
  } else {
    for (char c : value) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
  }
  out += '"';
}

void appendImapNStringNoLf(std::string& out, std::optional<std::string_view> value) {
  if (!value) {
    out += "NIL";
    return;
  }
  // (find_first_of would run a memchr over "\r\n" for every byte)
  if (std::none_of(value->begin(), value->end(), [](char c) { return c == '\r' || c == '\n'; })) {
    appendImapString(out, *value);
    return;
  }
  std::string clean;
  clean.reserve(value->size());
  for (char c : *value) {
    if (c != '\r' && c != '\n') clean += c;
  }
  appendImapString(out, clean);
}

void appendImapHumanString(std::string& out, std::string_view value) {
  auto blank = [](unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  // Text with nothing to collapse or trim and nothing a quoted string
  // cannot carry (the common case) goes out as it is, with no copy made.
  unsigned char cls = 0;
  bool collapses = false;  // a tab, or a space after a space
  char prev = 0;
  for (char c : value) {
    cls |= kStringClass[static_cast<unsigned char>(c)];
    collapses |= c == '\t' || (c == ' ' && prev == ' ');
    prev = c;
  }
  if (!value.empty() && value.front() != ' ' && value.back() != ' ' && cls == 0 && !collapses) {
    out += '"';
    out += value;
    out += '"';
    return;
  }
  // Otherwise whitespace runs become one space and the ends are trimmed;
  // Dovecot then sends a literal whenever that changed anything or the text
  // has " \ or 8-bit, which is every case that gets here with text left.
  std::size_t size = 0;
  bool lastSpace = true;  // true at the start so leading whitespace goes
  for (char ch : value) {
    if (blank(static_cast<unsigned char>(ch))) {
      if (!lastSpace) ++size;
      lastSpace = true;
      continue;
    }
    lastSpace = false;
    ++size;
  }
  if (size > 0 && lastSpace) --size;  // the trailing space
  if (size == 0) {
    out += "\"\"";
    return;
  }
  appendLiteralHead(out, size);
  std::size_t end = out.size() + size;
  lastSpace = true;
  for (char ch : value) {
    if (blank(static_cast<unsigned char>(ch))) {
      if (!lastSpace && out.size() < end) out += ' ';
      lastSpace = true;
      continue;
    }
    lastSpace = false;
    out += ch == '\0' ? static_cast<char>(0x80) : ch;
  }
}

}  // namespace mb::mime
