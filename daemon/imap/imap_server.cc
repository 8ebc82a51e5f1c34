// ImapServer listeners and ImapConnection: socket + TLS + Session + login,
// timers and change notifications (see imap_server.h).
#include "daemon/imap/imap_server.h"

#include <algorithm>

#include "daemon/auth/authenticator.h"
#include "daemon/endpoint.h"
#include "daemon/log/log.h"
#include "daemon/tls/tls_engine.h"

namespace mb::imap {
namespace {

// Stop reading while this much output waits for the socket; FETCH resumes
// below it. Together with the session's high-water mark this bounds what one
// client can make us buffer.
constexpr size_t kMaxQueued = 1 << 20;

}  // namespace

// ---------------------------------------------------------------- connection

ImapConnection::ImapConnection(ImapServer& server, std::unique_ptr<TcpStream> stream, bool implicitTls)
    : server_(server),
      stream_(std::move(stream)),
      backend_(*server.deps_.store, server.index_),
      session_(backend_, server.sessionOptions(implicitTls)) {
  static uint64_t lastConn = 0;  // loop thread only
  conn_ = ++lastConn;
  peerHost_ = peerHost(stream_->peerAddress());
}

ImapConnection::~ImapConnection() {
  *alive_ = false;
  if (subscription_) server_.deps_.store->changes().unsubscribe(subscription_);
  if (timer_) {
    timer_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }
}

void ImapConnection::start() {
  logDebug("imap.connected").kv("conn", conn_).kv("peer", stream_->peerAddress()).kv("tls", stream_->isTls());
  subscription_ = server_.deps_.store->changes().subscribe([this](const store::StoreChange& c) { onChange(c); });
  timer_ = new uv_timer_t;
  uv_timer_init(server_.deps_.loop, timer_);
  timer_->data = this;
  armTimer();
  stream_->start(TcpStreamCallbacks{
      [this](std::string_view bytes) { onData(bytes); },
      [this](const CloseReason& why) {
        if (!why.clean()) logDebug("imap.connection_lost").kv("conn", conn_).kv("peer", peerHost_).kv("reason", why.message);
        finished();
      },
      [this] {
        if (handshaking_) {
          handshaking_ = false;
          session_.tlsStarted();
          pump();
        }
      },
      [this] { pump(); }});
  session_.start();
  pump();
}

void ImapConnection::armTimer() {
  // RFC 3501 5.4: at least 30 minutes of inactivity before autologout; an
  // IDLE client is inactive too but keeps the timer (it re-issues IDLE).
  uint64_t ms = static_cast<uint64_t>(server_.deps_.config->imapLimits.idleTimeoutSeconds) * 1000;
  uv_timer_start(
      timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<ImapConnection*>(t->data);
        if (!self) return;
        logDebug("imap.autologout").kv("conn", self->conn_).kv("peer", self->peerHost_);
        self->session_.autologout();
        self->pump();
      },
      ms, 0);
}

void ImapConnection::close(std::string_view why) {
  if (closing_) return;
  session_.shutdown(why);
  pump();
}

void ImapConnection::onData(std::string_view bytes) {
  if (closing_) return;
  armTimer();
  session_.feed(bytes);
  pump();
}

void ImapConnection::onChange(const store::StoreChange& change) {
  if (closing_ || change.accountId != session_.accountId() || session_.accountId() == 0) return;
  if (change.kind == store::StoreChange::Kind::AccountRemoved) {
    // Nothing of this session's account is left: end it rather than answer
    // every later command from an empty, vanished account.
    logInfo("imap.account_removed").kv("conn", conn_).kv("peer", peerHost_).kv("account_id", change.accountId);
    return close("account removed");
  }
  auto ev = StoreBackend::toEvent(change);
  if (!ev) return;
  session_.onEvent(*ev, change.origin == &backend_);
  // Only an idling session writes now (IDLE reports at once); otherwise the
  // updates wait for the next command. Never re-enter pump() from here: the
  // change may come from inside this very session's command.
  if (session_.idling() && !pumping_) flush();
}

void ImapConnection::flush() {
  if (!session_.hasOutput()) return;
  (void)stream_->writeOwned(session_.takeOutput());
}

