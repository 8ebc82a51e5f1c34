// Store: the durable local copy of every account (SQLite in WAL mode for
// metadata, BlobStore for bodies). Local sessions and the SyncEngine read and
// write mail only through it; see DESIGN.md "The data path".
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/store/blob_store.h"
#include "daemon/store/change_hub.h"
#include "daemon/store/checkpointer.h"
#include "daemon/store/sqlite.h"
#include "protocols/mime/analysis.h"
#include "protocols/common/result.h"

namespace mb::store {

// System flags as stored in messages.flags. Keywords ($Junk, custom) are kept
// separately as text.
enum MessageFlag : uint32_t {
  kFlagSeen = 1,
  kFlagAnswered = 2,
  kFlagFlagged = 4,
  kFlagDeleted = 8,
  kFlagDraft = 16,
};

enum class AccountSource { Config, Api };  // who created it: the config file or the REST API

struct Account {
  int64_t id = 0;
  std::string name;
  std::string address;
  std::optional<std::string> localUsername;
  AccountSource source = AccountSource::Config;
  int64_t createdAt = 0;
};

struct Mailbox {
  int64_t id = 0;
  int64_t accountId = 0;
  std::string name;
  std::string specialUse;  // "\\Sent", "\\Trash"...; empty if none
  bool subscribed = true;
  uint32_t uidValidity = 0;
  uint32_t uidNext = 1;
  uint64_t highestModseq = 1;
  std::string upstreamName;
  std::optional<uint32_t> upstreamUidValidity;
  std::string upstreamState;  // opaque connector cursor (JSON)
};

// An operation for the SyncEngine to replay upstream, committed in the same
// transaction as the local change it describes.
struct JournalEntry {
  std::string op;       // e.g. "append"
  std::string payload;  // JSON
};

struct NewMessage {
  std::string_view bytes;  // the full RFC 5322 message; must stay live during the call
  uint32_t flags = 0;      // MessageFlag bits
  std::vector<std::string> keywords;
  int64_t internalDate = 0;  // unix seconds
  std::optional<std::string> upstreamId;
  // Set for a header-only message (bodies "on_demand"): `bytes` is only the
  // top-level header block and this is the whole message's size (the
  // upstream's RFC822.SIZE); the body comes later through attachBodies.
  std::optional<uint64_t> fullSize;
  // With fullSize: the provider's BODYSTRUCTURE of the whole message, stored
  // so FETCH BODYSTRUCTURE needs no body (and kept once the body comes).
  std::optional<std::string> bodyStructure;
  std::optional<JournalEntry> journal;
  const void* origin = nullptr;  // passed through to the StoreChange
};

// One message made ready for its row off the owner thread (see
// Store::prepareMessage): line ends normalized, MIME analysis done, body
// durable as a blob.
struct PreparedMessage {
  std::string_view input;                 // the caller's bytes; must stay live until the commit
  std::optional<std::string> normalized;  // a CRLF copy when input had a bare LF
  std::optional<mime::MessageAnalysis> analysis;
  // The analysis as messages.analysis stores it (serializeStoredAnalysis),
  // made here rather than on the owner thread; prepareMessage only (a
  // header-only row stores none).
  std::string storedAnalysis;
  std::string blobId;     // empty for a header-only message (prepareHeader)
  bool pinned = false;  // put with pin: the commit (or its failure) unpins
  std::string_view bytes() const { return normalized ? std::string_view(*normalized) : input; }
};

struct AppendResult {
  int64_t messageId = 0;  // row id
  uint32_t uid = 0;
  uint64_t modseq = 0;
  std::string blobId;
};

struct StoreOptions {
  // Unix seconds. Tests replace it to pin UIDVALIDITY and created_at.
  std::function<int64_t()> clock;
};

// Owned by the loop thread (see DESIGN.md "Threads"); not thread-safe. The
// caller must hold the StateDirLock for stateDir for the Store's whole life:
// open() deletes blobs and temp files that no row references.
class Store {
 public:
  // Opens or creates <stateDir>/mailbridge.db and <stateDir>/blobs, upgrades
  // the schema, then drops blobs left by a crash between blob write and row
  // commit. Refuses without touching the file: a non-database ("<path>: file
  // is not a database", Corrupt), a newer schema ("created by a newer
  // mailbridge", Config) and someone else's SQLite database (Config).
  static Result<std::unique_ptr<Store>> open(const std::filesystem::path& stateDir, StoreOptions options = {});

  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // -- accounts
  // Returns the id of the account called name, creating it if needed. An
  // existing account gets the new address; one created by the other source
  // is a Conflict (a config file must not take over an API account).
  Result<int64_t> ensureAccount(std::string_view name, std::string_view address, AccountSource source);
  Result<std::vector<Account>> listAccounts();
  Result<std::optional<Account>> findAccount(std::string_view name);
  // Deletes the account with its mailboxes, messages, journal and outbox
  // (ON DELETE CASCADE), then the blobs no other account still uses.
  // NotFound if there is no such account.
  Status removeAccount(int64_t accountId);

  // -- mailboxes
  // UIDVALIDITY comes from the clock but never repeats or goes backwards
  // within this store, so a mailbox deleted and recreated in the same second
  // still gets a new one (RFC 3501 2.3.1.1). Conflict if the name exists,
  // NotFound if the account does not.
  // The journal entry, when given, commits with the row; subscribers of
  // changes() hear MailboxCreated after the commit.
  Result<Mailbox> createMailbox(int64_t accountId, std::string_view name, std::string_view specialUse = {},
                                const std::optional<JournalEntry>& journal = std::nullopt,
                                const void* origin = nullptr);
  Result<std::vector<Mailbox>> listMailboxes(int64_t accountId);
  Result<std::optional<Mailbox>> findMailbox(int64_t accountId, std::string_view name);

