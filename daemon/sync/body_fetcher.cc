// On-demand message bodies (see body_fetcher.h).
#include "daemon/sync/body_fetcher.h"

#include <algorithm>
#include <cstdlib>
#include <map>

#include "daemon/log/log.h"
#include "daemon/store/message_ops.h"

namespace mb::sync {

// One request's bodies: received on the loop, prepared (line ends, analysis,
// durable pinned blob) on the libuv pool, attached to their rows on the loop.
struct BodyFetcher::Job {
  uv_work_t work{};
  std::shared_ptr<Job> self;  // set while on the pool
  std::shared_ptr<bool> alive;
  BodyFetcher* fetcher = nullptr;
  store::BlobStore* blobs = nullptr;
  int64_t mailboxId = 0;
  std::map<uint32_t, uint32_t> localOf;  // upstream UID -> local UID
  std::vector<uint32_t> asked;           // the chunk's local UIDs (ascending)
  std::vector<uint32_t> localUids;       // of `messages`, in order
  std::vector<RemoteMessage> messages;
  std::vector<store::PreparedMessage> prepared;
  std::optional<Error> error;
};

namespace {

constexpr size_t kChunk = 256;  // as the session's FETCH batches: one UID FETCH each
// A chunk also ends once its messages' sizes (the provider's RFC822.SIZE)
// reach this, so a SEARCH TEXT over large attachments holds at most this
// much plus one message in memory (twice while its line ends are fixed).
constexpr uint64_t kChunkBytes = 32ull << 20;
// After the provider refused this connection's login, requests fail at once
// for this long before a login is tried again.
constexpr uint64_t kLoginRetryMs = 5 * 60 * 1000;

Error unavailable(std::string message) { return Error{ErrorKind::Unavailable, std::move(message)}; }

}  // namespace

BodyFetcher::BodyFetcher(uv_loop_t* loop, store::Store& store, std::string accountName, ConnectorFactory makeConnector)
    : loop_(loop), store_(store), accountName_(std::move(accountName)), makeConnector_(std::move(makeConnector)) {
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
}

BodyFetcher::~BodyFetcher() {
  *alive_ = false;
  conn_.reset();
  uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  std::vector<Done> dones;
  if (current_) dones.push_back(std::move(current_->done));
  for (auto& r : queue_) dones.push_back(std::move(r.done));
  for (auto& d : dones) d(std::unexpected(unavailable("the account's sync stopped")));
}

void BodyFetcher::fetch(int64_t mailboxId, std::vector<uint32_t> uids, Purpose purpose,
                        std::weak_ptr<const void> waiter, Done done) {
  Request r;
  r.mailboxId = mailboxId;
  r.uids = std::move(uids);
  r.total = r.uids.size();
  r.purpose = purpose;
  r.waiter = std::move(waiter);
  r.done = std::move(done);
  queue_.push_back(std::move(r));
  schedule();
}

void BodyFetcher::dropAbandoned() {
  std::vector<Done> dropped;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (!it->waiter.expired()) {
      ++it;
      continue;
    }
    logInfo("sync.bodies_dropped").kv("account", accountName_).kv("mailbox_id", it->mailboxId)
        .kv("messages", it->total - it->settled);
    dropped.push_back(std::move(it->done));
    it = queue_.erase(it);
  }
  for (auto& d : dropped) d(std::unexpected(unavailable("the request was abandoned")));
}

void BodyFetcher::refuse(std::string why) {
  refusal_ = std::move(why);
  refusedUntilMs_ = 0;
  if (!refusal_.empty()) schedule();
}

void BodyFetcher::schedule() {
  uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<BodyFetcher*>(t->data)->pump(); }, 0, 0);
}

void BodyFetcher::failQueued(const std::string& why) {
  std::deque<Request> failing;
  failing.swap(queue_);
  for (auto& r : failing) {
    failed_ += r.total - r.settled;
    r.done(std::unexpected(unavailable(why)));
  }
}

void BodyFetcher::pump() {
  if (lost_) {
    // Outside the connector's callbacks now: it can go.
    conn_.reset();
    lost_ = false;
    ready_ = false;
  }
  if (current_) return;
  dropAbandoned();
  if (queue_.empty()) return;
  if (!refusal_.empty() && refusedUntilMs_ && uv_now(loop_) >= refusedUntilMs_) {
    refusal_.clear();  // our own login was refused a while ago: try again
    refusedUntilMs_ = 0;
  }
  if (!refusal_.empty()) return failQueued(refusal_);
  if (!conn_) {
    conn_ = makeConnector_();
    auto alive = alive_;
    conn_->connect(
        [this, alive] {
          if (!*alive) return;
          ready_ = true;
          schedule();
        },
        [this, alive](const ConnectorFailure& f) {
          if (!*alive) return;
          lost_ = true;
          ready_ = false;
          lostWhy_ = f.kind == ConnectorFailure::Kind::Auth ? "the provider refused the login" : "the provider is unreachable";
          logInfo("sync.bodies_connection_lost").kv("account", accountName_).kv("error", f.message);
          // A refused login is not tried again for every request (providers
          // lock accounts that keep failing): requests fail at once for a
          // while, or until the engine's own connection logs in again.
          if (f.kind == ConnectorFailure::Kind::Auth) {
            refusal_ = lostWhy_;
            refusedUntilMs_ = uv_now(loop_) + kLoginRetryMs;
          }
          // What was asked before the connection failed fails with it; a
          // request made later tries a new connection.
          if (!current_) failQueued(lostWhy_);
          schedule();
        });
    return;
  }
  if (!ready_) return;
  current_ = std::move(queue_.front());
  queue_.pop_front();
  start();
}

