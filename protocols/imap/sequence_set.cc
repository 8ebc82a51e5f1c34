// SequenceSet parsing, membership and canonical resolution.
#include "protocols/imap/sequence_set.h"

#include <algorithm>

namespace mb::imap {
namespace {

// seq-number = nz-number / "*"; nz-number has no leading zero (RFC 3501 9).
bool parseSeqNumber(std::string_view s, uint32_t& out) {
  if (s == "*") {
    out = SeqRange::kStar;
    return true;
  }
  if (s.empty() || s.size() > 10 || s[0] == '0') return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > UINT32_MAX) return false;
  out = static_cast<uint32_t>(v);
  return true;
}

}  // namespace

Result<SequenceSet> SequenceSet::parse(std::string_view text) {
  SequenceSet set;
  if (text == "$") {
    set.saved_ = true;
    return set;
  }
  if (text.empty()) return fail(ErrorKind::Syntax, "Empty sequence set");
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    size_t colon = item.find(':');
    SeqRange r;
    if (colon == std::string_view::npos) {
      if (!parseSeqNumber(item, r.first)) return fail(ErrorKind::Syntax, "Invalid sequence set");
      r.last = r.first;
    } else if (!parseSeqNumber(item.substr(0, colon), r.first) || !parseSeqNumber(item.substr(colon + 1), r.last)) {
      return fail(ErrorKind::Syntax, "Invalid sequence set");
    }
    set.ranges_.push_back(r);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return set;
}

SequenceSet SequenceSet::single(uint32_t n) { return range(n, n); }

SequenceSet SequenceSet::range(uint32_t first, uint32_t last) {
  SequenceSet s;
  s.ranges_.push_back({first, last});
  return s;
}

SequenceSet SequenceSet::saved() {
  SequenceSet s;
  s.saved_ = true;
  return s;
}

bool SequenceSet::contains(uint32_t value, uint32_t maxValue) const {
  for (const SeqRange& r : ranges_) {
    uint32_t a = r.first == SeqRange::kStar ? maxValue : r.first;
    uint32_t b = r.last == SeqRange::kStar ? maxValue : r.last;
    if (a > b) std::swap(a, b);
    if (value >= a && value <= b) return true;
  }
  return false;
}

std::vector<SeqRange> SequenceSet::resolve(uint32_t maxValue) const {
  std::vector<SeqRange> out;
  if (maxValue == 0) return out;
  for (const SeqRange& r : ranges_) {
    uint32_t a = r.first == SeqRange::kStar ? maxValue : r.first;
    uint32_t b = r.last == SeqRange::kStar ? maxValue : r.last;
    if (a > b) std::swap(a, b);
    if (a > maxValue) continue;
    out.push_back({a, std::min(b, maxValue)});
  }
  std::sort(out.begin(), out.end(), [](const SeqRange& x, const SeqRange& y) { return x.first < y.first; });
  std::vector<SeqRange> merged;
  for (const SeqRange& r : out) {
    if (!merged.empty() && r.first <= static_cast<uint64_t>(merged.back().last) + 1) {
      merged.back().last = std::max(merged.back().last, r.last);
    } else {
      merged.push_back(r);
    }
  }
  return merged;
}

bool SequenceSet::usesStar() const {
  return std::any_of(ranges_.begin(), ranges_.end(),
                     [](const SeqRange& r) { return r.first == SeqRange::kStar || r.last == SeqRange::kStar; });
}

std::string SequenceSet::toString() const {
  if (saved_) return "$";
  std::string out;
  auto num = [&](uint32_t v) {
    if (v == SeqRange::kStar) out += '*';
    else out += std::to_string(v);
  };
  for (size_t i = 0; i < ranges_.size(); ++i) {
    if (i) out += ',';
    num(ranges_[i].first);
    if (ranges_[i].last != ranges_[i].first) {
      out += ':';
      num(ranges_[i].last);
    }
  }
  return out;
}

}  // namespace mb::imap
