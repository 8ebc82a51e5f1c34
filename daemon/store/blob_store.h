// BlobStore: message bodies as files, content-addressed by SHA-256, written so
// that a blob id handed out is on disk for good (fsync file, rename, fsync dirs).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

#include "protocols/common/result.h"

namespace mb::store {

struct BlobGcStats {
  uint64_t tmpRemoved = 0;    // leftovers of puts interrupted by a crash
  uint64_t blobsRemoved = 0;  // blobs no row references
  uint64_t bytesFreed = 0;
};

// Layout: <root>/ab/cdef... (id = 64 lowercase hex chars, split after two for
// fan-out) and <root>/tmp/ for puts in progress.
//
// Concurrency: put() and get() may run on any thread. remove() and gc() must
// not run while a put() of the same content is in flight (put may reuse the
// existing file that remove is about to delete); the Store calls remove only
// from its owner thread and gc only at open, before anything else runs.
class BlobStore {
 public:
  // Creates root and root/tmp (0700) if missing.
  static Result<BlobStore> open(const std::filesystem::path& root);

  // Stores bytes durably and returns their id. Identical content already
  // present is reused (its directory entries are fsynced again, in case the
  // writer crashed between rename and directory fsync).
  Result<std::string> put(std::string_view bytes);

  // Reads a blob. Missing -> Corrupt naming the id (a row points at it, so
  // this is lost data, not a user error); a size other than expectedSize
  // (when given) -> Corrupt too.
  Result<std::string> get(std::string_view id, std::optional<uint64_t> expectedSize = std::nullopt) const;

  // Re-hashes the blob and compares with its id (for an fsck, not hot paths).
  Status verify(std::string_view id) const;

  bool exists(std::string_view id) const;
  Result<std::filesystem::path> pathOf(std::string_view id) const;

  // Deletes one blob; a blob that is already gone is not an error.
  Status remove(std::string_view id);

  // Deletes everything in tmp/ and every blob not in referenced. Call only
  // while no put() is in progress (at startup, under the StateDirLock).
  Result<BlobGcStats> gc(const std::unordered_set<std::string>& referenced);

  const std::filesystem::path& root() const { return root_; }

  static bool isValidId(std::string_view id);
  static std::string idOf(std::string_view bytes);  // SHA-256, lowercase hex

 private:
  explicit BlobStore(std::filesystem::path root) : root_(std::move(root)) {}

  std::filesystem::path root_;
};

}  // namespace mb::store