void BodyFetcher::start() {
  Request& r = *current_;
  auto job = std::make_shared<Job>();
  job->alive = alive_;
  job->fetcher = this;
  job->blobs = &store_.blobs();
  job->mailboxId = r.mailboxId;
  // The chunk reads one upstream folder: a row's own, or for a header-only
  // copy not mapped yet the one its source is in (messages.source_*). Rows
  // of another folder wait for a later chunk of the request.
  int64_t fromBox = 0;
  std::vector<uint32_t> upstream;
  {
    auto st = store_.db().prepare(
        "SELECT upstream_id, size, source_mailbox_id, source_upstream_id FROM messages "
        "WHERE mailbox_id = ?1 AND uid = ?2 AND body_missing = 1");
    if (!st) return finish(std::unexpected(st.error()));
    uint64_t bytes = 0;
    for (; r.next < r.uids.size() && upstream.size() < kChunk && bytes < kChunkBytes; ++r.next) {
      uint32_t uid = r.uids[r.next];
      st->reset();
      auto row = st->bind(1, r.mailboxId).bind(2, uid).step();
      if (!row) return finish(std::unexpected(row.error()));
      if (!*row) {  // has its body by now, or gone
        ++r.settled;
        continue;
      }
      std::string id = st->columnText(0);
      int64_t box = r.mailboxId;
      if (id.empty()) {
        if (auto src = st->columnOptText(3)) {
          id = *src;
          box = st->columnInt64(2);
        }
      }
      if (id.empty()) {  // a copy made before schema v8 (no source recorded), not mapped upstream
        ++r.settled;
        r.missing.push_back(uid);
        continue;
      }
      if (fromBox == 0) fromBox = box;
      if (box != fromBox) {
        r.deferred.push_back(uid);
        continue;
      }
      job->asked.push_back(uid);
      uint32_t up = static_cast<uint32_t>(std::strtoul(id.c_str(), nullptr, 10));
      // Two copies of one message: one fetch, the other gets it as a sibling
      // (Store::attachBodies).
      if (!job->localOf.emplace(up, uid).second) continue;
      bytes += static_cast<uint64_t>(st->columnInt64(1));
      upstream.push_back(up);
    }
  }
  if (upstream.empty()) return chunkDone();  // every one has its body by now, or cannot get one
  std::string folder;
  {
    auto st = store_.db().prepare("SELECT upstream_name FROM mailboxes WHERE id = ?1");
    if (!st) return finish(std::unexpected(st.error()));
    auto row = st->bind(1, fromBox).step();
    if (!row) return finish(std::unexpected(row.error()));
    if (*row) folder = st->columnText(0);
  }
  if (folder.empty()) {  // the source's mailbox is gone or local only: these cannot be had
    r.settled += job->asked.size();
    r.missing.insert(r.missing.end(), job->asked.begin(), job->asked.end());
    return chunkDone();
  }
  std::sort(upstream.begin(), upstream.end());
  logDebug("sync.bodies_fetch").kv("account", accountName_).kv("mailbox_id", r.mailboxId).kv("messages", upstream.size());
  auto alive = alive_;
  conn_->fetchMessages(
      folder, std::move(upstream), false,
      [job](RemoteMessage&& m) {
        auto it = job->localOf.find(m.meta.uid);
        if (it == job->localOf.end() || !m.bytes) return;
        job->localUids.push_back(it->second);
        job->messages.push_back(std::move(m));
      },
      [this, alive, job](Status s) {
        if (*alive) received(job, std::move(s));
      });
}

