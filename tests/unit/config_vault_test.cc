// Vault: sealing round-trips, is bound to its context and key, and a damaged
// key file is refused rather than replaced.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "daemon/config/vault.h"
#include "daemon/util/fs.h"
#include "tests/unit/test_fixtures.h"

namespace mb {
namespace {

class VaultTest : public ::testing::Test {
 protected:
  test::TempDir tmp_{"mb-vault"};
  const std::filesystem::path dir_ = tmp_.path();
};

TEST_F(VaultTest, SealOpenRoundTrip) {
  auto v = Vault::open(dir_);
  ASSERT_TRUE(v) << v.error().message;
  auto sealed = v->seal(Secret("hunter2 with spaces \xc3\xa9"), "account:1:imap");
  ASSERT_TRUE(sealed);
  EXPECT_EQ(sealed->rfind("v1:", 0), 0u);
  EXPECT_EQ(sealed->find("hunter2"), std::string::npos);
  auto plain = v->open(*sealed, "account:1:imap");
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(plain->reveal(), "hunter2 with spaces \xc3\xa9");
  // Fresh nonce each time.
  EXPECT_NE(*sealed, *v->seal(Secret("hunter2 with spaces \xc3\xa9"), "account:1:imap"));
  // Empty secrets work too.
  EXPECT_EQ(v->open(*v->seal(Secret(""), "c"), "c")->reveal(), "");
}

TEST_F(VaultTest, KeyIsPrivateAndReused) {
  auto v1 = Vault::open(dir_);
  ASSERT_TRUE(v1);
  struct stat st{};
  ASSERT_EQ(::stat((dir_ / "vault.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto sealed = v1->seal(Secret("x"), "c");
  auto v2 = Vault::open(dir_);
  ASSERT_TRUE(v2);
  EXPECT_EQ(v2->open(*sealed, "c")->reveal(), "x");
}

TEST_F(VaultTest, WrongContextOrTamperingIsRefused) {
  auto v = Vault::open(dir_);
  auto sealed = *v->seal(Secret("secret"), "account:1:imap");
  EXPECT_FALSE(v->open(sealed, "account:2:imap"));
  std::string flipped = sealed;
  flipped[10] = flipped[10] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(v->open(flipped, "account:1:imap"));
  EXPECT_FALSE(v->open("v1:", "account:1:imap"));
  EXPECT_FALSE(v->open("plain", "account:1:imap"));
  EXPECT_FALSE(v->open(sealed.substr(0, sealed.size() - 4), "account:1:imap"));
}

TEST_F(VaultTest, AnotherKeyCannotOpen) {
  auto v = Vault::open(dir_);
  auto sealed = *v->seal(Secret("secret"), "c");
  std::filesystem::remove(dir_ / "vault.key");
  auto other = Vault::open(dir_);
  ASSERT_TRUE(other);
  auto r = other->open(sealed, "c");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Corrupt);
}

TEST_F(VaultTest, DamagedKeyFileIsRefusedAndKept) {
  ASSERT_TRUE(writeFileAtomic(dir_ / "vault.key", "short", 0600));
  auto v = Vault::open(dir_);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().kind, ErrorKind::Corrupt);
  EXPECT_NE(v.error().message.find("vault.key"), std::string::npos);
  EXPECT_EQ(*readFile(dir_ / "vault.key"), "short");
}

}  // namespace
}  // namespace mb
