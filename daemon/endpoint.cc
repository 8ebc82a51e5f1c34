#include "daemon/endpoint.h"

#include <algorithm>

#include "daemon/log/log.h"

namespace mb {

Result<tls::ServerTlsContext> loadServerIdentity(const Config& cfg, const std::string& generatedCert,
                                                 const std::string& generatedKey) {
  bool configured = !cfg.tls.cert.empty();
  return tls::ServerTlsContext::fromPemFiles(configured ? cfg.tls.cert : generatedCert,
                                             configured ? cfg.tls.key : generatedKey);
}

std::string peerHost(const std::string& peer) {
  if (!peer.empty() && peer[0] == '[') {
    auto close = peer.find(']');
    return close == std::string::npos ? peer : peer.substr(1, close - 1);
  }
  auto colon = peer.rfind(':');
  return colon == std::string::npos ? peer : peer.substr(0, colon);
}

Status bindEndpoint(const EndpointBinding& binding, const EndpointConfig& endpoint,
                    std::vector<std::unique_ptr<TcpListener>>& out) {
  auto bindAll = [&](const std::vector<ListenAddress>& addrs, bool implicitTls) -> Status {
    int count = 0;
    for (const auto& a : addrs) {
      auto onAccept = binding.onAccept;
      auto l = TcpListener::listen(binding.loop, a.host, a.port, [onAccept, implicitTls](std::unique_ptr<TcpStream> s) {
        onAccept(std::move(s), implicitTls);
      });
      if (!l) {
        if (std::find(endpoint.optional.begin(), endpoint.optional.end(), a) != endpoint.optional.end()) {
          logWarn(std::string(binding.proto) + ".listen_skipped").kv("addr", a.toString()).kv("error", l.error().message);
          continue;
        }
        // The listener's message already names the address.
        return fail(ErrorKind::Io, std::string(binding.proto) + " listener " + l.error().message);
      }
      // listeners.json has one entry per name: further addresses get a suffix.
      std::string name = std::string(binding.proto) + (implicitTls ? "s" : "");
      if (count++ > 0) name += "-" + std::to_string(count);
      ListenerStatus st{name, (*l)->address(), implicitTls};
      out.push_back(std::move(*l));
      if (binding.addListener) {
        if (auto s = binding.addListener(st); !s) return s;
      }
    }
    return {};
  };
  if (auto s = bindAll(endpoint.listen, false); !s) return s;
  return bindAll(endpoint.tlsListen, true);
}

}  // namespace mb
