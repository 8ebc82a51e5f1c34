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
  std::size_t from = 0;
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '\r' && value[i] != '\n') continue;
    out.append(value.substr(from, i - from));
    from = i + 1;
  }
  out.append(value.substr(from));
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

LineScan::LineScan(std::string_view s) : s_(s) {
  const char* d = s.data();
  const std::size_t n = s.size();
  lfAt_.reserve(n / kStride + 1);
  std::size_t lf = 0;
  bool bare = false;
  auto dashAt = [&](std::size_t lfPos) { return lfPos + 2 < n && d[lfPos + 1] == '-' && d[lfPos + 2] == '-'; };
  // One byte as the vector loop sees sixteen: LF counted, bare if no CR
  // before it, a dash line if "--" follows.
  auto scalar = [&](std::size_t i) {
    if (d[i] != '\n') return;
    ++lf;
    if (i == 0 || d[i - 1] != '\r') bare = true;
    if (dashAt(i)) dashLines_.push_back(i + 1);
  };
  // "\n--" is rare (boundaries, signatures): the vector loop only notes that
  // its blocks had an LF before a '-', and then their LFs are visited again
  // here, so the loop keeps its sums in registers and calls nothing.
  auto dashLinesIn = [&](std::size_t begin, std::size_t end) {
    while (begin < end) {
      const void* hit = std::memchr(d + begin, '\n', end - begin);
      if (!hit) return;
      std::size_t at = static_cast<std::size_t>(static_cast<const char*>(hit) - d);
      if (dashAt(at)) dashLines_.push_back(at + 1);
      begin = at + 1;
    }
  };
#if defined(__SSE2__)
  const __m128i vlf = _mm_set1_epi8('\n');
  const __m128i vcr = _mm_set1_epi8('\r');
  const __m128i vdash = _mm_set1_epi8('-');
#endif
  for (std::size_t begin = 0;; begin += kStride) {
    lfAt_.push_back(lf);
    if (begin >= n) break;
    const std::size_t end = std::min(n, begin + kStride);
    std::size_t i = begin;
    if (i == 0) scalar(i++);
    [[maybe_unused]] const std::size_t vectorBegin = i;
#if defined(__SSE2__)
    // Blocks read d[i-1 .. i+16]; kStride / 16 < 255 keeps the lane counts exact.
    __m128i acc = _mm_setzero_si128();
    __m128i bareAcc = _mm_setzero_si128();
    __m128i dashAcc = _mm_setzero_si128();
    for (; i + 16 <= end && i + 17 <= n; i += 16) {
      const char* p = d + i;
      __m128i isLf = _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), vlf);
      acc = _mm_sub_epi8(acc, isLf);
      __m128i crBefore = _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p - 1)), vcr);
      bareAcc = _mm_or_si128(bareAcc, _mm_andnot_si128(crBefore, isLf));
      __m128i dashAfter = _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 1)), vdash);
      dashAcc = _mm_or_si128(dashAcc, _mm_and_si128(isLf, dashAfter));
    }
    __m128i sums = _mm_sad_epu8(acc, _mm_setzero_si128());
    lf += static_cast<std::size_t>(_mm_cvtsi128_si32(sums)) + static_cast<std::size_t>(_mm_extract_epi16(sums, 4));
    if (_mm_movemask_epi8(bareAcc) != 0) bare = true;
    if (_mm_movemask_epi8(dashAcc) != 0) dashLinesIn(vectorBegin, i);
#endif
    for (; i < end; ++i) scalar(i);
  }
  lfTotal_ = lf;
  bareLf_ = bare;
}

std::size_t LineScan::lfBefore(std::size_t pos) const {
  std::size_t k = pos / kStride;
  return lfAt_[k] + countLf(s_.substr(k * kStride, pos - k * kStride));
}

std::size_t LineScan::nextDashLine(std::size_t pos) const {
  auto it = std::upper_bound(dashLines_.begin(), dashLines_.end(), pos);
  return it == dashLines_.end() ? s_.size() : *it;
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
