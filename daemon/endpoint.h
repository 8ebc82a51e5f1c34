// How a local endpoint (IMAP, SMTP) comes up: its TLS identity and every
// listener of its EndpointConfig, named for listeners.json and the status.
// One way for both servers, so naming, optional addresses and error texts
// cannot drift apart.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/loop/tcp_stream.h"
#include "daemon/status_board.h"
#include "daemon/tls/tls_context.h"
#include "protocols/common/result.h"

namespace mb {

// config.tls when set, else the generated identity in the state dir.
Result<tls::ServerTlsContext> loadServerIdentity(const Config& cfg, const std::string& generatedCert,
                                                 const std::string& generatedKey);

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

}  // namespace mb
