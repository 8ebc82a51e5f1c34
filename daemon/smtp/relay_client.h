// One upstream SMTP connection of the outbox relay for one account: connect
// (implicit TLS, STARTTLS that is never skipped, or plaintext), EHLO, AUTH
// PLAIN/LOGIN/XOAUTH2, then one transaction per due message (pipelined when
// offered) until none is left, then QUIT. Uses the sans-I/O reply parser and
// client codec of protocols/smtp.
#pragma once

#include <uv.h>

#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/loop/tcp_stream.h"
#include "daemon/store/outbox.h"
#include "daemon/tls/tls_context.h"
#include "protocols/smtp/reply.h"

namespace mb::smtp {

class OutboxRelay;

class RelayClient {
 public:
  // The relay owns the client and must outlive it.
  RelayClient(OutboxRelay& relay, int64_t accountId, const AccountConfig& account);
  ~RelayClient();
  RelayClient(const RelayClient&) = delete;
  RelayClient& operator=(const RelayClient&) = delete;

  void start();
  // Sending a message right now (not connecting, logging in, idle or leaving).
  bool sending() const { return item_.has_value(); }
  // Idle and logged in: take the next due message now (the relay calls this
  // when new mail was queued).
  void poke();
  // Idle: leave now (QUIT), so that the next message gets a new session.
  void leaveIfIdle() { quit(); }

 private:
  enum class Step { Connecting, Greeting, Ehlo, StartTls, Handshake, Auth, AuthUser, AuthPassword, Idle, Txn, Body,
                    BodyDiscarded, Rset, Quit, Done };
  struct Expect {
    enum Kind { Mail, Rcpt, Data } kind;
    size_t index = 0;  // recipient index for Rcpt
  };

  void onConnected(Result<std::unique_ptr<TcpStream>> stream);
  void onData(std::string_view bytes);
  void onReply(const Reply& reply);
  void onSecure();
  void afterEhlo(const Reply& reply);
  void authenticate();
  void nextMessage();
  void quit();
  void beginTransaction();
  void onTransactionReply(const Reply& reply);
  void sendNextCommand();
  void applyToRecipient(size_t index, const Reply& reply);
  void endTransaction(bool needRset);
  void send(std::string_view bytes, uint64_t timeoutMs = 300000);
  void fail(const std::string& why);
  void done();

  OutboxRelay& relay_;
  int64_t accountId_;
  std::string accountName_;
  RelayConfig cfg_;
  Secret secret_;
  std::optional<tls::ClientTlsContext> tls_;
  std::unique_ptr<PendingConnect> connect_;
  std::unique_ptr<TcpStream> stream_;
  ReplyParser parser_;
  Capabilities caps_;
  Step step_ = Step::Connecting;
  bool secured_ = false;
  uv_timer_t* timer_ = nullptr;  // reply timeout; freed by its close callback
  std::set<int64_t> tried_;

  // The transaction in progress.
  std::optional<store::OutboxItem> item_;
  std::string body_;
  bool pipelining_ = false;
  std::deque<std::string> unsent_;  // commands not yet sent (no PIPELINING)
  std::deque<Expect> expect_;
  std::vector<size_t> accepted_;    // recipient indexes the server took
  std::optional<Reply> mailRefused_;
  std::string lastError_;
};

}  // namespace mb::smtp
