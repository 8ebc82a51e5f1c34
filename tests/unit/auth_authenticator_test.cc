// Authenticator: right/wrong/unknown logins, identical failure answers,
// cancellation by dropping the ticket, and password reset invalidating the cache.
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>

#include "daemon/auth/authenticator.h"
#include "daemon/store/credentials.h"
#include "daemon/store/store.h"

namespace mb::auth {
namespace {

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mb-auth-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
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
    std::filesystem::remove_all(dir_);
  }

  // Runs one login to completion.
  Result<int64_t> login(const std::string& user, const std::string& pw) {
    std::optional<Result<int64_t>> got;
    auto ticket = auth_->authenticate(user, Secret(pw), "127.0.0.1:1", [&](Result<int64_t> r) { got = r; });
    EXPECT_FALSE(got.has_value()) << "answered from inside authenticate()";
    while (!got) uv_run(&loop_, UV_RUN_ONCE);
    return *got;
  }

  std::filesystem::path dir_;
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

TEST_F(AuthenticatorTest, UsernameClashIsAConflict) {
  int64_t other = *store_->ensureAccount("b", "other@example.test", store::AccountSource::Config);
  ASSERT_TRUE(auth_->issuePassword(account_, "me@example.test"));
  auto r = auth_->issuePassword(other, "Me@example.test");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Conflict);
}

}  // namespace
}  // namespace mb::auth
