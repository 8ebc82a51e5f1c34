// The daemon core: owns the loop, the config, the state dir lock, the store,
// the TLS identity and the published status. main() wires the REST API to it;
// the protocol listeners hang off it as their issues land.
#pragma once

#include <uv.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/command_queue.h"
#include "daemon/config/config.h"
#include "daemon/log/log.h"
#include "daemon/status_board.h"
#include "protocols/common/result.h"

namespace mb {

class Vault;

namespace auth {
class Authenticator;
}

namespace store {
class StateDirLock;
class Store;
}  // namespace store

namespace sync {
class SyncEngine;
}

struct DaemonOptions {
  std::filesystem::path configPath;
  bool configRequired = false;  // --config given: a missing file is an error
  std::filesystem::path stateDir;
};

class Daemon {
 public:
  // Loads and validates the config first (a bad config touches nothing), then
  // locks the state dir, opens the store, ensures the TLS identity and the API
  // token, and registers the configured accounts.
  static Result<std::unique_ptr<Daemon>> open(const DaemonOptions& options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  uv_loop_t* loop() { return loop_.get(); }
  const Config& config() const { return config_; }
  const StatusBoard& status() const { return status_; }
  CommandQueue& commands() { return *commands_; }
  const Secret& apiToken() const { return apiToken_; }
  const std::filesystem::path& stateDir() const { return options_.stateDir; }
  const std::filesystem::path& certPath() const { return certPath_; }
  const std::filesystem::path& keyPath() const { return keyPath_; }

  // Records a bound listener for the status and <state dir>/listeners.json.
  Status addListener(ListenerStatus listener);
  // The bodies of header-only messages a local IMAP session waits for,
  // through the account's SyncEngine (see BodyFetcher::fetch); Unavailable
  // at once for an account without an upstream.
  void fetchBodies(int64_t accountId, int64_t mailboxId, std::vector<uint32_t> uids, std::weak_ptr<const void> waiter,
                   std::function<void(Status)> done);

  auth::Authenticator& authenticator() { return *authenticator_; }
  store::Store& store() { return *store_; }

  // Issues a new local password for an account (loop thread). Returns
  // {"username","password"} as JSON text for the API; NotFound for a bad id.
  // Makes `hash` (auth::hashPassword's form, computed off the loop) the
  // account's local password: JSON {"username"}.
  Result<std::string> setLocalPassword(int64_t accountId, const std::string& hash);

  // Re-reads the config file: applies account additions/removals and the log
  // level; a bad file is reported and changes nothing. Loop thread only.
  Status reload();

  // REST account management (loop thread). Bodies are JSON text, validated by
  // the config file's account parser; errors are Config (400, naming the key
  // path), NotFound, or Conflict (a name or address in use, or an account
  // from the config file, which only the file changes).
  // create: {"id", "local": {"username"}}; the REST server adds the password
  // (setLocalPassword) before it answers, shown once.
  Result<std::string> createAccount(std::string_view body);
  // A JSON merge patch (RFC 7386) of the account's settings; {"id"}.
  Result<std::string> updateAccount(int64_t accountId, std::string_view patch);
  // Removes the account and everything of it on disk; {"deleted": id}.
  Result<std::string> deleteAccount(int64_t accountId);

  // Runs the loop until SIGINT/SIGTERM. `onShutdown` runs on the loop thread
  // as shutdown begins (main stops the API there). Returns the exit code.
  int run(std::function<void()> onShutdown);

 private:
  explicit Daemon(DaemonOptions options);
  // The one way the set of accounts changes (start-up, reload, REST): config_
  // becomes `next` with `api` appended to its accounts, so config_.accounts
  // is always every account (the file's first). Creates rows for new file
  // accounts and removes the rows of accounts that left either set.
  Status applyAccounts(Config next, std::vector<AccountConfig> api);
  // config_ as the file gave it (without the API accounts).
  Config fileConfig() const;
  void publishStatus();
  // Starts a SyncEngine for each account with an "imap" upstream, restarts
  // those whose upstream config changed, stops those whose account or
  // upstream is gone (stopOnly: only the stopping, before accounts are removed).
  void reconcileSync(const Config& config, bool stopOnly);
  // Destroys every SyncEngine, out of engines_ first (shutdown).
  void stopEngines();
  void greetNewAccounts();
  void beginShutdown(const char* why);
  void installSignals();
  void closeSignals();

  struct LoopDeleter {
    void operator()(uv_loop_t* loop) const;
  };

  DaemonOptions options_;
  Config config_;
  std::unique_ptr<uv_loop_t, LoopDeleter> loop_;
  std::unique_ptr<store::StateDirLock> lock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<CommandQueue> commands_;
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::map<std::string, std::unique_ptr<sync::SyncEngine>> engines_;  // by account name
  std::unique_ptr<Vault> vault_;            // seals API accounts' upstream secrets
  std::vector<AccountConfig> apiAccounts_;  // the tail of config_.accounts
  StatusBoard status_;
  std::chrono::steady_clock::time_point started_;
  std::vector<ListenerStatus> listeners_;
  std::vector<uv_signal_t*> signals_;
  std::function<void()> onShutdown_;
  bool shuttingDown_ = false;
  uv_timer_t* grace_ = nullptr;  // shutdown deadline; freed by its close callback
  Secret apiToken_;
  std::filesystem::path certPath_;
  std::filesystem::path keyPath_;
};

}  // namespace mb
