// IMAP quoted strings and literals for the MIME analysis output.
#include "protocols/mime/imap_quote.h"

#include <algorithm>

namespace mb::mime {

namespace {

void appendLiteral(std::string& out, std::string_view value) {
  out += '{';
  out += std::to_string(value.size());
  out += "}\r\n";
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
  bool escapes = false;
  for (unsigned char c : value) {
    if (c == '\r' || c == '\n' || c == 0 || c >= 0x80) {
      appendLiteral(out, value);
      return;
    }
    escapes = escapes || c == '"' || c == '\\';
  }
  out += '"';
  if (!escapes) {
    out += value;
  } else {
    for (char c : value) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
  }
  out += '"';
}

void appendImapNString(std::string& out, const std::optional<std::string>& value) {
  if (!value) {
    out += "NIL";
    return;
  }
  appendImapString(out, *value);
}

void appendImapNStringNoLf(std::string& out, const std::optional<std::string>& value) {
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
  std::string clean;
  clean.reserve(value.size());
  bool lastSpace = true;  // true at the start so leading whitespace goes
  bool literal = false;
  for (char ch : value) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      if (c != ' ') literal = true;
      if (!lastSpace) clean += ' ';
      lastSpace = true;
      continue;
    }
    lastSpace = false;
    if (c == 0) {
      clean += static_cast<char>(0x80);
      literal = true;
    } else {
      if (c == '"' || c == '\\' || c >= 0x80) literal = true;
      clean += ch;
    }
  }
  if (!clean.empty() && clean.back() == ' ') clean.pop_back();
  if (clean.size() != value.size()) literal = true;
  if (clean.empty()) {
    out += "\"\"";
    return;
  }
  if (!literal) {
    out += '"';
    out += clean;
    out += '"';
    return;
  }
  appendLiteral(out, clean);
}

}  // namespace mb::mime
