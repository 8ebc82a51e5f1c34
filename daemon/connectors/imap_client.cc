// Upstream IMAP connection (see imap_client.h).
#include "daemon/connectors/imap_client.h"

#include <ctime>
#include <span>
#include <string_view>

#include "daemon/log/log.h"
#include "daemon/tls/tls_engine.h"

namespace mb::connectors {
namespace {

// A read into a literal stops at the literal's end; below this size several
// messages share one 64 KiB read of the stream's buffer, which is cheaper
// than the copy it saves.
constexpr size_t kMinReadInto = 16 * 1024;

bool isAuthCommand(const client::Command& c) { return c.name.rfind("AUTHENTICATE", 0) == 0; }

// Nothing may be sent behind these until they complete or get their "+".
bool blocksPipeline(const client::Command& c) { return c.name == "IDLE" || isAuthCommand(c); }

std::string describe(const client::StatusText& s) {
  std::string out = client::statusKindName(s.status);
  if (s.code.kind != client::CodeKind::None) out += " [" + s.code.name + (s.code.args.empty() ? "" : " " + s.code.args) + "]";
  if (!s.text.empty()) out += " " + s.text;
  return out;
}

// The commands an untagged response is data for (RFC 3501 7, RFC 9051 7),
// in order of preference. Servers may run pipelined commands of different
// kinds in parallel and interleave their data (Dovecot does, e.g. UID STORE
// next to UID SEARCH), so "the oldest command in flight" is not always the
// owner; empty: whichever command is oldest.
std::span<const std::string_view> producers(const client::Response& r) {
  using S = std::string_view;
  static constexpr S kFetch[] = {"UID FETCH", "FETCH", "UID STORE", "STORE", "SELECT", "EXAMINE", "NOOP"};
  static constexpr S kSearch[] = {"UID SEARCH", "SEARCH"};
  static constexpr S kList[] = {"LIST", "LSUB"};
  static constexpr S kLsub[] = {"LSUB", "LIST"};
  static constexpr S kStatus[] = {"STATUS", "LIST"};  // LIST-STATUS
  static constexpr S kSelect[] = {"SELECT", "EXAMINE"};
  static constexpr S kExpunge[] = {"UID EXPUNGE", "EXPUNGE", "UID MOVE", "SELECT", "EXAMINE"};
  static constexpr S kVanished[] = {"SELECT", "EXAMINE", "UID FETCH", "UID EXPUNGE", "EXPUNGE", "UID MOVE"};
  static constexpr S kCopyUid[] = {"UID MOVE"};
  static constexpr S kNamespace[] = {"NAMESPACE"};
  static constexpr S kId[] = {"ID"};
  static constexpr S kCapability[] = {"CAPABILITY"};
  static constexpr S kEnable[] = {"ENABLE"};
  if (std::holds_alternative<client::FetchData>(r)) return kFetch;
  if (std::holds_alternative<client::SearchData>(r) || std::holds_alternative<client::EsearchData>(r)) return kSearch;
  if (auto* l = std::get_if<client::ListData>(&r)) return l->lsub ? std::span<const S>(kLsub) : std::span<const S>(kList);
  if (std::holds_alternative<client::StatusData>(r)) return kStatus;
  if (std::holds_alternative<client::ExistsData>(r) || std::holds_alternative<client::RecentData>(r) ||
      std::holds_alternative<client::FlagsData>(r))
    return kSelect;
  if (std::holds_alternative<client::ExpungeData>(r)) return kExpunge;
  if (std::holds_alternative<client::VanishedData>(r)) return kVanished;
  if (std::holds_alternative<client::NamespaceData>(r)) return kNamespace;
  if (std::holds_alternative<client::IdData>(r)) return kId;
  if (std::holds_alternative<client::CapabilityData>(r)) return kCapability;
  if (std::holds_alternative<client::EnabledData>(r)) return kEnable;
  if (auto* s = std::get_if<client::UntaggedStatus>(&r)) {
    switch (s->status.code.kind) {
      case client::CodeKind::CopyUid: return kCopyUid;
      case client::CodeKind::UidValidity:
      case client::CodeKind::UidNext:
      case client::CodeKind::HighestModSeq:
      case client::CodeKind::PermanentFlags:
      case client::CodeKind::Unseen: return kSelect;
      default: break;
    }
  }
  return {};
}

}  // namespace

const char* imapFailureKindName(ImapFailure::Kind kind) {
  switch (kind) {
    case ImapFailure::Kind::Network: return "network";
    case ImapFailure::Kind::Tls: return "tls";
    case ImapFailure::Kind::Auth: return "auth";
    case ImapFailure::Kind::Protocol: return "protocol";
    case ImapFailure::Kind::Refused: return "refused";
  }
  return "network";
}

int64_t toUnixSeconds(const imap::DateTime& dt) {
  std::tm tm{};
  tm.tm_year = dt.date.year - 1900;
  tm.tm_mon = dt.date.month - 1;
  tm.tm_mday = dt.date.day;
  tm.tm_hour = dt.hour;
  tm.tm_min = dt.minute;
  tm.tm_sec = dt.second;
  return static_cast<int64_t>(::timegm(&tm)) - static_cast<int64_t>(dt.zoneMinutes) * 60;
}

imap::DateTime fromUnixSeconds(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  imap::DateTime dt;
  dt.date = {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday};
  dt.hour = tm.tm_hour;
  dt.minute = tm.tm_min;
  dt.second = tm.tm_sec;
  return dt;
}

ImapClient::ImapClient(uv_loop_t* loop, ImapClientOptions options) : loop_(loop), opt_(std::move(options)) {
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
}

ImapClient::~ImapClient() {
  *alive_ = false;
  connect_.reset();
  stream_.reset();
  uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

bool ImapClient::hasCapability(std::string_view cap) const {
  for (const auto& c : caps_)
    if (c.size() == cap.size() && std::equal(c.begin(), c.end(), cap.begin(), [](char a, char b) {
          return std::toupper(static_cast<unsigned char>(a)) == std::toupper(static_cast<unsigned char>(b));
        }))
      return true;
  return false;
}

void ImapClient::connect(std::function<void()> onReady, std::function<void(const ImapFailure&)> onClosed) {
  onReady_ = std::move(onReady);
  onClosed_ = std::move(onClosed);
  if (opt_.security != RelaySecurity::None && !opt_.tls) return fail(ImapFailure::Kind::Tls, "no TLS context");
  ConnectOptions o;
  o.timeout = opt_.timeout;
  if (opt_.security == RelaySecurity::Tls) o.tls = opt_.tls;
  logDebug("upstream.connecting").kv("account", opt_.accountName).kv("host", opt_.host).kv("port", opt_.port);
  connect_ = connectTcp(loop_, opt_.host, opt_.port, o,
                        [this](Result<std::unique_ptr<TcpStream>> s) { onConnected(std::move(s)); });
}

void ImapClient::onConnected(Result<std::unique_ptr<TcpStream>> stream) {
  connect_.reset();
  if (!stream) {
    auto kind = stream.error().kind == ErrorKind::Upstream ? ImapFailure::Kind::Tls : ImapFailure::Kind::Network;
    return fail(kind, stream.error().message);
  }
  stream_ = std::move(*stream);
  secured_ = opt_.security == RelaySecurity::Tls;
  parser_ = std::make_unique<client::ResponseParser>();
  stream_->start(TcpStreamCallbacks{
      [this](std::string_view bytes) { onData(bytes); },
      [this](const CloseReason& why) {
        std::string m = why.message.empty() ? std::string("connection closed by the server") : why.message;
        fail(why.kind == CloseKind::TlsFailed ? ImapFailure::Kind::Tls : ImapFailure::Kind::Network, m);
      },
      [this] {
        if (!handshaking_) return;
        handshaking_ = false;
        secured_ = true;
        capabilityThen([this] { authenticate(); });
      },
      nullptr,
      // A message body is read straight into its literal: one copy less of
      // every byte synced (plaintext only; TLS decrypts into its own buffer).
      [this] { return closed_ || handshaking_ ? std::span<char>() : parser_->literalWindow(kMinReadInto); },
      [this](size_t n) { onReadInto(n); }});
  armTimer();
}

void ImapClient::armTimer() {
  if (closed_) return;
  bool waiting = !readPaused_ && (!greeted_ || handshaking_ || (!pending_.empty() && !idling_));
  if (!waiting) {
    uv_timer_stop(timer_);
    return;
  }
  uv_timer_start(
      timer_, [](uv_timer_t* t) { static_cast<ImapClient*>(t->data)->fail(ImapFailure::Kind::Network, "timed out waiting for the server"); },
      static_cast<uint64_t>(opt_.timeout.count()), 0);
}

void ImapClient::pauseReading(bool paused) {
  if (closed_ || paused == readPaused_) return;
  readPaused_ = paused;
  if (stream_) {
    if (paused) stream_->pauseReading();
    else stream_->resumeReading();
  }
  armTimer();
}

void ImapClient::onData(std::string_view bytes) {
  if (closed_) return;
  if (handshaking_) return fail(ImapFailure::Kind::Protocol, "the server sent plaintext after agreeing to STARTTLS");
  bytesIn_ += bytes.size();
  parser_->feed(bytes);
  parseResponses();
}

void ImapClient::onReadInto(size_t n) {
  if (closed_) return;
  bytesIn_ += n;
  parser_->literalWritten(n);
  if (n > 0) parseResponses();
}

void ImapClient::parseResponses() {
  auto alive = alive_;
  for (;;) {
    auto ev = parser_->next();
    if (ev == client::ResponseParser::Event::NeedMore) break;
    if (ev == client::ResponseParser::Event::Error) {
      const auto& e = parser_->error();
      if (e.fatal) return fail(ImapFailure::Kind::Protocol, "malformed response: " + e.error.message);
      logWarn("upstream.bad_response").kv("account", opt_.accountName).kv("error", e.error.message);
      if (e.tag == "*")
        for (auto& p : pending_)
          if (p.lost.empty()) p.lost = e.error.message;
      // A lost tagged completion must still end its command.
      if (!e.tag.empty() && e.tag != "*" && e.tag != "+") {
        client::Response r = client::Tagged{e.tag, {client::StatusKind::Bad, {}, "unparsable completion: " + e.error.message}};
        dispatch(r);
        if (!*alive || closed_) return;
      }
      continue;
    }
    client::Response r = parser_->takeResponse();
    dispatch(r);
    if (!*alive || closed_ || handshaking_) return;
  }
  armTimer();
}

void ImapClient::dispatch(client::Response& r) {
  auto alive = alive_;
  if (auto* g = std::get_if<client::Greeting>(&r)) {
    if (greeted_) return;
    greeted_ = true;
    return afterGreeting(*g);
  }
  if (auto* t = std::get_if<client::Tagged>(&r)) {
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (it->cmd.tag != t->tag) continue;
      Pending p = std::move(*it);
      pending_.erase(it);
      if (p.cmd.name == "IDLE") idling_ = false;
      if (t->status.code.kind == client::CodeKind::Capability) setCapabilities(t->status.code.list);
      if (p.onDone && !p.lost.empty() && t->status.status == client::StatusKind::Ok)
        p.onDone(mb::fail(ErrorKind::Upstream, p.cmd.name + ": a response to it could not be read: " + p.lost));
      else if (p.onDone)
        p.onDone(t->status);
      if (!*alive || closed_) return;
      pump();
      armTimer();
      return;
    }
    logWarn("upstream.unknown_tag").kv("account", opt_.accountName).kv("tag", t->tag);
    return;
  }
  if (auto* c = std::get_if<client::Continuation>(&r)) {
    for (auto& p : pending_) {
      if (p.nextChunk < p.cmd.chunks.size()) {
        sendChunk(p);
        pump();
        return;
      }
    }
    if (!pending_.empty()) {
      Pending& p = pending_.back();
      if (p.cmd.name == "IDLE") idling_ = true;
      if (p.onContinuation) return p.onContinuation(*c);
      return;
    }
    return;
  }
  if (auto* c = std::get_if<client::CapabilityData>(&r)) setCapabilities(c->caps);
  if (auto* e = std::get_if<client::EnabledData>(&r)) {
    for (const auto& cap : e->caps) {
      if (cap == "CONDSTORE") condstore_ = true;
      if (cap == "QRESYNC") qresync_ = condstore_ = true;
    }
  }
  if (auto* s = std::get_if<client::UntaggedStatus>(&r)) {
    if (s->status.status == client::StatusKind::Bye) {
      logInfo("upstream.bye").kv("account", opt_.accountName).kv("text", describe(s->status));
      return;
    }
  }
  if (Pending* owner = ownerOf(r); owner && owner->onUntagged) return owner->onUntagged(r);
  if (unsolicited_) unsolicited_(r);
}

ImapClient::Pending* ImapClient::ownerOf(const client::Response& r) {
  if (pending_.empty()) return nullptr;
  // ESEARCH names the command it answers (RFC 4731 3: the search correlator).
  if (auto* e = std::get_if<client::EsearchData>(&r); e && e->tag) {
    for (auto& p : pending_)
      if (p.cmd.tag == *e->tag) return &p;
  }
  for (std::string_view name : producers(r)) {
    for (auto& p : pending_)
      if (p.cmd.name == name) return &p;
  }
  return &pending_.front();
}

void ImapClient::run(client::Command command, Untagged onUntagged, Done onDone,
                     std::function<void(const client::Continuation&)> onContinuation) {
  if (closed_) {
    // Never from inside run(): report on the next loop turn.
    auto* idle = new uv_idle_t;
    struct Ctx { Done done; };
    idle->data = new Ctx{std::move(onDone)};
    uv_idle_init(loop_, idle);
    uv_idle_start(idle, [](uv_idle_t* h) {
      auto* ctx = static_cast<Ctx*>(h->data);
      Done d = std::move(ctx->done);
      delete ctx;
      uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* x) { delete reinterpret_cast<uv_idle_t*>(x); });
      if (d) d(mb::fail(ErrorKind::Unavailable, "connection closed"));
    });
    return;
  }
  queue_.push_back(Pending{std::move(command), std::move(onUntagged), std::move(onDone), std::move(onContinuation), 0, {}});
  pump();
  armTimer();
}

