// BlobStore: content addressing, dedup, durability protocol leftovers (tmp is
// empty after put) and crash cleanup (gc).
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "daemon/store/blob_store.h"
#include "tests/unit/test_fixtures.h"

namespace mb::store {
namespace {

namespace fs = std::filesystem;

// XXH3-128("abc") as `printf abc | xxhsum -H2` prints it (Debian's xxhash).
constexpr const char* kAbcId = "06b05ab6733a618578af5f94892f3950";
// SHA-256("abc"), FIPS 180-2 appendix B.1: the name "abc" gets when another
// content holds kAbcId, and the name stores written before XXH3 ids used.
constexpr const char* kAbcStrongId = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

class StoreBlob : public ::testing::Test {
 protected:
  void SetUp() override {
    auto bs = BlobStore::open(dir_ / "blobs");
    ASSERT_TRUE(bs) << bs.error().message;
    blobs_.emplace(std::move(*bs));
  }
  size_t entries(const fs::path& p) {
    std::error_code ec;
    size_t n = 0;
    for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec)) ++n;
    return n;
  }
  static void writeFile(const fs::path& p, const std::string& content) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
  }

  test::TempDir tmp_{"mb-store-blob"};
  const fs::path dir_ = tmp_.path();
  std::optional<BlobStore> blobs_;
};

TEST_F(StoreBlob, PutGetRoundTripAtContentAddress) {
  auto id = blobs_->put("abc");
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(*id, kAbcId);
  EXPECT_EQ(blobs_->pathOf(*id).value(), dir_ / "blobs" / "06" / (std::string(kAbcId).substr(2)));
  EXPECT_TRUE(fs::is_regular_file(dir_ / "blobs" / "06" / std::string(kAbcId).substr(2)));
  auto got = blobs_->get(*id, 3);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, "abc");
  EXPECT_TRUE(blobs_->verify(*id));
  // The write went through tmp/ and nothing is left there.
  EXPECT_EQ(entries(dir_ / "blobs" / "tmp"), 0u);
}

TEST_F(StoreBlob, BinaryLargeAndEmptyBodies) {
  std::string big(3 * 1024 * 1024 + 7, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 % 251);
  auto id = blobs_->put(big);
  ASSERT_TRUE(id);
  EXPECT_EQ(blobs_->get(*id, big.size()).value_or(""), big);
  auto empty = blobs_->put("");
  ASSERT_TRUE(empty);
  auto got = blobs_->get(*empty, 0);
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->empty());
}

// FETCH reads bodies straight into a response buffer that already holds
// earlier messages: the bytes land after them, whatever the buffer's
// capacity, and a failed read leaves the buffer as it was.
TEST_F(StoreBlob, AppendToKeepsWhatTheBufferHeld) {
  std::string body(5082, 'x');
  auto id = blobs_->put(body);
  ASSERT_TRUE(id);
  for (size_t held : {size_t{0}, size_t{7}, size_t{6200}, size_t{100000}}) {
    std::string out(held, 'a');
    ASSERT_TRUE(blobs_->appendTo(*id, body.size(), out));
    EXPECT_EQ(out.size(), held + body.size());
    EXPECT_EQ(out.substr(held), body);
    EXPECT_EQ(out.substr(0, held), std::string(held, 'a'));
    EXPECT_EQ(blobs_->appendTo(*id, body.size() + 1, out).error().kind, ErrorKind::Corrupt);
    EXPECT_EQ(out.size(), held + body.size());
  }
}

