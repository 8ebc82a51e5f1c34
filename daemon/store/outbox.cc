// Outbox rows (see outbox.h). Recipients are one JSON array per row so that a
// delivery attempt's per-recipient results commit together with its bookkeeping.
#include "daemon/store/outbox.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace mb::store {
namespace {

using nlohmann::json;

RecipientState parseState(std::string_view s) {
  if (s == "sent") return RecipientState::Sent;
  if (s == "failed") return RecipientState::Failed;
  return RecipientState::Pending;
}

std::string recipientsJson(const std::vector<OutboxRecipient>& recipients) {
  json arr = json::array();
  for (const auto& r : recipients) {
    json o{{"address", r.address}, {"state", recipientStateName(r.state)}};
    if (r.code) o["code"] = r.code;
    if (!r.status.empty()) o["status"] = r.status;
    if (!r.diagnostic.empty()) o["diagnostic"] = r.diagnostic;
    arr.push_back(std::move(o));
  }
  // Replace, never throw: a server's reply text may hold bytes that are not UTF-8.
  return arr.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<std::vector<OutboxRecipient>> parseRecipients(const std::string& text) {
  json arr = json::parse(text, nullptr, false);
  if (arr.is_discarded() || !arr.is_array()) return fail(ErrorKind::Corrupt, "outbox: recipients are not a JSON array");
  std::vector<OutboxRecipient> out;
  for (const auto& o : arr) {
    if (!o.is_object() || !o.contains("address") || !o["address"].is_string())
      return fail(ErrorKind::Corrupt, "outbox: malformed recipient");
    OutboxRecipient r;
    r.address = o["address"].get<std::string>();
    r.state = parseState(o.value("state", std::string("pending")));
    r.code = o.value("code", 0);
    r.status = o.value("status", std::string());
    r.diagnostic = o.value("diagnostic", std::string());
    out.push_back(std::move(r));
  }
  return out;
}

constexpr const char* kColumns =
    "SELECT id, account_id, mail_from, recipients, blob_id, size, created_at, attempts, next_attempt, "
    "last_error, state FROM outbox ";

Result<std::vector<OutboxItem>> query(Store& store, std::string_view where, std::vector<int64_t> args) {
  auto st = store.db().prepare(std::string(kColumns) + std::string(where));
  if (!st) return propagate(st);
  for (size_t i = 0; i < args.size(); ++i) st->bind(static_cast<int>(i + 1), args[i]);
  std::vector<OutboxItem> items;
  auto rows = st->forEachRow([&](Stmt& r) -> Status {
    OutboxItem it;
    it.id = r.columnInt64(0);
    it.accountId = r.columnInt64(1);
    it.mailFrom = r.columnText(2);
    auto rcpts = parseRecipients(r.columnText(3));
    if (!rcpts) return propagate(rcpts);
    it.recipients = std::move(*rcpts);
    it.blobId = r.columnText(4);
    it.size = static_cast<uint64_t>(r.columnOptInt64(5).value_or(0));
    it.createdAt = r.columnInt64(6);
    it.attempts = r.columnInt64(7);
    it.nextAttempt = r.columnInt64(8);
    it.lastError = r.columnText(9);
    it.state = r.columnText(10);
    items.push_back(std::move(it));
    return {};
  });
  if (!rows) return propagate(rows);
  return items;
}

}  // namespace

const char* recipientStateName(RecipientState state) {
  switch (state) {
    case RecipientState::Pending: return "pending";
    case RecipientState::Sent: return "sent";
    case RecipientState::Failed: return "failed";
  }
  return "pending";
}

bool OutboxItem::hasPending() const {
  return std::any_of(recipients.begin(), recipients.end(),
                     [](const OutboxRecipient& r) { return r.state == RecipientState::Pending; });
}

bool OutboxItem::hasFailed() const {
  return std::any_of(recipients.begin(), recipients.end(),
                     [](const OutboxRecipient& r) { return r.state == RecipientState::Failed; });
}

Result<std::string> writeOutboxBody(BlobStore& blobs, std::string_view bytes) { return blobs.put(bytes, true); }

namespace {

Result<int64_t> insertOutboxRow(Store& store, const WrittenOutboxMessage& m, int64_t now) {
  if (m.message.recipients.empty()) return fail(ErrorKind::User, "outbox: a message needs at least one recipient");
  std::vector<OutboxRecipient> rcpts;
  for (const auto& a : m.message.recipients) rcpts.push_back(OutboxRecipient{a});
  auto st = store.db().prepare(
      "INSERT INTO outbox (account_id, mail_from, recipients, blob_id, size, created_at, attempts, next_attempt, state) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?6, 'queued')");
  if (!st) return propagate(st);
  auto ran = st->bind(1, m.message.accountId)
                 .bind(2, m.message.mailFrom)
                 .bind(3, recipientsJson(rcpts))
                 .bind(4, m.blobId)
                 .bind(5, static_cast<int64_t>(m.message.bytes.size()))
                 .bind(6, now)
                 .run();
  if (!ran) return propagate(ran);
  return store.db().lastInsertRowid();
}

// All rows in one transaction; an empty result means it did not commit.
std::vector<Result<int64_t>> commitTogether(Store& store, const std::vector<WrittenOutboxMessage>& batch, int64_t now) {
  auto tx = Transaction::begin(store.db());
  if (!tx) return {};
  std::vector<Result<int64_t>> ids;
  for (const auto& m : batch) {
    auto id = insertOutboxRow(store, m, now);
    if (!id) return {};
    ids.push_back(*id);
  }
  if (!tx->commit()) return {};
  return ids;
}

}  // namespace

std::vector<Result<int64_t>> commitOutbox(Store& store, const std::vector<WrittenOutboxMessage>& batch) {
  int64_t now = store.now();
  std::vector<Result<int64_t>> ids = commitTogether(store, batch, now);
  if (ids.size() != batch.size()) {
    // Each alone: a single INSERT is its own transaction, committed (and the
    // WAL fsync'd) when run() returns.
    ids.clear();
    for (const auto& m : batch) ids.push_back(insertOutboxRow(store, m, now));
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    store.blobs().unpin(batch[i].blobId);
    // The blob may be shared with a stored message; only an orphan goes.
    if (!ids[i]) store.releaseBlob(batch[i].blobId);
  }
  return ids;
}

Result<int64_t> enqueueOutbox(Store& store, const NewOutboxMessage& message) {
  if (message.recipients.empty()) return fail(ErrorKind::User, "outbox: a message needs at least one recipient");
  auto blobId = writeOutboxBody(store.blobs(), message.bytes);
  if (!blobId) return propagate(blobId);
  auto ids = commitOutbox(store, {WrittenOutboxMessage{message, *blobId}});
  return std::move(ids.front());
}

Result<std::vector<OutboxItem>> listOutbox(Store& store) { return query(store, "ORDER BY id", {}); }

Result<std::optional<OutboxItem>> findOutbox(Store& store, int64_t id) {
  auto items = query(store, "WHERE id = ?1", {id});
  if (!items) return propagate(items);
  if (items->empty()) return std::optional<OutboxItem>();
  return std::optional<OutboxItem>(std::move(items->front()));
}

Result<std::vector<OutboxItem>> dueOutbox(Store& store, int64_t now, std::optional<int64_t> accountId,
                                          std::optional<int64_t> limit) {
  // ?2 = -1 means any account; LIMIT -1 means no limit.
  return query(store,
               "WHERE state = 'queued' AND next_attempt <= ?1 AND (?2 = -1 OR account_id = ?2) "
               "ORDER BY next_attempt, id LIMIT ?3",
               {now, accountId.value_or(-1), limit.value_or(-1)});
}

Result<std::vector<int64_t>> dueOutboxIds(Store& store, int64_t now, int64_t accountId, int64_t limit) {
  auto st = store.db().prepare(
      "SELECT id FROM outbox WHERE state = 'queued' AND next_attempt <= ?1 AND account_id = ?2 "
      "ORDER BY next_attempt, id LIMIT ?3");
  if (!st) return propagate(st);
  st->bind(1, now).bind(2, accountId).bind(3, limit);
  std::vector<int64_t> out;
  auto rows = st->forEachRow([&](Stmt& r) {
    out.push_back(r.columnInt64(0));
  });
  if (!rows) return propagate(rows);
  return out;
}

Result<std::vector<std::pair<int64_t, int64_t>>> dueOutboxCounts(Store& store, int64_t now) {
  auto st = store.db().prepare(
      "SELECT account_id, count(*) FROM outbox WHERE state = 'queued' AND next_attempt <= ?1 GROUP BY account_id");
  if (!st) return propagate(st);
  st->bind(1, now);
  std::vector<std::pair<int64_t, int64_t>> out;
  auto rows = st->forEachRow([&](Stmt& r) {
    out.emplace_back(r.columnInt64(0), r.columnInt64(1));
  });
  if (!rows) return propagate(rows);
  return out;
}

Result<std::vector<OutboxItem>> copyingOutbox(Store& store) {
  return query(store, "WHERE state = 'copying' ORDER BY id", {});
}

Result<std::optional<int64_t>> nextOutboxAttempt(Store& store) {
  auto st = store.db().prepare("SELECT min(next_attempt) FROM outbox WHERE state = 'queued'");
  if (!st) return propagate(st);
  auto row = st->step();
  if (!row) return propagate(row);
  return st->columnOptInt64(0);
}

Status recordOutboxAttempt(Store& store, int64_t id, const std::vector<OutboxRecipient>& recipients,
                           int64_t nextAttempt, std::string_view lastError, std::string_view state) {
  auto st = store.db().prepare(
      "UPDATE outbox SET recipients = ?1, attempts = attempts + 1, next_attempt = ?2, last_error = ?3, state = ?4 "
      "WHERE id = ?5");
  if (!st) return propagate(st);
  std::optional<std::string> err;
  if (!lastError.empty()) err = std::string(lastError);
  if (auto s = st->bind(1, recipientsJson(recipients)).bind(2, nextAttempt).bind(3, err).bind(4, state).bind(5, id).run();
      !s)
    return s;
  if (store.db().changes() == 0) return fail(ErrorKind::NotFound, "no outbox message with id " + std::to_string(id));
  return {};
}

Status setOutboxState(Store& store, int64_t id, std::string_view state) {
  auto st = store.db().prepare("UPDATE outbox SET state = ?1 WHERE id = ?2");
  if (!st) return propagate(st);
  if (auto s = st->bind(1, state).bind(2, id).run(); !s) return s;
  if (store.db().changes() == 0) return fail(ErrorKind::NotFound, "no outbox message with id " + std::to_string(id));
  return {};
}

Status retryOutbox(Store& store, int64_t id, int64_t now) {
  auto item = findOutbox(store, id);
  if (!item) return propagate(item);
  if (!*item) return fail(ErrorKind::NotFound, "no outbox message with id " + std::to_string(id));
  if ((*item)->state == kOutboxCopying)
    return fail(ErrorKind::Conflict, "outbox message " + std::to_string(id) + " is already delivered");
  auto rcpts = (*item)->recipients;
  for (auto& r : rcpts)
    if (r.state == RecipientState::Failed) r.state = RecipientState::Pending;
  auto st = store.db().prepare("UPDATE outbox SET recipients = ?1, next_attempt = ?2, state = 'queued' WHERE id = ?3");
  if (!st) return propagate(st);
  return st->bind(1, recipientsJson(rcpts)).bind(2, now).bind(3, id).run();
}

Status removeOutbox(Store& store, int64_t id) {
  auto item = findOutbox(store, id);
  if (!item) return propagate(item);
  if (!*item) return fail(ErrorKind::NotFound, "no outbox message with id " + std::to_string(id));
  return removeOutbox(store, std::vector<int64_t>{id});
}

Status removeOutbox(Store& store, const std::vector<int64_t>& ids) {
  std::vector<std::string> blobIds;
  {
    auto tx = Transaction::begin(store.db());
    if (!tx) return propagate(tx);
    for (int64_t id : ids) {
      auto st = store.db().prepare("DELETE FROM outbox WHERE id = ?1 RETURNING blob_id");
      if (!st) return propagate(st);
      auto row = st->bind(1, id).step();
      if (!row) return propagate(row);
      if (*row) blobIds.push_back(st->columnText(0));
    }
    if (auto s = tx->commit(); !s) return s;
  }
  // The rows are gone either way; an orphan blob left here is collected at
  // the next open(). A blob shared with a stored message stays.
  for (const auto& blobId : blobIds)
    if (!blobId.empty()) store.releaseBlob(blobId);
  return {};
}

Result<std::string> outboxBody(Store& store, const OutboxItem& item) { return store.blobs().get(item.blobId, item.size); }

int64_t retryDelaySeconds(int64_t attempts, int64_t initial, int64_t maxDelay, double unit) {
  if (attempts < 1) attempts = 1;
  double delay = static_cast<double>(initial);
  for (int64_t i = 1; i < attempts && delay < static_cast<double>(maxDelay); ++i) delay *= 2;
  delay = std::min(delay, static_cast<double>(maxDelay));
  unit = std::clamp(unit, 0.0, 0.999999);
  delay *= 0.75 + 0.5 * unit;
  return std::max<int64_t>(1, static_cast<int64_t>(std::llround(delay)));
}

}  // namespace mb::store
