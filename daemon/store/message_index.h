// MessageIndex: an in-memory copy of the per-message metadata (uid, flags,
// keywords, modseq, size, internal date) of the mailboxes local sessions
// open, so SELECT and FETCH/SEARCH over flags answer without reading every
// row from SQLite (a row also carries the analysis, envelope and header
// columns, so a scan reads ~1 page per message). One per Store, shared by all
// sessions; ~40 bytes per message.
//
// Coherence: the index subscribes to the Store's ChangeHub; any change to a
// mailbox marks its copy stale, and the next read brings it up to date from
// the db by what the CONDSTORE bookkeeping already guarantees: rows with
// uid >= the cached UIDNEXT are new, rows with modseq > the cached
// HIGHESTMODSEQ changed, `expunged` rows with such a modseq are gone. A
// mailbox whose counters went backwards (or that vanished) is reloaded
// (or dropped). Loop thread only, like the Store.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/store/store.h"

namespace mb::store {

struct IndexedMessage {
  uint32_t uid = 0;
  uint32_t flags = 0;
  uint32_t keywordSet = 0;  // index into IndexedMailbox::keywordSets (0 = none)
  uint64_t modseq = 0;
  uint64_t size = 0;
  int64_t internalDate = 0;
};

struct IndexedMailbox {
  uint32_t uidNext = 1;
  uint64_t highestModseq = 0;
  std::vector<IndexedMessage> messages;  // ascending uid
  // Distinct keyword lists in use, interned; [0] is the empty list. Never
  // shrinks while the copy lives (a reload starts afresh).
  std::vector<std::vector<std::string>> keywordSets{{}};

  const IndexedMessage* find(uint32_t uid) const;
};

class MessageIndex {
 public:
  explicit MessageIndex(Store& store);
  ~MessageIndex();
  MessageIndex(const MessageIndex&) = delete;
  MessageIndex& operator=(const MessageIndex&) = delete;

  // The mailbox's messages as committed now. The pointer is valid until the
  // next call on this index or the next store change. NotFound when the
  // mailbox does not exist.
  Result<const IndexedMailbox*> mailbox(int64_t mailboxId);

  // For tests: how many full loads and incremental refreshes ran.
  uint64_t fullLoads() const { return fullLoads_; }
  uint64_t refreshes() const { return refreshes_; }

 private:
  struct Slot {
    IndexedMailbox box;
    std::unordered_map<std::string, uint32_t> keywordIds;  // messages.keywords text -> keywordSets index
    bool stale = false;
  };
  Status load(int64_t mailboxId, Slot& slot, uint32_t uidNext, uint64_t highestModseq);
  // false when the delta cannot be applied (the caller reloads).
  Result<bool> refresh(int64_t mailboxId, Slot& slot, uint32_t uidNext, uint64_t highestModseq);

  Store& store_;
  uint64_t subscription_ = 0;
  std::unordered_map<int64_t, Slot> boxes_;
  uint64_t fullLoads_ = 0, refreshes_ = 0;
};

}  // namespace mb::store
