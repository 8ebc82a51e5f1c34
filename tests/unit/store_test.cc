// Store: opening (migrations, WAL, refusing what is not ours, crash GC) and
// the account / mailbox / message operations the rest of the daemon uses.
#include <sqlite3.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "daemon/store/message_ops.h"
#include "daemon/store/migrations.h"
#include "daemon/store/store.h"
#include "tests/unit/store_fixture.h"

namespace mb::store {
namespace {

namespace fs = std::filesystem;

using test::readFile;

// Runs SQL on a db file with a plain connection, outside the Store.
void rawExec(const fs::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(h);
  ASSERT_EQ(rc, SQLITE_OK) << msg;
}

std::string rawQueryText(const fs::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  if (sqlite3_open(db.c_str(), &h) != SQLITE_OK) return "<open failed>";
  sqlite3_stmt* st = nullptr;
  std::string out = "<no row>";
  if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    const unsigned char* t = sqlite3_column_text(st, 0);
    out = t ? reinterpret_cast<const char*>(t) : "<null>";
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return out;
}

class StoreTest : public StoreFixture {
 protected:
  fs::path dbPath() const { return dir_ / "mailbridge.db"; }

  // An account with an INBOX, for message tests.
  std::pair<int64_t, int64_t> accountWithInbox(const std::string& name) {
    auto acct = store_->ensureAccount(name, name + "@example.org", AccountSource::Config);
    EXPECT_TRUE(acct);
    auto mbox = store_->createMailbox(acct.value_or(0), "INBOX");
    EXPECT_TRUE(mbox);
    return {acct.value_or(0), mbox ? mbox->id : 0};
  }
};

TEST_F(StoreTest, MigratesAnEmptyDirToTheLatestSchema) {
  open();
  EXPECT_EQ(count("PRAGMA user_version"), latestSchemaVersion());
  EXPECT_EQ(count("PRAGMA application_id"), kApplicationId);
  for (const char* table : {"accounts", "mailboxes", "messages", "journal", "outbox"}) {
    EXPECT_EQ(count(std::string("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '") + table + "'"), 1)
        << table;
  }
  EXPECT_EQ(count("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'messages_by_modseq'"), 1);
  // Migration versions are 1..N without gaps, which migrate() relies on.
  int expected = 1;
  for (const auto& m : migrations()) EXPECT_EQ(m.version, expected++);
}

TEST_F(StoreTest, WalModeFullSyncAndForeignKeys) {
  open();
  EXPECT_EQ(rawQueryText(dbPath(), "PRAGMA journal_mode"), "wal");  // persistent, seen by any connection
  EXPECT_EQ(count("PRAGMA synchronous"), 2);                          // FULL
  EXPECT_EQ(count("PRAGMA foreign_keys"), 1);
  // On whatever the library's default (Debian's is on, others off): what is
  // deleted is zeroed.
  EXPECT_EQ(count("PRAGMA secure_delete"), 1);
}

TEST_F(StoreTest, ReopeningKeepsData) {
  open();
  auto [acct, mbox] = accountWithInbox("alice");
  NewMessage msg;
  msg.bytes = "Subject: hi\r\n\r\nbody\r\n";
  msg.flags = kFlagSeen | kFlagFlagged;
  msg.keywords = {"$Forwarded", "work"};
  msg.internalDate = 1600000000;
  ASSERT_TRUE(store_->appendMessage(mbox, msg));
  store_.reset();

  open();
  auto found = store_->findAccount("alice");
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->id, acct);
  EXPECT_EQ((*found)->address, "alice@example.org");
  EXPECT_EQ((*found)->source, AccountSource::Config);
  EXPECT_EQ((*found)->createdAt, now_);
  auto box = store_->findMailbox(acct, "INBOX");
  ASSERT_TRUE(box && *box);
  EXPECT_EQ((*box)->uidNext, 2u);
  auto msgs = listMessages(*store_, mbox);
  ASSERT_TRUE(msgs);
  ASSERT_EQ(msgs->size(), 1u);
  EXPECT_EQ((*msgs)[0].uid, 1u);
  EXPECT_EQ((*msgs)[0].flags, kFlagSeen | kFlagFlagged);
  EXPECT_EQ((*msgs)[0].keywords, (std::vector<std::string>{"$Forwarded", "work"}));
  EXPECT_EQ((*msgs)[0].internalDate, 1600000000);
  EXPECT_EQ((*msgs)[0].size, msg.bytes.size());
  EXPECT_EQ(store_->blobs().get((*msgs)[0].blobId, (*msgs)[0].size).value_or(""), msg.bytes);
}

TEST_F(StoreTest, RefusesASchemaFromTheFutureWithoutTouchingIt) {
  rawExec(dbPath(), "CREATE TABLE accounts (id INTEGER PRIMARY KEY); PRAGMA user_version = 99;");
  std::string before = readFile(dbPath());
  auto s = Store::open(dir_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind, ErrorKind::Config);
  EXPECT_NE(s.error().message.find("created by a newer mailbridge"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find(dbPath().string()), std::string::npos) << s.error().message;
  EXPECT_EQ(readFile(dbPath()), before);
  EXPECT_EQ(rawQueryText(dbPath(), "PRAGMA journal_mode"), "delete");  // not switched to WAL either
}

TEST_F(StoreTest, RefusesAFileThatIsNotADatabaseAndLeavesItByteIdentical) {
  std::string garbage;
  for (int i = 0; i < 500; ++i) garbage += "this is my thesis, not a database " + std::to_string(i) + "\n";
  std::ofstream(dbPath(), std::ios::binary) << garbage;
  auto s = Store::open(dir_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind, ErrorKind::Corrupt);
  EXPECT_NE(s.error().message.find(dbPath().string() + ": file is not a database"), std::string::npos)
      << s.error().message;
  EXPECT_EQ(readFile(dbPath()), garbage);
  EXPECT_FALSE(fs::exists(dir_ / "mailbridge.db-wal"));
  EXPECT_FALSE(fs::exists(dir_ / "blobs"));  // refused before anything else was created
}

TEST_F(StoreTest, RefusesAnotherProgramsDatabase) {
  rawExec(dbPath(), "CREATE TABLE photos (id INTEGER PRIMARY KEY);");
  std::string before = readFile(dbPath());
  auto s = Store::open(dir_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind, ErrorKind::Config);
  EXPECT_EQ(readFile(dbPath()), before);
}

TEST_F(StoreTest, EnsureAccountIsIdempotentAndGuardsItsSource) {
  open();
  auto a = store_->ensureAccount("work", "me@work.example", AccountSource::Config);
  ASSERT_TRUE(a);
  auto again = store_->ensureAccount("work", "me2@work.example", AccountSource::Config);
  ASSERT_TRUE(again);
  EXPECT_EQ(*a, *again);
  EXPECT_EQ(store_->findAccount("work").value().value().address, "me2@work.example");
  auto clash = store_->ensureAccount("work", "x@y", AccountSource::Api);
  ASSERT_FALSE(clash);
  EXPECT_EQ(clash.error().kind, ErrorKind::Conflict);
  ASSERT_TRUE(store_->ensureAccount("home", "me@home.example", AccountSource::Api));
  auto all = store_->listAccounts();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[1].name, "home");
  EXPECT_EQ((*all)[1].source, AccountSource::Api);
  EXPECT_EQ(store_->findAccount("nobody").value(), std::nullopt);
}

TEST_F(StoreTest, MailboxesGetFreshUidValidityEvenWithinOneSecondOrAClockStepBack) {
  open();
  auto acct = store_->ensureAccount("a", "a@example.org", AccountSource::Config).value();
  auto inbox = store_->createMailbox(acct, "INBOX");
  ASSERT_TRUE(inbox) << inbox.error().message;
  EXPECT_EQ(inbox->uidValidity, static_cast<uint32_t>(now_));
  EXPECT_EQ(inbox->uidNext, 1u);
  EXPECT_EQ(inbox->highestModseq, 1u);
  auto sent = store_->createMailbox(acct, "Sent", "\\Sent");
  ASSERT_TRUE(sent);
  EXPECT_EQ(sent->uidValidity, static_cast<uint32_t>(now_ + 1));  // same second, still new
  now_ -= 3600;
  auto trash = store_->createMailbox(acct, "Trash", "\\Trash");
  ASSERT_TRUE(trash);
  EXPECT_GT(trash->uidValidity, sent->uidValidity);

  auto dup = store_->createMailbox(acct, "INBOX");
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().kind, ErrorKind::Conflict);
  auto orphan = store_->createMailbox(acct + 100, "INBOX");
  ASSERT_FALSE(orphan);
  EXPECT_EQ(orphan.error().kind, ErrorKind::NotFound);

