// BodyFetcher: the bodies of header-only messages (an account with bodies
// "on_demand"), fetched from the upstream on a connection of its own (the
// sync's connection may be busy for minutes with a first sync) and stored
// like a full download (durable blob and analysis first, then the rows), one
// request at a time, in the order asked. A local IMAP session waits for them
// (Session::pendingBodies); the SyncEngine also uses it to fill in the
// bodies in the background after an account switched back to "full".
// Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/store/store.h"
#include "daemon/sync/connector.h"

namespace mb::sync {

class BodyFetcher {
 public:
  using ConnectorFactory = std::function<std::unique_ptr<Connector>()>;

  // `store` must outlive the fetcher.
  BodyFetcher(uv_loop_t* loop, store::Store& store, std::string accountName, ConnectorFactory makeConnector);
  // Pending requests fail (Unavailable); the connection closes.
  ~BodyFetcher();
  BodyFetcher(const BodyFetcher&) = delete;
  BodyFetcher& operator=(const BodyFetcher&) = delete;

  // Fetches and stores the bodies of these local UIDs (ascending) of a
  // mailbox; UIDs that have a body by then are skipped. done runs on a later
  // loop turn, never inside this call: success, or an Unavailable error whose
  // message a mail program may show (upstream unreachable, login refused,
  // message gone upstream or not there yet).
  // `purpose` only decides which counter a fetched body goes to.
  enum class Purpose { Client, FillIn };
  void fetch(int64_t mailboxId, std::vector<uint32_t> uids, Purpose purpose, std::function<void(Status)> done);
  // While `why` is not empty, requests fail at once with it (the provider
  // refused the login: asking again only repeats that). A login refused on
  // the fetcher's own connection does the same for a few minutes.
  void refuse(std::string why);
  bool idle() const { return !current_ && queue_.empty(); }
  // Since this fetcher started: bodies stored for Purpose::Client requests,
  // and the messages of failed requests (either purpose) that got no body
  // (a retried fill-in counts again).
  uint64_t fetchedForClients() const { return fetchedForClients_; }
  uint64_t failed() const { return failed_; }

 private:
  struct Request {
    int64_t mailboxId = 0;
    std::vector<uint32_t> uids;
    Purpose purpose = Purpose::Client;
    std::function<void(Status)> done;
    size_t next = 0;     // uids[next..] are not fetched yet (a large request goes in chunks)
    size_t settled = 0;  // of uids: stored, or found with a body (or gone) by then
  };
  struct Job;

  void schedule();
  void pump();
  // Fetches the current request's next chunk (at most kChunk bodies and
  // about kChunkBytes: a SEARCH BODY over a large mailbox must not hold
  // every body in memory).
  void start();
  void received(std::shared_ptr<Job> job, Status fetched);
  void stored(Job& job);
  void finish(Status result);
  void failQueued(const std::string& why);

  uv_loop_t* loop_;
  store::Store& store_;
  std::string accountName_;
  ConnectorFactory makeConnector_;
  std::unique_ptr<Connector> conn_;
  bool ready_ = false;
  bool lost_ = false;  // conn_ failed: destroyed on the next pump, outside its callbacks
  std::string lostWhy_;
  std::string refusal_;
  uint64_t refusedUntilMs_ = 0;  // 0: refuse()d by the engine, until refuse(""); else our own login failed: until then
  std::deque<Request> queue_;
  std::optional<Request> current_;
  uint64_t fetchedForClients_ = 0;
  uint64_t failed_ = 0;
  uv_timer_t* timer_ = nullptr;  // pump() on a fresh loop turn; freed by its close callback
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mb::sync