void ImapConnection::pump() {
  if (pumping_) return;
  pumping_ = true;
  while (!closing_) {
    flush();
    if (session_.closed()) {
      closing_ = true;
      stream_->close();
      break;
    }
    if (auto& login = session_.pendingLogin(); login && !authTicket_) {
      auth::Authenticator& a = *server_.deps_.authenticator;
      authTicket_ = a.authenticate(login->user, Secret(login->password), peerHost_, [this](Result<int64_t> account) {
        authTicket_.reset();
        if (account) {
          size_t max = server_.deps_.config->imapLimits.maxConnectionsPerAccount;
          if (server_.connectionsOf(*account) >= max) {
            logInfo("imap.too_many_connections").kv("conn", conn_).kv("peer", peerHost_).kv("account_id", *account);
            account = fail(ErrorKind::User, "too many connections for this account", "LIMIT");
          }
        } else {
          logInfo("imap.login_failed").kv("conn", conn_).kv("peer", peerHost_).kv("error", account.error().message);
        }
        if (account) logDebug("imap.logged_in").kv("conn", conn_).kv("account_id", *account);
        session_.loginDone(std::move(account));
        pump();
      });
      break;
    }
    if (auto& want = session_.pendingBodies(); want && !bodiesAsked_) {
      bodiesAsked_ = true;
      auto alive = alive_;
      auto done = [this, alive](Status result) {
        if (!*alive) return;
        bodiesAsked_ = false;
        if (!result) logInfo("imap.bodies_unavailable").kv("conn", conn_).kv("error", result.error().message);
        session_.bodiesDone(std::move(result));
        pump();
      };
      if (server_.deps_.fetchBodies)
        server_.deps_.fetchBodies(session_.accountId(), want->mailboxId, want->uids, bodiesWaiter_, std::move(done));
      else
        done(fail(ErrorKind::Unavailable, "no upstream to fetch message bodies from"));
      if (bodiesAsked_) break;  // done resumes the session later
      continue;                 // done ran inside the call
    }
    if (session_.startTlsRequested() && !handshaking_) {
      auto* identity = server_.endpoint_.tls();
      auto engine = identity ? tls::TlsEngine::server(*identity) : fail(ErrorKind::Internal, "no TLS");
      if (!engine || !stream_->startTls(std::move(*engine))) {
        closing_ = true;
        stream_->close();
        break;
      }
      handshaking_ = true;
      break;
    }
    if (session_.wantsResume()) {
      if (stream_->queuedBytes() > kMaxQueued) break;  // onDrain calls pump()
      session_.resume();
      continue;
    }
    break;
  }
  pumping_ = false;
  if (closing_) return;
  // Back-pressure: stop reading while the session waits for us or output
  // piles up. The TLS handshake keeps reading: its bytes go to the engine.
  bool stop = (session_.busy() && !handshaking_) || stream_->queuedBytes() > kMaxQueued;
  if (stop && !paused_) {
    paused_ = true;
    stream_->pauseReading();
  } else if (!stop && paused_) {
    paused_ = false;
    stream_->resumeReading();
  }
}

void ImapConnection::finished() {
  authTicket_.reset();
  server_.endpoint_.remove(this);  // destroys *this: nothing may follow
}

// ---------------------------------------------------------------- server

ImapServer::ImapServer(ImapServerDeps deps) : deps_(std::move(deps)), index_(*deps_.store) {}

ImapServer::~ImapServer() = default;

SessionOptions ImapServer::sessionOptions(bool implicitTls) const {
  SessionOptions o;
  const Config& cfg = *deps_.config;
  o.tlsActive = implicitTls;
  o.startTlsAvailable = !implicitTls && endpoint_.tls() != nullptr;
  o.requireTls = cfg.imap.requireTls;
  o.limits.maxLineLength = cfg.imapLimits.maxLineLength;
  o.limits.maxLiteralSize = cfg.imapLimits.maxLiteralSize;
  o.limits.maxCommandLiterals = std::max<uint64_t>(o.limits.maxCommandLiterals, cfg.imapLimits.maxLiteralSize);
  o.appendLimit = cfg.imapLimits.maxLiteralSize;
  return o;
}

size_t ImapServer::connectionsOf(int64_t accountId) const {
  return endpoint_.count([accountId](const ImapConnection& c) { return c.accountId() == accountId; });
}

Status ImapServer::start() {
  return endpoint_.start(deps_.loop, "imap", *deps_.config, deps_.config->imap, deps_.certPath, deps_.keyPath,
                         deps_.addListener, [this](std::unique_ptr<TcpStream> s, bool implicitTls) {
                           return std::make_unique<ImapConnection>(*this, std::move(s), implicitTls);
                         });
}

void ImapServer::shutdown() { endpoint_.shutdown(std::string_view("server shutting down")); }

}  // namespace mb::imap
