// RestServer against a real socket: auth, JSON errors, and reads of the status
// board while the loop thread keeps publishing new snapshots (the REST threads
// must never use a snapshot after the board dropped it; run under ASan in CI).
#include <httplib.h>
#include <uv.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "api/rest_server.h"
#include "gtest/gtest.h"

namespace mb {
namespace {

using nlohmann::json;

std::shared_ptr<const StatusSnapshot> snapshot(int generation, int accounts) {
  auto s = std::make_shared<StatusSnapshot>();
  s->version = "test";
  s->started = std::chrono::steady_clock::now();
  for (int i = 0; i < accounts; ++i) {
    AccountStatus a;
    a.id = i + 1;
    a.name = "account-" + std::to_string(i) + "-" + std::string(64, 'x');  // heap strings, not SSO
    a.address = "user" + std::to_string(i) + "@example.test";
    a.kind = "imap";
    a.state = "syncing";
    a.sync = SyncProgress{};
    a.sync->messagesDone = static_cast<uint64_t>(generation);
    a.sync->pendingChanges = static_cast<uint64_t>(generation % 7);
    s->accounts.push_back(std::move(a));
  }
  return s;
}

class RestServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    queue_ = std::make_unique<CommandQueue>(&loop_);
    server_ = std::make_unique<RestServer>(board_, *queue_, ApiCommands{}, Secret(token_));
    auto bound = server_->start(ListenAddress{"127.0.0.1", 0});
    ASSERT_TRUE(bound.has_value());
    port_ = bound->port;
  }
  void TearDown() override {
    server_->stop();
    server_.reset();
    queue_->close();
    queue_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);  // lets the queue's async handle finish closing
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  httplib::Headers auth() const { return {{"Authorization", "Bearer " + token_}}; }

  uv_loop_t loop_{};
  StatusBoard board_;
  std::unique_ptr<CommandQueue> queue_;
  std::unique_ptr<RestServer> server_;
  std::string token_ = "t0k3n-for-tests";
  int port_ = 0;
};

