// TcpStream / TcpListener / connectTcp over a real libuv loop on loopback:
// TLS echo of 1 MiB, STARTTLS after plaintext, backpressure, clean close,
// refusals and cancellation. Driven by uv_run only; a watchdog fails a hang.
#include "daemon/loop/tcp_stream.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/tls_test_util.h"

namespace mb {
namespace {

using tls::testing::localhostCert;

std::string pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 2654435761u + seed) >> 13);
  return s;
}

class StreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    // Fails a hung test instead of blocking CI; unref'd so it never keeps
    // the loop alive by itself.
    uv_timer_init(&loop_, &watchdog_);
    watchdog_.data = this;
    uv_timer_start(&watchdog_, [](uv_timer_t* t) {
      ADD_FAILURE() << "watchdog: the loop did not settle";
      auto* self = static_cast<StreamTest*>(t->data);
      self->listener_.reset();
      uv_stop(t->loop);
    }, 20000, 0);
    uv_unref(reinterpret_cast<uv_handle_t*>(&watchdog_));

    auto sctx = tls::ServerTlsContext::fromPemFiles(localhostCert().certPath, localhostCert().keyPath);
    ASSERT_TRUE(sctx.has_value());
    serverCtx_.emplace(std::move(*sctx));
    tls::ClientTlsOptions o;
    o.caFile = localhostCert().certPath;
    o.hostname = "localhost";
    auto cctx = tls::ClientTlsContext::create(o);
    ASSERT_TRUE(cctx.has_value());
    clientCtx_.emplace(std::move(*cctx));
  }

  void TearDown() override {
    listener_.reset();
    uv_close(reinterpret_cast<uv_handle_t*>(&watchdog_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle was left open";
  }

  void run() { uv_run(&loop_, UV_RUN_DEFAULT); }

  // Listener on 127.0.0.1:0 handing each connection to `accept`.
  void listen(TcpListener::OnConnection accept, const std::string& host = "127.0.0.1") {
    auto l = TcpListener::listen(&loop_, host, 0, std::move(accept));
    ASSERT_TRUE(l.has_value()) << l.error().message;
    listener_ = std::move(*l);
    ASSERT_NE(listener_->port(), 0);
  }

  std::unique_ptr<tls::TlsEngine> serverEngine() {
    auto e = tls::TlsEngine::server(*serverCtx_);
    EXPECT_TRUE(e.has_value());
    return std::move(*e);
  }

  uv_loop_t loop_{};
  uv_timer_t watchdog_{};
  std::optional<tls::ServerTlsContext> serverCtx_;
  std::optional<tls::ClientTlsContext> clientCtx_;
  std::unique_ptr<TcpListener> listener_;
};

TEST_F(StreamTest, ListenerReportsBoundPortV4AndV6) {
  listen([](std::unique_ptr<TcpStream>) {});
  EXPECT_EQ(listener_->address(), "127.0.0.1:" + std::to_string(listener_->port()));
  auto v6 = TcpListener::listen(&loop_, "::1", 0, [](std::unique_ptr<TcpStream>) {});
  ASSERT_TRUE(v6.has_value()) << v6.error().message;
  EXPECT_EQ((*v6)->address(), "[::1]:" + std::to_string((*v6)->port()));
}

TEST_F(StreamTest, ListenerAddressInUse) {
  listen([](std::unique_ptr<TcpStream>) {});
  uint16_t port = listener_->port();
  auto again = TcpListener::listen(&loop_, "127.0.0.1", port, [](std::unique_ptr<TcpStream>) {});
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().message, "127.0.0.1:" + std::to_string(port) + ": address already in use");
  EXPECT_EQ(again.error().kind, ErrorKind::Conflict);
}

TEST_F(StreamTest, ListenerNeedsAnIpLiteral) {
  auto l = TcpListener::listen(&loop_, "localhost", 0, [](std::unique_ptr<TcpStream>) {});
  ASSERT_FALSE(l.has_value());
  EXPECT_EQ(l.error().kind, ErrorKind::Config);
}

