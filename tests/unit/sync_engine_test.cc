// SyncEngine against a scripted upstream (a Connector whose answers wait in
// a queue the test runs one at a time, as the loop would deliver them) and a
// real Store, loop and thread pool: what a cycle does when storing fails,
// when the connection drops, and while a local change waits for its retry.
#include "daemon/sync/sync_engine.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <deque>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "daemon/store/mailbox_ops.h"
#include "tests/unit/store_fixture.h"
#include "tests/unit/sync_connector_stub.h"

namespace mb::sync {
namespace {

using test::messageText;

// The provider: folders by name, each with its messages by UID.
struct Upstream {
  struct Folder {
    uint32_t uidValidity = 7;
    std::map<uint32_t, std::string> messages;
  };
  std::map<std::string, Folder> folders;
  std::deque<std::function<void()>> answers;  // not delivered yet, oldest first
  int lists = 0, fetches = 0;  // listFolders, fetchMessages calls
  std::function<void()> onList;           // at each LIST
  std::function<void()> onFetchMessages;  // at each fetchMessages
  std::function<void(const ConnectorFailure&)> onLost;  // the live connection's
  std::vector<std::function<void(Status)>> streaming;    // fetchMessages not answered (drop())
  bool dropMidFetch = false;  // the next fetchMessages' messages arrive, then the connection drops
  std::string refuseFetchOf;  // this folder's fetchMessages sends all but its last message, then fails

  // The connection drops: what is pending fails first, then onLost (as
  // ImapClient::fail does).
  void drop() {
    auto pending = std::move(streaming);
    streaming.clear();
    for (auto& done : pending) done(fail(ErrorKind::Unavailable, "connection closed"));
    if (auto lost = std::move(onLost)) lost(ConnectorFailure{ConnectorFailure::Kind::Network, "connection closed"});
  }
};

class ScriptedConnector : public test::ConnectorStub {
 public:
  explicit ScriptedConnector(Upstream& up) : up_(up) {}
  void connect(std::function<void()> onReady, std::function<void(const ConnectorFailure&)> onLost) override {
    up_.onLost = std::move(onLost);
    answer(std::move(onReady));
  }
  void listFolders(std::function<void(Result<std::vector<RemoteFolder>>)> done) override {
    ++up_.lists;
    if (auto hook = up_.onList) hook();  // a copy: the hook may reset itself
    std::vector<RemoteFolder> out;
    for (const auto& [name, f] : up_.folders) out.push_back(RemoteFolder{name, name, "", true, true, std::nullopt});
    answer([done, out] { done(out); });
  }
  void fetchChanges(const RemoteFolder& folder, const FolderState&, std::function<void(Result<FolderChanges>)> done) override {
    const auto& f = up_.folders.at(folder.id);
    FolderChanges ch;
    ch.state.uidValidity = f.uidValidity;
    ch.state.uidNext = f.messages.empty() ? 1 : f.messages.rbegin()->first + 1;
    ch.state.messages = static_cast<uint32_t>(f.messages.size());
    ch.complete = true;
    for (const auto& [uid, text] : f.messages) ch.flags.push_back(RemoteFlags{uid, 0, {}, 0});
    answer([done, ch] { done(ch); });
  }
  // Every message in one answer; the done in another, so the test can drop
  // the connection between them.
  void fetchMessages(const std::string& folder, std::vector<uint32_t> uids, bool,
                     std::function<void(RemoteMessage&&)> onMessage, std::function<void(Status)> done) override {
    ++up_.fetches;
    if (auto hook = up_.onFetchMessages) hook();
    std::vector<RemoteMessage> out;
    bool refuse = folder == up_.refuseFetchOf;
    for (uint32_t u : uids) {
      if (refuse && u == uids.back()) break;  // the response the client could not read
      RemoteMessage m;
      m.meta.uid = u;
      m.internalDate = 1700000000;
      m.bytes = up_.folders.at(folder).messages.at(u);
      m.size = m.bytes->size();
      out.push_back(std::move(m));
    }
    up_.streaming.push_back(done);
    Upstream* up = &up_;
    answer([onMessage, out = std::move(out)]() mutable {
      for (auto& m : out) onMessage(std::move(m));
    });
    if (std::exchange(up_.dropMidFetch, false)) answer([up] { up->drop(); });
    answer([up, refuse] {
      if (up->streaming.empty()) return;  // failed by drop()
      auto d = std::move(up->streaming.front());
      up->streaming.erase(up->streaming.begin());
      if (refuse) return d(fail(ErrorKind::Upstream, "UID FETCH: a response to it could not be read: too long"));
      d({});
    });
  }

