// BodyFetcher against a scripted upstream (a Connector that answers from a
// map) and a real Store and loop: requests take turns a chunk at a time, a
// request whose waiter went away is dropped, each body settles on its own;
// and the fill-in's backoff gets past bodies that cannot be had.
#include "daemon/sync/body_fetcher.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <map>
#include <string>
#include <vector>

#include "daemon/store/message_ops.h"
#include "tests/unit/store_fixture.h"
#include "tests/unit/sync_connector_stub.h"

namespace mb::sync {
namespace {

using test::messageText;

// The provider: one folder "INBOX" whose UIDs are the keys of `messages`.
struct Upstream {
  std::map<uint32_t, std::string> messages;
  std::vector<std::vector<uint32_t>> calls;  // each UID FETCH asked for
  std::function<void()> onCall;
};

class ScriptedConnector : public test::ConnectorStub {
 public:
  explicit ScriptedConnector(Upstream& up) : up_(up) {}
  void fetchMessages(const std::string& folder, std::vector<uint32_t> uids, bool headersOnly,
                     std::function<void(RemoteMessage&&)> onMessage, std::function<void(Status)> done) override {
    EXPECT_EQ(folder, "INBOX");
    EXPECT_FALSE(headersOnly);
    up_.calls.push_back(uids);
    if (up_.onCall) up_.onCall();
    for (uint32_t u : uids) {
      auto it = up_.messages.find(u);
      if (it == up_.messages.end()) continue;  // expunged upstream: not sent
      RemoteMessage m;
      m.meta.uid = u;
      m.size = it->second.size();
      m.bytes = it->second;
      onMessage(std::move(m));
    }
    done({});
  }

 private:
  Upstream& up_;
};

class BodyFetcherTest : public store::StoreFixture {
 protected:
  BodyFetcherTest() : StoreFixture("mb-bodies") {}
  void SetUp() override {
    uv_loop_init(&loop_);
    open();
    account_ = accountWithMailboxes("a");
    inbox_ = mailboxId(account_, "INBOX");
    ASSERT_TRUE(store_->db().exec("UPDATE mailboxes SET upstream_name = 'INBOX' WHERE id = " + std::to_string(inbox_)));
    fetcher_ = std::make_unique<BodyFetcher>(&loop_, *store_, "a", [this] {
      return std::make_unique<ScriptedConnector>(up_);
    });
  }
  void TearDown() override {
    fetcher_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);  // the timer's close
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  // Header-only rows for upstream UIDs 1..n (local UIDs the same), every
  // message also upstream.
  void headerOnly(uint32_t n) {
    std::vector<std::string> texts, headers;
    for (uint32_t u = 1; u <= n; ++u) {
      texts.push_back(messageText(u));
      headers.push_back(texts.back().substr(0, texts.back().find("\r\n\r\n") + 4));
      up_.messages[u] = texts.back();
    }
    std::vector<store::NewMessage> rows(n);
    std::vector<store::PreparedMessage> prepared;
    for (uint32_t i = 0; i < n; ++i) {
      rows[i].bytes = headers[i];
      rows[i].internalDate = 1700000000;
      rows[i].fullSize = texts[i].size();
      rows[i].upstreamId = std::to_string(i + 1);
      prepared.push_back(store::Store::prepareHeader(headers[i]));
    }
    auto r = store_->commitMessages(inbox_, rows, prepared);
    ASSERT_TRUE(r) << r.error().message;
  }
  static std::vector<uint32_t> range(uint32_t from, uint32_t to) {
    std::vector<uint32_t> v;
    for (uint32_t u = from; u <= to; ++u) v.push_back(u);
    return v;
  }
  void runUntil(const std::function<bool()>& done) {
    for (int i = 0; i < 100000 && !done(); ++i) uv_run(&loop_, UV_RUN_ONCE);
    ASSERT_TRUE(done());
  }
  std::vector<uint32_t> bodiless(const std::vector<uint32_t>& uids) {
    return store::bodilessUids(*store_, inbox_, uids).value();
  }

