// MessageIndex (see message_index.h): full load on first use, then deltas
// from the db driven by ChangeHub notifications.
#include "daemon/store/message_index.h"

#include <algorithm>
#include <cstring>

#include "protocols/mime/search.h"

namespace mb::store {
namespace {

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
  auto rows = st->forEachRow([&](Stmt& r) {
    box.messages.push_back(readRow(r, box, slot.keywordIds));
  });
  if (!rows) return propagate(rows);
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
    auto rows = st->forEachRow([&](Stmt& r) {
      gone.push_back(static_cast<uint32_t>(r.columnInt64(0)));
    });
    if (!rows) return propagate(rows);
    if (!gone.empty()) {
      std::erase_if(box.messages, [&](const IndexedMessage& m) { return std::binary_search(gone.begin(), gone.end(), m.uid); });
      pruneFields(slot, gone);
    }
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
    bool known = true;
    auto rows = st->forEachRow([&](Stmt& r) {
      IndexedMessage m = readRow(r, box, slot.keywordIds);
      if (m.uid >= oldNext) return true;  // new: read below, in UID order
      auto it = std::lower_bound(box.messages.begin(), box.messages.end(), m.uid,
                                 [](const IndexedMessage& x, uint32_t u) { return x.uid < u; });
      known = it != box.messages.end() && it->uid == m.uid;
      if (known) *it = m;
      return known;
    });
    if (!rows) return propagate(rows);
    if (!known) return false;  // an old UID we never saw: reload
  }
  {
    auto st = db.prepare(std::string(kColumns) + "WHERE mailbox_id = ?1 AND uid >= ?2 ORDER BY uid");
    if (!st) return propagate(st);
    st->bind(1, mailboxId).bind(2, oldNext);
    bool ordered = true;
    auto rows = st->forEachRow([&](Stmt& r) {
      IndexedMessage m = readRow(r, box, slot.keywordIds);
      ordered = box.messages.empty() || box.messages.back().uid < m.uid;
      if (ordered) box.messages.push_back(m);
      return ordered;
    });
    if (!rows) return propagate(rows);
    if (!ordered) return false;
  }
  box.uidNext = uidNext;
  box.highestModseq = highestModseq;
  slot.stale = false;
  ++refreshes_;
  return true;
}

Status MessageIndex::fieldValues(int64_t mailboxId, std::string_view field, std::span<const uint32_t> uids,
                                const std::function<void(uint32_t, std::string_view)>& fn) {
  auto box = mailbox(mailboxId);  // up to date: expunged UIDs pruned, uidNext current
  if (!box) return propagate(box);
  Slot& slot = boxes_.at(mailboxId);
  auto fc = std::find_if(slot.fields.begin(), slot.fields.end(), [&](const FieldCache& f) { return f.name == field; });
  if (fc == slot.fields.end()) {
    slot.fields.emplace_back();
    fc = std::prev(slot.fields.end());
    fc->name = std::string(field);
  }
  fc->lastUse = ++useClock_;
  if (fc->tooBig) return {};
  if (fc->coveredNext < slot.box.uidNext) {
    if (auto s = fillField(mailboxId, slot.box.uidNext, *fc); !s) {
      slot.fields.erase(fc);  // a half-filled cache would answer wrong: start again next time
      return s;
    }
    if (fc->tooBig) return {};
    enforceFieldBudget(&slot, field);  // may move slot.fields' elements: find ours again
    fc = std::find_if(slot.fields.begin(), slot.fields.end(), [&](const FieldCache& f) { return f.name == field; });
  }
  auto it = std::lower_bound(fc->uids.begin(), fc->uids.end(), uids.empty() ? 0 : uids.front());
  for (uint32_t uid : uids) {
    while (it != fc->uids.end() && *it < uid) ++it;
    if (it == fc->uids.end()) break;
    if (*it != uid) continue;
    size_t i = static_cast<size_t>(it - fc->uids.begin());
    uint32_t begin = i ? fc->ends[i - 1] : 0;
    fn(uid, std::string_view(fc->text).substr(begin, fc->ends[i] - begin));
  }
  return {};
}

Status MessageIndex::fillField(int64_t mailboxId, uint32_t uidNext, FieldCache& fc) {
  auto st = store_.db().prepare(
      "SELECT m.uid, h.header FROM messages m JOIN message_headers h ON h.message_id = m.id "
      "WHERE m.mailbox_id = ?1 AND m.uid >= ?2 ORDER BY m.uid");
  if (!st) return propagate(st);
  st->bind(1, mailboxId).bind(2, fc.coveredNext);
  auto rows = st->forEachRow([&](Stmt& r) -> Result<bool> {
    auto uid = static_cast<uint32_t>(r.columnInt64(0));
    if (!fc.uids.empty() && fc.uids.back() >= uid) return fail(ErrorKind::Internal, "header rows out of UID order");
    fc.text += mime::packFoldedValues(r.columnText(1), fc.name);
    fc.uids.push_back(uid);
    fc.ends.push_back(static_cast<uint32_t>(fc.text.size()));
    ++fieldBlocksRead_;
    if (fc.text.size() <= kFieldBytes) return true;
    fc = FieldCache{.name = fc.name, .lastUse = fc.lastUse, .tooBig = true};
    return false;
  });
  if (!rows) return rows;
  if (!fc.tooBig) fc.coveredNext = uidNext;
  return {};
}

void MessageIndex::pruneFields(Slot& slot, const std::vector<uint32_t>& gone) {
  for (auto& fc : slot.fields) {
    size_t out = 0;
    uint32_t from = 0, to = 0;  // text kept so far ends at `to`
    for (size_t i = 0; i < fc.uids.size(); ++i) {
      uint32_t begin = from, end = fc.ends[i];
      from = end;
      if (std::binary_search(gone.begin(), gone.end(), fc.uids[i])) continue;
      if (begin != to) std::memmove(fc.text.data() + to, fc.text.data() + begin, end - begin);
      to += end - begin;
      fc.uids[out] = fc.uids[i];
      fc.ends[out] = to;
      ++out;
    }
    fc.uids.resize(out);
    fc.ends.resize(out);
    fc.text.resize(to);
  }
}

void MessageIndex::enforceFieldBudget(const Slot* keepSlot, std::string_view keepField) {
  for (;;) {
    size_t total = 0;
    FieldCache* oldest = nullptr;
    Slot* oldestSlot = nullptr;
    for (auto& [id, slot] : boxes_) {
      for (auto& fc : slot.fields) {
        total += fc.bytes();
        bool keep = &slot == keepSlot && fc.name == keepField;
        if (!keep && (!oldest || fc.lastUse < oldest->lastUse)) oldest = &fc, oldestSlot = &slot;
      }
    }
    if (total <= kAllFieldBytes || !oldest) return;
    oldestSlot->fields.erase(oldestSlot->fields.begin() + (oldest - oldestSlot->fields.data()));
  }
}

}  // namespace mb::store