  auto list = store_->listMailboxes(acct);
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 3u);
  auto found = store_->findMailbox(acct, "Sent").value();
  ASSERT_TRUE(found);
  EXPECT_EQ(found->specialUse, "\\Sent");
  EXPECT_EQ(found->uidValidity, sent->uidValidity);
  EXPECT_EQ(store_->findMailbox(acct, "Nope").value(), std::nullopt);
}

TEST_F(StoreTest, AppendAssignsIncreasingUidsAndModseqsAndJournalsInTheSameCommit) {
  open();
  auto [acct, mbox] = accountWithInbox("a");
  uint32_t lastUid = 0;
  uint64_t lastModseq = 1;  // a new mailbox starts at HIGHESTMODSEQ 1
  for (int i = 0; i < 5; ++i) {
    std::string body = "Subject: " + std::to_string(i) + "\r\n\r\nx\r\n";
    NewMessage msg;
    msg.bytes = body;
    msg.internalDate = 1600000000 + i;
    if (i % 2 == 0) msg.journal = JournalEntry{"append", "{\"uid\":" + std::to_string(i + 1) + "}"};
    auto r = store_->appendMessage(mbox, msg);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->uid, lastUid + 1);
    EXPECT_GT(r->modseq, lastModseq);
    lastUid = r->uid;
    lastModseq = r->modseq;
    EXPECT_TRUE(store_->blobs().exists(r->blobId));
  }
  auto box = store_->findMailbox(acct, "INBOX").value().value();
  EXPECT_EQ(box.uidNext, 6u);
  EXPECT_EQ(box.highestModseq, lastModseq);
  auto msgs = listMessages(*store_, mbox).value();
  ASSERT_EQ(msgs.size(), 5u);
  for (size_t i = 0; i < msgs.size(); ++i) EXPECT_EQ(msgs[i].uid, i + 1);
  EXPECT_EQ(count("SELECT count(*) FROM journal WHERE op = 'append' AND account_id = " + std::to_string(acct)), 3);
}