 protected:
  void answer(std::function<void()> f) override { up_.answers.push_back(std::move(f)); }

 private:
  Upstream& up_;
};

class SyncEngineTest : public store::StoreFixture {
 protected:
  SyncEngineTest() : StoreFixture("mb-engine") {}
  void SetUp() override {
    uv_loop_init(&loop_);
    open();
    account_ = accountWithMailboxes("a");
    inbox_ = mailboxId(account_, "INBOX");
    // The default mailboxes' creation is not for the upstream to replay.
    ASSERT_TRUE(store_->db().exec("DELETE FROM journal"));
    for (uint32_t u = 1; u <= 3; ++u) up_.folders["INBOX"].messages[u] = messageText(u);
  }
  void TearDown() override {
    engine_.reset();
    up_.answers.clear();
    uv_run(&loop_, UV_RUN_DEFAULT);  // the engine's timer, batches still on the pool
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  void startEngine() {
    AccountConfig a;
    a.name = "a";
    a.address = "a@example.org";
    a.imap.emplace();
    a.imap->pollSeconds = 3600;
    engine_ = std::make_unique<SyncEngine>(&loop_, *store_, account_, a,
                                           [this] { return std::make_unique<ScriptedConnector>(up_); },
                                           [this] { if (onStatus_) onStatus_(); });
    engine_->start();
  }
  // Delivers the upstream's answers one at a time, and runs the loop (the
  // pool's batches, the engine's timers) whenever none is waiting.
  void runUntil(const std::function<bool()>& done) {
    for (int i = 0; i < 10000 && !done(); ++i) {
      if (up_.answers.empty()) {
        uv_run(&loop_, UV_RUN_ONCE);
        continue;
      }
      auto next = std::move(up_.answers.front());
      up_.answers.pop_front();
      next();
    }
    ASSERT_TRUE(done());
  }
  int64_t rows() { return count("SELECT count(*) FROM messages WHERE mailbox_id = " + std::to_string(inbox_)); }
  size_t bodyFiles() {
    size_t n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(store_->blobs().root()))
      n += e.is_regular_file();
    return n;
  }
  bool inboxComplete() {
    auto box = store_->findMailbox(account_, "INBOX");
    return box && *box && parseFolderState((*box)->upstreamState).complete;
  }

