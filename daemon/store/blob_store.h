// BlobStore: message bodies as files, content-addressed (XXH3-128, SHA-256 on
// a collision), written so that a blob id handed out is on disk for good
// (fsync file, rename, fsync dirs, or one syncfs for a batch).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "protocols/common/result.h"

namespace mb::store {

struct BlobGcStats {
  uint64_t tmpRemoved = 0;    // leftovers of puts interrupted by a crash
  uint64_t blobsRemoved = 0;  // blobs no row references
  uint64_t bytesFreed = 0;
};

// Layout: <root>/ab/cdef... (id = 32 or 64 lowercase hex chars, split after
// two for fan-out) and <root>/tmp/ for copies that replace a damaged file.
// New content is written at its final name (O_EXCL), so a crash can leave a
// torn file there: no row names it, and gc() at the next open deletes it.
// The 256 fan-out directories are made (and the root fsynced) by open(), so
// a put needs no mkdir.
//
// Concurrency: put() and get() may run on any thread. A put() on another
// thread may reuse the existing file of the same content, which a remove()
// on the owner thread could delete before the caller's row references it:
// such a put passes pin = true, and remove() leaves a pinned id alone until
// the owner thread calls unpin() (after the row committed, or after the
// failure that leaves the blob an orphan). gc() runs only at open, before
// anything else.
class BlobStore {
 public:
  // Seams for tests: the name a content gets unless another content holds
  // it (a hash that collides on purpose), and the filesystem sync (one that
  // fails like a write-back error).
  struct Options {
    std::string (*fastId)(std::string_view bytes) = &BlobStore::idOf;
    int (*syncfs)(int fd) = &::syncfs;
  };
  // Creates root and root/tmp (0700) if missing.
  static Result<BlobStore> open(const std::filesystem::path& root);
  static Result<BlobStore> open(const std::filesystem::path& root, Options options);

  // Stores bytes and returns their id: XXH3-128 of the bytes, or their
  // SHA-256 when other content already holds that name (XXH3 is fast, ~10x
  // SHA-256 here, but anyone can make two messages collide: a same-named file
  // is compared byte for byte before it is reused). Identical content already
  // present is reused (its directory entries are synced again, in case the
  // writer crashed between rename and directory fsync).
  // With pin, the id stays pinned (remove() leaves it alone) until unpin(id);
  // a put that fails releases its own pin.
  // Sync::Now: durable on return (fsync of the file and of its directory).
  // Sync::Batch: written and renamed into place, durable only once a later
  // syncBatch() returned: a batch of bodies costs one filesystem sync instead
  // of two fsyncs each. Until then no row may reference the id (after a
  // crash it may name a torn file; gc() at open deletes it as unreferenced).
  enum class Sync { Now, Batch };
  Result<std::string> put(std::string_view bytes, bool pin = false, Sync sync = Sync::Now);
  // Makes every put(..., Sync::Batch) that returned before it durable: one
  // syncfs(2) of the filesystem holding the root. Any thread; calls run one
  // at a time. A failure is sticky: every later call fails with it too
  // (until the process restarts). syncfs reports a write-back error once
  // per open file, and the error is the filesystem's, not one batch's: a
  // concurrent batch whose own sync came second would otherwise commit rows
  // for bodies that never reached the disk.
  Status syncBatch();
  // Ends one pin of put(bytes, true); any thread.
  void unpin(std::string_view id);

  // Reads a blob. Missing -> Corrupt naming the id (a row points at it, so
  // this is lost data, not a user error); a size other than expectedSize
  // (when given) -> Corrupt too.
  Result<std::string> get(std::string_view id, std::optional<uint64_t> expectedSize = std::nullopt) const;
  // The same bytes appended to `out` (so a caller can read straight into its
  // output buffer); on error `out` is as it was.
  Status appendTo(std::string_view id, std::optional<uint64_t> expectedSize, std::string& out) const;

  // Re-hashes the blob with its id's hash and compares (for an fsck, not hot
  // paths).
  Status verify(std::string_view id) const;

  bool exists(std::string_view id) const;
  Result<std::filesystem::path> pathOf(std::string_view id) const;

  // Deletes one blob; a blob that is already gone is not an error. A pinned
  // blob is kept (see put): its pending row will reference it.
  Status remove(std::string_view id);

  // Deletes everything in tmp/ and every blob not in referenced. Call only
  // while no put() is in progress (at startup, under the StateDirLock).
  Result<BlobGcStats> gc(const std::unordered_set<std::string>& referenced);

  const std::filesystem::path& root() const { return root_; }

  static bool isValidId(std::string_view id);
  // The id a put of these bytes gets unless it collides: XXH3-128, 32
  // lowercase hex chars (canonical, big-endian: as `xxhsum -H2` prints it).
  static std::string idOf(std::string_view bytes);
  // Whether bytes hash to id under the hash its length names.
  bool matchesId(std::string_view id, std::string_view bytes) const;

 private:
  enum class Existing { None, Same, Other, Damaged };
  Result<Existing> compareExisting(const std::filesystem::path& path, std::string_view id,
                                   std::string_view bytes) const;
  Result<std::string> putFile(std::string_view bytes, const std::string& id, const std::filesystem::path& finalPath,
                              Sync sync);
  Result<std::string> writeNew(int created, std::string_view bytes, const std::string& id,
                               const std::filesystem::path& finalPath, bool now);
  Result<std::string> replaceDamaged(std::string_view bytes, const std::string& id,
                                     const std::filesystem::path& finalPath, bool now);
  Status fsyncExisting(const std::filesystem::path& path) const;

  BlobStore(std::filesystem::path root, int rootFd, Options options)
      : root_(std::move(root)),
        pins_(std::make_shared<Pins>()),
        rootDir_(std::make_shared<DirFd>(rootFd)),
        syncState_(std::make_shared<SyncState>()),
        options_(options) {}

  // Held across remove()'s unlink and put()'s pin, so a put either pins
  // before the unlink (kept) or looks for the file after it (writes anew);
  // also across the rename that replaces a damaged copy and the unlink of a
  // half-written new file, so neither undoes the other's complete copy.
  struct Pins {
    std::mutex mutex;
    std::unordered_map<std::string, int> count;
  };

  // The root, open: reads open "ab/cdef..." relative to it, so the kernel
  // walks two path components a blob instead of every one of the state dir;
  // syncBatch() syncs its filesystem.
  struct DirFd {
    explicit DirFd(int f) : fd(f) {}
    DirFd(const DirFd&) = delete;
    DirFd& operator=(const DirFd&) = delete;
    ~DirFd();
    int fd;
  };

  std::filesystem::path root_;
  std::shared_ptr<Pins> pins_;  // shared so BlobStore stays movable
  std::shared_ptr<DirFd> rootDir_;
  struct SyncState {
    std::mutex mutex;
    std::optional<Error> failed;
  };
  std::shared_ptr<SyncState> syncState_;
  Options options_;
};

}  // namespace mb::store
