// The WAL checkpoint off the owner thread (see checkpointer.h).
#include "daemon/store/checkpointer.h"

#include <sqlite3.h>

#include "daemon/log/log.h"

namespace mb::store {

Result<std::unique_ptr<Checkpointer>> Checkpointer::start(Db& db, int pages) {
  auto own = Db::open(db.path(), Db::OpenMode::ReadWrite);
  if (!own) return std::unexpected(own.error());
  // The checkpoint syncs as this connection says: FULL like the owner's.
  if (auto s = own->exec("PRAGMA synchronous = FULL"); !s) return std::unexpected(s.error());
  // The first read opens the WAL; a connection that has read nothing has
  // none and its checkpoints do nothing.
  auto mode = own->queryText("PRAGMA journal_mode");
  if (!mode) return std::unexpected(mode.error());
  if (*mode != "wal") return fail(ErrorKind::Internal, db.path() + ": checkpointer needs WAL mode (got " + *mode + ")");
  std::unique_ptr<Checkpointer> c(new Checkpointer(db, std::move(*own), pages));
  c->thread_ = std::thread([p = c.get()] { p->run(); });
  sqlite3_wal_hook(db.handle(), &Checkpointer::onCommit, c.get());
  return c;
}

Checkpointer::~Checkpointer() {
  sqlite3_wal_hook(owner_.handle(), nullptr, nullptr);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

// On the owner thread, inside its COMMIT: only a signal.
int Checkpointer::onCommit(void* self, ::sqlite3*, const char*, int pages) {
  auto* c = static_cast<Checkpointer*>(self);
  if (pages < c->pages_) return SQLITE_OK;
  {
    std::lock_guard<std::mutex> lock(c->mutex_);
    c->wanted_ = true;
  }
  c->wake_.notify_one();
  return SQLITE_OK;
}

void Checkpointer::run() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return wanted_ || stop_; });
      if (stop_) return;
      wanted_ = false;
    }
    std::lock_guard<std::mutex> running(running_);
    // Commits made meanwhile signal again, so a checkpoint that could not
    // copy everything (a reader on an old snapshot) is retried after the
    // next commit, as SQLite's auto-checkpoint would. BUSY: another
    // connection (another process) is checkpointing.
    int rc = sqlite3_wal_checkpoint_v2(own_.handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
      logWarn("store.checkpoint_failed").kv("error", own_.error(rc, "wal_checkpoint").message);
  }
}

}  // namespace mb::store