TEST_F(StoreTest, AppendToAMissingMailboxWritesNothing) {
  open();
  NewMessage msg;
  msg.bytes = "orphan";
  auto r = store_->appendMessage(12345, msg);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::NotFound);
  EXPECT_FALSE(store_->blobs().exists(BlobStore::idOf("orphan")));
}

TEST_F(StoreTest, AFailedCommitTakesItsBlobAlong) {
  open();
  auto [acct, mbox] = accountWithInbox("a");
  // A trigger stands in for any failure between blob write and commit
  // (disk full, constraint): the row must not exist and neither may the blob.
  ASSERT_TRUE(store_->db().exec(
      "CREATE TEMP TRIGGER fail_append BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'injected'); END"));
  NewMessage msg;
  msg.bytes = "doomed";
  auto r = store_->appendMessage(mbox, msg);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("injected"), std::string::npos) << r.error().message;
  EXPECT_FALSE(store_->blobs().exists(BlobStore::idOf("doomed")));
  EXPECT_EQ(store_->findMailbox(acct, "INBOX").value()->uidNext, 1u);
  EXPECT_FALSE(store_->db().inTransaction());
}

// The sync engine's two steps: prepareMessage on a pool thread, then
// commitMessages on the owner thread.
TEST_F(StoreTest, APreparedBodyIsPinnedUntilItsRowCommits) {
  open();
  auto [acct, mbox] = accountWithInbox("a");
  std::string body = "Subject: s\r\n\r\nbare LF\n";
  Result<PreparedMessage> p;
  std::thread([&] { p = Store::prepareMessage(store_->blobs(), body, true); }).join();
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_TRUE(p->normalized);
  ASSERT_TRUE(p->analysis);
  // The owner thread drops an unreferenced blob of the same content meanwhile
  // (an expunge): the pin keeps it for the row to come.
  store_->releaseBlob(p->blobId);
  ASSERT_TRUE(store_->blobs().exists(p->blobId));
  NewMessage m;
  m.bytes = body;
  m.upstreamId = "7";
  auto r = store_->commitMessages(mbox, std::span(&m, 1), std::span(&*p, 1));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->front().blobId, p->blobId);
  EXPECT_EQ(store_->blobs().get(p->blobId).value(), "Subject: s\r\n\r\nbare LF\r\n");
  auto msgs = listMessages(*store_, mbox);
  ASSERT_TRUE(msgs);
  ASSERT_EQ(msgs->size(), 1u);
  EXPECT_EQ(msgs->front().size, body.size() + 1);
}

