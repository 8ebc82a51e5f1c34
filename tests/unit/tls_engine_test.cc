// TlsEngine against itself in memory: handshakes, data at every split, and each
// way a client must refuse a server (untrusted, wrong name, wrong pin, old TLS).
#include "daemon/tls/tls_engine.h"

#include <openssl/err.h>

#include <string>

#include <gtest/gtest.h>

#include "tests/unit/tls_test_util.h"

namespace mb::tls {
namespace {

using testing::localhostCert;

ServerTlsContext serverCtx() {
  auto ctx = ServerTlsContext::fromPemFiles(localhostCert().certPath, localhostCert().keyPath);
  EXPECT_TRUE(ctx.has_value()) << (ctx ? "" : ctx.error().message);
  return std::move(*ctx);
}

ClientTlsContext clientCtx(ClientTlsOptions opts) {
  auto ctx = ClientTlsContext::create(std::move(opts));
  EXPECT_TRUE(ctx.has_value()) << (ctx ? "" : ctx.error().message);
  return std::move(*ctx);
}

ClientTlsOptions trustingLocalhost() {
  ClientTlsOptions o;
  o.caFile = localhostCert().certPath;
  o.hostname = "localhost";
  return o;
}

// Moves ciphertext both ways until neither side has anything to say. With
// `step` = 1 every byte is fed on its own, which exercises every split point.
void pump(TlsEngine& a, TlsEngine& b, size_t step = SIZE_MAX) {
  for (int rounds = 0; rounds < 10000; ++rounds) {
    bool moved = false;
    for (auto [from, to] : {std::pair{&a, &b}, std::pair{&b, &a}}) {
      std::string bytes = from->takeCiphertext();
      if (bytes.empty()) continue;
      moved = true;
      for (size_t off = 0; off < bytes.size(); off += step) {
        std::string_view piece = std::string_view(bytes).substr(off, step);
        if (!to->feedCiphertext(piece)) break;  // state says why; tests check it
      }
    }
    if (!moved) return;
  }
  FAIL() << "pump did not settle";
}

std::string readAll(TlsEngine& e) {
  std::string out;
  e.readPlain(out);
  return out;
}

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  return s;
}

struct Pair {
  std::unique_ptr<TlsEngine> server;
  std::unique_ptr<TlsEngine> client;
};

Pair makePair(const ClientTlsOptions& opts, std::string_view hostOverride = {}) {
  auto sctx = serverCtx();
  auto cctx = clientCtx(opts);
  auto s = TlsEngine::server(sctx);
  auto c = TlsEngine::client(cctx, hostOverride);
  EXPECT_TRUE(s.has_value());
  EXPECT_TRUE(c.has_value()) << (c ? "" : c.error().message);
  // Contexts die here on purpose: engines hold their own reference.
  return Pair{s ? std::move(*s) : nullptr, c ? std::move(*c) : nullptr};
}

TEST(TlsEngine, HandshakeAndDataBothWays) {
  auto p = makePair(trustingLocalhost());
  ASSERT_TRUE(p.server && p.client);
  EXPECT_EQ(p.client->state(), TlsState::Handshaking);
  // Written before the handshake finishes: held, then sent in order.
  ASSERT_TRUE(p.client->writePlain("early "));
  pump(*p.client, *p.server);
  ASSERT_EQ(p.client->state(), TlsState::Open) << p.client->error();
  ASSERT_EQ(p.server->state(), TlsState::Open) << p.server->error();
  EXPECT_EQ(p.client->protocol(), "TLSv1.3");

  ASSERT_TRUE(p.client->writePlain("a1 LOGIN\r\n"));
  pump(*p.client, *p.server);
  EXPECT_EQ(readAll(*p.server), "early a1 LOGIN\r\n");
  ASSERT_TRUE(p.server->writePlain("a1 OK\r\n"));
  pump(*p.client, *p.server);
  EXPECT_EQ(readAll(*p.client), "a1 OK\r\n");
}

TEST(TlsEngine, OneByteAtATimeBothWays) {
  auto p = makePair(trustingLocalhost());
  ASSERT_TRUE(p.server && p.client);
  pump(*p.client, *p.server, 1);
  ASSERT_EQ(p.client->state(), TlsState::Open) << p.client->error();
  ASSERT_EQ(p.server->state(), TlsState::Open) << p.server->error();
  const std::string up = pattern(40000);  // crosses several 16 KiB records
  const std::string down = pattern(1000);
  ASSERT_TRUE(p.client->writePlain(up));
  ASSERT_TRUE(p.server->writePlain(down));
  pump(*p.client, *p.server, 1);
  EXPECT_EQ(readAll(*p.server), up);
  EXPECT_EQ(readAll(*p.client), down);
}

TEST(TlsEngine, OddSplitsAndLargeWrite) {
  auto p = makePair(trustingLocalhost());
  ASSERT_TRUE(p.server && p.client);
  pump(*p.client, *p.server, 7);
  ASSERT_EQ(p.server->state(), TlsState::Open);
  const std::string big = pattern(3 * 1024 * 1024 + 17);
  ASSERT_TRUE(p.server->writePlain(big));
  pump(*p.client, *p.server, 4093);
  EXPECT_EQ(readAll(*p.client), big);
}

TEST(TlsEngine, CloseNotifyBothWays) {
  auto p = makePair(trustingLocalhost());
  ASSERT_TRUE(p.server && p.client);
  pump(*p.client, *p.server);
  ASSERT_TRUE(p.client->writePlain("last words"));
  p.client->shutdown();
  EXPECT_EQ(p.client->state(), TlsState::Closed);
  EXPECT_FALSE(p.client->writePlain("more"));
  pump(*p.client, *p.server);
  EXPECT_EQ(readAll(*p.server), "last words");  // data before close_notify survives
  EXPECT_TRUE(p.server->peerClosed());
  EXPECT_EQ(p.server->state(), TlsState::Closed);
  EXPECT_TRUE(p.client->peerClosed());  // the server answered with its own close_notify
}

TEST(TlsEngine, RefusesSelfSignedWithSystemStore) {
  ClientTlsOptions o;
  o.hostname = "localhost";
  auto p = makePair(o);
  ASSERT_TRUE(p.server && p.client);
  ASSERT_TRUE(p.client->writePlain("secret"));
  pump(*p.client, *p.server);
  EXPECT_EQ(p.client->state(), TlsState::Failed);
  EXPECT_NE(p.client->error().find("certificate verify failed: self-signed certificate"), std::string::npos)
      << p.client->error();
  // The alert reaches the server, which fails too and never saw the data.
  EXPECT_EQ(p.server->state(), TlsState::Failed);
  EXPECT_EQ(readAll(*p.server), "");
  EXPECT_FALSE(p.client->writePlain("x"));
}

TEST(TlsEngine, AcceptsLocalhostByIpLiteral) {
  for (const char* ip : {"127.0.0.1", "::1", "[::1]"}) {
    auto p = makePair(trustingLocalhost(), ip);
    ASSERT_TRUE(p.server && p.client);
    pump(*p.client, *p.server);
    EXPECT_EQ(p.client->state(), TlsState::Open) << ip << ": " << p.client->error();
  }
}

TEST(TlsEngine, RefusesHostnameMismatch) {
  auto p = makePair(trustingLocalhost(), "other.example");
  ASSERT_TRUE(p.server && p.client);
  pump(*p.client, *p.server);
  EXPECT_EQ(p.client->state(), TlsState::Failed);
  EXPECT_EQ(p.client->error(), "certificate verify failed: hostname mismatch");
}

TEST(TlsEngine, RefusesIpMismatch) {
  auto p = makePair(trustingLocalhost(), "127.0.0.2");
  ASSERT_TRUE(p.server && p.client);
  pump(*p.client, *p.server);
  EXPECT_EQ(p.client->state(), TlsState::Failed);
  EXPECT_EQ(p.client->error(), "certificate verify failed: IP address mismatch");
}

TEST(TlsEngine, VerificationNeedsAHostname) {
  ClientTlsOptions o;
  o.caFile = localhostCert().certPath;
  auto cctx = clientCtx(o);
  auto c = TlsEngine::client(cctx);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().kind, ErrorKind::Config);
}