TEST_F(StoreBlob, IdenticalContentIsStoredOnce) {
  auto a = blobs_->put("same body");
  ASSERT_TRUE(a);
  struct stat before {};
  ASSERT_EQ(::stat(blobs_->pathOf(*a)->c_str(), &before), 0);
  auto b = blobs_->put("same body");
  ASSERT_TRUE(b);
  EXPECT_EQ(*a, *b);
  struct stat after {};
  ASSERT_EQ(::stat(blobs_->pathOf(*b)->c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);  // reused, not rewritten
  EXPECT_EQ(entries(blobs_->pathOf(*a)->parent_path()), 1u);
  EXPECT_EQ(entries(dir_ / "blobs" / "tmp"), 0u);
}

TEST_F(StoreBlob, TornCopyIsReplacedByPut) {
  auto path = blobs_->pathOf(kAbcId).value();
  fs::create_directories(path.parent_path());
  writeFile(path, "ab");  // a truncated copy
  EXPECT_EQ(blobs_->get(kAbcId, 3).error().kind, ErrorKind::Corrupt);
  ASSERT_TRUE(blobs_->put("abc"));
  EXPECT_EQ(blobs_->get(kAbcId, 3).value_or(""), "abc");
}

// Same name, same size, other bytes: a torn copy of this content is replaced
// as above; anything else is another content that owns the XXH3 name (anyone
// can make such a collision), which stays, and this content is stored under
// its SHA-256 name. Neither is mistaken for the other.
TEST_F(StoreBlob, SameSizeOtherBytesAreNotReused) {
  auto path = blobs_->pathOf(kAbcId).value();
  writeFile(path, "abd");  // damaged: does not hash to its name
  ASSERT_EQ(blobs_->put("abc").value_or(""), kAbcId);
  EXPECT_EQ(blobs_->get(kAbcId, 3).value_or(""), "abc");

  EXPECT_TRUE(blobs_->matchesId(kAbcId, "abc"));
  EXPECT_FALSE(blobs_->matchesId(kAbcId, "abd"));
  EXPECT_TRUE(blobs_->matchesId(kAbcStrongId, "abc"));
}

// Every non-empty content gets the same fast name here: the first owns it,
// the others (same size or not) go under their SHA-256 names, each readable
// with its own bytes; an identical put still reuses the owner's file.
TEST_F(StoreBlob, ACollisionGoesUnderTheStrongName) {
  auto collide = [](std::string_view b) { return std::string(32, b.empty() ? '0' : 'c'); };
  auto bs = BlobStore::open(dir_ / "colliding", {.fastId = +collide});
  ASSERT_TRUE(bs);
  auto first = bs->put("abd");
  ASSERT_EQ(first.value_or(""), std::string(32, 'c'));
  auto second = bs->put("abc", true, BlobStore::Sync::Batch);
  ASSERT_EQ(second.value_or(""), kAbcStrongId);
  bs->unpin(*second);
  auto third = bs->put("longer content");
  ASSERT_TRUE(third);
  EXPECT_EQ(third->size(), 64u);
  EXPECT_EQ(bs->get(*first).value_or(""), "abd");
  EXPECT_EQ(bs->get(*second).value_or(""), "abc");
  EXPECT_EQ(bs->get(*third).value_or(""), "longer content");
  EXPECT_EQ(bs->put("abd").value_or(""), *first);
  EXPECT_EQ(bs->put("abc").value_or(""), kAbcStrongId);
  EXPECT_TRUE(bs->verify(*first) && bs->verify(*second) && bs->verify(*third));
}

// Stores from before XXH3 ids name their blobs by SHA-256: still valid ids,
// readable, verifiable, kept by gc when referenced.
TEST_F(StoreBlob, Sha256NamedBlobsStillWork) {
  auto path = blobs_->pathOf(kAbcStrongId).value();
  writeFile(path, "abc");
  EXPECT_EQ(blobs_->get(kAbcStrongId, 3).value_or(""), "abc");
  EXPECT_TRUE(blobs_->verify(kAbcStrongId));
  auto gc = blobs_->gc({kAbcStrongId});
  ASSERT_TRUE(gc);
  EXPECT_EQ(gc->blobsRemoved, 0u);
  EXPECT_TRUE(blobs_->exists(kAbcStrongId));
}

TEST_F(StoreBlob, MissingBlobIsCorruptNamingId) {
  auto got = blobs_->get(kAbcId);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, ErrorKind::Corrupt);
  EXPECT_NE(got.error().message.find(kAbcId), std::string::npos) << got.error().message;
}

TEST_F(StoreBlob, WrongSizeAndTamperingAreCorrupt) {
  auto id = blobs_->put("abc");
  ASSERT_TRUE(id);
  auto wrong = blobs_->get(*id, 4);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().kind, ErrorKind::Corrupt);
  writeFile(*blobs_->pathOf(*id), "abd");
  auto v = blobs_->verify(*id);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().kind, ErrorKind::Corrupt);
}

TEST_F(StoreBlob, InvalidIdsNeverBecomePaths) {
  EXPECT_FALSE(blobs_->pathOf("../../etc/passwd"));
  EXPECT_FALSE(blobs_->pathOf(std::string(64, 'A')));  // upper case is not ours
  EXPECT_FALSE(blobs_->get("tmp"));
  EXPECT_FALSE(blobs_->remove(""));
  EXPECT_FALSE(blobs_->exists("zz"));
}

TEST_F(StoreBlob, RemoveIsIdempotent) {
  auto id = blobs_->put("abc");
  ASSERT_TRUE(id);
  EXPECT_TRUE(blobs_->remove(*id));
  EXPECT_FALSE(blobs_->exists(*id));
  EXPECT_EQ(blobs_->get(*id).error().kind, ErrorKind::Corrupt);
  EXPECT_TRUE(blobs_->remove(*id));
}

