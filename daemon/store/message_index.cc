// MessageIndex (see message_index.h): full load on first use, then deltas
// from the db driven by ChangeHub notifications.
#include "daemon/store/message_index.h"

#include <algorithm>

namespace mb::store {
namespace {

template <class T>
std::unexpected<Error> propagate(const Result<T>& r) {
  return std::unexpected(r.error());
}

constexpr const char* kColumns = "SELECT uid, flags, keywords, internal_date, size, modseq FROM messages ";

uint32_t intern(IndexedMailbox& box, std::unordered_map<std::string, uint32_t>& ids, std::string text) {
  if (text.empty()) return 0;
  auto it = ids.find(text);
  if (it != ids.end()) return it->second;
  auto id = static_cast<uint32_t>(box.keywordSets.size());
  box.keywordSets.push_back(splitKeywords(text));
  ids.emplace(std::move(text), id);
  return id;
}

IndexedMessage readRow(const Stmt& st, IndexedMailbox& box, std::unordered_map<std::string, uint32_t>& ids) {
  IndexedMessage m;
  m.uid = static_cast<uint32_t>(st.columnInt64(0));
  m.flags = static_cast<uint32_t>(st.columnInt64(1));
  m.keywordSet = intern(box, ids, st.columnText(2));
  m.internalDate = st.columnInt64(3);
  m.size = static_cast<uint64_t>(st.columnInt64(4));
  m.modseq = static_cast<uint64_t>(st.columnInt64(5));
  return m;
}

}  // namespace

const IndexedMessage* IndexedMailbox::find(uint32_t uid) const {
  auto it = std::lower_bound(messages.begin(), messages.end(), uid,
                             [](const IndexedMessage& m, uint32_t u) { return m.uid < u; });
  return it != messages.end() && it->uid == uid ? &*it : nullptr;
}

MessageIndex::MessageIndex(Store& store) : store_(store) {
  subscription_ = store_.changes().subscribe([this](const StoreChange& c) {
    // A removed account takes its mailboxes without a change per mailbox,
    // and SQLite may give a later mailbox the same id: forget everything.
    if (c.kind == StoreChange::Kind::AccountRemoved) return boxes_.clear();
    auto it = boxes_.find(c.mailboxId);
    if (it == boxes_.end()) return;
    if (c.kind == StoreChange::Kind::MailboxDeleted || c.kind == StoreChange::Kind::MailboxCreated)
      boxes_.erase(it);
    else
      it->second.stale = true;
  });
}

MessageIndex::~MessageIndex() { store_.changes().unsubscribe(subscription_); }

Result<const IndexedMailbox*> MessageIndex::mailbox(int64_t mailboxId) {
  auto it = boxes_.find(mailboxId);
  if (it != boxes_.end() && !it->second.stale) return &it->second.box;

  auto st = store_.db().prepare("SELECT uidnext, highest_modseq FROM mailboxes WHERE id = ?1");
  if (!st) return propagate(st);
  auto row = st->bind(1, mailboxId).step();
  if (!row) return propagate(row);
  if (!*row) {
    if (it != boxes_.end()) boxes_.erase(it);
    return fail(ErrorKind::NotFound, "no mailbox with id " + std::to_string(mailboxId));
  }
  auto uidNext = static_cast<uint32_t>(st->columnInt64(0));
  auto highestModseq = static_cast<uint64_t>(st->columnInt64(1));
  st->reset();

  if (it == boxes_.end()) {
    Slot fresh;
    if (auto s = load(mailboxId, fresh, uidNext, highestModseq); !s) return propagate(s);
    it = boxes_.emplace(mailboxId, std::move(fresh)).first;
    return &it->second.box;
  }
  Slot& slot = it->second;
  auto ok = refresh(mailboxId, slot, uidNext, highestModseq);
  if (!ok) return propagate(ok);
  if (!*ok) {
    slot = Slot{};
    if (auto s = load(mailboxId, slot, uidNext, highestModseq); !s) {
      boxes_.erase(it);
      return propagate(s);
    }
  }
  return &slot.box;
}

Status MessageIndex::load(int64_t mailboxId, Slot& slot, uint32_t uidNext, uint64_t highestModseq) {
  auto st = store_.db().prepare(std::string(kColumns) + "WHERE mailbox_id = ?1 ORDER BY uid");
  if (!st) return propagate(st);
  st->bind(1, mailboxId);
  IndexedMailbox& box = slot.box;
  for (;;) {
    auto row = st->step();
    if (!row) return propagate(row);
    if (!*row) break;
    box.messages.push_back(readRow(*st, box, slot.keywordIds));
  }
  box.uidNext = uidNext;
  box.highestModseq = highestModseq;
  slot.stale = false;
  ++fullLoads_;
  return {};
}

Result<bool> MessageIndex::refresh(int64_t mailboxId, Slot& slot, uint32_t uidNext, uint64_t highestModseq) {
  IndexedMailbox& box = slot.box;
  if (uidNext < box.uidNext || highestModseq < box.highestModseq) return false;  // not the mailbox we knew
  if (uidNext == box.uidNext && highestModseq == box.highestModseq) {
    slot.stale = false;
    return true;
  }
  Db& db = store_.db();
  // Gone: every expunge logs (uid, the mailbox's new modseq).
  {
    auto st = db.prepare("SELECT uid FROM expunged WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid");
    if (!st) return propagate(st);
    st->bind(1, mailboxId).bind(2, box.highestModseq);
    std::vector<uint32_t> gone;
    for (;;) {
      auto row = st->step();
      if (!row) return propagate(row);
      if (!*row) break;
      gone.push_back(static_cast<uint32_t>(st->columnInt64(0)));
    }
    if (!gone.empty())
      std::erase_if(box.messages, [&](const IndexedMessage& m) { return std::binary_search(gone.begin(), gone.end(), m.uid); });
  }
  // Changed (flags, keywords) and new: every write gives the rows it touches
  // a modseq above the old HIGHESTMODSEQ; new rows have uid >= the old UIDNEXT.
  // Two queries, so each is one index range (SQLite cannot use both indexes
  // for an OR under the mailbox_id term).
  uint32_t oldNext = box.uidNext;
  {
    auto st = db.prepare(std::string(kColumns) + "WHERE mailbox_id = ?1 AND modseq > ?2");
    if (!st) return propagate(st);
    st->bind(1, mailboxId).bind(2, box.highestModseq);
    for (;;) {
      auto row = st->step();
      if (!row) return propagate(row);
      if (!*row) break;
      IndexedMessage m = readRow(*st, box, slot.keywordIds);
      if (m.uid >= oldNext) continue;  // new: read below, in UID order
      auto it = std::lower_bound(box.messages.begin(), box.messages.end(), m.uid,
                                 [](const IndexedMessage& x, uint32_t u) { return x.uid < u; });
      if (it == box.messages.end() || it->uid != m.uid) return false;  // an old UID we never saw: reload
      *it = m;
    }
  }
  {
    auto st = db.prepare(std::string(kColumns) + "WHERE mailbox_id = ?1 AND uid >= ?2 ORDER BY uid");
    if (!st) return propagate(st);
    st->bind(1, mailboxId).bind(2, oldNext);
    for (;;) {
      auto row = st->step();
      if (!row) return propagate(row);
      if (!*row) break;
      IndexedMessage m = readRow(*st, box, slot.keywordIds);
      if (!box.messages.empty() && box.messages.back().uid >= m.uid) return false;
      box.messages.push_back(m);
    }
  }
  box.uidNext = uidNext;
  box.highestModseq = highestModseq;
  slot.stale = false;
  ++refreshes_;
  return true;
}

}  // namespace mb::store