TEST(TlsEngine, PinMatchAcceptedWithoutChain) {
  auto fp = certFingerprintSha256(localhostCert().certPath);
  ASSERT_TRUE(fp.has_value());
  ClientTlsOptions o;
  o.pinSha256 = *fp;  // system store would refuse this cert; the pin replaces it
  auto p = makePair(o, "any.example");
  ASSERT_TRUE(p.server && p.client);
  pump(*p.client, *p.server);
  EXPECT_EQ(p.client->state(), TlsState::Open) << p.client->error();

  // Lower case without colons is the same pin.
  std::string bare;
  for (char ch : *fp)
    if (ch != ':') bare.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
  o.pinSha256 = bare;
  auto q = makePair(o);
  ASSERT_TRUE(q.server && q.client);
  pump(*q.client, *q.server);
  EXPECT_EQ(q.client->state(), TlsState::Open) << q.client->error();
}

TEST(TlsEngine, PinMismatchRefused) {
  auto fp = certFingerprintSha256(localhostCert().certPath);
  ASSERT_TRUE(fp.has_value());
  std::string wrong = *fp;
  wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
  ClientTlsOptions o = trustingLocalhost();  // a valid chain does not rescue a wrong pin
  o.pinSha256 = wrong;
  auto p = makePair(o);
  ASSERT_TRUE(p.server && p.client);
  pump(*p.client, *p.server);
  EXPECT_EQ(p.client->state(), TlsState::Failed);
  EXPECT_NE(p.client->error().find("certificate pin mismatch"), std::string::npos) << p.client->error();
  EXPECT_NE(p.client->error().find(*fp), std::string::npos) << "names what the server presented";
}

