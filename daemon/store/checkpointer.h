// Checkpointer: copies the WAL back into the database file on a thread of
// its own. SQLite's auto-checkpoint runs inside the COMMIT that leaves the
// WAL over the threshold, i.e. on the loop thread, which a sync's row commits
// keep busy (0.03-0.05 CPU s of a 20,000-message sync's commits were the
// checkpoint): here the loop only signals, and a second connection, used by
// this thread alone, runs the checkpoint beside the loop's next writes
// (PASSIVE: it never blocks a writer or a reader, and copies only frames no
// reader still needs).
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "daemon/store/sqlite.h"
#include "protocols/common/result.h"

namespace mb::store {

class Checkpointer {
 public:
  // Takes over db's auto-checkpoint (sqlite3_wal_hook; nothing may set
  // PRAGMA wal_autocheckpoint on db afterwards): after each commit of db that
  // leaves at least `pages` frames in the WAL, a checkpoint runs on the
  // thread. db must be in WAL mode and outlive the Checkpointer.
  static Result<std::unique_ptr<Checkpointer>> start(Db& db, int pages);

  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;
  // Gives db its hook back (none) and ends the thread once a checkpoint in
  // progress is done.
  ~Checkpointer();

  // Waits for a checkpoint in progress and lets no other start while the
  // returned lock is held: SQLite refuses a second checkpointer at once, and
  // the owner's own checkpoint (PRAGMA wal_checkpoint(TRUNCATE) after an
  // account removal) must not fail because of this one.
  std::unique_lock<std::mutex> pause() { return std::unique_lock<std::mutex>(running_); }

 private:
  Checkpointer(Db& owner, Db own, int pages) : owner_(owner), own_(std::move(own)), pages_(pages) {}
  static int onCommit(void* self, ::sqlite3* db, const char* name, int pages);
  void run();

  Db& owner_;
  Db own_;  // used by thread_ alone
  int pages_;
  std::mutex mutex_;  // guards wanted_ and stop_
  std::condition_variable wake_;
  bool wanted_ = false;
  bool stop_ = false;
  std::mutex running_;  // held by a checkpoint in progress, or by pause()
  std::thread thread_;
};

}  // namespace mb::store
