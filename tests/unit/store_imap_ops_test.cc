// Store operations behind the local IMAP server: analysis and header columns
// at append, flags/copy/move/expunge with journal rows and change broadcasts,
// mailbox rename (INBOX included), delete, subscriptions and counts.
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "daemon/imap/store_backend.h"
#include "daemon/store/mailbox_ops.h"
#include "daemon/store/message_index.h"
#include "daemon/store/message_ops.h"
#include "tests/unit/store_fixture.h"
#include "protocols/imap/session.h"
#include "protocols/mime/analysis.h"

namespace mb::store {
namespace {

class StoreImapOpsTest : public StoreFixture {
 protected:
  StoreImapOpsTest() : StoreFixture("mb-storeimap") {}
  void SetUp() override {
    open();
    account_ = accountWithMailboxes("alice");
    inbox_ = mailboxId(account_, "INBOX");
    store_->changes().subscribe([this](const StoreChange& c) { changes_.push_back(c); });
  }
  uint32_t append(std::string_view bytes, uint32_t flags = 0) {
    NewMessage m;
    m.bytes = bytes;
    m.flags = flags;
    m.internalDate = 1700000000;
    auto r = store_->appendMessage(inbox_, m);
    EXPECT_TRUE(r) << r.error().message;
    return r ? r->uid : 0;
  }
  int64_t journalCount(std::string_view op) {
    auto st = store_->db().prepare("SELECT count(*) FROM journal WHERE op = ?1");
    (void)st->bind(1, op).step();
    return st->columnInt64(0);
  }

