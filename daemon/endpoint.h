// How a local endpoint (IMAP, SMTP) comes up: its TLS identity and every
// listener of its EndpointConfig, named for listeners.json and the status.
// One way for both servers, so naming, optional addresses and error texts
// cannot drift apart.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/loop/tcp_stream.h"
#include "daemon/status_board.h"
#include "daemon/tls/tls_context.h"
#include "daemon/tls/tls_engine.h"
#include "protocols/common/result.h"

namespace mb {

// config.tls when set, else the generated identity in the state dir.
Result<tls::ServerTlsContext> loadServerIdentity(const Config& cfg, const std::string& generatedCert,
                                                 const std::string& generatedKey);

// "127.0.0.1:5312" -> "127.0.0.1", "[::1]:5312" -> "::1": what login
// failures are counted by (per host, not per source port) and logs name.
std::string peerHost(const std::string& peerAddress);

struct EndpointBinding {
  uv_loop_t* loop = nullptr;
  std::string_view proto;  // "imap", "smtp": names "imap", "imap-2", ..., "imaps", "imaps-2", ...
  std::function<void(std::unique_ptr<TcpStream>, bool implicitTls)> onAccept;
  std::function<Status(ListenerStatus)> addListener;  // may be empty
};

// Binds endpoint.listen, then endpoint.tlsListen, appending to `out`. An address
// in endpoint.optional that cannot be bound is a warning (no IPv6 on the host);
// any other failure is an error naming the address.
Status bindEndpoint(const EndpointBinding& binding, const EndpointConfig& endpoint,
                    std::vector<std::unique_ptr<TcpListener>>& out);

// What a local server (IMAP, SMTP) keeps of its endpoint: the TLS identity,
// the listeners and the open connections, which it owns until each removes
// itself. Connection: start(), and close(args...) for shutdown().
template <class Connection>
class Endpoint {
 public:
  using Factory = std::function<std::unique_ptr<Connection>(std::unique_ptr<TcpStream>, bool implicitTls)>;

  Endpoint() = default;
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;
  ~Endpoint() {
    listeners_.clear();
    connections_.clear();
  }

  // Loads the TLS identity (loadServerIdentity) and binds every listener of
  // `endpoint`; an accepted stream (TLS started on the implicit-TLS ones)
  // becomes make(stream, implicitTls), started at once.
  Status start(uv_loop_t* loop, std::string_view proto, const Config& cfg, const EndpointConfig& endpoint,
               const std::string& certPath, const std::string& keyPath,
               std::function<Status(ListenerStatus)> addListener, Factory make) {
    auto ctx = loadServerIdentity(cfg, certPath, keyPath);
    if (!ctx) return std::unexpected(ctx.error());
    tls_ = std::move(*ctx);
    make_ = std::move(make);
    EndpointBinding binding{loop, proto,
                            [this](std::unique_ptr<TcpStream> s, bool implicitTls) { accept(std::move(s), implicitTls); },
                            std::move(addListener)};
    return bindEndpoint(binding, endpoint, listeners_);
  }

  // No new connections; every open one is closed with close(why...).
  template <class... Why>
  void shutdown(const Why&... why) {
    listeners_.clear();
    std::vector<Connection*> open;
    for (auto& [p, c] : connections_) open.push_back(p);
    for (auto* c : open) c->close(why...);
  }

  // Destroys the connection: its last act.
  void remove(Connection* connection) { connections_.erase(connection); }

  // The identity for STARTTLS; null before start().
  const tls::ServerTlsContext* tls() const { return tls_ ? &*tls_ : nullptr; }

  template <class Pred>
  size_t count(Pred pred) const {
    size_t n = 0;
    for (const auto& [p, c] : connections_) n += pred(*c) ? 1 : 0;
    return n;
  }

 private:
  void accept(std::unique_ptr<TcpStream> stream, bool implicitTls) {
    if (implicitTls) {
      auto engine = tls::TlsEngine::server(*tls_);
      if (!engine || !stream->startTls(std::move(*engine))) return;  // dropping the stream closes it
    }
    auto conn = make_(std::move(stream), implicitTls);
    Connection* raw = conn.get();
    connections_.emplace(raw, std::move(conn));
    raw->start();
  }

  std::optional<tls::ServerTlsContext> tls_;
  std::vector<std::unique_ptr<TcpListener>> listeners_;
  std::unordered_map<Connection*, std::unique_ptr<Connection>> connections_;
  Factory make_;
};

}  // namespace mb
