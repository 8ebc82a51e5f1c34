// Schema history. Append new steps at the end; never edit a shipped step (a
// db already at that version would not see the change).
#include "daemon/store/migrations.h"

#include <string>

#include "daemon/log/log.h"

namespace mb::store {
namespace {

// Tables are STRICT so a wrongly typed bind fails loudly instead of storing
// text in an integer column. Times are unix seconds. UIDs/UIDVALIDITY are
// uint32 on the wire and fit in INTEGER; modseqs are uint63.
constexpr const char* kV1 = R"sql(
CREATE TABLE store_meta (
  key   TEXT PRIMARY KEY NOT NULL,
  value INTEGER NOT NULL
) STRICT;

CREATE TABLE accounts (
  id                  INTEGER PRIMARY KEY,
  name                TEXT UNIQUE NOT NULL,
  address             TEXT NOT NULL,
  local_username      TEXT UNIQUE,
  local_password_hash TEXT,
  source              TEXT NOT NULL CHECK (source IN ('config', 'api')),
  created_at          INTEGER
) STRICT;

CREATE TABLE mailboxes (
  id                   INTEGER PRIMARY KEY,
  account_id           INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name                 TEXT NOT NULL,
  special_use          TEXT,
  subscribed           INTEGER NOT NULL DEFAULT 1,
  uidvalidity          INTEGER NOT NULL,
  uidnext              INTEGER NOT NULL DEFAULT 1,
  highest_modseq       INTEGER NOT NULL DEFAULT 1,
  upstream_name        TEXT,
  upstream_uidvalidity INTEGER,
  upstream_state       TEXT,
  UNIQUE (account_id, name)
) STRICT;

CREATE TABLE messages (
  id             INTEGER PRIMARY KEY,
  mailbox_id     INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
  uid            INTEGER NOT NULL,
  flags          INTEGER NOT NULL DEFAULT 0,
  keywords       TEXT,
  internal_date  INTEGER NOT NULL,
  size           INTEGER NOT NULL,
  modseq         INTEGER NOT NULL,
  upstream_id    TEXT,
  blob_id        TEXT NOT NULL,
  message_id     TEXT,
  envelope       TEXT,
  bodystructure  TEXT,
  UNIQUE (mailbox_id, uid)
) STRICT;
CREATE INDEX messages_by_modseq ON messages (mailbox_id, modseq);
-- Blob refcounting (is this blob still used after a delete?) and startup GC.
CREATE INDEX messages_by_blob ON messages (blob_id);

CREATE TABLE journal (
  id           INTEGER PRIMARY KEY,
  account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  op           TEXT NOT NULL,
  payload      TEXT,
  created_at   INTEGER NOT NULL,
  attempts     INTEGER NOT NULL DEFAULT 0,
  next_attempt INTEGER NOT NULL DEFAULT 0,
  last_error   TEXT
) STRICT;
CREATE INDEX journal_by_account ON journal (account_id, id);

CREATE TABLE outbox (
  id           INTEGER PRIMARY KEY,
  account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  mail_from    TEXT NOT NULL,
  recipients   TEXT NOT NULL,
  blob_id      TEXT,
  size         INTEGER,
  created_at   INTEGER NOT NULL,
  attempts     INTEGER NOT NULL DEFAULT 0,
  next_attempt INTEGER NOT NULL DEFAULT 0,
  last_error   TEXT,
  state        TEXT NOT NULL DEFAULT 'queued'
) STRICT;
CREATE INDEX outbox_by_blob ON outbox (blob_id);
CREATE INDEX outbox_due ON outbox (state, next_attempt);
)sql";

// The local IMAP server: the stored MIME analysis (so FETCH never re-parses),
// the header fields SEARCH reads without touching blobs, and the expunge log
// that QRESYNC's VANISHED answers from (RFC 7162 3.2.5.1).
constexpr const char* kV2 = R"sql(
ALTER TABLE messages ADD COLUMN analysis BLOB;
ALTER TABLE messages ADD COLUMN subject TEXT;
ALTER TABLE messages ADD COLUMN from_text TEXT;
ALTER TABLE messages ADD COLUMN to_text TEXT;
ALTER TABLE messages ADD COLUMN cc_text TEXT;
ALTER TABLE messages ADD COLUMN bcc_text TEXT;
ALTER TABLE messages ADD COLUMN sent_at INTEGER;

CREATE TABLE expunged (
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
  uid        INTEGER NOT NULL,
  modseq     INTEGER NOT NULL,
  PRIMARY KEY (mailbox_id, uid)
) STRICT;
CREATE INDEX expunged_by_modseq ON expunged (mailbox_id, modseq);
)sql";

// Accounts created through the REST API persist here (the file's accounts
// live in the file): their settings as the account JSON without secrets, and
// each upstream secret sealed by the Vault under the context
// "account:<id>:<field>", so a sealed value cannot be replayed into another
// account or field. Rows go with their account (DELETE /v1/accounts).
constexpr const char* kV3 = R"sql(
ALTER TABLE accounts ADD COLUMN settings TEXT;

