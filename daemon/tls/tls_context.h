// TLS configuration shared by many connections: the server side (our certificate)
// and the client side (how we decide to trust an upstream server).
#pragma once

#include <optional>
#include <string>

#include "daemon/tls/openssl_util.h"
#include "protocols/common/result.h"

namespace mb::tls {

// Serves one certificate chain + key. TLS 1.2 minimum, forward-secret AEAD
// ciphers only (Mozilla "intermediate"), no renegotiation, no compression.
class ServerTlsContext {
 public:
  // certPath may hold the leaf followed by intermediates. Errors name the file.
  static Result<ServerTlsContext> fromPemFiles(const std::string& certPath, const std::string& keyPath);

  SSL_CTX* native() const { return ctx_.get(); }

 private:
  explicit ServerTlsContext(SslCtxPtr ctx) : ctx_(std::move(ctx)) {}
  SslCtxPtr ctx_;
};

struct ClientTlsOptions {
  // Verify the chain and the host name. Turning it off is logged at warn level
  // once per context; it never happens implicitly.
  bool verify = true;
  // PEM bundle to trust *instead of* the system store; empty: system store.
  std::string caFile;
  // SHA-256 of the leaf certificate (hex, colons/case ignored). When set it
  // replaces chain and host name verification: exactly that certificate is
  // accepted, whatever its issuer, names or dates; anything else is refused.
  std::string pinSha256;
  // Default name for SNI and verification; TlsEngine::client can override it
  // per connection. IP literals are checked against IP SANs and get no SNI.
  std::string hostname;
};

class ClientTlsContext {
 public:
  // Fails (Config) on an unreadable caFile or a malformed pin.
  static Result<ClientTlsContext> create(ClientTlsOptions options);

  SSL_CTX* native() const { return ctx_.get(); }
  const ClientTlsOptions& options() const { return options_; }
  const std::optional<Sha256>& pin() const { return pin_; }

 private:
  ClientTlsContext(SslCtxPtr ctx, ClientTlsOptions options, std::optional<Sha256> pin)
      : ctx_(std::move(ctx)), options_(std::move(options)), pin_(pin) {}
  SslCtxPtr ctx_;
  ClientTlsOptions options_;
  std::optional<Sha256> pin_;
};

}  // namespace mb::tls
