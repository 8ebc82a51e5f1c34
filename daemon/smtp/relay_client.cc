// Upstream SMTP client of the outbox relay (see relay_client.h).
#include "daemon/smtp/relay_client.h"

#include <cstdio>

#include "daemon/log/log.h"
#include "daemon/smtp/outbox_relay.h"
#include "daemon/tls/tls_engine.h"
#include "daemon/util/password_command.h"
#include "protocols/smtp/client.h"

namespace mb::smtp {
namespace {

// How long a connection waits for more mail once none is due: a new one
// costs a TCP, TLS and AUTH round trip each, and mail often comes in bursts.
constexpr uint64_t kIdleMs = 2000;

bool hasHighBit(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return true;
  return false;
}

std::string describe(const Reply& r) {
  std::string s = std::to_string(r.code);
  if (!r.enhanced.empty()) s += " " + r.enhanced;
  std::string text = r.text();
  if (!text.empty()) s += " " + text;
  return s;
}

}  // namespace

RelayClient::RelayClient(OutboxRelay& relay, int64_t accountId, const AccountConfig& account)
    : relay_(relay), accountId_(accountId), accountName_(account.name), cfg_(*account.relay) {}

RelayClient::~RelayClient() {
  connect_.reset();
  stream_.reset();
  if (timer_) {
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
}

void RelayClient::start() {
  timer_ = new uv_timer_t;
  uv_timer_init(relay_.loop_, timer_);
  timer_->data = this;

  if (cfg_.security != RelaySecurity::None) {
    tls::ClientTlsOptions o;
    o.caFile = cfg_.caFile;
    o.pinSha256 = cfg_.pinSha256;
    o.hostname = cfg_.host;
    auto ctx = tls::ClientTlsContext::create(o);
    if (!ctx) return fail("tls setup: " + ctx.error().message);
    tls_ = std::move(*ctx);
  }
  if (cfg_.auth != RelayAuth::None) {
    auto s = resolveSecret(cfg_.password, cfg_.passwordCommand);
    if (!s) return fail(s.error().message);
    secret_ = std::move(*s);
  }
  ConnectOptions options;
  options.timeout = std::chrono::milliseconds(30000);
  if (cfg_.security == RelaySecurity::Tls) options.tls = &*tls_;
  logDebug("relay.connecting").kv("account", accountName_).kv("host", cfg_.host).kv("port", cfg_.port);
  connect_ = connectTcp(relay_.loop_, cfg_.host, cfg_.port, options,
                        [this](Result<std::unique_ptr<TcpStream>> s) { onConnected(std::move(s)); });
}

void RelayClient::onConnected(Result<std::unique_ptr<TcpStream>> stream) {
  connect_.reset();
  if (!stream) return fail(stream.error().message);
  stream_ = std::move(*stream);
  secured_ = cfg_.security == RelaySecurity::Tls;
  step_ = Step::Greeting;
  stream_->start(TcpStreamCallbacks{
      [this](std::string_view bytes) { onData(bytes); },
      [this](const CloseReason& why) {
        if (step_ == Step::Done) return;
        if (step_ == Step::Quit || step_ == Step::Idle) return done();  // nothing was in flight
        fail(why.message.empty() ? std::string("connection closed by the server") : why.message);
      },
      [this] { onSecure(); },
      nullptr});
  uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<RelayClient*>(t->data)->fail("timed out waiting for the server"); },
                 300000, 0);
}

void RelayClient::send(std::string_view bytes, uint64_t timeoutMs) {
  if (!stream_) return;
  (void)stream_->write(bytes);
  uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<RelayClient*>(t->data)->fail("timed out waiting for the server"); },
                 timeoutMs, 0);
}

void RelayClient::onData(std::string_view bytes) {
  if (step_ == Step::Done) return;
  if (step_ == Step::Handshake) return fail("the server sent plaintext after agreeing to STARTTLS");
  parser_.feed(bytes);
  while (step_ != Step::Done) {
    auto r = parser_.next();
    if (!r) return fail("malformed reply: " + r.error().message);
    if (!*r) break;
    onReply(**r);
  }
}

void RelayClient::onSecure() {
  if (step_ != Step::Handshake) return;
  secured_ = true;
  step_ = Step::Ehlo;
  send(client::ehlo(cfg_.ehlo));
}