void ImapClient::pump() {
  if (!stream_ || closed_ || handshaking_) return;
  while (!queue_.empty()) {
    if (!pending_.empty()) {
      const Pending& last = pending_.back();
      if (last.nextChunk < last.cmd.chunks.size() || blocksPipeline(last.cmd)) return;
    }
    pending_.push_back(std::move(queue_.front()));
    queue_.pop_front();
    Pending& p = pending_.back();
    logDebug("upstream.command").kv("account", opt_.accountName).kv("cmd", p.cmd.logText);
    sendChunk(p);
  }
}

void ImapClient::sendChunk(Pending& p) {
  // This chunk (sent on a "+" or as the first), then every following one
  // that needs no continuation.
  do {
    (void)stream_->write(p.cmd.chunks[p.nextChunk].bytes);
    ++p.nextChunk;
  } while (p.nextChunk < p.cmd.chunks.size() && !p.cmd.chunks[p.nextChunk].waitForContinuation);
}

void ImapClient::idleDone() {
  if (!stream_ || closed_) return;
  for (auto& p : pending_) {
    if (p.cmd.name != "IDLE") continue;
    (void)stream_->write(client::idleDone());
    idling_ = false;
    armTimer();
    return;
  }
}

void ImapClient::logout() {
  if (!stream_ || closed_) return;
  closed_ = true;
  onClosed_ = nullptr;
  uv_timer_stop(timer_);
  if (ready_) {
    if (idling_) (void)stream_->write(client::idleDone());
    (void)stream_->write(builder_.logout().wire());
  }
  stream_->close();
}