// The heart of it: implicit TLS, the client verifying with caFile + name,
// 1 MiB each way with the echo side pausing on backpressure, clean close.
TEST_F(StreamTest, TlsEchoOneMebibyteAndCleanClose) {
  std::unique_ptr<TcpStream> server;
  std::optional<CloseReason> serverClosed;
  size_t serverPauses = 0;
  bool serverSecure = false;
  listen([&](std::unique_ptr<TcpStream> s) {
    server = std::move(s);
    ASSERT_TRUE(server->startTls(serverEngine()));
    TcpStreamCallbacks cbs;
    cbs.onSecure = [&] { serverSecure = true; };
    cbs.onData = [&](std::string_view bytes) {
      auto queued = server->write(bytes);
      ASSERT_TRUE(queued.has_value());
      // Low enough that any full read (64 KiB) trips it: pause/resume must run.
      if (*queued > 16 * 1024) {
        ++serverPauses;
        server->pauseReading();
      }
    };
    cbs.onDrain = [&] { server->resumeReading(); };
    cbs.onClose = [&](const CloseReason& why) {
      serverClosed = why;
      server.reset();
      listener_.reset();
    };
    server->start(std::move(cbs));
  });

  const std::string sent = pattern(1 << 20, 7);
  std::string received;
  std::unique_ptr<TcpStream> client;
  std::optional<CloseReason> clientClosed;
  ConnectOptions opts;
  opts.tls = &*clientCtx_;
  // "localhost" may resolve to ::1 first, where nobody listens: the connector
  // moves on to 127.0.0.1. The name verified is "localhost" (DNS SAN).
  auto pending = connectTcp(&loop_, "localhost", listener_->port(), opts, [&](Result<std::unique_ptr<TcpStream>> r) {
    ASSERT_TRUE(r.has_value()) << r.error().message;
    client = std::move(*r);
    EXPECT_TRUE(client->isSecure());
    EXPECT_EQ(client->tls()->protocol(), "TLSv1.3");
    TcpStreamCallbacks cbs;
    cbs.onData = [&](std::string_view bytes) {
      received.append(bytes);
      if (received.size() == sent.size()) client->close();
    };
    cbs.onClose = [&](const CloseReason& why) { clientClosed = why; };
    client->start(std::move(cbs));
    auto queued = client->write(sent);
    ASSERT_TRUE(queued.has_value());
    EXPECT_GT(*queued, sent.size());  // ciphertext, not yet on the wire
  });
  ASSERT_TRUE(pending);
  run();

  EXPECT_TRUE(serverSecure);
  ASSERT_EQ(received.size(), sent.size());
  EXPECT_TRUE(received == sent);
  ASSERT_TRUE(clientClosed.has_value());
  EXPECT_EQ(clientClosed->kind, CloseKind::Local) << clientClosed->message;
  ASSERT_TRUE(serverClosed.has_value());
  EXPECT_EQ(serverClosed->kind, CloseKind::PeerClosed);
  EXPECT_EQ(serverClosed->message, "peer closed the connection (TLS close_notify)");
  EXPECT_GT(serverPauses, 0u);
}

