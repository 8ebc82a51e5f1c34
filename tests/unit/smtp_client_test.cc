// Upstream client side: command lines, SASL initial responses, DATA
// dot-stuffing (RFC 5321 section 4.5.2) and round trips through the server's
// body reader. Also pins base64 (RFC 4648) used by both sides.
#include <gtest/gtest.h>

#include "protocols/common/base64.h"
#include "protocols/smtp/body_reader.h"
#include "protocols/smtp/client.h"

namespace mb::smtp {
namespace {

// RFC 4648 section 10 test vectors.
TEST(SmtpBase64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (auto [raw, enc] : vectors) {
    EXPECT_EQ(base64Encode(raw), enc);
    auto d = base64Decode(enc);
    ASSERT_TRUE(d) << enc;
    EXPECT_EQ(*d, raw);
  }
  std::string all;
  for (int i = 0; i < 256; ++i) all += char(i);
  EXPECT_EQ(*base64Decode(base64Encode(all)), all);
}

TEST(SmtpBase64, StrictDecoding) {
  for (const char* bad : {"Zg", "Zg=", "Z===", "====", "Zm9v\r\n", "Zm 9", "Zh==", "Zm9=Zm9v", "Zm!v"})
    EXPECT_FALSE(base64Decode(bad)) << bad;
}

TEST(SmtpClient, CommandLines) {
  EXPECT_EQ(client::ehlo("bridge.local"), "EHLO bridge.local\r\n");
  EXPECT_EQ(*client::mailFrom("a@b.c"), "MAIL FROM:<a@b.c>\r\n");
  EXPECT_EQ(*client::mailFrom("", {.size = 1234, .eightBitMime = true, .smtputf8 = true}),
            "MAIL FROM:<> SIZE=1234 BODY=8BITMIME SMTPUTF8\r\n");
  EXPECT_EQ(*client::rcptTo("d@e.f"), "RCPT TO:<d@e.f>\r\n");
  EXPECT_FALSE(client::rcptTo(""));
  EXPECT_FALSE(client::rcptTo("x@y\r\nRCPT TO:<evil@z>"));
  EXPECT_FALSE(client::mailFrom("a>@b"));
  EXPECT_EQ(client::data(), "DATA\r\n");
  EXPECT_EQ(client::quit(), "QUIT\r\n");
  EXPECT_EQ(client::rset(), "RSET\r\n");
  EXPECT_EQ(client::startTls(), "STARTTLS\r\n");
}

// RFC 4616 section 2 / RFC 4954 section 4.
TEST(SmtpClient, AuthLines) {
  EXPECT_EQ(client::authPlain("tim", "tanstaaftanstaaf"), "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n");
  EXPECT_EQ(client::authPlain("u", "p", "z"), "AUTH PLAIN " + base64Encode(std::string("z\0u\0p", 5)) + "\r\n");
  EXPECT_EQ(client::authLogin(), "AUTH LOGIN\r\n");
  EXPECT_EQ(client::authResponse("alice"), "YWxpY2U=\r\n");
  // Google's documented example: user=someuser@example.com^Aauth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg^A^A
  EXPECT_EQ(client::xoauth2InitialResponse("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"),
            "user=someuser@example.com\x01" "auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01");
  EXPECT_EQ(client::authXoauth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"),
            "AUTH XOAUTH2 dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==\r\n");
}

// RFC 5321 section 4.5.2: a line starting with '.' gets one more; the body
// always ends with CRLF "." CRLF.
TEST(SmtpClient, DotStuffing) {
  EXPECT_EQ(*client::dotStuff("a\r\n.b\r\n.\r\n..\r\nc.\r\n"), "a\r\n..b\r\n..\r\n...\r\nc.\r\n.\r\n");
  EXPECT_EQ(*client::dotStuff(".starts"), "..starts\r\n.\r\n");
  EXPECT_EQ(*client::dotStuff("no final crlf"), "no final crlf\r\n.\r\n");
  EXPECT_EQ(*client::dotStuff(""), ".\r\n");
  EXPECT_EQ(*client::dotStuff("\r\n"), "\r\n.\r\n");
  EXPECT_EQ(*client::dotStuff("\r\n.\r\n"), "\r\n..\r\n.\r\n");
}

// Stored messages are CRLF-normalised; a bare CR/LF means corruption and
// would be a smuggling vector upstream, so the encoder refuses it.
TEST(SmtpClient, DotStuffingRefusesBareLineEndings) {
  for (std::string bad : {"a\nb\r\n", "a\rb\r\n", "a\r", "\n.\n", "x\r\r\n"}) {
    auto r = client::dotStuff(bad);
    ASSERT_FALSE(r) << ::testing::PrintToString(bad);
    EXPECT_EQ(r.error().kind, ErrorKind::Corrupt);
  }
}

TEST(SmtpClient, DotStufferSplitAnywhereMatchesWhole) {
  const std::string msg = "From: a\r\n\r\n.x\r\n.\r\nend";
  const std::string whole = *client::dotStuff(msg);
  for (size_t k = 0; k <= msg.size(); ++k) {
    client::DotStuffer s;
    std::string out;
    ASSERT_TRUE(s.append(msg.substr(0, k), out));
    ASSERT_TRUE(s.append(msg.substr(k), out));
    ASSERT_TRUE(s.finish(out));
    EXPECT_EQ(out, whole) << "split at " << k;
  }
}

// What the client stuffs, the server's DATA reader unstuffs back.
TEST(SmtpClient, RoundTripThroughServerBodyReader) {
  for (std::string msg : {"", "a\r\n", ".\r\n", "..\r\n.\r\n", "x\r\n.\r\n.y\r\n", "no crlf"}) {
    std::string wire = *client::dotStuff(msg);
    BodyReader reader(1 << 20);
    EXPECT_EQ(reader.feedDotted(wire), wire.size());
    ASSERT_TRUE(reader.done());
    EXPECT_FALSE(reader.bareLineEnding());
    std::string expected = msg;
    if (!expected.empty() && !expected.ends_with("\r\n")) expected += "\r\n";
    EXPECT_EQ(reader.takeData(), expected) << ::testing::PrintToString(msg);
  }
}

// The body reader alone: where DATA ends and what it remembers.
TEST(SmtpBodyReader, StopsRightAfterTheTerminator) {
  BodyReader r(100);
  std::string in = "a\r\n.\r\nMAIL FROM:<x@y.z>\r\n";
  EXPECT_EQ(r.feedDotted(in), 6u);
  EXPECT_TRUE(r.done());
  EXPECT_EQ(r.takeData(), "a\r\n");
}

TEST(SmtpBodyReader, SizeCountedPastTheLimitWithoutBuffering) {
  BodyReader r(10);
  r.feedDotted("0123456789\r\n");
  r.feedDotted(std::string(100000, 'x'));
  r.feedDotted("\r\n.\r\n");
  EXPECT_TRUE(r.done());
  EXPECT_TRUE(r.tooBig());
  EXPECT_EQ(r.size(), 12u + 100000u + 2u);
  EXPECT_EQ(r.takeData(), "");
}

TEST(SmtpBodyReader, RawChunksKeepDotsAndCatchTrailingCr) {
  BodyReader r(100);
  r.feedRaw(".\r");
  r.feedRaw("\n.\r");
  r.finishRaw();
  EXPECT_TRUE(r.bareLineEnding());
  BodyReader ok(100);
  ok.feedRaw(".\r");
  ok.feedRaw("\n");
  ok.finishRaw();
  EXPECT_FALSE(ok.bareLineEnding());
  EXPECT_EQ(ok.takeData(), ".\r\n");
}

}  // namespace
}  // namespace mb::smtp
