// Mailbox name encoding: modified UTF-7 (RFC 3501 5.1.3) both ways, strict
// rejection of non-canonical forms, UTF8=ACCEPT names, INBOX folding.
#include <gtest/gtest.h>

#include "protocols/imap/mutf7.h"

namespace mb::imap {
namespace {

// UTF-8 for the RFC 3501 5.1.3 example: ~peter/mail/台北/日本語
const std::string kPeterUtf8 = "~peter/mail/\xE5\x8F\xB0\xE5\x8C\x97/\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E";

TEST(ImapMutf7Test, Rfc3501Section5_1_3ExampleDecodes) {
  auto d = mutf7Decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-");
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(*d, kPeterUtf8);
}

TEST(ImapMutf7Test, Rfc3501Section5_1_3ExampleEncodes) {
  auto e = mutf7Encode(kPeterUtf8);
  ASSERT_TRUE(e);
  EXPECT_EQ(*e, "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
}

TEST(ImapMutf7Test, AmpersandIsAmpersandDashRfc3501Section5_1_3) {
  EXPECT_EQ(*mutf7Encode("Tom & Jerry"), "Tom &- Jerry");
  EXPECT_EQ(*mutf7Decode("Tom &- Jerry"), "Tom & Jerry");
  EXPECT_EQ(*mutf7Decode("&-&-"), "&&");
}

TEST(ImapMutf7Test, RoundTripsRfc3501Section5_1_3) {
  const std::vector<std::string> names = {
      "",
      "INBOX",
      "Entw\xC3\xBCrfe",                       // Entwürfe
      "\xE2\x98\xBA!",                         // ☺!
      "\xF0\x9F\x98\x80 smile",                // U+1F600: a surrogate pair
      "a\xC3\xA9\xC3\xA9\xC3\xA9z",            // three BMP chars in one shift
      "\xD0\x9F\xD1\x80\xD0\xB8/\xE2\x82\xAC", // При/€
      "tab\there",                              // control chars are shifted
      "~&/&x",
  };
  for (const auto& n : names) {
    auto e = mutf7Encode(n);
    ASSERT_TRUE(e) << n;
    for (char c : *e) EXPECT_TRUE(c >= 0x20 && c <= 0x7E) << *e;
    auto d = mutf7Decode(*e);
    ASSERT_TRUE(d) << *e << ": " << d.error().message;
    EXPECT_EQ(*d, n);
  }
  EXPECT_EQ(*mutf7Encode("Entw\xC3\xBCrfe"), "Entw&APw-rfe");
  EXPECT_EQ(*mutf7Encode("\xE2\x98\xBA!"), "&Jjo-!");
  EXPECT_EQ(*mutf7Encode("\xF0\x9F\x98\x80"), "&2D3eAA-");
}

TEST(ImapMutf7Test, StrictDecodingRejectsNonCanonicalFormsRfc3501Section5_1_3) {
  struct Case {
    const char* in;
    const char* why;
  };
  const Case cases[] = {
      {"&U,BTFw", "unterminated '&'"},
      {"&AGE-", "printable ASCII must not be encoded"},  // 'a' shifted
      {"&U,BTFw-&ZeVnLIqe-", "adjacent shift sequences"},
      {"&U,BTFx-", "bad padding bits"},
      {"&2D3e-", "lone surrogate"},                      // high surrogate alone
      {"&3gA-", "lone surrogate"},                       // low surrogate alone
      {"&U/BTFw-", "bad base64 character"},              // '/' is not modified base64
      {"Entw\xC3\xBCrfe", "8-bit or control octet"},
      {"&APw=-", "bad base64 character"},
  };
  for (const auto& c : cases) {
    auto d = mutf7Decode(c.in);
    ASSERT_FALSE(d) << c.in;
    EXPECT_NE(d.error().message.find(c.why), std::string::npos) << c.in << ": " << d.error().message;
    EXPECT_EQ(d.error().kind, ErrorKind::Syntax);
  }
}

TEST(ImapMutf7Test, EncodeRejectsInvalidUtf8) {
  EXPECT_FALSE(mutf7Encode("\xC3"));
  EXPECT_FALSE(mutf7Encode("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(mutf7Encode("\xED\xA0\x80"));      // UTF-8 encoded surrogate
  EXPECT_FALSE(mutf7Encode("\xF4\x90\x80\x80"));  // above U+10FFFF
}

TEST(ImapMutf7Test, InboxIsCaseInsensitiveRfc3501Section5_1) {
  EXPECT_TRUE(isInbox("INBOX"));
  EXPECT_TRUE(isInbox("inbox"));
  EXPECT_TRUE(isInbox("InBoX"));
  EXPECT_FALSE(isInbox("INBOX/x"));
  EXPECT_FALSE(isInbox("INBOXX"));
  EXPECT_EQ(normalizeInbox("inbox"), "INBOX");
  EXPECT_EQ(normalizeInbox("Inbox/Sub"), "Inbox/Sub");
  EXPECT_EQ(normalizeInbox("Inbox/Sub", '/'), "INBOX/Sub");
  EXPECT_EQ(normalizeInbox("Inboxes/Sub", '/'), "Inboxes/Sub");
  EXPECT_EQ(normalizeInbox("Sent", '/'), "Sent");
}

TEST(ImapMutf7Test, Utf8AcceptUsesUtf8NamesRfc6855Section3) {
  EXPECT_EQ(*mailboxFromWire("Entw&APw-rfe", false), "Entw\xC3\xBCrfe");
  // With UTF8=ACCEPT the same octets are a literal name, '&' included.
  EXPECT_EQ(*mailboxFromWire("Entw&APw-rfe", true), "Entw&APw-rfe");
  EXPECT_EQ(*mailboxFromWire("Entw\xC3\xBCrfe", true), "Entw\xC3\xBCrfe");
  EXPECT_FALSE(mailboxFromWire("\xC3(", true));
  EXPECT_EQ(*mailboxToWire("Entw\xC3\xBCrfe", false), "Entw&APw-rfe");
  EXPECT_EQ(*mailboxToWire("Entw\xC3\xBCrfe", true), "Entw\xC3\xBCrfe");
}

}  // namespace
}  // namespace mb::imap