// Client writes far more than the kernel buffers while the server is not
// reading: queuedBytes stays up and onDrain waits until the server reads.
TEST_F(StreamTest, BackpressureHoldsUntilPeerReads) {
  std::unique_ptr<TcpStream> server;
  size_t serverGot = 0;
  listen([&](std::unique_ptr<TcpStream> s) { server = std::move(s); });  // not started: not reading

  const size_t total = 32u << 20;
  std::unique_ptr<TcpStream> client;
  bool drained = false;
  auto pending = connectTcp(&loop_, "localhost", listener_->port(), {}, [&](Result<std::unique_ptr<TcpStream>> r) {
    ASSERT_TRUE(r.has_value()) << r.error().message;
    client = std::move(*r);
    TcpStreamCallbacks cbs;
    cbs.onDrain = [&] { drained = true; client->close(); };
    client->start(std::move(cbs));
    auto queued = client->write(std::string(total, 'x'));
    ASSERT_TRUE(queued.has_value());
    EXPECT_EQ(*queued, total);
  });
  for (int i = 0; i < 200 && !(client && server); ++i) uv_run(&loop_, UV_RUN_ONCE);
  ASSERT_TRUE(client && server);
  for (int i = 0; i < 50; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_FALSE(drained);
  EXPECT_GT(client->queuedBytes(), 0u);

  TcpStreamCallbacks cbs;
  cbs.onData = [&](std::string_view b) { serverGot += b.size(); };
  cbs.onClose = [&](const CloseReason& why) {
    EXPECT_EQ(why.kind, CloseKind::PeerClosed) << why.message;
    server.reset();
    listener_.reset();
  };
  server->start(std::move(cbs));
  run();
  EXPECT_TRUE(drained);
  EXPECT_EQ(serverGot, total);
}

// STARTTLS: plaintext greeting and command, then TLS on the same socket.
// The client pipelines junk after STARTTLS; the server must see it as the
// plaintext it was (and drop it), never as the start of the TLS stream.
TEST_F(StreamTest, StartTlsAfterPlaintextExchange) {
  std::unique_ptr<TcpStream> server;
  std::string serverPlain;
  std::string droppedAfterStartTls;
  std::string serverSecureData;
  std::optional<CloseReason> serverClosed;
  listen([&](std::unique_ptr<TcpStream> s) {
    server = std::move(s);
    TcpStreamCallbacks cbs;
    cbs.onData = [&](std::string_view bytes) {
      if (server->isTls()) {
        serverSecureData.append(bytes);
        if (serverSecureData == "a2 NOOP\r\n") {
          ASSERT_TRUE(server->write("a2 OK secure\r\n"));
        }
        return;
      }
      serverPlain.append(bytes);
      auto pos = serverPlain.find("a1 STARTTLS\r\n");
      if (pos == std::string::npos) return;
      droppedAfterStartTls = serverPlain.substr(pos + 13);
      ASSERT_TRUE(server->write("a1 OK begin TLS\r\n"));  // goes out before the handshake
      ASSERT_TRUE(server->startTls(serverEngine()));
    };
    cbs.onClose = [&](const CloseReason& why) {
      serverClosed = why;
      server.reset();
      listener_.reset();
    };
    server->start(std::move(cbs));
    ASSERT_TRUE(server->write("* OK ready\r\n"));
  });

  std::unique_ptr<TcpStream> client;
  std::string clientPlain;
  std::string clientSecureData;
  bool clientSecureSeen = false;
  std::optional<CloseReason> clientClosed;
  auto pending = connectTcp(&loop_, "127.0.0.1", listener_->port(), {}, [&](Result<std::unique_ptr<TcpStream>> r) {
    ASSERT_TRUE(r.has_value()) << r.error().message;
    client = std::move(*r);
    EXPECT_FALSE(client->isTls());
    TcpStreamCallbacks cbs;
    cbs.onData = [&](std::string_view bytes) {
      if (client->isTls()) {
        clientSecureData.append(bytes);
        if (clientSecureData == "a2 OK secure\r\n") client->close();
        return;
      }
      clientPlain.append(bytes);
      if (clientPlain == "* OK ready\r\n") {
        ASSERT_TRUE(client->write("a1 STARTTLS\r\nINJECTED"));
      } else if (clientPlain == "* OK ready\r\na1 OK begin TLS\r\n") {
        auto engine = tls::TlsEngine::client(*clientCtx_, "localhost");
        ASSERT_TRUE(engine.has_value());
        ASSERT_TRUE(client->startTls(std::move(*engine)));
        ASSERT_TRUE(client->write("a2 NOOP\r\n"));  // held until the handshake is done
      }
    };
    cbs.onSecure = [&] { clientSecureSeen = true; };
    cbs.onClose = [&](const CloseReason& why) { clientClosed = why; };
    client->start(std::move(cbs));
  });
  run();

  EXPECT_EQ(droppedAfterStartTls, "INJECTED");
  EXPECT_TRUE(clientSecureSeen);
  EXPECT_EQ(serverSecureData, "a2 NOOP\r\n");
  EXPECT_EQ(clientSecureData, "a2 OK secure\r\n");
  ASSERT_TRUE(clientClosed && serverClosed);
  EXPECT_TRUE(clientClosed->clean()) << clientClosed->message;
  EXPECT_EQ(serverClosed->kind, CloseKind::PeerClosed) << serverClosed->message;
}

TEST_F(StreamTest, ConnectRefusesWrongHostname) {
  std::unique_ptr<TcpStream> server;
  std::optional<CloseReason> serverClosed;
  listen([&](std::unique_ptr<TcpStream> s) {
    server = std::move(s);
    ASSERT_TRUE(server->startTls(serverEngine()));
    TcpStreamCallbacks cbs;
    cbs.onData = [](std::string_view) { ADD_FAILURE() << "no data may pass"; };
    cbs.onClose = [&](const CloseReason& why) {
      serverClosed = why;
      server.reset();
      listener_.reset();
    };
    server->start(std::move(cbs));
  });
  ConnectOptions opts;
  opts.tls = &*clientCtx_;
  opts.tlsHostname = "other.example";
  const uint16_t port = listener_->port();
  std::optional<Error> error;
  auto pending = connectTcp(&loop_, "127.0.0.1", port, opts, [&](Result<std::unique_ptr<TcpStream>> r) {
    ASSERT_FALSE(r.has_value());
    error = r.error();
  });
  run();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->kind, ErrorKind::Upstream);
  EXPECT_EQ(error->message, "127.0.0.1:" + std::to_string(port) + ": tls: certificate verify failed: hostname mismatch");
  ASSERT_TRUE(serverClosed.has_value());
  EXPECT_EQ(serverClosed->kind, CloseKind::TlsFailed) << serverClosed->message;
}

