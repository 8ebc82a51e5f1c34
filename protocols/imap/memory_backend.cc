// In-memory Backend for tests and fuzzing (see memory_backend.h).
#include "protocols/imap/memory_backend.h"

#include <algorithm>

#include "protocols/mime/analysis.h"
#include "protocols/mime/search.h"

namespace mb::imap {

MemoryMailStore::MemoryMailStore() = default;

void MemoryMailStore::addUser(std::string user, std::string password, int64_t accountId) {
  users_[std::move(user)] = {std::move(password), accountId};
}

Result<int64_t> MemoryMailStore::checkLogin(const std::string& user, const std::string& password) const {
  auto it = users_.find(user);
  if (it == users_.end() || it->second.first != password) return fail(ErrorKind::Auth, "authentication failed");
  return it->second.second;
}

void MemoryMailStore::publish(const MailboxEvent& ev, const void* origin) {
  for (size_t i = 0; i < listeners_.size(); ++i)
    if (listeners_[i]) listeners_[i](ev, origin);
}

MemoryMailStore::Box* MemoryBackend::byName(std::string_view name) {
  auto it = boxes().find(std::string(name));
  return it == boxes().end() ? nullptr : &it->second;
}

MemoryMailStore::Box* MemoryBackend::byId(int64_t id) {
  for (auto& [n, b] : boxes())
    if (b.info.id == id) return &b;
  return nullptr;
}

Status MemoryBackend::createBox(std::string_view name, std::string_view specialUse) {
  if (byName(name)) return fail(ErrorKind::Conflict, "exists");
  MemoryMailStore::Box b;
  b.info = MailboxInfo{store_.nextBoxId++, std::string(name), std::string(specialUse), true};
  b.uidValidity = store_.nextUidValidity++;
  boxes()[std::string(name)] = std::move(b);
  return {};
}

Status MemoryBackend::openAccount(int64_t accountId) {
  account_ = accountId;
  static const std::pair<const char*, const char*> kDefaults[] = {
      {"INBOX", ""}, {"Sent", "\\Sent"}, {"Drafts", "\\Drafts"}, {"Trash", "\\Trash"}, {"Junk", "\\Junk"}, {"Archive", "\\Archive"}};
  for (auto [n, u] : kDefaults)
    if (!byName(n)) (void)createBox(n, u);
  return {};
}

Result<std::vector<MailboxInfo>> MemoryBackend::listMailboxes() {
  std::vector<MailboxInfo> out;
  for (auto& [n, b] : boxes()) out.push_back(b.info);
  return out;
}

Status MemoryBackend::createMailbox(std::string_view name, std::string_view specialUse) { return createBox(name, specialUse); }

Status MemoryBackend::deleteMailbox(std::string_view name) {
  auto* b = byName(name);
  if (!b) return fail(ErrorKind::NotFound, "no mailbox");
  MailboxEvent ev;
  ev.kind = MailboxEvent::Kind::Gone;
  ev.mailboxId = b->info.id;
  boxes().erase(std::string(name));
  store_.publish(ev, this);
  return {};
}

Status MemoryBackend::renameMailbox(std::string_view from, std::string_view to) {
  if (!byName(from)) return fail(ErrorKind::NotFound, "no mailbox");
  if (byName(to)) return fail(ErrorKind::Conflict, "exists");
  if (from == "INBOX") {
    if (auto s = createBox(to, ""); !s) return s;
    std::vector<uint32_t> uids;
    for (auto& [u, m] : byName("INBOX")->messages) uids.push_back(u);
    if (!uids.empty()) {
      auto r = copy(byName("INBOX")->info.id, uids, to, true);
      if (!r) return std::unexpected(r.error());
    }
    return {};
  }
  std::string prefix = std::string(from) + "/";
  std::vector<std::string> names;
  for (auto& [n, b] : boxes())
    if (n == from || n.compare(0, prefix.size(), prefix) == 0) names.push_back(n);
  for (const auto& n : names)
    if (byName(std::string(to) + n.substr(from.size()))) return fail(ErrorKind::Conflict, "exists");
  for (const auto& n : names) {
    auto node = boxes().extract(n);
    node.key() = std::string(to) + n.substr(from.size());
    node.mapped().info.name = node.key();
    boxes().insert(std::move(node));
  }
  return {};
}

Status MemoryBackend::setSubscribed(std::string_view name, bool subscribed) {
  auto* b = byName(name);
  if (!b) return fail(ErrorKind::NotFound, "no mailbox");
  b->info.subscribed = subscribed;
  return {};
}

Result<MailboxCountsInfo> MemoryBackend::mailboxCounts(std::string_view name) {
  auto* b = byName(name);
  if (!b) return fail(ErrorKind::NotFound, "no mailbox");
  MailboxCountsInfo c;
  c.uidNext = b->uidNext;
  c.uidValidity = b->uidValidity;
  c.highestModseq = b->highestModseq;
  for (auto& [u, m] : b->messages) {
    ++c.messages;
    c.unseen += !(m.info.flags & kSeen);
    c.deleted += (m.info.flags & kDeleted) != 0;
    c.size += m.info.size;
  }
  return c;
}

Result<SelectInfo> MemoryBackend::selectMailbox(std::string_view name) {
  auto* b = byName(name);
  if (!b) return fail(ErrorKind::NotFound, "no mailbox");
  SelectInfo s;
  s.id = b->info.id;
  s.uidValidity = b->uidValidity;
  s.uidNext = b->uidNext;
  s.highestModseq = b->highestModseq;
  for (auto& [u, m] : b->messages) {
    s.uids.push_back(u);
    if (!s.firstUnseenUid && !(m.info.flags & kSeen)) s.firstUnseenUid = u;
    for (const auto& k : m.info.keywords)
      if (std::find(s.keywords.begin(), s.keywords.end(), k) == s.keywords.end()) s.keywords.push_back(k);
  }
  return s;
}

Result<AppendInfo> MemoryBackend::append(std::string_view name, std::span<const AppendItem> messages) {
  auto* b = byName(name);
  if (!b) return fail(ErrorKind::NotFound, "no mailbox");
  MailboxEvent ev;
  ev.kind = MailboxEvent::Kind::Added;
  ev.mailboxId = b->info.id;
  AppendInfo out{b->uidValidity, {}};
  for (const auto& item : messages) {
    auto analysed = mime::analyzeForStore(item.bytes);
    std::string normalized = analysed && analysed->normalized ? std::move(*analysed->normalized)
                                                              : mime::normalizeLineEndings(item.bytes);
    MemoryMailStore::Message m;
    m.info.uid = b->uidNext++;
    m.info.flags = item.flags;
    m.info.keywords = item.keywords;
    m.info.internalDate = item.internalDate ? item.internalDate : store_.clock;
    m.info.size = normalized.size();
    m.info.modseq = ++b->highestModseq;
    if (analysed) m.analysis = std::move(analysed->analysis);
    m.bytes = std::move(normalized);
    ev.messages.push_back(m.info);
    out.uids.push_back(m.info.uid);
    b->messages[m.info.uid] = std::move(m);
  }
  ev.modseq = b->highestModseq;
  store_.publish(ev, this);
  return out;
}

Result<std::vector<MessageInfo>> MemoryBackend::messages(int64_t mailboxId, std::span<const uint32_t> uids) {
  auto* b = byId(mailboxId);
  if (!b) return fail(ErrorKind::NotFound, "no mailbox");
  std::vector<MessageInfo> out;
  for (uint32_t u : uids) {
    auto it = b->messages.find(u);
    if (it != b->messages.end()) out.push_back(it->second.info);
  }
  return out;
}

Status MemoryBackend::messageBytes(int64_t mailboxId, uint32_t uid, std::string& out) {
  auto* b = byId(mailboxId);
  if (!b || !b->messages.count(uid)) return fail(ErrorKind::NotFound, "no message");
  if (b->messages[uid].bodyMissing) return fail(ErrorKind::Unavailable, "body not stored");
  out += b->messages[uid].bytes;
  return {};
}

Result<std::vector<uint32_t>> MemoryBackend::bodilessUids(int64_t mailboxId, std::span<const uint32_t> uids) {
  auto* b = byId(mailboxId);
  if (!b) return fail(ErrorKind::NotFound, "no mailbox");
  std::vector<uint32_t> out;
  for (uint32_t u : uids) {
    auto it = b->messages.find(u);
    if (it != b->messages.end() && it->second.bodyMissing) out.push_back(u);
  }
  return out;
}

Result<std::optional<mime::MessageAnalysis>> MemoryBackend::messageAnalysis(int64_t mailboxId, uint32_t uid) {
  auto* b = byId(mailboxId);
  if (!b || !b->messages.count(uid)) return fail(ErrorKind::NotFound, "no message");
  const auto& m = b->messages[uid];
  if (m.bodyMissing) return std::optional<mime::MessageAnalysis>();
  return m.analysis;
}

Result<HeaderFields> MemoryBackend::headerFields(int64_t mailboxId, uint32_t uid) {
  auto* b = byId(mailboxId);
  if (!b || !b->messages.count(uid)) return fail(ErrorKind::NotFound, "no message");
  const auto& a = b->messages[uid].analysis;
  HeaderFields h;
  if (a) {
    h.messageId = a->quick.messageId;
    h.subject = a->quick.subject;
    h.from = a->quick.from;
    h.to = a->quick.to;
    h.cc = a->quick.cc;
    h.bcc = a->quick.bcc;
    h.sentAt = a->quick.sentAt;
  }
  return h;
}

Result<std::vector<StoredStructure>> MemoryBackend::structures(int64_t mailboxId, std::span<const uint32_t> uids) {
  auto* b = byId(mailboxId);
  if (!b) return fail(ErrorKind::NotFound, "no mailbox");
  std::vector<StoredStructure> out;
  for (uint32_t u : uids) {
    auto it = b->messages.find(u);
    if (it == b->messages.end()) continue;
    const auto& a = it->second.analysis;
    if (!a) continue;
    if (!it->second.bodyMissing) out.push_back({u, a->envelope, a->bodyStructure});
    else if (!it->second.upstreamBodyStructure.empty()) out.push_back({u, a->envelope, it->second.upstreamBodyStructure});
  }
  return out;
}

Result<std::vector<StoredHeader>> MemoryBackend::topHeaders(int64_t mailboxId, std::span<const uint32_t> uids) {
  auto* b = byId(mailboxId);
  if (!b) return fail(ErrorKind::NotFound, "no mailbox");
  std::vector<StoredHeader> out;
  for (uint32_t u : uids) {
    auto it = b->messages.find(u);
    if (it == b->messages.end()) continue;
    const auto& a = it->second.analysis;
    if (a) out.push_back({u, std::string(mime::topHeader(it->second.bytes, a->root))});
  }
  return out;
}

Result<std::vector<FieldValues>> MemoryBackend::headerFieldValues(int64_t mailboxId, std::string_view field,
                                                                 std::span<const uint32_t> uids) {
  auto headers = topHeaders(mailboxId, uids);
  if (!headers) return std::unexpected(headers.error());
  std::vector<FieldValues> out;
  out.reserve(headers->size());
  for (const auto& h : *headers) out.push_back({h.uid, mime::packFoldedValues(h.header, field)});
  return out;
}

Result<FlagsOutcome> MemoryBackend::storeFlags(int64_t mailboxId, std::span<const uint32_t> uids, FlagOp op,
                                               uint32_t flags, const std::vector<std::string>& keywords,
                                               std::optional<uint64_t> unchangedSince) {
  auto* b = byId(mailboxId);
  if (!b) return fail(ErrorKind::NotFound, "no mailbox");
  FlagsOutcome out;
  MailboxEvent ev;
  ev.kind = MailboxEvent::Kind::Flags;
  ev.mailboxId = mailboxId;
  for (uint32_t u : uids) {
    auto it = b->messages.find(u);
    if (it == b->messages.end()) continue;
    MessageInfo& m = it->second.info;
    if (unchangedSince && m.modseq > *unchangedSince) {
      out.failed.push_back(u);
      continue;
    }
    uint32_t nf = m.flags;
    std::vector<std::string> nk = m.keywords;
    auto has = [](const std::vector<std::string>& v, const std::string& k) { return std::find(v.begin(), v.end(), k) != v.end(); };
    if (op == FlagOp::Replace) {
      nf = flags;
      nk = keywords;
    } else if (op == FlagOp::Add) {
      nf |= flags;
      for (const auto& k : keywords)
        if (!has(nk, k)) nk.push_back(k);
    } else {
      nf &= ~flags;
      std::erase_if(nk, [&](const std::string& k) { return has(keywords, k); });
    }
    if (nf != m.flags || nk != m.keywords) {
      m.flags = nf;
      m.keywords = nk;
      m.modseq = ++b->highestModseq;
      ev.messages.push_back(m);
    }
    out.current.push_back(m);
  }
  ev.modseq = b->highestModseq;
  if (!ev.messages.empty()) store_.publish(ev, this);
  return out;
}

Result<CopyInfo> MemoryBackend::copy(int64_t mailboxId, std::span<const uint32_t> uids, std::string_view destination,
                                     bool move) {
  auto* src = byId(mailboxId);
  auto* dst = byName(destination);
  if (!src) return fail(ErrorKind::NotFound, "no mailbox");
  if (!dst) return fail(ErrorKind::NotFound, "no mailbox");
  CopyInfo out;
  out.uidValidity = dst->uidValidity;
  MailboxEvent added;
  added.kind = MailboxEvent::Kind::Added;
  added.mailboxId = dst->info.id;
  std::vector<MemoryMailStore::Message> copies;
  for (uint32_t u : uids) {
    auto it = src->messages.find(u);
    if (it == src->messages.end()) continue;
    copies.push_back(it->second);
    out.sourceUids.push_back(u);
  }
  for (auto& m : copies) {
    m.info.uid = dst->uidNext++;
    m.info.modseq = ++dst->highestModseq;
    out.destUids.push_back(m.info.uid);
    added.messages.push_back(m.info);
    dst->messages[m.info.uid] = std::move(m);
  }
  added.modseq = dst->highestModseq;
  if (!out.sourceUids.empty()) store_.publish(added, this);
  if (move && !out.sourceUids.empty()) {
    MailboxEvent gone;
    gone.kind = MailboxEvent::Kind::Expunged;
    gone.mailboxId = mailboxId;
    uint64_t modseq = ++src->highestModseq;
    for (uint32_t u : out.sourceUids) {
      src->messages.erase(u);
      src->expunged[u] = modseq;
    }
    gone.uids = out.sourceUids;
    gone.modseq = modseq;
    store_.publish(gone, this);
  }
  return out;
}

Result<std::vector<uint32_t>> MemoryBackend::expunge(int64_t mailboxId, std::optional<std::span<const uint32_t>> only) {
  auto* b = byId(mailboxId);
  if (!b) return fail(ErrorKind::NotFound, "no mailbox");
  std::vector<uint32_t> gone;
  for (auto& [u, m] : b->messages)
    if ((m.info.flags & kDeleted) && (!only || std::binary_search(only->begin(), only->end(), u))) gone.push_back(u);
  if (gone.empty()) return gone;
  uint64_t modseq = ++b->highestModseq;
  for (uint32_t u : gone) {
    b->messages.erase(u);
    b->expunged[u] = modseq;
  }
  MailboxEvent ev;
  ev.kind = MailboxEvent::Kind::Expunged;
  ev.mailboxId = mailboxId;
  ev.uids = gone;
  ev.modseq = modseq;
  store_.publish(ev, this);
  return gone;
}

Result<std::vector<uint32_t>> MemoryBackend::vanishedSince(int64_t mailboxId, uint64_t modseq) {
  auto* b = byId(mailboxId);
  if (!b) return fail(ErrorKind::NotFound, "no mailbox");
  std::vector<uint32_t> out;
  for (auto& [u, m] : b->expunged)
    if (m > modseq) out.push_back(u);
  return out;
}

}  // namespace mb::imap
