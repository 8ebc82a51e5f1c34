// TcpStream, TcpListener and connectTcp over libuv. The heap "cores" below own
// the libuv handles; their close callbacks free them (see tcp_stream.h).
#include "daemon/loop/tcp_stream.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "daemon/log/log.h"

namespace mb {
namespace detail {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
// After our FIN, how long we wait for the peer's before closing anyway. Closing
// with unread input would send RST and could destroy our last reply in flight.
constexpr uint64_t kLingerMs = 2000;

// uv_strerror() leaks a malloc'd string for codes it does not know; the _r form
// does not.
std::string uvError(int code) {
  char buf[128];
  return uv_strerror_r(code, buf, sizeof buf);
}

std::string formatAddress(const sockaddr* sa) {
  char ip[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    uv_ip4_name(in, ip, sizeof ip);
    return std::string(ip) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    uv_ip6_name(in6, ip, sizeof ip);
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "?";
}

std::string hostPort(const std::string& host, uint16_t port) {
  bool v6 = host.find(':') != std::string::npos && host.front() != '[';
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

CloseKind kindOf(int uvErr) {
  return (uvErr == UV_ECONNRESET || uvErr == UV_EPIPE || uvErr == UV_ECONNABORTED) ? CloseKind::Reset
                                                                                   : CloseKind::IoError;
}

}  // namespace

enum class Phase {
  Open,        // normal operation
  Flushing,    // closing: waiting for queued writes, then uv_shutdown
  HalfClosed,  // our FIN is sent; reading (and discarding) until the peer's EOF
  Closed,      // uv_close called; onClose runs from the close callback
};

struct WriteReq {
  uv_write_t req;
  std::string data;
};

struct StreamCore {
  uv_loop_t* loop = nullptr;
  uv_tcp_t tcp{};
  uv_timer_t timer{};  // linger timeout, and deferred delivery after resumeReading()
  int liveHandles = 0;
  TcpStream* owner = nullptr;
  bool inCloseCallback = false;
  TcpStreamCallbacks cbs;
  std::unique_ptr<tls::TlsEngine> tls;
  Phase phase = Phase::Open;
  bool wantRead = false;  // the owner wants data
  bool reading = false;   // uv_read_start is in effect
  bool eof = false;
  bool peerEnded = false;  // EOF or close_notify seen, waiting for held data to be delivered
  std::string peerEndMessage;
  bool secureNotified = false;
  bool shutdownPending = false;
  size_t queued = 0;
  std::string held;  // plaintext read but not delivered yet
  std::optional<CloseReason> reason;
  std::string peer;
  bool readingInto = false;  // the pending read's buffer is the consumer's (readInto)
  char buf[kReadChunk];

  static StreamCore* create(uv_loop_t* loop, int* err) {
    auto* c = new StreamCore;
    c->loop = loop;
    *err = uv_tcp_init(loop, &c->tcp);
    if (*err != 0) {
      delete c;
      return nullptr;
    }
    c->tcp.data = c;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->liveHandles = 2;
    return c;
  }

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp); }

  // After accept/connect: interactive protocols want small writes sent now,
  // and long IDLE connections want dead peers noticed.
  void connected() {
    uv_tcp_nodelay(&tcp, 1);
    uv_tcp_keepalive(&tcp, 1, 60);
    sockaddr_storage ss{};
    int len = sizeof ss;
    if (uv_tcp_getpeername(&tcp, reinterpret_cast<sockaddr*>(&ss), &len) == 0)
      peer = formatAddress(reinterpret_cast<sockaddr*>(&ss));
  }

  bool alive() const { return owner != nullptr && phase == Phase::Open; }
  bool hasUndelivered() const { return !held.empty() || (tls && tls->hasPlain()); }
  bool deliverable() const { return alive() && wantRead && cbs.onData != nullptr; }
  size_t queuedBytes() const { return queued + (tls ? tls->heldPlainBytes() : 0); }

  void updateReading() {
    bool should = !eof && phase != Phase::Closed && (phase != Phase::Open || wantRead);
    if (should && !reading) {
      int rc = uv_read_start(stream(), onAlloc, onRead);
      if (rc != 0) return closeNow({kindOf(rc), "read: " + uvError(rc)});
      reading = true;
    } else if (!should && reading) {
      uv_read_stop(stream());
      reading = false;
    }
  }