TEST_F(StoreTest, APreparedBodyWhoseCommitFailsOrIsDiscardedGoes) {
  open();
  auto [acct, mbox] = accountWithInbox("a");
  auto p = Store::prepareMessage(store_->blobs(), "discarded", true);
  ASSERT_TRUE(p);
  store_->discardPrepared(std::span(&*p, 1));
  EXPECT_FALSE(store_->blobs().exists(p->blobId));

  auto q = Store::prepareMessage(store_->blobs(), "bad keyword", true);
  ASSERT_TRUE(q);
  NewMessage m;
  m.bytes = "bad keyword";
  m.keywords = {"two words"};
  EXPECT_FALSE(store_->commitMessages(mbox, std::span(&m, 1), std::span(&*q, 1)));
  EXPECT_FALSE(store_->blobs().exists(q->blobId));
  EXPECT_EQ(store_->findMailbox(acct, "INBOX").value()->uidNext, 1u);
}

TEST_F(StoreTest, ACrashBetweenBlobAndRowLeavesNothingAfterReopen) {
  open();
  auto [acct, mbox] = accountWithInbox("a");
  NewMessage kept;
  kept.bytes = "kept";
  auto k = store_->appendMessage(mbox, kept);
  ASSERT_TRUE(k);
  // The crash: a body written durably whose row never committed, and a put
  // interrupted before its rename.
  auto orphan = store_->blobs().put("never committed");
  ASSERT_TRUE(orphan);
  std::ofstream(dir_ / "blobs" / "tmp" / "put-interrupted") << "half";
  store_.reset();

  open();
  EXPECT_FALSE(store_->blobs().exists(*orphan));
  EXPECT_TRUE(store_->blobs().exists(k->blobId));
  EXPECT_TRUE(fs::is_empty(dir_ / "blobs" / "tmp"));
  // And the invariant the ordering exists for: no row points at a missing body.
  auto msgs = listMessages(*store_, mbox);  // a local: range-for over a temporary's value() dangles
  ASSERT_TRUE(msgs);
  ASSERT_EQ(msgs->size(), 1u);
  for (const auto& m : *msgs) {
    EXPECT_TRUE(store_->blobs().get(m.blobId, m.size)) << m.blobId;
  }
}

