// analyzeMessage and the stored form of its result.
#include "protocols/mime/analysis.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "protocols/mime/bodystructure.h"
#include "protocols/mime/decode.h"
#include "protocols/mime/envelope.h"
#include "protocols/mime/header.h"
#include "protocols/mime/structure.h"

namespace mb::mime {

namespace {

bool anyAttachment(const Part& p) {
  if (p.attachment) return true;
  return std::any_of(p.children.begin(), p.children.end(), anyAttachment);
}

std::string_view trimBlanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

// A raw single-valued field as the quick fields keep it: unfolded, blanks trimmed.
std::string unfoldedTrimmed(std::string_view rawValue) {
  std::string scratch;
  return std::string(trimBlanks(unfoldedView(rawValue, scratch)));
}

}  // namespace

std::string messageIdValue(std::string_view rawValue) { return unfoldedTrimmed(rawValue); }

std::string messageIdOf(std::string_view headerBlock) {
  std::string id;
  HeaderReader reader(headerBlock);
  HeaderField f;
  while (reader.next(f))
    if (f.hasColon && iequals(f.name, "message-id")) id = messageIdValue(f.value);
  return id;
}

namespace {

// One top-level header field into the SEARCH / SORT columns.
void addQuickField(QuickFields& q, const HeaderField& f) {
  if (!f.hasColon) return;
  auto join = [&](std::string& into) {
    if (!into.empty()) into += ", ";
    into += decodeHeaderText(f.value);
  };
  if (iequals(f.name, "message-id")) q.messageId = messageIdValue(f.value);
  else if (iequals(f.name, "subject")) q.subject = decodeHeaderText(f.value);
  else if (iequals(f.name, "date")) q.date = unfoldedTrimmed(f.value);
  else if (iequals(f.name, "from")) join(q.from);
  else if (iequals(f.name, "to")) join(q.to);
  else if (iequals(f.name, "cc")) join(q.cc);
  else if (iequals(f.name, "bcc")) join(q.bcc);
}

// ---- serialization: netstrings "<len>:<bytes>," in a fixed order ----

// The decimal digits of n in buf (to_string made a string per number).
std::string_view decimal(char (&buf)[20], std::uint64_t n) {
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  return {buf, static_cast<std::size_t>(end - buf)};
}

void put(std::string& out, std::string_view s) {
  char buf[21];
  auto [end, ec] = std::to_chars(buf, buf + 20, s.size());
  *end++ = ':';
  out.append(buf, end);
  out += s;
  out += ',';
}

void putNum(std::string& out, std::uint64_t n) {
  // "<len>:<digits>," in one append: numbers are most of what a part writes.
  char digits[20];
  std::string_view d = decimal(digits, n);
  char buf[2 + 1 + 20 + 1];
  char* p = std::to_chars(buf, buf + 2, d.size()).ptr;
  *p++ = ':';
  p = std::copy(d.begin(), d.end(), p);
  *p++ = ',';
  out.append(buf, p);
}

// What putPart writes at most, so the blob is sized once: ten numbers of up
// to 20 digits with their "<len>:...," framing, and the strings.
std::size_t partBytes(const Part& p) {
  std::size_t n = 10 * 24 + 4 * 8 + p.mediaType.size() + p.charset.size() + p.encoding.size() + p.filename.size();
  for (const auto& c : p.children) n += partBytes(c);
  return n;
}

void putPart(std::string& out, const Part& p) {
  putNum(out, static_cast<std::uint64_t>(p.kind));
  putNum(out, p.headerBegin);
  putNum(out, p.headerEnd);
  putNum(out, p.bodyEnd);
  putNum(out, p.bodyLines);
  put(out, p.mediaType);
  put(out, p.charset);
  put(out, p.encoding);
  put(out, p.filename);
  putNum(out, p.attachment ? 1 : 0);
  putNum(out, p.children.size());
  for (const auto& c : p.children) putPart(out, c);
}

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  bool str(std::string& out) {
    std::size_t colon = data_.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon > 20) return false;
    std::uint64_t len = 0;
    auto [p, ec] = std::from_chars(data_.data(), data_.data() + colon, len);
    if (ec != std::errc() || p != data_.data() + colon) return false;
    if (len > data_.size() - colon - 1 || data_.size() - colon - 1 - len < 1) return false;
    if (data_[colon + 1 + len] != ',') return false;
    out.assign(data_.substr(colon + 1, len));
    data_.remove_prefix(colon + 2 + len);
    return true;
  }

