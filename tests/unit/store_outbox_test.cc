// Outbox store operations: durable enqueue, per-recipient results, due list,
// retry/removal with blob cleanup, and the retry schedule.
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "daemon/store/outbox.h"
#include "daemon/store/store.h"
#include "tests/unit/store_fixture.h"

namespace mb::store {
namespace {

namespace fs = std::filesystem;

class OutboxTest : public StoreFixture {
 protected:
  OutboxTest() : StoreFixture("mb-outbox") {}
  void SetUp() override {
    open();
    account_ = account("a");
  }
  int64_t enqueue(std::string body, std::vector<std::string> rcpts = {"b@example.net", "c@example.net"}) {
    auto id = enqueueOutbox(*store_, {account_, "a@example.org", rcpts, body});
    EXPECT_TRUE(id) << id.error().message;
    return id.value_or(0);
  }

  int64_t account_ = 0;
};

TEST_F(OutboxTest, EnqueueIsDurableAcrossReopen) {
  int64_t id = enqueue("Subject: x\r\n\r\nhello\r\n");
  open();  // a restart: startup GC must keep the outbox blob
  auto item = findOutbox(*store_, id);
  ASSERT_TRUE(item && *item);
  const OutboxItem& it = **item;
  EXPECT_EQ(it.accountId, account_);
  EXPECT_EQ(it.mailFrom, "a@example.org");
  ASSERT_EQ(it.recipients.size(), 2u);
  EXPECT_EQ(it.recipients[0].address, "b@example.net");
  EXPECT_EQ(it.recipients[0].state, RecipientState::Pending);
  EXPECT_EQ(it.state, kOutboxQueued);
  EXPECT_EQ(it.createdAt, now_);
  EXPECT_EQ(it.nextAttempt, now_);
  EXPECT_EQ(it.size, 21u);
  EXPECT_TRUE(it.hasPending());
  auto body = outboxBody(*store_, it);
  ASSERT_TRUE(body);
  EXPECT_EQ(*body, "Subject: x\r\n\r\nhello\r\n");
}

TEST_F(OutboxTest, EnqueueNeedsRecipients) {
  auto id = enqueueOutbox(*store_, {account_, "a@example.org", {}, "x"});
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().kind, ErrorKind::User);
}

TEST_F(OutboxTest, EnqueueForUnknownAccountFailsAndLeavesNoBlob) {
  auto id = enqueueOutbox(*store_, {account_ + 99, "a@example.org", {"b@x"}, "orphan body"});
  ASSERT_FALSE(id);
  EXPECT_FALSE(store_->blobs().exists(BlobStore::idOf("orphan body")));
}

TEST_F(OutboxTest, DueListAndAttemptBookkeeping) {
  int64_t first = enqueue("one");
  now_ += 1;
  int64_t second = enqueue("two");
  auto due = dueOutbox(*store_, now_);
  ASSERT_TRUE(due);
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[0].id, first);
  EXPECT_EQ(*dueOutboxIds(*store_, now_, account_, 10), (std::vector<int64_t>{first, second}));
  EXPECT_EQ(*dueOutboxIds(*store_, now_, account_, 1), (std::vector<int64_t>{first}));
  EXPECT_TRUE(dueOutboxIds(*store_, now_, account_ + 1, 10)->empty());

  auto item = **findOutbox(*store_, first);
  item.recipients[0].state = RecipientState::Sent;
  item.recipients[0].code = 250;
  item.recipients[1].code = 451;
  item.recipients[1].status = "4.3.0";
  item.recipients[1].diagnostic = "try later \xff";  // not UTF-8: stored, not thrown
  ASSERT_TRUE(recordOutboxAttempt(*store_, first, item.recipients, now_ + 60, "451 4.3.0 try later", kOutboxQueued));

  due = dueOutbox(*store_, now_);
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].id, second);
  EXPECT_EQ(*dueOutboxIds(*store_, now_, account_, 10), (std::vector<int64_t>{second}));
  auto next = nextOutboxAttempt(*store_);
  ASSERT_TRUE(next && *next);
  EXPECT_EQ(**next, now_);

  auto again = **findOutbox(*store_, first);
  EXPECT_EQ(again.attempts, 1);
  EXPECT_EQ(again.nextAttempt, now_ + 60);
  EXPECT_EQ(again.lastError, "451 4.3.0 try later");
  EXPECT_EQ(again.recipients[0].state, RecipientState::Sent);
  EXPECT_EQ(again.recipients[1].state, RecipientState::Pending);
  EXPECT_EQ(again.recipients[1].status, "4.3.0");
  EXPECT_EQ(dueOutbox(*store_, now_ + 60)->size(), 2u);
}