TEST_F(StoreTest, RemoveAccountCascadesAndKeepsBlobsOthersStillUse) {
  open();
  auto [alice, aliceBox] = accountWithInbox("alice");
  auto [bob, bobBox] = accountWithInbox("bob");
  NewMessage shared, own;
  shared.bytes = "the newsletter both got";
  own.bytes = "alice's private mail";
  own.journal = JournalEntry{"append", "{}"};
  auto s1 = store_->appendMessage(aliceBox, shared);
  auto s2 = store_->appendMessage(bobBox, shared);
  auto o = store_->appendMessage(aliceBox, own);
  ASSERT_TRUE(s1 && s2 && o);
  EXPECT_EQ(s1->blobId, s2->blobId);  // deduplicated across accounts
  ASSERT_TRUE(store_->db().exec("INSERT INTO outbox (account_id, mail_from, recipients, blob_id, size, created_at) "
                                "VALUES (" + std::to_string(alice) + ", 'a@x', '[]', '" + o->blobId + "', 1, 0)"));

  ASSERT_TRUE(store_->removeAccount(alice));
  EXPECT_EQ(store_->findAccount("alice").value(), std::nullopt);
  EXPECT_EQ(count("SELECT count(*) FROM mailboxes WHERE account_id = " + std::to_string(alice)), 0);
  EXPECT_EQ(count("SELECT count(*) FROM messages WHERE mailbox_id = " + std::to_string(aliceBox)), 0);
  EXPECT_EQ(count("SELECT count(*) FROM journal"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM outbox"), 0);
  EXPECT_FALSE(store_->blobs().exists(o->blobId));
  EXPECT_TRUE(store_->blobs().exists(s2->blobId));  // bob still has it
  EXPECT_EQ(listMessages(*store_, bobBox).value().size(), 1u);
  // Still zeroing what is deleted: the next removal (bob's) must be as clean.
  EXPECT_EQ(count("PRAGMA secure_delete"), 1);

  auto again = store_->removeAccount(alice);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind, ErrorKind::NotFound);
}

TEST_F(StoreTest, OpenNeedsAnExistingStateDir) {
  auto s = Store::open(dir_ / "missing");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find((dir_ / "missing").string()), std::string::npos) << s.error().message;
}

}  // namespace
}  // namespace mb::store

namespace mb::store {
namespace {

// Regression: appendMessage read a mailbox row and committed with that
// statement still stepped, which pinned the read snapshot so the WAL was
// never checkpointed (292 MB of WAL after 7,000 APPENDs, each page read
// slower than the last). The WAL must stay bounded by the auto-checkpoint.
TEST(StoreWal, AppendsAreCheckpointedBackIntoTheDatabase) {
  test::TempDir tmp("mb-store-wal");
  const fs::path& dir = tmp.path();
  {
    auto store = Store::open(dir);
    ASSERT_TRUE(store) << store.error().message;
    auto acct = (*store)->ensureAccount("w", "w@example.org", AccountSource::Config);
    auto mbox = (*store)->createMailbox(*acct, "INBOX");
    ASSERT_TRUE(mbox);
    std::string body = "Subject: wal\r\n\r\n" + std::string(3000, 'x') + "\r\n";
    for (int i = 0; i < 6000; ++i) {
      std::string msg = "Message-ID: <" + std::to_string(i) + "@w>\r\n" + body;
      NewMessage m;
      m.bytes = msg;
      ASSERT_TRUE((*store)->appendMessage(mbox->id, m));
    }
    // Auto-checkpoint every 4,000 pages (16 MB): well past that many WAL
    // frames (each append rewrites a few pages), frames must have been
    // copied into the main file (~2.7 MB of rows here; without a checkpoint
    // it keeps only the schema's few pages), and the WAL restarted rather
    // than grown.
    EXPECT_GT(fs::file_size(dir / "mailbridge.db"), 1u << 20);
    EXPECT_LT(fs::file_size(dir / "mailbridge.db-wal"), 24u << 20);
  }
}

}  // namespace
}  // namespace mb::store
