// IMAP sequence sets (RFC 3501 section 9 "sequence-set", RFC 9051 section 9):
// ranges of message numbers or UIDs with '*' and the SEARCHRES '$' marker.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/common/result.h"

namespace mb::imap {

// One "a:b" or "a" element. '*' is stored as kStar so it can be resolved
// against the mailbox size only when the set is used, as RFC 3501 9 asks.
struct SeqRange {
  static constexpr uint32_t kStar = UINT32_MAX;
  uint32_t first = 1;
  uint32_t last = 1;

  bool operator==(const SeqRange&) const = default;
};

class SequenceSet {
 public:
  SequenceSet() = default;

  // Parses "1,3:5,7:*" or "$" (RFC 5182 SEARCHRES). Zero and numbers above
  // 2^32-1 are syntax errors (nz-number).
  static Result<SequenceSet> parse(std::string_view text);
  static SequenceSet single(uint32_t n);
  static SequenceSet range(uint32_t first, uint32_t last);
  static SequenceSet saved();

  // True when the set is "$": the caller substitutes the saved search result.
  bool isSaved() const { return saved_; }
  const std::vector<SeqRange>& ranges() const { return ranges_; }
  bool empty() const { return ranges_.empty() && !saved_; }

  // Membership with '*' meaning maxValue (the highest sequence number or UID
  // in the mailbox). "a:b" is the same as "b:a" (RFC 3501 9, seq-range).
  // Always false for "$": it has to be resolved first.
  bool contains(uint32_t value, uint32_t maxValue) const;
  // Sorted, merged list of [first,last] pairs with '*' resolved; the
  // canonical form the session iterates over. Values above maxValue are
  // clipped, except that "n:*" with n > maxValue still means maxValue (RFC
  // 3501 6.4.8 note: "*" is the largest number in use).
  std::vector<SeqRange> resolve(uint32_t maxValue) const;
  // True when '*' appears anywhere: such sets change meaning as the
  // mailbox grows, which the session must know for UID SEARCH/FETCH.
  bool usesStar() const;

  // Wire form, e.g. "1:3,5,7:*".
  std::string toString() const;

  void add(SeqRange r) { ranges_.push_back(r); }

  bool operator==(const SequenceSet&) const = default;

 private:
  std::vector<SeqRange> ranges_;
  bool saved_ = false;
};

}  // namespace mb::imap