TEST_F(RestServerTest, HealthNeedsNoTokenEverythingElseDoes) {
  httplib::Client c("127.0.0.1", port_);
  auto health = c.Get("/v1/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(json::parse(health->body)["status"], "ok");

  auto missing = c.Get("/v1/accounts");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 401);
  EXPECT_EQ(json::parse(missing->body)["error"]["code"], "unauthorized");

  auto wrong = c.Get("/v1/accounts", httplib::Headers{{"Authorization", "Bearer " + token_ + "x"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
}

// The body figures of an on-demand account, under "sync" in both account views.
TEST_F(RestServerTest, SyncStatusShowsTheBodyFigures) {
  auto s = std::make_shared<StatusSnapshot>(*snapshot(0, 1));
  auto& p = *s->accounts[0].sync;
  p.bodies = "on_demand";
  p.bodiesMissing = 257;
  p.bodiesFetchedOnDemand = 3;
  p.bodiesFailed = 1;
  board_.publish(s);
  httplib::Client c("127.0.0.1", port_);
  for (std::string path : {"/v1/accounts", "/v1/accounts/1"}) {
    auto res = c.Get(path, auth());
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200);
    auto body = json::parse(res->body);
    const json& sync = path == "/v1/accounts" ? body["accounts"][0]["sync"] : body["sync"];
    EXPECT_EQ(sync["bodies"], "on_demand") << path;
    EXPECT_EQ(sync["bodies_missing"], 257) << path;
    EXPECT_EQ(sync["bodies_fetched_on_demand"], 3) << path;
    EXPECT_EQ(sync["bodies_failed"], 1) << path;
  }
}

// Regression: GET /v1/accounts iterated `board_.current()->accounts`, whose
// temporary shared_ptr dies before the loop body runs; a publish in between
// freed the vector being read (heap-use-after-free, a dropped connection in
// CI). Two readers and a publisher race here for a few hundred rounds.
TEST_F(RestServerTest, AccountReadsSurviveConcurrentPublishes) {
  board_.publish(snapshot(0, 8));
  std::atomic<bool> stop{false};
  std::thread publisher([&] {
    for (int g = 1; !stop.load(); ++g) {
      board_.publish(snapshot(g, 8));
      std::this_thread::yield();
    }
  });
  auto reader = [&](int rounds, int* ok) {
    httplib::Client c("127.0.0.1", port_);
    for (int i = 0; i < rounds; ++i) {
      auto path = (i % 2 == 0) ? std::string("/v1/accounts") : "/v1/accounts/" + std::to_string(1 + i % 8);
      auto res = c.Get(path, auth());
      if (!res || res->status != 200) continue;
      auto body = json::parse(res->body, nullptr, false);
      if (body.is_discarded()) continue;
      if (i % 2 == 0 && body["accounts"].size() != 8) continue;
      if (i % 2 == 1 && body["id"] != 1 + i % 8) continue;
      ++*ok;
    }
  };
  constexpr int kRounds = 400;
  int ok1 = 0, ok2 = 0;
  std::thread r1(reader, kRounds, &ok1);
  reader(kRounds, &ok2);
  r1.join();
  stop = true;
  publisher.join();
  EXPECT_EQ(ok1, kRounds);
  EXPECT_EQ(ok2, kRounds);
}


// A local password's KDF (~60-100 ms of CPU on purpose) runs on the HTTP
// thread; only the store of its hash goes to the loop, so neither the IMAP
// and SMTP sessions nor a new account's first sync wait for it. The answer
// carries the clear text once.
TEST_F(RestServerTest, LocalPasswordsAreHashedOffTheLoop) {
  const std::thread::id loopThread = std::this_thread::get_id();
  std::atomic<int> hashedOnLoop{0}, hashedElsewhere{0}, storedOnLoop{0};
  std::vector<std::string> stored;  // loop thread only
  ApiCommands cmds;
  cmds.createAccount = [](std::string) -> Result<std::string> {
    return json{{"id", 7}, {"local", {{"username", "u@example.test"}}}}.dump();
  };
  cmds.newPassword = [&]() -> Result<std::pair<std::string, std::string>> {
    (std::this_thread::get_id() == loopThread ? hashedOnLoop : hashedElsewhere)++;
    return std::pair<std::string, std::string>("clear-" + std::to_string(hashedElsewhere.load()), "hash");
  };
  cmds.setPassword = [&](int64_t id, std::string hash) -> Result<std::string> {
    if (std::this_thread::get_id() == loopThread) storedOnLoop++;
    stored.push_back(std::to_string(id) + ":" + hash);
    return json{{"username", "u@example.test"}}.dump();
  };
  RestServer srv(board_, *queue_, std::move(cmds), Secret(token_));
  auto bound = srv.start(ListenAddress{"127.0.0.1", 0});
  ASSERT_TRUE(bound.has_value());

  std::atomic<bool> finished{false};
  int createdStatus = 0, resetStatus = 0;
  json created, reset;
  std::thread client([&] {
    httplib::Client c("127.0.0.1", bound->port);
    if (auto r = c.Post("/v1/accounts", auth(), "{}", "application/json")) {
      createdStatus = r->status;
      created = json::parse(r->body, nullptr, false);
    }
    if (auto r = c.Post("/v1/accounts/7/password", auth(), "", "application/json")) {
      resetStatus = r->status;
      reset = json::parse(r->body, nullptr, false);
    }
    finished = true;
  });
  while (!finished) {
    uv_run(&loop_, UV_RUN_NOWAIT);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  client.join();
  srv.stop();

  EXPECT_EQ(createdStatus, 201);
  EXPECT_EQ(created["id"], 7);
  EXPECT_EQ(created["local"]["username"], "u@example.test");
  EXPECT_EQ(created["local"]["password"], "clear-1");
  EXPECT_EQ(resetStatus, 200);
  EXPECT_EQ(reset["password"], "clear-2");
  EXPECT_EQ(hashedOnLoop.load(), 0);
  EXPECT_EQ(hashedElsewhere.load(), 2);
  EXPECT_EQ(storedOnLoop.load(), 2);
  EXPECT_EQ(stored, (std::vector<std::string>{"7:hash", "7:hash"}));
}

}  // namespace
}  // namespace mb
