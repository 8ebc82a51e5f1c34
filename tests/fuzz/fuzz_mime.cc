// libFuzzer target for MIME analysis: analyse any bytes (LineScan checked
// against byte loops and each vector path against the scalar one,
// analyzeForStore against analyzeMessage), store and reload the result,
// resolve sections and decode, read the Message-ID as the sync engine does,
// decode header text without GMime where decodeHeaderText does and compare
// with GMime; none of it may crash or read out of bounds.
#include <gmime/gmime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocols/mime/analysis.h"
#include "protocols/mime/decode.h"
#include "protocols/mime/header.h"
#include "protocols/mime/search.h"
#include "protocols/mime/section.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  auto a = mb::mime::analyzeMessage(raw);
  if (!a) __builtin_trap();  // analysis never fails
  // The sync engine reads upstream Message-IDs from HEADER.FIELDS answers with
  // messageIdOf and matches them against the stored one: they must agree.
  if (mb::mime::messageIdOf(raw.substr(a->root.headerBegin, a->root.headerEnd - a->root.headerBegin)) !=
      a->quick.messageId)
    __builtin_trap();
  (void)mb::mime::messageIdOf(raw);
  // LineScan's one pass against the byte-at-a-time meaning of each answer.
  mb::mime::LineScan scan(raw);
  std::size_t lf = 0, next = 0;
  bool bare = false;
  for (std::size_t i = 0; i < size; ++i) {
    if (raw[i] != '\n') continue;
    if (scan.lfBefore(i) != lf) __builtin_trap();
    ++lf;
    bare = bare || i == 0 || raw[i - 1] != '\r';
    if (i + 2 < size && raw[i + 1] == '-' && raw[i + 2] == '-') {
      if (scan.nextDashLine(next) != i + 1) __builtin_trap();
      next = i + 1;
    }
  }
  if (scan.nextDashLine(next) != size || scan.lfCount() != lf || scan.lfBefore(size) != lf ||
      scan.hasBareLf() != bare)
    __builtin_trap();
  // Every vector path the CPU has gives the scalar path's tables.
  mb::mime::LineScan scalar(raw, mb::mime::detail::ScanPath::Scalar);
  for (mb::mime::detail::ScanPath path : mb::mime::detail::lineScanPaths())
    if (!(mb::mime::LineScan(raw, path) == scalar)) __builtin_trap();
  std::string blob = mb::mime::serializeAnalysis(*a);
  // The store's path: the same analysis of the input, or of its CRLF form.
  auto stored = mb::mime::analyzeForStore(raw);
  if (!stored || stored->normalized.has_value() != bare) __builtin_trap();
  if (stored->normalized) {
    auto again = mb::mime::analyzeMessage(*stored->normalized);
    if (!again || mb::mime::LineScan(*stored->normalized).hasBareLf() ||
        mb::mime::serializeAnalysis(*again) != mb::mime::serializeAnalysis(stored->analysis))
      __builtin_trap();
  } else if (mb::mime::serializeAnalysis(stored->analysis) != blob) {
    __builtin_trap();
  }
  auto back = mb::mime::deserializeAnalysis(blob);
  if (!back || back->bodyStructure != a->bodyStructure || mb::mime::serializeAnalysis(*back) != blob)
    __builtin_trap();
  // A damaged stored value must be refused or accepted, never crash.
  if (!blob.empty()) (void)mb::mime::deserializeAnalysis(blob.substr(0, blob.size() / 2));
  (void)mb::mime::deserializeAnalysis(raw);
  for (std::string_view section : {"", "HEADER", "TEXT", "1", "1.MIME", "2", "2.HEADER", "2.TEXT", "1.2",
                                    "1.1.1", "2.1.MIME", "3.HEADER.FIELDS (From Subject)",
                                    "HEADER.FIELDS.NOT (To)"}) {
    auto r = mb::mime::resolveSection(back->root, section);
    if (r) {
      if (r->range.end > raw.size() || r->range.begin > r->range.end) __builtin_trap();
      (void)mb::mime::extractSection(raw, *r);
    }
    if (section.empty() || (section.front() >= '0' && section.front() <= '9' && section.find('M') == section.npos &&
                            section.find('H') == section.npos && section.find('T') == section.npos))
      (void)mb::mime::extractBinary(raw, back->root, section);
  }
  if (size < 65536) (void)mb::mime::bodyText(raw, back->root);
  // Where decodeHeaderText decodes the text itself, the answer is GMime's.
  std::string text = mb::mime::unfold(raw.substr(0, 4096));
  std::string fast;
  if (mb::mime::detail::decodeUtf8Words(text, fast)) {
    mb::mime::ensureGMime();
    for (char& c : text)
      if (c == '\0') c = ' ';
    char* ref = g_mime_utils_header_decode_text(nullptr, text.c_str());
    std::string want = ref;
    g_free(ref);
    if (!g_utf8_validate(want.data(), static_cast<gssize>(want.size()), nullptr)) want = mb::mime::toUtf8(want, "");
    if (fast != want) __builtin_trap();
  }
  return 0;
}
