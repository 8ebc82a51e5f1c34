// TlsEngine: OpenSSL driven through two memory BIOs, with errors turned into
// sentences a user can act on ("certificate verify failed: hostname mismatch").
#include "daemon/tls/tls_engine.h"

#include <arpa/inet.h>

#include <algorithm>
#include <climits>

#include <openssl/err.h>
#include <openssl/x509v3.h>

namespace mb::tls {
namespace {

bool isIpLiteral(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

Result<SslPtr> newSsl(SSL_CTX* ctx, BIO** in, BIO** out) {
  ERR_clear_error();
  SslPtr ssl(SSL_new(ctx));
  if (!ssl) return fail(ErrorKind::Internal, "tls: SSL_new: " + takeOpensslErrors());
  *in = BIO_new(BIO_s_mem());
  *out = BIO_new(BIO_s_mem());
  if (*in == nullptr || *out == nullptr) {
    BIO_free(*in);
    BIO_free(*out);
    return fail(ErrorKind::Internal, "tls: BIO_new: " + takeOpensslErrors());
  }
  SSL_set_bio(ssl.get(), *in, *out);
  return ssl;
}

}  // namespace

const char* tlsStateName(TlsState state) {
  switch (state) {
    case TlsState::Handshaking: return "handshaking";
    case TlsState::Open: return "open";
    case TlsState::Closed: return "closed";
    case TlsState::Failed: return "failed";
  }
  return "failed";
}

TlsEngine::TlsEngine(Role role, SslPtr ssl) : role_(role), ssl_(std::move(ssl)) {
  SSL_set_app_data(ssl_.get(), this);
}

TlsEngine::~TlsEngine() = default;

Result<std::unique_ptr<TlsEngine>> TlsEngine::server(const ServerTlsContext& ctx) {
  BIO* in = nullptr;
  BIO* out = nullptr;
  auto ssl = newSsl(ctx.native(), &in, &out);
  if (!ssl) return std::unexpected(ssl.error());
  std::unique_ptr<TlsEngine> engine(new TlsEngine(Role::Server, std::move(*ssl)));
  engine->in_ = in;
  engine->out_ = out;
  SSL_set_accept_state(engine->ssl_.get());
  return engine;
}

Result<std::unique_ptr<TlsEngine>> TlsEngine::client(const ClientTlsContext& ctx, std::string_view hostname) {
  const ClientTlsOptions& opts = ctx.options();
  std::string host(hostname.empty() ? std::string_view(opts.hostname) : hostname);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty() && opts.verify && !ctx.pin())
    return fail(ErrorKind::Config, "tls: a host name is required to verify the server certificate");

  BIO* in = nullptr;
  BIO* out = nullptr;
  auto ssl = newSsl(ctx.native(), &in, &out);
  if (!ssl) return std::unexpected(ssl.error());
  std::unique_ptr<TlsEngine> engine(new TlsEngine(Role::Client, std::move(*ssl)));
  engine->in_ = in;
  engine->out_ = out;
  engine->pin_ = ctx.pin();
  SSL* s = engine->ssl_.get();
  SSL_set_connect_state(s);