void RelayClient::onReply(const Reply& reply) {
  switch (step_) {
    case Step::Greeting:
      if (reply.code != 220) return fail("greeting: " + describe(reply));
      step_ = Step::Ehlo;
      return send(client::ehlo(cfg_.ehlo));
    case Step::Ehlo:
      return afterEhlo(reply);
    case Step::StartTls: {
      if (reply.code != 220) return fail("STARTTLS refused: " + describe(reply));
      auto engine = tls::TlsEngine::client(*tls_, cfg_.host);
      if (!engine) return fail(engine.error().message);
      step_ = Step::Handshake;
      parser_ = ReplyParser{};
      if (auto s = stream_->startTls(std::move(*engine)); !s) return fail(s.error().message);
      return;
    }
    case Step::Auth:
      if (reply.code == 334 && cfg_.auth == RelayAuth::Xoauth2) return send("\r\n");  // RFC 7628 error challenge
      if (reply.code != 235) return fail("authentication failed: " + describe(reply));
      return nextMessage();
    case Step::AuthUser:
      if (reply.code != 334) return fail("authentication failed: " + describe(reply));
      step_ = Step::AuthPassword;
      return send(client::authResponse(cfg_.username));
    case Step::AuthPassword:
      if (reply.code != 334) return fail("authentication failed: " + describe(reply));
      step_ = Step::Auth;
      return send(client::authResponse(secret_.reveal()));
    case Step::Txn:
      return onTransactionReply(reply);
    case Step::Body: {
      for (size_t i : accepted_) applyToRecipient(i, reply);
      if (!reply.positive()) lastError_ = "end of data: " + describe(reply);
      return endTransaction(!reply.positive());
    }
    case Step::BodyDiscarded:
      return endTransaction(true);
    case Step::Rset:
      if (!reply.positive()) return fail("RSET: " + describe(reply));
      return nextMessage();
    case Step::Quit:
    case Step::Idle:  // e.g. 421 on the server's idle timeout: nothing was in flight
      step_ = Step::Done;
      return done();
    default:
      return fail("unexpected reply: " + describe(reply));
  }
}

void RelayClient::afterEhlo(const Reply& reply) {
  if (!reply.positive()) return fail("EHLO: " + describe(reply));
  caps_ = Capabilities::fromEhlo(reply);
  if (cfg_.security == RelaySecurity::StartTls && !secured_) {
    // Never fall back to plaintext when STARTTLS was configured.
    if (!caps_.has("STARTTLS")) return fail("the server does not offer STARTTLS; refusing to send in plaintext");
    step_ = Step::StartTls;
    return send(client::startTls());
  }
  authenticate();
}

void RelayClient::authenticate() {
  switch (cfg_.auth) {
    case RelayAuth::None:
      return nextMessage();
    case RelayAuth::Plain:
      step_ = Step::Auth;
      return send(client::authPlain(cfg_.username, secret_.reveal()));
    case RelayAuth::Login:
      step_ = Step::AuthUser;
      return send(client::authLogin());
    case RelayAuth::Xoauth2:
      step_ = Step::Auth;
      return send(client::authXoauth2(cfg_.username, secret_.reveal()));
  }
}

void RelayClient::nextMessage() {
  item_ = relay_.nextFor(accountId_, tried_);
  if (!item_) {
    if (step_ == Step::Idle) return;  // a poke that found nothing does not extend the wait
    step_ = Step::Idle;
    uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<RelayClient*>(t->data)->quit(); }, kIdleMs, 0);
    return;
  }
  tried_.insert(item_->id);
  relay_.inFlight_.insert(item_->id);
  auto body = store::outboxBody(relay_.store_, *item_);
  if (!body) {
    lastError_ = "stored message unreadable: " + body.error().message;
    logError("relay.body_unreadable").kv("outbox_id", item_->id).kv("error", body.error().message);
    return endTransaction(false);
  }
  body_ = std::move(*body);
  beginTransaction();
}

void RelayClient::poke() {
  if (step_ == Step::Idle) nextMessage();
}

void RelayClient::quit() {
  if (step_ != Step::Idle) return;
  step_ = Step::Quit;
  send(client::quit(), 10000);
}

void RelayClient::beginTransaction() {
  step_ = Step::Txn;
  lastError_.clear();
  accepted_.clear();
  mailRefused_.reset();
  expect_.clear();
  unsent_.clear();
  pipelining_ = caps_.has("PIPELINING");

  client::MailOptions mo;
  if (caps_.sizeLimit()) mo.size = body_.size();
  bool utf8 = hasHighBit(item_->mailFrom);
  for (const auto& r : item_->recipients) utf8 = utf8 || hasHighBit(r.address);
  mo.eightBitMime = caps_.has("8BITMIME") && hasHighBit(body_);
  mo.smtputf8 = utf8 && caps_.has("SMTPUTF8");
  auto mail = client::mailFrom(item_->mailFrom, mo);
  if (!mail) {
    lastError_ = mail.error().message;
    return endTransaction(false);
  }
  unsent_.push_back(*mail);
  expect_.push_back({Expect::Mail});
  for (size_t i = 0; i < item_->recipients.size(); ++i) {
    if (item_->recipients[i].state != store::RecipientState::Pending) continue;
    auto rcpt = client::rcptTo(item_->recipients[i].address);
    if (!rcpt) {
      auto& r = item_->recipients[i];
      r.state = store::RecipientState::Failed;
      r.code = 553;
      r.status = "5.1.3";
      r.diagnostic = "bad recipient address syntax";
      continue;
    }
    unsent_.push_back(*rcpt);
    expect_.push_back({Expect::Rcpt, i});
  }
  unsent_.push_back(client::data());
  expect_.push_back({Expect::Data});
  if (pipelining_) {
    std::string all;
    for (auto& c : unsent_) all += c;
    unsent_.clear();
    send(all);
  } else {
    sendNextCommand();
  }
}