TEST(TlsEngine, MalformedPinIsConfigError) {
  ClientTlsOptions o;
  o.pinSha256 = "AB:CD";
  auto ctx = ClientTlsContext::create(o);
  ASSERT_FALSE(ctx.has_value());
  EXPECT_EQ(ctx.error().kind, ErrorKind::Config);
}

TEST(TlsEngine, MissingCaFileNamesPath) {
  ClientTlsOptions o;
  o.caFile = "/nonexistent/ca.pem";
  auto ctx = ClientTlsContext::create(o);
  ASSERT_FALSE(ctx.has_value());
  EXPECT_NE(ctx.error().message.find("/nonexistent/ca.pem"), std::string::npos);
}

TEST(TlsEngine, VerifyOffAcceptsAnything) {
  ClientTlsOptions o;
  o.verify = false;
  auto p = makePair(o, "other.example");
  ASSERT_TRUE(p.server && p.client);
  pump(*p.client, *p.server);
  EXPECT_EQ(p.client->state(), TlsState::Open) << p.client->error();
}

// A raw OpenSSL client capped at TLS 1.1 (security level 0 so that it even
// offers it) must be turned away by our server.
TEST(TlsEngine, ServerRefusesTls11) {
  auto sctx = serverCtx();
  auto server = TlsEngine::server(sctx);
  ASSERT_TRUE(server.has_value());

  SslCtxPtr raw(SSL_CTX_new(TLS_client_method()));
  ASSERT_TRUE(raw);
  SSL_CTX_set_security_level(raw.get(), 0);
  ASSERT_EQ(SSL_CTX_set_cipher_list(raw.get(), "ALL:@SECLEVEL=0"), 1);
  ASSERT_EQ(SSL_CTX_set_min_proto_version(raw.get(), TLS1_VERSION), 1);
  ASSERT_EQ(SSL_CTX_set_max_proto_version(raw.get(), TLS1_1_VERSION), 1);
  SslPtr ssl(SSL_new(raw.get()));
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), in, out);
  SSL_set_connect_state(ssl.get());

  int rc = 0;
  for (int i = 0; i < 10; ++i) {
    rc = SSL_do_handshake(ssl.get());
    char buf[16384];
    std::string hello;
    int n = 0;
    while ((n = BIO_read(out, buf, sizeof buf)) > 0) hello.append(buf, static_cast<size_t>(n));
    if (hello.empty()) break;
    (void)(*server)->feedCiphertext(hello);
    std::string back = (*server)->takeCiphertext();
    BIO_write(in, back.data(), static_cast<int>(back.size()));
  }
  ERR_clear_error();
  EXPECT_NE(rc, 1) << "the TLS 1.1 client must not complete a handshake";
  EXPECT_EQ((*server)->state(), TlsState::Failed);
  EXPECT_NE((*server)->error().find("unsupported protocol"), std::string::npos) << (*server)->error();
}

TEST(TlsEngine, FailedFeedReportsReason) {
  auto sctx = serverCtx();
  auto server = TlsEngine::server(sctx);
  ASSERT_TRUE(server.has_value());
  auto st = (*server)->feedCiphertext("a1 CAPABILITY\r\n");  // plaintext where TLS was expected
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ((*server)->state(), TlsState::Failed);
  EXPECT_FALSE((*server)->error().empty());
  EXPECT_FALSE((*server)->feedCiphertext("more").has_value());
}

}  // namespace
}  // namespace mb::tls
