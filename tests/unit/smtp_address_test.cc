// Path parsing for MAIL FROM / RCPT TO: RFC 5321 section 4.1.2 grammar and
// RFC 6531 UTF-8 local parts and domains.
#include <gtest/gtest.h>

#include "protocols/smtp/address.h"

namespace mb::smtp {
namespace {

Result<Path> parse(std::string_view text, PathKind kind = PathKind::Forward) {
  size_t used = 0;
  auto p = parsePath(text, kind, used);
  if (p) {
    EXPECT_EQ(used, text.size()) << text;
  }
  return p;
}

TEST(SmtpAddress, PlainMailbox) {
  auto p = parse("<alice@example.org>");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->localPart, "alice");
  EXPECT_EQ(p->domain, "example.org");
  EXPECT_FALSE(p->needsUtf8);
  EXPECT_EQ(p->wire(), "<alice@example.org>");
}

// RFC 5321 section 4.1.2: Dot-string atoms and Quoted-string local parts.
TEST(SmtpAddress, LocalPartForms) {
  EXPECT_TRUE(parse("<a.b+tag!#$%&'*/=?^_`{|}~-@x.y>"));
  auto q = parse(R"(<"john doe\"x"@example.org>)");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->localPart, R"("john doe\"x")");
  EXPECT_EQ(q->address(), R"("john doe\"x"@example.org)");
  EXPECT_FALSE(parse("<.a@x.y>"));
  EXPECT_FALSE(parse("<a.@x.y>"));
  EXPECT_FALSE(parse("<a..b@x.y>"));
  EXPECT_FALSE(parse("<a b@x.y>"));
  EXPECT_FALSE(parse("<\"unterminated@x.y>"));
  EXPECT_FALSE(parse(std::string("<\"a\x01\"@x.y>")));
  EXPECT_FALSE(parse("<" + std::string(65, 'a') + "@x.y>"));  // section 4.5.3.1.1
  EXPECT_TRUE(parse("<" + std::string(64, 'a') + "@x.y>"));
}

TEST(SmtpAddress, Domains) {
  EXPECT_TRUE(parse("<a@[127.0.0.1]>"));
  EXPECT_TRUE(parse("<a@[IPv6:::1]>"));
  EXPECT_TRUE(parse("<a@localhost>"));
  EXPECT_TRUE(parse("<a@x-y.z9>"));
  EXPECT_FALSE(parse("<a@-x.y>"));
  EXPECT_FALSE(parse("<a@x-.y>"));
  EXPECT_FALSE(parse("<a@x..y>"));
  EXPECT_FALSE(parse("<a@x.y.>"));
  EXPECT_FALSE(parse("<a@>"));
  EXPECT_FALSE(parse("<a@[]>"));
  EXPECT_FALSE(parse("<a@[1.2.3.4>"));
  EXPECT_FALSE(parse("<a@" + std::string(256, 'd') + ">"));
  EXPECT_TRUE(isValidDomain("mail.example.org"));
  EXPECT_FALSE(isValidDomain("mail example"));
}

// RFC 5321 section 4.1.1.2: <> is the null reverse-path, MAIL only.
TEST(SmtpAddress, NullPath) {
  auto p = parse("<>", PathKind::Reverse);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->isNull());
  EXPECT_EQ(p->wire(), "<>");
  EXPECT_FALSE(parse("<>", PathKind::Forward));
}

// RFC 5321 section 4.1.1.3: <Postmaster> without a domain, RCPT only.
TEST(SmtpAddress, Postmaster) {
  auto p = parse("<PostMaster>");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->address(), "PostMaster");
  EXPECT_FALSE(parse("<postmaster>", PathKind::Reverse));
  EXPECT_FALSE(parse("<bob>"));
}

// RFC 5321 section 3.3 and appendix C: source routes are accepted and ignored.
TEST(SmtpAddress, SourceRouteDropped) {
  auto p = parse("<@relay1.org,@relay2.org:user@final.org>");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->wire(), "<user@final.org>");
  EXPECT_FALSE(parse("<@relay1.org user@final.org>"));
  EXPECT_FALSE(parse("<@:user@final.org>"));
}

TEST(SmtpAddress, ParametersAfterPathAreLeftToTheCaller) {
  size_t used = 0;
  auto p = parsePath("<a@b.c> SIZE=10", PathKind::Reverse, used);
  ASSERT_TRUE(p);
  EXPECT_EQ(used, 7u);
  EXPECT_FALSE(parse("a@b.c"));
  EXPECT_FALSE(parse("<a@b.c"));
}

// RFC 6531 section 3.3: UTF-8 in local parts and domains, well-formed only.
TEST(SmtpAddress, Utf8) {
  auto p = parse("<j\xC3\xB6rg@m\xC3\xBCnchen.example>");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->needsUtf8);
  EXPECT_TRUE(parse("<\"\xE7\x94\xB0 \xE4\xB8\xAD\"@x.y>")->needsUtf8);
  EXPECT_FALSE(parse("<j\xC3@x.y>"));          // cut sequence
  EXPECT_FALSE(parse("<j\xC0\xAF@x.y>"));      // overlong
  EXPECT_FALSE(parse("<j\xED\xA0\x80@x.y>"));  // surrogate
  EXPECT_FALSE(parse("<j\xFF@x.y>"));
}

}  // namespace
}  // namespace mb::smtp
