// OutboxWriter (see outbox_writer.h): body writes on the thread pool, one
// row commit per loop turn for all of them.
#include "daemon/smtp/outbox_writer.h"

#include "daemon/log/log.h"

namespace mb::smtp {

struct OutboxWriter::Job {
  uv_work_t work{};
  OutboxWriter* owner = nullptr;
  std::shared_ptr<bool> ownerAlive;
  store::BlobStore* blobs = nullptr;
  AcceptedMessage message;
  Result<std::string> blobId = std::string();
  Done done;
};

OutboxWriter::OutboxWriter(uv_loop_t* loop, store::Store& store, std::function<void()> onCommitted)
    : loop_(loop), store_(store), onCommitted_(std::move(onCommitted)) {
  check_ = new uv_check_t;
  uv_check_init(loop_, check_);
  check_->data = this;
}

OutboxWriter::~OutboxWriter() {
  *alive_ = false;
  // Bodies already durable get their rows: the callers may not hear of it,
  // but a message we wrote is never dropped silently.
  if (!ready_.empty()) commit();
  if (check_) {
    uv_close(reinterpret_cast<uv_handle_t*>(check_), [](uv_handle_t* h) { delete reinterpret_cast<uv_check_t*>(h); });
    check_ = nullptr;
  }
}

void OutboxWriter::write(AcceptedMessage message, Done done) {
  auto* job = new Job;
  job->owner = this;
  job->ownerAlive = alive_;
  job->blobs = &store_.blobs();
  job->message = std::move(message);
  job->done = std::move(done);
  job->work.data = job;
  uv_queue_work(
      loop_, &job->work,
      [](uv_work_t* w) {
        auto* j = static_cast<Job*>(w->data);
        j->blobId = store::writeOutboxBody(*j->blobs, j->message.data);
      },
      [](uv_work_t* w, int) {
        auto* j = static_cast<Job*>(w->data);
        if (*j->ownerAlive) return j->owner->written(j);
        // The writer is gone (shutdown): the body is an orphan for the next
        // open's GC; only its pin must go.
        if (j->blobId) j->blobs->unpin(*j->blobId);
        delete j;
      });
}

void OutboxWriter::written(Job* job) {
  ready_.emplace_back(job);
  // The check phase runs after this loop turn's I/O callbacks, so every write
  // that finished in the meantime joins the same commit.
  uv_check_start(check_, [](uv_check_t* c) { static_cast<OutboxWriter*>(c->data)->commit(); });
}

void OutboxWriter::commit() {
  if (check_) uv_check_stop(check_);
  std::vector<std::unique_ptr<Job>> jobs = std::move(ready_);
  ready_.clear();
  std::vector<store::WrittenOutboxMessage> batch;
  for (auto& j : jobs) {
    if (!j->blobId) continue;
    const AcceptedMessage& m = j->message;
    batch.push_back({store::NewOutboxMessage{m.accountId, m.mailFrom, m.recipients, m.data}, *j->blobId});
  }
  std::vector<Result<int64_t>> ids;
  if (!batch.empty()) ids = store::commitOutbox(store_, batch);
  logDebug("smtp.outbox_commit").kv("messages", batch.size()).kv("failed_writes", jobs.size() - batch.size());
  bool stored = false;
  size_t next = 0;  // batch (and ids) hold the jobs whose write succeeded, in order
  for (auto& j : jobs) {
    Result<int64_t> result = j->blobId ? std::move(ids[next++]) : Result<int64_t>(std::unexpected(j->blobId.error()));
    stored = stored || result.has_value();
    if (j->done && *alive_) j->done(std::move(result));
  }
  if (stored && onCommitted_ && *alive_) onCommitted_();
}

}  // namespace mb::smtp
