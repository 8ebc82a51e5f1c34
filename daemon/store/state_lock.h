// StateDirLock: one mailbridged per state dir. Everything in the dir (the
// database, blobs, startup GC) assumes a single owner; this lock is that proof.
#pragma once

#include <filesystem>

#include "protocols/common/result.h"

namespace mb::store {

// Holds flock(LOCK_EX) on <stateDir>/lock for its lifetime. flock belongs to
// the open file description, so a second acquire() in the same process (new
// fd) is refused just like one from another process; the kernel drops the lock
// if the process dies, so a crash never leaves a stale lock behind.
class StateDirLock {
 public:
  // Creates stateDir (0700; missing parents as for mkdir -p) if needed, then
  // locks it. Conflict when another process holds it ("state dir /x is in use
  // by another mailbridged (pid N)"), Io when the dir or lock file cannot be
  // created or opened (the message names the path and the OS reason).
  static Result<StateDirLock> acquire(const std::filesystem::path& stateDir);

  StateDirLock(StateDirLock&& other) noexcept;
  StateDirLock& operator=(StateDirLock&& other) noexcept;
  StateDirLock(const StateDirLock&) = delete;
  StateDirLock& operator=(const StateDirLock&) = delete;
  ~StateDirLock();

  const std::filesystem::path& stateDir() const { return stateDir_; }

 private:
  StateDirLock(int fd, std::filesystem::path stateDir) : fd_(fd), stateDir_(std::move(stateDir)) {}
  void release();

  int fd_ = -1;
  std::filesystem::path stateDir_;
};

}  // namespace mb::store
