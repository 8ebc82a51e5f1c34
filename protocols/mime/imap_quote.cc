// IMAP quoted strings and literals for the MIME analysis output.
#include "protocols/mime/imap_quote.h"

namespace mb::mime {

namespace {

bool needsLiteral(std::string_view value) {
  for (unsigned char c : value) {
    if (c == '\r' || c == '\n' || c == 0 || c >= 0x80) return true;
  }
  return false;
}

void appendLiteral(std::string& out, std::string_view value) {
  out += '{';
  out += std::to_string(value.size());
  out += "}\r\n";
  for (char c : value) out += (c == '\0') ? static_cast<char>(0x80) : c;
}

}  // namespace

void appendImapString(std::string& out, std::string_view value) {
  if (needsLiteral(value)) {
    appendLiteral(out, value);
    return;
  }
  out += '"';
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
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
  if (value->find_first_of("\r\n") == std::string::npos) {
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
