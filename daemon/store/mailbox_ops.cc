// Mailbox operations for local sessions (see mailbox_ops.h).
#include "daemon/store/mailbox_ops.h"

#include <nlohmann/json.hpp>

#include "daemon/store/message_ops.h"

namespace mb::store {
namespace {

JournalEntry entry(const char* op, nlohmann::json payload) { return JournalEntry{op, payload.dump()}; }

Result<int64_t> idOf(Store& store, int64_t accountId, std::string_view name) {
  auto m = store.findMailbox(accountId, name);
  if (!m) return propagate(m);
  if (!*m) return fail(ErrorKind::NotFound, "no mailbox " + std::string(name));
  return (*m)->id;
}

}  // namespace

Status ensureDefaultMailboxes(Store& store, int64_t accountId) {
  static const std::pair<const char*, const char*> kDefaults[] = {
      {"INBOX", ""},         {"Sent", "\\Sent"},   {"Drafts", "\\Drafts"},
      {"Trash", "\\Trash"},  {"Junk", "\\Junk"},   {"Archive", "\\Archive"}};
  auto existing = store.listMailboxes(accountId);
  if (!existing) return propagate(existing);
  for (auto [name, use] : kDefaults) {
    bool have = false;
    for (const auto& m : *existing) have = have || m.name == name || (*use && m.specialUse == use);
    if (have) continue;
    auto created = store.createMailbox(accountId, name, use, entry("mailbox.create", {{"mailbox", name}, {"special_use", use}}));
    if (!created && created.error().kind != ErrorKind::Conflict) return propagate(created);
  }
  return {};
}

Result<Mailbox> createMailboxLocal(Store& store, int64_t accountId, std::string_view name, std::string_view specialUse,
                                   const void* origin) {
  return store.createMailbox(accountId, name, specialUse,
                             entry("mailbox.create", {{"mailbox", name}, {"special_use", specialUse}}), origin);
}

Status deleteMailboxLocal(Store& store, int64_t accountId, std::string_view name, const void* origin, bool journal) {
  if (name == "INBOX") return fail(ErrorKind::User, "INBOX cannot be deleted");
  Db& db = store.db();
  std::vector<std::string> blobIds;
  int64_t id = 0;
  {
    auto tx = Transaction::begin(db);
    if (!tx) return propagate(tx);
    auto found = idOf(store, accountId, name);
    if (!found) return propagate(found);
    id = *found;
    auto blobs = db.prepare("SELECT DISTINCT blob_id FROM messages WHERE mailbox_id = ?1");
    if (!blobs) return propagate(blobs);
    blobs->bind(1, id);
    auto rows = blobs->forEachRow([&](Stmt& r) {
      blobIds.push_back(r.columnText(0));
    });
    if (!rows) return propagate(rows);
    auto del = db.prepare("DELETE FROM mailboxes WHERE id = ?1");
    if (!del) return propagate(del);
    if (auto s = del->bind(1, id).run(); !s) return s;
    if (journal) {
      if (auto s = writeJournal(db, accountId, entry("mailbox.delete", {{"mailbox", name}}), store.now()); !s) return s;
    }
    if (auto s = tx->commit(); !s) return s;
  }
  for (const auto& b : blobIds) store.releaseBlob(b);
  StoreChange change;
  change.kind = StoreChange::Kind::MailboxDeleted;
  change.accountId = accountId;
  change.mailboxId = id;
  change.name = std::string(name);
  change.origin = origin;
  store.changes().publish(change);
  return {};
}

Status renameMailboxLocal(Store& store, int64_t accountId, std::string_view from, std::string_view to, char delimiter,
                          const void* origin, bool journal) {
  if (from == to) return fail(ErrorKind::Conflict, "mailbox " + std::string(to) + " exists already");
  if (to == "INBOX") return fail(ErrorKind::Conflict, "INBOX exists already");
  if (from == "INBOX") {
    // RFC 3501 6.3.5: all messages move to the new mailbox; INBOX stays,
    // empty, and its children are not renamed.
    auto inbox = idOf(store, accountId, "INBOX");
    if (!inbox) return propagate(inbox);
    auto created = createMailboxLocal(store, accountId, to, "", origin);
    if (!created) return propagate(created);
    auto uids = listUids(store, *inbox);
    if (!uids) return propagate(uids);
    if (!uids->empty()) {
      auto moved = copyMessages(store, *inbox, *uids, created->id, true, origin);
      if (!moved) return propagate(moved);
    }
    return {};
  }
  Db& db = store.db();
  int64_t id = 0;
  {
    auto tx = Transaction::begin(db);
    if (!tx) return propagate(tx);
    auto found = idOf(store, accountId, from);
    if (!found) return propagate(found);
    id = *found;
    std::string prefix = std::string(from) + delimiter;
    // Fails on a clash with the target or any renamed child.
    auto clash = db.prepare(
        "SELECT 1 FROM mailboxes WHERE account_id = ?1 AND name IN (SELECT ?2 || substr(name, ?3) FROM mailboxes "
        "WHERE account_id = ?1 AND (name = ?4 OR substr(name, 1, ?5) = ?6))");
    if (!clash) return propagate(clash);
    auto hit = clash->bind(1, accountId)
                   .bind(2, to)
                   .bind(3, static_cast<int64_t>(from.size()) + 1)
                   .bind(4, from)
                   .bind(5, static_cast<int64_t>(prefix.size()))
                   .bind(6, prefix)
                   .step();
    if (!hit) return propagate(hit);
    if (*hit) return fail(ErrorKind::Conflict, "mailbox " + std::string(to) + " exists already");
    auto upd = db.prepare(
        "UPDATE mailboxes SET name = ?2 || substr(name, ?3) WHERE account_id = ?1 AND (name = ?4 OR substr(name, 1, ?5) = ?6)");
    if (!upd) return propagate(upd);
    if (auto s = upd->bind(1, accountId)
                     .bind(2, to)
                     .bind(3, static_cast<int64_t>(from.size()) + 1)
                     .bind(4, from)
                     .bind(5, static_cast<int64_t>(prefix.size()))
                     .bind(6, prefix)
                     .run();
        !s)
      return s;
    if (journal) {
      if (auto s = writeJournal(db, accountId, entry("mailbox.rename", {{"from", from}, {"to", to}}), store.now()); !s)
        return s;
    }
    if (auto s = tx->commit(); !s) return s;
  }
  StoreChange change;
  change.kind = StoreChange::Kind::MailboxRenamed;
  change.accountId = accountId;
  change.mailboxId = id;
  change.name = std::string(to);
  change.oldName = std::string(from);
  change.origin = origin;
  store.changes().publish(change);
  return {};
}

Status setSubscribed(Store& store, int64_t accountId, std::string_view name, bool subscribed, const void*) {
  Db& db = store.db();
  auto tx = Transaction::begin(db);
  if (!tx) return propagate(tx);
  auto upd = db.prepare("UPDATE mailboxes SET subscribed = ?1 WHERE account_id = ?2 AND name = ?3");
  if (!upd) return propagate(upd);
  if (auto s = upd->bind(1, subscribed ? 1 : 0).bind(2, accountId).bind(3, name).run(); !s) return s;
  if (db.changes() == 0) return fail(ErrorKind::NotFound, "no mailbox " + std::string(name));
  if (auto s = writeJournal(db, accountId, entry(subscribed ? "mailbox.subscribe" : "mailbox.unsubscribe", {{"mailbox", name}}),
                            store.now());
      !s)
    return s;
  return tx->commit();
}

Result<MailboxCounts> mailboxCounts(Store& store, int64_t mailboxId) {
  auto st = store.db().prepare(
      "SELECT count(*), coalesce(sum((flags & 1) = 0), 0), coalesce(sum((flags & 8) != 0), 0), coalesce(sum(size), 0) "
      "FROM messages WHERE mailbox_id = ?1");
  if (!st) return propagate(st);
  auto row = st->bind(1, mailboxId).step();
  if (!row) return propagate(row);
  MailboxCounts c;
  c.messages = static_cast<uint32_t>(st->columnInt64(0));
  c.unseen = static_cast<uint32_t>(st->columnInt64(1));
  c.deleted = static_cast<uint32_t>(st->columnInt64(2));
  c.size = static_cast<uint64_t>(st->columnInt64(3));
  return c;
}

Result<std::optional<Mailbox>> mailboxById(Store& store, int64_t mailboxId) {
  auto st = store.db().prepare("SELECT account_id, name FROM mailboxes WHERE id = ?1");
  if (!st) return propagate(st);
  auto row = st->bind(1, mailboxId).step();
  if (!row) return propagate(row);
  if (!*row) return std::optional<Mailbox>();
  return store.findMailbox(st->columnInt64(0), st->columnText(1));
}

}  // namespace mb::store
