// The daemon's published state, read by the REST threads. The loop thread
// builds a new immutable snapshot and swaps it in; readers never see a torn one
// and never touch loop objects.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace mb {

struct ListenerStatus {
  std::string name;     // "api", "imap", "imaps", ...
  std::string address;  // "127.0.0.1:8025"
  bool tls = false;
};

struct AccountStatus {
  int64_t id = 0;
  std::string name;
  std::string address;
  std::string localUsername;  // empty until a local password was issued
  std::string kind;   // "local" (no upstream), later "imap", "pop3", "eas"
  std::string state;  // "ready", "connecting", "syncing", "offline", "auth_failed"
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
  std::shared_ptr<const StatusSnapshot> current() const {
    std::lock_guard lock(mutex_);
    return current_;
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const StatusSnapshot> current_ = std::make_shared<StatusSnapshot>();
};

}  // namespace mb
