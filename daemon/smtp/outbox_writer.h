// Group commit for the outbox: each accepted message's body is written and
// fsync'd on the libuv thread pool, so the loop keeps serving other sessions;
// the rows of all bodies that became durable in one loop turn are committed in
// one transaction (one WAL fsync), and only then is each caller told its id
// (the SMTP session's 250). Loop thread only, except the body writes.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "daemon/store/outbox.h"
#include "daemon/store/store.h"
#include "protocols/common/result.h"

namespace mb::smtp {

// A message the SMTP endpoint took: the envelope and the data as received.
struct AcceptedMessage {
  int64_t accountId = 0;
  std::string mailFrom;
  std::vector<std::string> recipients;
  std::string data;
};

class OutboxWriter {
 public:
  using Done = std::function<void(Result<int64_t>)>;

  // `store` must outlive the writer and every write in flight: the loop runs
  // until the thread pool has finished them (as Daemon::run does).
  // `onCommitted` runs after each batch that stored at least one row.
  OutboxWriter(uv_loop_t* loop, store::Store& store, std::function<void()> onCommitted);
  ~OutboxWriter();
  OutboxWriter(const OutboxWriter&) = delete;
  OutboxWriter& operator=(const OutboxWriter&) = delete;

  // Stores the message; done gets the outbox id once its row is committed
  // (never from inside write()), or the error.
  void write(AcceptedMessage message, Done done);

 private:
  struct Job;
  void written(Job* job);
  void commit();

  uv_loop_t* loop_;
  store::Store& store_;
  std::function<void()> onCommitted_;
  uv_check_t* check_ = nullptr;  // commits after the loop turn's writes completed; freed by its close callback
  std::vector<std::unique_ptr<Job>> ready_;  // bodies durable (or failed), rows not yet committed
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mb::smtp