  // Never calls user callbacks; onClose follows from the close callback.
  void closeNow(CloseReason why) {
    if (phase == Phase::Closed) return;
    if (!reason) reason = std::move(why);
    phase = Phase::Closed;
    if (reading) uv_read_stop(stream());
    reading = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp), onTcpClosed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), onTimerClosed);
  }

  void beginClose(CloseReason why) {
    if (phase != Phase::Open) return;
    phase = Phase::Flushing;
    reason = std::move(why);
    if (tls && tls->state() != tls::TlsState::Failed) {
      tls->shutdown();
      if (!flushTls()) return;
    }
    updateReading();  // keep reading so the peer's EOF ends the linger early
    if (phase == Phase::Flushing && queued == 0) doShutdown();
  }

  void doShutdown() {
    if (shutdownPending || phase != Phase::Flushing) return;
    auto* req = new uv_shutdown_t;
    req->data = this;
    int rc = uv_shutdown(req, stream(), onShutdown);
    if (rc != 0) {
      delete req;
      return closeNow({kindOf(rc), "shutdown: " + uvError(rc)});
    }
    shutdownPending = true;
  }

  bool submit(std::string data) {
    if (data.empty()) return true;
    auto* w = new WriteReq;
    w->data = std::move(data);
    w->req.data = this;
    uv_buf_t b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    int rc = uv_write(&w->req, stream(), &b, 1, onWrite);
    if (rc != 0) {
      delete w;
      closeNow({kindOf(rc), "write: " + uvError(rc)});
      return false;
    }
    queued += w->data.size();
    return true;
  }

  bool flushTls() { return !tls || !tls->hasCiphertext() || submit(tls->takeCiphertext()); }

  // Hands held data to the owner while it is willing; may run user code.
  void deliver() {
    while (deliverable() && hasUndelivered()) {
      std::string chunk;
      if (!held.empty()) chunk.swap(held);
      else tls->readPlain(chunk);
      auto cb = cbs.onData;  // the callback may replace cbs or destroy the owner
      cb(chunk);
    }
    if (peerEnded && alive() && !hasUndelivered()) beginClose({CloseKind::PeerClosed, peerEndMessage});
  }

  void peerEnd(std::string message) {
    if (peerEnded) return;
    peerEnded = true;
    peerEndMessage = std::move(message);
    if (!hasUndelivered()) beginClose({CloseKind::PeerClosed, peerEndMessage});
  }

  void onCipher(std::string_view bytes) {
    (void)tls->feedCiphertext(bytes);  // failure is read from state() below
    if (!flushTls()) return;
    if (!secureNotified && tls->handshakeDone()) {
      secureNotified = true;
      if (owner != nullptr && cbs.onSecure) {
        auto cb = cbs.onSecure;
        cb();
        if (!alive()) return;
      }
    }
    deliver();
    if (!alive()) return;
    if (tls->state() == tls::TlsState::Failed) {
      beginClose({CloseKind::TlsFailed, "tls: " + tls->error()});
    } else if (tls->peerClosed()) {
      flushTls();  // our close_notify answer
      if (alive()) peerEnd("peer closed the connection (TLS close_notify)");
    }
  }

  static void onAlloc(uv_handle_t* h, size_t, uv_buf_t* out) {
    auto* c = static_cast<StreamCore*>(h->data);
    // Only when these bytes would go to onData right away, in order.
    if (!c->tls && c->phase == Phase::Open && c->held.empty() && c->deliverable() && c->cbs.readInto &&
        c->cbs.onReadInto) {
      std::span<char> into = c->cbs.readInto();
      if (!into.empty()) {
        c->readingInto = true;
        *out = uv_buf_init(into.data(), static_cast<unsigned>(std::min<size_t>(into.size(), 1u << 30)));
        return;
      }
    }
    *out = uv_buf_init(c->buf, sizeof c->buf);
  }

  static void onRead(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
    auto* c = static_cast<StreamCore*>(s->data);
    if (std::exchange(c->readingInto, false)) {
      // Answered whenever the owner is there, 0 too: the consumer holds its
      // buffer open until then. Bytes read while closing are dropped.
      if (c->alive()) {
        auto cb = c->cbs.onReadInto;
        cb(nread > 0 ? static_cast<size_t>(nread) : 0);
      }
      if (nread > 0) {
        if (c->alive()) c->deliver();  // picks up a pending peer end
        return;
      }
    }
    if (nread == 0) return;
    if (nread > 0) {
      if (c->phase != Phase::Open) return;  // closing: drain and discard
      std::string_view bytes(c->buf, static_cast<size_t>(nread));
      if (c->tls) return c->onCipher(bytes);
      if (c->held.empty() && c->deliverable()) {
        auto cb = c->cbs.onData;
        cb(bytes);
        if (c->alive()) c->deliver();  // picks up a pending peer end
        return;
      }
      c->held.append(bytes);
      return c->deliver();
    }
    if (nread == UV_EOF) {
      c->eof = true;
      c->updateReading();
      if (c->phase == Phase::HalfClosed) return c->closeNow({CloseKind::Local, "closed"});
      if (c->phase != Phase::Open) return;
      bool truncated = c->tls && c->tls->handshakeDone() && !c->tls->peerClosed();
      return c->peerEnd(truncated ? "peer closed the connection without TLS close_notify"
                                  : "peer closed the connection");
    }
    int err = static_cast<int>(nread);
    c->closeNow({kindOf(err), "read: " + uvError(err)});
  }

  static void onWrite(uv_write_t* req, int status) {
    auto* w = reinterpret_cast<WriteReq*>(req);
    auto* c = static_cast<StreamCore*>(req->data);
    c->queued -= w->data.size();
    delete w;
    if (c->phase == Phase::Closed) return;
    if (status < 0) return c->closeNow({kindOf(status), "write: " + uvError(status)});
    if (c->queued != 0) return;
    if (c->phase == Phase::Flushing) return c->doShutdown();
    if (c->alive() && c->cbs.onDrain) {
      auto cb = c->cbs.onDrain;
      cb();
    }
  }

  static void onShutdown(uv_shutdown_t* req, int status) {
    auto* c = static_cast<StreamCore*>(req->data);
    delete req;
    c->shutdownPending = false;
    if (c->phase == Phase::Closed) return;
    if (status < 0) return c->closeNow({kindOf(status), "shutdown: " + uvError(status)});
    if (c->eof) return c->closeNow({CloseKind::Local, "closed"});  // the peer is done too: nothing to linger for
    c->phase = Phase::HalfClosed;
    uv_timer_start(&c->timer, onTimer, kLingerMs, 0);
  }

  static void onTimer(uv_timer_t* t) {
    auto* c = static_cast<StreamCore*>(t->data);
    if (c->phase == Phase::HalfClosed) return c->closeNow({CloseKind::Local, "closed"});
    c->deliver();
  }

  static void onTcpClosed(uv_handle_t* h) {
    auto* c = static_cast<StreamCore*>(h->data);
    --c->liveHandles;
    if (c->owner != nullptr && c->cbs.onClose && c->reason) {
      auto cb = c->cbs.onClose;
      CloseReason why = *c->reason;
      c->inCloseCallback = true;
      cb(why);
      c->inCloseCallback = false;
    }
    c->maybeFree();
  }

  static void onTimerClosed(uv_handle_t* h) {
    auto* c = static_cast<StreamCore*>(h->data);
    --c->liveHandles;
    c->maybeFree();
  }

  void maybeFree() {
    if (owner == nullptr && liveHandles == 0 && !inCloseCallback) delete this;
  }
};

}  // namespace detail