  int64_t account_ = 0, inbox_ = 0;
  std::vector<StoreChange> changes_;
};

TEST_F(StoreImapOpsTest, DefaultMailboxesHaveSpecialUse) {
  auto boxes = store_->listMailboxes(account_).value();
  std::vector<std::string> names;
  for (auto& b : boxes) names.push_back(b.name + ":" + b.specialUse);
  EXPECT_EQ(names, (std::vector<std::string>{"Archive:\\Archive", "Drafts:\\Drafts", "INBOX:", "Junk:\\Junk",
                                             "Sent:\\Sent", "Trash:\\Trash"}));
  EXPECT_EQ(journalCount("mailbox.create"), 6);
  ASSERT_TRUE(ensureDefaultMailboxes(*store_, account_));  // idempotent
  EXPECT_EQ(journalCount("mailbox.create"), 6);
}

TEST_F(StoreImapOpsTest, AppendStoresAnalysisAndHeaderColumnsAndBroadcasts) {
  uint32_t uid = append("From: Ann <ann@x.org>\nSubject: =?utf-8?q?caf=C3=A9?=\nMessage-ID: <m1@x>\n\nhello\n");
  ASSERT_EQ(uid, 1u);
  std::string bytes;
  ASSERT_TRUE(messageBytes(*store_, inbox_, uid, bytes));
  EXPECT_EQ(bytes, "From: Ann <ann@x.org>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nMessage-ID: <m1@x>\r\n\r\nhello\r\n");
  auto analysis = messageAnalysis(*store_, inbox_, uid).value();
  ASSERT_TRUE(analysis);
  EXPECT_NE(analysis->envelope.find("\"ann\" \"x.org\""), std::string::npos) << analysis->envelope;
  auto cols = headerColumns(*store_, inbox_, uid).value();
  EXPECT_EQ(cols.subject, "caf\xC3\xA9");
  EXPECT_EQ(cols.messageId, "<m1@x>");
  ASSERT_EQ(changes_.size(), 1u);
  EXPECT_EQ(changes_[0].kind, StoreChange::Kind::MessagesAdded);
  EXPECT_EQ(changes_[0].messages.at(0).uid, 1u);
}

// A row keeps its analysis as a lean MBMA2 blob beside the columns; a row of
// an older store holds the whole MBMA1 blob. Both read back as the analysis
// of the message itself, which is what FETCH ENVELOPE, BODYSTRUCTURE,
// BODY[n.MIME] and SEARCH answer from.
TEST_F(StoreImapOpsTest, LeanAndMbma1RowsReadBackAsTheMessagesAnalysis) {
  std::string raw =
      "From: Ann <ann@x.org>\r\nTo: Bob <bob@y.org>\r\nCc: c@z.org\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
      "Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <m2@x>\r\nMIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
      "--b\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Disposition: attachment\r\n\r\nxx\r\n--b--\r\n";
  uint32_t uid = append(raw);
  std::string expected = mime::serializeAnalysis(mime::analyzeMessage(raw).value());
  auto blob = store_->db().prepare("SELECT analysis FROM messages WHERE mailbox_id = ?1 AND uid = ?2");
  ASSERT_TRUE(blob->bind(1, inbox_).bind(2, uid).step().value());
  EXPECT_EQ(blob->columnText(0).rfind("5:MBMA2,", 0), 0u);
  blob->reset();
  auto lean = messageAnalysis(*store_, inbox_, uid).value();
  ASSERT_TRUE(lean);
  EXPECT_EQ(mime::serializeAnalysis(*lean), expected);

  auto old = store_->db().prepare("UPDATE messages SET analysis = ?1 WHERE mailbox_id = ?2 AND uid = ?3");
  ASSERT_TRUE(old->bindBlob(1, std::as_bytes(std::span(expected.data(), expected.size()))).bind(2, inbox_).bind(3, uid).run());
  auto fromOld = messageAnalysis(*store_, inbox_, uid).value();
  ASSERT_TRUE(fromOld);
  EXPECT_EQ(mime::serializeAnalysis(*fromOld), expected);
}

// What a client sees must not depend on the form the row keeps its analysis
// in: a lean row, the same row with an MBMA1 blob, and with none at all (the
// session then analyses the bytes) answer FETCH and SEARCH alike.
TEST_F(StoreImapOpsTest, FetchAndSearchAnswerAlikeFromLeanMbma1AndNoAnalysis) {
  std::string raw =
      "From: Ann <ann@x.org>\r\nTo: Bob <bob@y.org>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
      "Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <m3@x>\r\nMIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
      "--b\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Disposition: attachment\r\n\r\nxx\r\n--b--\r\n";
  uint32_t uid = append(raw);
  MessageIndex index(*store_);
  imap::StoreBackend backend(*store_, index);
  auto transcript = [&] {
    imap::Session session(backend, {});
    session.start();
    session.takeOutput();
    session.feed(
        "a LOGIN u p\r\nb SELECT INBOX\r\n"
        "c UID FETCH 1 (ENVELOPE BODYSTRUCTURE BODY BODY.PEEK[2.MIME] BODY.PEEK[1] RFC822.SIZE)\r\n"
        "d UID SEARCH FROM ann SUBJECT caf SENTON 8-Feb-1994 LARGER 10\r\ne UID SEARCH TO nobody\r\n");
    std::string out;
    for (int guard = 0; guard < 100; ++guard) {
      if (session.pendingLogin()) {
        session.loginDone(account_);
        continue;
      }
      out += session.takeOutput();
      if (!session.wantsResume()) break;
      session.resume();
    }
    return out.substr(out.find("* 1 FETCH"));
  };
  std::string lean = transcript();
  EXPECT_NE(lean.find("\"application\" \"pdf\""), std::string::npos) << lean;
  EXPECT_NE(lean.find("BODY[2.MIME] {"), std::string::npos) << lean;
  EXPECT_NE(lean.find("* SEARCH 1\r\nd OK"), std::string::npos) << lean;
  EXPECT_NE(lean.find("* SEARCH\r\ne OK"), std::string::npos) << lean;

  std::string mbma1 = mime::serializeAnalysis(mime::analyzeMessage(raw).value());
  auto set = store_->db().prepare("UPDATE messages SET analysis = ?1 WHERE mailbox_id = ?2 AND uid = ?3");
  ASSERT_TRUE(set->bindBlob(1, std::as_bytes(std::span(mbma1.data(), mbma1.size()))).bind(2, inbox_).bind(3, uid).run());
  EXPECT_EQ(transcript(), lean);
  auto none = store_->db().prepare("UPDATE messages SET analysis = NULL WHERE mailbox_id = ?1 AND uid = ?2");
  ASSERT_TRUE(none->bind(1, inbox_).bind(2, uid).run());
  EXPECT_EQ(transcript(), lean);
}

TEST_F(StoreImapOpsTest, AppendJournalLearnsUidAndMessageId) {
  NewMessage m;
  m.bytes = "Message-ID: <j1@x>\r\n\r\nx\r\n";
  m.journal = JournalEntry{"append", R"({"mailbox":"INBOX"})"};
  ASSERT_TRUE(store_->appendMessage(inbox_, m));
  auto st = store_->db().prepare("SELECT payload FROM journal WHERE op = 'append'");
  ASSERT_TRUE(st->step().value());
  EXPECT_EQ(st->columnText(0), R"({"mailbox":"INBOX","message_id":"<j1@x>","uid":1})");
}

TEST_F(StoreImapOpsTest, GarbageMessageIsStillStored) {
  std::string junk("\0\xff\r\r\n--\n", 8);
  uint32_t uid = append(junk);
  EXPECT_EQ(uid, 1u);
  EXPECT_TRUE(messageAnalysis(*store_, inbox_, uid).value());
}

// RFC 3502 6: a MULTIAPPEND is all or nothing, also when the store fails
// between two of its messages (here a trigger aborts the second row insert):
// the IMAP backend stores the whole command in one transaction.
TEST_F(StoreImapOpsTest, MultiappendFailingMidwayStoresNothing) {
  MessageIndex index(*store_);
  imap::StoreBackend backend(*store_, index);
  ASSERT_TRUE(backend.openAccount(account_));
  std::string m1 = "Subject: one\r\n\r\n1\r\n", m2 = "Subject: two\r\n\r\n2\r\n";
  std::vector<imap::AppendItem> items(2);
  items[0].bytes = m1;
  items[0].flags = imap::kSeen;
  items[1].bytes = m2;
  items[1].keywords = {"$Work"};
  size_t changesBefore = changes_.size();
  ASSERT_TRUE(store_->db().exec("CREATE TEMP TRIGGER fail_second BEFORE INSERT ON messages "
                                "WHEN (SELECT count(*) FROM messages WHERE mailbox_id = NEW.mailbox_id) >= 1 "
                                "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"));
  auto failed = backend.append("INBOX", items);
  ASSERT_FALSE(failed);
  EXPECT_EQ(listMessages(*store_, inbox_).value().size(), 0u);
  EXPECT_EQ(journalCount("append"), 0);
  EXPECT_EQ(changes_.size(), changesBefore) << "nothing was committed, so nothing is broadcast";
  ASSERT_TRUE(store_->db().exec("DROP TRIGGER fail_second"));
  auto ok = backend.append("INBOX", items);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->uids, (std::vector<uint32_t>{1, 2}));
  auto list = listMessages(*store_, inbox_).value();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(journalCount("append"), 2);
  auto missing = backend.append("Nope", items);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, ErrorKind::NotFound);
}

