// Header block scanning, unfolding and HEADER.FIELDS filtering over raw bytes.
#include "protocols/mime/header.h"

#include <algorithm>
#include <cstring>
#include <span>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>
#define MB_LINESCAN_WIDE 1
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

using ascii::lower;

}  // namespace

bool HeaderReader::next(HeaderField& field) {
  if (pos_ >= block_.size() || isBlankLine(block_, pos_)) return false;
  std::size_t start = pos_;
  const std::size_t firstEnd = lineEnd(block_, pos_);
  std::size_t end = firstEnd;
  // Continuation lines start with a blank; a blank line is never one.
  while (end < block_.size() && (block_[end] == ' ' || block_[end] == '\t')) end = lineEnd(block_, end);
  pos_ = end;
  field.lines = block_.substr(start, end - start);
  std::string_view body = trimEol(field.lines);
  // The name is on the first line: the colon is looked for there only (up
  // to its LF when more lines follow).
  const std::size_t firstLine = end > firstEnd ? firstEnd - 1 - start : body.size();
  const void* colonAt = std::memchr(body.data(), ':', firstLine);
  if (!colonAt) {
    field.hasColon = false;
    field.name = trimEol(body.substr(0, firstLine));
    field.value = {};
    return true;
  }
  std::size_t colon = static_cast<std::size_t>(static_cast<const char*>(colonAt) - body.data());
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

namespace {

void unfoldInto(std::string& out, std::string_view value) {
  out.clear();
  out.reserve(value.size());
  std::size_t from = 0;
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '\r' && value[i] != '\n') continue;
    out.append(value.substr(from, i - from));
    from = i + 1;
  }
  out.append(value.substr(from));
}

}  // namespace

std::string unfold(std::string_view value) {
  std::string out;
  unfoldInto(out, value);
  return out;
}

std::string_view unfoldedView(std::string_view value, std::string& scratch) {
  // (two memchr passes beat one byte loop looking for either)
  if (!std::memchr(value.data(), '\n', value.size()) && !std::memchr(value.data(), '\r', value.size())) return value;
  unfoldInto(scratch, value);
  return scratch;
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

namespace {

// What a run of whole blocks of one stride adds up to. The blocks with an
// LF followed by '-' lie in [dashBegin, dashEnd) (empty if none); the caller
// visits the LFs of that range again, which is usually one block.
struct BlockSums {
  std::size_t i;
  std::size_t lf = 0;
  bool bare = false;
  std::size_t dashBegin = static_cast<std::size_t>(-1);
  std::size_t dashEnd = 0;

  void dashBlock(std::size_t begin, std::size_t end) {
    dashBegin = std::min(dashBegin, begin);
    dashEnd = end;  // blocks come in ascending order
  }
};

// Each kernel scans W-byte blocks from sums.i while i + W <= end and
// i + W < n: a block reads d[i-1 .. i+W], so i >= 1 on entry.
using BlockFn = void (*)(const char* d, std::size_t end, std::size_t n, BlockSums& sums);

// How far ahead the kernels ask for the bytes they will read next. A stored
// message is mostly not in any cache and the hardware prefetcher starts each
// message cold: asking 2 KiB ahead cut the pass over the bench corpus by a
// sixth (a prefetch past the end of the bytes is harmless: it never faults).
constexpr std::size_t kPrefetchAhead = 2048;

#if defined(__SSE2__)
void sse2Blocks(const char* d, std::size_t end, std::size_t n, BlockSums& sums) {
  const __m128i vlf = _mm_set1_epi8('\n');
  const __m128i vcr = _mm_set1_epi8('\r');
  const __m128i vdash = _mm_set1_epi8('-');
  std::size_t i = sums.i;
  // kStride / 16 < 255 keeps the byte-lane counts exact.
  __m128i acc = _mm_setzero_si128();
  __m128i bareAcc = _mm_setzero_si128();
  for (; i + 16 <= end && i + 17 <= n; i += 16) {
    const char* p = d + i;
    __builtin_prefetch(p + kPrefetchAhead);
    __m128i isLf = _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), vlf);
    acc = _mm_sub_epi8(acc, isLf);
    __m128i crBefore = _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p - 1)), vcr);
    bareAcc = _mm_or_si128(bareAcc, _mm_andnot_si128(crBefore, isLf));
    __m128i dashAfter = _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 1)), vdash);
    if (_mm_movemask_epi8(_mm_and_si128(isLf, dashAfter)) != 0) [[unlikely]]
      sums.dashBlock(i, i + 16);
  }
  __m128i s = _mm_sad_epu8(acc, _mm_setzero_si128());
  sums.lf += static_cast<std::size_t>(_mm_cvtsi128_si32(s)) + static_cast<std::size_t>(_mm_extract_epi16(s, 4));
  sums.bare = sums.bare || _mm_movemask_epi8(bareAcc) != 0;
  sums.i = i;
}
#endif

