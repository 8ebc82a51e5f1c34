// REST routes, bearer-token check and JSON error bodies.
#include "api/rest_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

namespace mb {
namespace {

using nlohmann::json;

constexpr auto kCommandTimeout = std::chrono::seconds(10);

void sendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  // Status strings can carry text from an upstream (an error line cut mid-way,
  // a non-UTF-8 folder name); dump() would throw on invalid UTF-8 and turn a
  // status read into a 500. Invalid sequences become U+FFFD instead.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void sendError(httplib::Response& res, int status, std::string_view code, std::string_view message) {
  sendJson(res, status, json{{"error", {{"code", code}, {"message", message}}}});
}

int httpStatusFor(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Syntax:
    case ErrorKind::User:
    case ErrorKind::Config: return 400;
    case ErrorKind::Auth: return 401;
    case ErrorKind::NotFound: return 404;
    case ErrorKind::Conflict: return 409;
    case ErrorKind::Unavailable:
    case ErrorKind::Upstream: return 503;
    default: return 500;
  }
}

void sendError(httplib::Response& res, const Error& e) {
  sendError(res, httpStatusFor(e.kind), errorKindName(e.kind), e.message);
}

json toJson(const SyncProgress& p) {
  return json{{"state", p.state},
              {"mailboxes", {{"done", p.mailboxesDone}, {"total", p.mailboxesTotal}}},
              {"messages", {{"done", p.messagesDone}, {"total", p.messagesTotal}}},
              {"bytes", p.bytes},
              {"pending_changes", p.pendingChanges},
              {"dropped_changes", p.droppedChanges},
              {"bodies", p.bodies},
              {"bodies_missing", p.bodiesMissing},
              {"bodies_fetched_on_demand", p.bodiesFetchedOnDemand},
              {"bodies_failed", p.bodiesFailed},
              {"last_error", p.lastError.empty() ? json(nullptr) : json(p.lastError)},
              {"next_retry", p.nextRetry ? json(p.nextRetry) : json(nullptr)},
              {"last_sync", p.lastSync ? json(p.lastSync) : json(nullptr)}};
}

json toJson(const std::optional<UpstreamSummary>& u) {
  if (!u) return nullptr;
  return json{{"host", u->host}, {"port", u->port}, {"security", u->security}, {"username", u->username}};
}

json toJson(const AccountStatus& a) {
  json j{{"id", a.id},
         {"name", a.name},
         {"address", a.address},
         {"local_username", a.localUsername.empty() ? json(nullptr) : json(a.localUsername)},
         {"kind", a.kind},
         {"state", a.state},
         {"source", a.source},
         {"imap", toJson(a.imap)},
         {"smtp", toJson(a.smtp)}};
  if (a.sync) j["sync"] = toJson(*a.sync);
  return j;
}

const AccountStatus* findAccount(const StatusSnapshot& s, int64_t id) {
  for (const auto& a : s.accounts)
    if (a.id == id) return &a;
  return nullptr;
}

json toJson(const StatusSnapshot& s) {
  auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - s.started);
  json listeners = json::array();
  for (const auto& l : s.listeners)
    listeners.push_back({{"name", l.name}, {"address", l.address}, {"tls", l.tls}});
  json accounts = json::array();
  for (const auto& a : s.accounts) accounts.push_back(toJson(a));
  return json{{"version", s.version},
              {"uptime_seconds", uptime.count()},
              {"config", s.configSource},
              {"state_dir", s.stateDir},
              {"listeners", listeners},
              {"accounts", accounts}};
}

// The errno of a failed bind, for a message that says why; httplib only says "false".
std::string bindFailureReason(const ListenAddress& addr) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = addr.host.find(':') == std::string::npos ? AF_INET : AF_INET6;
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(addr.port);
    inet_pton(AF_INET, addr.host.c_str(), &sin->sin_addr);
    len = sizeof *sin;
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(addr.port);
    inet_pton(AF_INET6, addr.host.c_str(), &sin6->sin6_addr);
    len = sizeof *sin6;
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::strerror(errno);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  std::string reason = "cannot listen";
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) reason = std::strerror(errno);
  ::close(fd);
  return reason;
}

}  // namespace

RestServer::RestServer(const StatusBoard& board, CommandQueue& queue, ApiCommands commands, Secret token)
    : board_(board), queue_(queue), commands_(std::move(commands)), token_(std::move(token)),
      server_(std::make_unique<httplib::Server>()) {
  routes();
}

RestServer::~RestServer() { stop(); }

using Command = CommandQueue::Command;