TEST_F(StoreImapOpsTest, FlagsUpdateModseqJournalAndUnchangedSince) {
  append("Subject: a\r\n\r\nx\r\n");
  append("Subject: b\r\n\r\ny\r\n", kFlagSeen);
  changes_.clear();
  std::vector<uint32_t> uids{1, 2};
  FlagUpdate up;
  up.mode = FlagMode::Add;
  up.flags = kFlagSeen;
  up.keywords = {"$Work"};
  auto r = updateFlags(*store_, inbox_, uids, up).value();
  EXPECT_EQ(r.changed, (std::vector<uint32_t>{1, 2}));
  ASSERT_EQ(changes_.size(), 1u);
  EXPECT_EQ(changes_[0].kind, StoreChange::Kind::FlagsChanged);
  EXPECT_EQ(journalCount("flags"), 1);
  auto meta = messageMeta(*store_, inbox_, uids).value();
  EXPECT_EQ(meta[0].flags, uint32_t(kFlagSeen));
  EXPECT_EQ(meta[0].keywords, std::vector<std::string>{"$Work"});
  // Nothing changes: no journal row, no broadcast.
  auto again = updateFlags(*store_, inbox_, uids, up).value();
  EXPECT_TRUE(again.changed.empty());
  EXPECT_EQ(again.current.size(), 2u);
  EXPECT_EQ(journalCount("flags"), 1);
  // UNCHANGEDSINCE below the message's modseq refuses (RFC 7162 3.1.3).
  FlagUpdate cond;
  cond.mode = FlagMode::Replace;
  cond.unchangedSince = 1;
  auto c = updateFlags(*store_, inbox_, uids, cond).value();
  EXPECT_EQ(c.failed, (std::vector<uint32_t>{1, 2}));
}