void ImapClient::afterGreeting(const client::Greeting& g) {
  if (g.status.status == client::StatusKind::Bye) return fail(ImapFailure::Kind::Refused, "server refused: " + describe(g.status));
  if (g.status.code.kind == client::CodeKind::Capability) setCapabilities(g.status.code.list);
  if (g.status.status == client::StatusKind::Preauth) {
    if (opt_.security == RelaySecurity::StartTls && !secured_)
      return fail(ImapFailure::Kind::Tls, "the server pre-authenticated in plaintext; refusing (STARTTLS configured)");
    return capabilityThen([this] { enable(); });
  }
  auto next = [this] {
    if (opt_.security == RelaySecurity::StartTls && !secured_) return startTls();
    authenticate();
  };
  if (caps_.empty()) return capabilityThen(next);
  next();
}

void ImapClient::capabilityThen(std::function<void()> next) {
  run(builder_.capability(), nullptr, [this, next = std::move(next)](const Result<client::StatusText>& r) {
    if (!r) return;  // fail() reported it
    if (r->status != client::StatusKind::Ok) return fail(ImapFailure::Kind::Protocol, "CAPABILITY: " + describe(*r));
    next();
  });
}

void ImapClient::startTls() {
  if (!hasCapability("STARTTLS"))
    return fail(ImapFailure::Kind::Tls, "the server does not offer STARTTLS; refusing to log in in plaintext");
  run(builder_.startTls(), nullptr, [this](const Result<client::StatusText>& r) {
    if (!r) return;
    if (r->status != client::StatusKind::Ok) return fail(ImapFailure::Kind::Tls, "STARTTLS refused: " + describe(*r));
    auto engine = tls::TlsEngine::client(*opt_.tls, opt_.host);
    if (!engine) return fail(ImapFailure::Kind::Tls, engine.error().message);
    client::ResponseParserOptions po;
    po.expectGreeting = false;
    parser_ = std::make_unique<client::ResponseParser>(po);
    caps_.clear();  // RFC 3501 6.2.1: forget what was said in plaintext
    handshaking_ = true;
    if (auto s = stream_->startTls(std::move(*engine)); !s) return fail(ImapFailure::Kind::Tls, s.error().message);
    armTimer();
  });
}

