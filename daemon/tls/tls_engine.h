// A sans-I/O TLS session: ciphertext in/out through OpenSSL memory BIOs, plaintext
// in/out through calls. The same engine serves our listeners and our upstream
// clients; TcpStream moves the bytes, tests pump two engines into each other.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "daemon/tls/openssl_util.h"
#include "daemon/tls/tls_context.h"
#include "protocols/common/result.h"

namespace mb::tls {

enum class TlsState {
  Handshaking,  // plaintext written now is held until the handshake completes
  Open,         // application data flows both ways
  Closed,       // close_notify sent or received; reading what is left still works
  Failed,       // fatal; error() says why. An alert may still be in takeCiphertext()
};

const char* tlsStateName(TlsState state);

// Usage: after every call, send takeCiphertext() to the peer (it may hold
// handshake messages, alerts or close_notify), then consume readPlain().
// The engine never blocks and buffers without limit; flow control belongs to the
// caller (TcpStream stops reading the socket when its owner does).
class TlsEngine {
 public:
  enum class Role { Client, Server };

  // The engine keeps its own reference to the SSL_CTX: contexts may be
  // destroyed while engines made from them are still running.
  static Result<std::unique_ptr<TlsEngine>> server(const ServerTlsContext& ctx);
  // hostname overrides ctx.options().hostname. Verification without a name
  // would accept any valid certificate, so it is a Config error (unless pinned
  // or verify is off). The ClientHello is ready in takeCiphertext() on return.
  static Result<std::unique_ptr<TlsEngine>> client(const ClientTlsContext& ctx, std::string_view hostname = {});

  ~TlsEngine();
  TlsEngine(const TlsEngine&) = delete;
  TlsEngine& operator=(const TlsEngine&) = delete;

  // Bytes received from the peer, split anywhere. Drives the handshake and
  // decrypts what it can. Returns the error once the engine has Failed.
  Status feedCiphertext(std::string_view bytes);
  // Bytes to send to the peer; empties the outgoing buffer.
  std::string takeCiphertext();
  bool hasCiphertext() const;

  // Encrypts (or, while Handshaking, holds) application data of any size.
  // Fails once Closed (by us) or Failed.
  Status writePlain(std::string_view bytes);
  // Appends decrypted application data to `out`; returns how many bytes.
  size_t readPlain(std::string& out);
  bool hasPlain() const { return !plainIn_.empty(); }
  // Plaintext held until the handshake completes.
  size_t heldPlainBytes() const { return heldOut_.size(); }

  // Queues close_notify (only if the handshake finished: a half-done
  // handshake is simply abandoned). Idempotent.
  void shutdown();

  TlsState state() const { return state_; }
  Role role() const { return role_; }
  const std::string& error() const { return error_; }
  bool peerClosed() const { return peerClosed_; }
  // True from the moment the handshake succeeded, whatever happened later.
  bool handshakeDone() const { return handshakeDone_; }
  // "TLSv1.3", "TLS_AES_256_GCM_SHA384"; empty before the handshake.
  std::string protocol() const;
  std::string cipher() const;

  // OpenSSL certificate-verify hook installed by ClientTlsContext for pinning.
  static int pinVerifyCallback(X509_STORE_CTX* store, void* arg);

 private:
  TlsEngine(Role role, SslPtr ssl);
  void advance();
  void readAvailable();
  Status encrypt(std::string_view bytes);
  void failWith(int sslError);

  Role role_;
  SslPtr ssl_;
  BIO* in_ = nullptr;   // network -> SSL, owned by ssl_
  BIO* out_ = nullptr;  // SSL -> network, owned by ssl_
  TlsState state_ = TlsState::Handshaking;
  std::string error_;
  std::string heldOut_;  // written before the handshake finished
  std::string plainIn_;
  bool closeSent_ = false;
  bool peerClosed_ = false;
  bool handshakeDone_ = false;
  std::optional<Sha256> pin_;
  std::string verifyNote_;  // why the pin check refused, for error_
};

}  // namespace mb::tls