#if defined(MB_LINESCAN_WIDE)
__attribute__((target("avx2"))) void avx2Blocks(const char* d, std::size_t end, std::size_t n, BlockSums& sums) {
  const __m256i vlf = _mm256_set1_epi8('\n');
  const __m256i vcr = _mm256_set1_epi8('\r');
  const __m256i vdash = _mm256_set1_epi8('-');
  std::size_t i = sums.i;
  // kStride / 32 < 255 keeps the byte-lane counts exact.
  __m256i acc = _mm256_setzero_si256();
  __m256i bareAcc = _mm256_setzero_si256();
  for (; i + 32 <= end && i + 33 <= n; i += 32) {
    const char* p = d + i;
    __builtin_prefetch(p + kPrefetchAhead);
    __m256i isLf = _mm256_cmpeq_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), vlf);
    acc = _mm256_sub_epi8(acc, isLf);
    __m256i crBefore = _mm256_cmpeq_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p - 1)), vcr);
    bareAcc = _mm256_or_si256(bareAcc, _mm256_andnot_si256(crBefore, isLf));
    __m256i dashAfter = _mm256_cmpeq_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 1)), vdash);
    __m256i dashLf = _mm256_and_si256(isLf, dashAfter);
    if (!_mm256_testz_si256(dashLf, dashLf)) [[unlikely]]
      sums.dashBlock(i, i + 32);
  }
  __m256i s = _mm256_sad_epu8(acc, _mm256_setzero_si256());
  __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  sums.lf += static_cast<std::size_t>(_mm_cvtsi128_si32(s2)) + static_cast<std::size_t>(_mm_extract_epi16(s2, 4));
  sums.bare = sums.bare || !_mm256_testz_si256(bareAcc, bareAcc);
  sums.i = i;
}

__attribute__((target("avx512f,avx512bw,popcnt"))) void avx512Blocks(const char* d, std::size_t end, std::size_t n,
                                                                    BlockSums& sums) {
  const __m512i vlf = _mm512_set1_epi8('\n');
  const __m512i vcr = _mm512_set1_epi8('\r');
  const __m512i vdash = _mm512_set1_epi8('-');
  std::size_t i = sums.i;
  std::size_t lf = 0;
  __mmask64 bare = 0;
  for (; i + 64 <= end && i + 65 <= n; i += 64) {
    const char* p = d + i;
    __builtin_prefetch(p + kPrefetchAhead);
    __mmask64 isLf = _mm512_cmpeq_epi8_mask(_mm512_loadu_si512(p), vlf);
    lf += static_cast<std::size_t>(__builtin_popcountll(isLf));
    bare |= isLf & ~_mm512_cmpeq_epi8_mask(_mm512_loadu_si512(p - 1), vcr);
    if ((isLf & _mm512_cmpeq_epi8_mask(_mm512_loadu_si512(p + 1), vdash)) != 0) [[unlikely]]
      sums.dashBlock(i, i + 64);
  }
  // What is left of the stride (the first stride's last 63 bytes, the
  // message's last bytes) as one block read through masks: masked-out bytes
  // are never touched, so nothing past d[n - 1] is read and no narrower
  // kernel or byte loop is needed.
  if (i < end) {
    auto upTo = [](std::size_t count) { return count >= 64 ? ~__mmask64{0} : (__mmask64{1} << count) - 1; };
    const char* p = d + i;
    const __mmask64 here = upTo(end - i);
    __mmask64 isLf = _mm512_cmpeq_epi8_mask(_mm512_maskz_loadu_epi8(here, p), vlf) & here;
    lf += static_cast<std::size_t>(__builtin_popcountll(isLf));
    bare |= isLf & ~_mm512_cmpeq_epi8_mask(_mm512_maskz_loadu_epi8(here, p - 1), vcr);
    const __mmask64 after = upTo(n - i - 1) & here;  // p[1..] exists up to d[n - 1]
    if ((isLf & _mm512_cmpeq_epi8_mask(_mm512_maskz_loadu_epi8(after, p + 1), vdash)) != 0) sums.dashBlock(i, end);
    i = end;
  }
  sums.lf += lf;
  sums.bare = sums.bare || bare != 0;
  sums.i = i;
}
#endif

