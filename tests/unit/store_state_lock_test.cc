// StateDirLock: one owner per state dir, refused with the owner's pid, and
// errors that name the path an operator has to fix.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "daemon/store/state_lock.h"
#include "tests/unit/test_fixtures.h"

namespace mb::store {
namespace {

using test::readFile;
using test::TempDir;

TEST(StoreStateLock, CreatesMissingDirPrivateAndWritesPid) {
  TempDir tmp;
  ASSERT_FALSE(tmp.path().empty());
  auto dir = tmp.path() / "parent" / "state";
  auto lock = StateDirLock::acquire(dir);
  ASSERT_TRUE(lock) << lock.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(readFile(dir / "lock"), std::to_string(::getpid()) + "\n");
  EXPECT_EQ(lock->stateDir(), dir);
}

TEST(StoreStateLock, SecondAcquireInSameProcessIsRefusedWithPid) {
  TempDir tmp;
  auto first = StateDirLock::acquire(tmp.path());
  ASSERT_TRUE(first) << first.error().message;
  auto second = StateDirLock::acquire(tmp.path());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().kind, ErrorKind::Conflict);
  EXPECT_EQ(second.error().message, "state dir " + tmp.path().string() + " is in use by another mailbridged (pid " +
                                        std::to_string(::getpid()) + ")");
}

TEST(StoreStateLock, ReleasedOnDestructionNotOnMove) {
  TempDir tmp;
  {
    auto first = StateDirLock::acquire(tmp.path());
    ASSERT_TRUE(first);
    StateDirLock moved = std::move(*first);
    // The moved-from object is destroyed at the end of this scope too; only
    // the destruction of `moved` may release the lock.
    EXPECT_FALSE(StateDirLock::acquire(tmp.path()));
  }
  auto again = StateDirLock::acquire(tmp.path());
  EXPECT_TRUE(again) << again.error().message;
}

// The real case: another process holds the dir. The child reports what its
// acquire() said through a pipe.
TEST(StoreStateLock, RefusedToAnotherProcess) {
  TempDir tmp;
  auto held = StateDirLock::acquire(tmp.path());
  ASSERT_TRUE(held);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    auto r = StateDirLock::acquire(tmp.path());
    std::string msg = r ? std::string("acquired") : r.error().message;
    (void)!::write(fds[1], msg.data(), msg.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string got;
  char buf[256];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_EQ(got, "state dir " + tmp.path().string() + " is in use by another mailbridged (pid " +
                     std::to_string(::getpid()) + ")");
}

// And the other way round: a lock held by a process is gone when it exits,
// even without running destructors (a crash).
TEST(StoreStateLock, ChildHoldsThenDies) {
  TempDir tmp;
  int ready[2], done[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(done), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    ::close(done[1]);
    auto r = StateDirLock::acquire(tmp.path());
    char c = r ? 'L' : 'E';
    (void)!::write(ready[1], &c, 1);
    (void)!::read(done[0], &c, 1);  // EOF when the parent closes its end
    ::_exit(0);                     // no destructors: the kernel drops the lock
  }
  ::close(ready[1]);
  ::close(done[0]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'L');
  auto refused = StateDirLock::acquire(tmp.path());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("(pid " + std::to_string(child) + ")"), std::string::npos)
      << refused.error().message;
  ::close(done[1]);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(ready[0]);
  auto after = StateDirLock::acquire(tmp.path());
  EXPECT_TRUE(after) << after.error().message;
}

// Tests run as root, so permissions cannot make a path unwritable; a path
// below a regular file fails for root too.
TEST(StoreStateLock, UncreatableDirNamesPathAndReason) {
  auto r = StateDirLock::acquire("/dev/null/mailbridge");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Io);
  EXPECT_NE(r.error().message.find("/dev/null/mailbridge"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("Not a directory"), std::string::npos) << r.error().message;
}

TEST(StoreStateLock, FileWhereDirExpected) {
  TempDir tmp;
  auto file = tmp.path() / "state";
  std::ofstream(file) << "x";
  auto r = StateDirLock::acquire(file);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Io);
  EXPECT_NE(r.error().message.find(file.string()), std::string::npos) << r.error().message;
}

TEST(StoreStateLock, UnopenableLockFileNamesIt) {
  TempDir tmp;
  std::filesystem::create_directory(tmp.path() / "lock");
  auto r = StateDirLock::acquire(tmp.path());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Io);
  EXPECT_NE(r.error().message.find((tmp.path() / "lock").string()), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("Is a directory"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace mb::store