TEST_F(StoreBlob, GcDropsTmpLeftoversAndUnreferencedBlobs) {
  auto keep = blobs_->put("keep me");
  auto drop = blobs_->put("drop me");
  ASSERT_TRUE(keep && drop);
  writeFile(dir_ / "blobs" / "tmp" / "put-crashed", "half a messa");
  writeFile(dir_ / "blobs" / "README", "not ours");  // foreign files are left alone

  auto stats = blobs_->gc({*keep});
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(stats->tmpRemoved, 1u);
  EXPECT_EQ(stats->blobsRemoved, 1u);
  EXPECT_EQ(stats->bytesFreed, std::string("half a messa").size() + std::string("drop me").size());
  EXPECT_TRUE(blobs_->exists(*keep));
  EXPECT_FALSE(blobs_->exists(*drop));
  EXPECT_EQ(entries(dir_ / "blobs" / "tmp"), 0u);
  EXPECT_TRUE(fs::exists(dir_ / "blobs" / "README"));
}

// A put that fails after writing its temp file must not leave it behind: a
// regular file where the fan-out dir "ba" belongs makes the rename fail.
TEST_F(StoreBlob, FailedPutLeavesNoTempFile) {
  fs::remove(dir_ / "blobs" / "06");  // made by open()
  writeFile(dir_ / "blobs" / "06", "in the way");
  auto id = blobs_->put("abc");
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().kind, ErrorKind::Io);
  EXPECT_NE(id.error().message.find((dir_ / "blobs" / "06").string()), std::string::npos) << id.error().message;
  EXPECT_EQ(entries(dir_ / "blobs" / "tmp"), 0u);
}

// A failed filesystem sync fails that batch and every later one, even when a
// later syncfs would succeed: the kernel reports a write-back error to one
// syncfs only, and the lost pages may be another batch's.
TEST_F(StoreBlob, AFailedBatchSyncStaysFailed) {
  static int calls = 0;
  calls = 0;
  auto failOnce = [](int) {
    if (++calls > 1) return 0;
    errno = EIO;
    return -1;
  };
  auto bs = BlobStore::open(dir_ / "syncfail", {.syncfs = +failOnce});
  ASSERT_TRUE(bs);
  ASSERT_TRUE(bs->put("a", false, BlobStore::Sync::Batch));
  auto first = bs->syncBatch();
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().kind, ErrorKind::Io);
  ASSERT_TRUE(bs->put("b", false, BlobStore::Sync::Batch));
  auto second = bs->syncBatch();
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("restart"), std::string::npos) << second.error().message;
  EXPECT_EQ(calls, 1);
}

// New content goes straight to its final name: a write that fails half-way
// (here the file size limit, EFBIG) must not leave the torn file there, nor
// anything in tmp/, and the same content stored later is whole.
TEST_F(StoreBlob, AFailedWriteLeavesNoTornFile) {
  std::string big(64 * 1024, 'z');
  struct rlimit before {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &before), 0);
  auto oldHandler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = before;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  auto id = blobs_->put(big, false, BlobStore::Sync::Batch);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &before), 0);
  ::signal(SIGXFSZ, oldHandler);
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().kind, ErrorKind::Io);
  EXPECT_FALSE(fs::exists(*blobs_->pathOf(BlobStore::idOf(big))));
  EXPECT_EQ(entries(dir_ / "blobs" / "tmp"), 0u);
  auto again = blobs_->put(big);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(blobs_->get(*again, big.size()).value_or(""), big);
}

// open() makes the 256 fan-out directories; a put whose directory went
// missing since makes it again.
TEST_F(StoreBlob, FanOutDirsExistAndAMissingOneIsRemade) {
  EXPECT_EQ(entries(dir_ / "blobs"), 257u);  // 00..ff and tmp
  std::string id = BlobStore::idOf("abc");
  fs::remove(dir_ / "blobs" / id.substr(0, 2));
  auto put = blobs_->put("abc");
  ASSERT_TRUE(put) << put.error().message;
  EXPECT_EQ(blobs_->get(id).value(), "abc");
}

// Sync::Batch: written and readable at once, durable after syncBatch(); an
// identical Sync::Now put reuses the file.
TEST_F(StoreBlob, BatchPutsThenOneSync) {
  auto a = blobs_->put("first", true, BlobStore::Sync::Batch);
  auto b = blobs_->put("second", false, BlobStore::Sync::Batch);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(blobs_->syncBatch());
  EXPECT_EQ(blobs_->get(*a).value(), "first");
  EXPECT_EQ(blobs_->get(*b).value(), "second");
  EXPECT_EQ(blobs_->put("first").value(), *a);
  EXPECT_EQ(entries(dir_ / "blobs" / "tmp"), 0u);
  // Pinned by the batch put: a remove leaves it for its row.
  ASSERT_TRUE(blobs_->remove(*a));
  EXPECT_TRUE(blobs_->exists(*a));
  blobs_->unpin(*a);
}

TEST(StoreBlobOpen, UncreatableRootNamesPath) {
  auto r = BlobStore::open("/dev/null/blobs");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Io);
  EXPECT_NE(r.error().message.find("/dev/null/blobs"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace mb::store