TEST_F(OutboxTest, FailedRowsLeaveTheDueListUntilRetried) {
  int64_t id = enqueue("bounce me");
  auto item = **findOutbox(*store_, id);
  item.recipients[0].state = RecipientState::Failed;
  item.recipients[0].code = 550;
  item.recipients[1].state = RecipientState::Sent;
  ASSERT_TRUE(recordOutboxAttempt(*store_, id, item.recipients, now_, "550 no such user", kOutboxFailed));
  EXPECT_TRUE(dueOutbox(*store_, now_ + 1000)->empty());
  EXPECT_FALSE(nextOutboxAttempt(*store_)->has_value());

  now_ += 5;
  ASSERT_TRUE(retryOutbox(*store_, id, now_));
  auto again = **findOutbox(*store_, id);
  EXPECT_EQ(again.state, kOutboxQueued);
  EXPECT_EQ(again.nextAttempt, now_);
  EXPECT_EQ(again.recipients[0].state, RecipientState::Pending);
  EXPECT_EQ(again.recipients[1].state, RecipientState::Sent);  // not sent twice
  EXPECT_EQ(dueOutbox(*store_, now_)->size(), 1u);
}

TEST_F(OutboxTest, CopyingRowsAreFoundAfterRestart) {
  int64_t id = enqueue("copy");
  ASSERT_TRUE(setOutboxState(*store_, id, kOutboxCopying));
  open();
  auto rows = copyingOutbox(*store_);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].id, id);
  EXPECT_TRUE(dueOutbox(*store_, now_)->empty());
  EXPECT_EQ(retryOutbox(*store_, id, now_).error().kind, ErrorKind::Conflict);
}

TEST_F(OutboxTest, RemoveDeletesRowAndUnsharedBlob) {
  int64_t a = enqueue("same body");
  int64_t b = enqueue("same body");
  std::string blob = BlobStore::idOf("same body");
  ASSERT_TRUE(removeOutbox(*store_, a));
  EXPECT_TRUE(store_->blobs().exists(blob));  // still used by b
  ASSERT_TRUE(removeOutbox(*store_, b));
  EXPECT_FALSE(store_->blobs().exists(blob));
  EXPECT_EQ(removeOutbox(*store_, b).error().kind, ErrorKind::NotFound);
  EXPECT_EQ(retryOutbox(*store_, b, now_).error().kind, ErrorKind::NotFound);
  EXPECT_TRUE(listOutbox(*store_)->empty());
}

TEST_F(OutboxTest, RemoveKeepsBlobSharedWithAMailbox) {
  auto mbox = store_->createMailbox(account_, "Sent");
  ASSERT_TRUE(mbox);
  ASSERT_TRUE(store_->appendMessage(mbox->id, NewMessage{"shared"}));
  int64_t id = enqueue("shared");
  ASSERT_TRUE(removeOutbox(*store_, id));
  EXPECT_TRUE(store_->blobs().exists(BlobStore::idOf("shared")));
}

// Group commit: bodies written first (any thread), rows of a batch in one
// transaction; a bad row fails alone and its orphan body goes, a pinned body
// survives a removal of the same content until its row exists.
TEST_F(OutboxTest, CommitBatchInsertsAllRowsAndIsolatesABadOne) {
  std::vector<std::string> bodies = {"one", "two", "three"};
  std::vector<WrittenOutboxMessage> batch;
  for (const auto& b : bodies) {
    auto blob = writeOutboxBody(store_->blobs(), b);
    ASSERT_TRUE(blob) << blob.error().message;
    batch.push_back({NewOutboxMessage{account_, "a@example.org", {"b@example.net"}, b}, *blob});
  }
  batch[1].message.accountId = account_ + 99;  // no such account: a foreign key error
  auto ids = commitOutbox(*store_, batch);
  ASSERT_EQ(ids.size(), 3u);
  ASSERT_TRUE(ids[0]);
  EXPECT_FALSE(ids[1]);
  ASSERT_TRUE(ids[2]);
  EXPECT_FALSE(store_->blobs().exists(BlobStore::idOf("two")));
  open();  // durable: a restart keeps both rows and their bodies
  auto items = listOutbox(*store_);
  ASSERT_TRUE(items);
  ASSERT_EQ(items->size(), 2u);
  EXPECT_EQ(*outboxBody(*store_, (*items)[0]), "one");
  EXPECT_EQ(*outboxBody(*store_, (*items)[1]), "three");
}

