// Building SSL_CTX objects with our security floor (TLS >= 1.2) for both roles.
#include "daemon/tls/tls_context.h"

#include <openssl/err.h>

#include "daemon/log/log.h"
#include "daemon/tls/tls_engine.h"

namespace mb::tls {
namespace {

// Mozilla "intermediate" TLS 1.2 suites: ECDHE/DHE key exchange, AEAD only.
// TLS 1.3 suites keep OpenSSL's defaults, which are all fine.
constexpr const char* kServerCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";

// Upstream providers are not ours to upgrade, so the client also accepts the
// CBC suites of TLS 1.2 but never anything unauthenticated or broken.
constexpr const char* kClientCiphers = "HIGH:!aNULL:!eNULL:!MD5:!RC4:!3DES:!DES:!EXP:!PSK:!SRP:!CAMELLIA:!ARIA";

Status applyFloor(SSL_CTX* ctx, const char* ciphers) {
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 || SSL_CTX_set_cipher_list(ctx, ciphers) != 1)
    return fail(ErrorKind::Internal, "tls: cannot set protocol floor: " + takeOpensslErrors());
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // Idle IMAP connections are the common case; do not keep 2x16 KiB each.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  return {};
}

}  // namespace

Result<ServerTlsContext> ServerTlsContext::fromPemFiles(const std::string& certPath, const std::string& keyPath) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return fail(ErrorKind::Internal, "tls: SSL_CTX_new: " + takeOpensslErrors());
  if (auto s = applyFloor(ctx.get(), kServerCiphers); !s) return std::unexpected(s.error());
  SSL_CTX_set_dh_auto(ctx.get(), 1);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), certPath.c_str()) != 1)
    return fail(ErrorKind::Config, "tls: cannot load certificate " + certPath + ": " + takeOpensslErrors());
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), keyPath.c_str(), SSL_FILETYPE_PEM) != 1)
    return fail(ErrorKind::Config, "tls: cannot load private key " + keyPath + ": " + takeOpensslErrors());
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    return fail(ErrorKind::Config, "tls: private key " + keyPath + " does not match certificate " + certPath);
  return ServerTlsContext(std::move(ctx));
}

Result<ClientTlsContext> ClientTlsContext::create(ClientTlsOptions options) {
  ERR_clear_error();
  std::optional<Sha256> pin;
  if (!options.pinSha256.empty()) {
    pin = parseFingerprint(options.pinSha256);
    if (!pin)
      return fail(ErrorKind::Config, "tls: certificate pin must be 64 hex digits (SHA-256), colons allowed");
  }
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return fail(ErrorKind::Internal, "tls: SSL_CTX_new: " + takeOpensslErrors());
  if (auto s = applyFloor(ctx.get(), kClientCiphers); !s) return std::unexpected(s.error());

  if (pin) {
    // The engine's callback compares the leaf digest and ignores the chain.
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_cert_verify_callback(ctx.get(), TlsEngine::pinVerifyCallback, nullptr);
  } else if (options.verify) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (!options.caFile.empty()) {
      if (SSL_CTX_load_verify_locations(ctx.get(), options.caFile.c_str(), nullptr) != 1)
        return fail(ErrorKind::Config, "tls: cannot load CA file " + options.caFile + ": " + takeOpensslErrors());
    } else if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
      return fail(ErrorKind::Config, "tls: cannot load the system CA store: " + takeOpensslErrors());
    }
  } else {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    logWarn("tls.client.verify_disabled").kv("host", options.hostname);
  }
  return ClientTlsContext(std::move(ctx), std::move(options), pin);
}

}  // namespace mb::tls
