// Outbox relay scheduling, attempt bookkeeping, bounces and Sent copies (see
// outbox_relay.h); the SMTP conversation itself is in relay_client.cc.
#include "daemon/smtp/outbox_relay.h"

#include <nlohmann/json.hpp>

#include "daemon/log/log.h"
#include "daemon/smtp/dsn.h"
#include "daemon/smtp/relay_client.h"
#include "daemon/smtp/submission.h"
#include "daemon/util/fs.h"

namespace mb::smtp {

OutboxRelay::OutboxRelay(uv_loop_t* loop, const Config& config, store::Store& store)
    : loop_(loop), config_(config), store_(store), rng_(std::random_device{}()) {
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
}

OutboxRelay::~OutboxRelay() {
  clients_.clear();
  finished_.clear();
  if (timer_) {
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
}

void OutboxRelay::start() {
  // Rows a crash caught between "every recipient final" and the Sent copy /
  // bounce: finish them without a second Sent copy.
  if (auto rows = store::copyingOutbox(store_)) {
    for (auto& item : *rows) finalize(item, false, "");
  }
  schedule(0);
}

void OutboxRelay::wake() {
  if (!stopped_) schedule(0);
}

void OutboxRelay::shutdown() {
  stopped_ = true;
  if (timer_) uv_timer_stop(timer_);
  clients_.clear();
  finished_.clear();
  inFlight_.clear();
}

void OutboxRelay::schedule(uint64_t delayMs) {
  if (stopped_ || !timer_) return;
  uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<OutboxRelay*>(t->data)->tick(); }, delayMs, 0);
}

const AccountConfig* OutboxRelay::accountConfig(int64_t accountId) {
  auto rows = store_.listAccounts();
  if (!rows) return nullptr;
  for (const auto& row : *rows) {
    if (row.id != accountId) continue;
    for (const auto& a : config_.accounts)
      if (a.name == row.name) return &a;
  }
  return nullptr;
}

void OutboxRelay::tick() {
  finished_.clear();
  if (stopped_) return;
  int64_t now = store_.now();
  auto due = store::dueOutbox(store_, now);
  if (!due) {
    logError("relay.outbox_unreadable").kv("error", due.error().message);
    return schedule(5000);
  }
  for (auto& item : *due) {
    if (inFlight_.count(item.id) || clients_.count(item.accountId)) continue;
    const AccountConfig* account = accountConfig(item.accountId);
    if (!account || !account->relay) {
      // The account lost its relay (config changed) after this was queued.
      for (auto& r : item.recipients) {
        if (r.state != store::RecipientState::Pending) continue;
        r.state = store::RecipientState::Failed;
        r.status = "5.3.5";
        r.diagnostic = "no upstream relay is configured for this account";
      }
      record(item, "no upstream relay configured", "");
      continue;
    }
    auto client = std::make_unique<RelayClient>(*this, item.accountId, *account);
    RelayClient* raw = client.get();
    clients_.emplace(item.accountId, std::move(client));
    raw->start();
  }
  // Wake for the next row that comes due (new ones call wake()).
  if (auto next = store::nextOutboxAttempt(store_); next && *next) {
    int64_t wait = std::max<int64_t>(**next - store_.now(), 0);
    schedule(static_cast<uint64_t>(std::min<int64_t>(wait, 3600)) * 1000 + (wait > 0 ? 0 : 1000));
  }
}

std::optional<store::OutboxItem> OutboxRelay::nextFor(int64_t accountId, const std::set<int64_t>& tried) {
  if (stopped_) return std::nullopt;
  auto due = store::dueOutbox(store_, store_.now());
  if (!due) return std::nullopt;
  for (auto& item : *due)
    if (item.accountId == accountId && !tried.count(item.id) && !inFlight_.count(item.id)) return std::move(item);
  return std::nullopt;
}

void OutboxRelay::record(store::OutboxItem& item, const std::string& error, const std::string& remoteHost) {
  int64_t now = store_.now();
  const AccountConfig* account = accountConfig(item.accountId);
  uint64_t maxAge = account ? account->retryMaxAgeSeconds : 0;
  bool expired = now - item.createdAt >= static_cast<int64_t>(maxAge);
  if (item.hasPending() && expired) {
    for (auto& r : item.recipients) {
      if (r.state != store::RecipientState::Pending) continue;
      r.state = store::RecipientState::Failed;
      std::string last = r.diagnostic.empty() ? error : r.diagnostic;
      r.code = 0;
      r.status = "4.4.7";
      r.diagnostic = "delivery time expired" + (last.empty() ? std::string() : "; last error: " + last);
    }
  }
  bool pending = item.hasPending();
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  int64_t delay = store::retryDelaySeconds(item.attempts + 1, config_.smtpLimits.retryInitialSeconds,
                                           config_.smtpLimits.retryMaxSeconds, unit(rng_));
  std::string_view state = pending ? store::kOutboxQueued : store::kOutboxCopying;
  if (auto s = store::recordOutboxAttempt(store_, item.id, item.recipients, now + delay, error, state); !s) {
    // Deleted through the API meanwhile, or the store failed: nothing to add.
    logWarn("relay.record_failed").kv("outbox_id", item.id).kv("error", s.error().message);
    return;
  }
  item.attempts += 1;
  item.lastError = error;
  size_t sent = 0, failed = 0;
  for (const auto& r : item.recipients) {
    sent += r.state == store::RecipientState::Sent;
    failed += r.state == store::RecipientState::Failed;
  }
  logInfo("relay.attempt")
      .kv("outbox_id", item.id)
      .kv("attempt", item.attempts)
      .kv("sent", sent)
      .kv("failed", failed)
      .kv("pending", item.recipients.size() - sent - failed)
      .kv("next_in_s", pending ? delay : 0)
      .kv("error", error);
  if (!pending) finalize(item, true, remoteHost);
}

