// The Connector seam (DESIGN.md): the one interface between a SyncEngine and
// an upstream kind. IMAP is the first implementation (connectors/
// upstream_imap.h); POP3 and ActiveSync differ only behind this interface.
// Everything is asynchronous on the loop thread; a connector runs one
// operation at a time for its engine (the engine waits for each callback).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "protocols/common/result.h"

namespace mb::sync {

// What the engine remembers of an upstream folder between syncs (stored as
// JSON in mailboxes.upstream_state).
struct FolderState {
  uint32_t uidValidity = 0;
  uint32_t uidNext = 0;        // upstream UIDNEXT when it was last seen
  uint32_t messages = 0;       // upstream message count then
  uint64_t highestModSeq = 0;  // 0: the upstream has no CONDSTORE for it
  bool operator==(const FolderState&) const = default;
};

struct RemoteFolder {
  std::string id;      // the connector's handle (IMAP: the wire name)
  std::string path;    // UTF-8, levels separated by "/" (the local delimiter)
  std::string specialUse;  // "\\Sent", "\\Trash"... or empty
  bool selectable = true;
  bool subscribed = false;
  std::optional<FolderState> status;  // when the listing could include it cheaply
};

struct RemoteFlags {
  uint32_t uid = 0;
  uint32_t flags = 0;  // store::MessageFlag bits
  std::vector<std::string> keywords;
  uint64_t modseq = 0;
};

struct RemoteMessage {
  RemoteFlags meta;
  int64_t internalDate = 0;  // unix seconds
  uint64_t size = 0;
  std::string messageId;     // when asked for
  std::optional<std::string> bytes;  // the whole message, or only its header block (headersOnly)
  bool headersOnly = false;
  // headersOnly: the provider's BODYSTRUCTURE of the whole message, as it
  // sent it (served for the header-only row, see Store::attachBodies).
  std::optional<std::string> bodyStructure;
};

// What changed in one folder since a FolderState.
struct FolderChanges {
  FolderState state;               // the folder now
  bool uidValidityChanged = false;  // everything known about it is void
  std::vector<RemoteFlags> flags;   // messages whose flags changed, or every message when `complete`
  bool complete = false;            // `flags` lists every message: any other known UID is gone
  std::vector<uint32_t> vanished;   // UIDs expunged upstream
  std::optional<std::vector<uint32_t>> existing;  // every UID, when it was cheaper to list them
};

struct ConnectorCapabilities {
  bool folders = true;
  bool flags = true;
  bool push = true;
  bool stableIds = true;  // appends and copies report the new upstream ids
};

// Local changes replayed upstream (from the journal), in upstream terms.
struct AppendOp {
  std::string folder;
  std::string bytes;
  uint32_t flags = 0;
  std::vector<std::string> keywords;
  int64_t internalDate = 0;
  std::string messageId;  // looked up first when lookupFirst (a retry after a crash)
  bool lookupFirst = false;
};
struct FlagsOp {
  enum class Mode { Add, Remove, Replace } mode = Mode::Add;
  std::string folder;
  std::vector<uint32_t> uids;
  uint32_t flags = 0;
  std::vector<std::string> keywords;
};
struct CopyOp {
  std::string from, to;
  std::vector<uint32_t> uids;
  bool move = false;
  std::vector<std::string> messageIds;  // per UID (may be empty): finds the copies without COPYUID
};
struct ExpungeOp {
  std::string folder;
  std::vector<uint32_t> uids;
};
struct CreateFolderOp { std::string path; };
struct DeleteFolderOp { std::string folder; };
struct RenameFolderOp { std::string folder; std::string toPath; };
struct SubscribeOp { std::string folder; bool subscribe = true; };
using Op = std::variant<AppendOp, FlagsOp, CopyOp, ExpungeOp, CreateFolderOp, DeleteFolderOp, RenameFolderOp, SubscribeOp>;

struct OpResult {
  std::vector<uint32_t> newUids;  // APPEND / COPY / MOVE: the upstream UIDs, in order (empty: unknown)
  std::string folder;             // CREATE / RENAME: the new folder's id
  bool alreadyDone = false;       // found upstream (an APPEND after a crash), or nothing left to do
};

struct ConnectorFailure {
  enum class Kind { Network, Auth, Protocol } kind = Kind::Network;
  std::string message;  // safe to log and show
};

class Connector {
 public:
  virtual ~Connector() = default;

  // Connects and logs in. onLost runs once if the connection fails or drops
  // later; pending callbacks then get errors first.
  virtual void connect(std::function<void()> onReady, std::function<void(const ConnectorFailure&)> onLost) = 0;
  virtual ConnectorCapabilities capabilities() const = 0;
  // Every folder, with its status when one round trip can carry it.
  virtual void listFolders(std::function<void(Result<std::vector<RemoteFolder>>)> done) = 0;
  // Changes of one folder since `since` (uidValidity 0: never synced).
  virtual void fetchChanges(const RemoteFolder& folder, const FolderState& since,
                            std::function<void(Result<FolderChanges>)> done) = 0;
  // Metadata (with the Message-ID) of every message from UID `from` on.
  virtual void fetchMeta(const std::string& folder, uint32_t from,
                         std::function<void(Result<std::vector<RemoteMessage>>)> done) = 0;
  // The current flags (and MODSEQ when known) of these messages; UIDs gone
  // upstream are simply missing from the answer.
  virtual void fetchFlags(const std::string& folder, std::vector<uint32_t> uids,
                          std::function<void(Result<std::vector<RemoteFlags>>)> done) = 0;
  // Whole messages, pipelined in large batches; onMessage gets each as it
  // arrives (in UID order); done after the last. With headersOnly, only the
  // top-level header block of each (bodies "on_demand"), with the size of
  // the whole message.
  virtual void fetchMessages(const std::string& folder, std::vector<uint32_t> uids, bool headersOnly,
                             std::function<void(RemoteMessage&&)> onMessage, std::function<void(Status)> done) = 0;
  virtual void apply(const Op& op, std::function<void(Result<OpResult>)> done) = 0;
  // Push: onChange(folder) whenever the upstream says a watched folder
  // changed. Watching goes on (reconnecting by itself) until the connector
  // is destroyed.
  virtual void watch(std::vector<std::string> folders, std::function<void(const std::string&)> onChange) = 0;
  // The folder id a local path ("/" separated) has, or would have, upstream.
  virtual std::string folderIdForPath(const std::string& path) const = 0;
  // Flow control while fetchMessages runs: with true, stop taking data from
  // the upstream (a few more messages may still arrive from what was read
  // already) until called with false. No timeout counts the paused time.
  virtual void pauseReading(bool paused) = 0;
  // Bytes received so far (progress).
  virtual uint64_t bytesReceived() const = 0;
};

}  // namespace mb::sync