  bool num(std::uint64_t& out) {
    std::string s;
    if (!str(s) || s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
  }

  bool part(Part& p, std::uint64_t size, int depth) {
    std::uint64_t kind, hb, he, be, lines, att, count;
    if (depth > kMaxDepth * 2 + 2) return false;
    if (!num(kind) || !num(hb) || !num(he) || !num(be) || !num(lines)) return false;
    if (kind > 2 || hb > he || he > be || be > size || lines > be - he) return false;
    if (!str(p.mediaType) || !str(p.charset) || !str(p.encoding) || !str(p.filename)) return false;
    if (!num(att) || att > 1 || !num(count) || count > data_.size() / 30) return false;
    p.kind = static_cast<PartKind>(kind);
    p.headerBegin = hb;
    p.headerEnd = he;
    p.bodyEnd = be;
    p.bodyLines = static_cast<std::uint32_t>(lines);
    p.attachment = att == 1;
    if (p.kind == PartKind::Leaf && count != 0) return false;
    if (p.kind == PartKind::Message && count != 1) return false;
    p.children.resize(count);
    for (auto& c : p.children) {
      if (!part(c, size, depth + 1)) return false;
    }
    return true;
  }

  bool done() const { return data_.empty(); }

 private:
  std::string_view data_;
};

constexpr std::string_view kMagic = "MBMA1";

}  // namespace

namespace {

MessageAnalysis analyze(std::string_view raw, const LineScan& scan) {
  MessageAnalysis a;
  // ENVELOPE and the SEARCH fields come from the walk of the top-level
  // header that reads its Content-* fields: the header is read once.
  struct TopFields final : HeaderFieldSink {
    explicit TopFields(QuickFields& q) : quick(q) {}
    void field(const HeaderField& f) override {
      addEnvelopeField(envelope, f);
      addQuickField(quick, f);
    }
    Envelope envelope;
    QuickFields& quick;
  } top(a.quick);
  Node root = parseStructure(raw, scan, &top);
  QuickFields& q = a.quick;
  appendEnvelope(a.envelope, top.envelope);
  formatBodyStructures(root, raw, a.bodyStructure, a.body);
  a.root = toPart(root);
  q.size = raw.size();
  q.lines = scan.lfCount();
  q.hasAttachments = anyAttachment(a.root);
  if (!q.date.empty()) q.sentAt = parseDate(q.date);
  return a;
}

}  // namespace

Result<MessageAnalysis> analyzeMessage(std::string_view raw) { return analyze(raw, LineScan(raw)); }

Result<StoredAnalysis> analyzeForStore(std::string_view raw) {
  StoredAnalysis out;
  LineScan scan(raw);
  if (!scan.hasBareLf()) {
    out.analysis = analyze(raw, scan);
    return out;
  }
  out.normalized = normalizeLineEndings(raw);
  out.analysis = analyze(*out.normalized, LineScan(*out.normalized));
  return out;
}

std::string normalizeLineEndings(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() + raw.size() / 32);
  // Line by line (memchr), not a byte at a time.
  std::size_t from = 0;
  while (from < raw.size()) {
    const void* lf = std::memchr(raw.data() + from, '\n', raw.size() - from);
    if (!lf) break;
    std::size_t at = static_cast<std::size_t>(static_cast<const char*>(lf) - raw.data());
    out.append(raw.substr(from, at - from));
    if (at == 0 || raw[at - 1] != '\r') out += '\r';
    out += '\n';
    from = at + 1;
  }
  out.append(raw.substr(from));
  return out;
}

