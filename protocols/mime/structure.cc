// MIME structure parser over raw bytes: headers, boundaries, encapsulated messages.
#include "protocols/mime/structure.h"

#include <algorithm>
#include <cstring>

#include "protocols/mime/header.h"

namespace mb::mime {

namespace {

constexpr std::size_t kNone = static_cast<std::size_t>(-1);
// A multipart with more parts than this keeps the rest in its last part;
// real mail never comes close and the cap bounds memory on hostile input.
constexpr std::size_t kMaxChildren = 10000;

struct Boundary {
  std::string boundary;
  bool closed = false;
};

// Where the entity being parsed stopped: the start of a boundary line of an
// enclosing multipart, or kNone at the end of the message.
struct Stop {
  std::size_t line = kNone;
  std::size_t index = 0;
  bool close = false;
};

class Parser {
 public:
  Parser(std::string_view raw, const LineScan& scan, HeaderFieldSink* topFields)
      : raw_(raw), scan_(scan), topFields_(topFields) {}

  Stop parseEntity(Node& node, std::size_t begin, bool digestMember, int depth) {
    node.headerBegin = begin;
    std::size_t pos = begin;
    Stop stop;
    bool stopped = false;
    for (;;) {
      if (pos >= raw_.size()) {
        node.headerEnd = raw_.size();
        break;
      }
      // A boundary ends the header too (the part then has an empty body).
      if (!bounds_.empty() && boundaryAt(pos, stop)) {
        node.headerEnd = pos;
        headerStoppedAt_ = pos;
        stopped = true;
        break;
      }
      if (raw_[pos] == '\n' || (raw_[pos] == '\r' && pos + 1 < raw_.size() && raw_[pos + 1] == '\n')) {
        node.headerEnd = lineEnd(pos);
        break;
      }
      pos = lineEnd(pos);
    }
    node.info = parseContentInfo(raw_.substr(node.headerBegin, node.headerEnd - node.headerBegin),
                                 depth == 0 ? topFields_ : nullptr);
    const ContentInfo& info = node.info;
    std::size_t bodyBegin = node.headerEnd;
    if (depth < kMaxDepth && info.hasType && iequals(info.type, "multipart")) {
      node.kind = PartKind::Multipart;
    } else if (depth < kMaxDepth && ((info.hasType && iequals(info.type, "message") &&
                                      iequals(info.subtype, "rfc822")) ||
                                     (!info.hasType && digestMember))) {
      node.kind = PartKind::Message;
    }

    if (node.kind == PartKind::Message) {
      node.children.emplace_back();
      Node& child = node.children.back();
      if (stopped) {
        child.headerBegin = child.headerEnd = child.bodyEnd = bodyBegin;
      } else {
        stop = parseEntity(child, bodyBegin, false, depth + 1);
      }
    } else if (!stopped) {
      const std::string* boundary = node.kind == PartKind::Multipart ? info.param("boundary") : nullptr;
      if (boundary && !boundary->empty()) {
        bool digest = iequals(info.subtype, "digest");
        stop = parseMultipartBody(node, bodyBegin, *boundary, digest, depth);
      } else {
        stop = findBoundary(bodyBegin);
      }
    }
    node.bodyEnd = bodyEndFor(stop, bodyBegin);
    node.bodyLines = static_cast<std::uint32_t>(scan_.lfBefore(node.bodyEnd) - scan_.lfBefore(bodyBegin));
    return stop;
  }

 private:
  Stop parseMultipartBody(Node& node, std::size_t bodyBegin, const std::string& boundary, bool digest,
                          int depth) {
    bounds_.push_back(Boundary{boundary, false});
    std::size_t mine = bounds_.size() - 1;
    Stop stop = findBoundary(bodyBegin);
    while (stop.line != kNone && stop.index == mine) {
      if (stop.close) {
        // The epilogue belongs to this multipart until an outer boundary.
        bounds_[mine].closed = true;
        stop = findBoundary(lineEnd(stop.line));
        continue;
      }
      if (node.children.size() >= kMaxChildren) {
        stop = findBoundary(lineEnd(stop.line));
        continue;
      }
      node.children.emplace_back();
      stop = parseEntity(node.children.back(), lineEnd(stop.line), digest, depth + 1);
    }
    bounds_.pop_back();
    return stop;
  }

