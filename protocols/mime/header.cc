// Header block scanning, unfolding and HEADER.FIELDS filtering over raw bytes.
#include "protocols/mime/header.h"

#include <cstring>

namespace mb::mime {

namespace {

// End of the line that starts at pos: just past its LF, or the end.
std::size_t lineEnd(std::string_view s, std::size_t pos) {
  const void* lf = std::memchr(s.data() + pos, '\n', s.size() - pos);
  return lf ? static_cast<std::size_t>(static_cast<const char*>(lf) - s.data()) + 1 : s.size();
}

bool isBlankLine(std::string_view s, std::size_t pos) {
  if (pos < s.size() && s[pos] == '\n') return true;
  return pos + 1 < s.size() && s[pos] == '\r' && s[pos + 1] == '\n';
}

std::string_view trimEol(std::string_view s) {
  if (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  if (!s.empty() && s.back() == '\r') s.remove_suffix(1);
  return s;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

bool HeaderReader::next(HeaderField& field) {
  if (pos_ >= block_.size() || isBlankLine(block_, pos_)) return false;
  std::size_t start = pos_;
  std::size_t end = lineEnd(block_, pos_);
  // Continuation lines start with a blank; a blank line is never one.
  while (end < block_.size() && (block_[end] == ' ' || block_[end] == '\t')) end = lineEnd(block_, end);
  pos_ = end;
  field.lines = block_.substr(start, end - start);
  std::string_view body = trimEol(field.lines);
  std::size_t colon = body.find(':');
  std::size_t firstEol = body.find('\n');
  if (colon == std::string_view::npos || (firstEol != std::string_view::npos && colon > firstEol)) {
    field.hasColon = false;
    field.name = trimEol(body.substr(0, firstEol == std::string_view::npos ? body.size() : firstEol));
    field.value = {};
    return true;
  }
  field.hasColon = true;
  std::string_view name = body.substr(0, colon);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
  field.name = name;
  std::size_t v = colon + 1;
  while (v < body.size() && (body[v] == ' ' || body[v] == '\t')) ++v;
  field.value = body.substr(v);
  return true;
}

std::size_t findHeaderEnd(std::string_view raw, std::size_t begin) {
  std::size_t pos = begin;
  while (pos < raw.size()) {
    if (isBlankLine(raw, pos)) return lineEnd(raw, pos);
    pos = lineEnd(raw, pos);
  }
  return raw.size();
}

std::string unfold(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c != '\r' && c != '\n') out += c;
  }
  return out;
}

std::size_t countLf(std::string_view s) {
  std::size_t n = 0;
  const char* p = s.data();
  const char* end = p + s.size();
  while (p < end) {
    const void* lf = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
    if (!lf) break;
    ++n;
    p = static_cast<const char*>(lf) + 1;
  }
  return n;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string asciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

std::string filterHeaderFields(std::string_view block, std::span<const std::string> names, bool exclude) {
  std::string out;
  HeaderReader reader(block);
  HeaderField field;
  while (reader.next(field)) {
    bool match = false;
    if (field.hasColon) {
      for (const auto& n : names) {
        if (equalsIgnoreCase(n, field.name)) {
          match = true;
          break;
        }
      }
    }
    if (match == exclude) continue;
    // Bare LF lines are sent as CRLF so the result is a valid IMAP header.
    std::size_t pos = 0;
    while (pos < field.lines.size()) {
      std::size_t end = lineEnd(field.lines, pos);
      out += trimEol(field.lines.substr(pos, end - pos));
      out += "\r\n";
      pos = end;
    }
  }
  out += "\r\n";
  return out;
}

}  // namespace mb::mime