void BodyFetcher::received(std::shared_ptr<Job> job, Status fetched) {
  if (!fetched) {
    logInfo("sync.bodies_failed").kv("account", accountName_).kv("error", fetched.error().message);
    // The connection failed: the whole request with it. A NO to the UID
    // FETCH (some of the messages are gone) only costs the bodies that did
    // not come: those that did are stored, the rest settle as missing.
    if (lost_ || !ready_ || job->messages.empty())
      return finish(std::unexpected(unavailable(lost_ ? lostWhy_ : "the provider did not send the message: " + fetched.error().message)));
  }
  if (job->messages.empty()) return stored(*job);
  job->self = job;
  job->work.data = job.get();
  int rc = uv_queue_work(
      loop_, &job->work,
      [](uv_work_t* w) {
        auto* j = static_cast<Job*>(w->data);
        j->prepared.reserve(j->messages.size());
        for (const auto& m : j->messages) {
          auto p = store::Store::prepareMessage(*j->blobs, *m.bytes, true);
          if (!p) {
            j->error = p.error();
            break;
          }
          j->prepared.push_back(std::move(*p));
        }
      },
      [](uv_work_t* w, int) {
        auto* j = static_cast<Job*>(w->data);
        std::shared_ptr<Job> keep = std::move(j->self);
        if (*j->alive) return j->fetcher->stored(*j);
        // The fetcher is gone (account removed, shutdown): the bodies are
        // orphans for the next open's GC; only the pins must go.
        for (const auto& p : j->prepared) j->blobs->unpin(p.blobId);
      });
  if (rc != 0) {
    job->self.reset();
    finish(std::unexpected(Error{ErrorKind::Internal, std::string("uv_queue_work: ") + uv_strerror(rc)}));
  }
}

void BodyFetcher::stored(Job& job) {
  size_t attached = 0;
  if (!job.prepared.empty()) {
    std::vector<uint32_t> uids(job.localUids.begin(), job.localUids.begin() + static_cast<long>(job.prepared.size()));
    auto r = store_.attachBodies(job.mailboxId, uids, job.prepared);
    if (!r) return finish(std::unexpected(r.error()));
    attached = *r;
    if (current_->purpose == Purpose::Client) fetchedForClients_ += attached;
  }
  if (job.error) return finish(std::unexpected(*job.error));
  logInfo("sync.bodies_fetched").kv("account", accountName_).kv("mailbox_id", job.mailboxId).kv("messages", attached);
  // Each body of the chunk is settled now: those still missing were not
  // sent (expunged upstream meanwhile) or were not the same message any more
  // (Store::attachBodies compares the Message-ID); the next sync tells what
  // became of them.
  auto still = store::bodilessUids(store_, job.mailboxId, job.asked);
  if (!still) return finish(std::unexpected(still.error()));
  current_->settled += job.asked.size();
  current_->missing.insert(current_->missing.end(), still->begin(), still->end());
  chunkDone();
}

void BodyFetcher::chunkDone() {
  if (current_->next == current_->uids.size() && !current_->deferred.empty()) {
    current_->uids = std::move(current_->deferred);  // rows whose bodies come from another folder
    current_->deferred.clear();
    current_->next = 0;
  }
  if (current_->next < current_->uids.size()) {
    // The next chunk waits for its turn behind the requests asked meanwhile.
    queue_.push_back(std::move(*current_));
    current_.reset();
    schedule();
    return;
  }
  std::sort(current_->missing.begin(), current_->missing.end());
  finish(std::move(current_->missing));
}

void BodyFetcher::finish(Result<std::vector<uint32_t>> result) {
  if (!result) failed_ += current_->total - current_->settled;
  else failed_ += result->size();
  auto done = std::move(current_->done);
  current_.reset();
  schedule();  // the next request
  done(std::move(result));
}

void FillInBackoff::failed(int64_t mailboxId, uint32_t uid, uint64_t nowMs) {
  constexpr uint64_t kFirstMs = 60 * 1000, kMaxMs = 24 * 3600 * 1000;
  Entry& e = entries_[{mailboxId, uid}];
  uint64_t wait = kFirstMs << std::min<uint32_t>(e.attempts, 11);
  e.attempts++;
  e.nextMs = nowMs + std::min(wait, kMaxMs);
}

bool FillInBackoff::due(int64_t mailboxId, uint32_t uid, uint64_t nowMs) const {
  auto it = entries_.find({mailboxId, uid});
  return it == entries_.end() || nowMs >= it->second.nextMs;
}

Result<FillInBatch> nextFillIn(store::Store& store, int64_t accountId, const FillInBackoff& backoff, uint64_t nowMs,
                               size_t limit) {
  // Rows in backoff are read and passed over (there are few: a row leaves
  // the index once it has its body), so no LIMIT in SQL.
  auto st = store.db().prepare(
      "SELECT m.mailbox_id, m.uid FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id WHERE b.account_id = ?1 "
      "AND m.body_missing = 1 AND (m.upstream_id IS NOT NULL OR m.source_upstream_id IS NOT NULL) "
      "ORDER BY m.mailbox_id, m.uid");
  if (!st) return propagate(st);
  st->bind(1, accountId);
  FillInBatch out;
  auto rows = st->forEachRow([&](store::Stmt& r) {
    int64_t box = r.columnInt64(0);
    auto uid = static_cast<uint32_t>(r.columnInt64(1));
    if (!backoff.due(box, uid, nowMs)) return true;
    if (out.mailboxId != 0 && box != out.mailboxId) return false;
    out.mailboxId = box;
    out.uids.push_back(uid);
    return out.uids.size() < limit;
  });
  st->reset();
  if (!rows) return propagate(rows);
  return out;
}

}  // namespace mb::sync
