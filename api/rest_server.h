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
  // A new local password: {clear text, KDF hash}. Runs on the HTTP thread,
  // never the loop: the KDF takes ~60-100 ms of CPU on purpose, which would
  // stall every IMAP/SMTP session and a new account's first sync.
  std::function<Result<std::pair<std::string, std::string>>()> newPassword;
  // Stores a hash from newPassword as the account's local password: JSON
  // {"username"}.
  std::function<Result<std::string>(int64_t accountId, std::string hash)> setPassword;
  // Account management (see Daemon::createAccount and friends): JSON bodies
  // in, JSON text out. createAccount's answer has no password yet: the
  // server adds one (newPassword, then setPassword) before it answers 201.
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
  // A new local password for the account, hashed on this (HTTP) thread and
  // stored by the loop: JSON {"username", "password"}.
  Result<std::string> newLocalPassword(int64_t accountId);

  const StatusBoard& board_;
  CommandQueue& queue_;
  ApiCommands commands_;
  Secret token_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace mb
