// Store: opening (validate, WAL, migrate, crash GC) and the account, mailbox
// and message operations, each one transaction.
#include "daemon/store/store.h"

#include <strings.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "daemon/log/log.h"
#include "daemon/store/migrations.h"
#include "protocols/mime/analysis.h"
#include "protocols/mime/header.h"
#include "protocols/mime/search.h"

namespace mb::store {
namespace {

// Other connections (REST snapshot readers, sqlite3 CLI) can hold the db
// briefly; wait rather than fail a client's command.
constexpr int kBusyTimeoutMs = 5000;
// The WAL is copied back into the database file (on the Checkpointer's
// thread) once it holds this many pages.
constexpr int kCheckpointPages = 4000;

std::optional<AccountSource> parseSource(std::string_view text) {
  if (text == "config") return AccountSource::Config;
  if (text == "api") return AccountSource::Api;
  return std::nullopt;
}

constexpr const char* kAccountColumns = "id, name, address, local_username, source, created_at";

Result<Account> readAccount(const Stmt& st) {
  Account a;
  a.id = st.columnInt64(0);
  a.name = st.columnText(1);
  a.address = st.columnText(2);
  a.localUsername = st.columnOptText(3);
  auto source = parseSource(st.columnText(4));
  if (!source) return fail(ErrorKind::Corrupt, "account " + a.name + " has unknown source '" + st.columnText(4) + "'");
  a.source = *source;
  a.createdAt = st.columnOptInt64(5).value_or(0);
  return a;
}

constexpr const char* kMailboxColumns =
    "id, account_id, name, special_use, subscribed, uidvalidity, uidnext, highest_modseq, upstream_name, "
    "upstream_uidvalidity, upstream_state";

Mailbox readMailbox(const Stmt& st) {
  Mailbox m;
  m.id = st.columnInt64(0);
  m.accountId = st.columnInt64(1);
  m.name = st.columnText(2);
  m.specialUse = st.columnText(3);
  m.subscribed = st.columnInt64(4) != 0;
  m.uidValidity = static_cast<uint32_t>(st.columnInt64(5));
  m.uidNext = static_cast<uint32_t>(st.columnInt64(6));
  m.highestModseq = static_cast<uint64_t>(st.columnInt64(7));
  m.upstreamName = st.columnText(8);
  if (auto v = st.columnOptInt64(9)) m.upstreamUidValidity = static_cast<uint32_t>(*v);
  m.upstreamState = st.columnText(10);
  return m;
}

std::optional<std::string> nullIfEmpty(std::string_view s) {
  if (s.empty()) return std::nullopt;
  return std::string(s);
}

// Refuses, before anything writes to the file, what we must not migrate.
Status checkOpenable(Db& db) {
  // The first read of the file: this is where a non-database is detected.
  auto version = db.queryInt("PRAGMA user_version");
  if (!version) return propagate(version);
  if (*version > latestSchemaVersion()) {
    return fail(ErrorKind::Config, db.path() + ": schema v" + std::to_string(*version) +
                                       " was created by a newer mailbridge (this one knows up to v" +
                                       std::to_string(latestSchemaVersion()) + "); not opening it");
  }
  auto appId = db.queryInt("PRAGMA application_id");
  if (!appId) return propagate(appId);
  bool foreign = *appId != 0 && *appId != kApplicationId;
  if (!foreign && *version == 0) {
    auto tables = db.queryInt("SELECT count(*) FROM sqlite_schema");
    if (!tables) return propagate(tables);
    foreign = *tables > 0;
  }
  if (foreign) {
    return fail(ErrorKind::Config, db.path() + ": is a SQLite database of another program, not mailbridge's");
  }
  return {};
}

}  // namespace

namespace {
constexpr std::pair<uint32_t, const char*> kFlagNames[] = {{kFlagSeen, "\\Seen"},       {kFlagAnswered, "\\Answered"},
                                                           {kFlagFlagged, "\\Flagged"}, {kFlagDeleted, "\\Deleted"},
                                                           {kFlagDraft, "\\Draft"}};
}  // namespace

std::vector<std::string> flagWords(uint32_t flags, const std::vector<std::string>& keywords) {
  std::vector<std::string> out;
  for (auto [bit, name] : kFlagNames)
    if (flags & bit) out.emplace_back(name);
  for (const auto& k : keywords) out.push_back(k);
  return out;
}

void parseFlagWords(const std::vector<std::string>& words, uint32_t& flags, std::vector<std::string>& keywords) {
  flags = 0;
  keywords.clear();
  for (const auto& w : words) {
    if (w.empty()) continue;
    if (w[0] == '\\') {
      for (auto [bit, name] : kFlagNames)
        if (strcasecmp(w.c_str(), name) == 0) flags |= bit;
      continue;
    }
    keywords.push_back(w);
  }
  std::sort(keywords.begin(), keywords.end());
  keywords.erase(std::unique(keywords.begin(), keywords.end()), keywords.end());
}

std::string joinKeywords(const std::vector<std::string>& keywords) {
  std::string out;
  for (const auto& k : keywords) {
    if (!out.empty()) out.push_back(' ');
    out += k;
  }
  return out;
}

std::vector<std::string> splitKeywords(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(' ', pos);
    if (end == std::string_view::npos) end = text.size();
    if (end > pos) out.emplace_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

const char* accountSourceName(AccountSource source) { return source == AccountSource::Api ? "api" : "config"; }

Result<std::unique_ptr<Store>> Store::open(const std::filesystem::path& stateDir, StoreOptions options) {
  struct stat st {};
  if (::stat(stateDir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return fail(ErrorKind::Io, "state dir " + stateDir.string() + " does not exist or is not a directory");
  }
  auto db = Db::open((stateDir / "mailbridge.db").string());
  if (!db) return propagate(db);
  if (auto s = db->exec("PRAGMA busy_timeout = " + std::to_string(kBusyTimeoutMs)); !s) return propagate(s);
  if (auto s = checkOpenable(*db); !s) return propagate(s);

  // WAL: readers (REST snapshots) never block the loop's writer. FULL: in WAL
  // mode NORMAL may lose the last commits on power loss, and our commits
  // acknowledge mail to clients (APPEND OK, SMTP 250), so each one is synced.
  auto mode = db->queryText("PRAGMA journal_mode = WAL");
  if (!mode) return propagate(mode);
  if (*mode != "wal") return fail(ErrorKind::Io, db->path() + ": cannot switch to WAL mode (got " + *mode + ")");
  if (auto s = db->exec("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON"); !s) return propagate(s);
  // What is deleted is zeroed, whatever the library's default (Debian builds
  // SQLite with it on, others off): a removed account keeps nothing on disk,
  // and neither an old version of its settings a PATCH replaced, nor an
  // expunged message's headers (docs/decisions.md).
  if (auto s = db->exec("PRAGMA secure_delete = ON"); !s) return propagate(s);
  // A sync commits batches of up to 200 rows (each with its analysis and
  // header block) and their index entries, the blob-id index at random
  // places: with SQLite's defaults (2 MB cache, a checkpoint every 1,000
  // pages) the same index pages were read back and checkpointed again every
  // few batches (checkpoint ~4% of the sync's CPU). 16 MB of cache and a
  // checkpoint every 4,000 pages (kCheckpointPages below; the WAL stays
  // under ~20 MB).
  if (auto s = db->exec("PRAGMA cache_size = -16384"); !s) return propagate(s);
  if (auto s = migrate(*db); !s) return propagate(s);

  auto blobs = BlobStore::open(stateDir / "blobs");
  if (!blobs) return propagate(blobs);

  std::function<int64_t()> clock = options.clock ? std::move(options.clock) : [] { return static_cast<int64_t>(::time(nullptr)); };
  std::unique_ptr<Store> store(new Store(stateDir, std::move(*db), std::move(*blobs), std::move(clock)));
  if (auto s = store->collectGarbage(); !s) return propagate(s);
  auto checkpointer = Checkpointer::start(store->db_, kCheckpointPages);
  if (!checkpointer) return propagate(checkpointer);
  store->checkpointer_ = std::move(*checkpointer);
  logInfo("store.opened").kv("path", store->db_.path()).kv("schema", latestSchemaVersion());
  return store;
}

Status Store::collectGarbage() {
  std::unordered_set<std::string> referenced;
  auto st = db_.prepare("SELECT blob_id FROM messages UNION SELECT blob_id FROM outbox WHERE blob_id IS NOT NULL");
  if (!st) return propagate(st);
  auto rows = st->forEachRow([&](Stmt& r) {
    referenced.insert(r.columnText(0));
  });
  if (!rows) return propagate(rows);
  auto stats = blobs_.gc(referenced);
  if (!stats) return propagate(stats);
  if (stats->tmpRemoved || stats->blobsRemoved) {
    logInfo("store.blob_gc")
        .kv("tmp_removed", stats->tmpRemoved)
        .kv("blobs_removed", stats->blobsRemoved)
        .kv("bytes_freed", stats->bytesFreed);
  }
  return {};
}

Result<bool> Store::blobReferenced(std::string_view blobId) {
  auto st = db_.prepare(
      "SELECT EXISTS (SELECT 1 FROM messages WHERE blob_id = ?1) OR EXISTS (SELECT 1 FROM outbox WHERE blob_id = ?1)");
  if (!st) return propagate(st);
  auto row = st->bind(1, blobId).step();
  if (!row) return propagate(row);
  return *row && st->columnInt64(0) != 0;
}

// Bodies are deduplicated across mailboxes and accounts, so a blob goes only
// when no row uses it. Failure just leaves garbage for the next open's GC.
void Store::removeBlobIfUnreferenced(const std::string& blobId) {
  if (blobId.empty()) return;  // a header-only message has none
  auto used = blobReferenced(blobId);
  if (!used || *used) return;
  if (auto s = blobs_.remove(blobId); !s) logWarn("store.blob_remove_failed").kv("error", s.error().message);
}

// ---- accounts

Result<int64_t> Store::ensureAccount(std::string_view name, std::string_view address, AccountSource source) {
  if (name.empty()) return fail(ErrorKind::User, "account name is empty");
  auto tx = Transaction::begin(db_);
  if (!tx) return propagate(tx);

  auto find = db_.prepare("SELECT id, address, source FROM accounts WHERE name = ?1");
  if (!find) return propagate(find);
  auto row = find->bind(1, name).step();
  if (!row) return propagate(row);
  int64_t id;
  if (*row) {
    id = find->columnInt64(0);
    std::string oldAddress = find->columnText(1);
    std::string oldSource = find->columnText(2);
    if (oldSource != accountSourceName(source)) {
      return fail(ErrorKind::Conflict,
                  "account " + std::string(name) + " exists already (created via " + oldSource + ")");
    }
    if (oldAddress != address) {
      auto upd = db_.prepare("UPDATE accounts SET address = ?1 WHERE id = ?2");
      if (!upd) return propagate(upd);
      if (auto s = upd->bind(1, address).bind(2, id).run(); !s) return propagate(s);
    }
  } else {
    auto ins = db_.prepare("INSERT INTO accounts (name, address, source, created_at) VALUES (?1, ?2, ?3, ?4)");
    if (!ins) return propagate(ins);
    if (auto s = ins->bind(1, name).bind(2, address).bind(3, accountSourceName(source)).bind(4, now()).run(); !s) {
      return propagate(s);
    }
    id = db_.lastInsertRowid();
  }
  if (auto s = tx->commit(); !s) return propagate(s);
  return id;
}

Result<std::vector<Account>> Store::listAccounts() {
  auto st = db_.prepare(std::string("SELECT ") + kAccountColumns + " FROM accounts ORDER BY id");
  if (!st) return propagate(st);
  std::vector<Account> out;
  auto rows = st->forEachRow([&](Stmt& r) -> Status {
    auto a = readAccount(r);
    if (!a) return propagate(a);
    out.push_back(std::move(*a));
    return {};
  });
  if (!rows) return propagate(rows);
  return out;
}

Result<std::optional<Account>> Store::findAccount(std::string_view name) {
  auto st = db_.prepare(std::string("SELECT ") + kAccountColumns + " FROM accounts WHERE name = ?1");
  if (!st) return propagate(st);
  auto row = st->bind(1, name).step();
  if (!row) return propagate(row);
  if (!*row) return std::optional<Account>();
  auto a = readAccount(*st);
  if (!a) return propagate(a);
  return std::optional<Account>(std::move(*a));
}

Status Store::removeAccount(int64_t accountId) {
  std::vector<std::string> blobIds;
  // Nothing of a removed account may stay on disk: secure_delete (on since
  // open) zeroes the freed cells and pages, and the checkpoint below empties
  // the WAL, which still holds the old pages.
  {
    auto tx = Transaction::begin(db_);
    if (!tx) return propagate(tx);
    auto st = db_.prepare(
        "SELECT m.blob_id FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id WHERE b.account_id = ?1 "
        "UNION SELECT blob_id FROM outbox WHERE account_id = ?1 AND blob_id IS NOT NULL");
    if (!st) return propagate(st);
    st->bind(1, accountId);
    auto rows = st->forEachRow([&](Stmt& r) {
      blobIds.push_back(r.columnText(0));
    });
    if (!rows) return propagate(rows);
    auto del = db_.prepare("DELETE FROM accounts WHERE id = ?1");
    if (!del) return propagate(del);
    if (auto s = del->bind(1, accountId).run(); !s) return propagate(s);
    if (db_.changes() == 0) return fail(ErrorKind::NotFound, "no account with id " + std::to_string(accountId));
    if (auto s = tx->commit(); !s) return propagate(s);
  }
  // After the commit: a crash here leaves unreferenced blobs for the next GC,
  // never a row without its body.
  for (const auto& id : blobIds) removeBlobIfUnreferenced(id);
  auto paused = checkpointer_->pause();
  auto busy = db_.queryInt("PRAGMA wal_checkpoint(TRUNCATE)");
  paused.unlock();
  if (!busy || *busy != 0)
    logWarn("store.checkpoint_incomplete").kv("after", "account removal").kv("note", "the WAL is emptied by a later checkpoint");
  logInfo("store.account_removed").kv("account_id", accountId).kv("blobs", static_cast<uint64_t>(blobIds.size()));
  StoreChange change;
  change.kind = StoreChange::Kind::AccountRemoved;
  change.accountId = accountId;
  changes_.publish(change);
  return {};
}

// ---- mailboxes

Result<Mailbox> Store::createMailbox(int64_t accountId, std::string_view name, std::string_view specialUse,
                                    const std::optional<JournalEntry>& journal, const void* origin) {
  if (name.empty()) return fail(ErrorKind::User, "mailbox name is empty");
  auto tx = Transaction::begin(db_);
  if (!tx) return propagate(tx);

  auto acct = db_.prepare("SELECT 1 FROM accounts WHERE id = ?1");
  if (!acct) return propagate(acct);
  auto found = acct->bind(1, accountId).step();
  if (!found) return propagate(found);
  if (!*found) return fail(ErrorKind::NotFound, "no account with id " + std::to_string(accountId));

  auto dup = db_.prepare("SELECT 1 FROM mailboxes WHERE account_id = ?1 AND name = ?2");
  if (!dup) return propagate(dup);
  auto exists = dup->bind(1, accountId).bind(2, name).step();
  if (!exists) return propagate(exists);
  if (*exists) return fail(ErrorKind::Conflict, "mailbox " + std::string(name) + " exists already");

  // Clock-based like Dovecot, but strictly increasing across the whole store
  // (remembered in store_meta), so a clock step back or a delete+create in the
  // same second can never hand a client an old UIDVALIDITY for new contents.
  auto last = db_.queryInt("SELECT coalesce((SELECT value FROM store_meta WHERE key = 'last_uidvalidity'), 0)");
  if (!last) return propagate(last);
  int64_t uidValidity = std::max(now(), *last + 1);
  if (uidValidity > UINT32_MAX) return fail(ErrorKind::Internal, "UIDVALIDITY space exhausted");
  auto meta = db_.prepare(
      "INSERT INTO store_meta (key, value) VALUES ('last_uidvalidity', ?1) "
      "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
  if (!meta) return propagate(meta);
  if (auto s = meta->bind(1, uidValidity).run(); !s) return propagate(s);

  auto ins = db_.prepare(
      "INSERT INTO mailboxes (account_id, name, special_use, subscribed, uidvalidity, uidnext, highest_modseq) "
      "VALUES (?1, ?2, ?3, 1, ?4, 1, 1)");
  if (!ins) return propagate(ins);
  if (auto s = ins->bind(1, accountId).bind(2, name).bind(3, nullIfEmpty(specialUse)).bind(4, uidValidity).run(); !s) {
    return propagate(s);
  }
  Mailbox m;
  m.id = db_.lastInsertRowid();
  m.accountId = accountId;
  m.name = std::string(name);
  m.specialUse = std::string(specialUse);
  m.uidValidity = static_cast<uint32_t>(uidValidity);
  if (journal) {
    if (auto s = writeJournal(db_, accountId, *journal, now()); !s) return propagate(s);
  }
  if (auto s = tx->commit(); !s) return propagate(s);
  StoreChange change;
  change.kind = StoreChange::Kind::MailboxCreated;
  change.accountId = accountId;
  change.mailboxId = m.id;
  change.name = m.name;
  change.origin = origin;
  changes_.publish(change);
  return m;
}

Result<std::vector<Mailbox>> Store::listMailboxes(int64_t accountId) {
  auto st = db_.prepare(std::string("SELECT ") + kMailboxColumns + " FROM mailboxes WHERE account_id = ?1 ORDER BY name");
  if (!st) return propagate(st);
  st->bind(1, accountId);
  std::vector<Mailbox> out;
  auto rows = st->forEachRow([&](Stmt& r) {
    out.push_back(readMailbox(r));
  });
  if (!rows) return propagate(rows);
  return out;
}

Result<std::optional<Mailbox>> Store::findMailbox(int64_t accountId, std::string_view name) {
  auto st = db_.prepare(std::string("SELECT ") + kMailboxColumns + " FROM mailboxes WHERE account_id = ?1 AND name = ?2");
  if (!st) return propagate(st);
  auto row = st->bind(1, accountId).bind(2, name).step();
  if (!row) return propagate(row);
  if (!*row) return std::optional<Mailbox>();
  return std::optional<Mailbox>(readMailbox(*st));
}

// ---- messages

Result<AppendResult> Store::appendMessage(int64_t mailboxId, const NewMessage& message) {
  auto r = appendMessages(mailboxId, std::span<const NewMessage>(&message, 1));
  if (!r) return std::unexpected(r.error());
  return r->front();
}

namespace {
Status checkKeywords(std::span<const NewMessage> messages) {
  for (const auto& message : messages) {
    for (const auto& k : message.keywords) {
      if (k.empty() || k.find_first_of(" \t\r\n") != std::string::npos) {
        return fail(ErrorKind::User, "invalid keyword '" + k + "'");
      }
    }
  }
  return {};
}
}  // namespace

Result<std::vector<AppendResult>> Store::appendMessages(int64_t mailboxId, std::span<const NewMessage> messages,
                                                        const std::function<Status(Db&)>& inTransaction) {
  if (auto s = checkKeywords(messages); !s) return propagate(s);
  // Check before writing the body so a bad mailbox id costs no disk I/O; the
  // transaction below checks again.
  {
    auto st = db_.prepare("SELECT 1 FROM mailboxes WHERE id = ?1");
    if (!st) return propagate(st);
    auto row = st->bind(1, mailboxId).step();
    if (!row) return propagate(row);
    if (!*row) return fail(ErrorKind::NotFound, "no mailbox with id " + std::to_string(mailboxId));
  }

  std::vector<PreparedMessage> prepared;
  prepared.reserve(messages.size());
  for (const auto& message : messages) {
    auto p = prepareMessage(blobs_, message.bytes, false);
    if (!p) {
      discardPrepared(prepared);
      return propagate(p);
    }
    prepared.push_back(std::move(*p));
  }
  return commitMessages(mailboxId, messages, prepared, inTransaction);
}

namespace {
// prepareMessage/prepareHeader without the blob.
PreparedMessage normalizedAndAnalysed(std::string_view bytes) {
  PreparedMessage p;
  p.input = bytes;
  // IMAP sends CRLF only, and the analysis offsets must be of the stored
  // bytes: analyzeForStore normalizes first (a copy only when there is a
  // bare LF), finding out in the same pass over the bytes as the analysis.
  // Never fails on content; a failure here would be a bug in the analyser,
  // and the message is still stored (FETCH then answers from the bytes).
  auto analysed = mime::analyzeForStore(bytes);
  if (!analysed) {
    logWarn("store.analysis_failed").kv("error", analysed.error().message);
    if (mime::LineScan(bytes).hasBareLf()) p.normalized = mime::normalizeLineEndings(bytes);
    return p;
  }
  p.normalized = std::move(analysed->normalized);
  p.analysis = std::move(analysed->analysis);
  return p;
}
}  // namespace

Result<PreparedMessage> Store::prepareMessage(BlobStore& blobs, std::string_view bytes, bool pin, BlobStore::Sync sync) {
  PreparedMessage p = normalizedAndAnalysed(bytes);
  if (p.analysis) p.storedAnalysis = mime::serializeStoredAnalysis(*p.analysis);
  auto blobId = blobs.put(p.bytes(), pin, sync);
  if (!blobId) return propagate(blobId);
  p.blobId = std::move(*blobId);
  p.pinned = pin;
  return p;
}

PreparedMessage Store::prepareHeader(std::string_view header) {
  // The header block parses as a message without a body: ENVELOPE and the
  // SEARCH columns are right, BODYSTRUCTURE is not (the commit drops it).
  return normalizedAndAnalysed(header);
}

Result<std::vector<AppendResult>> Store::commitMessages(int64_t mailboxId, std::span<const NewMessage> messages,
                                                        std::span<const PreparedMessage> prepared,
                                                        const std::function<Status(Db&)>& inTransaction) {
  // Pins end and, on failure, the bodies go (unless something else uses them).
  auto release = [&](bool failed) {
    if (failed) return discardPrepared(prepared);
    for (const auto& p : prepared)
      if (p.pinned && !p.blobId.empty()) blobs_.unpin(p.blobId);
  };
  if (prepared.size() != messages.size()) {
    release(true);
    return fail(ErrorKind::Internal, "commitMessages: prepared and messages differ in size");
  }
  if (auto s = checkKeywords(messages); !s) {
    release(true);
    return propagate(s);
  }

  auto commitRows = [&]() -> Result<std::pair<std::vector<AppendResult>, StoreChange>> {
    auto tx = Transaction::begin(db_);
    if (!tx) return propagate(tx);
    auto mb = db_.prepare("SELECT account_id, uidnext, highest_modseq FROM mailboxes WHERE id = ?1");
    if (!mb) return propagate(mb);
    auto row = mb->bind(1, mailboxId).step();
    if (!row) return propagate(row);
    if (!*row) return fail(ErrorKind::NotFound, "no mailbox with id " + std::to_string(mailboxId));
    int64_t accountId = mb->columnInt64(0);
    int64_t uid = mb->columnInt64(1);
    int64_t modseq = mb->columnInt64(2);
    mb->reset();

    auto ins = db_.prepare(
        "INSERT INTO messages (mailbox_id, uid, flags, keywords, internal_date, size, modseq, upstream_id, blob_id, "
        "message_id, envelope, bodystructure, analysis, subject, from_text, to_text, cc_text, bcc_text, sent_at, "
        "body_missing) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)");
    if (!ins) return propagate(ins);
    auto hdr = db_.prepare("INSERT INTO message_headers (message_id, header) VALUES (?1, ?2)");
    if (!hdr) return propagate(hdr);
    std::vector<AppendResult> results;
    StoreChange change;
    change.kind = StoreChange::Kind::MessagesAdded;
    change.accountId = accountId;
    change.mailboxId = mailboxId;
    for (size_t i = 0; i < messages.size(); ++i) {
      const NewMessage& message = messages[i];
      const PreparedMessage& p = prepared[i];
      // UIDs are 32-bit on the wire (RFC 3501 2.3.1.1); running out needs a new
      // UIDVALIDITY, which is the caller's decision, not ours.
      if (uid > UINT32_MAX) return fail(ErrorKind::User, "mailbox UID space exhausted", "LIMIT");
      if (message.fullSize.has_value() != p.blobId.empty())
        return fail(ErrorKind::Internal, "commitMessages: a header-only message needs prepareHeader, and only it");
      bool headerOnly = message.fullSize.has_value();
      ++modseq;
      // The text and blob values are borrowed (no copy per row): message and
      // p outlive the statements.
      ins->reset();
      ins->bind(1, mailboxId)
          .bind(2, uid)
          .bind(3, message.flags)
          .bind(4, nullIfEmpty(joinKeywords(message.keywords)))
          .bind(5, message.internalDate)
          .bind(6, headerOnly ? *message.fullSize : p.bytes().size())
          .bind(7, modseq)
          .bindBorrowed(9, p.blobId)
          .bind(20, headerOnly ? 1 : 0);
      if (message.upstreamId) ins->bindBorrowed(8, *message.upstreamId);
      else ins->bindNull(8);
      if (p.analysis) {
        const mime::QuickFields& q = p.analysis->quick;
        if (q.messageId.empty()) ins->bindNull(10);
        else ins->bindBorrowed(10, q.messageId);
        ins->bindBorrowed(11, p.analysis->envelope);
        // Of a header alone only the ENVELOPE is the message's; BODYSTRUCTURE
        // is the provider's when it sent one (kept by attachBodies), the part
        // offsets wait for the body.
        if (headerOnly) {
          ins->bind(12, message.bodyStructure).bindNull(13);
        } else {
          ins->bindBorrowed(12, p.analysis->bodyStructure)
              .bindBlobBorrowed(13, std::as_bytes(std::span(p.storedAnalysis.data(), p.storedAnalysis.size())));
        }
        ins->bindBorrowed(14, q.subject)
            .bindBorrowed(15, q.from)
            .bindBorrowed(16, q.to)
            .bindBorrowed(17, q.cc)
            .bindBorrowed(18, q.bcc)
            .bind(19, q.sentAt);
      } else {
        for (int c = 10; c <= 19; ++c) ins->bindNull(c);
      }
      if (auto s = ins->run(); !s) return propagate(s);
      int64_t messageId = db_.lastInsertRowid();
      if (p.analysis) {
        std::string_view header = mime::topHeader(p.bytes(), p.analysis->root);
        if (header.data() == nullptr) header = std::string_view("", 0);  // a zero-length blob, not NULL
        hdr->reset();
        if (auto s = hdr->bind(1, messageId)
                         .bindBlobBorrowed(2, std::as_bytes(std::span(header.data(), header.size())))
                         .run();
            !s)
          return propagate(s);
      }

      if (message.journal) {
        JournalEntry entry = *message.journal;
        // A JSON object payload learns what only this transaction knows (the
        // UID) and the Message-ID, so the replay upstream can find the message.
        auto payload = nlohmann::json::parse(entry.payload, nullptr, false);
        if (payload.is_object()) {
          payload["uid"] = uid;
          if (p.analysis && !p.analysis->quick.messageId.empty()) payload["message_id"] = p.analysis->quick.messageId;
          entry.payload = payload.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        }
        if (auto s = writeJournal(db_, accountId, entry, now()); !s) return propagate(s);
      }
      results.push_back(AppendResult{messageId, static_cast<uint32_t>(uid), static_cast<uint64_t>(modseq), p.blobId});
      change.messages.push_back({static_cast<uint32_t>(uid), message.flags, message.keywords, static_cast<uint64_t>(modseq)});
      if (!change.origin) change.origin = message.origin;
      ++uid;
    }

    auto upd = db_.prepare("UPDATE mailboxes SET uidnext = ?1, highest_modseq = ?2 WHERE id = ?3");
    if (!upd) return propagate(upd);
    if (auto s = upd->bind(1, uid).bind(2, modseq).bind(3, mailboxId).run(); !s) return propagate(s);
    if (inTransaction) {
      if (auto s = inTransaction(db_); !s) return propagate(s);
    }
    if (auto s = tx->commit(); !s) return propagate(s);
    change.modseq = static_cast<uint64_t>(modseq);
    return std::pair{std::move(results), std::move(change)};
  };

  auto result = commitRows();  // its Transaction has rolled back by now if it failed
  release(!result);
  if (!result) return std::unexpected(result.error());
  if (!result->second.messages.empty()) changes_.publish(result->second);
  return std::move(result->first);
}

void Store::discardPrepared(std::span<const PreparedMessage> prepared) {
  for (const auto& p : prepared) {
    if (p.blobId.empty()) continue;
    if (p.pinned) blobs_.unpin(p.blobId);
    removeBlobIfUnreferenced(p.blobId);
  }
}

Result<size_t> Store::attachBodies(int64_t mailboxId, std::span<const uint32_t> uids,
                                  std::span<const PreparedMessage> prepared) {
  if (uids.size() != prepared.size()) {
    discardPrepared(prepared);
    return fail(ErrorKind::Internal, "attachBodies: uids and prepared differ in size");
  }
  auto commitRows = [&]() -> Result<size_t> {
    auto tx = Transaction::begin(db_);
    if (!tx) return propagate(tx);
    auto sel = db_.prepare(
        "SELECT size, message_id, upstream_id, source_mailbox_id, source_upstream_id FROM messages "
        "WHERE mailbox_id = ?1 AND uid = ?2 AND body_missing = 1");
    // The same body for every other body-less row of the same upstream
    // message: the source of a header-only copy, its other copies, or the
    // copies of this row (messages.source_*; Message-ID checked as above).
    auto siblings = db_.prepare(
        "UPDATE messages SET blob_id = ?3, body_missing = 0, blob_size = CASE WHEN size = ?4 THEN NULL ELSE ?4 END, "
        "envelope = ?5, bodystructure = coalesce(bodystructure, ?6), analysis = ?7 WHERE body_missing = 1 AND "
        "message_id IS ?8 AND "
        "((mailbox_id = ?1 AND upstream_id = ?2) OR (source_mailbox_id = ?1 AND source_upstream_id = ?2))");
    if (!siblings) return propagate(siblings);
    // RFC822.SIZE stays the one the header-only row had (the upstream's, which
    // a client may have seen: a message never changes); a body of another
    // length (line ends made CRLF) records its own for reading the blob.
    auto upd = db_.prepare(
        "UPDATE messages SET blob_id = ?3, body_missing = 0, blob_size = ?4, envelope = ?5, "
        "bodystructure = coalesce(bodystructure, ?6), "
        "analysis = ?7 WHERE mailbox_id = ?1 AND uid = ?2");
    if (!sel) return propagate(sel);
    if (!upd) return propagate(upd);
    size_t attached = 0;
    for (size_t i = 0; i < uids.size(); ++i) {
      const PreparedMessage& p = prepared[i];
      sel->reset();
      auto found = sel->bind(1, mailboxId).bind(2, uids[i]).step();
      if (!found) return propagate(found);
      if (!*found) continue;
      // The header came from the same upstream UID; a different Message-ID
      // means the UID names another message now (a UIDVALIDITY change the
      // sync has not seen yet): that body is not this row's.
      std::string rowMessageId = sel->columnText(1);
      if (p.analysis && p.analysis->quick.messageId != rowMessageId) {
        logWarn("store.body_mismatch").kv("mailbox_id", mailboxId).kv("uid", uids[i]);
        continue;
      }
      uint64_t rowSize = static_cast<uint64_t>(sel->columnInt64(0));
      // The upstream message this row's body is: its own, or its source's.
      std::optional<int64_t> keyBox;
      std::string keyUp = sel->columnText(2);
      if (!keyUp.empty()) {
        keyBox = mailboxId;
      } else if (auto src = sel->columnOptText(4)) {
        keyBox = sel->columnInt64(3);
        keyUp = *src;
      }
      uint64_t size = p.bytes().size();
      std::optional<int64_t> blobSize;
      if (size != rowSize) {
        blobSize = static_cast<int64_t>(size);
        logInfo("store.body_size_differs").kv("mailbox_id", mailboxId).kv("uid", uids[i]).kv("size", rowSize).kv("body", size);
      }
      // The provider's BODYSTRUCTURE stored with the header stays the one
      // served (a client may have cached it), by FETCH BODYSTRUCTURE alone
      // and with other analysis items alike: the column keeps it (coalesce)
      // and the stored analysis takes its BODYSTRUCTURE from the column.
      upd->reset();
      upd->bind(1, mailboxId).bind(2, uids[i]).bind(3, p.blobId).bind(4, blobSize);
      if (p.analysis) {
        upd->bind(5, p.analysis->envelope)
            .bind(6, p.analysis->bodyStructure)
            .bindBlob(7, std::as_bytes(std::span(p.storedAnalysis.data(), p.storedAnalysis.size())));
      } else {
        upd->bind(5, std::optional<std::string>()).bind(6, std::optional<std::string>()).bind(7, std::optional<std::string>());
      }
      if (auto s = upd->run(); !s) return propagate(s);
      ++attached;
      if (keyBox) {
        siblings->reset();
        siblings->bind(1, *keyBox).bind(2, keyUp).bind(3, p.blobId).bind(4, static_cast<int64_t>(size));
        if (p.analysis) {
          siblings->bind(5, p.analysis->envelope)
              .bind(6, p.analysis->bodyStructure)
              .bindBlob(7, std::as_bytes(std::span(p.storedAnalysis.data(), p.storedAnalysis.size())));
        } else {
          siblings->bind(5, std::nullopt).bind(6, std::nullopt).bind(7, std::nullopt);
        }
        siblings->bind(8, rowMessageId.empty() ? std::optional<std::string>() : std::optional<std::string>(rowMessageId));
        if (auto s = siblings->run(); !s) return propagate(s);
      }
    }
    if (auto s = tx->commit(); !s) return propagate(s);
    return attached;
  };
  auto result = commitRows();
  // Pins end; a body no row took (already there, message gone, failure) goes.
  for (const auto& p : prepared)
    if (p.pinned && !p.blobId.empty()) blobs_.unpin(p.blobId);
  for (const auto& p : prepared) removeBlobIfUnreferenced(p.blobId);
  return result;
}

Status writeJournal(Db& db, int64_t accountId, const JournalEntry& entry, int64_t now) {
  auto j = db.prepare(
      "INSERT INTO journal (account_id, op, payload, created_at, attempts, next_attempt) VALUES (?1, ?2, ?3, ?4, 0, ?4)");
  if (!j) return std::unexpected(j.error());
  return j->bind(1, accountId).bind(2, entry.op).bind(3, entry.payload).bind(4, now).run();
}

}  // namespace mb::store
