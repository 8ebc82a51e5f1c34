// The local IMAP endpoint: listeners (plaintext + STARTTLS, implicit TLS) and
// one ImapConnection per client, each driving a sans-I/O protocols/imap
// Session over a StoreBackend, with the login check (Authenticator), TLS,
// the autologout timer and store change notifications. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/endpoint.h"
#include "daemon/imap/store_backend.h"
#include "daemon/loop/tcp_stream.h"
#include "daemon/status_board.h"
#include "daemon/tls/tls_context.h"
#include "protocols/imap/session.h"

namespace mb::auth {
class Authenticator;
class AuthTicket;
}  // namespace mb::auth

namespace mb::imap {

class ImapServer;

class ImapConnection {
 public:
  ImapConnection(ImapServer& server, std::unique_ptr<TcpStream> stream, bool implicitTls);
  ~ImapConnection();
  ImapConnection(const ImapConnection&) = delete;
  ImapConnection& operator=(const ImapConnection&) = delete;

  void start();
  void close(std::string_view why);  // shutdown: BYE and close
  int64_t accountId() const { return session_.accountId(); }

 private:
  void onData(std::string_view bytes);
  void onChange(const store::StoreChange& change);
  void pump();
  void flush();
  void armTimer();
  void finished();

  ImapServer& server_;
  std::unique_ptr<TcpStream> stream_;
  StoreBackend backend_;
  Session session_;
  std::unique_ptr<auth::AuthTicket> authTicket_;
  uint64_t subscription_ = 0;
  uv_timer_t* timer_ = nullptr;  // autologout; freed by its close callback
  bool handshaking_ = false;
  bool paused_ = false;
  bool closing_ = false;
  bool pumping_ = false;
  bool bodiesAsked_ = false;  // the session's pendingBodies() went to deps_.fetchBodies
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for callbacks that may outlive us
  // Owned by us alone: a body request sees it expire when the client has
  // gone, and is dropped (BodyFetcher::fetch).
  std::shared_ptr<const int> bodiesWaiter_ = std::make_shared<const int>(0);
  std::string peerHost_;
  uint64_t conn_ = 0;  // "conn=" in every log line of this connection
};

struct ImapServerDeps {
  uv_loop_t* loop = nullptr;
  const Config* config = nullptr;
  store::Store* store = nullptr;
  auth::Authenticator* authenticator = nullptr;
  std::string certPath;  // the generated identity; config.tls overrides
  std::string keyPath;
  std::function<Status(ListenerStatus)> addListener;  // Daemon::addListener
  // Daemon::fetchBodies: a session waits for bodies (Session::pendingBodies);
  // done may run inside the call. The request is dropped once `waiter`
  // expired (the connection is gone).
  std::function<void(int64_t accountId, int64_t mailboxId, std::vector<uint32_t> uids, std::weak_ptr<const void> waiter,
                     std::function<void(Status)> done)>
      fetchBodies;
};

class ImapServer {
 public:
  explicit ImapServer(ImapServerDeps deps);
  ~ImapServer();
  ImapServer(const ImapServer&) = delete;
  ImapServer& operator=(const ImapServer&) = delete;

  // Binds every configured address; a configured one that fails is an error
  // ("imap listener 127.0.0.1:1143: address already in use"), one from the
  // defaults (config.imap.optional) only a warning.
  Status start();
  void shutdown();

 private:
  friend class ImapConnection;
  SessionOptions sessionOptions(bool implicitTls) const;
  size_t connectionsOf(int64_t accountId) const;

  ImapServerDeps deps_;
  store::MessageIndex index_;  // shared by the connections' backends (declared before them)
  Endpoint<ImapConnection> endpoint_;  // after index_: its connections use it
};

}  // namespace mb::imap