void RelayClient::sendNextCommand() {
  if (unsent_.empty()) return;
  std::string c = std::move(unsent_.front());
  unsent_.pop_front();
  send(c);
}

void RelayClient::applyToRecipient(size_t index, const Reply& reply) {
  auto& r = item_->recipients[index];
  r.code = reply.code;
  r.status = reply.enhanced;
  r.diagnostic = reply.text();
  if (reply.positive()) r.state = store::RecipientState::Sent;
  else if (reply.permanent()) r.state = store::RecipientState::Failed;
  else r.state = store::RecipientState::Pending;
}

void RelayClient::onTransactionReply(const Reply& reply) {
  if (expect_.empty()) return fail("unexpected reply: " + describe(reply));
  Expect e = expect_.front();
  expect_.pop_front();
  switch (e.kind) {
    case Expect::Mail:
      if (!reply.positive()) {
        mailRefused_ = reply;
        lastError_ = "MAIL FROM: " + describe(reply);
        for (const auto& x : expect_)
          if (x.kind == Expect::Rcpt) applyToRecipient(x.index, reply);
        if (!pipelining_) {
          expect_.clear();
          unsent_.clear();
          return endTransaction(true);
        }
      }
      break;
    case Expect::Rcpt:
      if (mailRefused_) break;  // answers to RCPTs of a refused transaction mean nothing
      if (reply.positive()) {
        accepted_.push_back(e.index);
      } else {
        applyToRecipient(e.index, reply);
        lastError_ = "RCPT TO:<" + item_->recipients[e.index].address + ">: " + describe(reply);
      }
      if (!pipelining_ && expect_.size() == 1 && accepted_.empty()) {
        expect_.clear();
        unsent_.clear();
        return endTransaction(true);
      }
      break;
    case Expect::Data:
      if (reply.code == 354) {
        if (mailRefused_ || accepted_.empty()) {
          // A pipelining server let DATA through with no recipient: end it empty.
          step_ = Step::BodyDiscarded;
          return send(".\r\n");
        }
        auto encoded = client::dotStuff(body_);
        if (!encoded) {
          lastError_ = "stored message is corrupt: " + encoded.error().message;
          step_ = Step::BodyDiscarded;
          return send(".\r\n");
        }
        step_ = Step::Body;
        return send(*encoded, 600000);
      }
      if (!mailRefused_ && !accepted_.empty()) {
        for (size_t i : accepted_) applyToRecipient(i, reply);
        lastError_ = "DATA: " + describe(reply);
      }
      return endTransaction(true);
  }
  if (!pipelining_) sendNextCommand();
}

void RelayClient::endTransaction(bool needRset) {
  if (item_) {
    relay_.inFlight_.erase(item_->id);
    relay_.record(*item_, lastError_, cfg_.host);
    // A finished row is gone (or failed) for good, and SQLite may give its id
    // to the next queued message, which this connection has not tried.
    if (!item_->hasPending()) tried_.erase(item_->id);
    item_.reset();
  }
  body_.clear();
  if (needRset) {
    step_ = Step::Rset;
    return send(client::rset(), 30000);
  }
  nextMessage();
}

void RelayClient::fail(const std::string& why) {
  if (step_ == Step::Done) return;
  step_ = Step::Done;
  logWarn("relay.connection_failed").kv("account", accountName_).kv("host", cfg_.host).kv("error", why);
  if (item_) {
    relay_.inFlight_.erase(item_->id);
    // Recipients already accepted by a finished DATA are recorded; the rest
    // of this transaction is undecided and stays pending.
    for (auto& r : item_->recipients) {
      if (r.state != store::RecipientState::Pending) continue;
      r.code = 0;
      r.status.clear();
      r.diagnostic = why;
    }
    relay_.record(*item_, why, cfg_.host);
    item_.reset();
  }
  relay_.connectionFailed(this, accountId_, tried_, why, cfg_.host);
  done();
}

void RelayClient::done() {
  step_ = Step::Done;
  if (timer_) uv_timer_stop(timer_);
  if (stream_) stream_->close();
  relay_.clientDone(this);  // may destroy *this later, never now
}

}  // namespace mb::smtp