// Widest first; the narrower ones take what is left of a stride, so only a
// few bytes per stride go byte by byte (AVX-512 takes the rest itself).
std::span<const BlockFn> kernelsFor(detail::ScanPath path) {
#if defined(__SSE2__)
  static constexpr BlockFn sse2[] = {sse2Blocks};
#if defined(MB_LINESCAN_WIDE)
  static constexpr BlockFn avx2[] = {avx2Blocks, sse2Blocks};
  static constexpr BlockFn avx512[] = {avx512Blocks};
  if (path == detail::ScanPath::Avx512) return avx512;
  if (path == detail::ScanPath::Avx2) return avx2;
#endif
  if (path != detail::ScanPath::Scalar) return sse2;
#endif
  (void)path;
  return {};
}

detail::ScanPath bestScanPath() {
  static const detail::ScanPath best = detail::lineScanPaths().back();
  return best;
}

}  // namespace

namespace detail {

std::vector<ScanPath> lineScanPaths() {
  std::vector<ScanPath> paths{ScanPath::Scalar};
#if defined(__SSE2__)
  paths.push_back(ScanPath::Sse2);
#if defined(MB_LINESCAN_WIDE)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) {
    paths.push_back(ScanPath::Avx2);
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("popcnt"))
      paths.push_back(ScanPath::Avx512);
  }
#endif
#endif
  return paths;
}

}  // namespace detail

LineScan::LineScan(std::string_view s) : LineScan(s, bestScanPath()) {}

LineScan::LineScan(std::string_view s, detail::ScanPath path) : s_(s) {
  const std::span<const BlockFn> kernels = kernelsFor(path);
  const char* d = s.data();
  const std::size_t n = s.size();
  lfAt_.reserve(n / kStride + 1);
  std::size_t lf = 0;
  bool bare = false;
  auto dashAt = [&](std::size_t lfPos) { return lfPos + 2 < n && d[lfPos + 1] == '-' && d[lfPos + 2] == '-'; };
  // One byte as the vector kernels see a block: LF counted, bare if no CR
  // before it, a dash line if "--" follows.
  auto scalar = [&](std::size_t i) {
    if (d[i] != '\n') return;
    ++lf;
    if (i == 0 || d[i - 1] != '\r') bare = true;
    if (dashAt(i)) dashLines_.push_back(i + 1);
  };
  // "\n--" is rare (boundaries, signatures): the kernels only note which
  // of their blocks had an LF before a '-', and the LFs of those blocks are
  // visited again here, so the kernels call nothing.
  auto dashLinesIn = [&](std::size_t begin, std::size_t end) {
    while (begin < end) {
      const void* hit = std::memchr(d + begin, '\n', end - begin);
      if (!hit) return;
      std::size_t at = static_cast<std::size_t>(static_cast<const char*>(hit) - d);
      if (dashAt(at)) dashLines_.push_back(at + 1);
      begin = at + 1;
    }
  };
  for (std::size_t begin = 0;; begin += kStride) {
    lfAt_.push_back(lf);
    if (begin >= n) break;
    const std::size_t end = std::min(n, begin + kStride);
    std::size_t i = begin;
    if (i == 0) scalar(i++);
    if (!kernels.empty()) {
      BlockSums sums{i};
      for (BlockFn blocks : kernels) blocks(d, end, n, sums);
      lf += sums.lf;
      bare = bare || sums.bare;
      if (sums.dashBegin < sums.dashEnd) dashLinesIn(sums.dashBegin, sums.dashEnd);
      i = sums.i;
    }
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

std::string filterHeaderFields(std::string_view block, std::span<const std::string> names, bool exclude) {
  std::string out;
  HeaderReader reader(block);
  HeaderField field;
  while (reader.next(field)) {
    bool match = false;
    if (field.hasColon) {
      for (const auto& n : names) {
        if (iequals(n, field.name)) {
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
