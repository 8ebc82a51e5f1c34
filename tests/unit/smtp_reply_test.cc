// Reply parser for the upstream relay (RFC 5321 section 4.2, RFC 2034
// enhanced codes) and EHLO capabilities; every input also split at each byte.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocols/smtp/reply.h"

namespace mb::smtp {
namespace {

struct Parsed {
  std::vector<Reply> replies;
  std::optional<Error> error;
};

Parsed parseChunks(const std::vector<std::string>& chunks) {
  ReplyParser p;
  Parsed out;
  for (const auto& c : chunks) {
    p.feed(c);
    for (;;) {
      auto r = p.next();
      if (!r) {
        out.error = r.error();
        return out;
      }
      if (!*r) break;
      out.replies.push_back(std::move(**r));
    }
  }
  return out;
}

bool same(const Parsed& a, const Parsed& b) {
  if (a.replies.size() != b.replies.size() || a.error.has_value() != b.error.has_value()) return false;
  for (size_t i = 0; i < a.replies.size(); ++i) {
    if (a.replies[i].code != b.replies[i].code || a.replies[i].enhanced != b.replies[i].enhanced ||
        a.replies[i].lines != b.replies[i].lines)
      return false;
  }
  return true;
}

Parsed parseEverySplit(const std::string& input) {
  Parsed whole = parseChunks({input});
  for (size_t k = 1; k < input.size(); ++k)
    EXPECT_TRUE(same(whole, parseChunks({input.substr(0, k), input.substr(k)}))) << "split at " << k;
  std::vector<std::string> bytes;
  for (char c : input) bytes.emplace_back(1, c);
  EXPECT_TRUE(same(whole, parseChunks(bytes))) << "byte by byte";
  return whole;
}

const std::string kEhloReply =
    "250-smtp.example.com at your service\r\n"
    "250-SIZE 35882577\r\n"
    "250-8BITMIME\r\n"
    "250-AUTH LOGIN PLAIN XOAUTH2\r\n"
    "250-AUTH=LOGIN\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-pipelining\r\n"
    "250 SMTPUTF8\r\n";

TEST(SmtpReply, SingleAndMultiLineSplitAnywhere) {
  std::string in = "220 mx.example ESMTP ready\r\n" + kEhloReply + "250 2.1.0 Sender OK\r\n354 Go ahead\r\n";
  Parsed p = parseEverySplit(in);
  ASSERT_FALSE(p.error);
  ASSERT_EQ(p.replies.size(), 4u);
  EXPECT_EQ(p.replies[0].code, 220);
  EXPECT_EQ(p.replies[0].enhanced, "");  // the greeting carries none (RFC 2034 section 3)
  EXPECT_EQ(p.replies[1].code, 250);
  EXPECT_EQ(p.replies[1].lines.size(), 8u);
  EXPECT_EQ(p.replies[2].enhanced, "2.1.0");
  EXPECT_EQ(p.replies[2].text(), "Sender OK");
  EXPECT_TRUE(p.replies[3].positive());
}

// RFC 3463 section 2: class.subject.detail, repeated on each line of a
// multi-line reply (RFC 2034 section 4); the repeats are stripped.
TEST(SmtpReply, EnhancedCodes) {
  Parsed p = parseEverySplit(
      "550-5.7.1 Line one\r\n550-5.7.1 Line two\r\n550 5.7.1 Line three\r\n"
      "451 4.3.0\r\n250 2.0.0.0 not a code\r\n550 2.1.0 wrong class\r\n421\r\n");
  ASSERT_FALSE(p.error);
  ASSERT_EQ(p.replies.size(), 5u);
  EXPECT_EQ(p.replies[0].enhanced, "5.7.1");
  EXPECT_EQ(p.replies[0].lines, (std::vector<std::string>{"Line one", "Line two", "Line three"}));
  EXPECT_EQ(p.replies[0].text(), "Line one Line two Line three");
  EXPECT_TRUE(p.replies[0].permanent());
  EXPECT_EQ(p.replies[1].enhanced, "4.3.0");
  EXPECT_TRUE(p.replies[1].transient());
  EXPECT_EQ(p.replies[2].enhanced, "");
  EXPECT_EQ(p.replies[3].enhanced, "");
  EXPECT_EQ(p.replies[4].code, 421);
  EXPECT_EQ(p.replies[4].lines, std::vector<std::string>{""});
}

TEST(SmtpReply, BareLfTolerated) {
  Parsed p = parseEverySplit("250-a\n250 b\n");
  ASSERT_EQ(p.replies.size(), 1u);
  EXPECT_EQ(p.replies[0].lines, (std::vector<std::string>{"a", "b"}));
}

TEST(SmtpReply, MalformedRepliesAreErrors) {
  for (std::string bad : {"hello\r\n", "25\r\n", "250x\r\n", "250-a\r\n251 b\r\n", "099 x\r\n", "650 x\r\n"}) {
    Parsed p = parseEverySplit(bad);
    EXPECT_TRUE(p.error) << bad;
  }
  // Replies before the error are still delivered, and the error stays.
  ReplyParser parser;
  parser.feed("250 ok\r\nnonsense\r\n250 ok\r\n");
  auto first = parser.next();
  ASSERT_TRUE(first && *first);
  EXPECT_FALSE(parser.next());
  EXPECT_FALSE(parser.next());
}

TEST(SmtpReply, MemoryIsBounded) {
  ReplyParser p;
  p.feed(std::string(10000, 'x'));
  EXPECT_FALSE(p.next());
  ReplyParser q;
  for (int i = 0; i < 2000; ++i) q.feed("250-" + std::string(100, 'y') + "\r\n");
  EXPECT_FALSE(q.next());
}

// RFC 5321 section 4.1.1.1: ehlo-line = ehlo-keyword *( SP ehlo-param ).
TEST(SmtpReply, EhloCapabilities) {
  Parsed p = parseChunks({kEhloReply});
  ASSERT_EQ(p.replies.size(), 1u);
  Capabilities caps = Capabilities::fromEhlo(p.replies[0]);
  EXPECT_TRUE(caps.has("PIPELINING"));
  EXPECT_TRUE(caps.has("pipelining"));
  EXPECT_TRUE(caps.has("8BITMIME"));
  EXPECT_FALSE(caps.has("STARTTLS"));
  EXPECT_FALSE(caps.has("smtp.example.com"));  // the first line is the server name
  EXPECT_TRUE(caps.hasAuth("xoauth2"));
  EXPECT_TRUE(caps.hasAuth("LOGIN"));
  EXPECT_FALSE(caps.hasAuth("CRAM-MD5"));
  EXPECT_EQ(caps.sizeLimit(), 35882577u);
  ASSERT_NE(caps.params("auth"), nullptr);
  EXPECT_EQ(caps.params("NOPE"), nullptr);

  Parsed q = parseChunks({"250-x\r\n250 SIZE\r\n"});
  EXPECT_EQ(Capabilities::fromEhlo(q.replies[0]).sizeLimit(), 0u);
  EXPECT_EQ(Capabilities::fromEhlo(p.replies[0]).params("SMTPUTF8")->size(), 0u);
  Parsed r = parseChunks({"250 only-name\r\n"});
  EXPECT_FALSE(Capabilities::fromEhlo(r.replies[0]).sizeLimit());
}

}  // namespace
}  // namespace mb::smtp
