// What the IMAP server session needs from the mail store, as pure types: the
// daemon implements it over the SQLite Store, tests and the fuzzer over
// MemoryMailStore. One Backend per session; it knows the logged-in account.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/common/result.h"
#include "protocols/mime/analysis.h"

namespace mb::imap {

// System flags as bits (the same values the Store keeps).
enum FlagBit : uint32_t { kSeen = 1, kAnswered = 2, kFlagged = 4, kDeleted = 8, kDraft = 16 };

struct MailboxInfo {
  int64_t id = 0;
  std::string name;        // internal UTF-8, "/" separated, "INBOX" upper-case
  std::string specialUse;  // "\\Sent"..., empty if none
  bool subscribed = false;
};

struct MailboxCountsInfo {
  uint32_t messages = 0, unseen = 0, deleted = 0;
  uint32_t uidNext = 1, uidValidity = 0;
  uint64_t size = 0;
  uint64_t highestModseq = 1;
};

// SELECT's snapshot: 4 bytes per message, never bodies or analyses.
struct SelectInfo {
  int64_t id = 0;
  uint32_t uidValidity = 0, uidNext = 1;
  uint64_t highestModseq = 1;
  std::vector<uint32_t> uids;  // ascending
  std::optional<uint32_t> firstUnseenUid;
  std::vector<std::string> keywords;  // in use in this mailbox
};

struct MessageInfo {
  uint32_t uid = 0;
  uint32_t flags = 0;
  std::vector<std::string> keywords;
  int64_t internalDate = 0;  // unix seconds
  uint64_t size = 0;
  uint64_t modseq = 0;
};

// The header fields SEARCH reads without the body (decoded UTF-8).
struct HeaderFields {
  std::string messageId, subject, from, to, cc, bcc;
  std::optional<int64_t> sentAt;
};

// FETCH ENVELOPE / BODYSTRUCTURE as stored at append (the analysis's
// answers), so a FETCH of only those reads neither blob nor analysis.
struct StoredStructure {
  uint32_t uid = 0;
  std::string envelope, bodyStructure;
};

// A message's top-level header block as stored at append, for SEARCH HEADER.
struct StoredHeader {
  uint32_t uid = 0;
  std::string header;
};

// One message's values of a header field for SEARCH HEADER, as
// mime::packFoldedValues packs them (decoded, folded, NUL after each).
struct FieldValues {
  uint32_t uid = 0;
  std::string packed;
};

enum class FlagOp { Replace, Add, Remove };

struct FlagsOutcome {
  std::vector<MessageInfo> current;  // uid, flags, keywords, modseq of every matched message
  std::vector<uint32_t> failed;      // UNCHANGEDSINCE refused (RFC 7162 3.1.3)
};

struct CopyInfo {
  uint32_t uidValidity = 0;
  std::vector<uint32_t> sourceUids, destUids;
};

// One message of an APPEND.
struct AppendItem {
  std::string_view bytes;  // must stay live during the call
  uint32_t flags = 0;
  std::vector<std::string> keywords;
  int64_t internalDate = 0;  // unix seconds; 0: now
};

struct AppendInfo {
  uint32_t uidValidity = 0;
  std::vector<uint32_t> uids;  // one per message, in order
};

// A committed change to a mailbox, delivered to every session of the account
// (its own included: `own` tells). The session reports it when RFC 3501 7.4.1
// allows.
struct MailboxEvent {
  enum class Kind { Added, Flags, Expunged, Gone };
  Kind kind = Kind::Added;
  int64_t mailboxId = 0;
  std::vector<MessageInfo> messages;  // Added (uid, flags) / Flags (uid, flags, keywords, modseq)
  std::vector<uint32_t> uids;         // Expunged
  uint64_t modseq = 0;
};

// Errors: NotFound for a missing mailbox or message (the session answers
// NO [NONEXISTENT] or [TRYCREATE]), Conflict for an existing name, User for a
// refusal, anything else NO [SERVERBUG]/[UNAVAILABLE].
class Backend {
 public:
  virtual ~Backend() = default;

