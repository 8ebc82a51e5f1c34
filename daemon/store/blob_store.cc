// BlobStore: the write-then-rename protocol and the crash cleanup (gc) for
// message bodies kept outside SQLite.
#include "daemon/store/blob_store.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <vector>

#include "daemon/log/log.h"

namespace mb::store {
namespace {

// Content ids: 32 hex chars are XXH3-128 of the bytes (every put since the
// switch, docs/decisions.md), 64 are SHA-256 (stores written before, and the
// name a put falls back to when another content already holds its XXH3 name).
constexpr size_t kFastIdLength = 32;
constexpr size_t kStrongIdLength = 64;

std::string hex(const unsigned char* bytes, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 0xf]);
  }
  return out;
}

std::string strongIdOf(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // EVP_Digest only fails on allocation failure inside OpenSSL; an empty id
  // then makes put() fail loudly rather than store under a wrong name.
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr) != 1) return {};
  return hex(digest, len);
}

std::string osError(int err) { return std::system_category().message(err); }

Error ioError(const std::string& what, const std::filesystem::path& path, int err) {
  return Error{ErrorKind::Io, what + " " + path.string() + ": " + osError(err), {}};
}

// Closes an fd on every path; release() hands it to an explicit close whose
// error we want to see (close can report a deferred write error).
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