TEST_F(StoreImapOpsTest, CopyMoveExpungeAndVanished) {
  append("Subject: a\r\n\r\nx\r\n");
  append("Subject: b\r\n\r\ny\r\n", kFlagDeleted);
  int64_t trash = store_->findMailbox(account_, "Trash").value()->id;
  std::vector<uint32_t> one{1};
  auto copied = copyMessages(*store_, inbox_, one, trash, false, nullptr).value();
  EXPECT_EQ(copied.destUids, std::vector<uint32_t>{1});
  EXPECT_EQ(listUids(*store_, inbox_).value().size(), 2u);
  auto moved = copyMessages(*store_, inbox_, one, trash, true, nullptr).value();
  EXPECT_EQ(moved.destUids, std::vector<uint32_t>{2});
  EXPECT_EQ(listUids(*store_, inbox_).value(), std::vector<uint32_t>{2});
  EXPECT_EQ(listUids(*store_, trash).value(), (std::vector<uint32_t>{1, 2}));
  auto gone = expungeDeleted(*store_, inbox_, std::nullopt, nullptr).value();
  EXPECT_EQ(gone, std::vector<uint32_t>{2});
  EXPECT_EQ(expungedSince(*store_, inbox_, 1).value(), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(journalCount("copy"), 1);
  EXPECT_EQ(journalCount("move"), 1);
  EXPECT_EQ(journalCount("expunge"), 1);
  auto counts = mailboxCounts(*store_, trash).value();
  EXPECT_EQ(counts.messages, 2u);
  EXPECT_EQ(counts.unseen, 2u);
}

TEST_F(StoreImapOpsTest, RenameMovesChildrenAndInboxRenameEmptiesInbox) {
  ASSERT_TRUE(createMailboxLocal(*store_, account_, "Work", "", nullptr));
  ASSERT_TRUE(createMailboxLocal(*store_, account_, "Work/2024", "", nullptr));
  ASSERT_TRUE(createMailboxLocal(*store_, account_, "Workshop", "", nullptr));
  auto uv = store_->findMailbox(account_, "Work").value()->uidValidity;
  ASSERT_TRUE(renameMailboxLocal(*store_, account_, "Work", "Job", '/', nullptr));
  EXPECT_EQ(store_->findMailbox(account_, "Job").value()->uidValidity, uv);
  EXPECT_TRUE(store_->findMailbox(account_, "Job/2024").value());
  EXPECT_TRUE(store_->findMailbox(account_, "Workshop").value());
  EXPECT_EQ(renameMailboxLocal(*store_, account_, "Job", "Sent", '/', nullptr).error().kind, ErrorKind::Conflict);

  append("Subject: a\r\n\r\nx\r\n");
  ASSERT_TRUE(renameMailboxLocal(*store_, account_, "INBOX", "Old", '/', nullptr));
  EXPECT_TRUE(listUids(*store_, inbox_).value().empty());
  EXPECT_EQ(listUids(*store_, store_->findMailbox(account_, "Old").value()->id).value().size(), 1u);

  EXPECT_FALSE(deleteMailboxLocal(*store_, account_, "INBOX", nullptr));
  ASSERT_TRUE(deleteMailboxLocal(*store_, account_, "Old", nullptr));
  EXPECT_FALSE(store_->findMailbox(account_, "Old").value());
  ASSERT_TRUE(setSubscribed(*store_, account_, "Job", false, nullptr));
  EXPECT_FALSE(store_->findMailbox(account_, "Job").value()->subscribed);
  EXPECT_EQ(setSubscribed(*store_, account_, "Nope", true, nullptr).error().kind, ErrorKind::NotFound);
}

// bodies "on_demand": a header-only row (no blob) answers metadata, ENVELOPE
// and the header; COPY keeps it header-only; attachBodies gives it the body,
// BODYSTRUCTURE and analysis in place (once), refuses another message's body,
// and keeps the RFC822.SIZE and modseq a client saw when the body's length
// differs (the upstream counted it otherwise).
TEST_F(StoreImapOpsTest, HeaderOnlyRowsGetTheirBodyLater) {
  std::string full =
      "From: Ann <ann@example.org>\r\nSubject: later\r\nMessage-ID: <h1@example.org>\r\n"
      "Content-Type: text/plain\r\n\r\nthe body\r\n";
  std::string header = full.substr(0, full.find("\r\n\r\n") + 4);
  auto headerOnly = [&](std::string_view h, uint64_t size, const char* upstreamId) {
    NewMessage m;
    m.bytes = h;
    m.internalDate = 1700000000;
    m.fullSize = size;
    m.upstreamId = upstreamId;
    PreparedMessage p = Store::prepareHeader(h);
    auto r = store_->commitMessages(inbox_, std::span<const NewMessage>(&m, 1), std::span<const PreparedMessage>(&p, 1));
    EXPECT_TRUE(r) << r.error().message;
    return r ? r->front().uid : 0;
  };
  uint32_t uid = headerOnly(header, full.size(), "7");
  uint32_t wrongSize = headerOnly(header, full.size() + 5, "8");
  std::vector<uint32_t> both{uid, wrongSize};
  EXPECT_EQ(bodilessUids(*store_, inbox_, both).value(), both);
  std::string bytes;
  auto b = messageBytes(*store_, inbox_, uid, bytes);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().kind, ErrorKind::Unavailable);
  auto meta = messageMeta(*store_, inbox_, both).value();
  EXPECT_EQ(meta[0].size, full.size());
  EXPECT_EQ(storedHeaders(*store_, inbox_, both).value().at(0).header, header);
  EXPECT_TRUE(storedStructures(*store_, inbox_, both).value().empty());  // no BODYSTRUCTURE without the body
  EXPECT_EQ(headerColumns(*store_, inbox_, uid).value().subject, "later");
  int64_t blobs = 0;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir_ / "blobs"))
    if (e.is_regular_file()) ++blobs;
  EXPECT_EQ(blobs, 0);

  int64_t archive = store_->findMailbox(account_, "Archive").value()->id;
  auto copied = copyMessages(*store_, inbox_, std::span<const uint32_t>(&uid, 1), archive, false, nullptr);
  ASSERT_TRUE(copied) << copied.error().message;
  EXPECT_EQ(bodilessUids(*store_, archive, copied->destUids).value(), copied->destUids);

  // Another message's body (another Message-ID) is refused.
  std::string other = "Message-ID: <other@example.org>\r\n\r\nx\r\n";
  auto po = Store::prepareMessage(store_->blobs(), other, true).value();
  EXPECT_EQ(store_->attachBodies(inbox_, std::span<const uint32_t>(&uid, 1), std::span<const PreparedMessage>(&po, 1)).value(), 0u);
  // The right bodies: both rows get them; the one whose size differs keeps
  // its size and modseq, and its bytes are read whole.
  auto seen = messageMeta(*store_, inbox_, both).value();
  std::vector<PreparedMessage> prepared{Store::prepareMessage(store_->blobs(), full, true).value(),
                                        Store::prepareMessage(store_->blobs(), full, true).value()};
  changes_.clear();
  EXPECT_EQ(store_->attachBodies(inbox_, both, prepared).value(), 2u);
  EXPECT_TRUE(bodilessUids(*store_, inbox_, both).value().empty());
  EXPECT_EQ(messageBytes(*store_, inbox_, uid).value(), full);
  EXPECT_FALSE(storedStructures(*store_, inbox_, both).value().empty());
  EXPECT_TRUE(messageAnalysis(*store_, inbox_, uid).value());
  meta = messageMeta(*store_, inbox_, both).value();
  EXPECT_EQ(meta[1].size, full.size() + 5);
  EXPECT_EQ(meta[1].modseq, seen[1].modseq);
  EXPECT_EQ(meta[0].modseq, seen[0].modseq);
  EXPECT_EQ(messageBytes(*store_, inbox_, wrongSize).value(), full);
  EXPECT_TRUE(changes_.empty());
  // A copy made afterwards reads its body whole too.
  auto copy2 = copyMessages(*store_, inbox_, std::span<const uint32_t>(&wrongSize, 1), archive, false, nullptr);
  ASSERT_TRUE(copy2) << copy2.error().message;
  EXPECT_EQ(messageBytes(*store_, archive, copy2->destUids.at(0)).value(), full);
  EXPECT_EQ(messageMeta(*store_, archive, copy2->destUids).value().at(0).size, full.size() + 5);
  // Once: a second attach changes nothing, and leaves no extra blob.
  auto again = Store::prepareMessage(store_->blobs(), full, true).value();
  EXPECT_EQ(store_->attachBodies(inbox_, std::span<const uint32_t>(&uid, 1), std::span<const PreparedMessage>(&again, 1)).value(), 0u);
  blobs = 0;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir_ / "blobs"))
    if (e.is_regular_file()) ++blobs;
  EXPECT_EQ(blobs, 1);
}

