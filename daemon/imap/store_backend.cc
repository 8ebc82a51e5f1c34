// StoreBackend: the Backend calls mapped onto mailbox_ops / message_ops.
#include "daemon/imap/store_backend.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "daemon/store/mailbox_ops.h"
#include "daemon/store/message_ops.h"

namespace mb::imap {
namespace {

MessageInfo fromChanged(const store::ChangedMessage& m) {
  MessageInfo i;
  i.uid = m.uid;
  i.flags = m.flags;
  i.keywords = m.keywords;
  i.modseq = m.modseq;
  return i;
}

}  // namespace

std::optional<MailboxEvent> StoreBackend::toEvent(const store::StoreChange& c) {
  MailboxEvent ev;
  ev.mailboxId = c.mailboxId;
  ev.modseq = c.modseq;
  using K = store::StoreChange::Kind;
  switch (c.kind) {
    case K::MessagesAdded:
      ev.kind = MailboxEvent::Kind::Added;
      for (const auto& m : c.messages) ev.messages.push_back(fromChanged(m));
      return ev;
    case K::FlagsChanged:
      ev.kind = MailboxEvent::Kind::Flags;
      for (const auto& m : c.messages) ev.messages.push_back(fromChanged(m));
      return ev;
    case K::MessagesExpunged:
      ev.kind = MailboxEvent::Kind::Expunged;
      ev.uids = c.uids;
      return ev;
    case K::MailboxDeleted:
      ev.kind = MailboxEvent::Kind::Gone;
      return ev;
    default:
      return std::nullopt;
  }
}

Result<store::Mailbox> StoreBackend::find(std::string_view name) {
  auto m = store_.findMailbox(account_, name);
  if (!m) return std::unexpected(m.error());
  if (!*m) return fail(ErrorKind::NotFound, "no such mailbox");
  return std::move(**m);
}

Status StoreBackend::openAccount(int64_t accountId) {
  account_ = accountId;
  return store::ensureDefaultMailboxes(store_, accountId);
}

Result<std::vector<MailboxInfo>> StoreBackend::listMailboxes() {
  auto boxes = store_.listMailboxes(account_);
  if (!boxes) return std::unexpected(boxes.error());
  std::vector<MailboxInfo> out;
  for (auto& b : *boxes) out.push_back({b.id, b.name, b.specialUse, b.subscribed});
  return out;
}

Status StoreBackend::createMailbox(std::string_view name, std::string_view specialUse) {
  auto r = store::createMailboxLocal(store_, account_, name, specialUse, this);
  if (!r) return std::unexpected(r.error());
  return {};
}

Status StoreBackend::deleteMailbox(std::string_view name) { return store::deleteMailboxLocal(store_, account_, name, this); }

Status StoreBackend::renameMailbox(std::string_view from, std::string_view to) {
  return store::renameMailboxLocal(store_, account_, from, to, '/', this);
}

Status StoreBackend::setSubscribed(std::string_view name, bool subscribed) {
  return store::setSubscribed(store_, account_, name, subscribed, this);
}

Result<MailboxCountsInfo> StoreBackend::mailboxCounts(std::string_view name) {
  auto box = find(name);
  if (!box) return std::unexpected(box.error());
  auto c = store::mailboxCounts(store_, box->id);
  if (!c) return std::unexpected(c.error());
  MailboxCountsInfo out;
  out.messages = c->messages;
  out.unseen = c->unseen;
  out.deleted = c->deleted;
  out.size = c->size;
  out.uidNext = box->uidNext;
  out.uidValidity = box->uidValidity;
  out.highestModseq = box->highestModseq;
  return out;
}

Result<SelectInfo> StoreBackend::selectMailbox(std::string_view name) {
  auto box = find(name);
  if (!box) return std::unexpected(box.error());
  SelectInfo s;
  s.id = box->id;
  s.uidValidity = box->uidValidity;
  s.uidNext = box->uidNext;
  s.highestModseq = box->highestModseq;
  auto index = index_.mailbox(box->id);
  if (!index) return std::unexpected(index.error());
  const store::IndexedMailbox& ix = **index;
  s.uids.reserve(ix.messages.size());
  std::vector<bool> keywordUsed(ix.keywordSets.size());
  for (const auto& m : ix.messages) {
    s.uids.push_back(m.uid);
    if (!s.firstUnseenUid && !(m.flags & kSeen)) s.firstUnseenUid = m.uid;
    keywordUsed[m.keywordSet] = true;
  }
  for (size_t i = 1; i < ix.keywordSets.size(); ++i) {
    if (!keywordUsed[i]) continue;
    for (const auto& k : ix.keywordSets[i])
      if (std::find(s.keywords.begin(), s.keywords.end(), k) == s.keywords.end()) s.keywords.push_back(k);
  }
  return s;
}

Result<AppendInfo> StoreBackend::append(std::string_view name, std::span<const AppendItem> messages) {
  auto box = find(name);
  if (!box) return std::unexpected(box.error());
  std::vector<store::NewMessage> batch(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    const AppendItem& item = messages[i];
    store::NewMessage& m = batch[i];
    m.bytes = item.bytes;
    m.flags = item.flags;
    m.keywords = item.keywords;
    m.internalDate = item.internalDate ? item.internalDate : store_.now();
    m.origin = this;
    // The journal row names the mailbox; the message itself is the blob.
    m.journal = store::JournalEntry{
        "append", nlohmann::json{{"mailbox", box->name}, {"flags", item.flags}, {"keywords", item.keywords}}.dump()};
  }
  // One transaction for the whole command (MULTIAPPEND is all or nothing).
  auto r = store_.appendMessages(box->id, batch);
  if (!r) return std::unexpected(r.error());
  AppendInfo out{box->uidValidity, {}};
  for (const auto& a : *r) out.uids.push_back(a.uid);
  return out;
}

Result<std::vector<MessageInfo>> StoreBackend::messages(int64_t mailboxId, std::span<const uint32_t> uids) {
  auto index = index_.mailbox(mailboxId);
  if (!index) return std::unexpected(index.error());
  const store::IndexedMailbox& ix = **index;
  std::vector<MessageInfo> out;
  out.reserve(uids.size());
  // Both ascending: walk the index from the first UID asked for.
  auto it = std::lower_bound(ix.messages.begin(), ix.messages.end(), uids.empty() ? 0 : uids.front(),
                             [](const store::IndexedMessage& m, uint32_t u) { return m.uid < u; });
  for (uint32_t uid : uids) {
    while (it != ix.messages.end() && it->uid < uid) ++it;
    if (it == ix.messages.end()) break;
    if (it->uid != uid) continue;  // gone
    out.push_back({it->uid, it->flags, ix.keywordSets[it->keywordSet], it->internalDate, it->size, it->modseq});
  }
  return out;
}

Status StoreBackend::messageBytes(int64_t mailboxId, uint32_t uid, std::string& out) {
  return store::messageBytes(store_, mailboxId, uid, out);
}

Result<std::optional<mime::MessageAnalysis>> StoreBackend::messageAnalysis(int64_t mailboxId, uint32_t uid) {
  return store::messageAnalysis(store_, mailboxId, uid);
}

Result<HeaderFields> StoreBackend::headerFields(int64_t mailboxId, uint32_t uid) {
  auto h = store::headerColumns(store_, mailboxId, uid);
  if (!h) return std::unexpected(h.error());
  return HeaderFields{h->messageId, h->subject, h->from, h->to, h->cc, h->bcc, h->sentAt};
}

Result<std::vector<uint32_t>> StoreBackend::bodilessUids(int64_t mailboxId, std::span<const uint32_t> uids) {
  return store::bodilessUids(store_, mailboxId, uids);
}

Result<std::vector<StoredStructure>> StoreBackend::structures(int64_t mailboxId, std::span<const uint32_t> uids) {
  auto rows = store::storedStructures(store_, mailboxId, uids);
  if (!rows) return std::unexpected(rows.error());
  std::vector<StoredStructure> out;
  out.reserve(rows->size());
  for (auto& r : *rows) out.push_back({r.uid, std::move(r.envelope), std::move(r.bodyStructure)});
  return out;
}

Result<std::vector<StoredHeader>> StoreBackend::topHeaders(int64_t mailboxId, std::span<const uint32_t> uids) {
  auto rows = store::storedHeaders(store_, mailboxId, uids);
  if (!rows) return std::unexpected(rows.error());
  std::vector<StoredHeader> out;
  out.reserve(rows->size());
  for (auto& r : *rows) out.push_back({r.uid, std::move(r.header)});
  return out;
}

Result<std::vector<FieldValues>> StoreBackend::headerFieldValues(int64_t mailboxId, std::string_view field,
                                                                std::span<const uint32_t> uids) {
  std::vector<FieldValues> out;
  out.reserve(uids.size());
  auto s = index_.fieldValues(mailboxId, field, uids,
                              [&](uint32_t uid, std::string_view packed) { out.push_back({uid, std::string(packed)}); });
  if (!s) return std::unexpected(s.error());
  return out;
}

Result<FlagsOutcome> StoreBackend::storeFlags(int64_t mailboxId, std::span<const uint32_t> uids, FlagOp op,
                                              uint32_t flags, const std::vector<std::string>& keywords,
                                              std::optional<uint64_t> unchangedSince) {
  store::FlagUpdate up;
  up.mode = op == FlagOp::Add ? store::FlagMode::Add : op == FlagOp::Remove ? store::FlagMode::Remove : store::FlagMode::Replace;
  up.flags = flags;
  up.keywords = keywords;
  up.unchangedSince = unchangedSince;
  up.origin = this;
  auto r = store::updateFlags(store_, mailboxId, uids, up);
  if (!r) return std::unexpected(r.error());
  FlagsOutcome out;
  for (const auto& m : r->current) out.current.push_back(fromChanged(m));
  out.failed = std::move(r->failed);
  return out;
}

Result<CopyInfo> StoreBackend::copy(int64_t mailboxId, std::span<const uint32_t> uids, std::string_view destination,
                                    bool move) {
  auto dest = find(destination);
  if (!dest) return std::unexpected(dest.error());
  auto r = store::copyMessages(store_, mailboxId, uids, dest->id, move, this);
  if (!r) return std::unexpected(r.error());
  return CopyInfo{r->uidValidity, std::move(r->sourceUids), std::move(r->destUids)};
}

Result<std::vector<uint32_t>> StoreBackend::expunge(int64_t mailboxId, std::optional<std::span<const uint32_t>> only) {
  return store::expungeDeleted(store_, mailboxId, only, this);
}

Result<std::vector<uint32_t>> StoreBackend::vanishedSince(int64_t mailboxId, uint64_t modseq) {
  return store::expungedSince(store_, mailboxId, modseq);
}

}  // namespace mb::imap
