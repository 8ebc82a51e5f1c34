// BodyFetcher: the bodies of header-only messages (an account with bodies
// "on_demand"), fetched from the upstream on a connection of its own (the
// sync's connection may be busy for minutes with a first sync) and stored
// like a full download (durable blob and analysis first, then the rows). A
// local IMAP session waits for them (Session::pendingBodies); the SyncEngine
// also uses it to fill in the bodies in the background after an account
// switched back to "full". Requests take turns a chunk at a time, and one
// whose waiter went away is dropped. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <map>
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
  // mailbox; UIDs that have a body by then are skipped. Each body is settled
  // on its own: done gets the UIDs that could not get one (gone upstream,
  // another message under that UID now, a copy not on the provider yet), or
  // an Unavailable error whose message a mail program may show when the
  // request as a whole could not run (upstream unreachable, login refused).
  // done runs on a later loop turn, never inside this call.
  // Requests take turns a chunk (kChunk bodies) at a time, so a large one
  // does not hold up a small one asked later. Once `waiter` has expired (the
  // mail program that asked went away) the request is dropped before its
  // next chunk; done then gets Unavailable and nothing counts as failed.
  // `purpose` only decides which counter a fetched body goes to.
  enum class Purpose { Client, FillIn };
  using Done = std::function<void(Result<std::vector<uint32_t>>)>;
  void fetch(int64_t mailboxId, std::vector<uint32_t> uids, Purpose purpose, std::weak_ptr<const void> waiter,
             Done done);
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
    std::weak_ptr<const void> waiter;
    Done done;
    size_t next = 0;     // uids[next..] are not fetched yet (a large request goes in chunks)
    std::vector<uint32_t> deferred;  // read from another upstream folder: uids once those are done
    size_t total = 0;    // UIDs asked for
    size_t settled = 0;  // of them: stored, found with a body (or gone) by then, or missing
    std::vector<uint32_t> missing;  // settled without a body
  };
  struct Job;

  void schedule();
  void pump();
  // Fetches the current request's next chunk, then it goes to the back of
  // the queue (at most kChunk bodies and
  // about kChunkBytes: a SEARCH BODY over a large mailbox must not hold
  // every body in memory).
  void start();
  void received(std::shared_ptr<Job> job, Status fetched);
  void stored(Job& job);
  // The current request's chunk is settled: its next chunk queues up, or it
  // finishes.
  void chunkDone();
  void finish(Result<std::vector<uint32_t>> result);
  void failQueued(const std::string& why);
  // Ends the requests whose waiter went away.
  void dropAbandoned();

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

// The background fill-in's memory of bodies that could not be had (gone
// upstream, another message under that UID, a copy not mapped): each is
// skipped until its next attempt, 1 minute after the first failure and
// doubling up to a day, so the fill-in gets past them instead of asking for
// the same batch every cycle, and still tries them now and then (a copy gets
// mapped by a later sync). In memory only: a restart tries each once more.
class FillInBackoff {
 public:
  void failed(int64_t mailboxId, uint32_t uid, uint64_t nowMs);
  void settled(int64_t mailboxId, uint32_t uid) { entries_.erase({mailboxId, uid}); }
  bool due(int64_t mailboxId, uint32_t uid, uint64_t nowMs) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    uint32_t attempts = 0;
    uint64_t nextMs = 0;
  };
  std::map<std::pair<int64_t, uint32_t>, Entry> entries_;
};

// The fill-in's next batch: at most `limit` header-only messages of one
// mailbox of the account (the lowest mailbox id first) that have an upstream
// identity (its own, or its source's for a copy) and are due by `backoff`. An empty list: nothing left to try now.
struct FillInBatch {
  int64_t mailboxId = 0;
  std::vector<uint32_t> uids;  // ascending
};
Result<FillInBatch> nextFillIn(store::Store& store, int64_t accountId, const FillInBackoff& backoff, uint64_t nowMs,
                               size_t limit);

}  // namespace mb::sync