using detail::Phase;
using detail::StreamCore;

const char* closeKindName(CloseKind kind) {
  switch (kind) {
    case CloseKind::Local: return "local";
    case CloseKind::PeerClosed: return "peer_closed";
    case CloseKind::Reset: return "reset";
    case CloseKind::TlsFailed: return "tls_failed";
    case CloseKind::IoError: return "io_error";
  }
  return "io_error";
}

// ---- TcpStream ----

TcpStream::TcpStream(StreamCore* core) : core_(core) { core_->owner = this; }

TcpStream::~TcpStream() {
  core_->owner = nullptr;
  if (core_->phase != Phase::Closed) core_->closeNow({CloseKind::Local, "owner destroyed"});
  else core_->maybeFree();
}

void TcpStream::start(TcpStreamCallbacks callbacks) {
  setCallbacks(std::move(callbacks));
  resumeReading();
}

void TcpStream::setCallbacks(TcpStreamCallbacks callbacks) { core_->cbs = std::move(callbacks); }

void TcpStream::pauseReading() {
  core_->wantRead = false;
  core_->updateReading();
}

void TcpStream::resumeReading() {
  core_->wantRead = true;
  core_->updateReading();
  // Deliver leftovers from the loop, not from inside this call.
  if (core_->phase == Phase::Open && (core_->hasUndelivered() || core_->peerEnded))
    uv_timer_start(&core_->timer, StreamCore::onTimer, 0, 0);
}

