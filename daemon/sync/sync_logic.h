// The decisions of the sync engine that need no I/O, so unit tests can pin
// them: the stored per-folder cursor, what an upstream change list means for
// the local copy, re-mapping after a UIDVALIDITY change, folder binding and
// the retry schedule.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "daemon/sync/connector.h"

namespace mb::sync {

// mailboxes.upstream_state: the FolderState of the last complete sync. An
// interrupted first sync stores none (complete = false), so the next one
// lists the folder again and downloads only what is not mapped yet.
struct StoredFolder {
  FolderState state;
  bool complete = false;
};
std::string serializeFolderState(const StoredFolder& s);
StoredFolder parseFolderState(const std::string& json);  // anything unreadable: not complete

// A message's flags: system flag bits (store::MessageFlag) and keywords, sorted.
struct FlagState {
  uint32_t flags = 0;
  std::vector<std::string> keywords;
  bool operator==(const FlagState&) const = default;
};

// The per-flag three-way merge (README "Conflict rules"): `base` is what the
// upstream had when the local side first changed the message since the last
// sync. A flag the local side changed and the upstream did not takes the
// local value; every other flag takes the upstream value (the upstream change
// came with a higher MODSEQ than the local change had seen: it is newer).
FlagState mergeFlags(const FlagState& base, const FlagState& local, const FlagState& upstream);

// A local message of a synced mailbox, as the engine sees it.
struct LocalMessage {
  uint32_t uid = 0;                    // local UID
  std::optional<uint32_t> upstreamUid;  // messages.upstream_id
  uint32_t flags = 0;
  std::vector<std::string> keywords;   // sorted
  uint64_t size = 0;
  int64_t internalDate = 0;
  std::string messageId;
  // messages.upstream_flags: set while a local flag change is not merged
  // upstream yet; the upstream flags it started from.
  std::optional<FlagState> upstreamBase;
  FlagState flagState() const { return {flags, keywords}; }
};

struct LocalFlagUpdate {
  uint32_t uid = 0;  // local
  uint32_t flags = 0;
  std::vector<std::string> keywords;
  std::optional<FlagState> upstreamBase;  // what messages.upstream_flags becomes (nullopt: in agreement)
};

struct ChangePlan {
  std::vector<LocalFlagUpdate> flagUpdates;  // mapped messages whose flags differ upstream
  std::vector<uint32_t> removals;            // local UIDs gone upstream
  std::vector<uint32_t> downloads;           // upstream UIDs not held locally, ascending
};

// What FolderChanges (same UIDVALIDITY) mean for the local messages. Flags
// the upstream reports replace the local ones, except that a message with a
// local change not yet merged upstream gets mergeFlags (its local change stays
// pending); a message expunged upstream is removed locally, pending changes
// or not.
ChangePlan planChanges(const std::vector<LocalMessage>& local, const FolderChanges& ch);

// Replaying a local flag change: for each message with its current
// upstream flags, the merged result and the +FLAGS/-FLAGS commands (upstream
// UIDs) that turn the upstream flags into it. Messages whose local change
// is merged already (no upstreamBase) are left out.
struct FlagPush {
  struct Store {
    bool add = true;
    FlagState flags;
    std::vector<uint32_t> upstreamUids;
  };
  std::vector<Store> stores;
  std::vector<std::pair<uint32_t, FlagState>> merged;  // local UID -> merged flags
};
FlagPush planFlagPush(const std::vector<LocalMessage>& local, const std::vector<RemoteFlags>& upstream);

struct RemapPlan {
  std::vector<std::pair<uint32_t, uint32_t>> rebind;  // local UID -> new upstream UID
  std::vector<uint32_t> removals;                     // local UIDs that had an upstream id and match nothing
  std::vector<uint32_t> downloads;                    // upstream UIDs that match no local message
  std::vector<LocalFlagUpdate> flagUpdates;
};

// UIDVALIDITY changed upstream: match local messages to the new upstream ones
// by Message-ID + size + internal date (each upstream message at most once),
// keeping local UIDs; local messages never sent upstream (no upstream id)
// are left alone.
RemapPlan planRemap(const std::vector<LocalMessage>& local, const std::vector<RemoteMessage>& remote);

// Which local mailbox an upstream folder binds to.
struct LocalMailboxRef {
  std::string name;
  std::string specialUse;
  std::string upstreamName;  // already bound to this upstream id (or empty)
  std::optional<uint32_t> upstreamUidValidity;
};
struct FolderBinding {
  std::optional<size_t> existing;  // index into the locals
  std::string createName;          // else create this local mailbox
  std::string createSpecialUse;
};
FolderBinding bindFolder(const RemoteFolder& remote, const std::vector<LocalMailboxRef>& locals);

// Folders renamed upstream: a local mailbox bound to a folder the listing no
// longer has, and exactly one listed folder bound to nothing with the same
// UIDVALIDITY (servers keep it on RENAME; a new folder gets a new one).
// Pairs (local index, remote index), parents before children.
std::vector<std::pair<size_t, size_t>> findRenames(const std::vector<LocalMailboxRef>& locals,
                                                   const std::vector<RemoteFolder>& remote);

// Whether the folder is in the configured list (empty: all). Matches the
// local path or the remote id, INBOX in any case.
bool folderWanted(const RemoteFolder& f, const std::vector<std::string>& wanted);

// Retry delay after `failures` consecutive failures: 1 s doubling to 5 min,
// each drawn in [half, full] so many accounts do not retry in step.
uint64_t retryDelayMs(uint32_t failures, std::mt19937_64& rng);

}  // namespace mb::sync
