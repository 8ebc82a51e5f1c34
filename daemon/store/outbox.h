// The outbox: submitted messages waiting for the relay, durable before the
// SMTP 250 (blob fsync'd, then the row committed), with per-recipient results,
// attempt bookkeeping and the retry schedule.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/store/store.h"
#include "protocols/common/result.h"

namespace mb::store {

enum class RecipientState { Pending, Sent, Failed };
const char* recipientStateName(RecipientState state);

struct OutboxRecipient {
  std::string address;
  RecipientState state = RecipientState::Pending;
  int code = 0;             // last SMTP reply code for this recipient, 0 if none yet
  std::string status;       // enhanced status code, "5.1.1"
  std::string diagnostic;   // the server's text (or ours: "connection refused")
  bool operator==(const OutboxRecipient&) const = default;
};

// Row states. Queued: the relay works on it. Failed: some recipient failed
// for good, the bounce is in the INBOX; kept for the REST API until deleted
// or retried. Copying: every recipient is final and the Sent copy is being
// made; a row found in this state after a crash is not copied again (no
// duplicate Sent copies; at worst one is missing).
inline constexpr std::string_view kOutboxQueued = "queued";
inline constexpr std::string_view kOutboxFailed = "failed";
inline constexpr std::string_view kOutboxCopying = "copying";

struct OutboxItem {
  int64_t id = 0;
  int64_t accountId = 0;
  std::string mailFrom;
  std::vector<OutboxRecipient> recipients;
  std::string blobId;
  uint64_t size = 0;
  int64_t createdAt = 0;
  int64_t attempts = 0;
  int64_t nextAttempt = 0;
  std::string lastError;
  std::string state;

  bool hasPending() const;
  bool hasFailed() const;
};

struct NewOutboxMessage {
  int64_t accountId = 0;
  std::string mailFrom;
  std::vector<std::string> recipients;
  std::string_view bytes;  // must stay live during the call
};

// Enqueuing is two steps so that many messages can share one commit (the
// SMTP endpoint writes bodies on the thread pool and commits the rows of all
// bodies that became durable in one loop turn together):
//
// 1. writeOutboxBody, any thread: BlobStore::put (file and directories
//    fsync'd), pinned so that no remove() deletes a same-content blob before
//    its row exists.
// 2. commitOutbox, owner thread: inserts the rows in one transaction (one WAL
//    fsync, synchronous=FULL), then unpins every body of the batch. Only when
//    a message's id is returned may the SMTP session answer 250.
//
// A crash in between leaves an unreferenced blob that the next Store::open()
// deletes.
Result<std::string> writeOutboxBody(BlobStore& blobs, std::string_view bytes);

struct WrittenOutboxMessage {
  NewOutboxMessage message;
  std::string blobId;  // from writeOutboxBody
};
// One result per message, in order. The batch commits together; if that
// fails, each message is retried in its own transaction so that one bad row
// (an account deleted meanwhile) fails alone. A body whose row failed is
// removed unless something else uses it.
std::vector<Result<int64_t>> commitOutbox(Store& store, const std::vector<WrittenOutboxMessage>& batch);

// Both steps for one message, on the owner thread (tests, tools).
Result<int64_t> enqueueOutbox(Store& store, const NewOutboxMessage& message);

// Everything, oldest first (the REST listing).
Result<std::vector<OutboxItem>> listOutbox(Store& store);
Result<std::optional<OutboxItem>> findOutbox(Store& store, int64_t id);
// Queued rows with next_attempt <= now, by next_attempt then id; only those
// of accountId when given, at most limit when given.
Result<std::vector<OutboxItem>> dueOutbox(Store& store, int64_t now, std::optional<int64_t> accountId = std::nullopt,
                                          std::optional<int64_t> limit = std::nullopt);
// The ids of the same rows as dueOutbox(store, now, accountId, limit), in the
// same order, without reading them (the relay skips those in flight by id).
Result<std::vector<int64_t>> dueOutboxIds(Store& store, int64_t now, int64_t accountId, int64_t limit);
// How many queued rows are due per account (account id -> count).
Result<std::vector<std::pair<int64_t, int64_t>>> dueOutboxCounts(Store& store, int64_t now);
// Rows the relay must still finish after a restart (state copying).
Result<std::vector<OutboxItem>> copyingOutbox(Store& store);
// The earliest next_attempt of a queued row, nullopt when none is queued.
Result<std::optional<int64_t>> nextOutboxAttempt(Store& store);

// Stores the outcome of one delivery attempt: recipient results, attempts+1,
// the next attempt time, the last error and the row state.
Status recordOutboxAttempt(Store& store, int64_t id, const std::vector<OutboxRecipient>& recipients,
                           int64_t nextAttempt, std::string_view lastError, std::string_view state);
Status setOutboxState(Store& store, int64_t id, std::string_view state);

// POST /v1/outbox/{id}/retry: failed and pending recipients become pending
// again, state queued, due now. NotFound if there is no such row.
Status retryOutbox(Store& store, int64_t id, int64_t now);
// Deletes the row and then its blob if nothing else uses it. NotFound if absent.
Status removeOutbox(Store& store, int64_t id);
// Deletes these rows in one transaction (one WAL fsync for all), then each
// blob nothing else uses. Ids that are already gone are skipped.
Status removeOutbox(Store& store, const std::vector<int64_t>& ids);
Result<std::string> outboxBody(Store& store, const OutboxItem& item);

// The retry schedule: seconds to wait after the attempts-th failed attempt
// (1-based): initial * 2^(attempts-1), capped at maxDelay, then scaled by a
// jitter factor in [0.75, 1.25) taken from unit in [0, 1) so that many
// messages failing together do not retry in lock step. At least 1.
int64_t retryDelaySeconds(int64_t attempts, int64_t initial, int64_t maxDelay, double unit);

}  // namespace mb::store
