// An in-memory mail store behind the Backend interface, for session transcript
// tests and the session fuzzer: same rules as the SQLite store (UIDs, modseqs,
// events to every session of the account) with no I/O.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocols/imap/backend.h"

namespace mb::imap {

class MemoryMailStore {
 public:
  struct Message {
    MessageInfo info;
    std::string bytes;
    std::optional<mime::MessageAnalysis> analysis;
    // Simulates a message synced without its body (bodies "on_demand"):
    // bytes and analysis stay (they stand for the upstream's copy), but only
    // its metadata and header block can be read until a test clears it.
    bool bodyMissing = false;
    // With bodyMissing: the provider's BODYSTRUCTURE stored with the header
    // ("" for none), which structures() then answers.
    std::string upstreamBodyStructure;
  };
  struct Box {
    MailboxInfo info;
    uint32_t uidValidity = 0, uidNext = 1;
    uint64_t highestModseq = 1;
    std::map<uint32_t, Message> messages;
    std::map<uint32_t, uint64_t> expunged;  // uid -> modseq
  };
  using Listener = std::function<void(const MailboxEvent&, const void* origin)>;

  MemoryMailStore();
  // Accounts are numbers; "user"/"pass" pairs for the tests' logins.
  void addUser(std::string user, std::string password, int64_t accountId);
  Result<int64_t> checkLogin(const std::string& user, const std::string& password) const;

  size_t listen(Listener l) {
    listeners_.push_back(std::move(l));
    return listeners_.size() - 1;
  }
  void unlisten(size_t id) { listeners_[id] = nullptr; }
  void publish(const MailboxEvent& ev, const void* origin);

  std::map<int64_t, std::map<std::string, Box>> accounts;  // account -> name -> box
  int64_t nextBoxId = 1;
  uint32_t nextUidValidity = 1000;
  int64_t clock = 1700000000;

 private:
  std::map<std::string, std::pair<std::string, int64_t>> users_;
  std::vector<Listener> listeners_;
};

class MemoryBackend final : public Backend {
 public:
  explicit MemoryBackend(MemoryMailStore& store) : store_(store) {}

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
  std::map<std::string, MemoryMailStore::Box>& boxes() { return store_.accounts[account_]; }
  MemoryMailStore::Box* byName(std::string_view name);
  MemoryMailStore::Box* byId(int64_t id);
  Status createBox(std::string_view name, std::string_view specialUse);

  MemoryMailStore& store_;
  int64_t account_ = 0;
};

}  // namespace mb::imap