void ImapClient::authenticate() {
  // LOGINDISABLED forbids the LOGIN command, not AUTHENTICATE LOGIN.
  if (hasCapability("LOGINDISABLED") && opt_.auth == ImapAuth::Login && !hasCapability("AUTH=LOGIN"))
    return fail(ImapFailure::Kind::Auth, "the server disables LOGIN on this connection");
  Result<client::Command> cmd = mb::fail(ErrorKind::Internal, "no mechanism");
  const char* mech = "LOGIN";
  switch (opt_.auth) {
    case ImapAuth::Plain:
      mech = "PLAIN";
      // AUTHENTICATE PLAIN where offered, else the LOGIN command (same secret).
      cmd = hasCapability("AUTH=PLAIN") ? builder_.authenticatePlain(opt_.username, opt_.secret.reveal())
                                        : builder_.login(opt_.username, opt_.secret.reveal());
      break;
    case ImapAuth::Login:
      // SASL LOGIN where offered, else the LOGIN command (same secret).
      cmd = hasCapability("AUTH=LOGIN") ? builder_.authenticateLogin(opt_.username, opt_.secret.reveal())
                                        : builder_.login(opt_.username, opt_.secret.reveal());
      break;
    case ImapAuth::Xoauth2:
      mech = "XOAUTH2";
      cmd = builder_.authenticateXoauth2(opt_.username, opt_.secret.reveal());
      break;
    case ImapAuth::OAuthBearer:
      mech = "OAUTHBEARER";
      cmd = builder_.authenticateOauthBearer(opt_.username, opt_.secret.reveal(), opt_.host, opt_.port);
      break;
  }
  if (!cmd) return fail(ImapFailure::Kind::Auth, "cannot build the login command: " + cmd.error().message);
  std::string mechanism = mech;
  // Once the response chunks are sent, a further "+" is the server's error
  // challenge (XOAUTH2/OAUTHBEARER JSON): acknowledge it, the tagged NO follows.
  auto onChallenge = [this, mechanism](const client::Continuation&) {
    if (stream_) (void)stream_->write(client::saslFailureResponse(mechanism));
  };
  run(std::move(*cmd), nullptr, [this, mechanism](const Result<client::StatusText>& r) {
    if (!r) return;
    if (r->status != client::StatusKind::Ok) {
      // Detail for the log (the server's words, never ours: no secret);
      // UNAVAILABLE is a temporary server problem, not a wrong password.
      logWarn("upstream.login_failed")
          .kv("account", opt_.accountName)
          .kv("host", opt_.host)
          .kv("user", opt_.username)
          .kv("mechanism", mechanism)
          .kv("response", describe(*r));
      bool temporary = r->code.kind == client::CodeKind::Unavailable;
      return fail(temporary ? ImapFailure::Kind::Network : ImapFailure::Kind::Auth, "login refused: " + describe(*r));
    }
    // RFC 3501 7.1: capabilities may change after login.
    if (r->code.kind == client::CodeKind::Capability) return enable();
    capabilityThen([this] { enable(); });
  }, std::move(onChallenge));
}

