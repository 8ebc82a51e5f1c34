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
  check_ = new uv_check_t;
  uv_check_init(loop_, check_);
  check_->data = this;
}

OutboxRelay::~OutboxRelay() {
  clients_.clear();
  finished_.clear();
  removeDelivered();
  if (check_) {
    uv_close(reinterpret_cast<uv_handle_t*>(check_), [](uv_handle_t* h) { delete reinterpret_cast<uv_check_t*>(h); });
    check_ = nullptr;
  }
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
  removeDelivered();
  clients_.clear();
  finished_.clear();
  inFlight_.clear();
  connectionCap_.clear();
}

void OutboxRelay::schedule(uint64_t delayMs) {
  if (stopped_ || !timer_) return;
  uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<OutboxRelay*>(t->data)->tick(); }, delayMs, 0);
}

const AccountConfig* OutboxRelay::accountConfig(int64_t accountId) {
  return accountConfigOf(config_, store_, accountId);
}

void OutboxRelay::tick() {
  finished_.clear();
  if (stopped_) return;
  int64_t now = store_.now();
  auto due = store::dueOutboxCounts(store_, now);
  if (!due) {
    logError("relay.outbox_unreadable").kv("error", due.error().message);
    return schedule(5000);
  }
  for (auto [accountId, count] : *due) {
    const AccountConfig* account = accountConfig(accountId);
    if (!account || !account->relay) {
      // The account lost its relay (config changed) after this was queued.
      auto rows = store::dueOutbox(store_, now, accountId);
      if (!rows) continue;
      for (auto& item : *rows) {
        if (inFlight_.count(item.id)) continue;
        for (auto& r : item.recipients) {
          if (r.state != store::RecipientState::Pending) continue;
          r.state = store::RecipientState::Failed;
          r.status = "5.3.5";
          r.diagnostic = "no upstream relay is configured for this account";
        }
        record(item, "no upstream relay configured", "");
      }
      continue;
    }
    std::vector<RelayClient*> idle;
    for (auto [it, end] = clients_.equal_range(accountId); it != end; ++it)
      if (!it->second->sending()) idle.push_back(it->second.get());
    for (RelayClient* c : idle) c->poke();  // may finish it (clientDone defers its destruction)
    // One more connection while the due rows outnumber the connections that
    // are not sending yet (each of those takes the next due row), up to the cap.
    size_t open = 0, starting = 0;
    for (auto [it, end] = clients_.equal_range(accountId); it != end; ++it) {
      ++open;
      starting += !it->second->sending();
    }
    size_t cap = account->relay->maxConnections;
    if (auto c = connectionCap_.find(accountId); c != connectionCap_.end()) cap = std::min(cap, c->second);
    auto unclaimed = static_cast<size_t>(std::max<int64_t>(count - static_cast<int64_t>(open - starting), 0));
    while (open < cap && starting < unclaimed) {
      auto client = std::make_unique<RelayClient>(*this, accountId, *account);
      RelayClient* raw = client.get();
      clients_.emplace(accountId, std::move(client));
      ++open;
      ++starting;
      raw->start();
    }
  }
  // Wake for the next row that comes due (new ones call wake()).
  if (auto next = store::nextOutboxAttempt(store_); next && *next) {
    int64_t wait = std::max<int64_t>(**next - store_.now(), 0);
    schedule(static_cast<uint64_t>(std::min<int64_t>(wait, 3600)) * 1000 + (wait > 0 ? 0 : 1000));
  }
}

std::optional<store::OutboxItem> OutboxRelay::nextFor(int64_t accountId, const std::set<int64_t>& tried) {
  if (stopped_) return std::nullopt;
  // The rows other connections are sending come first in due order; look
  // just past them by id (more only when this connection already tried
  // those), then read the one row this connection takes.
  int64_t limit = static_cast<int64_t>(inFlight_.size()) + 8;
  int64_t now = store_.now();
  for (;;) {
    auto due = store::dueOutboxIds(store_, now, accountId, limit);
    if (!due) return std::nullopt;
    for (int64_t id : *due) {
      if (tried.count(id) || inFlight_.count(id)) continue;
      auto item = store::findOutbox(store_, id);
      if (!item) return std::nullopt;
      if (*item) return std::move(**item);
    }
    if (static_cast<int64_t>(due->size()) < limit) return std::nullopt;
    limit *= 2;
  }
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
  if (!pending && !item.hasFailed() && !(account && account->sentCopy == SentCopy::Sent)) {
    // Delivered with nothing left to do: the row goes, in one commit with
    // those of the other messages delivered in this loop turn.
    item.attempts += 1;
    logInfo("relay.attempt")
        .kv("outbox_id", item.id)
        .kv("attempt", item.attempts)
        .kv("sent", item.recipients.size())
        .kv("failed", 0)
        .kv("pending", 0)
        .kv("next_in_s", 0)
        .kv("error", error);
    inFlight_.insert(item.id);
    delivered_.push_back(item.id);
    if (check_) uv_check_start(check_, [](uv_check_t* c) { static_cast<OutboxRelay*>(c->data)->removeDelivered(); });
    return;
  }
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

void OutboxRelay::connectionFailed(RelayClient* client, int64_t accountId, const std::set<int64_t>& tried,
                                   const std::string& error, const std::string& remoteHost) {
  size_t others = 0;
  for (auto [it, end] = clients_.equal_range(accountId); it != end; ++it) others += it->second.get() != client;
  if (others > 0) {
    connectionCap_[accountId] = others;
    return;
  }
  auto due = store::dueOutbox(store_, store_.now(), accountId);
  if (!due) return;
  for (auto& item : *due) {
    if (tried.count(item.id) || inFlight_.count(item.id)) continue;
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

void OutboxRelay::removeDelivered() {
  if (check_) uv_check_stop(check_);
  if (delivered_.empty()) return;
  std::vector<int64_t> ids = std::move(delivered_);
  delivered_.clear();
  auto removed = store::removeOutbox(store_, ids);
  if (!removed) logWarn("relay.remove_failed").kv("messages", ids.size()).kv("error", removed.error().message);
  for (int64_t id : ids) {
    inFlight_.erase(id);
    if (removed) {
      logInfo("relay.delivered").kv("outbox_id", id);
      continue;
    }
    // Never send a delivered message again: one by one, else mark it done
    // (a copying row is finished at the next start without a second copy).
    if (auto s = store::removeOutbox(store_, std::vector<int64_t>{id}); s)
      logInfo("relay.delivered").kv("outbox_id", id);
    else if (auto c = store::setOutboxState(store_, id, store::kOutboxCopying); !c)
      logError("relay.state_failed").kv("outbox_id", id).kv("error", c.error().message);
  }
}

void OutboxRelay::clientDone(RelayClient* client) {
  for (auto it = clients_.begin(); it != clients_.end(); ++it) {
    if (it->second.get() != client) continue;
    int64_t accountId = it->first;
    finished_.push_back(std::move(it->second));
    clients_.erase(it);
    if (!clients_.count(accountId)) connectionCap_.erase(accountId);
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
  // A retry usually follows a fix upstream, which a server may apply only to
  // new sessions (Postfix reloads its tables per session): no idle reuse.
  if (auto item = store::findOutbox(store_, id); item && *item)
    for (auto [it, end] = clients_.equal_range((*item)->accountId); it != end; ++it) it->second->leaveIfIdle();
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
