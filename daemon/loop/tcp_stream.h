// One TCP connection over libuv, plaintext or TLS, used by every local session
// (IMAP, SMTP) and every upstream client; plus the listener and the connector
// that produce them.
//
// Lifetimes, in one place:
//  - TcpStream, TcpListener and PendingConnect are plain owners. Destroying one
//    cancels everything it started: the socket is closed at once, queued
//    writes are dropped, and none of its callbacks runs afterwards, not even
//    onClose. It is safe to destroy the owner from inside any of its callbacks.
//  - The libuv handles live in a separate heap block that the libuv close
//    callbacks free, so libuv never touches freed memory; owners only ever
//    hold a pointer to it and detach on destruction.
//  - Callbacks are only ever invoked from the loop (never from inside write(),
//    close(), startTls() or resumeReading()), so callers need no re-entrancy
//    guards of their own.
//  - Everything here belongs to the loop thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <uv.h>

#include "daemon/tls/tls_engine.h"
#include "protocols/common/result.h"

namespace mb {

namespace detail {
struct StreamCore;
struct ListenerCore;
struct ConnectCore;
}  // namespace detail

enum class CloseKind {
  Local,       // close() was called and completed
  PeerClosed,  // the peer ended the connection (EOF or TLS close_notify)
  Reset,       // connection reset or broken pipe
  TlsFailed,   // handshake or record error; message says why
  IoError,     // any other socket error
};

struct CloseReason {
  CloseKind kind = CloseKind::Local;
  std::string message;
  bool clean() const { return kind == CloseKind::Local || kind == CloseKind::PeerClosed; }
};

const char* closeKindName(CloseKind kind);

struct TcpStreamCallbacks {
  // Application bytes (decrypted when TLS is on), in order, split anywhere.
  std::function<void(std::string_view)> onData;
  // Exactly once, when the socket is closed, unless the owner went first.
  std::function<void(const CloseReason&)> onClose;
  // The TLS handshake completed (implicit TLS or after startTls()).
  std::function<void()> onSecure;
  // queuedBytes() dropped to zero: a good time to resume reading.
  std::function<void()> onDrain;
  // Optional reads without a copy (plaintext only): before a read the stream
  // asks readInto() for a buffer of the consumer's own (a large literal's
  // home); when it gets one, that read's bytes land there and the stream
  // calls onReadInto(n) instead of onData, n = 0 included. Empty: the
  // stream's own buffer and onData as usual.
  std::function<std::span<char>()> readInto;
  std::function<void(size_t)> onReadInto;
};

class TcpStream {
 public:
  ~TcpStream();
  TcpStream(const TcpStream&) = delete;
  TcpStream& operator=(const TcpStream&) = delete;

  // Installs the callbacks and starts reading. Streams from TcpListener and
  // connectTcp() do not read until then, so nothing is lost while the owner
  // wires itself up. May be called again to replace the callbacks.
  void start(TcpStreamCallbacks callbacks);
  void setCallbacks(TcpStreamCallbacks callbacks);

  // Flow control: stop/resume reading the socket (e.g. while queuedBytes()
  // of the *other* direction or a slow store is above a threshold). Data
  // already read but not delivered is delivered after resumeReading().
  void pauseReading();
  void resumeReading();

  // Switches to TLS. Bytes delivered through onData before this call were
  // plaintext and stay the caller's: a server must drop any pipelined input
  // after STARTTLS (RFC 3207 section 4.2, CVE-2011-0411) and a client must
  // treat plaintext after the go-ahead as an error. Only bytes read from the
  // socket after this call reach the engine, and writes queued before it go
  // out in plaintext, ahead of the handshake. For implicit TLS call it right
  // after accept/connect, before start(). A client engine sends its
  // ClientHello immediately.
  Status startTls(std::unique_ptr<tls::TlsEngine> engine);

  // Queues bytes (encrypted first under TLS; held during the handshake).
  // Returns queuedBytes() after queuing, so a producer can stop at a
  // threshold and wait for onDrain. Fails once the stream is closing.
  Result<size_t> write(std::string_view bytes);
  // The same for a buffer the caller gives up: queued without a copy when
  // there is no TLS.
  Result<size_t> writeOwned(std::string bytes);
  size_t queuedBytes() const;

  // Graceful: stops delivering data, sends TLS close_notify, flushes what is
  // queued, half-closes, waits briefly for the peer's EOF, then closes and
  // reports onClose(Local). Idempotent.
  void close();

  bool isOpen() const;            // not closing or closed
  bool isTls() const;             // startTls() was called
  bool isSecure() const;          // TLS handshake completed
  const tls::TlsEngine* tls() const;
  const std::string& peerAddress() const;  // "127.0.0.1:53122", "[::1]:993"
  uv_loop_t* loop() const;

 private:
  friend struct detail::StreamCore;
  friend struct detail::ListenerCore;
  friend struct detail::ConnectCore;
  explicit TcpStream(detail::StreamCore* core);
  detail::StreamCore* core_;
};

// Listens on an IP literal ("127.0.0.1", "::1"; port 0 picks a free port).
class TcpListener {
 public:
  using OnConnection = std::function<void(std::unique_ptr<TcpStream>)>;

  // Errors read "127.0.0.1:1143: address already in use".
  static Result<std::unique_ptr<TcpListener>> listen(uv_loop_t* loop, const std::string& host, uint16_t port,
                                                     OnConnection onConnection, int backlog = 128);
  ~TcpListener();  // stops accepting at once
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

  uint16_t port() const;
  const std::string& address() const;  // "127.0.0.1:40321", "[::1]:40321"

 private:
  explicit TcpListener(detail::ListenerCore* core) : core_(core) {}
  detail::ListenerCore* core_;
};

struct ConnectOptions {
  // Covers name resolution, TCP connect and the TLS handshake together.
  std::chrono::milliseconds timeout{30000};
  // Implicit TLS (IMAPS 993, SMTPS 465): the callback fires only once the
  // handshake has succeeded. Null for plaintext / STARTTLS.
  const tls::ClientTlsContext* tls = nullptr;
  // Name for SNI and verification; empty: the host we connect to.
  std::string tlsHostname;
};

// The connect attempt in flight; destroying it cancels it and its callback.
class PendingConnect {
 public:
  ~PendingConnect();
  PendingConnect(const PendingConnect&) = delete;
  PendingConnect& operator=(const PendingConnect&) = delete;

 private:
  friend std::unique_ptr<PendingConnect> connectTcp(uv_loop_t*, const std::string&, uint16_t, ConnectOptions,
                                                    std::function<void(Result<std::unique_ptr<TcpStream>>)>);
  explicit PendingConnect(detail::ConnectCore* core) : core_(core) {}
  detail::ConnectCore* core_;
};

// Resolves host, tries each address in turn, then (optionally) does the TLS
// handshake. The callback runs exactly once, from the loop, unless the
// PendingConnect is destroyed first. The stream it hands over is not reading
// yet: call start(). Errors: Unavailable for network failures and timeouts,
// Upstream for TLS refusals ("tls: certificate verify failed: ...").
std::unique_ptr<PendingConnect> connectTcp(uv_loop_t* loop, const std::string& host, uint16_t port,
                                           ConnectOptions options,
                                           std::function<void(Result<std::unique_ptr<TcpStream>>)> onDone);

}  // namespace mb
