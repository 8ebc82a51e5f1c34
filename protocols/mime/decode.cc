// GMime-backed decoding helpers; the only file (with search.cc) that calls GMime.
#include "protocols/mime/decode.h"

#include <gmime/gmime.h>

#include <algorithm>
#include <iterator>
#include <mutex>

#include "protocols/common/base64.h"
#include "protocols/mime/header.h"

namespace mb::mime {

namespace {

std::string takeGString(char* s) {
  if (!s) return {};
  std::string out(s);
  g_free(s);
  return out;
}

bool isUtf8(std::string_view s) { return g_utf8_validate(s.data(), static_cast<gssize>(s.size()), nullptr); }

}  // namespace

void ensureGMime() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

namespace {

// Printable ASCII and blanks with no "=?" once unfolded: no encoded word and
// no byte to convert, and GMime hands such text back unchanged (pinned by
// MimeDecode.PlainHeaderTextAsGMime), so it is not asked.
bool plainHeaderText(std::string_view raw) {
  char prev = 0;
  for (char c : raw) {
    if (c == '\r' || c == '\n') continue;
    if ((c < 0x20 && c != '\t') || c > 0x7e || (c == '?' && prev == '=')) return false;
    prev = c;
  }
  return true;
}

}  // namespace

namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// RFC 2047 "Q" payload (no '?', every '=' with two hex digits) appended to out.
bool appendQDecoded(std::string& out, std::string_view payload) {
  for (std::size_t i = 0; i < payload.size(); ++i) {
    char c = payload[i];
    if (c == '_') {
      out += ' ';
    } else if (c == '=') {
      int hi = i + 2 < payload.size() ? hexValue(payload[i + 1]) : -1;
      int lo = hi >= 0 ? hexValue(payload[i + 2]) : -1;
      if (lo < 0) return false;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c > 0x20 && c < 0x7f) {
      out += c;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

namespace detail {

// The header text most mail has beyond plain ASCII, decoded without GMime:
// blank-separated words, each either printable ASCII without "=?" or one
// whole encoded word "=?utf-8?B|Q?...?=" whose payload is well formed and
// decodes to UTF-8 without NUL. GMime's answer for such text is known
// (blanks between two encoded words dropped, all else kept as it is; pinned
// by MimeDecode.EncodedWordsAsGMime); anything else (other charsets, words
// glued to other text, broken payloads, 8-bit bytes) returns false and is
// GMime's to decode. GMime decodes a run of adjacent base64 words as one
// stream, so padding before the end of such a run is left to it too.
bool decodeUtf8Words(std::string_view text, std::string& out) {
  out.clear();
  out.reserve(text.size());
  bool prevEncoded = false, prevPadded = false;
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n) {
    std::size_t blanks = i;
    while (i < n && (text[i] == ' ' || text[i] == '\t')) ++i;
    std::string_view lwsp = text.substr(blanks, i - blanks);
    std::size_t start = i;
    while (i < n && text[i] != ' ' && text[i] != '\t') ++i;
    std::string_view word = text.substr(start, i - start);
    if (!word.starts_with("=?")) {
      char prev = 0;
      for (char c : word) {
        if (c < 0x21 || c > 0x7e || (c == '?' && prev == '=')) return false;
        prev = c;
      }
      out += lwsp;
      out += word;
      prevEncoded = prevPadded = false;
      continue;
    }
    // =?charset?E?payload?=
    if (word.size() < 8 || !word.ends_with("?=")) return false;
    std::string_view inner = word.substr(2, word.size() - 4);
    std::size_t q = inner.find('?');
    if (q == std::string_view::npos || !iequals(inner.substr(0, q), "utf-8") || q + 2 >= inner.size() ||
        inner[q + 2] != '?')
      return false;
    char enc = inner[q + 1];
    std::string_view payload = inner.substr(q + 3);
    if (payload.empty() || payload.find('?') != std::string_view::npos) return false;
    bool base64 = enc == 'B' || enc == 'b';
    if (!base64 && enc != 'Q' && enc != 'q') return false;
    if (base64 && prevPadded) return false;
    if (!prevEncoded) out += lwsp;  // RFC 2047: blanks between encoded words go
    std::size_t from = out.size();
    if (base64) {
      if (!appendBase64Decoded(out, payload)) return false;
    } else if (!appendQDecoded(out, payload)) {
      return false;
    }
    std::string_view decoded = std::string_view(out).substr(from);
    if (decoded.find('\0') != std::string_view::npos || !isUtf8(decoded)) return false;
    prevEncoded = true;
    prevPadded = base64 && payload.back() == '=';
  }
  return true;
}

}  // namespace detail

std::string decodeHeaderText(std::string_view raw) {
  std::string scratch;
  std::string_view unfolded = unfoldedView(raw, scratch);
  if (plainHeaderText(unfolded)) return std::string(unfolded);
  std::string fast;
  if (detail::decodeUtf8Words(unfolded, fast)) return fast;
  ensureGMime();
  std::string text(unfolded);
  for (char& c : text) {
    if (c == '\0') c = ' ';  // GMime takes C strings
  }
  std::string out = takeGString(g_mime_utils_header_decode_text(nullptr, text.c_str()));
  if (!isUtf8(out)) return toUtf8(out, "");
  return out;
}

namespace {

// Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's days_from_civil).
std::int64_t daysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// The strict RFC 5322 form nearly every message has, "Sun, 01 Jan 2023
// 00:36:23 +0000" (weekday optional, day of one or two digits), read here;
// anything else (no seconds, named zones, comments, two-digit years, dates
// that do not exist) is left to GMime. Pinned against GMime by
// MimeDecode.CanonicalDatesAsGMime.
std::optional<std::int64_t> canonicalDate(std::string_view s) {
  static constexpr std::string_view kDays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::size_t p = 0;
  auto digits = [&](std::size_t n, unsigned& out) {
    if (s.size() - p < n) return false;
    out = 0;
    for (std::size_t i = 0; i < n; ++i, ++p) {
      if (s[p] < '0' || s[p] > '9') return false;
      out = out * 10 + static_cast<unsigned>(s[p] - '0');
    }
    return true;
  };
  auto literal = [&](char c) {
    if (p >= s.size() || s[p] != c) return false;
    ++p;
    return true;
  };
  if (s.size() >= 5 && s[3] == ',' && s[4] == ' ') {
    if (std::find(std::begin(kDays), std::end(kDays), s.substr(0, 3)) == std::end(kDays)) return std::nullopt;
    p = 5;
  }
  unsigned day = 0, year = 0, hour = 0, minute = 0, second = 0, zh = 0, zm = 0;
  if (!digits(1, day)) return std::nullopt;
  if (p < s.size() && s[p] >= '0' && s[p] <= '9') day = day * 10 + static_cast<unsigned>(s[p++] - '0');
  if (!literal(' ') || s.size() - p < 4) return std::nullopt;
  auto month = std::find(std::begin(kMonths), std::end(kMonths), s.substr(p, 3));
  if (month == std::end(kMonths)) return std::nullopt;
  p += 3;
  if (!literal(' ') || !digits(4, year) || !literal(' ') || !digits(2, hour) || !literal(':') ||
      !digits(2, minute) || !literal(':') || !digits(2, second) || !literal(' ') || p >= s.size())
    return std::nullopt;
  char sign = s[p++];
  if ((sign != '+' && sign != '-') || !digits(2, zh) || !digits(2, zm) || p != s.size()) return std::nullopt;
  unsigned m = static_cast<unsigned>(month - std::begin(kMonths)) + 1;
  static constexpr unsigned kMonthDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (year < 1970 || year > 9999 || day < 1 || day > kMonthDays[m - 1] || (m == 2 && day == 29 && !leap) ||
      hour > 23 || minute > 59 || second > 59 || zh > 23 || zm > 59)
    return std::nullopt;
  std::int64_t offset = (static_cast<std::int64_t>(zh) * 3600 + zm * 60) * (sign == '-' ? -1 : 1);
  return daysFromCivil(year, m, day) * 86400 + hour * 3600 + minute * 60 + second - offset;
}

}  // namespace

std::optional<std::int64_t> parseDate(std::string_view value) {
  if (auto fast = canonicalDate(value)) return fast;
  ensureGMime();
  std::string text = unfold(value);
  if (text.find('\0') != std::string::npos) return std::nullopt;
  GDateTime* dt = g_mime_utils_header_decode_date(text.c_str());
  if (!dt) return std::nullopt;
  std::int64_t secs = g_date_time_to_unix(dt);
  g_date_time_unref(dt);
  return secs;
}

Result<std::string> decodeTransfer(std::string_view body, std::string_view encoding) {
  std::string enc = ascii::toLower(encoding);
  if (enc.empty() || enc == "7bit" || enc == "8bit" || enc == "binary") return std::string(body);
  ensureGMime();
  GMimeContentEncoding kind = g_mime_content_encoding_from_string(enc.c_str());
  if (kind != GMIME_CONTENT_ENCODING_BASE64 && kind != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE &&
      kind != GMIME_CONTENT_ENCODING_UUENCODE) {
    return fail(ErrorKind::User, "unknown content-transfer-encoding " + enc, "UNKNOWN-CTE");
  }
  GMimeEncoding state;
  g_mime_encoding_init_decode(&state, kind);
  std::string out(g_mime_encoding_outlen(&state, body.size()) + 16, '\0');
  std::size_t n = g_mime_encoding_step(&state, body.data(), body.size(), out.data());
  n += g_mime_encoding_flush(&state, "", 0, out.data() + n);
  out.resize(n);
  return out;
}

std::string toUtf8(std::string_view bytes, std::string_view charset) {
  ensureGMime();
  std::string cs = ascii::toLower(charset);
  if ((cs.empty() || cs == "us-ascii" || cs == "utf-8" || cs == "utf8") && isUtf8(bytes)) return std::string(bytes);
  if (!cs.empty()) {
    const char* name = g_mime_charset_iconv_name(cs.c_str());
    iconv_t cd = g_mime_iconv_open("UTF-8", name);
    if (cd != reinterpret_cast<iconv_t>(-1)) {
      char* converted = g_mime_iconv_strndup(cd, bytes.data(), bytes.size());
      g_mime_iconv_close(cd);
      if (converted) {
        std::string out = takeGString(converted);
        if (isUtf8(out)) return out;
      }
    }
  }
  return takeGString(g_mime_utils_decode_8bit(nullptr, bytes.data(), bytes.size()));
}

}  // namespace mb::mime