void OutboxRelay::connectionFailed(int64_t accountId, const std::set<int64_t>& tried, const std::string& error,
                                   const std::string& remoteHost) {
  auto due = store::dueOutbox(store_, store_.now());
  if (!due) return;
  for (auto& item : *due) {
    if (item.accountId != accountId || tried.count(item.id) || inFlight_.count(item.id)) continue;
    for (auto& r : item.recipients)
      if (r.state == store::RecipientState::Pending) r.diagnostic = error;
    record(item, error, remoteHost);
  }
}

void OutboxRelay::finalize(store::OutboxItem& item, bool copy, const std::string& remoteHost) {
  const AccountConfig* account = accountConfig(item.accountId);
  bool anySent = false;
  for (const auto& r : item.recipients) anySent = anySent || r.state == store::RecipientState::Sent;
  std::optional<std::string> body;
  if ((copy && anySent && account && account->sentCopy == SentCopy::Sent) || item.hasFailed()) {
    auto b = store::outboxBody(store_, item);
    if (b) body = std::move(*b);
    else logError("relay.body_unreadable").kv("outbox_id", item.id).kv("error", b.error().message);
  }
  if (copy && anySent && account && account->sentCopy == SentCopy::Sent && body) {
    if (auto s = deliverLocal(store_, item.accountId, "Sent", "\\Sent", *body, store::kFlagSeen); !s)
      logWarn("relay.sent_copy_failed").kv("outbox_id", item.id).kv("error", s.error().message);
  }
  if (item.hasFailed()) {
    DsnInput dsn;
    dsn.sender = item.mailFrom;
    dsn.arrivalDate = item.createdAt;
    dsn.now = store_.now();
    dsn.uniqueId = std::to_string(item.id) + "." + randomHex(6);
    dsn.original = body ? std::string_view(*body) : std::string_view();
    for (const auto& r : item.recipients) {
      if (r.state != store::RecipientState::Failed) continue;
      dsn.failed.push_back({r.address, r.status, r.code, r.diagnostic, r.code ? remoteHost : ""});
    }
    std::string bounce = buildDsn(dsn);
    if (auto s = deliverLocal(store_, item.accountId, "INBOX", "", bounce); !s)
      logError("relay.dsn_failed").kv("outbox_id", item.id).kv("error", s.error().message);
    if (auto s = store::setOutboxState(store_, item.id, store::kOutboxFailed); !s)
      logWarn("relay.state_failed").kv("outbox_id", item.id).kv("error", s.error().message);
    logInfo("relay.bounced").kv("outbox_id", item.id).kv("failed", dsn.failed.size());
    return;
  }
  if (auto s = store::removeOutbox(store_, item.id); !s)
    logWarn("relay.remove_failed").kv("outbox_id", item.id).kv("error", s.error().message);
  else
    logInfo("relay.delivered").kv("outbox_id", item.id).kv("recipients", item.recipients.size());
}

void OutboxRelay::clientDone(RelayClient* client) {
  for (auto it = clients_.begin(); it != clients_.end(); ++it) {
    if (it->second.get() != client) continue;
    finished_.push_back(std::move(it->second));
    clients_.erase(it);
    break;
  }
  schedule(0);  // its account may have more due now; also frees it
}

Result<std::string> OutboxRelay::listJson() {
  auto items = store::listOutbox(store_);
  if (!items) return std::unexpected(items.error());
  auto accounts = store_.listAccounts();
  if (!accounts) return std::unexpected(accounts.error());
  using nlohmann::json;
  json arr = json::array();
  for (const auto& it : *items) {
    std::string name;
    for (const auto& a : *accounts)
      if (a.id == it.accountId) name = a.name;
    json rcpts = json::array();
    for (const auto& r : it.recipients) {
      json o{{"address", r.address}, {"state", store::recipientStateName(r.state)}};
      if (r.code) o["code"] = r.code;
      if (!r.status.empty()) o["status"] = r.status;
      if (!r.diagnostic.empty()) o["diagnostic"] = r.diagnostic;
      rcpts.push_back(std::move(o));
    }
    arr.push_back(json{{"id", it.id},
                       {"account", name},
                       {"account_id", it.accountId},
                       {"mail_from", it.mailFrom},
                       {"recipients", rcpts},
                       {"size", it.size},
                       {"created_at", it.createdAt},
                       {"attempts", it.attempts},
                       {"next_attempt", it.nextAttempt},
                       {"last_error", it.lastError.empty() ? json(nullptr) : json(it.lastError)},
                       {"state", it.state}});
  }
  return json{{"outbox", arr}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<std::string> OutboxRelay::retry(int64_t id) {
  if (auto s = store::retryOutbox(store_, id, store_.now()); !s) return std::unexpected(s.error());
  logInfo("relay.retry_requested").kv("outbox_id", id);
  wake();
  return std::string("{\"retried\":true}");
}

Result<std::string> OutboxRelay::remove(int64_t id) {
  if (inFlight_.count(id))
    return fail(ErrorKind::Conflict, "outbox message " + std::to_string(id) + " is being sent right now");
  if (auto s = store::removeOutbox(store_, id); !s) return std::unexpected(s.error());
  logInfo("relay.removed").kv("outbox_id", id);
  return std::string("{\"deleted\":true}");
}

}  // namespace mb::smtp
