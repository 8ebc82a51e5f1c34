// The daemon's published state, read by the REST threads. The loop thread
// builds a new immutable snapshot and swaps it in; readers never see a torn one
// and never touch loop objects.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace mb {

struct ListenerStatus {
  std::string name;     // "api", "imap", "imaps", ...
  std::string address;  // "127.0.0.1:8025"
  bool tls = false;
};

// An account's upstream sync (issue 5), shown under "sync" in the API.
struct SyncProgress {
  std::string state = "connecting";  // connecting | syncing | idle | offline | auth_failed
  uint32_t mailboxesTotal = 0, mailboxesDone = 0;
  uint64_t messagesTotal = 0, messagesDone = 0;  // to download in this sync / downloaded
  uint64_t bytes = 0;                            // received from upstream since start
  uint64_t pendingChanges = 0;                   // local changes not yet upstream
  uint64_t droppedChanges = 0;                   // local changes the upstream refused for good (since start)
  std::string bodies = "full";                   // the account's policy: full | on_demand
  uint64_t bodiesMissing = 0;                    // messages stored with their header only
  uint64_t bodiesFetchedOnDemand = 0;            // bodies fetched for a mail program (since start)
  uint64_t bodiesFailed = 0;                     // bodies a fetch could not get, either kind (since start)
  std::string lastError;                         // safe to show: never a secret
  int64_t nextRetry = 0;                         // unix seconds, while offline
  int64_t lastSync = 0;                          // unix seconds of the last complete sync
};

// What the API shows of an upstream connection: never a secret.
struct UpstreamSummary {
  std::string host;
  uint16_t port = 0;
  std::string security;  // "tls", "starttls", "none"
  std::string username;
};

struct AccountStatus {
  int64_t id = 0;
  std::string name;
  std::string address;
  std::string localUsername;  // empty until a local password was issued
  std::string kind;   // "local" (no upstream), later "imap", "pop3", "eas"
  std::string state;  // "ready", "connecting", "syncing", "idle", "offline", "auth_failed"
  std::optional<SyncProgress> sync;  // accounts with an upstream IMAP mailbox
  std::string source;  // "config" (the file) or "api" (created through the REST API)
  std::optional<UpstreamSummary> imap;  // the upstream IMAP server, if any
  std::optional<UpstreamSummary> smtp;  // the SMTP relay, if any
};

struct StatusSnapshot {
  std::string version;
  std::chrono::steady_clock::time_point started;
  std::string configSource;
  std::string stateDir;
  std::vector<ListenerStatus> listeners;
  std::vector<AccountStatus> accounts;
};

class StatusBoard {
 public:
  void publish(std::shared_ptr<const StatusSnapshot> snapshot) {
    std::lock_guard lock(mutex_);
    current_ = std::move(snapshot);
  }
  // Keep the returned pointer in a local for as long as anything inside the
  // snapshot is used: the loop thread may publish (and free the previous
  // snapshot) at any moment, so `for (x : current()->accounts)` or a pointer
  // taken from `*current()` dangles.
  std::shared_ptr<const StatusSnapshot> current() const {
    std::lock_guard lock(mutex_);
    return current_;
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const StatusSnapshot> current_ = std::make_shared<StatusSnapshot>();
};

}  // namespace mb
