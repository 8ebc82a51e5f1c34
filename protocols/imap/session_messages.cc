// IMAP session: the message commands (FETCH, SEARCH, STORE, COPY/MOVE,
// EXPUNGE), answered from the snapshot, the stored analysis and byte slices.
#include <algorithm>
#include <cstring>
#include <iterator>
#include <span>

#include "protocols/imap/session.h"
#include "protocols/imap/session_internal.h"
#include "protocols/mime/analysis.h"
#include "protocols/mime/search.h"
#include "protocols/mime/section.h"

namespace mb::imap {

using namespace detail;

namespace {

constexpr size_t kBatch = 256;  // messages per metadata query

bool needsBytes(const FetchAtt& a) {
  switch (a.kind) {
    case FetchAtt::Kind::Rfc822:
    case FetchAtt::Kind::Rfc822Header:
    case FetchAtt::Kind::Rfc822Text:
    case FetchAtt::Kind::BodySection:
    case FetchAtt::Kind::Binary:
    case FetchAtt::Kind::BinarySize:
      return true;
    default:
      return false;
  }
}

// BODY[] / BODY.PEEK[] (with or without a partial): the stored bytes as they are.
bool wholeMessage(const FetchAtt& a) {
  return a.kind == FetchAtt::Kind::BodySection && a.section.part.empty() && a.section.text == Section::Text::None;
}

bool needsAnalysis(const FetchAtt& a) {
  switch (a.kind) {
    case FetchAtt::Kind::BodySection:
      return !wholeMessage(a);
    case FetchAtt::Kind::Envelope:
    case FetchAtt::Kind::Body:
    case FetchAtt::Kind::BodyStructure:
    case FetchAtt::Kind::Binary:
    case FetchAtt::Kind::BinarySize:
    case FetchAtt::Kind::Rfc822Header:
    case FetchAtt::Kind::Rfc822Text:
      return true;
    default:
      return false;
  }
}

// Items a message without its body (bodies fetched on demand) can answer
// from its stored header block: those are fetched without asking for the body.
bool headerOnlyItem(const FetchAtt& a) {
  if (a.kind == FetchAtt::Kind::Envelope || a.kind == FetchAtt::Kind::Rfc822Header) return true;
  if (a.kind != FetchAtt::Kind::BodySection || !a.section.part.empty()) return false;
  return a.section.text == Section::Text::Header || a.section.text == Section::Text::HeaderFields ||
         a.section.text == Section::Text::HeaderFieldsNot;
}

bool needsBody(const FetchAtt& a) { return (needsBytes(a) || needsAnalysis(a)) && !headerOnlyItem(a); }

// SEARCH keys that read the body (TEXT: the header too, from the bytes).
bool searchesBody(const SearchKey& k) {
  if (k.kind == SearchKey::Kind::Body || k.kind == SearchKey::Kind::Text) return true;
  for (const auto& ch : k.children)
    if (searchesBody(ch)) return true;
  return false;
}

bool setsSeen(const FetchAtt& a) {
  return (a.kind == FetchAtt::Kind::Rfc822 || a.kind == FetchAtt::Kind::Rfc822Text ||
          ((a.kind == FetchAtt::Kind::BodySection || a.kind == FetchAtt::Kind::Binary) && !a.peek));
}

std::string partPath(const std::vector<uint32_t>& part) {
  std::string out;
  for (uint32_t p : part) {
    if (!out.empty()) out += '.';
    out += std::to_string(p);
  }
  return out;
}

// "1.HEADER.FIELDS (FROM TO)" as echoed in the response (RFC 3501 7.4.2).
std::string sectionName(const Section& s) {
  std::string out = partPath(s.part);
  auto add = [&](const char* t) {
    if (!out.empty()) out += '.';
    out += t;
  };
  switch (s.text) {
    case Section::Text::None: break;
    case Section::Text::Header: add("HEADER"); break;
    case Section::Text::Text: add("TEXT"); break;
    case Section::Text::Mime: add("MIME"); break;
    case Section::Text::HeaderFields:
    case Section::Text::HeaderFieldsNot: {
      add(s.text == Section::Text::HeaderFields ? "HEADER.FIELDS" : "HEADER.FIELDS.NOT");
      out += " (";
      for (size_t i = 0; i < s.fields.size(); ++i) {
        if (i) out += ' ';
        ResponseWriter w;
        w.astring(s.fields[i]);
        out += w.take();
      }
      out += ')';
      break;
    }
  }
  return out;
}

mime::SectionSpec toSpec(const Section& s) {
  mime::SectionSpec spec;
  spec.path = s.part;
  spec.fields = s.fields;
  switch (s.text) {
    case Section::Text::None: spec.text = mime::SectionText::None; break;
    case Section::Text::Header: spec.text = mime::SectionText::Header; break;
    case Section::Text::HeaderFields: spec.text = mime::SectionText::HeaderFields; break;
    case Section::Text::HeaderFieldsNot: spec.text = mime::SectionText::HeaderFieldsNot; break;
    case Section::Text::Text: spec.text = mime::SectionText::Text; break;
    case Section::Text::Mime: spec.text = mime::SectionText::Mime; break;
  }
  return spec;
}

std::string_view applyPartial(std::string_view data, const std::optional<Partial>& p) {
  if (!p) return data;
  if (p->offset >= data.size()) return {};
  return data.substr(p->offset, p->length);
}

// Whether `name` occurs in `text`, ASCII case-insensitively. A header block
// without it has no such field, so SEARCH HEADER need not parse the block.
bool mentions(std::string_view text, std::string_view name) {
  size_t n = name.size();
  if (n == 0) return true;
  if (n > text.size()) return false;
  const char* base = text.data();
  size_t last = text.size() - n;  // the last position a match can start at
  auto next = [&](char ch, size_t from) -> size_t {
    if (from > last) return text.size();
    const void* p = std::memchr(base + from, ch, last - from + 1);
    return p ? static_cast<size_t>(static_cast<const char*>(p) - base) : text.size();
  };
  char lo = static_cast<char>(std::tolower(static_cast<unsigned char>(name[0])));
  char up = static_cast<char>(std::toupper(static_cast<unsigned char>(name[0])));
  size_t a = next(lo, 0), b = lo == up ? text.size() : next(up, 0);
  while (a <= last || b <= last) {
    size_t p = std::min(a, b);
    if (strncasecmp(base + p, name.data(), n) == 0) return true;
    if (p == a) a = next(lo, p + 1);
    if (p == b) b = next(up, p + 1);
  }
  return false;
}

int64_t dayOf(int64_t unixSeconds) { return unixSeconds >= 0 ? unixSeconds / 86400 : (unixSeconds - 86399) / 86400; }

}  // namespace

// ---------------------------------------------------------------- sets

bool Session::resolve(const std::string& tag, const SequenceSet& set, bool uid, std::vector<uint32_t>& seqs) {
  seqs.clear();
  if (set.isSaved()) {
    // RFC 5182 2.1: "$" is the saved result, for UID and non-UID commands
    // alike, minus what was expunged since.
    for (uint32_t u : savedUids_)
      if (uint32_t s = seqOf(u)) seqs.push_back(s);
    return true;
  }
  if (uid) {
    if (uids_.empty()) return true;
    for (const auto& r : set.resolve(uids_.back())) {
      auto it = std::lower_bound(uids_.begin(), uids_.end(), r.first);
      for (; it != uids_.end() && *it <= r.last; ++it) seqs.push_back(static_cast<uint32_t>(it - uids_.begin()) + 1);
    }
  } else {
    uint32_t n = static_cast<uint32_t>(uids_.size());
    for (const auto& r : set.ranges()) {
      uint32_t a = r.first == SeqRange::kStar ? n : r.first;
      uint32_t b = r.last == SeqRange::kStar ? n : r.last;
      if (a == 0 || b == 0 || a > n || b > n) {
        tagged(tag, "BAD", "", "invalid message sequence number");
        return false;
      }
    }
    for (const auto& r : set.resolve(n))
      for (uint32_t s = r.first; s <= r.last && s <= n; ++s) seqs.push_back(s);
  }
  std::sort(seqs.begin(), seqs.end());
  seqs.erase(std::unique(seqs.begin(), seqs.end()), seqs.end());
  return true;
}

bool Session::checkReadWrite(const std::string& tag) {
  if (!readOnly_) return true;
  tagged(tag, "NO", "READ-ONLY", "mailbox is read-only");
  return false;
}

// ---------------------------------------------------------------- FETCH

void Session::cmdFetch(const std::string& tag, const FetchCmd& cmd) {
  std::vector<uint32_t> seqs;
  if (!resolve(tag, cmd.set, cmd.uid, seqs)) return;
  FetchState st;
  st.tag = tag;
  st.cmd = cmd;
  st.seqs = std::move(seqs);
  if (cmd.changedSince || cmd.vanished) condstore_ = true;
  st.structuresOnly = false;
  bool otherAnalysis = false;
  for (const auto& a : cmd.items) {
    if (a.kind == FetchAtt::Kind::ModSeq) condstore_ = true;
    if (setsSeen(a) && !readOnly_) st.setSeen = true;
    st.bodyItems = st.bodyItems || needsBody(a);
    st.headerItems = st.headerItems || headerOnlyItem(a);
    if (a.kind == FetchAtt::Kind::Envelope || a.kind == FetchAtt::Kind::BodyStructure)
      st.structuresOnly = true;
    else if (needsAnalysis(a))
      otherAnalysis = true;
  }
  // ENVELOPE / BODYSTRUCTURE alone come from the stored answers, read per
  // batch, without the analysis.
  if (otherAnalysis) st.structuresOnly = false;
  if (cmd.vanished) {
    if (!cmd.uid || !cmd.changedSince || !qresync_) return tagged(tag, "BAD", "", "VANISHED needs UID FETCH, CHANGEDSINCE and QRESYNC");
    auto gone = backend_.vanishedSince(selectedId_, *cmd.changedSince);
    if (gone) {
      std::vector<uint32_t> v;
      uint32_t maxUid = uids_.empty() ? 0 : uids_.back();
      for (uint32_t u : *gone)
        if (cmd.set.contains(u, std::max(maxUid, u))) v.push_back(u);
      if (!v.empty()) {
        w_.untagged().atom("VANISHED").raw(" (EARLIER)").atom(compactSet(v)).end();
        out_ += w_.take();
      }
    }
  }
  fetch_ = std::move(st);
  runFetch();
}

void Session::resume() {
  if (fetch_ && !bodies_) runFetch();
  process();
}

bool Session::askBodies(std::vector<uint32_t> uids, bool askedBefore) {
  if (askedBefore) return false;  // the host said done, yet they are still missing
  bodies_ = BodyRequest{selectedId_, std::move(uids)};
  return true;
}

void Session::bodiesDone(Status result) {
  if (!bodies_) return;
  bodies_.reset();
  if (state_ == State::Logout) {  // BYE went out meanwhile (shutdown, autologout)
    fetch_.reset();
    search_.reset();
    return;
  }
  auto unavailable = [&](const std::string& tag) {
    tagged(tag, "NO", "UNAVAILABLE", "message bodies could not be fetched from the provider: " + result.error().message);
  };
  if (fetch_) {
    if (!result) {
      std::string tag = fetch_->tag;
      fetch_.reset();
      unavailable(tag);
    } else {
      runFetch();
    }
  } else if (search_) {
    PendingSearch ps = std::move(*search_);
    search_.reset();
    if (!result) {
      if (ps.cmd.returnOptions)
        for (SearchReturn r : *ps.cmd.returnOptions)
          if (r == SearchReturn::Save) savedUids_.clear();  // RFC 5182 2.1: a failed SAVE leaves "$" empty
      unavailable(ps.tag);
    } else {
      cmdSearch(ps.tag, ps.cmd, true);
    }
  }
  process();
}

void Session::runFetch() {
  FetchState& st = *fetch_;
  while (st.next < st.seqs.size()) {
    if (out_.size() >= options_.outputHighWater) return;  // the host drains, then resume()
    // Message bytes are appended straight to out_, which starts empty after
    // each drain: room for a high-water mark's worth at once, instead of
    // regrowing (and copying what it holds) message after message.
    if (st.seqs.size() - st.next >= 64 && out_.capacity() < options_.outputHighWater)
      out_.reserve(options_.outputHighWater + options_.outputHighWater / 2);
    size_t n = std::min(kBatch, st.seqs.size() - st.next);
    std::vector<uint32_t> batchUids;
    for (size_t i = 0; i < n; ++i) batchUids.push_back(uids_[st.seqs[st.next + i] - 1]);
    // Messages whose body is not here yet: the batch waits for them when an
    // item needs the body, else their header items come from the stored
    // header block.
    std::vector<StoredHeader> headerOnly;
    std::vector<StoredStructure> structures;
    if (st.structuresOnly) {
      // A failure here only costs speed: fetchOne falls back to the analysis.
      if (auto r = backend_.structures(selectedId_, batchUids)) structures = std::move(*r);
    }
    if (st.bodyItems || st.headerItems) {
      auto bodiless = backend_.bodilessUids(selectedId_, batchUids);
      if (!bodiless) {
        std::string tag = st.tag;
        fetch_.reset();
        return failed(tag, bodiless.error(), "FETCH");
      }
      if (st.structuresOnly && st.bodyItems) {
        // BODYSTRUCTURE is the only item that needs a body: a message whose
        // provider's BODYSTRUCTURE is stored answers without it.
        std::erase_if(*bodiless,
                      [&](uint32_t u) { return std::ranges::binary_search(structures, u, {}, &StoredStructure::uid); });
      }
      if (!bodiless->empty() && st.bodyItems) {
        // Bodies that could not be had earlier in this command are not asked
        // for again (a batch resumed after the output drained).
        std::vector<uint32_t> ask;
        std::set_difference(bodiless->begin(), bodiless->end(), st.unavailable.begin(), st.unavailable.end(),
                            std::back_inserter(ask));
        if (!ask.empty()) {
          if (askBodies(ask, st.bodiesAskedAt == st.next)) {
            st.bodiesAskedAt = st.next;
            return;  // the host fetches them, then bodiesDone()
          }
          // The host settled them and they are still missing (gone upstream,
          // another message now): the rest is answered, these are left out
          // and the command ends NO (RFC 2180 4.1.3: the data that can be
          // had, then NO), so one lost body does not hide the others.
          std::vector<uint32_t> merged;
          std::merge(st.unavailable.begin(), st.unavailable.end(), ask.begin(), ask.end(), std::back_inserter(merged));
          st.unavailable = std::move(merged);
        }
        bodiless->clear();
      }
      if (!bodiless->empty()) {
        auto h = backend_.topHeaders(selectedId_, *bodiless);
        if (!h) {
          std::string tag = st.tag;
          fetch_.reset();
          return failed(tag, h.error(), "FETCH");
        }
        headerOnly = std::move(*h);
      }
    }
    auto metas = backend_.messages(selectedId_, batchUids);
    if (!metas) {
      std::string tag = st.tag;
      fetch_.reset();
      return failed(tag, metas.error(), "FETCH");
    }
    size_t si = 0;
    if (st.setSeen) {
      std::vector<uint32_t> unseen;
      for (const auto& m : *metas)
        if (!(m.flags & kSeen)) unseen.push_back(m.uid);
      if (!unseen.empty()) {
        auto r = backend_.storeFlags(selectedId_, unseen, FlagOp::Add, kSeen, {}, std::nullopt);
        if (r) {
          for (auto& m : *metas)
            for (const auto& c : r->current)
              if (c.uid == m.uid) {
                m.flags = c.flags;
                m.modseq = c.modseq;
              }
        }
        // The FLAGS the client must see come out in the FETCH itself.
        for (uint32_t u : unseen) {
          for (auto& m : *metas)
            if (m.uid == u) m.flags |= 0x80000000u;  // marker: flags changed by this FETCH
        }
      }
    }
    size_t mi = 0, hi = 0;
    for (size_t i = 0; i < n; ++i) {
      uint32_t seq = st.seqs[st.next + i];
      uint32_t uid = uids_[seq - 1];
      while (mi < metas->size() && (*metas)[mi].uid < uid) ++mi;
      if (mi >= metas->size() || (*metas)[mi].uid != uid) continue;  // expunged meanwhile (RFC 2180 4.1.2)
      if (std::binary_search(st.unavailable.begin(), st.unavailable.end(), uid)) continue;
      if (st.cmd.changedSince && (*metas)[mi].modseq <= *st.cmd.changedSince) continue;
      while (si < structures.size() && structures[si].uid < uid) ++si;
      const StoredStructure* stored = si < structures.size() && structures[si].uid == uid ? &structures[si] : nullptr;
      while (hi < headerOnly.size() && headerOnly[hi].uid < uid) ++hi;
      const std::string* header = hi < headerOnly.size() && headerOnly[hi].uid == uid ? &headerOnly[hi].header : nullptr;
      FetchResult fr = fetchOne(seq, (*metas)[mi], stored, header);
      if (fr != FetchResult::Ok) {
        std::string tag = st.tag;
        fetch_.reset();
        if (fr == FetchResult::UnknownCte)  // RFC 3516 4.3
          return tagged(tag, "NO", "UNKNOWN-CTE", "cannot decode the content transfer encoding");
        return tagged(tag, "NO", "SERVERBUG", "FETCH failed: message data unreadable");
      }
      if (out_.size() >= options_.outputHighWater && i + 1 < n) {
        st.next += i + 1;  // the rest of this batch is read again on resume()
        return;
      }
    }
    st.next += n;
  }
  std::string tag = st.tag;
  bool uid = st.cmd.uid;
  size_t unavailable = st.unavailable.size();
  fetch_.reset();
  flushUpdates(uid);
  if (unavailable)
    return tagged(tag, "NO", "UNAVAILABLE",
                  std::to_string(unavailable) + " message bodies could not be fetched from the provider");
  tagged(tag, "OK", "", uid ? "UID FETCH completed" : "FETCH completed");
}

Session::FetchResult Session::fetchOne(uint32_t seq, MessageInfo& m, const StoredStructure* stored,
                                       const std::string* header) {
  const FetchCmd& cmd = fetch_->cmd;
  bool flagsChanged = (m.flags & 0x80000000u) != 0;
  m.flags &= ~0x80000000u;
  bool wantBytes = false, wantAnalysis = false, wantFlags = false, wantUid = cmd.uid, wantModseq = cmd.changedSince.has_value();
  for (const auto& a : cmd.items) {
    wantBytes = wantBytes || needsBytes(a);
    wantAnalysis = wantAnalysis || needsAnalysis(a);
    wantFlags = wantFlags || a.kind == FetchAtt::Kind::Flags;
    wantUid = wantUid || a.kind == FetchAtt::Kind::Uid;
    wantModseq = wantModseq || a.kind == FetchAtt::Kind::ModSeq;
  }
  if (stored && fetch_->structuresOnly && !header) wantAnalysis = false;
  // BODY[] alone (no partial, no analysis): the bytes go from storage
  // straight into the output, in the literal.
  bool streamBody = wantBytes && !wantAnalysis && m.size > 0;
  for (const auto& a : cmd.items)
    if (needsBytes(a) && !(wholeMessage(a) && !a.partial)) streamBody = false;
  if (streamBody) wantBytes = false;
  std::string bytes;
  std::optional<mime::MessageAnalysis> analysis;
  if (header && (wantBytes || wantAnalysis)) {
    // No body yet, and only header items asked for: the header block is
    // the message as far as they can tell (a message without a body).
    bytes = *header;
    auto d = mime::analyzeMessage(bytes);
    if (!d) return FetchResult::Unreadable;
    analysis = std::move(*d);
    wantBytes = wantAnalysis = false;
    streamBody = false;
  }
  if (wantBytes) {
    if (!backend_.messageBytes(selectedId_, m.uid, bytes)) return FetchResult::Unreadable;
  }
  if (wantAnalysis) {
    auto a = backend_.messageAnalysis(selectedId_, m.uid);
    std::optional<mime::MessageAnalysis> parsed;
    if (a) parsed = std::move(*a);
    if (!parsed) {
      // No stored analysis (or a damaged one): compute it from the bytes.
      if (!wantBytes) {
        if (!backend_.messageBytes(selectedId_, m.uid, bytes)) return FetchResult::Unreadable;
        wantBytes = true;
      }
      auto d = mime::analyzeMessage(bytes);
      if (!d) return FetchResult::Unreadable;
      parsed = std::move(*d);
    }
    analysis = std::move(parsed);
  }

  // The response goes straight into out_ (no copy of the literals).
  size_t mark = out_.size();
  ResponseWriter& w = w_.appendTo(std::move(out_));
  out_.clear();
  w.untagged().number(seq).atom("FETCH").beginList();
  if (wantUid) w.atom("UID").number(m.uid);
  for (const auto& a : cmd.items) {
    switch (a.kind) {
      case FetchAtt::Kind::Uid:
        break;  // written first
      case FetchAtt::Kind::Flags:
        w.atom("FLAGS").atomList(flagAtoms(m.flags, m.keywords));
        break;
      case FetchAtt::Kind::InternalDate:
        w.atom("INTERNALDATE").quoted(formatInternalDate(m.internalDate));
        break;
      case FetchAtt::Kind::Rfc822Size:
        w.atom("RFC822.SIZE").number(m.size);
        break;
      case FetchAtt::Kind::Envelope:
        w.atom("ENVELOPE").atom(analysis ? analysis->envelope : stored->envelope);
        break;
      case FetchAtt::Kind::Body:
        w.atom("BODY").atom(analysis->body);
        break;
      case FetchAtt::Kind::BodyStructure:
        w.atom("BODYSTRUCTURE").atom(analysis ? analysis->bodyStructure : stored->bodyStructure);
        break;
      case FetchAtt::Kind::ModSeq:
        break;  // written last
      case FetchAtt::Kind::Rfc822:
        w.atom("RFC822").literal(bytes);
        break;
      case FetchAtt::Kind::Rfc822Header: {
        std::string_view raw = bytes;
        w.atom("RFC822.HEADER").literal(raw.substr(0, std::min(raw.size(), analysis->root.headerEnd)));
        break;
      }
      case FetchAtt::Kind::Rfc822Text: {
        std::string_view raw = bytes;
        w.atom("RFC822.TEXT").literal(raw.substr(std::min(analysis->root.headerEnd, raw.size())));
        break;
      }
      case FetchAtt::Kind::BodySection: {
        if (streamBody) {
          std::string& buf = w.atom("BODY[]").literalBuffer(m.size);
          size_t before = buf.size();
          if (!backend_.messageBytes(selectedId_, m.uid, buf) || buf.size() - before != m.size) {
            out_ = w.take();
            out_.resize(mark);  // drop the half-built response
            return FetchResult::Unreadable;
          }
          break;
        }
        std::string data;
        std::string_view whole = bytes;
        if (!wholeMessage(a)) {
          auto resolved = mime::resolveSection(analysis->root, toSpec(a.section));
          whole = {};
          if (resolved) whole = data = mime::extractSection(bytes, *resolved);
        }
        std::string name = "BODY[" + sectionName(a.section) + "]";
        if (a.partial) name += "<" + std::to_string(a.partial->offset) + ">";
        // Always a literal, as Dovecot does: clients such as curl look for
        // one, and the section's bytes are the client's to interpret.
        std::string_view d = applyPartial(whole, a.partial);
        // (literal8 is only for BINARY, RFC 3516 4.3; stored bytes go as they are.)
        if (d.empty())
          w.atom(name).quoted("");
        else
          w.atom(name).literal(d);
        break;
      }
      case FetchAtt::Kind::Binary:
      case FetchAtt::Kind::BinarySize: {
        std::string path = partPath(a.section.part);
        auto decoded = mime::extractBinary(bytes, analysis->root, path);
        if (!decoded && decoded.error().respCode == "UNKNOWN-CTE") {
          out_ = w.take();
          out_.resize(mark);  // drop the half-built response line
          return FetchResult::UnknownCte;
        }
        if (!decoded) decoded = std::string();  // a part that is not there reads as empty, like BODY[]
        if (a.kind == FetchAtt::Kind::BinarySize) {
          w.atom("BINARY.SIZE[" + path + "]").number(decoded->size());
        } else {
          std::string name = "BINARY[" + path + "]";
          if (a.partial) name += "<" + std::to_string(a.partial->offset) + ">";
          std::string_view d = applyPartial(*decoded, a.partial);
          if (d.find('\0') != std::string_view::npos)
            w.atom(name).literal8(d);
          else
            w.atom(name).literal(d);
        }
        break;
      }
    }
  }
  if (flagsChanged && !wantFlags) w.atom("FLAGS").atomList(flagAtoms(m.flags, m.keywords));
  if (wantModseq || (condstore_ && flagsChanged)) w.atom("MODSEQ").beginList().number(m.modseq).endList();
  out_ = w.endList().end().take();
  return FetchResult::Ok;
}

// ---------------------------------------------------------------- SEARCH

namespace {

// A HEADER key answered from Backend::headerFieldValues: which of the
// command's fields it names, and its needle folded once for every message.
struct HeaderPlan {
  const SearchKey* key = nullptr;
  size_t field = 0;
  std::string foldedNeedle;
};

std::string lowerAscii(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

}  // namespace

struct Session::SearchContext {
  uint32_t seq = 0;
  const MessageInfo* meta = nullptr;
  const std::string* topHeader = nullptr;  // stored header block, when the batch read one
  const std::vector<HeaderPlan>* plans = nullptr;
  std::span<const std::string* const> packed;  // per field of the plans: this message's values, or null
  std::optional<HeaderFields> header;
  std::optional<std::string> bytes;
  std::optional<mime::MessageAnalysis> analysis;
  std::optional<std::string> bodyText;
  bool failed = false;
};

bool Session::matches(const SearchKey& k, SearchContext& c) {
  using K = SearchKey::Kind;
  const MessageInfo& m = *c.meta;
  auto header = [&]() -> const HeaderFields* {
    if (!c.header) {
      auto h = backend_.headerFields(selectedId_, m.uid);
      if (!h) {
        c.failed = true;
        c.header = HeaderFields{};
      } else {
        c.header = std::move(*h);
      }
    }
    return &*c.header;
  };
  auto raw = [&]() -> std::string_view {
    if (!c.bytes) {
      c.bytes.emplace();
      if (!backend_.messageBytes(selectedId_, m.uid, *c.bytes)) c.failed = true;
    }
    return *c.bytes;
  };
  auto analysis = [&]() -> const mime::MessageAnalysis& {
    if (!c.analysis) {
      if (auto a = backend_.messageAnalysis(selectedId_, m.uid)) c.analysis = std::move(*a);
      if (!c.analysis) {
        auto d = mime::analyzeMessage(raw());
        c.analysis = d ? std::move(*d) : mime::MessageAnalysis{};
      }
    }
    return *c.analysis;
  };
  auto body = [&]() -> std::string_view {
    if (!c.bodyText) c.bodyText = mime::bodyText(raw(), analysis().root);
    return *c.bodyText;
  };
  auto dateKey = [&](int64_t day, int64_t target, K before, K on) {
    if (k.kind == before) return day < target;
    if (k.kind == on) return day == target;
    return day >= target;
  };
  auto keyDay = [&] { return daysFromCivil(k.date.year, static_cast<unsigned>(k.date.month), static_cast<unsigned>(k.date.day)); };
  auto hasKw = [&](const std::string& kw) {
    for (const auto& x : m.keywords)
      if (strcasecmp(x.c_str(), kw.c_str()) == 0) return true;
    return false;
  };
  switch (k.kind) {
    case K::And:
      for (const auto& ch : k.children)
        if (!matches(ch, c)) return false;
      return true;
    case K::Or: return matches(k.children.at(0), c) || matches(k.children.at(1), c);
    case K::Not: return !matches(k.children.at(0), c);
    case K::All: return true;
    case K::Answered: return m.flags & kAnswered;
    case K::Unanswered: return !(m.flags & kAnswered);
    case K::Deleted: return m.flags & kDeleted;
    case K::Undeleted: return !(m.flags & kDeleted);
    case K::Draft: return m.flags & kDraft;
    case K::Undraft: return !(m.flags & kDraft);
    case K::Flagged: return m.flags & kFlagged;
    case K::Unflagged: return !(m.flags & kFlagged);
    case K::Seen: return m.flags & kSeen;
    case K::Unseen: return !(m.flags & kSeen);
    case K::Recent:
    case K::New: return false;  // no session ever sees \Recent here
    case K::Old: return true;
    case K::Keyword: return hasKw(k.text);
    case K::Unkeyword: return !hasKw(k.text);
    case K::Larger: return m.size > k.number;
    case K::Smaller: return m.size < k.number;
    case K::ModSeq: return m.modseq >= k.number;
    case K::Uid:
    case K::SequenceSet:
      if (k.set.isSaved()) return std::binary_search(savedUids_.begin(), savedUids_.end(), m.uid);  // RFC 5182 2.1
      if (k.kind == K::Uid) return k.set.contains(m.uid, uids_.empty() ? 0 : uids_.back());
      return k.set.contains(c.seq, static_cast<uint32_t>(uids_.size()));
    case K::Before:
    case K::On:
    case K::Since: return dateKey(dayOf(m.internalDate), keyDay(), K::Before, K::On);
    case K::SentBefore:
    case K::SentOn:
    case K::SentSince: {
      auto sent = header()->sentAt;
      if (!sent) return false;
      return dateKey(dayOf(*sent), keyDay(), K::SentBefore, K::SentOn);
    }
    case K::From: return mime::containsIgnoreCase(header()->from, k.text);
    case K::To: return mime::containsIgnoreCase(header()->to, k.text);
    case K::Cc: return mime::containsIgnoreCase(header()->cc, k.text);
    case K::Bcc: return mime::containsIgnoreCase(header()->bcc, k.text);
    case K::Subject: return mime::containsIgnoreCase(header()->subject, k.text);
    case K::Header: {
      std::string field = lowerAscii(k.text);
      if (field == "message-id") return mime::containsIgnoreCase(header()->messageId, k.value);
      if (c.plans) {
        for (const auto& p : *c.plans) {
          if (p.key != &k) continue;
          if (const std::string* v = c.packed[p.field]) return mime::packedContains(*v, p.foldedNeedle);
          break;
        }
      }
      if (c.topHeader && !mentions(*c.topHeader, k.text)) return false;
      auto values = mime::headerValues(c.topHeader ? std::string_view(*c.topHeader) : mime::topHeader(raw(), analysis().root), k.text);
      for (const auto& v : values)
        if (mime::containsIgnoreCase(v, k.value)) return true;
      return false;
    }
    case K::Body: return mime::containsIgnoreCase(body(), k.text);
    case K::Text: {
      // Header fields decoded like the header keys, so an RFC 2047 subject
      // is found by its text (RFC 3501 6.4.4 TEXT: "header or body").
      std::string hdr = mime::headerText(mime::topHeader(raw(), analysis().root));
      return mime::containsIgnoreCase(hdr, k.text) || mime::containsIgnoreCase(body(), k.text);
    }
  }
  return false;
}

void Session::cmdSearch(const std::string& tag, const SearchCmd& cmd, bool bodiesAsked) {
  // RFC 9051 6.4.4 / 7.3.4: IMAP4rev2 has no SEARCH response; a SEARCH
  // without RETURN answers ESEARCH as if RETURN (ALL) had been given.
  std::optional<std::vector<SearchReturn>> returnOptions = cmd.returnOptions;
  if (!returnOptions && rev2_) returnOptions = std::vector<SearchReturn>{SearchReturn::All};
  bool save = false, saveAll = false, saveMin = false, saveMax = false;
  if (returnOptions) {
    for (SearchReturn r : *returnOptions) {
      save = save || r == SearchReturn::Save;
      saveAll = saveAll || r == SearchReturn::All || r == SearchReturn::Count;
      saveMin = saveMin || r == SearchReturn::Min;
      saveMax = saveMax || r == SearchReturn::Max;
    }
  }
  if (cmd.charset) {
    std::string cs = *cmd.charset;
    for (auto& ch : cs) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    if (cs != "UTF-8" && cs != "US-ASCII") {
      if (save) savedUids_.clear();  // RFC 5182 2.1: a failed SAVE leaves "$" empty
      return tagged(tag, "NO", "BADCHARSET (UTF-8 US-ASCII)", "unsupported charset");
    }
  }
  bool usesModseq = false;
  // HEADER keys (Message-ID aside: a stored column) ask the backend for the
  // values of their fields, a batch at a time.
  std::vector<std::string> fields;
  std::vector<HeaderPlan> plans;
  std::vector<const SearchKey*> stack{&cmd.key};
  while (!stack.empty()) {
    const SearchKey* k = stack.back();
    stack.pop_back();
    if (k->kind == SearchKey::Kind::ModSeq) usesModseq = true;
    if (k->kind == SearchKey::Kind::Header) {
      std::string field = lowerAscii(k->text);
      if (field != "message-id") {
        auto at = std::find(fields.begin(), fields.end(), field);
        if (at == fields.end()) at = fields.insert(at, std::move(field));
        plans.push_back({k, static_cast<size_t>(at - fields.begin()), mime::foldForSearch(k->value)});
      }
    }
    for (const auto& ch : k->children) stack.push_back(&ch);
  }
  if (usesModseq) condstore_ = true;
  if (searchesBody(cmd.key)) {
    // BODY/TEXT read every message's body: those not here yet first.
    auto bodiless = backend_.bodilessUids(selectedId_, uids_);
    if (!bodiless) {
      if (save) savedUids_.clear();
      return failed(tag, bodiless.error(), "SEARCH");
    }
    if (!bodiless->empty()) {
      if (!askBodies(std::move(*bodiless), bodiesAsked)) {
        if (save) savedUids_.clear();
        return tagged(tag, "NO", "UNAVAILABLE", "message bodies could not be fetched from the provider");
      }
      search_ = PendingSearch{tag, cmd};
      return;  // bodiesDone() runs it again
    }
  }
  std::vector<uint32_t> hits;
  uint64_t maxModseq = 0;
  for (size_t i = 0; i < uids_.size(); i += kBatch) {
    std::span<const uint32_t> batch(uids_.data() + i, std::min(kBatch, uids_.size() - i));
    auto metas = backend_.messages(selectedId_, batch);
    if (!metas) {
      if (save) savedUids_.clear();
      return failed(tag, metas.error(), "SEARCH");
    }
    // HEADER keys take the fields' values from the backend; for a message
    // it has none of (or after a failed read) they read the stored header
    // blocks of the batch at once, and a message without one its bytes.
    std::vector<std::vector<FieldValues>> values(fields.size());
    bool needBlocks = false;
    for (size_t f = 0; f < fields.size(); ++f) {
      if (auto r = backend_.headerFieldValues(selectedId_, fields[f], batch)) values[f] = std::move(*r);
      if (values[f].size() < metas->size()) needBlocks = true;
    }
    std::vector<StoredHeader> headers;
    if (needBlocks) {
      if (auto r = backend_.topHeaders(selectedId_, batch)) headers = std::move(*r);
    }
    std::vector<const std::string*> packed(fields.size() * metas->size(), nullptr);
    std::vector<size_t> vi(fields.size(), 0);
    size_t hi = 0, mi = 0;
    for (const auto& m : *metas) {
      SearchContext ctx;
      ctx.seq = seqOf(m.uid);
      ctx.meta = &m;
      while (hi < headers.size() && headers[hi].uid < m.uid) ++hi;
      if (hi < headers.size() && headers[hi].uid == m.uid) ctx.topHeader = &headers[hi].header;
      if (!plans.empty()) {
        std::span<const std::string*> mine(packed.data() + mi * fields.size(), fields.size());
        for (size_t f = 0; f < fields.size(); ++f) {
          auto& v = values[f];
          while (vi[f] < v.size() && v[vi[f]].uid < m.uid) ++vi[f];
          if (vi[f] < v.size() && v[vi[f]].uid == m.uid) mine[f] = &v[vi[f]].packed;
        }
        ctx.plans = &plans;
        ctx.packed = mine;
      }
      ++mi;
      if (matches(cmd.key, ctx)) {
        hits.push_back(cmd.uid ? m.uid : ctx.seq);
        maxModseq = std::max(maxModseq, m.modseq);
      }
    }
  }
  if (save) {
    // RFC 5182 2.4: with MIN and/or MAX but neither ALL nor COUNT only
    // those are saved; otherwise every hit.
    std::vector<uint32_t> keep;
    if (!hits.empty() && !saveAll && (saveMin || saveMax)) {
      if (saveMin) keep.push_back(hits.front());
      if (saveMax && (!saveMin || hits.back() != hits.front())) keep.push_back(hits.back());
    } else {
      keep = hits;
    }
    if (!cmd.uid)
      for (auto& h : keep) h = uids_[h - 1];
    savedUids_ = std::move(keep);
  }
  if (returnOptions && returnOptions->size() == 1 && save) {
    // RFC 5182 2.1: SAVE alone produces no ESEARCH response.
  } else if (returnOptions) {
    // RFC 4731 ESEARCH.
    w_.untagged().atom("ESEARCH").beginList().atom("TAG").quoted(tag).endList();
    if (cmd.uid) w_.atom("UID");
    for (SearchReturn r : *returnOptions) {
      if (r == SearchReturn::Min && !hits.empty()) w_.atom("MIN").number(hits.front());
      if (r == SearchReturn::Max && !hits.empty()) w_.atom("MAX").number(hits.back());
      if (r == SearchReturn::Count) w_.atom("COUNT").number(hits.size());
      if (r == SearchReturn::All && !hits.empty()) w_.atom("ALL").atom(compactSet(hits));
    }
    if (usesModseq && !hits.empty()) w_.atom("MODSEQ").number(maxModseq);
    out_ += w_.end().take();
  } else {
    w_.untagged().atom("SEARCH");
    for (uint32_t h : hits) w_.number(h);
    if (usesModseq && !hits.empty()) w_.beginList().atom("MODSEQ").number(maxModseq).endList();
    out_ += w_.end().take();
  }
  flushUpdates(cmd.uid);
  tagged(tag, "OK", "", cmd.uid ? "UID SEARCH completed" : "SEARCH completed");
}

// ---------------------------------------------------------------- STORE

void Session::cmdStore(const std::string& tag, const StoreCmd& cmd) {
  if (!checkReadWrite(tag)) return;
  uint32_t bits;
  std::vector<std::string> kws;
  if (!parseFlags(cmd.flags, bits, kws)) return tagged(tag, "BAD", "", "invalid flag");
  std::vector<uint32_t> seqs;
  if (!resolve(tag, cmd.set, cmd.uid, seqs)) return;
  if (cmd.unchangedSince) condstore_ = true;
  std::vector<uint32_t> uids;
  for (uint32_t s : seqs) uids.push_back(uids_[s - 1]);
  FlagOp op = cmd.mode == StoreCmd::Mode::Add ? FlagOp::Add : cmd.mode == StoreCmd::Mode::Remove ? FlagOp::Remove : FlagOp::Replace;
  auto r = backend_.storeFlags(selectedId_, uids, op, bits, kws, cmd.unchangedSince);
  if (!r) return failed(tag, r.error(), "STORE");
  for (const auto& m : r->current) {
    // .SILENT: no FETCH for our own change, except that CONDSTORE clients
    // learn the new MODSEQ (RFC 7162 3.1.3 allows it).
    if (cmd.silent) continue;
    writeFetchFlags(seqOf(m.uid), m, cmd.uid || qresync_);
  }
  flushUpdates(cmd.uid);
  if (!r->failed.empty()) {
    std::vector<uint32_t> failedIds;
    for (uint32_t u : r->failed) failedIds.push_back(cmd.uid ? u : seqOf(u));
    std::sort(failedIds.begin(), failedIds.end());
    return tagged(tag, "OK", "MODIFIED " + compactSet(failedIds), "conditional STORE failed for some messages");
  }
  tagged(tag, "OK", "", cmd.uid ? "UID STORE completed" : "STORE completed");
}

// ---------------------------------------------------------------- COPY / MOVE / EXPUNGE

void Session::cmdCopy(const std::string& tag, bool uid, const SequenceSet& set, const std::string& mailbox, bool move) {
  const char* what = move ? (uid ? "UID MOVE" : "MOVE") : (uid ? "UID COPY" : "COPY");
  if (move && !checkReadWrite(tag)) return;
  auto dest = fromWire(tag, mailbox);
  if (!dest) return;
  std::vector<uint32_t> seqs;
  if (!resolve(tag, set, uid, seqs)) return;
  std::vector<uint32_t> uids;
  for (uint32_t s : seqs) uids.push_back(uids_[s - 1]);
  if (uids.empty()) {
    flushUpdates(true);
    return tagged(tag, "OK", "", std::string(what) + " completed (no messages)");
  }
  auto r = backend_.copy(selectedId_, uids, *dest, move);
  if (!r) {
    if (r.error().kind == ErrorKind::NotFound) return tagged(tag, "NO", "TRYCREATE", "no such mailbox");
    return failed(tag, r.error(), what);
  }
  std::string code;
  if (!r->sourceUids.empty())
    code = "COPYUID " + std::to_string(r->uidValidity) + " " + compactSet(r->sourceUids) + " " + compactSet(r->destUids);
  if (move) {
    // RFC 6851 4.3: COPYUID in an untagged OK before the expunges.
    if (!code.empty()) {
      w_.untaggedStatus("OK", code, "moved");
      out_ += w_.take();
    }
    writeExpunged(r->sourceUids);
    flushUpdates(true);
    return tagged(tag, "OK", "", std::string(what) + " completed");
  }
  flushUpdates(true);
  tagged(tag, "OK", code, std::string(what) + " completed");
}

void Session::cmdExpunge(const std::string& tag, const ExpungeCmd& cmd) {
  if (!checkReadWrite(tag)) return;
  std::optional<std::vector<uint32_t>> only;
  if (cmd.uids) {
    std::vector<uint32_t> seqs;
    if (!resolve(tag, *cmd.uids, true, seqs)) return;
    only.emplace();
    for (uint32_t s : seqs) only->push_back(uids_[s - 1]);
  }
  auto r = only ? backend_.expunge(selectedId_, std::span<const uint32_t>(*only)) : backend_.expunge(selectedId_, std::nullopt);
  if (!r) return failed(tag, r.error(), "EXPUNGE");
  writeExpunged(*r);
  flushUpdates(true);
  tagged(tag, "OK", "", cmd.uids ? "UID EXPUNGE completed" : "EXPUNGE completed");
}

}  // namespace mb::imap