  const bool ip = isIpLiteral(host);
  // RFC 6066 section 3: SNI carries DNS names only, never address literals.
  if (!host.empty() && !ip && SSL_set_tlsext_host_name(s, host.c_str()) != 1)
    return fail(ErrorKind::Config, "tls: invalid host name for SNI: " + host + ": " + takeOpensslErrors());
  if (opts.verify && !ctx.pin()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(s);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    if (ok != 1) return fail(ErrorKind::Config, "tls: cannot verify against host name " + host);
  }
  engine->advance();  // produces the ClientHello
  if (engine->state_ == TlsState::Failed) return fail(ErrorKind::Internal, "tls: " + engine->error_);
  return engine;
}

int TlsEngine::pinVerifyCallback(X509_STORE_CTX* store, void* /*arg*/) {
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* engine = ssl ? static_cast<TlsEngine*>(SSL_get_app_data(ssl)) : nullptr;
  X509* leaf = X509_STORE_CTX_get0_cert(store);
  if (engine == nullptr || !engine->pin_ || leaf == nullptr) {
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  Sha256 got = certSha256(leaf);
  if (got == *engine->pin_) {
    X509_STORE_CTX_set_error(store, X509_V_OK);
    return 1;
  }
  engine->verifyNote_ = "certificate pin mismatch (server presented SHA-256 " + fingerprintText(got) + ")";
  X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
  return 0;
}

Status TlsEngine::feedCiphertext(std::string_view bytes) {
  if (state_ == TlsState::Failed) return fail(ErrorKind::Io, "tls: " + error_);
  while (!bytes.empty()) {
    int chunk = static_cast<int>(std::min<size_t>(bytes.size(), INT_MAX));
    int n = BIO_write(in_, bytes.data(), chunk);
    if (n <= 0) return fail(ErrorKind::Internal, "tls: BIO_write failed");
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  advance();
  if (state_ == TlsState::Failed) return fail(ErrorKind::Io, "tls: " + error_);
  return {};
}

std::string TlsEngine::takeCiphertext() {
  std::string out;
  size_t pending = BIO_ctrl_pending(out_);
  if (pending == 0) return out;
  out.resize(pending);
  size_t got = 0;
  while (got < pending) {
    int n = BIO_read(out_, out.data() + got, static_cast<int>(std::min<size_t>(pending - got, INT_MAX)));
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

bool TlsEngine::hasCiphertext() const { return BIO_ctrl_pending(out_) > 0; }

Status TlsEngine::writePlain(std::string_view bytes) {
  switch (state_) {
    case TlsState::Failed: return fail(ErrorKind::Io, "tls: " + error_);
    case TlsState::Closed: return fail(ErrorKind::Io, "tls: session is closed");
    case TlsState::Handshaking: heldOut_.append(bytes); return {};
    case TlsState::Open: break;
  }
  return encrypt(bytes);
}

Status TlsEngine::encrypt(std::string_view bytes) {
  while (!bytes.empty()) {
    ERR_clear_error();
    int chunk = static_cast<int>(std::min<size_t>(bytes.size(), INT_MAX));
    int n = SSL_write(ssl_.get(), bytes.data(), chunk);
    if (n <= 0) {
      // A memory BIO never pushes back, so any non-positive result is fatal.
      failWith(SSL_get_error(ssl_.get(), n));
      return fail(ErrorKind::Io, "tls: " + error_);
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

size_t TlsEngine::readPlain(std::string& out) {
  size_t n = plainIn_.size();
  if (out.empty()) out.swap(plainIn_);
  else out.append(plainIn_);
  plainIn_.clear();
  return n;
}

void TlsEngine::shutdown() {
  if (closeSent_ || state_ == TlsState::Failed) return;
  closeSent_ = true;
  if (state_ == TlsState::Open || state_ == TlsState::Closed) {
    ERR_clear_error();
    SSL_shutdown(ssl_.get());  // queues close_notify; the peer's reply is optional
    ERR_clear_error();
  }
  heldOut_.clear();
  state_ = TlsState::Closed;
}

std::string TlsEngine::protocol() const {
  if (state_ == TlsState::Handshaking || state_ == TlsState::Failed) return {};
  return SSL_get_version(ssl_.get());
}

std::string TlsEngine::cipher() const {
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl_.get());
  return c ? SSL_CIPHER_get_name(c) : "";
}

void TlsEngine::advance() {
  if (state_ == TlsState::Handshaking) {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_.get());
    if (r != 1) {
      int err = SSL_get_error(ssl_.get(), r);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) failWith(err);
      return;
    }
    state_ = TlsState::Open;
    handshakeDone_ = true;
    if (!heldOut_.empty()) {
      std::string held;
      held.swap(heldOut_);
      if (!encrypt(held)) return;
    }
  }
  if ((state_ == TlsState::Open || state_ == TlsState::Closed) && !peerClosed_) readAvailable();
}

void TlsEngine::readAvailable() {
  char buf[16384];
  for (;;) {
    ERR_clear_error();
    int n = SSL_read(ssl_.get(), buf, sizeof buf);
    if (n > 0) {
      plainIn_.append(buf, static_cast<size_t>(n));
      continue;
    }
    int err = SSL_get_error(ssl_.get(), n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;
    if (err == SSL_ERROR_ZERO_RETURN) {
      peerClosed_ = true;
      if (!closeSent_) {
        closeSent_ = true;
        SSL_shutdown(ssl_.get());  // answer with our close_notify
        ERR_clear_error();
      }
      state_ = TlsState::Closed;
      return;
    }
    failWith(err);
    return;
  }
}

void TlsEngine::failWith(int sslError) {
  std::string why;
  if (sslError == SSL_ERROR_SSL) {
    unsigned long first = ERR_peek_error();
    why = takeOpensslErrors("protocol error");
    if (ERR_GET_REASON(first) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
      long v = SSL_get_verify_result(ssl_.get());
      if (!verifyNote_.empty()) why = "certificate verify failed: " + verifyNote_;
      else if (v != X509_V_OK) why = std::string("certificate verify failed: ") + X509_verify_cert_error_string(v);
    }
  } else if (sslError == SSL_ERROR_SYSCALL) {
    why = takeOpensslErrors("unexpected end of TLS stream");
  } else {
    why = takeOpensslErrors("TLS error " + std::to_string(sslError));
  }
  state_ = TlsState::Failed;
  error_ = std::move(why);
  heldOut_.clear();
}

}  // namespace mb::tls