  // The body stops before the line break that precedes the boundary line,
  // unless a header (which owns its line breaks) ran right up to it: then
  // the enclosing bodies keep that break, as Dovecot counts them.
  std::size_t bodyEndFor(const Stop& stop, std::size_t bodyBegin) const {
    if (stop.line == kNone) return raw_.size();
    if (stop.line == headerStoppedAt_) return stop.line;
    std::size_t end = stop.line;
    if (end > bodyBegin && raw_[end - 1] == '\n') {
      --end;
      if (end > bodyBegin && raw_[end - 1] == '\r') --end;
    }
    return end;
  }

  std::size_t lineEnd(std::size_t pos) const {
    const void* lf = std::memchr(raw_.data() + pos, '\n', raw_.size() - pos);
    return lf ? static_cast<std::size_t>(static_cast<const char*>(lf) - raw_.data()) + 1 : raw_.size();
  }

  // Is the line at pos "--boundary..." for an open multipart? The longest
  // matching boundary wins and trailing text is ignored, as in Dovecot.
  bool boundaryAt(std::size_t pos, Stop& stop) const {
    if (raw_.size() - pos < 2 || raw_[pos] != '-' || raw_[pos + 1] != '-') return false;
    std::string_view line = raw_.substr(pos + 2);
    std::size_t best = kNone;
    for (std::size_t i = 0; i < bounds_.size(); ++i) {
      const Boundary& b = bounds_[i];
      if (b.closed || !line.starts_with(b.boundary)) continue;
      if (best == kNone || bounds_[best].boundary.size() < b.boundary.size()) best = i;
    }
    if (best == kNone) return false;
    std::string_view after = line.substr(bounds_[best].boundary.size());
    stop.line = pos;
    stop.index = best;
    stop.close = after.starts_with("--");
    return true;
  }

  Stop findBoundary(std::size_t pos) const {
    Stop stop;
    if (bounds_.empty()) return stop;
    while (pos < raw_.size()) {
      if (boundaryAt(pos, stop)) return stop;
      pos = scan_.nextDashLine(pos);  // boundaryAt wants "--" at a line start
    }
    return Stop{};
  }

  std::string_view raw_;
  const LineScan& scan_;
  HeaderFieldSink* topFields_;
  std::vector<Boundary> bounds_;
  std::size_t headerStoppedAt_ = kNone;
};

}  // namespace

Node parseStructure(std::string_view raw, const LineScan& scan, HeaderFieldSink* topFields) {
  Node root;
  Parser(raw, scan, topFields).parseEntity(root, 0, false, 0);
  return root;
}

Part toPart(const Node& node) {
  Part part;
  part.kind = node.kind;
  part.headerBegin = node.headerBegin;
  part.headerEnd = node.headerEnd;
  part.bodyEnd = node.bodyEnd;
  part.bodyLines = node.bodyLines;
  const ContentInfo& info = node.info;
  if (node.kind == PartKind::Message) {
    part.mediaType = "message/rfc822";
  } else if (node.kind == PartKind::Multipart) {
    part.mediaType.reserve(10 + info.subtype.size());
    part.mediaType = "multipart/";
    ascii::appendLower(part.mediaType, info.subtype);
  } else if (!info.hasType) {
    part.mediaType = "text/plain";
  } else {
    part.mediaType.reserve(info.type.size() + 1 + info.subtype.size());
    ascii::appendLower(part.mediaType, info.type);
    part.mediaType += '/';
    ascii::appendLower(part.mediaType, info.subtype);
  }
  if (const std::string* cs = info.param("charset")) part.charset = *cs;
  if (info.encoding) ascii::appendLower(part.encoding, *info.encoding);
  const std::string* name = info.dispositionParam("filename");
  if (!name) name = info.dispositionParam("filename*");
  if (!name) name = info.param("name");
  if (!name) name = info.param("name*");
  if (name) part.filename = *name;
  bool dispAttachment = info.disposition && iequals(*info.disposition, "attachment");
  bool isText = part.mediaType.starts_with("text/");
  part.attachment = node.kind == PartKind::Leaf &&
                    (dispAttachment || (!name ? false : !(isText && info.disposition &&
                                                           iequals(*info.disposition, "inline"))));
  part.children.reserve(node.children.size());
  for (const auto& c : node.children) part.children.push_back(toPart(c));
  return part;
}

}  // namespace mb::mime
