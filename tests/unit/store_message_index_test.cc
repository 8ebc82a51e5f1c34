// MessageIndex: the in-memory copy stays equal to what a fresh load from the
// db reads after every kind of write made elsewhere (APPEND, STORE, EXPUNGE,
// COPY/MOVE in and out, mailbox delete), and it gets there by deltas, not by
// reloading the mailbox.
#include "daemon/store/message_index.h"

#include <unistd.h>

#include <filesystem>
#include <tuple>

#include <gtest/gtest.h>

#include "daemon/store/mailbox_ops.h"
#include "daemon/store/message_ops.h"
#include "tests/unit/store_fixture.h"
#include "protocols/mime/search.h"

namespace mb::store {
namespace {

using Row = std::tuple<uint32_t, uint32_t, std::vector<std::string>, uint64_t, uint64_t, int64_t>;

std::vector<Row> rows(const IndexedMailbox& box) {
  std::vector<Row> out;
  for (const auto& m : box.messages)
    out.emplace_back(m.uid, m.flags, box.keywordSets.at(m.keywordSet), m.modseq, m.size, m.internalDate);
  return out;
}

class MessageIndexTest : public StoreFixture {
 protected:
  MessageIndexTest() : StoreFixture("mb-msgindex") {}
  void SetUp() override {
    open();
    account_ = accountWithMailboxes("alice");
    inbox_ = mailboxId(account_, "INBOX");
    trash_ = mailboxId(account_, "Trash");
    index_ = std::make_unique<MessageIndex>(*store_);
  }
  uint32_t append(int64_t box, std::string_view bytes, uint32_t flags = 0, std::vector<std::string> keywords = {}) {
    NewMessage m;
    m.bytes = bytes;
    m.flags = flags;
    m.keywords = std::move(keywords);
    m.internalDate = 1700000000 + static_cast<int64_t>(bytes.size());
    auto r = store_->appendMessage(box, m);
    EXPECT_TRUE(r) << r.error().message;
    return r ? r->uid : 0;
  }
  // The index's view next to a fresh load of the same mailbox.
  void expectCoherent(int64_t box) {
    auto mine = index_->mailbox(box);
    ASSERT_TRUE(mine) << mine.error().message;
    MessageIndex fresh(*store_);
    auto truth = fresh.mailbox(box);
    ASSERT_TRUE(truth) << truth.error().message;
    EXPECT_EQ(rows(**mine), rows(**truth));
    EXPECT_EQ((*mine)->uidNext, (*truth)->uidNext);
    EXPECT_EQ((*mine)->highestModseq, (*truth)->highestModseq);
  }

  // What fieldValues answers for every UID of the mailbox...
  std::vector<std::pair<uint32_t, std::string>> cached(MessageIndex& index, int64_t box, std::string_view field) {
    std::vector<uint32_t> uids;
    for (const auto& m : index.mailbox(box).value()->messages) uids.push_back(m.uid);
    std::vector<std::pair<uint32_t, std::string>> out;
    auto s = index.fieldValues(box, field, uids, [&](uint32_t uid, std::string_view v) { out.emplace_back(uid, v); });
    EXPECT_TRUE(s) << s.error().message;
    return out;
  }
  // ...next to the stored header blocks parsed afresh.
  std::vector<std::pair<uint32_t, std::string>> parsed(int64_t box, std::string_view field) {
    MessageIndex fresh(*store_);
    std::vector<uint32_t> uids;
    for (const auto& m : fresh.mailbox(box).value()->messages) uids.push_back(m.uid);
    std::vector<std::pair<uint32_t, std::string>> out;
    auto headers = storedHeaders(*store_, box, uids).value();
    for (const auto& h : headers)
      out.emplace_back(h.uid, mime::packFoldedValues(h.header, field));
    return out;
  }
  void expectFieldCoherent(int64_t box, std::string_view field) {
    auto truth = parsed(box, field);
    EXPECT_EQ(cached(*index_, box, field), truth) << field;
    EXPECT_EQ(truth.size(), index_->mailbox(box).value()->messages.size());
  }

