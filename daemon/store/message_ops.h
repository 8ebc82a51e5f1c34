// Message operations for local sessions: compact listings for SELECT, per-UID
// metadata and stored analysis for FETCH, header columns for SEARCH, flag
// updates, copy/move and expunge. Writes are one transaction each with their
// journal row (mailbox, uids, flags, message-ids), then a StoreChange.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "daemon/store/store.h"
#include "protocols/mime/analysis.h"

namespace mb::store {

struct MessageMeta {
  uint32_t uid = 0;
  uint32_t flags = 0;
  std::vector<std::string> keywords;
  int64_t internalDate = 0;
  uint64_t size = 0;
  uint64_t modseq = 0;
};

// A message's metadata with its row id and body (empty for a header-only message).
struct MessageSummary : MessageMeta {
  int64_t id = 0;
  std::string blobId;
};

// Every UID of a mailbox, ascending: the whole SELECT snapshot (4 bytes a message).
Result<std::vector<uint32_t>> listUids(Store& store, int64_t mailboxId);
// All messages of a mailbox, by ascending UID.
Result<std::vector<MessageSummary>> listMessages(Store& store, int64_t mailboxId);
// Metadata of the given UIDs (ascending); UIDs that no longer exist are skipped.
Result<std::vector<MessageMeta>> messageMeta(Store& store, int64_t mailboxId, std::span<const uint32_t> uids);
// Appends the stored bytes of one message to `out` (unchanged on error).
// NotFound when the UID is gone, Unavailable for a header-only message.
Status messageBytes(Store& store, int64_t mailboxId, uint32_t uid, std::string& out);
// The same, as a string of its own.
Result<std::string> messageBytes(Store& store, int64_t mailboxId, uint32_t uid);
// The given ascending UIDs whose body is not stored yet (header-only
// messages of a bodies "on_demand" account).
Result<std::vector<uint32_t>> bodilessUids(Store& store, int64_t mailboxId, std::span<const uint32_t> uids);
// The stored mime::MessageAnalysis (blob and columns, mime::restoreAnalysis),
// or nullopt for rows stored before analysis existed and header-only rows.
Result<std::optional<mime::MessageAnalysis>> messageAnalysis(Store& store, int64_t mailboxId, uint32_t uid);

// Batch reads for FETCH ENVELOPE/BODYSTRUCTURE and SEARCH HEADER: the given
// ascending UIDs that have the stored item (gone ones and rows stored before
// the item existed are left out).
struct StoredStructure {
  uint32_t uid = 0;
  std::string envelope, bodyStructure;
};
Result<std::vector<StoredStructure>> storedStructures(Store& store, int64_t mailboxId, std::span<const uint32_t> uids);
struct StoredHeader {
  uint32_t uid = 0;
  std::string header;  // the top-level header block, as stored
};
Result<std::vector<StoredHeader>> storedHeaders(Store& store, int64_t mailboxId, std::span<const uint32_t> uids);

struct HeaderColumns {
  std::string messageId, subject, from, to, cc, bcc;
  std::optional<int64_t> sentAt;
};
Result<HeaderColumns> headerColumns(Store& store, int64_t mailboxId, uint32_t uid);

enum class FlagMode { Replace, Add, Remove };

struct FlagUpdate {
  FlagMode mode = FlagMode::Add;
  uint32_t flags = 0;
  std::vector<std::string> keywords;
  std::optional<uint64_t> unchangedSince;  // CONDSTORE (RFC 7162 3.1.3)
  const void* origin = nullptr;
};

struct FlagResult {
  std::vector<ChangedMessage> current;  // every matched message, after the update
  std::vector<uint32_t> changed;        // UIDs whose flags changed (new modseq)
  std::vector<uint32_t> failed;         // UNCHANGEDSINCE refused these
};
Result<FlagResult> updateFlags(Store& store, int64_t mailboxId, std::span<const uint32_t> uids, const FlagUpdate& update);

struct CopyOutcome {
  uint32_t uidValidity = 0;  // of the destination
  std::vector<uint32_t> sourceUids, destUids;  // pairwise
};
// COPY, or MOVE (copy + expunge in the same transaction, RFC 6851).
Result<CopyOutcome> copyMessages(Store& store, int64_t fromMailbox, std::span<const uint32_t> uids, int64_t toMailbox,
                                 bool move, const void* origin);

// EXPUNGE: removes messages flagged \Deleted (only those in `only`, when
// given: UID EXPUNGE) and returns their UIDs ascending.
Result<std::vector<uint32_t>> expungeDeleted(Store& store, int64_t mailboxId,
                                             std::optional<std::span<const uint32_t>> only, const void* origin);

// UIDs expunged after modseq (QRESYNC VANISHED (EARLIER)).
// For the sync engine, applying what happened upstream: no journal row (the
// change came from there), but the expunge log and a StoreChange as usual.
// Removes these UIDs whatever their flags; returns the ones that existed.
Result<std::vector<uint32_t>> removeMessages(Store& store, int64_t mailboxId, std::span<const uint32_t> uids,
                                             const void* origin);
// Sets each message's flags and keywords to exactly the given ones (uid,
// flags, keywords; modseq is ignored), one transaction, one FlagsChanged for
// the messages that really changed.
Status setFlagsExact(Store& store, int64_t mailboxId, std::span<const ChangedMessage> wanted, const void* origin);

Result<std::vector<uint32_t>> expungedSince(Store& store, int64_t mailboxId, uint64_t modseq);

}  // namespace mb::store