Status TcpStream::startTls(std::unique_ptr<tls::TlsEngine> engine) {
  if (!engine) return fail(ErrorKind::Internal, "startTls: no engine");
  if (core_->tls) return fail(ErrorKind::User, "startTls: TLS is already active");
  if (core_->phase != Phase::Open) return fail(ErrorKind::Io, "startTls: stream is closing");
  core_->tls = std::move(engine);
  core_->secureNotified = false;
  if (!core_->flushTls()) return fail(ErrorKind::Io, "startTls: " + core_->reason->message);
  return {};
}

Result<size_t> TcpStream::write(std::string_view bytes) {
  StreamCore* c = core_;
  if (c->phase != Phase::Open) return fail(ErrorKind::Io, "write: stream is closing");
  if (c->tls) {
    if (auto s = c->tls->writePlain(bytes); !s) {
      c->flushTls();
      c->closeNow({CloseKind::TlsFailed, s.error().message});
      return std::unexpected(s.error());
    }
    if (!c->flushTls()) return fail(ErrorKind::Io, c->reason->message);
  } else if (!c->submit(std::string(bytes))) {
    return fail(ErrorKind::Io, c->reason->message);
  }
  return c->queuedBytes();
}

Result<size_t> TcpStream::writeOwned(std::string bytes) {
  StreamCore* c = core_;
  if (c->tls || c->phase != Phase::Open) return write(bytes);
  if (!c->submit(std::move(bytes))) return fail(ErrorKind::Io, c->reason->message);
  return c->queuedBytes();
}

size_t TcpStream::queuedBytes() const { return core_->queuedBytes(); }

void TcpStream::close() { core_->beginClose({CloseKind::Local, "closed"}); }

bool TcpStream::isOpen() const { return core_->phase == Phase::Open; }
bool TcpStream::isTls() const { return core_->tls != nullptr; }
bool TcpStream::isSecure() const { return core_->tls && core_->tls->handshakeDone(); }
const tls::TlsEngine* TcpStream::tls() const { return core_->tls.get(); }
const std::string& TcpStream::peerAddress() const { return core_->peer; }
uv_loop_t* TcpStream::loop() const { return core_->loop; }

// ---- TcpListener ----

namespace detail {

struct ListenerCore {
  uv_tcp_t tcp{};
  TcpListener::OnConnection onConnection;
  bool ownerGone = false;
  std::string address;
  uint16_t port = 0;

  static void onClosed(uv_handle_t* h) { delete static_cast<ListenerCore*>(h->data); }

  static void onIncoming(uv_stream_t* server, int status) {
    auto* l = static_cast<ListenerCore*>(server->data);
    if (l->ownerGone) return;
    if (status < 0) {
      logWarn("tcp.accept_failed").kv("addr", l->address).kv("error", uvError(status));
      return;
    }
    int err = 0;
    StreamCore* sc = StreamCore::create(server->loop, &err);
    if (sc == nullptr) {
      logWarn("tcp.accept_failed").kv("addr", l->address).kv("error", uvError(err));
      return;
    }
    auto stream = std::unique_ptr<TcpStream>(new TcpStream(sc));
    err = uv_accept(server, sc->stream());
    if (err != 0) {
      logWarn("tcp.accept_failed").kv("addr", l->address).kv("error", uvError(err));
      return;  // the stream's destructor closes and frees the handles
    }
    sc->connected();
    auto cb = l->onConnection;
    cb(std::move(stream));
  }
};

}  // namespace detail

