// Authenticator: right/wrong/unknown logins, identical failure answers,
// cancellation by dropping the ticket, and password reset invalidating the cache.
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <vector>

#include "daemon/auth/authenticator.h"
#include "daemon/store/credentials.h"
#include "daemon/store/store.h"
#include "tests/unit/test_fixtures.h"

namespace mb::auth {
namespace {

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(*store::Store::open(dir_));
    account_ = *store_->ensureAccount("a", "me@example.test", store::AccountSource::Config);
    uv_loop_init(&loop_);
    AuthOptions o;
    o.kdf = KdfParams{10, 8, 1};
    o.failureDelay = std::chrono::milliseconds(5);
    o.maxFailureDelay = std::chrono::milliseconds(20);
    auth_.emplace(&loop_, *store_, o);
  }
  void TearDown() override {
    auth_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    store_.reset();
  }

  // Runs one login to completion.
  Result<int64_t> login(const std::string& user, const std::string& pw) {
    std::optional<Result<int64_t>> got;
    auto ticket = auth_->authenticate(user, Secret(pw), "127.0.0.1:1", [&](Result<int64_t> r) { got = r; });
    EXPECT_FALSE(got.has_value()) << "answered from inside authenticate()";
    while (!got) uv_run(&loop_, UV_RUN_ONCE);
    return *got;
  }

  test::TempDir tmp_{"mb-auth"};
  const std::filesystem::path dir_ = tmp_.path();
  std::unique_ptr<store::Store> store_;
  int64_t account_ = 0;
  uv_loop_t loop_;
  std::optional<Authenticator> auth_;
};

TEST_F(AuthenticatorTest, RightPasswordGivesTheAccount) {
  auto pw = auth_->issuePassword(account_, "me@example.test");
  ASSERT_TRUE(pw);
  auto r = login("me@example.test", pw->reveal());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, account_);
  // Usernames are case-insensitive, like e-mail domains and most providers.
  EXPECT_EQ(login("ME@Example.TEST", pw->reveal()).value_or(-1), account_);
  // The cached path gives the same answer.
  EXPECT_EQ(login("me@example.test", pw->reveal()).value_or(-1), account_);
  EXPECT_EQ(auth_->successesTotal(), 3u);
}

TEST_F(AuthenticatorTest, WrongPasswordAndUnknownUserLookAlike) {
  auto pw = auth_->issuePassword(account_, "me@example.test");
  ASSERT_TRUE(pw);
  auto wrong = login("me@example.test", pw->reveal() + "x");
  auto unknown = login("nobody@example.test", pw->reveal());
  ASSERT_FALSE(wrong);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(wrong.error().kind, ErrorKind::Auth);
  EXPECT_EQ(unknown.error().kind, ErrorKind::Auth);
  EXPECT_EQ(wrong.error().message, unknown.error().message);
  EXPECT_EQ(auth_->failuresTotal(), 2u);
}

TEST_F(AuthenticatorTest, NoPasswordIssuedMeansNoLogin) {
  auto r = login("me@example.test", "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Auth);
}

TEST_F(AuthenticatorTest, ResetInvalidatesTheOldPassword) {
  auto first = auth_->issuePassword(account_, "me@example.test");
  ASSERT_TRUE(login("me@example.test", first->reveal()));
  auto second = auth_->issuePassword(account_, "me@example.test");
  ASSERT_TRUE(second);
  EXPECT_NE(first->reveal(), second->reveal());
  EXPECT_FALSE(login("me@example.test", first->reveal()));
  EXPECT_TRUE(login("me@example.test", second->reveal()));
}

TEST_F(AuthenticatorTest, DroppedTicketNeverCallsBack) {
  auto pw = auth_->issuePassword(account_, "me@example.test");
  bool called = false;
  auto ticket = auth_->authenticate("me@example.test", Secret("bad"), "p", [&](Result<int64_t>) { called = true; });
  ticket.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_FALSE(called);
}

TEST_F(AuthenticatorTest, CachedLoginDroppedTicketNeverCallsBack) {
  auto pw = auth_->issuePassword(account_, "me@example.test");
  ASSERT_TRUE(login("me@example.test", pw->reveal()));
  bool called = false;
  auto ticket = auth_->authenticate("me@example.test", Secret(pw->reveal()), "p", [&](Result<int64_t>) { called = true; });
  ticket.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_FALSE(called);
}

// A mail program opens several connections at once: identical logins share
// one KDF run, different passwords never share one.
TEST_F(AuthenticatorTest, ConcurrentIdenticalLoginsShareOneKdf) {
  auto pw = auth_->issuePassword(account_, "me@example.test");
  ASSERT_TRUE(pw);
  std::vector<std::optional<Result<int64_t>>> got(5);
  std::vector<std::unique_ptr<AuthTicket>> tickets;
  for (size_t i = 0; i < 3; ++i)
    tickets.push_back(auth_->authenticate("me@example.test", Secret(pw->reveal()), "127.0.0.1:1",
                                          [&got, i](Result<int64_t> r) { got[i] = r; }));
  tickets.push_back(auth_->authenticate("me@example.test", Secret(pw->reveal() + "x"), "127.0.0.1:2",
                                        [&got](Result<int64_t> r) { got[3] = r; }));
  // A waiting login whose connection went away is never answered.
  bool dropped = false;
  auth_->authenticate("me@example.test", Secret(pw->reveal()), "127.0.0.1:3",
                      [&dropped](Result<int64_t>) { dropped = true; });
  EXPECT_EQ(auth_->kdfRunsTotal(), 2u);  // one for the three identical logins, one for the wrong password
  uv_run(&loop_, UV_RUN_DEFAULT);
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(got[i].has_value());
    ASSERT_TRUE(*got[i]) << got[i]->error().message;
    EXPECT_EQ(**got[i], account_);
  }
  ASSERT_TRUE(got[3].has_value());
  ASSERT_FALSE(*got[3]);
  EXPECT_EQ(got[3]->error().kind, ErrorKind::Auth);
  EXPECT_FALSE(dropped);
  EXPECT_EQ(auth_->successesTotal(), 4u);  // the dropped one succeeded too, unheard
  EXPECT_EQ(auth_->failuresTotal(), 1u);
  EXPECT_EQ(auth_->kdfRunsTotal(), 2u);
}

TEST_F(AuthenticatorTest, ConcurrentWrongPasswordsEachFail) {
  auto pw = auth_->issuePassword(account_, "me@example.test");
  int failures = 0;
  std::vector<std::unique_ptr<AuthTicket>> tickets;
  for (int i = 0; i < 2; ++i)
    tickets.push_back(auth_->authenticate("nobody@example.test", Secret("guess"), "127.0.0.1:1",
                                          [&failures](Result<int64_t> r) { failures += !r && r.error().kind == ErrorKind::Auth; }));
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(failures, 2);
  EXPECT_EQ(auth_->failuresTotal(), 2u);
  EXPECT_EQ(auth_->kdfRunsTotal(), 1u);
}

TEST_F(AuthenticatorTest, UsernameClashIsAConflict) {
  int64_t other = *store_->ensureAccount("b", "other@example.test", store::AccountSource::Config);
  ASSERT_TRUE(auth_->issuePassword(account_, "me@example.test"));
  auto r = auth_->issuePassword(other, "Me@example.test");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Conflict);
}

}  // namespace
}  // namespace mb::auth
