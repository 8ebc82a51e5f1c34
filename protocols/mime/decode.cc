// GMime-backed decoding helpers; the only file (with search.cc) that calls GMime.
#include "protocols/mime/decode.h"

#include <gmime/gmime.h>

#include <mutex>

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

std::string decodeHeaderText(std::string_view raw) {
  if (plainHeaderText(raw)) return unfold(raw);
  ensureGMime();
  std::string text = unfold(raw);
  for (char& c : text) {
    if (c == '\0') c = ' ';  // GMime takes C strings
  }
  std::string out = takeGString(g_mime_utils_header_decode_text(nullptr, text.c_str()));
  if (!isUtf8(out)) return toUtf8(out, "");
  return out;
}

std::optional<std::int64_t> parseDate(std::string_view value) {
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
  std::string enc = asciiLower(encoding);
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
  std::string cs = asciiLower(charset);
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
