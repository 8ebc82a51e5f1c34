// One account's two-way sync with its upstream through a Connector: maps the
// folder tree, replays the local journal upstream (in order, idempotently),
// pulls upstream changes into the Store (one transaction per batch, then the
// ChangeHub broadcast), watches folders for push, polls the rest, and keeps
// the state and progress that GET /v1/status shows. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/status_board.h"
#include "daemon/store/store.h"
#include "daemon/sync/body_fetcher.h"
#include "daemon/sync/connector.h"
#include "daemon/sync/sync_logic.h"

namespace mb::sync {

class SyncEngine {
 public:
  using ConnectorFactory = std::function<std::unique_ptr<Connector>()>;

  // `store` must outlive the engine; onStatus runs (on the loop) whenever
  // status() changed.
  SyncEngine(uv_loop_t* loop, store::Store& store, int64_t accountId, const AccountConfig& account,
             ConnectorFactory makeConnector, std::function<void()> onStatus);
  ~SyncEngine();
  SyncEngine(const SyncEngine&) = delete;
  SyncEngine& operator=(const SyncEngine&) = delete;

  void start();
  // Sync now (e.g. an API request); no-op while offline waiting for a retry.
  void poke();
  const SyncProgress& status() const { return status_; }
  const ImapUpstreamConfig& config() const { return cfg_; }
  int64_t accountId() const { return accountId_; }
  // A local client waits for the bodies of these header-only messages
  // (bodies "on_demand"): see BodyFetcher::fetch.
  // Done: every body was tried (those still missing cannot be had), or the
  // request failed as a whole.
  void fetchBodies(int64_t mailboxId, std::vector<uint32_t> uids, std::weak_ptr<const void> waiter,
                   std::function<void(Status)> done);

 private:
  struct Folder {
    RemoteFolder remote;
    int64_t mailboxId = 0;
    std::string localName;
  };

  void connect();
  void onReady();
  void onLost(const ConnectorFailure& f);
  void scheduleRetry();
  void setState(const char* state, std::string error = {});
  void publish(bool force = false);

  void cycle();
  void afterList(Result<std::vector<RemoteFolder>> folders);
  Status mapFolders(std::vector<RemoteFolder> remote);
  Status followRenames(const std::vector<RemoteFolder>& remote);
  void replay(std::function<void()> next);
  void replayOne(std::function<void()> next);
  // What a replayed journal row reports: the result, and what to record in
  // the transaction that deletes the row.
  using ReplayDone = std::function<void(Result<OpResult>, std::function<Status(store::Db&, const OpResult&)>)>;
  void replayFlagMerge(const std::string& folder, int64_t mailboxId, const std::vector<uint32_t>& localUids,
                       ReplayDone done);
  Status undoFlagChange(const std::string& mailbox, const std::vector<uint32_t>& uids);
  void finishFlagMerge(int64_t mailboxId, const std::vector<LocalMessage>& pending, const FlagPush& plan,
                       const ReplayDone& done);
  void syncNextFolder();
  void syncFolder(Folder& f, std::function<void(Status)> done);
  void applyChanges(Folder& f, FolderChanges ch, std::function<void(Status)> done);
  void remap(Folder& f, FolderChanges ch, std::function<void(Status)> done);
  void download(Folder& f, std::vector<uint32_t> uids, FolderState finalState, std::function<void(Status)> done);
  struct Download;
  void received(const std::shared_ptr<Download>& d, RemoteMessage&& m);
  void submit();
  void drain(const std::shared_ptr<Download>& d);
  // The cycle's mailboxes are fetched and stored: done, or failed with storeError_.
  void endCycle();
  Status saveFolderState(store::Db& db, int64_t mailboxId, const FolderState& state, bool complete);
  void cycleDone();
  // bodies "full" after "on_demand": the bodies still missing, 200 at a
  // time, until none is left to try or one fetch fails as a whole (the next
  // cycle goes on); a body that could not be had waits in fillBackoff_.
  void fillBodies();
  void cycleFailed(const Error& e);
  // The cycle failed for status_.lastError: logged, and while connected a
  // full cycle after a backoff.
  void retryCycle();
  void onStoreChange(const store::StoreChange& c);
  void kick(uint64_t delayMs);
  Folder* folderByName(const std::string& localName);

  uv_loop_t* loop_;
  store::Store& store_;
  int64_t accountId_;
  std::string accountName_;
  ImapUpstreamConfig cfg_;
  ConnectorFactory makeConnector_;
  std::function<void()> onStatus_;
  std::unique_ptr<Connector> conn_;
  std::unique_ptr<BodyFetcher> bodies_;
  bool filling_ = false;              // fillBodies() has a fetch running
  FillInBackoff fillBackoff_;
  std::vector<Folder> folders_;
  std::vector<size_t> todo_;          // folder indexes left in this cycle
  std::set<std::string> dirty_;       // folder ids the watchers reported
  bool busy_ = false;                 // a cycle is running
  bool connected_ = false;
  bool wantFull_ = true;              // the next cycle lists folders
  bool wantReplay_ = true;
  int64_t replayAt_ = 0;              // a journal row waits for its retry until then (unix s; 0: none)
  bool watching_ = false;
  std::vector<std::shared_ptr<Download>> downloads_;  // still storing, in start order
  size_t onPool_ = 0;                 // their batches on the thread pool
  uint64_t queuedBytes_ = 0;          // received, not committed yet
  bool readPaused_ = false;           // the connection's reading, for queuedBytes_
  std::optional<Error> storeError_;   // a download of this cycle failed to store
  std::optional<std::string> mailboxError_;  // the upstream failed a mailbox of this cycle (the first)
  std::string mailboxErrorShown_;            // such an error, as status_.lastError shows it
  bool cycleEnding_ = false;          // every mailbox fetched; waiting for downloads_
  bool cycleWanted_ = false;          // cycle() was called meanwhile
  // Failures in a row without progress (a cycle done, messages stored): a
  // login alone is none, or a server failing every sync after it would be
  // retried at the shortest delay forever.
  uint32_t failures_ = 0;
  uv_timer_t* timer_ = nullptr;       // retry / poll / kick; freed by its close callback
  uint64_t hubSubscription_ = 0;
  std::mt19937_64 rng_;
  SyncProgress status_;
  uint64_t lastPublishMs_ = 0;
  bool missingStale_ = true;          // status_.bodiesMissing may be out of date
  uint64_t lastMissingCountMs_ = 0;
  uint64_t cycleStartNs_ = 0;       // uv_hrtime(), for the sync.cycle_done line
  bool cycleFull_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mb::sync
