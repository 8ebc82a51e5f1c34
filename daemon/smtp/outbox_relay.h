// The outbox relay: sends queued messages upstream per account over SMTP
// (up to the account's max_connections connections while several messages
// are due, each reused for the next due message, pipelined when the server
// offers it), records per-recipient results, retries
// transient failures with exponential backoff and jitter until the account's
// maximum age, then bounces (RFC 3464 DSN into the local INBOX), and files
// the Sent copy. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/store/outbox.h"
#include "daemon/store/store.h"
#include "protocols/common/result.h"

namespace mb::smtp {

class RelayClient;

class OutboxRelay {
 public:
  // `config` and `store` must outlive the relay.
  OutboxRelay(uv_loop_t* loop, const Config& config, store::Store& store);
  ~OutboxRelay();
  OutboxRelay(const OutboxRelay&) = delete;
  OutboxRelay& operator=(const OutboxRelay&) = delete;

  // Finishes rows a crash left half-done, then starts sending what is due.
  void start();
  // Something was queued or retried: look for due work soon.
  void wake();
  // Drops connections (their messages stay queued) and stops the timer.
  void shutdown();

  // For the REST API (JSON text).
  Result<std::string> listJson();
  Result<std::string> retry(int64_t id);
  Result<std::string> remove(int64_t id);

 private:
  friend class RelayClient;
  void schedule(uint64_t delayMs);
  void tick();
  const AccountConfig* accountConfig(int64_t accountId);
  // The next due row of an account that this connection has not tried yet.
  std::optional<store::OutboxItem> nextFor(int64_t accountId, const std::set<int64_t>& tried);
  // Stores one attempt's outcome; bounces and files the Sent copy when no
  // recipient is left pending.
  void record(store::OutboxItem& item, const std::string& error, const std::string& remoteHost);
  // The connection failed before these rows could be tried: each gets a
  // failed attempt (and so its backoff), unless another connection of the
  // account is still open to send them; then the account stays at fewer
  // connections until its queue is drained (the server may limit them).
  void connectionFailed(RelayClient* client, int64_t accountId, const std::set<int64_t>& tried,
                        const std::string& error, const std::string& remoteHost);
  void finalize(store::OutboxItem& item, bool copy, const std::string& remoteHost);
  // Deletes the rows of the messages delivered this loop turn in one commit.
  void removeDelivered();
  void clientDone(RelayClient* client);

  uv_loop_t* loop_;
  const Config& config_;
  store::Store& store_;
  uv_timer_t* timer_ = nullptr;  // freed by its close callback
  uv_check_t* check_ = nullptr;  // runs removeDelivered after the loop turn; freed by its close callback
  std::vector<int64_t> delivered_;  // rows to delete (kept in inFlight_ until then, so never sent twice)
  std::multimap<int64_t, std::unique_ptr<RelayClient>> clients_;  // by account id
  std::map<int64_t, size_t> connectionCap_;  // account id -> connections the server took, after a refusal
  std::vector<std::unique_ptr<RelayClient>> finished_;       // destroyed on the next tick
  std::set<int64_t> inFlight_;
  std::mt19937_64 rng_;
  bool stopped_ = false;
};

}  // namespace mb::smtp
