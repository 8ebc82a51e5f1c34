// Header block scanning, unfolding and HEADER.FIELDS filtering over raw bytes.
#include "protocols/mime/header.h"

#include <algorithm>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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
  const char* p = s.data();
  std::size_t left = s.size();
  std::size_t n = 0;
#if defined(__SSE2__)
  const __m128i lf = _mm_set1_epi8('\n');
  while (left >= 16) {
    // Each byte lane counts up to 255 matches before the lanes are summed.
    std::size_t blocks = std::min<std::size_t>(left / 16, 255);
    __m128i acc = _mm_setzero_si128();
    for (std::size_t i = 0; i < blocks; ++i, p += 16) {
      __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(v, lf));
    }
    left -= blocks * 16;
    __m128i sums = _mm_sad_epu8(acc, _mm_setzero_si128());
    n += static_cast<std::size_t>(_mm_cvtsi128_si32(sums)) + static_cast<std::size_t>(_mm_extract_epi16(sums, 4));
  }
#endif
  for (; left > 0; --left, ++p) n += *p == '\n';
  return n;
}

bool hasBareLf(std::string_view s) {
  if (s.empty()) return false;
  if (s[0] == '\n') return true;
  std::size_t i = 1;
#if defined(__SSE2__)
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i cr = _mm_set1_epi8('\r');
  for (; i + 16 <= s.size(); i += 16) {
    __m128i cur = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + i));
    __m128i prev = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + i - 1));
    __m128i bare = _mm_andnot_si128(_mm_cmpeq_epi8(prev, cr), _mm_cmpeq_epi8(cur, lf));
    if (_mm_movemask_epi8(bare) != 0) return true;
  }
#endif
  for (; i < s.size(); ++i)
    if (s[i] == '\n' && s[i - 1] != '\r') return true;
  return false;
}

std::size_t nextDashLine(std::string_view s, std::size_t pos) {
  // Looks for "\n--" at or after pos; the line start is just after the LF.
  std::size_t i = pos;
#if defined(__SSE2__)
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i dash = _mm_set1_epi8('-');
  for (; i + 18 <= s.size(); i += 16) {
    const char* p = s.data() + i;
    __m128i a = _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), lf);
    __m128i b = _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 1)), dash);
    __m128i c = _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2)), dash);
    int m = _mm_movemask_epi8(_mm_and_si128(a, _mm_and_si128(b, c)));
    if (m != 0) return i + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(m))) + 1;
  }
#endif
  for (; i + 2 < s.size(); ++i)
    if (s[i] == '\n' && s[i + 1] == '-' && s[i + 2] == '-') return i + 1;
  return s.size();
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