Result<std::unique_ptr<TcpListener>> TcpListener::listen(uv_loop_t* loop, const std::string& host, uint16_t port,
                                                         OnConnection onConnection, int backlog) {
  std::string bare = host;
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') bare = bare.substr(1, bare.size() - 2);
  const std::string where = detail::hostPort(bare, port);
  sockaddr_storage addr{};
  bool v6 = false;
  if (uv_ip4_addr(bare.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr)) != 0) {
    if (uv_ip6_addr(bare.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0)
      return fail(ErrorKind::Config, where + ": not an IP address");
    v6 = true;
  }
  auto* core = new detail::ListenerCore;
  core->onConnection = std::move(onConnection);
  int rc = uv_tcp_init(loop, &core->tcp);
  if (rc != 0) {
    delete core;
    return fail(ErrorKind::Io, where + ": " + detail::uvError(rc));
  }
  core->tcp.data = core;
  auto* h = reinterpret_cast<uv_handle_t*>(&core->tcp);
  // libuv reports EADDRINUSE from listen() rather than bind(), so check both.
  rc = uv_tcp_bind(&core->tcp, reinterpret_cast<sockaddr*>(&addr), v6 ? UV_TCP_IPV6ONLY : 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&core->tcp), backlog, detail::ListenerCore::onIncoming);
  if (rc != 0) {
    uv_close(h, detail::ListenerCore::onClosed);
    return fail(rc == UV_EADDRINUSE ? ErrorKind::Conflict : ErrorKind::Io, where + ": " + detail::uvError(rc));
  }
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(&core->tcp, reinterpret_cast<sockaddr*>(&bound), &len);
  core->address = detail::formatAddress(reinterpret_cast<sockaddr*>(&bound));
  core->port = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return std::unique_ptr<TcpListener>(new TcpListener(core));
}

TcpListener::~TcpListener() {
  core_->ownerGone = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&core_->tcp), detail::ListenerCore::onClosed);
}

uint16_t TcpListener::port() const { return core_->port; }
const std::string& TcpListener::address() const { return core_->address; }

// ---- connectTcp ----

namespace detail {

// Reference counted: the PendingConnect, the timer handle and each libuv
// request in flight hold one reference, so whichever finishes last frees it.
struct ConnectCore {
  uv_loop_t* loop = nullptr;
  std::string host;
  uint16_t port = 0;
  ConnectOptions options;
  std::function<void(Result<std::unique_ptr<TcpStream>>)> onDone;
  int refs = 0;
  bool done = false;
  bool timerClosing = false;
  uv_timer_t timer{};
  uv_getaddrinfo_t* resolving = nullptr;
  addrinfo* addrs = nullptr;
  addrinfo* next = nullptr;
  std::unique_ptr<TcpStream> stream;
  std::string attempt;  // address being tried, for the error message
  std::string lastError;
  std::optional<Error> early;  // an error found before the loop ran; reported from it

  std::string where() const { return hostPort(host, port); }

  void release() {
    if (--refs == 0) delete this;
  }

  void cleanup() {
    if (!timerClosing) {
      timerClosing = true;
      uv_close(reinterpret_cast<uv_handle_t*>(&timer), onTimerClosed);
    }
    if (resolving != nullptr) uv_cancel(reinterpret_cast<uv_req_t*>(resolving));
    if (addrs != nullptr) uv_freeaddrinfo(addrs);
    addrs = next = nullptr;
  }

  void finish(Result<std::unique_ptr<TcpStream>> result) {
    if (done) return;
    done = true;
    if (result) {
      // Hand over quiet: the new owner calls start() when it is ready.
      (*result)->pauseReading();
      (*result)->setCallbacks({});
    }
    stream.reset();
    cleanup();
    auto cb = std::move(onDone);
    onDone = nullptr;
    ++refs;  // the callback may destroy the PendingConnect
    cb(std::move(result));
    release();
  }

  void cancel() {
    if (done) return;
    done = true;
    stream.reset();
    cleanup();
    onDone = nullptr;
  }