  uv_loop_t loop_{};
  Upstream up_;
  int64_t account_ = 0, inbox_ = 0;
  std::unique_ptr<BodyFetcher> fetcher_;
};

// A client that asked for 600 bodies (3 chunks) does not hold up another's
// single body asked later: the second chunk waits behind it.
TEST_F(BodyFetcherTest, RequestsTakeTurnsAChunkAtATime) {
  headerOnly(601);
  auto waiter = std::make_shared<int>(0);
  std::optional<Result<std::vector<uint32_t>>> big, small;
  fetcher_->fetch(inbox_, range(1, 600), BodyFetcher::Purpose::Client, waiter,
                  [&](Result<std::vector<uint32_t>> r) { big = std::move(r); });
  fetcher_->fetch(inbox_, {601}, BodyFetcher::Purpose::Client, waiter,
                  [&](Result<std::vector<uint32_t>> r) { small = std::move(r); });
  runUntil([&] { return big && small; });
  ASSERT_EQ(up_.calls.size(), 4u);
  EXPECT_EQ(up_.calls[0], range(1, 256));
  EXPECT_EQ(up_.calls[1], std::vector<uint32_t>{601});
  EXPECT_EQ(up_.calls[2], range(257, 512));
  EXPECT_EQ(up_.calls[3], range(513, 600));
  ASSERT_TRUE(*big);
  EXPECT_TRUE(big->value().empty());
  ASSERT_TRUE(*small);
  EXPECT_TRUE(bodiless(range(1, 601)).empty());
  EXPECT_EQ(fetcher_->fetchedForClients(), 601u);
}

// The client that asked for 600 bodies went away after the first chunk: the
// rest is not fetched, and the other client's body still comes.
TEST_F(BodyFetcherTest, AnAbandonedRequestIsDropped) {
  headerOnly(601);
  auto gone = std::make_shared<int>(0), staying = std::make_shared<int>(0);
  std::optional<Result<std::vector<uint32_t>>> big, small;
  fetcher_->fetch(inbox_, range(1, 600), BodyFetcher::Purpose::Client, gone,
                  [&](Result<std::vector<uint32_t>> r) { big = std::move(r); });
  up_.onCall = [&] {
    gone.reset();  // the connection closed while its first chunk was on the wire
    fetcher_->fetch(inbox_, {601}, BodyFetcher::Purpose::Client, staying,
                    [&](Result<std::vector<uint32_t>> r) { small = std::move(r); });
    up_.onCall = nullptr;
  };
  runUntil([&] { return big && small; });
  ASSERT_EQ(up_.calls.size(), 2u);
  EXPECT_EQ(up_.calls[1], std::vector<uint32_t>{601});
  EXPECT_FALSE(*big);
  EXPECT_EQ(big->error().kind, ErrorKind::Unavailable);
  EXPECT_TRUE(*small);
  EXPECT_TRUE(bodiless(range(1, 256)).empty());  // the chunk on the wire was stored
  EXPECT_EQ(bodiless(range(257, 600)).size(), 344u);
  EXPECT_EQ(fetcher_->failed(), 0u);
}

// One message gone upstream does not fail the others: they are stored and
// the request reports only that one.
TEST_F(BodyFetcherTest, EachBodySettlesOnItsOwn) {
  headerOnly(3);
  up_.messages.erase(2);
  std::optional<Result<std::vector<uint32_t>>> got;
  auto waiter = std::make_shared<int>(0);
  fetcher_->fetch(inbox_, {1, 2, 3}, BodyFetcher::Purpose::FillIn, waiter,
                  [&](Result<std::vector<uint32_t>> r) { got = std::move(r); });
  runUntil([&] { return got.has_value(); });
  ASSERT_TRUE(*got) << got->error().message;
  EXPECT_EQ(got->value(), std::vector<uint32_t>{2});
  EXPECT_EQ(bodiless({1, 2, 3}), std::vector<uint32_t>{2});
  EXPECT_EQ(store::messageBytes(*store_, inbox_, 3).value(), messageText(3));
  EXPECT_EQ(fetcher_->failed(), 1u);
}

// A header-only message moved here (the provider's copy not mapped: no
// COPYUID yet, or ever) gets its body through the upstream message it was
// moved from, and so does a copy of it; the fill-in finds such rows too.
TEST_F(BodyFetcherTest, ACopyGetsItsBodyThroughItsSource) {
  headerOnly(3);
  int64_t archive = mailboxId(account_, "Archive");
  ASSERT_TRUE(store_->db().exec("UPDATE mailboxes SET upstream_name = 'Archive' WHERE id = " + std::to_string(archive)));
  std::vector<uint32_t> two{2};
  auto moved = store::copyMessages(*store_, inbox_, two, archive, true, nullptr).value();
  auto again = store::copyMessages(*store_, archive, moved.destUids, archive, false, nullptr).value();
  std::vector<uint32_t> both{moved.destUids.at(0), again.destUids.at(0)};
  FillInBackoff backoff;
  EXPECT_EQ(nextFillIn(*store_, account_, backoff, 0, 200).value().uids, (std::vector<uint32_t>{1, 3}));
  EXPECT_EQ(bodiless({1, 3}).size(), 2u);
  store_->db().exec("UPDATE messages SET body_missing = 0 WHERE mailbox_id = " + std::to_string(inbox_)).value();
  EXPECT_EQ(nextFillIn(*store_, account_, backoff, 0, 200).value().uids, both);

  std::optional<Result<std::vector<uint32_t>>> got;
  auto waiter = std::make_shared<int>(0);
  fetcher_->fetch(archive, {both[0]}, BodyFetcher::Purpose::Client, waiter,
                  [&](Result<std::vector<uint32_t>> r) { got = std::move(r); });
  runUntil([&] { return got.has_value(); });
  ASSERT_TRUE(*got) << got->error().message;
  EXPECT_TRUE(got->value().empty());
  ASSERT_EQ(up_.calls.size(), 1u);
  EXPECT_EQ(up_.calls[0], std::vector<uint32_t>{2});  // in INBOX (the connector checks the folder)
  EXPECT_EQ(store::messageBytes(*store_, archive, both[0]).value(), messageText(2));
  // The copy of the copy names the same upstream message: it came along.
  EXPECT_EQ(store::messageBytes(*store_, archive, both[1]).value(), messageText(2));
}

// The fill-in passes over a body that could not be had until its backoff
// ends, so it makes progress instead of asking for the same batch forever.
TEST_F(BodyFetcherTest, FillInSkipsFailedBodiesUntilTheirBackoffEnds) {
  headerOnly(5);
  FillInBackoff backoff;
  uint64_t now = 1000;
  auto batch = nextFillIn(*store_, account_, backoff, now, 2).value();
  EXPECT_EQ(batch.mailboxId, inbox_);
  EXPECT_EQ(batch.uids, (std::vector<uint32_t>{1, 2}));
  backoff.failed(inbox_, 1, now);
  backoff.failed(inbox_, 2, now);
  EXPECT_EQ(nextFillIn(*store_, account_, backoff, now, 2).value().uids, (std::vector<uint32_t>{3, 4}));
  EXPECT_EQ(nextFillIn(*store_, account_, backoff, now, 200).value().uids, (std::vector<uint32_t>{3, 4, 5}));
  // Due again after the first wait; a second failure waits longer.
  EXPECT_EQ(nextFillIn(*store_, account_, backoff, now + 60 * 1000, 1).value().uids, std::vector<uint32_t>{1});
  backoff.failed(inbox_, 1, now + 60 * 1000);
  EXPECT_FALSE(backoff.due(inbox_, 1, now + 120 * 1000));
  EXPECT_TRUE(backoff.due(inbox_, 2, now + 120 * 1000));
  backoff.settled(inbox_, 1);
  EXPECT_TRUE(backoff.due(inbox_, 1, now));
  EXPECT_EQ(backoff.size(), 1u);
}

}  // namespace
}  // namespace mb::sync