TEST_F(OutboxTest, PinnedBodySurvivesRemovalOfTheSameContent) {
  int64_t old = enqueue("same");
  auto blob = writeOutboxBody(store_->blobs(), "same");  // reuses the existing file
  ASSERT_TRUE(blob);
  ASSERT_TRUE(removeOutbox(*store_, old));  // its row was the last user, but the body is pinned
  EXPECT_TRUE(store_->blobs().exists(*blob));
  auto ids = commitOutbox(*store_, {{NewOutboxMessage{account_, "a@example.org", {"b@example.net"}, "same"}, *blob}});
  ASSERT_TRUE(ids.front());
  auto item = findOutbox(*store_, *ids.front());
  ASSERT_TRUE(item && *item);
  EXPECT_EQ(*outboxBody(*store_, **item), "same");
  ASSERT_TRUE(removeOutbox(*store_, *ids.front()));  // unpinned by the commit: now it goes
  EXPECT_FALSE(store_->blobs().exists(*blob));
}

TEST_F(OutboxTest, RemoveManyInOneCommit) {
  int64_t a = enqueue("a"), b = enqueue("b"), c = enqueue("c");
  ASSERT_TRUE(removeOutbox(*store_, std::vector<int64_t>{a, c, 12345}));
  auto items = listOutbox(*store_);
  ASSERT_EQ(items->size(), 1u);
  EXPECT_EQ(items->front().id, b);
  EXPECT_FALSE(store_->blobs().exists(BlobStore::idOf("a")));
  EXPECT_TRUE(store_->blobs().exists(BlobStore::idOf("b")));
}

TEST_F(OutboxTest, AccountRemovalDropsItsOutbox) {
  enqueue("gone with the account");
  ASSERT_TRUE(store_->removeAccount(account_));
  EXPECT_TRUE(listOutbox(*store_)->empty());
  EXPECT_FALSE(store_->blobs().exists(BlobStore::idOf("gone with the account")));
}

TEST(RetrySchedule, DoublesFromInitialUpToTheCap) {
  // unit 0.5 -> jitter factor 1.0
  EXPECT_EQ(retryDelaySeconds(1, 60, 3600, 0.5), 60);
  EXPECT_EQ(retryDelaySeconds(2, 60, 3600, 0.5), 120);
  EXPECT_EQ(retryDelaySeconds(3, 60, 3600, 0.5), 240);
  EXPECT_EQ(retryDelaySeconds(6, 60, 3600, 0.5), 1920);
  EXPECT_EQ(retryDelaySeconds(7, 60, 3600, 0.5), 3600);
  EXPECT_EQ(retryDelaySeconds(1000, 60, 3600, 0.5), 3600);  // no overflow
  EXPECT_EQ(retryDelaySeconds(0, 60, 3600, 0.5), 60);
}

TEST(RetrySchedule, JitterStaysWithinAQuarter) {
  for (int attempts = 1; attempts < 12; ++attempts) {
    int64_t mid = retryDelaySeconds(attempts, 10, 1000, 0.5);
    for (double u : {0.0, 0.1, 0.49, 0.51, 0.9, 0.999999, 1.0, -1.0}) {
      int64_t d = retryDelaySeconds(attempts, 10, 1000, u);
      EXPECT_GE(d, mid * 3 / 4) << attempts << " " << u;
      EXPECT_LE(d, mid * 5 / 4) << attempts << " " << u;
    }
  }
  EXPECT_EQ(retryDelaySeconds(1, 1, 1, 0.0), 1);  // never zero
  EXPECT_NE(retryDelaySeconds(3, 60, 3600, 0.0), retryDelaySeconds(3, 60, 3600, 0.9));
}

}  // namespace
}  // namespace mb::store