  void tryNext() {
    while (next != nullptr && !done) {
      addrinfo* ai = next;
      next = next->ai_next;
      int err = 0;
      StreamCore* sc = StreamCore::create(loop, &err);
      if (sc == nullptr) {
        lastError = uvError(err);
        continue;
      }
      stream.reset(new TcpStream(sc));
      attempt = formatAddress(ai->ai_addr);
      auto* req = new uv_connect_t;
      req->data = this;
      err = uv_tcp_connect(req, &sc->tcp, ai->ai_addr, onConnected);
      if (err != 0) {
        delete req;
        lastError = attempt + ": " + uvError(err);
        stream.reset();
        continue;
      }
      ++refs;
      return;
    }
    finish(fail(ErrorKind::Unavailable, "connect to " + where() + ": " + lastError));
  }

  void connectedTcp() {
    stream->core_->connected();
    if (options.tls == nullptr) return finish(std::move(stream));
    auto engine = tls::TlsEngine::client(*options.tls, options.tlsHostname.empty() ? host : options.tlsHostname);
    if (!engine) return finish(std::unexpected(engine.error()));
    if (auto s = stream->startTls(std::move(*engine)); !s) return finish(std::unexpected(s.error()));
    TcpStreamCallbacks cbs;
    cbs.onSecure = [this] { finish(std::move(stream)); };
    cbs.onClose = [this](const CloseReason& why) {
      ErrorKind kind = why.kind == CloseKind::TlsFailed ? ErrorKind::Upstream : ErrorKind::Unavailable;
      finish(fail(kind, where() + ": " + why.message));
    };
    stream->start(std::move(cbs));
  }

  static void onResolved(uv_getaddrinfo_t* req, int status, addrinfo* res) {
    auto* c = static_cast<ConnectCore*>(req->data);
    delete req;
    c->resolving = nullptr;
    if (c->done) {
      if (res != nullptr) uv_freeaddrinfo(res);
    } else if (status < 0) {
      c->finish(fail(ErrorKind::Unavailable, "resolve " + c->host + ": " + uvError(status)));
    } else {
      c->addrs = c->next = res;
      c->lastError = "no addresses";
      c->tryNext();
    }
    c->release();
  }

  static void onConnected(uv_connect_t* req, int status) {
    auto* c = static_cast<ConnectCore*>(req->data);
    delete req;
    if (!c->done) {
      if (status < 0) {
        c->lastError = c->attempt + ": " + uvError(status);
        c->stream.reset();
        c->tryNext();
      } else {
        c->connectedTcp();
      }
    }
    c->release();
  }

  static void onTimer(uv_timer_t* t) {
    auto* c = static_cast<ConnectCore*>(t->data);
    if (c->early) return c->finish(std::unexpected(*c->early));
    c->finish(fail(ErrorKind::Unavailable, "connect to " + c->where() + ": timed out after " +
                                               std::to_string(c->options.timeout.count()) + " ms"));
  }

  static void onTimerClosed(uv_handle_t* h) { static_cast<ConnectCore*>(h->data)->release(); }
};

}  // namespace detail

PendingConnect::~PendingConnect() {
  core_->cancel();
  core_->release();
}

std::unique_ptr<PendingConnect> connectTcp(uv_loop_t* loop, const std::string& host, uint16_t port,
                                           ConnectOptions options,
                                           std::function<void(Result<std::unique_ptr<TcpStream>>)> onDone) {
  auto* c = new detail::ConnectCore;
  c->loop = loop;
  c->host = host;
  if (c->host.size() > 2 && c->host.front() == '[' && c->host.back() == ']') c->host = c->host.substr(1, c->host.size() - 2);
  c->port = port;
  c->options = std::move(options);
  c->onDone = std::move(onDone);
  c->refs = 2;  // the PendingConnect and the timer handle
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  auto pending = std::unique_ptr<PendingConnect>(new PendingConnect(c));

  auto* req = new uv_getaddrinfo_t;
  req->data = c;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  std::string service = std::to_string(port);
  int rc = uv_getaddrinfo(loop, req, detail::ConnectCore::onResolved, c->host.c_str(), service.c_str(), &hints);
  if (rc != 0) {
    delete req;
    c->early = Error{ErrorKind::Unavailable, "resolve " + c->host + ": " + detail::uvError(rc), {}};
    uv_timer_start(&c->timer, detail::ConnectCore::onTimer, 0, 0);
    return pending;
  }
  c->resolving = req;
  ++c->refs;
  uv_timer_start(&c->timer, detail::ConnectCore::onTimer, static_cast<uint64_t>(c->options.timeout.count()), 0);
  return pending;
}

}  // namespace mb
