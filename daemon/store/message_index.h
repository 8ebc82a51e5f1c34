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
#include <functional>
#include <span>
#include <string>
#include <string_view>
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

  // SEARCH HEADER <field>: calls fn(uid, values) for each of the given
  // ascending UIDs that has a stored header block, in UID order, with the
  // message's values of `field` (lower case) as mime::packFoldedValues packs
  // them. The values come from a per-mailbox, per-field cache: filled from
  // the stored header blocks on the first SEARCH on that field, then only
  // from the rows added since (a message's header never changes and UIDs are
  // never reused), pruned at expunge, dropped with the mailbox's copy. A
  // field whose values outgrow kFieldBytes is not cached: fn is never
  // called and the caller reads the header blocks itself.
  Status fieldValues(int64_t mailboxId, std::string_view field, std::span<const uint32_t> uids,
                     const std::function<void(uint32_t, std::string_view)>& fn);

  static constexpr size_t kFieldBytes = 24u << 20;    // one field of one mailbox
  static constexpr size_t kAllFieldBytes = 48u << 20; // every cached field: least recently used go first

  // For tests: how many full loads and incremental refreshes ran, and how
  // many header blocks the field caches parsed.
  uint64_t fullLoads() const { return fullLoads_; }
  uint64_t refreshes() const { return refreshes_; }
  uint64_t fieldBlocksRead() const { return fieldBlocksRead_; }

 private:
  struct FieldCache {
    std::string name;
    std::vector<uint32_t> uids;  // ascending
    std::vector<uint32_t> ends;  // end of uids[i]'s values in text (begin: the previous end)
    std::string text;
    uint32_t coveredNext = 1;    // every row below this UID with a header block is in uids
    uint64_t lastUse = 0;
    bool tooBig = false;
    size_t bytes() const { return text.size() + uids.size() * 8; }
  };
  struct Slot {
    IndexedMailbox box;
    std::vector<FieldCache> fields;
    std::unordered_map<std::string, uint32_t> keywordIds;  // messages.keywords text -> keywordSets index
    bool stale = false;
  };
  Status load(int64_t mailboxId, Slot& slot, uint32_t uidNext, uint64_t highestModseq);
  // false when the delta cannot be applied (the caller reloads).
  Result<bool> refresh(int64_t mailboxId, Slot& slot, uint32_t uidNext, uint64_t highestModseq);

  Status fillField(int64_t mailboxId, uint32_t uidNext, FieldCache& fc);
  static void pruneFields(Slot& slot, const std::vector<uint32_t>& gone);
  void enforceFieldBudget(const Slot* keepSlot, std::string_view keepField);

  Store& store_;
  uint64_t subscription_ = 0;
  uint64_t useClock_ = 0, fieldBlocksRead_ = 0;
  std::unordered_map<int64_t, Slot> boxes_;
  uint64_t fullLoads_ = 0, refreshes_ = 0;
};

}  // namespace mb::store