  uv_loop_t loop_{};
  Upstream up_;
  int64_t account_ = 0, inbox_ = 0;
  std::function<void()> onStatus_;
  std::unique_ptr<SyncEngine> engine_;  // goes before the fixture's store_
};

// The database is busy past its timeout (another process holds its write
// lock) when a download's batch commits: SQLite's BUSY is an Unavailable
// error, like a dropped connection's, but no onLost follows it. The cycle
// must still fail and be retried, not stop with the engine "syncing" for good.
TEST_F(SyncEngineTest, ABatchTheBusyDatabaseRefusedIsRetried) {
  ASSERT_TRUE(store_->db().exec("PRAGMA busy_timeout = 0"));
  auto other = store::Db::open((dir_ / "mailbridge.db").string(), store::Db::OpenMode::ReadWrite);
  ASSERT_TRUE(other) << other.error().message;
  bool locked = false;
  up_.onFetchMessages = [&] {
    up_.onFetchMessages = nullptr;
    ASSERT_TRUE(other->exec("BEGIN IMMEDIATE"));
    locked = true;
  };
  up_.onList = [&] {  // the retry's listing: the other writer is done
    if (locked && up_.lists == 2) {
      ASSERT_TRUE(other->exec("ROLLBACK"));
      locked = false;
    }
  };
  startEngine();
  runUntil([&] { return rows() == 3 && inboxComplete() && engine_->status().state == "idle"; });
  EXPECT_EQ(up_.lists, 2);
  EXPECT_FALSE(locked);
  EXPECT_EQ(count("SELECT count(DISTINCT upstream_id) FROM messages WHERE mailbox_id = " + std::to_string(inbox_)), 3);
}

// A connection that drops mid-download (its messages received, the FETCH not
// ended) is the reconnect's business: the engine goes offline, what arrived
// is stored, and the reconnect completes the mailbox without fetching it
// again.
TEST_F(SyncEngineTest, ADropMidDownloadGoesOfflineAndTheReconnectFinishes) {
  up_.dropMidFetch = true;
  startEngine();
  runUntil([&] { return engine_->status().state == "offline"; });
  runUntil([&] { return rows() == 3 && inboxComplete() && engine_->status().state == "idle"; });
  EXPECT_EQ(up_.lists, 2);
  EXPECT_EQ(up_.fetches, 1);
  EXPECT_EQ(count("SELECT count(DISTINCT upstream_id) FROM messages WHERE mailbox_id = " + std::to_string(inbox_)), 3);
}

// The engine goes (its account removed, the daemon stopping) while a batch
// is on the pool: no row will take that batch's bodies, so their files go
// when it comes back (unless another row has the same content), not at the
// next start's GC: a removed account keeps nothing on disk.
TEST_F(SyncEngineTest, AnEngineGoneWithABatchOnThePoolLeavesNoBodyBehind) {
  startEngine();
  // The FETCH has ended, which queued its only batch; the loop has not run
  // since, so the batch cannot be back yet.
  runUntil([&] { return up_.fetches == 1 && up_.streaming.empty(); });
  ASSERT_EQ(rows(), 0);
  engine_.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(rows(), 0);
  EXPECT_EQ(bodyFiles(), 0u);
}

// The upstream fails one mailbox's FETCH (a message it cannot send in a
// form we can read: over the limits, malformed): the other mailboxes still
// sync in the same cycle, the failed one is not marked complete and its
// error is shown, and a retry after the backoff (not the hour-long poll)
// fetches what is missing once the upstream can send it.
TEST_F(SyncEngineTest, AMailboxTheUpstreamFailsDoesNotHoldUpTheOthers) {
  for (uint32_t u = 1; u <= 2; ++u) up_.folders["Other"].messages[u] = messageText(10 + u);
  up_.refuseFetchOf = "INBOX";
  startEngine();
  auto otherRows = [&] {
    auto other = store_->findMailbox(account_, "Other");
    return other && *other ? count("SELECT count(*) FROM messages WHERE mailbox_id = " + std::to_string((*other)->id)) : 0;
  };
  // (Or the third listing: a cycle that failed as a whole, retried twice.)
  runUntil([&] { return (engine_->status().lastSync != 0 && engine_->status().state == "idle") || up_.lists >= 3; });
  EXPECT_NE(engine_->status().lastSync, 0);
  EXPECT_EQ(up_.lists, 1);
  EXPECT_EQ(otherRows(), 2);
  EXPECT_EQ(rows(), 2);  // all but the message that could not be read
  EXPECT_FALSE(inboxComplete());
  EXPECT_NE(engine_->status().lastError.find("mailbox INBOX: UID FETCH"), std::string::npos)
      << engine_->status().lastError;
  up_.refuseFetchOf.clear();
  runUntil([&] { return rows() == 3 && inboxComplete() && engine_->status().state == "idle"; });
  EXPECT_EQ(otherRows(), 2);
  EXPECT_EQ(count("SELECT count(DISTINCT upstream_id) FROM messages WHERE mailbox_id = " + std::to_string(inbox_)), 3);
  runUntil([&] { return engine_->status().lastError.empty(); });
}

// A local change the upstream refused for now waits for its retry time
// (journal.next_attempt). Until then the engine has nothing to do: no cycle
// may start at once after each cycle (that spun the loop, and with libuv's
// timers re-armed at 0 from their callback it never left the timer phase).
TEST_F(SyncEngineTest, AChangeWaitingForItsRetryDoesNotSpinCycles) {
  ASSERT_TRUE(store::createMailboxLocal(*store_, account_, "Projects", "", nullptr));  // its CREATE fails upstream
  int cycles = 0;
  onStatus_ = [&] {
    if (engine_->status().state != "idle" || ++cycles % 100) return;
    now_ += 3600;  // the retry is due: how a spinning engine lets the test end
  };
  startEngine();
  runUntil([&] { return rows() == 3 && inboxComplete() && engine_->status().state == "idle"; });
  for (int i = 0; i < 20; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_LE(cycles, 5);
  EXPECT_EQ(count("SELECT attempts FROM journal"), 1);
  // Once due, it is tried again (a timer, not another change, brings it).
  now_ += 3600;
  runUntil([&] { return count("SELECT attempts FROM journal") == 2; });
}

}  // namespace
}  // namespace mb::sync
