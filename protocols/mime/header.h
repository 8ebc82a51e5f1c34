// Header block scanning over raw bytes (RFC 5322 section 2.2): field lines with
// their folding, the HEADER.FIELDS filter of RFC 3501 section 6.4.5, unfolding.
#pragma once

#include <array>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/common/ascii.h"

namespace mb::mime {

struct HeaderField {
  std::string_view name;      // before the colon, trailing blanks trimmed; the whole line if no colon
  std::string_view value;     // after the colon and leading blanks, folding kept, final EOL dropped
  std::string_view lines;     // the field's full lines including continuation lines and final EOL
  bool hasColon = false;
};

// Walks the fields of a header block. The block may end with the empty line
// or just stop (a message with no body); the empty line ends the walk. Lines
// without a colon are fields too (Dovecot keeps them in the header, and so
// must we or BODY[HEADER] would change size).
class HeaderReader {
 public:
  explicit HeaderReader(std::string_view block) : block_(block) {}
  bool next(HeaderField& field);

 private:
  std::string_view block_;
  std::size_t pos_ = 0;
};

// Something that wants every field of a header block another walker reads
// (the analysis takes ENVELOPE and its SEARCH fields from the walk that reads
// the top-level Content-* fields, so the block is read once).
class HeaderFieldSink {
 public:
  virtual void field(const HeaderField& field) = 0;

 protected:
  ~HeaderFieldSink() = default;
};

// Where the header block starting at `begin` ends: just after the empty line,
// or at raw.size() when there is none.
std::size_t findHeaderEnd(std::string_view raw, std::size_t begin);

// RFC 5322 unfolding: CR and LF removed, the blanks of continuation lines kept.
std::string unfold(std::string_view value);
// The same without a copy when there is nothing to remove (nearly every
// value): `value` itself, else the unfolded text, kept in `scratch`.
std::string_view unfoldedView(std::string_view value, std::string& scratch);

// Number of LF bytes, sixteen a step (SSE2 where built for it).
std::size_t countLf(std::string_view s);

namespace detail {
// Test seam: the vector width of LineScan's pass. The widest the CPU has is
// picked once at run time, so the binary keeps the baseline x86-64 flags.
enum class ScanPath { Scalar, Sse2, Avx2, Avx512 };
// The paths this build and CPU can run, Scalar first, widest last.
std::vector<ScanPath> lineScanPaths();
}  // namespace detail

// What the analysis needs to know of every byte of a message, from one pass
// (SSE2, AVX2 or AVX-512 as the CPU allows): the LF count of any range, the lines that start
// with "--" (the boundary candidates) and whether an LF lacks its CR. Each
// byte is read once: counting each part's lines, checking for bare LFs and
// looking for boundaries in separate passes read a part once per enclosing
// level and the whole message three times more.
class LineScan {
 public:
  explicit LineScan(std::string_view s);
  // The same answers from a given path; `path` must be one of lineScanPaths().
  LineScan(std::string_view s, detail::ScanPath path);
  // Same bytes and same tables: how the paths are checked against each other.
  friend bool operator==(const LineScan&, const LineScan&) = default;

  std::size_t lfCount() const { return lfTotal_; }
  // LF bytes in [0, pos), pos <= s.size(): a table lookup and at most
  // kStride - 1 bytes counted.
  std::size_t lfBefore(std::size_t pos) const;
  // Whether an LF is not preceded by CR (IMAP wants CRLF; such a message is
  // normalized before it is stored).
  bool hasBareLf() const { return bareLf_; }
  // The start of the first line after the one holding pos that begins with
  // "--", or s.size().
  std::size_t nextDashLine(std::size_t pos) const;

  static constexpr std::size_t kStride = 1024;

 private:
  std::string_view s_;
  std::vector<std::size_t> lfAt_;      // lfAt_[k]: LFs in [0, k * kStride)
  std::vector<std::size_t> dashLines_;  // ascending line starts, each after an LF
  std::size_t lfTotal_ = 0;
  bool bareLf_ = false;
};

using ascii::iequals;

// BODY[HEADER.FIELDS (names)] / HEADER.FIELDS.NOT: the matching (or
// non-matching) fields with their folding, each line ending in CRLF, then the
// empty line that RFC 3501 section 6.4.5 says the result keeps.
std::string filterHeaderFields(std::string_view block, std::span<const std::string> names, bool exclude);

}  // namespace mb::mime
