// StateDirLock: creating the state dir and holding its flock, with error
// messages that tell an operator what to do (which path, which pid).
#include "daemon/store/state_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

#include "daemon/log/log.h"

namespace mb::store {
namespace {

std::string osError(int err) { return std::system_category().message(err); }

Status ensureDir(const std::filesystem::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return fail(ErrorKind::Io, "state dir " + dir.string() + " exists and is not a directory");
    }
    // Mail lives here; say so if others can read it, but do not silently
    // chmod a directory an administrator set up on purpose.
    if ((st.st_mode & 077) != 0) {
      logWarn("store.state_dir_permissions").kv("path", dir.string()).kv("mode", static_cast<int64_t>(st.st_mode & 0777));
    }
    return {};
  }
  std::error_code ec;
  std::filesystem::path parent = dir.parent_path();
  if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
    std::filesystem::create_directories(parent, ec);
    if (ec) return fail(ErrorKind::Io, "cannot create state dir " + dir.string() + ": " + ec.message());
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail(ErrorKind::Io, "cannot create state dir " + dir.string() + ": " + osError(errno));
  }
  // EEXIST above means someone raced us; make sure what is there is a dir.
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return fail(ErrorKind::Io, "state dir " + dir.string() + " exists and is not a directory");
  }
  return {};
}

// Best effort: the pid is only for the error message, the lock is the truth.
std::string readPid(int fd) {
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return "unknown";
  std::string text(buf, static_cast<size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) return "unknown";
  return text;
}

}  // namespace

Result<StateDirLock> StateDirLock::acquire(const std::filesystem::path& stateDir) {
  if (auto st = ensureDir(stateDir); !st) return std::unexpected(st.error());

  std::filesystem::path lockPath = stateDir / "lock";
  int fd = ::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return fail(ErrorKind::Io, "cannot open lock file " + lockPath.string() + ": " + osError(errno));
  }
  int rc;
  do {
    rc = ::flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int err = errno;
    if (err == EWOULDBLOCK) {
      std::string pid = readPid(fd);
      ::close(fd);
      return fail(ErrorKind::Conflict,
                  "state dir " + stateDir.string() + " is in use by another mailbridged (pid " + pid + ")");
    }
    ::close(fd);
    return fail(ErrorKind::Io, "cannot lock " + lockPath.string() + ": " + osError(err));
  }

  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    int err = errno;
    ::close(fd);
    return fail(ErrorKind::Io, "cannot write pid to " + lockPath.string() + ": " + osError(err));
  }
  return StateDirLock(fd, stateDir);
}

StateDirLock::StateDirLock(StateDirLock&& other) noexcept
    : fd_(other.fd_), stateDir_(std::move(other.stateDir_)) {
  other.fd_ = -1;
}

StateDirLock& StateDirLock::operator=(StateDirLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = other.fd_;
    stateDir_ = std::move(other.stateDir_);
    other.fd_ = -1;
  }
  return *this;
}

StateDirLock::~StateDirLock() { release(); }

void StateDirLock::release() {
  if (fd_ < 0) return;
  // Clear the pid while we still hold the lock so nobody reads a stale one;
  // the file itself stays: unlinking a flock file races with the next owner.
  (void)::ftruncate(fd_, 0);
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
  fd_ = -1;
}

}  // namespace mb::store