void ImapClient::enable() {
  if (!opt_.enableCondstore || !hasCapability("ENABLE") || (!hasCapability("QRESYNC") && !hasCapability("CONDSTORE")))
    return becomeReady();
  auto cmd = builder_.enable({hasCapability("QRESYNC") ? "QRESYNC" : "CONDSTORE"});
  if (!cmd) return becomeReady();
  run(std::move(*cmd), nullptr, [this](const Result<client::StatusText>& r) {
    if (!r) return;
    becomeReady();
  });
}

void ImapClient::becomeReady() {
  ready_ = true;
  logInfo("upstream.logged_in")
      .kv("account", opt_.accountName)
      .kv("host", opt_.host)
      .kv("tls", secured_)
      .kv("qresync", qresync_)
      .kv("uidplus", hasCapability("UIDPLUS"))
      .kv("condstore", condstore_);
  if (auto f = std::move(onReady_)) f();
}

void ImapClient::setCapabilities(const std::vector<std::string>& caps) {
  caps_ = caps;
  auto f = client::ServerFeatures::fromCapabilities(caps_);
  f.utf8Accept = builder_.features().utf8Accept;
  builder_.setFeatures(f);
}

void ImapClient::fail(ImapFailure::Kind kind, const std::string& why) {
  if (closed_) return;
  closed_ = true;
  uv_timer_stop(timer_);
  connect_.reset();
  if (stream_) stream_->close();
  auto alive = alive_;
  std::string message = why;
  for (const auto& p : pending_)
    if (!p.lost.empty()) {
      // What the account shows: the reason, not only its consequence.
      message += " after a response that could not be read (" + p.lost + ")";
      break;
    }
  failAll(message);
  if (!*alive) return;
  if (auto f = std::move(onClosed_)) f(ImapFailure{kind, message});
}

void ImapClient::failAll(const std::string& why) {
  auto alive = alive_;
  std::deque<Pending> all = std::move(pending_);
  for (auto& p : queue_) all.push_back(std::move(p));
  pending_.clear();
  queue_.clear();
  for (auto& p : all) {
    if (p.onDone) p.onDone(mb::fail(ErrorKind::Unavailable, why));
    if (!*alive) return;
  }
}

}  // namespace mb::connectors