CREATE TABLE account_secrets (
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  field      TEXT NOT NULL,
  sealed     TEXT NOT NULL,
  PRIMARY KEY (account_id, field)
) STRICT;
)sql";

// The top-level header block of each message, so SEARCH HEADER on any field
// reads the db and never a blob. Its own table (one row per message, keyed by
// messages.id) so a scan reads header pages only, not the message rows with
// their analysis; rows appended before v4 have none and are read from the
// blob.
constexpr const char* kV4 = R"sql(
CREATE TABLE message_headers (
  message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
  header     BLOB NOT NULL
) STRICT;
)sql";

// Upstream sync's per-flag merge (README "Conflict rules"): the flags the
// upstream had when a local flag change was first made to a message since
// the last sync ("\\Seen $Work" words, '' for none); NULL while local and
// upstream agree. The sync engine compares both sides against it.
constexpr const char* kV5 = R"sql(
ALTER TABLE messages ADD COLUMN upstream_flags TEXT;
)sql";

// bodies "on_demand" (README): a message synced with its header only has
// body_missing = 1 and blob_id '' (no blob), its envelope, header columns and
// message_headers row, but no bodystructure or analysis; Store::attachBodies
// fills those in when the body arrives. The partial index finds such rows.
constexpr const char* kV6 = R"sql(
ALTER TABLE messages ADD COLUMN body_missing INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_body_missing ON messages (mailbox_id, uid) WHERE body_missing = 1;
)sql";

// bodies "on_demand": RFC822.SIZE is the upstream's from the header-only
// sync on, and a client may have seen it; a body that arrives with another
// length (line ends made CRLF) keeps that size and records its own here for
// reading the blob. NULL: the blob is `size` bytes.
constexpr const char* kV7 = R"sql(
ALTER TABLE messages ADD COLUMN blob_size INTEGER;
)sql";

// bodies "on_demand": a header-only copy made here (COPY/MOVE) names the
// upstream message its body comes from (the source's mailbox and upstream
// UID) until it has its own upstream UID, or for good when the provider's
// copy is never mapped (no COPYUID, no Message-ID to find it by). A body that
// arrives for either is given to every body-less row naming the same one.
constexpr const char* kV8 = R"sql(
ALTER TABLE messages ADD COLUMN source_mailbox_id INTEGER;
ALTER TABLE messages ADD COLUMN source_upstream_id TEXT;
CREATE INDEX messages_missing_by_upstream ON messages (mailbox_id, upstream_id) WHERE body_missing = 1;
CREATE INDEX messages_missing_by_source ON messages (source_mailbox_id, source_upstream_id) WHERE body_missing = 1;
)sql";

constexpr Migration kMigrations[] = {
    {1, "initial schema", kV1},
    {2, "imap: stored analysis, header search columns, expunge log", kV2},
    {3, "accounts created through the REST API: settings and sealed secrets", kV3},
    {4, "imap: top-level header blocks for SEARCH HEADER", kV4},
    {5, "sync: upstream flags a pending local flag change started from", kV5},
    {6, "sync: header-only messages (bodies fetched on demand)", kV6},
    {7, "sync: a late body's own length (RFC822.SIZE stays the upstream's)", kV7},
    {8, "sync: a header-only copy names the upstream message its body comes from", kV8},
    // {2, "what changed", "ALTER TABLE ...;"},
    // A step that rebuilds a table must run with foreign_keys OFF, which
    // cannot change inside a transaction: give migrate() a flag for it then.
};

}  // namespace

std::span<const Migration> migrations() { return kMigrations; }

int latestSchemaVersion() { return kMigrations[std::size(kMigrations) - 1].version; }

Status migrate(Db& db) {
  auto current = db.queryInt("PRAGMA user_version");
  if (!current) return std::unexpected(current.error());

  for (const Migration& m : migrations()) {
    if (m.version <= *current) continue;
    auto tx = Transaction::begin(db);
    if (!tx) return std::unexpected(tx.error());
    // user_version lives in the db header, which is part of the transaction:
    // the schema change and the version bump commit or vanish together.
    std::string bump = "PRAGMA user_version = " + std::to_string(m.version) + ";";
    if (m.version == 1) bump += "PRAGMA application_id = " + std::to_string(kApplicationId) + ";";
    Status st = db.exec(m.sql);
    if (st) st = db.exec(bump);
    if (st) st = tx->commit();
    if (!st) {
      Error e = st.error();
      e.message = "migration to schema v" + std::to_string(m.version) + " (" + m.description + ") failed: " + e.message;
      return std::unexpected(std::move(e));
    }
    logInfo("store.migrated").kv("path", db.path()).kv("version", m.version).kv("step", m.description);
  }
  return {};
}

}  // namespace mb::store
