// Decoding through GMime: RFC 2047 header text, RFC 5322 dates, transfer
// encodings (RFC 2045 section 6) and charsets to UTF-8. GMime is set up once.
// The two cases every message has are answered without it, with GMime's
// answer (pinned by tests): header text with nothing to decode, and dates
// in the strict RFC 5322 form.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocols/common/result.h"

namespace mb::mime {

// g_mime_init() exactly once per process, from whichever thread comes first.
void ensureGMime();

// Unfolded header text with encoded words decoded, as UTF-8.
std::string decodeHeaderText(std::string_view raw);

namespace detail {
// Test seam: decodeHeaderText's own decoder for the encoded words most mail
// has (UTF-8, well formed, blank-separated). Takes unfolded text; false
// means "GMime's to decode", true that `out` holds GMime's answer.
bool decodeUtf8Words(std::string_view text, std::string& out);
}  // namespace detail

// Seconds since the epoch for an RFC 5322 date (obsolete forms too), if it parses.
std::optional<std::int64_t> parseDate(std::string_view value);

// The content of a body with its Content-Transfer-Encoding undone. 7bit,
// 8bit, binary and an absent encoding are identity; base64,
// quoted-printable and x-uuencode are decoded; anything else is an error
// with response code UNKNOWN-CTE (RFC 3516 section 4.3).
Result<std::string> decodeTransfer(std::string_view body, std::string_view encoding);

// Text in the named charset as UTF-8; unknown charsets and broken bytes
// fall back to GMime's guess, so search still finds the ASCII words.
std::string toUtf8(std::string_view bytes, std::string_view charset);

}  // namespace mb::mime