  // -- messages
  // Writes the body durably first, then in one transaction assigns
  // uid = UIDNEXT and a new modseq, inserts the row and the optional journal
  // entry. A crash in between leaves only an unreferenced blob, which the next
  // open() deletes. NotFound if the mailbox does not exist.
  // This is the one way a message enters a mailbox (IMAP APPEND, SMTP local
  // delivery, sync): bare LFs become CRLF, the MIME analysis (ENVELOPE,
  // BODYSTRUCTURE, part offsets) and the searchable header fields are stored
  // with the row so FETCH and header SEARCH never re-parse, and subscribers
  // of changes() hear MessagesAdded after the commit.
  Result<AppendResult> appendMessage(int64_t mailboxId, const NewMessage& message);
  // The same for several messages in one transaction and one MessagesAdded
  // (the sync engine's batches). inTransaction, when given, runs just before
  // the commit (e.g. to store the upstream cursor with the rows); its failure
  // rolls everything back.
  Result<std::vector<AppendResult>> appendMessages(int64_t mailboxId, std::span<const NewMessage> messages,
                                                   const std::function<Status(Db&)>& inTransaction = nullptr);
  // appendMessages in two steps, so that the expensive half can run on the
  // thread pool while the owner thread goes on (the sync engine's download):
  // prepareMessage, any thread: bare LFs -> CRLF, the MIME analysis, and the
  // body written (BlobStore::put, pinned when pin so that no remove() on the
  // owner thread deletes a same-content blob before its row exists). With
  // BlobStore::Sync::Batch the body is durable only after blobs.syncBatch().
  static Result<PreparedMessage> prepareMessage(BlobStore& blobs, std::string_view bytes, bool pin,
                                                BlobStore::Sync sync = BlobStore::Sync::Now);
  // The same for a header-only message (NewMessage::fullSize set): line
  // ends and the analysis of the header block, no blob. Any thread.
  static PreparedMessage prepareHeader(std::string_view header);
  // commitMessages, owner thread: the rest of appendMessages for messages[i]
  // prepared as prepared[i] (same sizes): one transaction, then the
  // MessagesAdded broadcast. Afterwards every pinned blob is unpinned and, if
  // the commit failed, removed unless something else uses it. A row is thus
  // committed only after its body is durable.
  Result<std::vector<AppendResult>> commitMessages(int64_t mailboxId, std::span<const NewMessage> messages,
                                                   std::span<const PreparedMessage> prepared,
                                                   const std::function<Status(Db&)>& inTransaction = nullptr);
  // For prepared messages that will not be committed: unpins them and
  // removes each body unless something else uses it. Owner thread.
  void discardPrepared(std::span<const PreparedMessage> prepared);
  // The bodies of header-only messages (bodies "on_demand"), each prepared by
  // prepareMessage (durable, pinned or not): one transaction gives the rows
  // of uids[i] their blob, analysis and BODYSTRUCTURE and clears
  // body_missing; a row that has a body already (or is gone), or whose
  // Message-ID differs from the body's, is left alone.
  // Every other body-less row of the same upstream message gets the body
  // too (the source of a header-only copy, its copies: messages.source_*),
  // uncounted.
  // RFC822.SIZE and the modseq stay as they were (a client may have seen the
  // upstream's size; a message never changes): a body of another length is
  // read by its own (messages.blob_size). Nothing is broadcast.
  // Afterwards pins end and unused blobs go, as in commitMessages. Returns how
  // many rows got their body.
  Result<size_t> attachBodies(int64_t mailboxId, std::span<const uint32_t> uids,
                              std::span<const PreparedMessage> prepared);

  // Committed changes for local sessions (see change_hub.h).
  ChangeHub& changes() { return changes_; }
  // Deletes a blob once no message or outbox row uses it (after expunge).
  // A header-only message's empty blob id is ignored.
  void releaseBlob(const std::string& blobId) { removeBlobIfUnreferenced(blobId); }

  // For other parts of daemon/store that extend the Store; must not be kept
  // beyond the Store's life.
  Db& db() { return db_; }
  BlobStore& blobs() { return blobs_; }
  const std::filesystem::path& stateDir() const { return stateDir_; }
  int64_t now() const { return clock_(); }

 private:
  Store(std::filesystem::path stateDir, Db db, BlobStore blobs, std::function<int64_t()> clock)
      : stateDir_(std::move(stateDir)), db_(std::move(db)), blobs_(std::move(blobs)), clock_(std::move(clock)) {}

  Status collectGarbage();
  Result<bool> blobReferenced(std::string_view blobId);
  void removeBlobIfUnreferenced(const std::string& blobId);

  std::filesystem::path stateDir_;
  Db db_;
  BlobStore blobs_;
  std::function<int64_t()> clock_;
  ChangeHub changes_;
  std::unique_ptr<Checkpointer> checkpointer_;  // after db_: goes first
};

const char* accountSourceName(AccountSource source);

// MessageFlag bits <-> their IMAP names ("\\Seen"...; any case when
// parsing); keywords pass through. Parsing drops \\Recent, \\* and unknown
// system flags and returns the keywords sorted, without repeats.
std::vector<std::string> flagWords(uint32_t flags, const std::vector<std::string>& keywords);
void parseFlagWords(const std::vector<std::string>& words, uint32_t& flags, std::vector<std::string>& keywords);

// messages.keywords is space-separated text.
std::string joinKeywords(const std::vector<std::string>& keywords);
std::vector<std::string> splitKeywords(std::string_view text);

// Inserts one journal row (inside the caller's transaction).
Status writeJournal(Db& db, int64_t accountId, const JournalEntry& entry, int64_t now);

}  // namespace mb::store