  std::unique_ptr<MessageIndex> index_;
  int64_t account_ = 0, inbox_ = 0, trash_ = 0;
};

TEST_F(MessageIndexTest, FirstLoadReadsEveryRow) {
  append(inbox_, "Subject: a\r\n\r\nx\r\n", kFlagSeen, {"$Work"});
  append(inbox_, "Subject: bb\r\n\r\nyy\r\n");
  auto box = index_->mailbox(inbox_).value();
  ASSERT_EQ(box->messages.size(), 2u);
  EXPECT_EQ(box->messages[0].uid, 1u);
  EXPECT_EQ(box->messages[0].flags, uint32_t(kFlagSeen));
  EXPECT_EQ(box->keywordSets.at(box->messages[0].keywordSet), std::vector<std::string>{"$Work"});
  EXPECT_EQ(box->messages[1].keywordSet, 0u);
  EXPECT_EQ(box->messages[1].size, 19u);
  EXPECT_EQ(box->uidNext, 3u);
  EXPECT_EQ(index_->fullLoads(), 1u);
  // Unchanged: no query, same copy.
  EXPECT_EQ(index_->mailbox(inbox_).value(), box);
  EXPECT_EQ(index_->fullLoads(), 1u);
  EXPECT_EQ(index_->refreshes(), 0u);
}

TEST_F(MessageIndexTest, CoherentAfterAppendStoreExpungeMove) {
  for (int i = 0; i < 5; ++i) append(inbox_, "Subject: m" + std::to_string(i) + "\r\n\r\nbody\r\n");
  expectCoherent(inbox_);
  expectCoherent(trash_);

  // APPEND from another session.
  append(inbox_, "Subject: new\r\n\r\nnew body\r\n", kFlagFlagged, {"$Label1"});
  expectCoherent(inbox_);
  EXPECT_EQ(index_->mailbox(inbox_).value()->messages.back().uid, 6u);

  // STORE: flags and keywords, added and removed.
  std::vector<uint32_t> some{2, 4, 6};
  FlagUpdate add;
  add.mode = FlagMode::Add;
  add.flags = kFlagSeen | kFlagDeleted;
  add.keywords = {"$Work"};
  ASSERT_TRUE(updateFlags(*store_, inbox_, some, add));
  expectCoherent(inbox_);
  FlagUpdate remove;
  remove.mode = FlagMode::Remove;
  remove.keywords = {"$Label1"};
  std::vector<uint32_t> six{6};
  ASSERT_TRUE(updateFlags(*store_, inbox_, six, remove));
  expectCoherent(inbox_);
  auto* m6 = index_->mailbox(inbox_).value()->find(6);
  ASSERT_TRUE(m6);
  EXPECT_EQ(index_->mailbox(inbox_).value()->keywordSets.at(m6->keywordSet), std::vector<std::string>{"$Work"});

  // EXPUNGE of the \Deleted ones (2, 4, 6).
  ASSERT_EQ(expungeDeleted(*store_, inbox_, std::nullopt, nullptr).value(), (std::vector<uint32_t>{2, 4, 6}));
  expectCoherent(inbox_);
  EXPECT_EQ(index_->mailbox(inbox_).value()->messages.size(), 3u);

  // MOVE out of INBOX into Trash, then COPY back: both sides follow.
  std::vector<uint32_t> one{1};
  ASSERT_TRUE(copyMessages(*store_, inbox_, one, trash_, true, nullptr));
  expectCoherent(inbox_);
  expectCoherent(trash_);
  std::vector<uint32_t> trashOne{1};
  ASSERT_TRUE(copyMessages(*store_, trash_, trashOne, inbox_, false, nullptr));
  expectCoherent(inbox_);
  expectCoherent(trash_);
  EXPECT_EQ(index_->mailbox(inbox_).value()->messages.back().uid, 7u);

  // Append then expunge between two reads: neither shows.
  uint32_t tmp = append(inbox_, "Subject: tmp\r\n\r\nx\r\n", kFlagDeleted);
  ASSERT_TRUE(expungeDeleted(*store_, inbox_, std::nullopt, nullptr));
  expectCoherent(inbox_);
  EXPECT_EQ(index_->mailbox(inbox_).value()->find(tmp), nullptr);

  // All of it by deltas: one full load per mailbox.
  EXPECT_EQ(index_->fullLoads(), 2u);
  EXPECT_GT(index_->refreshes(), 0u);
}

std::string tagged(int i, std::string_view tag) {
  return "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_" + std::to_string(i) + "?=\r\nX-Tag: " + std::string(tag) +
         "\r\nX-Tag: second " + std::to_string(i) + "\r\n\r\nbody " + std::to_string(i) + "\r\n";
}

TEST_F(MessageIndexTest, FieldValuesFollowAppendExpungeCopyMoveAndRestart) {
  for (int i = 0; i < 6; ++i) append(inbox_, tagged(i, i % 2 ? "Needle" : "hay"));
  append(inbox_, "Subject: no tag\r\n\r\nx\r\n");
  auto first = cached(*index_, inbox_, "x-tag");
  ASSERT_EQ(first.size(), 7u);
  EXPECT_EQ(first[1].second, std::string("needle\0second 1\0", 16));  // folded, a NUL after each value
  EXPECT_EQ(first[6].second, "");                                       // the field is absent
  EXPECT_TRUE(mime::packedContains(first[1].second, "eedl"));
  EXPECT_FALSE(mime::packedContains(first[6].second, ""));
  EXPECT_FALSE(mime::packedContains(first[1].second, "needlesecond"));  // never across two values
  EXPECT_EQ(cached(*index_, inbox_, "subject")[0].second, std::string("grüsse 0\0", 10));  // RFC 2047, folded
  EXPECT_EQ(index_->fieldBlocksRead(), 14u);

  // A second search parses nothing; APPEND from elsewhere: only the new row.
  expectFieldCoherent(inbox_, "x-tag");
  EXPECT_EQ(index_->fieldBlocksRead(), 14u);
  append(inbox_, tagged(7, "late needle"));
  expectFieldCoherent(inbox_, "x-tag");
  EXPECT_EQ(index_->fieldBlocksRead(), 15u);

  // EXPUNGE: the values of the gone UIDs go too, the rest keep theirs.
  std::vector<uint32_t> del{2, 3, 8};
  FlagUpdate add;
  add.flags = kFlagDeleted;
  ASSERT_TRUE(updateFlags(*store_, inbox_, del, add));
  ASSERT_EQ(expungeDeleted(*store_, inbox_, std::nullopt, nullptr).value(), del);
  expectFieldCoherent(inbox_, "x-tag");
  expectFieldCoherent(inbox_, "subject");

  // MOVE out to Trash and COPY back: new UIDs on both sides, same values.
  expectFieldCoherent(trash_, "x-tag");
  std::vector<uint32_t> two{4, 5};
  ASSERT_TRUE(copyMessages(*store_, inbox_, two, trash_, true, nullptr));
  expectFieldCoherent(inbox_, "x-tag");
  expectFieldCoherent(trash_, "x-tag");
  std::vector<uint32_t> back{1};
  ASSERT_TRUE(copyMessages(*store_, trash_, back, inbox_, false, nullptr));
  expectFieldCoherent(inbox_, "x-tag");
  expectFieldCoherent(trash_, "x-tag");
  auto now = cached(*index_, inbox_, "x-tag");
  EXPECT_EQ(now.back().second, std::string("needle\0second 3\0", 16));  // INBOX 4 (i = 3), moved and copied back

  // Asking for a subset gives that subset, in order; unknown UIDs are skipped.
  std::vector<uint32_t> some{1, 2, 6, 999};
  std::vector<uint32_t> seen;
  ASSERT_TRUE(index_->fieldValues(inbox_, "x-tag", some, [&](uint32_t uid, std::string_view) { seen.push_back(uid); }));
  EXPECT_EQ(seen, (std::vector<uint32_t>{1, 6}));

  // Restart: a new store and index answer the same from the db.
  auto before = cached(*index_, inbox_, "x-tag");
  index_.reset();
  open();
  index_ = std::make_unique<MessageIndex>(*store_);
  EXPECT_EQ(cached(*index_, inbox_, "x-tag"), before);
  expectFieldCoherent(inbox_, "x-tag");
}

TEST_F(MessageIndexTest, DeletedMailboxIsNotFound) {
  ASSERT_TRUE(createMailboxLocal(*store_, account_, "Work", "", nullptr));
  int64_t work = store_->findMailbox(account_, "Work").value()->id;
  append(work, "Subject: a\r\n\r\nx\r\n");
  ASSERT_TRUE(index_->mailbox(work));
  ASSERT_TRUE(deleteMailboxLocal(*store_, account_, "Work", nullptr));
  auto gone = index_->mailbox(work);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().kind, ErrorKind::NotFound);
}

TEST_F(MessageIndexTest, RemovedAccountIsForgotten) {
  append(inbox_, "Subject: a\r\n\r\nx\r\n");
  ASSERT_EQ(index_->mailbox(inbox_).value()->messages.size(), 1u);
  ASSERT_TRUE(store_->removeAccount(account_));
  auto gone = index_->mailbox(inbox_);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().kind, ErrorKind::NotFound);
}

}  // namespace
}  // namespace mb::store