  // After login: binds the account and creates the default mailboxes.
  virtual Status openAccount(int64_t accountId) = 0;

  virtual Result<std::vector<MailboxInfo>> listMailboxes() = 0;
  virtual Status createMailbox(std::string_view name, std::string_view specialUse) = 0;
  virtual Status deleteMailbox(std::string_view name) = 0;
  virtual Status renameMailbox(std::string_view from, std::string_view to) = 0;
  virtual Status setSubscribed(std::string_view name, bool subscribed) = 0;
  virtual Result<MailboxCountsInfo> mailboxCounts(std::string_view name) = 0;
  virtual Result<SelectInfo> selectMailbox(std::string_view name) = 0;
  // Every message of one APPEND (several with MULTIAPPEND) in one
  // transaction: all are stored or none (RFC 3502 6), whatever fails.
  virtual Result<AppendInfo> append(std::string_view name, std::span<const AppendItem> messages) = 0;

  // Metadata of the given UIDs (ascending); gone ones are skipped.
  virtual Result<std::vector<MessageInfo>> messages(int64_t mailboxId, std::span<const uint32_t> uids) = 0;
  // Appends the message's bytes to `out` (FETCH reads them straight into its
  // output buffer); `out` is unchanged on error.
  virtual Status messageBytes(int64_t mailboxId, uint32_t uid, std::string& out) = 0;
  // The analysis stored with the message; nullopt when none was stored.
  virtual Result<std::optional<mime::MessageAnalysis>> messageAnalysis(int64_t mailboxId, uint32_t uid) = 0;
  virtual Result<HeaderFields> headerFields(int64_t mailboxId, uint32_t uid) = 0;
  // The given UIDs (ascending) whose body is not stored yet (an account whose
  // bodies are fetched on demand): only their metadata, stored ENVELOPE and
  // top-level header block (topHeaders) can be read. The session asks its
  // host for the bodies (Session::pendingBodies) before it answers anything
  // else about them.
  virtual Result<std::vector<uint32_t>> bodilessUids(int64_t mailboxId, std::span<const uint32_t> uids) = 0;
  // Batch forms for FETCH and SEARCH over many messages: the given UIDs
  // (ascending) that have the stored item; the session reads the analysis or
  // the bytes of any UID left out.
  virtual Result<std::vector<StoredStructure>> structures(int64_t mailboxId, std::span<const uint32_t> uids) = 0;
  virtual Result<std::vector<StoredHeader>> topHeaders(int64_t mailboxId, std::span<const uint32_t> uids) = 0;
  // SEARCH HEADER <field> (field in lower case): each given UID's values of
  // the field, without the session parsing header blocks; UIDs left out are
  // read with topHeaders/messageBytes as before.
  virtual Result<std::vector<FieldValues>> headerFieldValues(int64_t mailboxId, std::string_view field,
                                                             std::span<const uint32_t> uids) = 0;

  virtual Result<FlagsOutcome> storeFlags(int64_t mailboxId, std::span<const uint32_t> uids, FlagOp op, uint32_t flags,
                                          const std::vector<std::string>& keywords,
                                          std::optional<uint64_t> unchangedSince) = 0;
  virtual Result<CopyInfo> copy(int64_t mailboxId, std::span<const uint32_t> uids, std::string_view destination,
                                bool move) = 0;
  // Removes \Deleted messages (only those in `only` when given); their UIDs.
  virtual Result<std::vector<uint32_t>> expunge(int64_t mailboxId, std::optional<std::span<const uint32_t>> only) = 0;
  // UIDs expunged after modseq (QRESYNC).
  virtual Result<std::vector<uint32_t>> vanishedSince(int64_t mailboxId, uint64_t modseq) = 0;
};

}  // namespace mb::imap
