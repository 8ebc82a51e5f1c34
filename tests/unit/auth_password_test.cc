// Local passwords: format, verification, tampering, and the generator.
#include <gtest/gtest.h>

#include <set>

#include "daemon/auth/password.h"

namespace mb::auth {
namespace {

// Cheap parameters keep the test fast; the format records them.
constexpr KdfParams kFast{10, 8, 1};

TEST(Password, HashVerifies) {
  Secret pw("correct horse battery staple");
  auto h = hashPassword(pw, kFast);
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->rfind("$scrypt$ln=10,r=8,p=1$", 0), 0u) << *h;
  EXPECT_EQ(h->find("horse"), std::string::npos);
  auto ok = verifyPassword(pw, *h);
  ASSERT_TRUE(ok);
  EXPECT_TRUE(*ok);
  auto wrong = verifyPassword(Secret("correct horse battery stapler"), *h);
  ASSERT_TRUE(wrong);
  EXPECT_FALSE(*wrong);
  EXPECT_FALSE(*verifyPassword(Secret(""), *h));
}

TEST(Password, SaltMakesHashesDiffer) {
  Secret pw("same");
  EXPECT_NE(*hashPassword(pw, kFast), *hashPassword(pw, kFast));
}

TEST(Password, DefaultCostIsRecorded) {
  auto h = hashPassword(Secret("x"));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->rfind("$scrypt$ln=15,r=8,p=1$", 0), 0u);
  EXPECT_TRUE(*verifyPassword(Secret("x"), *h));
}

TEST(Password, MalformedHashIsAnError) {
  for (const char* bad : {"", "plain", "$scrypt$", "$scrypt$ln=10,r=8,p=1$", "$scrypt$ln=10,r=8,p=1$AAAA",
                          "$scrypt$ln=99,r=8,p=1$AAAA$AAAA", "$scrypt$ln=10,r=8,p=1x$AAAA$AAAA",
                          "$scrypt$ln=10,r=8,p=1$!!$AAAA", "$bcrypt$whatever"}) {
    auto r = verifyPassword(Secret("x"), bad);
    EXPECT_FALSE(r) << bad;
  }
}

TEST(Password, GeneratedPasswordsAreLongAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    Secret p = generatePassword();
    ASSERT_EQ(p.reveal().size(), 20u);
    for (char c : p.reveal()) {
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << p.reveal();
      EXPECT_EQ(std::string("0O1lI").find(c), std::string::npos) << p.reveal();
    }
    seen.insert(p.reveal());
  }
  EXPECT_EQ(seen.size(), 200u);
}

}  // namespace
}  // namespace mb::auth