// A header-only copy names the upstream message its body comes from, so a
// body that arrives for the source fills in the copy, and one that arrives
// for the copy fills in the source (COPY of a message the provider's copy of
// which is never mapped would else stay without its body for good).
TEST_F(StoreImapOpsTest, ABodyFillsInTheHeaderOnlyCopiesOfItsMessage) {
  auto headerOnly = [&](const std::string& full, const char* upstreamId) {
    std::string h = full.substr(0, full.find("\r\n\r\n") + 4);
    NewMessage m;
    m.bytes = h;
    m.internalDate = 1700000000;
    m.fullSize = full.size();
    m.upstreamId = upstreamId;
    PreparedMessage p = Store::prepareHeader(h);
    auto r = store_->commitMessages(inbox_, std::span<const NewMessage>(&m, 1), std::span<const PreparedMessage>(&p, 1));
    EXPECT_TRUE(r) << r.error().message;
    return r ? r->front().uid : 0;
  };
  std::string a = "Message-ID: <a@example.org>\r\nSubject: a\r\n\r\nbody a\r\n";
  std::string b = "Message-ID: <b@example.org>\r\nSubject: b\r\n\r\nbody b\r\n";
  uint32_t ua = headerOnly(a, "10"), ub = headerOnly(b, "11");
  int64_t archive = store_->findMailbox(account_, "Archive").value()->id;
  std::vector<uint32_t> src{ua, ub};
  auto copies = copyMessages(*store_, inbox_, src, archive, false, nullptr).value();
  EXPECT_EQ(bodilessUids(*store_, archive, copies.destUids).value(), copies.destUids);

  // The source's body: its copy has it too.
  auto pa = Store::prepareMessage(store_->blobs(), a, true).value();
  EXPECT_EQ(store_->attachBodies(inbox_, std::span<const uint32_t>(&ua, 1), std::span<const PreparedMessage>(&pa, 1)).value(), 1u);
  EXPECT_EQ(messageBytes(*store_, archive, copies.destUids[0]).value(), a);
  EXPECT_FALSE(storedStructures(*store_, archive, std::span<const uint32_t>(&copies.destUids[0], 1)).value().empty());
  // The copy's body: its source has it too; a row of another message not.
  auto pb = Store::prepareMessage(store_->blobs(), b, true).value();
  EXPECT_EQ(store_->attachBodies(archive, std::span<const uint32_t>(&copies.destUids[1], 1),
                                 std::span<const PreparedMessage>(&pb, 1)).value(), 1u);
  EXPECT_EQ(messageBytes(*store_, inbox_, ub).value(), b);
  EXPECT_TRUE(bodilessUids(*store_, inbox_, src).value().empty());
  EXPECT_EQ(count("SELECT count(*) FROM messages WHERE body_missing = 1"), 0);
}

