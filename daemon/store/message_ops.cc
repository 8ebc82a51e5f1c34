// Message operations for local sessions (see message_ops.h): listings,
// metadata, flag updates, copy/move, expunge; journal + change per write.
#include "daemon/store/message_ops.h"

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>

namespace mb::store {
namespace {

nlohmann::json flagNames(uint32_t flags, const std::vector<std::string>& keywords) { return flagWords(flags, keywords); }

struct BoxRow {
  int64_t accountId = 0;
  uint64_t highestModseq = 0;
  int64_t uidNext = 0;
  uint32_t uidValidity = 0;
  std::string name;
};

Result<BoxRow> boxRow(Db& db, int64_t mailboxId) {
  auto st = db.prepare("SELECT account_id, highest_modseq, uidnext, uidvalidity, name FROM mailboxes WHERE id = ?1");
  if (!st) return propagate(st);
  auto row = st->bind(1, mailboxId).step();
  if (!row) return propagate(row);
  if (!*row) return fail(ErrorKind::NotFound, "no mailbox with id " + std::to_string(mailboxId));
  return BoxRow{st->columnInt64(0), static_cast<uint64_t>(st->columnInt64(1)), st->columnInt64(2),
                static_cast<uint32_t>(st->columnInt64(3)), st->columnText(4)};
}

Status setBoxCounters(Db& db, int64_t mailboxId, uint64_t highestModseq, std::optional<int64_t> uidNext) {
  auto st = db.prepare("UPDATE mailboxes SET highest_modseq = ?1, uidnext = coalesce(?2, uidnext) WHERE id = ?3");
  if (!st) return propagate(st);
  return st->bind(1, highestModseq).bind(2, uidNext).bind(3, mailboxId).run();
}

MessageMeta readMeta(const Stmt& st) {
  MessageMeta m;
  m.uid = static_cast<uint32_t>(st.columnInt64(0));
  m.flags = static_cast<uint32_t>(st.columnInt64(1));
  m.keywords = splitKeywords(st.columnText(2));
  m.internalDate = st.columnInt64(3);
  m.size = static_cast<uint64_t>(st.columnInt64(4));
  m.modseq = static_cast<uint64_t>(st.columnInt64(5));
  return m;
}

constexpr const char* kMetaColumns = "uid, flags, keywords, internal_date, size, modseq";

}  // namespace

Result<std::vector<uint32_t>> listUids(Store& store, int64_t mailboxId) {
  auto st = store.db().prepare("SELECT uid FROM messages WHERE mailbox_id = ?1 ORDER BY uid");
  if (!st) return propagate(st);
  st->bind(1, mailboxId);
  std::vector<uint32_t> out;
  auto rows = st->forEachRow([&](Stmt& r) {
    out.push_back(static_cast<uint32_t>(r.columnInt64(0)));
  });
  if (!rows) return propagate(rows);
  return out;
}

namespace {

// Runs `select` (which must name the row's uid first and end in a WHERE over
// mailbox_id = ?1, with the messages table as `m`) for the given ascending
// UIDs and calls fn(stmt) on each row found, in UID order: one index range
// when the set is dense (1:*), else a lookup per UID.
template <class Fn>
Status forEachUid(Db& db, const std::string& select, int64_t mailboxId, std::span<const uint32_t> uids, Fn&& fn) {
  if (uids.empty()) return {};
  uint32_t lo = uids.front(), hi = uids.back();
  if (uids.size() * 4 >= static_cast<uint64_t>(hi - lo) + 1 || uids.size() > 256) {
    auto st = db.prepare(select + " AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid");
    if (!st) return propagate(st);
    st->bind(1, mailboxId).bind(2, lo).bind(3, hi);
    size_t i = 0;
    auto rows = st->forEachRow([&](Stmt& r) {
      uint32_t uid = static_cast<uint32_t>(r.columnInt64(0));
      while (i < uids.size() && uids[i] < uid) ++i;
      if (i < uids.size() && uids[i] == uid) fn(r);
    });
    if (!rows) return propagate(rows);
    return {};
  }
  auto st = db.prepare(select + " AND m.uid = ?2");
  if (!st) return propagate(st);
  for (uint32_t uid : uids) {
    st->reset();
    auto row = st->bind(1, mailboxId).bind(2, uid).step();
    if (!row) return propagate(row);
    if (*row) fn(*st);
  }
  return {};
}

}  // namespace

Result<std::vector<MessageMeta>> messageMeta(Store& store, int64_t mailboxId, std::span<const uint32_t> uids) {
  std::vector<MessageMeta> out;
  auto s = forEachUid(store.db(), std::string("SELECT ") + kMetaColumns + " FROM messages m WHERE m.mailbox_id = ?1",
                      mailboxId, uids, [&](const Stmt& st) { out.push_back(readMeta(st)); });
  if (!s) return propagate(s);
  return out;
}

Result<std::vector<MessageSummary>> listMessages(Store& store, int64_t mailboxId) {
  auto st = store.db().prepare(std::string("SELECT ") + kMetaColumns +
                               ", id, blob_id FROM messages WHERE mailbox_id = ?1 ORDER BY uid");
  if (!st) return propagate(st);
  st->bind(1, mailboxId);
  std::vector<MessageSummary> out;
  auto rows = st->forEachRow([&](Stmt& r) {
    MessageSummary m{readMeta(r)};
    m.id = r.columnInt64(6);
    m.blobId = r.columnText(7);
    out.push_back(std::move(m));
  });
  if (!rows) return propagate(rows);
  return out;
}

Result<std::vector<StoredStructure>> storedStructures(Store& store, int64_t mailboxId, std::span<const uint32_t> uids) {
  std::vector<StoredStructure> out;
  out.reserve(uids.size());
  auto s = forEachUid(store.db(),
                      "SELECT m.uid, m.envelope, m.bodystructure FROM messages m WHERE m.mailbox_id = ?1 "
                      "AND m.envelope IS NOT NULL AND m.bodystructure IS NOT NULL",
                      mailboxId, uids, [&](const Stmt& st) {
                        out.push_back({static_cast<uint32_t>(st.columnInt64(0)), st.columnText(1), st.columnText(2)});
                      });
  if (!s) return propagate(s);
  return out;
}

Result<std::vector<StoredHeader>> storedHeaders(Store& store, int64_t mailboxId, std::span<const uint32_t> uids) {
  std::vector<StoredHeader> out;
  out.reserve(uids.size());
  auto s = forEachUid(store.db(),
                      "SELECT m.uid, h.header FROM messages m JOIN message_headers h ON h.message_id = m.id "
                      "WHERE m.mailbox_id = ?1",
                      mailboxId, uids, [&](const Stmt& st) {
                        out.push_back({static_cast<uint32_t>(st.columnInt64(0)), st.columnText(1)});
                      });
  if (!s) return propagate(s);
  return out;
}

Status messageBytes(Store& store, int64_t mailboxId, uint32_t uid, std::string& out) {
  auto st = store.db().prepare("SELECT blob_id, coalesce(blob_size, size) FROM messages WHERE mailbox_id = ?1 AND uid = ?2");
  if (!st) return propagate(st);
  auto row = st->bind(1, mailboxId).bind(2, uid).step();
  if (!row) return propagate(row);
  if (!*row) return fail(ErrorKind::NotFound, "no message with uid " + std::to_string(uid));
  std::string blobId = st->columnText(0);
  if (blobId.empty()) return fail(ErrorKind::Unavailable, "the body of uid " + std::to_string(uid) + " is not downloaded yet");
  return store.blobs().appendTo(blobId, static_cast<uint64_t>(st->columnInt64(1)), out);
}

Result<std::vector<uint32_t>> bodilessUids(Store& store, int64_t mailboxId, std::span<const uint32_t> uids) {
  std::vector<uint32_t> out;
  auto s = forEachUid(store.db(), "SELECT m.uid FROM messages m WHERE m.mailbox_id = ?1 AND m.body_missing = 1",
                      mailboxId, uids, [&](const Stmt& st) { out.push_back(static_cast<uint32_t>(st.columnInt64(0))); });
  if (!s) return propagate(s);
  return out;
}

Result<std::string> messageBytes(Store& store, int64_t mailboxId, uint32_t uid) {
  std::string out;
  if (auto s = messageBytes(store, mailboxId, uid, out); !s) return propagate(s);
  return out;
}

Result<std::optional<mime::MessageAnalysis>> messageAnalysis(Store& store, int64_t mailboxId, uint32_t uid) {
  auto st = store.db().prepare(
      "SELECT analysis, envelope, bodystructure, message_id, subject, from_text, to_text, cc_text, bcc_text, sent_at "
      "FROM messages WHERE mailbox_id = ?1 AND uid = ?2");
  if (!st) return propagate(st);
  auto row = st->bind(1, mailboxId).bind(2, uid).step();
  if (!row) return propagate(row);
  if (!*row) return fail(ErrorKind::NotFound, "no message with uid " + std::to_string(uid));
  std::string blob = st->columnText(0);
  if (blob.empty()) return std::optional<mime::MessageAnalysis>();
  auto a = mime::restoreAnalysis(
      blob, {st->columnText(1), st->columnText(2), st->columnText(3), st->columnText(4), st->columnText(5),
             st->columnText(6), st->columnText(7), st->columnText(8), st->columnOptInt64(9)});
  if (!a) return propagate(a);
  return std::optional<mime::MessageAnalysis>(std::move(*a));
}

Result<HeaderColumns> headerColumns(Store& store, int64_t mailboxId, uint32_t uid) {
  auto st = store.db().prepare(
      "SELECT message_id, subject, from_text, to_text, cc_text, bcc_text, sent_at FROM messages "
      "WHERE mailbox_id = ?1 AND uid = ?2");
  if (!st) return propagate(st);
  auto row = st->bind(1, mailboxId).bind(2, uid).step();
  if (!row) return propagate(row);
  if (!*row) return fail(ErrorKind::NotFound, "no message with uid " + std::to_string(uid));
  HeaderColumns h;
  h.messageId = st->columnText(0);
  h.subject = st->columnText(1);
  h.from = st->columnText(2);
  h.to = st->columnText(3);
  h.cc = st->columnText(4);
  h.bcc = st->columnText(5);
  h.sentAt = st->columnOptInt64(6);
  return h;
}

Result<FlagResult> updateFlags(Store& store, int64_t mailboxId, std::span<const uint32_t> uids,
                               const FlagUpdate& update) {
  for (const auto& k : update.keywords)
    if (k.empty() || k.find_first_of(" \t\r\n") != std::string::npos) return fail(ErrorKind::User, "invalid keyword");
  Db& db = store.db();
  FlagResult result;
  StoreChange change;
  {
    auto tx = Transaction::begin(db);
    if (!tx) return propagate(tx);
    auto box = boxRow(db, mailboxId);
    if (!box) return propagate(box);
    uint64_t modseq = box->highestModseq;
    auto sel = db.prepare("SELECT flags, keywords, modseq FROM messages WHERE mailbox_id = ?1 AND uid = ?2");
    // The first local change since the last sync remembers where it started
    // (upstream_flags), for the sync engine's per-flag merge.
    auto upd = db.prepare(
        "UPDATE messages SET flags = ?1, keywords = ?2, modseq = ?3, upstream_flags = CASE WHEN upstream_id IS NULL "
        "THEN NULL ELSE coalesce(upstream_flags, ?6) END WHERE mailbox_id = ?4 AND uid = ?5");
    if (!sel) return propagate(sel);
    if (!upd) return propagate(upd);
    for (uint32_t uid : uids) {
      sel->reset();
      auto row = sel->bind(1, mailboxId).bind(2, uid).step();
      if (!row) return propagate(row);
      if (!*row) continue;
      uint32_t flags = static_cast<uint32_t>(sel->columnInt64(0));
      std::vector<std::string> keywords = splitKeywords(sel->columnText(1));
      uint64_t oldModseq = static_cast<uint64_t>(sel->columnInt64(2));
      if (update.unchangedSince && oldModseq > *update.unchangedSince) {
        result.failed.push_back(uid);
        continue;
      }
      uint32_t newFlags = flags;
      std::vector<std::string> newKeywords = keywords;
      auto hasKw = [](const std::vector<std::string>& v, const std::string& k) {
        return std::any_of(v.begin(), v.end(), [&](const std::string& x) { return x == k; });
      };
      switch (update.mode) {
        case FlagMode::Replace:
          newFlags = update.flags;
          newKeywords.clear();
          for (const auto& k : update.keywords)
            if (!hasKw(newKeywords, k)) newKeywords.push_back(k);
          break;
        case FlagMode::Add:
          newFlags |= update.flags;
          for (const auto& k : update.keywords)
            if (!hasKw(newKeywords, k)) newKeywords.push_back(k);
          break;
        case FlagMode::Remove:
          newFlags &= ~update.flags;
          std::erase_if(newKeywords, [&](const std::string& k) { return hasKw(update.keywords, k); });
          break;
      }
      std::vector<std::string> a = keywords, b = newKeywords;
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      uint64_t msgModseq = oldModseq;
      if (newFlags != flags || a != b) {
        msgModseq = ++modseq;
        upd->reset();
        if (auto s = upd->bind(1, newFlags)
                         .bind(2, std::optional<std::string>(newKeywords.empty() ? std::nullopt
                                                                                 : std::optional(joinKeywords(newKeywords))))
                         .bind(3, msgModseq)
                         .bind(4, mailboxId)
                         .bind(5, uid)
                         .bind(6, joinKeywords(flagWords(flags, keywords)))
                         .run();
            !s)
          return propagate(s);
        result.changed.push_back(uid);
        change.messages.push_back({uid, newFlags, newKeywords, msgModseq});
      }
      result.current.push_back({uid, newFlags, std::move(newKeywords), msgModseq});
    }
    if (result.changed.empty()) return result;  // nothing to commit or tell
    if (auto s = setBoxCounters(db, mailboxId, modseq, std::nullopt); !s) return propagate(s);
    nlohmann::json payload{{"mailbox", box->name},
                           {"mode", update.mode == FlagMode::Add ? "add" : update.mode == FlagMode::Remove ? "remove" : "replace"},
                           {"flags", flagNames(update.flags, update.keywords)},
                           {"uids", result.changed},
                           {"merge", 1}};  // replayed by merging against messages.upstream_flags
    if (auto s = writeJournal(db, box->accountId, {"flags", payload.dump()}, store.now()); !s) return propagate(s);
    if (auto s = tx->commit(); !s) return propagate(s);
    change.kind = StoreChange::Kind::FlagsChanged;
    change.accountId = box->accountId;
    change.mailboxId = mailboxId;
    change.modseq = modseq;
    change.name = box->name;
    change.origin = update.origin;
  }
  store.changes().publish(change);
  return result;
}

Result<CopyOutcome> copyMessages(Store& store, int64_t fromMailbox, std::span<const uint32_t> uids, int64_t toMailbox,
                                 bool move, const void* origin) {
  Db& db = store.db();
  CopyOutcome out;
  StoreChange added, removed;
  {
    auto tx = Transaction::begin(db);
    if (!tx) return propagate(tx);
    auto src = boxRow(db, fromMailbox);
    if (!src) return propagate(src);
    auto dst = boxRow(db, toMailbox);
    if (!dst) return propagate(dst);
    if (src->accountId != dst->accountId) return fail(ErrorKind::User, "cannot copy between accounts");
    out.uidValidity = dst->uidValidity;
    int64_t uidNext = dst->uidNext;
    uint64_t dstModseq = dst->highestModseq, srcModseq = src->highestModseq;
    if (fromMailbox == toMailbox) srcModseq = dstModseq;
    auto sel = db.prepare("SELECT flags, keywords, message_id, upstream_id FROM messages WHERE mailbox_id = ?1 AND uid = ?2");
    auto ins = db.prepare(
        "INSERT INTO messages (mailbox_id, uid, flags, keywords, internal_date, size, modseq, blob_id, message_id, "
        "envelope, bodystructure, analysis, subject, from_text, to_text, cc_text, bcc_text, sent_at, body_missing, "
        "blob_size, source_mailbox_id, source_upstream_id) "
        "SELECT ?1, ?2, flags, keywords, internal_date, size, ?3, blob_id, message_id, envelope, bodystructure, "
        "analysis, subject, from_text, to_text, cc_text, bcc_text, sent_at, body_missing, blob_size, "
        // A header-only copy's body comes from the source's upstream message
        // (or from where the source's own came from, for a copy of a copy).
        "CASE WHEN body_missing = 0 THEN NULL WHEN coalesce(upstream_id, '') != '' THEN ?4 ELSE source_mailbox_id END, "
        "CASE WHEN body_missing = 0 THEN NULL WHEN coalesce(upstream_id, '') != '' THEN upstream_id "
        "ELSE source_upstream_id END FROM messages "
        "WHERE mailbox_id = ?4 AND uid = ?5");
    auto hdr = db.prepare(
        "INSERT INTO message_headers (message_id, header) SELECT ?1, h.header FROM messages m "
        "JOIN message_headers h ON h.message_id = m.id WHERE m.mailbox_id = ?2 AND m.uid = ?3");
    auto del = db.prepare("DELETE FROM messages WHERE mailbox_id = ?1 AND uid = ?2");
    auto gone = db.prepare("INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?1, ?2, ?3)");
    if (!sel) return propagate(sel);
    if (!ins) return propagate(ins);
    if (!hdr) return propagate(hdr);
    if (!del) return propagate(del);
    if (!gone) return propagate(gone);
    nlohmann::json messageIds = nlohmann::json::array(), upstreamIds = nlohmann::json::array();
    for (uint32_t uid : uids) {
      sel->reset();
      auto row = sel->bind(1, fromMailbox).bind(2, uid).step();
      if (!row) return propagate(row);
      if (!*row) continue;
      if (uidNext > UINT32_MAX) return fail(ErrorKind::User, "mailbox UID space exhausted", "LIMIT");
      uint32_t flags = static_cast<uint32_t>(sel->columnInt64(0));
      std::vector<std::string> keywords = splitKeywords(sel->columnText(1));
      messageIds.push_back(sel->columnText(2));
      upstreamIds.push_back(sel->columnText(3));
      uint32_t newUid = static_cast<uint32_t>(uidNext++);
      uint64_t modseq = ++dstModseq;
      if (fromMailbox == toMailbox) srcModseq = dstModseq;
      ins->reset();
      if (auto s = ins->bind(1, toMailbox).bind(2, newUid).bind(3, modseq).bind(4, fromMailbox).bind(5, uid).run(); !s)
        return propagate(s);
      hdr->reset();
      if (auto s = hdr->bind(1, db.lastInsertRowid()).bind(2, fromMailbox).bind(3, uid).run(); !s) return propagate(s);
      out.sourceUids.push_back(uid);
      out.destUids.push_back(newUid);
      added.messages.push_back({newUid, flags, std::move(keywords), modseq});
    }
    if (out.sourceUids.empty()) return out;
    if (auto s = setBoxCounters(db, toMailbox, dstModseq, uidNext); !s) return propagate(s);
    if (move) {
      uint64_t modseq = ++srcModseq;
      for (uint32_t uid : out.sourceUids) {
        del->reset();
        if (auto s = del->bind(1, fromMailbox).bind(2, uid).run(); !s) return propagate(s);
        gone->reset();
        if (auto s = gone->bind(1, fromMailbox).bind(2, uid).bind(3, modseq).run(); !s) return propagate(s);
      }
      if (auto s = setBoxCounters(db, fromMailbox, modseq, std::nullopt); !s) return propagate(s);
    }
    nlohmann::json payload{{"from", src->name},     {"to", dst->name},          {"uids", out.sourceUids},
                           {"dest_uids", out.destUids}, {"message_ids", messageIds},
                           {"upstream_ids", upstreamIds}};
    if (auto s = writeJournal(db, src->accountId, {move ? "move" : "copy", payload.dump()}, store.now()); !s)
      return propagate(s);
    if (auto s = tx->commit(); !s) return propagate(s);
    added.kind = StoreChange::Kind::MessagesAdded;
    added.accountId = dst->accountId;
    added.mailboxId = toMailbox;
    added.modseq = dstModseq;
    added.name = dst->name;
    added.origin = origin;
    if (move) {
      removed.kind = StoreChange::Kind::MessagesExpunged;
      removed.accountId = src->accountId;
      removed.mailboxId = fromMailbox;
      removed.uids = out.sourceUids;
      removed.modseq = srcModseq;
      removed.name = src->name;
      removed.origin = origin;
    }
  }
  store.changes().publish(added);
  if (move) store.changes().publish(removed);
  return out;
}

namespace {

// Removes the given rows (uid, blob) in one transaction, with the expunge log
// and, when journal, the "expunge" row naming the upstream ids; then
// publishes and frees the blobs.
Result<std::vector<uint32_t>> removeRows(Store& store, int64_t mailboxId, const std::string& selectSql,
                                         const std::function<bool(uint32_t)>& wanted, bool journal, const void* origin) {
  Db& db = store.db();
  std::vector<uint32_t> uids;
  std::vector<std::string> blobIds;
  StoreChange change;
  {
    auto tx = Transaction::begin(db);
    if (!tx) return propagate(tx);
    auto box = boxRow(db, mailboxId);
    if (!box) return propagate(box);
    auto sel = db.prepare(selectSql);
    if (!sel) return propagate(sel);
    sel->bind(1, mailboxId);
    nlohmann::json messageIds = nlohmann::json::array(), upstreamIds = nlohmann::json::array();
    auto rows = sel->forEachRow([&](Stmt& r) {
      uint32_t uid = static_cast<uint32_t>(r.columnInt64(0));
      if (!wanted(uid)) return;
      uids.push_back(uid);
      blobIds.push_back(r.columnText(1));
      messageIds.push_back(r.columnText(2));
      upstreamIds.push_back(r.columnText(3));
    });
    if (!rows) return propagate(rows);
    if (uids.empty()) return uids;
    uint64_t modseq = box->highestModseq + 1;
    auto del = db.prepare("DELETE FROM messages WHERE mailbox_id = ?1 AND uid = ?2");
    auto gone = db.prepare("INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?1, ?2, ?3)");
    if (!del) return propagate(del);
    if (!gone) return propagate(gone);
    for (uint32_t uid : uids) {
      del->reset();
      if (auto s = del->bind(1, mailboxId).bind(2, uid).run(); !s) return propagate(s);
      gone->reset();
      if (auto s = gone->bind(1, mailboxId).bind(2, uid).bind(3, modseq).run(); !s) return propagate(s);
    }
    if (auto s = setBoxCounters(db, mailboxId, modseq, std::nullopt); !s) return propagate(s);
    if (journal) {
      nlohmann::json payload{{"mailbox", box->name}, {"uids", uids}, {"message_ids", messageIds}, {"upstream_ids", upstreamIds}};
      if (auto s = writeJournal(db, box->accountId, {"expunge", payload.dump()}, store.now()); !s) return propagate(s);
    }
    if (auto s = tx->commit(); !s) return propagate(s);
    change.kind = StoreChange::Kind::MessagesExpunged;
    change.accountId = box->accountId;
    change.mailboxId = mailboxId;
    change.uids = uids;
    change.modseq = modseq;
    change.name = box->name;
    change.origin = origin;
  }
  std::sort(blobIds.begin(), blobIds.end());
  blobIds.erase(std::unique(blobIds.begin(), blobIds.end()), blobIds.end());
  for (const auto& id : blobIds) store.releaseBlob(id);
  store.changes().publish(change);
  return uids;
}

}  // namespace

Result<std::vector<uint32_t>> expungeDeleted(Store& store, int64_t mailboxId,
                                             std::optional<std::span<const uint32_t>> only, const void* origin) {
  return removeRows(
      store, mailboxId,
      "SELECT uid, blob_id, message_id, upstream_id FROM messages WHERE mailbox_id = ?1 AND (flags & 8) != 0 ORDER BY uid",
      [&](uint32_t uid) { return !only || std::binary_search(only->begin(), only->end(), uid); }, true, origin);
}

Result<std::vector<uint32_t>> removeMessages(Store& store, int64_t mailboxId, std::span<const uint32_t> uids,
                                             const void* origin) {
  std::vector<uint32_t> sorted(uids.begin(), uids.end());
  std::sort(sorted.begin(), sorted.end());
  return removeRows(
      store, mailboxId, "SELECT uid, blob_id, message_id, upstream_id FROM messages WHERE mailbox_id = ?1 ORDER BY uid",
      [&](uint32_t uid) { return std::binary_search(sorted.begin(), sorted.end(), uid); }, false, origin);
}

Status setFlagsExact(Store& store, int64_t mailboxId, std::span<const ChangedMessage> wanted, const void* origin) {
  if (wanted.empty()) return {};
  Db& db = store.db();
  StoreChange change;
  {
    auto tx = Transaction::begin(db);
    if (!tx) return propagate(tx);
    auto box = boxRow(db, mailboxId);
    if (!box) return propagate(box);
    uint64_t modseq = box->highestModseq;
    auto upd = db.prepare(
        "UPDATE messages SET flags = ?1, keywords = ?2, modseq = ?3 WHERE mailbox_id = ?4 AND uid = ?5 "
        "AND (flags != ?1 OR coalesce(keywords, '') != coalesce(?2, ''))");
    if (!upd) return propagate(upd);
    for (const auto& m : wanted) {
      std::optional<std::string> kw;
      if (!m.keywords.empty()) kw = joinKeywords(m.keywords);
      upd->reset();
      if (auto s = upd->bind(1, m.flags).bind(2, kw).bind(3, modseq + 1).bind(4, mailboxId).bind(5, m.uid).run(); !s)
        return propagate(s);
      if (db.changes() == 0) continue;
      ++modseq;
      change.messages.push_back({m.uid, m.flags, m.keywords, modseq});
      // Later rows get their own modseq.
    }
    if (change.messages.empty()) return {};
    if (auto s = setBoxCounters(db, mailboxId, modseq, std::nullopt); !s) return propagate(s);
    if (auto s = tx->commit(); !s) return propagate(s);
    change.kind = StoreChange::Kind::FlagsChanged;
    change.accountId = box->accountId;
    change.mailboxId = mailboxId;
    change.modseq = modseq;
    change.name = box->name;
    change.origin = origin;
  }
  store.changes().publish(change);
  return {};
}

Result<std::vector<uint32_t>> expungedSince(Store& store, int64_t mailboxId, uint64_t modseq) {
  auto st = store.db().prepare("SELECT uid FROM expunged WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid");
  if (!st) return propagate(st);
  st->bind(1, mailboxId).bind(2, modseq);
  std::vector<uint32_t> out;
  auto rows = st->forEachRow([&](Stmt& r) {
    out.push_back(static_cast<uint32_t>(r.columnInt64(0)));
  });
  if (!rows) return propagate(rows);
  return out;
}

}  // namespace mb::store
