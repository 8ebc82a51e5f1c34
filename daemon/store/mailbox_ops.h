// Mailbox operations for local sessions beyond Store's basics: the
// special-use set every account gets, rename (children and INBOX included),
// delete, subscriptions, counts. Each is one transaction with its journal row,
// then a StoreChange. Loop thread only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "daemon/store/store.h"

namespace mb::store {

// Creates INBOX, Sent, Drafts, Trash, Junk and Archive (RFC 6154 uses) that
// are missing. Cheap when they exist; called at login and first delivery.
Status ensureDefaultMailboxes(Store& store, int64_t accountId);

// CREATE: journaled ("mailbox.create"). Conflict when it exists.
Result<Mailbox> createMailboxLocal(Store& store, int64_t accountId, std::string_view name, std::string_view specialUse,
                                   const void* origin);

// DELETE (RFC 3501 6.3.4): the mailbox and its messages; children stay.
// User error for INBOX, NotFound when missing. Blobs no longer used are freed.
// journal = false: the sync engine applying an upstream delete.
Status deleteMailboxLocal(Store& store, int64_t accountId, std::string_view name, const void* origin,
                          bool journal = true);

// RENAME (RFC 3501 6.3.5): renames the mailbox and every child "from/..."
// (keeping ids and UIDVALIDITY). Renaming INBOX moves its messages to a new
// mailbox and leaves INBOX empty. Conflict if the target exists.
// journal = false: the sync engine applying a rename found upstream.
Status renameMailboxLocal(Store& store, int64_t accountId, std::string_view from, std::string_view to,
                          char delimiter, const void* origin, bool journal = true);

// SUBSCRIBE / UNSUBSCRIBE. NotFound for a mailbox that does not exist.
Status setSubscribed(Store& store, int64_t accountId, std::string_view name, bool subscribed, const void* origin);

struct MailboxCounts {
  uint32_t messages = 0;
  uint32_t unseen = 0;
  uint32_t deleted = 0;
  uint64_t size = 0;
};
Result<MailboxCounts> mailboxCounts(Store& store, int64_t mailboxId);

Result<std::optional<Mailbox>> mailboxById(Store& store, int64_t mailboxId);

}  // namespace mb::store
