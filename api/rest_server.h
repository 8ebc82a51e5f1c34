// The REST API: cpp-httplib on its own threads, bound to loopback by default.
// It reads StatusBoard snapshots and posts work to the loop through
// CommandQueue; it never touches loop objects itself.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "daemon/command_queue.h"
#include "daemon/config/config.h"
#include "daemon/log/log.h"
#include "daemon/status_board.h"
#include "protocols/common/result.h"

namespace httplib {
class Server;
}

namespace mb {

// What the API can ask the loop to do. Each runs on the loop thread.
struct ApiCommands {
  std::function<Status()> reload;  // re-read the config, like SIGHUP
  // New local password for an account: JSON {"username","password"}.
  std::function<Result<std::string>(int64_t accountId)> issuePassword;
  // Account management (see Daemon::createAccount and friends): JSON bodies
  // in, JSON text out.
  std::function<Result<std::string>(std::string body)> createAccount;
  std::function<Result<std::string>(int64_t accountId, std::string patch)> updateAccount;
  std::function<Result<std::string>(int64_t accountId)> deleteAccount;
  // The SMTP outbox: {"outbox": [...]}, retry now, delete. Unset: 404.
  std::function<Result<std::string>()> outboxList;
  std::function<Result<std::string>(int64_t id)> outboxRetry;
  std::function<Result<std::string>(int64_t id)> outboxDelete;
};

class RestServer {
 public:
  // `board` and `queue` must outlive the server.
  RestServer(const StatusBoard& board, CommandQueue& queue, ApiCommands commands, Secret token);
  ~RestServer();
  RestServer(const RestServer&) = delete;
  RestServer& operator=(const RestServer&) = delete;

  // Binds (port 0 picks a free port) and starts serving on a thread.
  // Returns the bound address.
  Result<ListenAddress> start(const ListenAddress& listen);

  // Stops accepting, waits for in-flight requests. Idempotent.
  void stop();

 private:
  void routes();

  const StatusBoard& board_;
  CommandQueue& queue_;
  ApiCommands commands_;
  Secret token_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace mb
