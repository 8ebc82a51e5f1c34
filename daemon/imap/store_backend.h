// The IMAP session's Backend over the SQLite Store: one per connection, bound
// to the account at login; its address is the `origin` of the changes it
// makes, so its own session does not report them twice.
#pragma once

#include "daemon/store/change_hub.h"
#include "daemon/store/message_index.h"
#include "daemon/store/store.h"
#include "protocols/imap/backend.h"

namespace mb::imap {

class StoreBackend final : public Backend {
 public:
  StoreBackend(store::Store& store, store::MessageIndex& index) : store_(store), index_(index) {}

  int64_t accountId() const { return account_; }

  // StoreChange -> the session's event type; nullopt for changes a session
  // never reports (mailbox create/rename).
  static std::optional<MailboxEvent> toEvent(const store::StoreChange& change);

  Status openAccount(int64_t accountId) override;
  Result<std::vector<MailboxInfo>> listMailboxes() override;
  Status createMailbox(std::string_view name, std::string_view specialUse) override;
  Status deleteMailbox(std::string_view name) override;
  Status renameMailbox(std::string_view from, std::string_view to) override;
  Status setSubscribed(std::string_view name, bool subscribed) override;
  Result<MailboxCountsInfo> mailboxCounts(std::string_view name) override;
  Result<SelectInfo> selectMailbox(std::string_view name) override;
  Result<AppendInfo> append(std::string_view name, std::span<const AppendItem> messages) override;
  Result<std::vector<MessageInfo>> messages(int64_t mailboxId, std::span<const uint32_t> uids) override;
  Status messageBytes(int64_t mailboxId, uint32_t uid, std::string& out) override;
  Result<std::optional<mime::MessageAnalysis>> messageAnalysis(int64_t mailboxId, uint32_t uid) override;
  Result<HeaderFields> headerFields(int64_t mailboxId, uint32_t uid) override;
  Result<std::vector<uint32_t>> bodilessUids(int64_t mailboxId, std::span<const uint32_t> uids) override;
  Result<std::vector<StoredStructure>> structures(int64_t mailboxId, std::span<const uint32_t> uids) override;
  Result<std::vector<StoredHeader>> topHeaders(int64_t mailboxId, std::span<const uint32_t> uids) override;
  Result<std::vector<FieldValues>> headerFieldValues(int64_t mailboxId, std::string_view field,
                                                     std::span<const uint32_t> uids) override;
  Result<FlagsOutcome> storeFlags(int64_t mailboxId, std::span<const uint32_t> uids, FlagOp op, uint32_t flags,
                                  const std::vector<std::string>& keywords,
                                  std::optional<uint64_t> unchangedSince) override;
  Result<CopyInfo> copy(int64_t mailboxId, std::span<const uint32_t> uids, std::string_view destination,
                        bool move) override;
  Result<std::vector<uint32_t>> expunge(int64_t mailboxId, std::optional<std::span<const uint32_t>> only) override;
  Result<std::vector<uint32_t>> vanishedSince(int64_t mailboxId, uint64_t modseq) override;

 private:
  Result<store::Mailbox> find(std::string_view name);

  store::Store& store_;
  store::MessageIndex& index_;
  int64_t account_ = 0;
};

}  // namespace mb::imap