int fsyncRetry(int fd) {
  int rc;
  do {
    rc = ::fsync(fd);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

// A rename or create is only durable once the directory holding the entry is
// fsynced; without this a power loss can undo a rename we already reported.
Status fsyncDir(const std::filesystem::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return std::unexpected(ioError("cannot open dir", dir, errno));
  if (fsyncRetry(fd.get()) != 0) return std::unexpected(ioError("cannot fsync dir", dir, errno));
  return {};
}

Status ensureDir(const std::filesystem::path& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return std::unexpected(ioError("cannot stat", dir, errno));
    if (!S_ISDIR(st.st_mode)) return fail(ErrorKind::Io, dir.string() + " exists and is not a directory");
    return {};
  }
  return std::unexpected(ioError("cannot create dir", dir, errno));
}

Status writeAll(int fd, std::string_view bytes, const std::filesystem::path& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(ioError("cannot write", path, errno));
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

bool isHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

bool BlobStore::isValidId(std::string_view id) {
  return (id.size() == kFastIdLength || id.size() == kStrongIdLength) && isHex(id);
}

std::string BlobStore::idOf(std::string_view bytes) {
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits(bytes.data(), bytes.size()));
  return hex(canonical.digest, sizeof canonical.digest);
}

bool BlobStore::matchesId(std::string_view id, std::string_view bytes) const {
  return id == (id.size() == kStrongIdLength ? strongIdOf(bytes) : options_.fastId(bytes));
}

Result<BlobStore> BlobStore::open(const std::filesystem::path& root) { return open(root, Options{}); }

Result<BlobStore> BlobStore::open(const std::filesystem::path& root, Options options) {
  if (auto st = ensureDir(root); !st) return std::unexpected(st.error());
  if (auto st = ensureDir(root / "tmp"); !st) return std::unexpected(st.error());
  static constexpr char kHex[] = "0123456789abcdef";
  bool made = false;
  for (int i = 0; i < 256; ++i) {
    const char name[3] = {kHex[i >> 4], kHex[i & 15], '\0'};
    std::filesystem::path fan = root / name;
    if (::mkdir(fan.c_str(), 0700) == 0) made = true;
    else if (errno != EEXIST) return std::unexpected(ioError("cannot create dir", fan, errno));
  }
  if (made) {
    if (auto st = fsyncDir(root); !st) return std::unexpected(st.error());
  }
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return std::unexpected(ioError("cannot open dir", root, errno));
  return BlobStore(root, fd, options);
}

Status BlobStore::syncBatch() {
  std::lock_guard lock(syncState_->mutex);
  if (syncState_->failed) return std::unexpected(*syncState_->failed);
  if (options_.syncfs(rootDir_->fd) != 0) {
    Error e = ioError("cannot sync the filesystem of", root_, errno);
    e.message += " (bodies written since may be lost: check the disk, then restart mailbridged)";
    syncState_->failed = e;
    return std::unexpected(std::move(e));
  }
  return {};
}

BlobStore::DirFd::~DirFd() {
  if (fd >= 0) ::close(fd);
}

Result<std::filesystem::path> BlobStore::pathOf(std::string_view id) const {
  if (!isValidId(id)) return fail(ErrorKind::Internal, "invalid blob id '" + std::string(id.substr(0, 80)) + "'");
  return root_ / std::string(id.substr(0, 2)) / std::string(id.substr(2));
}

bool BlobStore::exists(std::string_view id) const {
  auto path = pathOf(id);
  struct stat st {};
  return path && ::stat(path->c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void BlobStore::unpin(std::string_view id) {
  std::lock_guard lock(pins_->mutex);
  auto it = pins_->count.find(std::string(id));
  if (it != pins_->count.end() && --it->second <= 0) pins_->count.erase(it);
}

Result<std::string> BlobStore::put(std::string_view bytes, bool pin, Sync sync) {
  std::string id = options_.fastId(bytes);
  for (;;) {
    auto finalPath = pathOf(id);
    if (!finalPath) return std::unexpected(finalPath.error());
    if (pin) {
      std::lock_guard lock(pins_->mutex);
      ++pins_->count[id];
    }
    auto result = putFile(bytes, id, *finalPath, sync);
    if (!result && pin) unpin(id);
    if (result || result.error().kind != ErrorKind::Conflict || id.size() == kStrongIdLength) return result;
    // Other content holds this XXH3 name (a collision, which anyone can make
    // on purpose): this content goes under its SHA-256 name instead.
    logWarn("store.blob_id_collision").kv("id", id).kv("bytes", bytes.size());
    id = strongIdOf(bytes);
    if (id.empty()) return fail(ErrorKind::Internal, "SHA-256 failed");
  }
}

Result<BlobStore::Existing> BlobStore::compareExisting(const std::filesystem::path& path, std::string_view id,
                                                         std::string_view bytes) const {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return Existing::None;
    return std::unexpected(ioError("cannot open", path, errno));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return std::unexpected(ioError("cannot stat", path, errno));
  if (!S_ISREG(st.st_mode)) return Existing::Damaged;
  // Read back in pieces and compare: the same id and size is not proof of
  // the same bytes with a 128-bit hash anyone can collide.
  std::string existing;
  if (static_cast<uint64_t>(st.st_size) == bytes.size()) {
    constexpr size_t kPiece = 256 * 1024;
    existing.resize(std::min(bytes.size(), kPiece));
    size_t done = 0;
    bool same = true;
    while (same && done < bytes.size()) {
      ssize_t n = ::read(fd.get(), existing.data(), std::min(existing.size(), bytes.size() - done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return std::unexpected(ioError("cannot read", path, errno));
      }
      if (n == 0) break;
      same = std::memcmp(existing.data(), bytes.data() + done, static_cast<size_t>(n)) == 0;
      done += static_cast<size_t>(n);
    }
    if (same && done == bytes.size()) return Existing::Same;
  }
  // Different bytes: a torn or damaged copy of this content (replace it), or
  // other content with the same name (a collision: the caller renames).
  auto whole = get(id);
  if (whole && matchesId(id, *whole)) return Existing::Other;
  return Existing::Damaged;
}

Result<std::string> BlobStore::putFile(std::string_view bytes, const std::string& id,
                                       const std::filesystem::path& finalPath, Sync sync) {
  const bool now = sync == Sync::Now;
  // New content, the usual case: created at its final name, so a put costs
  // one open instead of a lookup, a temp file and a rename (~8% of a sync's
  // CPU). O_EXCL: an existing file is never written into. A crash while the
  // bytes go in leaves a torn file no row references (rows commit only after
  // put returned and, for Sync::Batch, after syncBatch), which gc() deletes
  // at the next open.
  for (int attempt = 0; attempt < 3; ++attempt) {
    int created = ::open(finalPath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (created < 0 && errno == ENOENT) {
      // open() made the fan-out directory; someone removed it since.
      if (::mkdir(finalPath.parent_path().c_str(), 0700) != 0 && errno != EEXIST) {
        return std::unexpected(ioError("cannot create dir", finalPath.parent_path(), errno));
      }
      if (now) {
        if (auto s = fsyncDir(root_); !s) return std::unexpected(s.error());
      }
      created = ::open(finalPath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (created >= 0) return writeNew(created, bytes, id, finalPath, now);
    if (errno != EEXIST) return std::unexpected(ioError("cannot create", finalPath, errno));

    auto existing = compareExisting(finalPath, id, bytes);
    if (!existing) return std::unexpected(existing.error());
    switch (*existing) {
      case Existing::None:
        continue;  // removed since our open: create it
      case Existing::Other:
        return fail(ErrorKind::Conflict, "blob " + id + " holds other content");
      case Existing::Damaged:
        return replaceDamaged(bytes, id, finalPath, now);
      case Existing::Same:
        if (!now) return id;  // the batch's syncfs covers it
        // A Sync::Batch put may have written it before its batch's sync: its
        // bytes need an fsync too before this put may call them durable.
        if (auto s = fsyncExisting(finalPath); !s) return std::unexpected(s.error());
        return id;
    }
  }
  return fail(ErrorKind::Io, "blob " + id + " keeps appearing and vanishing under " + finalPath.string());
}

Status BlobStore::fsyncExisting(const std::filesystem::path& path) const {
  Fd existing(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (existing.get() < 0) return std::unexpected(ioError("cannot open", path, errno));
  if (fsyncRetry(existing.get()) != 0) return std::unexpected(ioError("cannot fsync", path, errno));
  if (auto s = fsyncDir(path.parent_path()); !s) return s;
  return fsyncDir(root_);
}

Result<std::string> BlobStore::writeNew(int created, std::string_view bytes, const std::string& id,
                                        const std::filesystem::path& finalPath, bool now) {
  Fd fd(created);
  if (auto s = writeAll(fd.get(), bytes, finalPath); !s) {
    // A partial file under the final name must not stay: another put would
    // take it for a damaged copy (and replace it, fine), but a reader of a
    // row committed meanwhile cannot exist (no row names it yet). Removed
    // only while the name is still ours: a concurrent put of the same
    // content may have replaced it with a complete copy (under the mutex).
    std::lock_guard lock(pins_->mutex);
    struct stat mine {}, named {};
    if (::fstat(fd.get(), &mine) == 0 && ::stat(finalPath.c_str(), &named) == 0 && mine.st_ino == named.st_ino &&
        mine.st_dev == named.st_dev) {
      ::unlink(finalPath.c_str());
    }
    return std::unexpected(s.error());
  }
  // From here the file holds every byte: on a failed fsync or close it stays
  // (an identical put may already have found it and returned its id); if no
  // row takes it, gc() deletes it at the next open.
  if (now && fsyncRetry(fd.get()) != 0) return std::unexpected(ioError("cannot fsync", finalPath, errno));
  struct stat mine {};
  bool replaced = false;
  if (now) {
    // A concurrent put that found our file half-written replaced it (rename)
    // with its own copy, which may not be synced yet: sync what the name
    // holds, not only our inode.
    struct stat named {};
    replaced = ::fstat(fd.get(), &mine) != 0 || ::stat(finalPath.c_str(), &named) != 0 ||
               mine.st_ino != named.st_ino || mine.st_dev != named.st_dev;
  }
  if (::close(fd.release()) != 0) return std::unexpected(ioError("cannot close", finalPath, errno));
  if (now) {
    if (replaced) {
      if (auto s = fsyncExisting(finalPath); !s) return std::unexpected(s.error());
    } else if (auto s = fsyncDir(finalPath.parent_path()); !s) {
      return std::unexpected(s.error());
    }
  }
  return id;
}

Result<std::string> BlobStore::replaceDamaged(std::string_view bytes, const std::string& id,
                                              const std::filesystem::path& finalPath, bool now) {
  // A damaged same-named file (torn by a crash, changed on disk, or another
  // put still writing it) is replaced atomically: temp file, then rename.
  std::filesystem::path fanOut = finalPath.parent_path();
  std::string tmpl = (root_ / "tmp" / "put-XXXXXX").string();
  std::vector<char> tmpName(tmpl.begin(), tmpl.end());
  tmpName.push_back('\0');
  Fd fd(::mkostemp(tmpName.data(), O_CLOEXEC));
  if (fd.get() < 0) return std::unexpected(ioError("cannot create temp file in", root_ / "tmp", errno));
  std::filesystem::path tmpPath(tmpName.data());
  auto cleanup = [&](Error e) -> Result<std::string> {
    ::unlink(tmpPath.c_str());
    return std::unexpected(std::move(e));
  };

  if (auto s = writeAll(fd.get(), bytes, tmpPath); !s) return cleanup(s.error());
  if (now && fsyncRetry(fd.get()) != 0) return cleanup(ioError("cannot fsync", tmpPath, errno));
  if (::close(fd.release()) != 0) return cleanup(ioError("cannot close", tmpPath, errno));
  {
    std::lock_guard lock(pins_->mutex);  // against writeNew's cleanup
    if (::rename(tmpPath.c_str(), finalPath.c_str()) != 0) return cleanup(ioError("cannot rename into", finalPath, errno));
  }
  // From here the tmp name is gone; a failed dir fsync leaves a complete blob
  // that gc() reclaims if no row ever references it.
  if (now) {
    if (auto s = fsyncDir(fanOut); !s) return std::unexpected(s.error());
  }
  return id;
}

Result<std::string> BlobStore::get(std::string_view id, std::optional<uint64_t> expectedSize) const {
  std::string out;
  if (auto s = appendTo(id, expectedSize, out); !s) return std::unexpected(s.error());
  return out;
}

Status BlobStore::appendTo(std::string_view id, std::optional<uint64_t> expectedSize, std::string& out) const {
  if (!isValidId(id)) return std::unexpected(pathOf(id).error());
  auto path = [&] { return root_ / std::string(id.substr(0, 2)) / std::string(id.substr(2)); };  // for errors
  char rel[80];  // "ab/" + the other 62 hex chars (isValidId: 64 of them)
  std::memcpy(rel, id.data(), 2);
  rel[2] = '/';
  std::memcpy(rel + 3, id.data() + 2, id.size() - 2);
  rel[id.size() + 1] = '\0';
  Fd fd(::openat(rootDir_->fd, rel, O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return fail(ErrorKind::Corrupt, "blob " + std::string(id) + " is missing (" + path().string() + ")");
    return std::unexpected(ioError("cannot open", path(), errno));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return std::unexpected(ioError("cannot stat", path(), errno));
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (expectedSize && size != *expectedSize) {
    return fail(ErrorKind::Corrupt, "blob " + std::string(id) + " has " + std::to_string(size) + " bytes, expected " +
                                        std::to_string(*expectedSize));
  }
  size_t base = out.size();
  // No zero-fill: read() writes every byte before it is kept. (The new size
  // is captured, not taken from the callback's argument: libstdc++ 12 passes
  // the grown capacity there when it reallocates.)
  out.resize_and_overwrite(base + size, [want = base + size](char*, size_t) { return want; });
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::read(fd.get(), out.data() + base + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      out.resize(base);
      return std::unexpected(ioError("cannot read", path(), errno));
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  if (done != size) {
    out.resize(base);
    return fail(ErrorKind::Corrupt, "blob " + std::string(id) + " shrank while reading (" + path().string() + ")");
  }
  return {};
}

Status BlobStore::verify(std::string_view id) const {
  auto bytes = get(id);
  if (!bytes) return std::unexpected(bytes.error());
  if (!matchesId(id, *bytes)) return fail(ErrorKind::Corrupt, "blob " + std::string(id) + " does not match its hash");
  return {};
}

Status BlobStore::remove(std::string_view id) {
  auto path = pathOf(id);
  if (!path) return std::unexpected(path.error());
  std::lock_guard lock(pins_->mutex);
  if (pins_->count.contains(std::string(id))) return {};
  if (::unlink(path->c_str()) != 0 && errno != ENOENT) return std::unexpected(ioError("cannot remove", *path, errno));
  // No dir fsync: a removal undone by power loss leaves an unreferenced blob,
  // which the next gc() deletes again.
  return {};
}

Result<BlobGcStats> BlobStore::gc(const std::unordered_set<std::string>& referenced) {
  namespace fs = std::filesystem;
  BlobGcStats stats;
  std::error_code ec;

  auto removeFile = [&](const fs::path& p, uint64_t& counter) -> Status {
    std::error_code sizeEc;
    uint64_t size = fs::file_size(p, sizeEc);
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) return std::unexpected(ioError("cannot remove", p, errno));
    ++counter;
    if (!sizeEc) stats.bytesFreed += size;
    return {};
  };

  for (fs::directory_iterator it(root_ / "tmp", ec), end; !ec && it != end; it.increment(ec)) {
    if (auto s = removeFile(it->path(), stats.tmpRemoved); !s) return std::unexpected(s.error());
  }
  if (ec) return fail(ErrorKind::Io, "cannot list " + (root_ / "tmp").string() + ": " + ec.message());

  for (fs::directory_iterator top(root_, ec), end; !ec && top != end; top.increment(ec)) {
    std::string fan = top->path().filename().string();
    if (fan == "tmp") continue;
    std::error_code typeEc;
    if (fan.size() != 2 || !isHex(fan) || !top->is_directory(typeEc)) {
      logWarn("store.blob_gc_unknown_entry").kv("path", top->path().string());
      continue;
    }
    for (fs::directory_iterator it(top->path(), ec); !ec && it != end; it.increment(ec)) {
      std::string id = fan + it->path().filename().string();
      if (!isValidId(id)) {
        logWarn("store.blob_gc_unknown_entry").kv("path", it->path().string());
        continue;
      }
      if (referenced.contains(id)) continue;
      if (auto s = removeFile(it->path(), stats.blobsRemoved); !s) return std::unexpected(s.error());
    }
    if (ec) return fail(ErrorKind::Io, "cannot list " + top->path().string() + ": " + ec.message());
  }
  if (ec) return fail(ErrorKind::Io, "cannot list " + root_.string() + ": " + ec.message());
  return stats;
}

}  // namespace mb::store
