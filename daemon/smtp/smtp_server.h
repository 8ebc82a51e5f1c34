// The local SMTP submission endpoint: listeners (plaintext + STARTTLS and
// implicit TLS) and one SmtpConnection per client, each driving a sans-I/O
// protocols/smtp ServerSession and answering its requests (AUTH through the
// Authenticator, sender and message through Submission, STARTTLS through
// TcpStream::startTls). Loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/endpoint.h"
#include "daemon/loop/tcp_stream.h"
#include "daemon/smtp/submission.h"
#include "daemon/status_board.h"
#include "daemon/tls/tls_context.h"
#include "protocols/smtp/server_session.h"

namespace mb::auth {
class Authenticator;
class AuthTicket;
}  // namespace mb::auth

namespace mb::smtp {

class SmtpServer;

class SmtpConnection {
 public:
  SmtpConnection(SmtpServer& server, std::unique_ptr<TcpStream> stream, bool implicitTls);
  ~SmtpConnection();
  SmtpConnection(const SmtpConnection&) = delete;
  SmtpConnection& operator=(const SmtpConnection&) = delete;

  void start();
  void close();  // shutdown: 421 and close

 private:
  void onData(std::string_view bytes);
  void pump();
  void flush();
  // Answers the pending request now (true) or starts async work (false).
  bool handle(Request& request);
  void finished();

  SmtpServer& server_;
  std::unique_ptr<TcpStream> stream_;
  ServerSession session_;
  std::unique_ptr<auth::AuthTicket> authTicket_;
  int64_t accountId_ = 0;
  bool busy_ = false;     // an async answer (AUTH, STARTTLS, message stored) is outstanding
  bool accepting_ = false;  // inside Submission::accept: its answer must not re-enter pump()
  bool handshaking_ = false;  // STARTTLS accepted, waiting for onSecure
  bool paused_ = false;
  bool closing_ = false;
  std::string peerHost_;
  uint64_t conn_ = 0;  // "conn=" in every log line of this connection
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // expires with *this
};

struct SmtpServerDeps {
  uv_loop_t* loop = nullptr;
  const Config* config = nullptr;
  store::Store* store = nullptr;
  auth::Authenticator* authenticator = nullptr;
  std::string certPath;  // our TLS identity (config.tls or the generated one)
  std::string keyPath;
  std::function<void()> onQueued;                     // wake the relay
  std::function<Status(ListenerStatus)> addListener;  // Daemon::addListener
};

class SmtpServer {
 public:
  explicit SmtpServer(SmtpServerDeps deps);
  ~SmtpServer();
  SmtpServer(const SmtpServer&) = delete;
  SmtpServer& operator=(const SmtpServer&) = delete;

  // Binds every configured address; a configured one that fails is an error
  // naming it, one from the defaults (config.smtp.optional) only a warning.
  Status start();
  // Stops listening and closes every connection (SIGTERM).
  void shutdown();

 private:
  friend class SmtpConnection;
  SessionOptions sessionOptions(bool implicitTls) const;

  SmtpServerDeps deps_;
  Submission submission_;
  Endpoint<SmtpConnection> endpoint_;  // after submission_: its connections use it
};

}  // namespace mb::smtp