std::string serializeAnalysis(const MessageAnalysis& a) {
  std::string out;
  const QuickFields& q = a.quick;
  out.reserve(a.envelope.size() + a.bodyStructure.size() + a.body.size() + q.messageId.size() + q.subject.size() +
              q.from.size() + q.to.size() + q.cc.size() + q.bcc.size() + q.date.size() + 16 * 24 +
              partBytes(a.root));
  put(out, kMagic);
  put(out, a.envelope);
  put(out, a.bodyStructure);
  put(out, a.body);
  put(out, q.messageId);
  put(out, q.subject);
  put(out, q.from);
  put(out, q.to);
  put(out, q.cc);
  put(out, q.bcc);
  put(out, q.date);
  put(out, q.sentAt ? std::to_string(*q.sentAt) : std::string());
  putNum(out, q.size);
  putNum(out, q.lines);
  putNum(out, q.hasAttachments ? 1 : 0);
  putPart(out, a.root);
  return out;
}

namespace {

constexpr std::string_view kStoredMagic = "MBMA2";

// The tail both forms share: what no column holds.
bool readTail(Reader& r, MessageAnalysis& a, std::uint64_t& att) {
  return r.num(a.quick.size) && r.num(a.quick.lines) && r.num(att) && att <= 1;
}

}  // namespace

std::string serializeStoredAnalysis(const MessageAnalysis& a) {
  std::string out;
  out.reserve(a.body.size() + a.quick.date.size() + 6 * 24 + partBytes(a.root));
  put(out, kStoredMagic);
  put(out, a.body);
  put(out, a.quick.date);
  putNum(out, a.quick.size);
  putNum(out, a.quick.lines);
  putNum(out, a.quick.hasAttachments ? 1 : 0);
  putPart(out, a.root);
  return out;
}

Result<MessageAnalysis> restoreAnalysis(std::string_view blob, AnalysisColumns columns) {
  Reader r(blob);
  std::string magic;
  if (!r.str(magic)) return fail(ErrorKind::Corrupt, "not a stored MIME analysis");
  if (magic == kMagic) return deserializeAnalysis(blob);
  if (magic != kStoredMagic) return fail(ErrorKind::Corrupt, "not a stored MIME analysis (MBMA1/MBMA2)");
  MessageAnalysis a;
  QuickFields& q = a.quick;
  std::uint64_t att = 0;
  if (!r.str(a.body) || !r.str(q.date) || !readTail(r, a, att) || !r.part(a.root, q.size, 0) || !r.done())
    return fail(ErrorKind::Corrupt, "stored MIME analysis is damaged");
  q.hasAttachments = att == 1;
  a.envelope = std::move(columns.envelope);
  a.bodyStructure = std::move(columns.bodyStructure);
  q.messageId = std::move(columns.messageId);
  q.subject = std::move(columns.subject);
  q.from = std::move(columns.from);
  q.to = std::move(columns.to);
  q.cc = std::move(columns.cc);
  q.bcc = std::move(columns.bcc);
  q.sentAt = columns.sentAt;
  return a;
}

Result<MessageAnalysis> deserializeAnalysis(std::string_view data) {
  Reader r(data);
  MessageAnalysis a;
  QuickFields& q = a.quick;
  std::string magic, sentAt;
  std::uint64_t att = 0;
  auto corrupt = [] { return fail(ErrorKind::Corrupt, "stored MIME analysis is damaged"); };
  if (!r.str(magic) || magic != kMagic) return fail(ErrorKind::Corrupt, "not a stored MIME analysis (MBMA1)");
  if (!r.str(a.envelope) || !r.str(a.bodyStructure) || !r.str(a.body) || !r.str(q.messageId) ||
      !r.str(q.subject) || !r.str(q.from) || !r.str(q.to) || !r.str(q.cc) || !r.str(q.bcc) || !r.str(q.date) ||
      !r.str(sentAt) || !readTail(r, a, att))
    return corrupt();
  q.hasAttachments = att == 1;
  if (!sentAt.empty()) {
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(sentAt.data(), sentAt.data() + sentAt.size(), v);
    if (ec != std::errc() || p != sentAt.data() + sentAt.size()) return corrupt();
    q.sentAt = v;
  }
  if (!r.part(a.root, q.size, 0) || !r.done()) return corrupt();
  return a;
}

}  // namespace mb::mime