TEST_F(StreamTest, ConnectionRefused) {
  listen([](std::unique_ptr<TcpStream>) {});
  uint16_t port = listener_->port();
  listener_.reset();
  std::optional<Error> error;
  auto pending = connectTcp(&loop_, "127.0.0.1", port, {}, [&](Result<std::unique_ptr<TcpStream>> r) {
    ASSERT_FALSE(r.has_value());
    error = r.error();
  });
  run();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->kind, ErrorKind::Unavailable);
  EXPECT_NE(error->message.find("connection refused"), std::string::npos) << error->message;
}

// A server that accepts but never speaks TLS: the timeout covers the handshake.
TEST_F(StreamTest, ConnectTimesOutDuringHandshake) {
  std::unique_ptr<TcpStream> silent;
  listen([&](std::unique_ptr<TcpStream> s) { silent = std::move(s); });
  ConnectOptions opts;
  opts.tls = &*clientCtx_;
  opts.timeout = std::chrono::milliseconds(100);
  std::optional<Error> error;
  auto pending = connectTcp(&loop_, "127.0.0.1", listener_->port(), opts, [&](Result<std::unique_ptr<TcpStream>> r) {
    ASSERT_FALSE(r.has_value());
    error = r.error();
    silent.reset();
    listener_.reset();
  });
  run();
  ASSERT_TRUE(error.has_value());
  EXPECT_NE(error->message.find("timed out after 100 ms"), std::string::npos) << error->message;
}

TEST_F(StreamTest, DestroyingPendingConnectCancelsIt) {
  listen([](std::unique_ptr<TcpStream>) {});
  bool called = false;
  auto pending = connectTcp(&loop_, "localhost", listener_->port(), {},
                            [&](Result<std::unique_ptr<TcpStream>>) { called = true; });
  uv_run(&loop_, UV_RUN_NOWAIT);
  pending.reset();
  listener_.reset();
  run();
  EXPECT_FALSE(called);
}

// Destroying a stream with writes queued and from inside its own callback:
// no callback afterwards, no leak, no use-after-free (ASan watches).
TEST_F(StreamTest, DestroyingOwnerInsideCallbackIsSafe) {
  std::unique_ptr<TcpStream> server;
  std::optional<CloseReason> serverClosed;
  listen([&](std::unique_ptr<TcpStream> s) {
    server = std::move(s);
    ASSERT_TRUE(server->startTls(serverEngine()));
    TcpStreamCallbacks cbs;
    cbs.onClose = [&](const CloseReason& why) {
      serverClosed = why;
      server.reset();
      listener_.reset();
    };
    server->start(std::move(cbs));
  });
  std::unique_ptr<TcpStream> client;
  bool clientCallbackAfterDestroy = false;
  ConnectOptions opts;
  opts.tls = &*clientCtx_;
  auto pending = connectTcp(&loop_, "127.0.0.1", listener_->port(), opts, [&](Result<std::unique_ptr<TcpStream>> r) {
    ASSERT_TRUE(r.has_value()) << r.error().message;
    client = std::move(*r);
    TcpStreamCallbacks cbs;
    cbs.onDrain = [&] { clientCallbackAfterDestroy = true; };
    cbs.onClose = [&](const CloseReason&) { clientCallbackAfterDestroy = true; };
    client->start(std::move(cbs));
    ASSERT_TRUE(client->write(std::string(4 << 20, 'y')));
    client.reset();  // inside the connect callback, with 4 MiB queued
  });
  run();
  EXPECT_FALSE(clientCallbackAfterDestroy);
  ASSERT_TRUE(serverClosed.has_value());
  EXPECT_FALSE(serverClosed->clean() && serverClosed->message.find("close_notify") != std::string::npos)
      << "an aborted peer must not look like a clean TLS close: " << serverClosed->message;
}

TEST_F(StreamTest, WriteAfterCloseFails) {
  std::unique_ptr<TcpStream> server;
  listen([&](std::unique_ptr<TcpStream> s) {
    server = std::move(s);
    TcpStreamCallbacks cbs;
    cbs.onClose = [&](const CloseReason&) {
      server.reset();
      listener_.reset();
    };
    server->start(std::move(cbs));
  });
  std::unique_ptr<TcpStream> client;
  auto pending = connectTcp(&loop_, "127.0.0.1", listener_->port(), {}, [&](Result<std::unique_ptr<TcpStream>> r) {
    ASSERT_TRUE(r.has_value());
    client = std::move(*r);
    client->start({});
    client->close();
    EXPECT_FALSE(client->isOpen());
    EXPECT_FALSE(client->write("late").has_value());
  });
  run();
}

}  // namespace
}  // namespace mb
