// SmtpServer listeners and SmtpConnection: socket + TLS + ServerSession + the
// answers to its requests (see smtp_server.h).
#include "daemon/smtp/smtp_server.h"

#include "daemon/auth/authenticator.h"
#include "daemon/endpoint.h"
#include "daemon/log/log.h"
#include "daemon/tls/tls_engine.h"

namespace mb::smtp {

// ---------------------------------------------------------------- connection

SmtpConnection::SmtpConnection(SmtpServer& server, std::unique_ptr<TcpStream> stream, bool implicitTls)
    : server_(server), stream_(std::move(stream)), session_(server.sessionOptions(implicitTls)) {
  static uint64_t lastConn = 0;  // loop thread only
  conn_ = ++lastConn;
  peerHost_ = peerHost(stream_->peerAddress());
}

SmtpConnection::~SmtpConnection() = default;

void SmtpConnection::start() {
  logDebug("smtp.connected").kv("conn", conn_).kv("peer", stream_->peerAddress()).kv("tls", stream_->isTls());
  stream_->start(TcpStreamCallbacks{
      [this](std::string_view bytes) { onData(bytes); },
      [this](const CloseReason& why) {
        if (!why.clean()) logDebug("smtp.connection_lost").kv("conn", conn_).kv("peer", peerHost_).kv("reason", why.message);
        finished();
      },
      [this] {
        if (handshaking_) {
          busy_ = false;
          handshaking_ = false;
          (void)session_.answer(Verdict::Accept);
          pump();
        }
      },
      [this] {
        if (paused_ && !busy_ && !session_.pending()) {
          paused_ = false;
          stream_->resumeReading();
        }
      }});
  pump();  // the 220 greeting
}

void SmtpConnection::close() {
  if (closing_) return;
  closing_ = true;
  (void)stream_->write("421 4.3.2 Service shutting down\r\n");
  stream_->close();
}

void SmtpConnection::onData(std::string_view bytes) {
  if (closing_) return;
  session_.feed(bytes);
  pump();
}

void SmtpConnection::flush() {
  if (!session_.hasOutput()) return;
  (void)stream_->write(session_.takeOutput());
}

void SmtpConnection::pump() {
  while (!closing_ && !busy_) {
    flush();
    if (session_.closed()) {
      closing_ = true;
      stream_->close();
      return;
    }
    Request* r = session_.pending();
    if (!r) break;
    if (!handle(*r)) break;
  }
  if (closing_) return;
  // Back-pressure: stop reading while a decision is owed or replies pile up.
  // The TLS handshake must keep reading: its bytes go to the engine, not the session.
  bool stop = (busy_ && !handshaking_) || stream_->queuedBytes() > (1u << 20);
  if (stop && !paused_) {
    paused_ = true;
    stream_->pauseReading();
  } else if (!stop && paused_) {
    paused_ = false;
    stream_->resumeReading();
  }
}

bool SmtpConnection::handle(Request& request) {
  Submission& sub = server_.submission_;
  if (auto* auth = std::get_if<AuthRequest>(&request)) {
    // RFC 4616: an authzid other than the user itself would be acting for
    // someone else, which local accounts cannot do.
    if (!auth->authzid.empty() && normalizeAddress(auth->authzid) != normalizeAddress(auth->user)) {
      (void)session_.answer(Verdict::Reject);
      return true;
    }
    busy_ = true;
    authTicket_ = server_.deps_.authenticator->authenticate(
        auth->user, Secret(std::move(auth->password)), peerHost_, [this](Result<int64_t> account) {
          busy_ = false;
          authTicket_.reset();
          if (account) {
            logDebug("smtp.authenticated").kv("conn", conn_).kv("account_id", *account);
            accountId_ = *account;
            (void)session_.answer(Verdict::Accept);
          } else {
            logInfo("smtp.auth_failed").kv("conn", conn_).kv("peer", peerHost_).kv("error", account.error().message);
            (void)session_.answer(account.error().kind == ErrorKind::Auth ? Verdict::Reject : Verdict::TempFail);
          }
          pump();
        });
    return false;
  }
  if (auto* sender = std::get_if<SenderRequest>(&request)) {
    auto ok = sub.senderAllowed(accountId_, sender->sender.address());
    if (!ok) {
      (void)session_.answer(Verdict::TempFail);
    } else if (!*ok) {
      logInfo("smtp.sender_refused").kv("conn", conn_).kv("peer", peerHost_).kv("user", sender->user).kv("sender", sender->sender.address());
      (void)session_.answer(Verdict::Reject);
    } else {
      (void)session_.answer(Verdict::Accept);
    }
    return true;
  }
  if (auto* message = std::get_if<MessageRequest>(&request)) {
    AcceptedMessage m;
    m.accountId = accountId_;
    m.mailFrom = message->envelope.from.address();
    for (const auto& r : message->envelope.recipients) m.recipients.push_back(r.path.address());
    m.data = std::move(message->data);
    // The answer may come from inside accept() (local delivery) or after the
    // outbox commit; the weak pointer drops it if this connection is gone by then.
    busy_ = true;
    accepting_ = true;
    std::weak_ptr<bool> alive = alive_;
    sub.accept(std::move(m), [this, alive](Result<std::string> queued) {
      if (alive.expired()) return;
      busy_ = false;
      if (!queued) {
        logError("smtp.store_failed").kv("conn", conn_).kv("peer", peerHost_).kv("error", queued.error().message);
        (void)session_.answer(Verdict::TempFail);
      } else {
        (void)session_.answer(Verdict::Accept, *queued);
      }
      if (!accepting_) pump();
    });
    accepting_ = false;
    return !busy_;
  }
  // STARTTLS: the 220 goes out in plaintext, then the handshake; onSecure answers.
  flush();
  const tls::ServerTlsContext* identity = server_.endpoint_.tls();
  if (!identity) {
    (void)session_.answer(Verdict::Reject);
    return true;
  }
  auto engine = tls::TlsEngine::server(*identity);
  if (!engine || !stream_->startTls(std::move(*engine))) {
    (void)session_.answer(Verdict::Reject);
    return true;
  }
  busy_ = true;
  handshaking_ = true;
  return false;
}

void SmtpConnection::finished() {
  authTicket_.reset();
  server_.endpoint_.remove(this);  // destroys *this: nothing may follow
}

// ---------------------------------------------------------------- server

SmtpServer::SmtpServer(SmtpServerDeps deps)
    : deps_(std::move(deps)), submission_(deps_.loop, *deps_.config, *deps_.store, deps_.onQueued) {}

SmtpServer::~SmtpServer() = default;

SessionOptions SmtpServer::sessionOptions(bool implicitTls) const {
  SessionOptions o;
  o.hostname = "localhost";
  o.maxMessageSize = deps_.config->smtpLimits.maxMessageSize;
  o.maxRecipients = deps_.config->smtpLimits.maxRecipients;
  o.tlsActive = implicitTls;
  o.startTlsAvailable = !implicitTls && endpoint_.tls() != nullptr;
  o.authRequiresTls = deps_.config->smtp.requireTls;
  o.requireAuth = true;
  return o;
}

Status SmtpServer::start() {
  return endpoint_.start(deps_.loop, "smtp", *deps_.config, deps_.config->smtp, deps_.certPath, deps_.keyPath,
                         deps_.addListener, [this](std::unique_ptr<TcpStream> s, bool implicitTls) {
                           return std::make_unique<SmtpConnection>(*this, std::move(s), implicitTls);
                         });
}

void SmtpServer::shutdown() { endpoint_.shutdown(); }

}  // namespace mb::smtp