// The provider's BODYSTRUCTURE stored with a header-only row is the one
// served before the body comes, and after (in the analysis too): a client
// may have cached it.
TEST_F(StoreImapOpsTest, TheProvidersBodystructureStaysOnceTheBodyComes) {
  std::string full = "Message-ID: <s@example.org>\r\nSubject: s\r\n\r\nbody\r\n";
  std::string h = full.substr(0, full.find("\r\n\r\n") + 4);
  // Not what we would compute (a provider that upper-cases the types).
  std::string upstream = "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 6 1 NIL NIL NIL NIL)";
  NewMessage m;
  m.bytes = h;
  m.internalDate = 1700000000;
  m.fullSize = full.size();
  m.upstreamId = "5";
  m.bodyStructure = upstream;
  PreparedMessage p = Store::prepareHeader(h);
  uint32_t uid = store_->commitMessages(inbox_, std::span<const NewMessage>(&m, 1), std::span<const PreparedMessage>(&p, 1))
                     .value()
                     .front()
                     .uid;
  auto one = std::span<const uint32_t>(&uid, 1);
  ASSERT_EQ(storedStructures(*store_, inbox_, one).value().size(), 1u);
  EXPECT_EQ(storedStructures(*store_, inbox_, one).value()[0].bodyStructure, upstream);
  auto body = Store::prepareMessage(store_->blobs(), full, true).value();
  ASSERT_NE(body.analysis->bodyStructure, upstream);  // ours differs (the test's point)
  EXPECT_EQ(store_->attachBodies(inbox_, one, std::span<const PreparedMessage>(&body, 1)).value(), 1u);
  EXPECT_EQ(storedStructures(*store_, inbox_, one).value().at(0).bodyStructure, upstream);
  auto analysis = messageAnalysis(*store_, inbox_, uid).value();
  ASSERT_TRUE(analysis);
  EXPECT_EQ(analysis->bodyStructure, upstream);
}

TEST(ChangeHubTest, UnsubscribeDuringPublish) {
  ChangeHub hub;
  int a = 0, b = 0;
  uint64_t idB = 0;
  hub.subscribe([&](const StoreChange&) {
    ++a;
    hub.unsubscribe(idB);
  });
  idB = hub.subscribe([&](const StoreChange&) { ++b; });
  hub.publish({});
  hub.publish({});
  EXPECT_EQ(a, 2);
  EXPECT_EQ(b, 0);
  EXPECT_EQ(hub.subscriberCount(), 1u);
}

}  // namespace
}  // namespace mb::store