Result<std::string> RestServer::newLocalPassword(int64_t accountId) {
  if (!commands_.newPassword || !commands_.setPassword) return fail(ErrorKind::NotFound, "local passwords are not available");
  auto password = commands_.newPassword();
  if (!password) return std::unexpected(password.error());
  auto stored = queue_.call([this, accountId, hash = password->second] { return commands_.setPassword(accountId, hash); },
                            kCommandTimeout);
  if (!stored) return stored;
  auto out = nlohmann::json::parse(*stored);
  out["password"] = password->first;
  return out.dump();
}

void RestServer::routes() {
  auto& srv = *server_;
  srv.new_task_queue = [] { return new httplib::ThreadPool(4); };
  // httplib defaults to SO_REUSEPORT, which would let a second daemon share our
  // port silently; SO_REUSEADDR alone makes "address in use" an error.
  srv.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  srv.set_keep_alive_max_count(100);
  srv.set_read_timeout(10, 0);
  srv.set_payload_max_length(1 << 20);

  // Every /v1 route except health needs the bearer token.
  srv.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    logDebug("api.request").kv("method", req.method).kv("path", req.path);
    if (req.path == "/v1/health") return httplib::Server::HandlerResponse::Unhandled;
    const std::string& header = req.get_header_value("Authorization");
    static constexpr std::string_view kBearer = "Bearer ";
    const std::string& want = token_.reveal();
    bool ok = header.size() == kBearer.size() + want.size() && header.compare(0, kBearer.size(), kBearer) == 0 &&
              CRYPTO_memcmp(header.data() + kBearer.size(), want.data(), want.size()) == 0;
    if (!ok) {
      res.set_header("WWW-Authenticate", "Bearer realm=\"mailbridge\"");
      sendError(res, 401, "unauthorized",
                header.empty() ? "missing bearer token (see <state dir>/api-token)" : "invalid bearer token");
      logInfo("api.unauthorized").kv("path", req.path).kv("peer", req.remote_addr);
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  srv.Get("/v1/health", [](const httplib::Request&, httplib::Response& res) {
    sendJson(res, 200, json{{"status", "ok"}});
  });

  srv.Get("/v1/status", [this](const httplib::Request&, httplib::Response& res) {
    sendJson(res, 200, toJson(*board_.current()));
  });

  srv.Get("/v1/accounts", [this](const httplib::Request&, httplib::Response& res) {
    // Hold the snapshot for the whole loop: a range-for over
    // board_.current()->accounts would destroy the temporary shared_ptr before
    // the first iteration, and a publish on the loop thread then frees the
    // vector under us (ASan caught it while sync status changed every ms).
    auto snapshot = board_.current();
    json accounts = json::array();
    for (const auto& a : snapshot->accounts) accounts.push_back(toJson(a));
    sendJson(res, 200, json{{"accounts", accounts}});
  });

  srv.Post(R"(/v1/accounts/(\d{1,18})/password)", [this](const httplib::Request& req, httplib::Response& res) {
    int64_t id = std::stoll(req.matches[1]);
    auto result = newLocalPassword(id);
    if (!result) return sendError(res, result.error());
    res.set_header("Cache-Control", "no-store");
    res.status = 200;
    res.set_content(*result, "application/json");
  });

  // Account management, run on the loop thread. A body the account parser
  // refuses is a 400 whose message names the key path.
  auto accountCall = [this](httplib::Response& res, int okStatus, const Command& call) -> Result<std::string> {
    auto result = queue_.call(call, kCommandTimeout);
    if (!result) {
      if (result.error().kind == ErrorKind::Config) sendError(res, 400, "invalid_request", result.error().message);
      else sendError(res, result.error());
      return result;
    }
    res.set_header("Cache-Control", "no-store");
    res.status = okStatus;
    return result;
  };
  srv.Post("/v1/accounts", [this, accountCall](const httplib::Request& req, httplib::Response& res) {
    if (!commands_.createAccount) return sendError(res, 404, "not_found", "account management is not available");
    std::string body = req.body;
    auto result = accountCall(res, 201, [this, body] { return commands_.createAccount(body); });
    if (!result) return;
    // The account exists and its first sync runs while the KDF hashes its
    // local password here.
    auto created = nlohmann::json::parse(*result);
    int64_t id = created.at("id").get<int64_t>();
    auto local = newLocalPassword(id);
    if (!local) {
      Error e = local.error();
      e.message = "account " + std::to_string(id) + " was created but has no local password (" + e.message +
                  "): POST /v1/accounts/" + std::to_string(id) + "/password";
      return sendError(res, e);
    }
    created["local"] = nlohmann::json::parse(*local);
    res.set_content(created.dump(), "application/json");
  });
  srv.Get(R"(/v1/accounts/(\d{1,18}))", [this](const httplib::Request& req, httplib::Response& res) {
    int64_t id = std::stoll(req.matches[1]);
    auto snap = board_.current();
    const AccountStatus* a = findAccount(*snap, id);
    if (!a) return sendError(res, 404, "not_found", "no account with id " + std::to_string(id));
    sendJson(res, 200, toJson(*a));
  });
  srv.Patch(R"(/v1/accounts/(\d{1,18}))", [this, accountCall](const httplib::Request& req, httplib::Response& res) {
    if (!commands_.updateAccount) return sendError(res, 404, "not_found", "account management is not available");
    int64_t id = std::stoll(req.matches[1]);
    std::string body = req.body;
    auto result = accountCall(res, 200, [this, id, body] { return commands_.updateAccount(id, body); });
    if (!result) return;
    // The loop published the changed account before it answered.
    auto snapshot = board_.current();  // keeps *a alive
    const AccountStatus* a = findAccount(*snapshot, id);
    if (!a) return sendError(res, 404, "not_found", "no account with id " + std::to_string(id));
    sendJson(res, 200, toJson(*a));
  });
  srv.Delete(R"(/v1/accounts/(\d{1,18}))", [this, accountCall](const httplib::Request& req, httplib::Response& res) {
    if (!commands_.deleteAccount) return sendError(res, 404, "not_found", "account management is not available");
    int64_t id = std::stoll(req.matches[1]);
    auto result = accountCall(res, 200, [this, id] { return commands_.deleteAccount(id); });
    if (result) res.set_content(*result, "application/json");
  });

  // The SMTP outbox (GET list, POST retry, DELETE), run on the loop thread.
  auto outboxCall = [this](httplib::Response& res, const std::function<Result<std::string>()>& call) {
    if (!call) return sendError(res, 404, "not_found", "the SMTP outbox is not running");
    auto result = queue_.call(call, kCommandTimeout);
    if (!result) return sendError(res, result.error());
    res.status = 200;
    res.set_content(*result, "application/json");
  };
  srv.Get("/v1/outbox", [this, outboxCall](const httplib::Request&, httplib::Response& res) {
    outboxCall(res, commands_.outboxList ? Command([this] { return commands_.outboxList(); }) : Command());
  });
  srv.Post(R"(/v1/outbox/(\d{1,18})/retry)", [this, outboxCall](const httplib::Request& req, httplib::Response& res) {
    int64_t id = std::stoll(req.matches[1]);
    outboxCall(res, commands_.outboxRetry ? Command([this, id] { return commands_.outboxRetry(id); }) : Command());
  });
  srv.Delete(R"(/v1/outbox/(\d{1,18}))", [this, outboxCall](const httplib::Request& req, httplib::Response& res) {
    int64_t id = std::stoll(req.matches[1]);
    outboxCall(res, commands_.outboxDelete ? Command([this, id] { return commands_.outboxDelete(id); }) : Command());
  });

  srv.Post("/v1/reload", [this](const httplib::Request&, httplib::Response& res) {
    auto result = queue_.call(
        [this]() -> Result<std::string> {
          if (auto s = commands_.reload(); !s) return std::unexpected(s.error());
          return std::string("{\"reloaded\":true}");
        },
        kCommandTimeout);
    if (!result) return sendError(res, result.error());
    res.status = 200;
    res.set_content(*result, "application/json");
  });

  srv.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a route already wrote a JSON error
    if (res.status == 404) return sendError(res, 404, "not_found", "no such endpoint: " + req.path);
    if (res.status == 405) return sendError(res, 405, "method_not_allowed", req.method + " is not allowed here");
    sendError(res, res.status, "http_error", "HTTP error " + std::to_string(res.status));
  });
  srv.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    sendError(res, 500, "internal", "internal error");
  });
}

Result<ListenAddress> RestServer::start(const ListenAddress& listen) {
  int port = listen.port;
  if (port == 0) {
    port = server_->bind_to_any_port(listen.host);
    if (port < 0) port = 0;
  } else if (!server_->bind_to_port(listen.host, port)) {
    port = 0;
  }
  if (port == 0)
    return fail(ErrorKind::Io, "api listener " + listen.toString() + ": " + bindFailureReason(listen));
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return ListenAddress{listen.host, static_cast<uint16_t>(port)};
}

void RestServer::stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

}  // namespace mb
