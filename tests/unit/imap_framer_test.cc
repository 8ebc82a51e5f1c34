// IMAP framing limits: over-long lines and over-large literals get the
// right answer, the stream resynchronises, and memory stays bounded.
#include <gtest/gtest.h>

#include "protocols/imap/framer.h"
#include "protocols/imap/parser.h"
#include "tests/unit/imap_test_util.h"

namespace mb::imap {
namespace {

using test::Outcome;
using test::runChunks;
using test::runWhole;
using Ev = CommandParser::Event;

ParserOptions small() {
  ParserOptions o;
  o.limits.maxLineLength = 40;
  o.limits.maxLiteralSize = 100;
  o.limits.maxCommandLiterals = 150;
  o.limits.maxDiscard = 1000;
  return o;
}

// Runs whole, at every split and byte by byte; all must agree.
std::vector<Outcome> runEverySplit(const std::string& wire, ParserOptions opt) {
  auto whole = runWhole(wire, opt);
  for (size_t i = 0; i <= wire.size(); ++i) {
    auto split = runChunks({wire.substr(0, i), wire.substr(i)}, opt);
    EXPECT_EQ(split, whole) << "split at " << i;
    if (split != whole) break;
  }
  std::vector<std::string> bytes;
  for (char c : wire) bytes.emplace_back(1, c);
  EXPECT_EQ(runChunks(bytes, opt), whole) << "one byte at a time";
  return whole;
}

std::vector<std::string> tags(const std::vector<Outcome>& out) {
  std::vector<std::string> t;
  for (const auto& o : out) {
    if (o.event == Ev::Command) t.push_back(o.command->tag);
    else if (o.event == Ev::Error) t.push_back("ERR:" + o.tag + ":" + o.respCode + ":" + o.message);
    else if (o.event == Ev::Continuation) t.push_back("+");
  }
  return t;
}

TEST(ImapFramerTest, LineAtTheLimitIsAcceptedRfc3501Section4) {
  std::string line = "a LOGIN u " + std::string(30, 'p');  // 40 octets
  ASSERT_EQ(line.size(), 40u);
  EXPECT_EQ(tags(runEverySplit(line + "\r\n", small())), std::vector<std::string>{"a"});
  EXPECT_EQ(tags(runEverySplit(line + "\n", small())), std::vector<std::string>{"a"});
}

TEST(ImapFramerTest, LineTooLongIsBadAndTheNextCommandStillParses) {
  std::string wire = "a LOGIN u " + std::string(31, 'p') + "\r\nb NOOP\r\n";
  auto out = runEverySplit(wire, small());
  EXPECT_EQ(tags(out), (std::vector<std::string>{"ERR:a::Line too long", "b"}));
  EXPECT_TRUE(out[0].bad);
  EXPECT_FALSE(out[0].close);
}

TEST(ImapFramerTest, LineLimitCountsAllLinesOfACommandButNotLiterals) {
  // 3 lines of 13+5+30 = 48 non-literal octets > 40, each one shorter.
  std::string wire = "a LOGIN {50+}\r\n" + std::string(50, 'x') + " {4+}\r\nabcd" + std::string(30, ' ') + "\r\nb NOOP\r\n";
  EXPECT_EQ(tags(runEverySplit(wire, small())), (std::vector<std::string>{"ERR:a::Line too long", "b"}));
  // The same literals with shorter lines fit: literal octets do not count.
  std::string ok = "a LOGIN {50+}\r\n" + std::string(50, 'x') + " {4+}\r\nabcd\r\n";
  EXPECT_EQ(tags(runEverySplit(ok, small())), std::vector<std::string>{"a"});
}

// RFC 7888 4: a too-long line may announce a non-synchronizing literal that
// is already on its way; it must be skipped, not parsed as a command.
TEST(ImapFramerTest, TooLongLineEndingInNonSyncLiteralSkipsTheLiteralRfc7888Section4) {
  std::string wire = "a APPEND " + std::string(40, 'm') + " {10+}\r\nb NOOP\r\nx\r\nc NOOP\r\n";
  EXPECT_EQ(tags(runEverySplit(wire, small())), (std::vector<std::string>{"ERR:a::Line too long", "c"}));
}

// RFC 3501 7.5: the client only sends a synchronizing literal after "+";
// after a tagged BAD it does not, so the next octets are a new command.
TEST(ImapFramerTest, TooLongLineEndingInSyncLiteralExpectsNoDataRfc3501Section7_5) {
  std::string wire = "a APPEND " + std::string(40, 'm') + " {10}\r\nb NOOP\r\n";
  EXPECT_EQ(tags(runEverySplit(wire, small())), (std::vector<std::string>{"ERR:a::Line too long", "b"}));
}

TEST(ImapFramerTest, SyncLiteralTooBigIsNoTooBigWithoutContinuationRfc9051Section7_1) {
  std::string wire = "a APPEND INBOX {101}\r\nb NOOP\r\n";
  auto out = runEverySplit(wire, small());
  EXPECT_EQ(tags(out), (std::vector<std::string>{"ERR:a:TOOBIG:Literal too big", "b"}));
  EXPECT_FALSE(out[0].bad);  // NO, not BAD
  EXPECT_FALSE(out[0].close);
  // At the limit it is fine.
  std::string ok = "a APPEND INBOX {100}\r\n" + std::string(100, 'x') + "\r\n";
  EXPECT_EQ(tags(runEverySplit(ok, small())), (std::vector<std::string>{"+", "a"}));
}

TEST(ImapFramerTest, NonSyncLiteralTooBigIsBadAndDiscardedRfc7888Section4) {
  std::string wire = "a APPEND INBOX {200+}\r\n" + std::string(200, 'b') + "\r\nc NOOP\r\n";
  auto out = runEverySplit(wire, small());
  EXPECT_EQ(tags(out), (std::vector<std::string>{"ERR:a:TOOBIG:Non-synchronizing literal too big", "c"}));
  EXPECT_TRUE(out[0].bad);
  EXPECT_FALSE(out[0].close);
  // The rest of the command after the literal, including more non-sync
  // literals, is dropped as well.
  std::string more = "a APPEND INBOX {200+}\r\n" + std::string(200, 'b') + " {3+}\r\nxyz\r\nc NOOP\r\n";
  EXPECT_EQ(tags(runEverySplit(more, small())),
            (std::vector<std::string>{"ERR:a:TOOBIG:Non-synchronizing literal too big", "c"}));
}

TEST(ImapFramerTest, NonSyncLiteralBeyondDiscardLimitClosesRfc7888Section4) {
  std::string wire = "a APPEND INBOX {5000+}\r\nxxxx\r\nb NOOP\r\n";
  auto out = runEverySplit(wire, small());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].respCode, "TOOBIG");
  EXPECT_TRUE(out[0].close);
  auto huge = runWhole("a APPEND INBOX {99999999999999999999999999+}\r\n");
  ASSERT_EQ(huge.size(), 1u);
  EXPECT_TRUE(huge[0].close);
  // Too long and announcing too much: BAD for the line, then BYE.
  auto both = runWhole("a APPEND INBOX " + std::string(30, 'x') + " {99999+}\r\n", small());
  EXPECT_EQ(tags(both), (std::vector<std::string>{"ERR:a::Line too long", "ERR:*:TOOBIG:Too much data to discard"}));
  EXPECT_TRUE(both[1].close);
}

TEST(ImapFramerTest, SyncLiteralSizeOverflowIsTooBigRfc9051Section7_1) {
  auto out = runWhole("a LOGIN {99999999999999999999999999}\r\nb NOOP\r\n", small());
  EXPECT_EQ(tags(out), (std::vector<std::string>{"ERR:a:TOOBIG:Literal too big", "b"}));
}

TEST(ImapFramerTest, LiteralMinusAllowsNonSyncUpTo4096Rfc7888Section4) {
  ParserOptions o;
  o.literalMinus = true;
  std::string ok = "a APPEND INBOX {4096+}\r\n" + std::string(4096, 'x') + "\r\n";
  EXPECT_EQ(tags(runWhole(ok, o)), std::vector<std::string>{"a"});
  std::string big = "a APPEND INBOX {4097+}\r\n" + std::string(4097, 'x') + "\r\nb NOOP\r\n";
  EXPECT_EQ(tags(runWhole(big, o)), (std::vector<std::string>{"ERR:a:TOOBIG:Non-synchronizing literal too big", "b"}));
  // A synchronizing literal of the same size is fine under LITERAL-.
  std::string sync = "a APPEND INBOX {4097}\r\n" + std::string(4097, 'x') + "\r\n";
  EXPECT_EQ(tags(runWhole(sync, o)), (std::vector<std::string>{"+", "a"}));
}

TEST(ImapFramerTest, MultiAppendTotalIsBoundedRfc3502Section6) {
  // 100 + 51 > maxCommandLiterals (150): the second literal is refused.
  std::string wire = "a APPEND INBOX {100+}\r\n" + std::string(100, 'x') + " {51}\r\nb NOOP\r\n";
  EXPECT_EQ(tags(runEverySplit(wire, small())), (std::vector<std::string>{"ERR:a:TOOBIG:Literal too big", "b"}));
}

TEST(ImapFramerTest, ZeroLengthLiteralsRfc3501Section4_3) {
  auto out = runEverySplit("a LOGIN {0}\r\n {0+}\r\n\r\n", {});
  ASSERT_EQ(tags(out), (std::vector<std::string>{"+", "a"}));
  auto l = std::get<LoginCmd>(out.back().command->body);
  EXPECT_EQ(l.user, "");
  EXPECT_EQ(l.password, "");
}

TEST(ImapFramerTest, BraceInsideQuotedStringIsNotALiteralRfc3501Section4_3) {
  // The quote is still open at "{3}", so no continuation may be sent.
  auto out = runWhole("a LOGIN \"x {3}\r\nb NOOP\r\n");
  EXPECT_EQ(tags(out), (std::vector<std::string>{"ERR:a::Unterminated quoted string in user name", "b"}));
  // An escaped quote does not close the string.
  auto esc = runWhole("a LOGIN \"x\\\" {3}\r\nb NOOP\r\n");
  EXPECT_EQ(esc[0].event, Ev::Error);
  EXPECT_EQ(esc[1].command->tag, "b");
}

TEST(ImapFramerTest, TagOfAnOverlongFirstLineIsKeptOrStar) {
  auto out = runWhole(std::string(100, 't') + "\r\nb NOOP\r\n", small());
  EXPECT_EQ(tags(out), (std::vector<std::string>{"ERR:*::Line too long", "b"}));
}

// Memory must follow the limits, not the input: a 10 MB line and a 10 MB
// discarded literal fed in 4 KB chunks never grow the buffers.
TEST(ImapFramerTest, MemoryStaysBoundedForHugeInput) {
  ParserOptions o = small();
  o.limits.maxDiscard = 20 * 1024 * 1024;
  CommandParser p(o);
  const std::string chunk(4096, 'z');
  size_t maxHeld = 0;
  auto drain = [&] {
    while (p.next() != Ev::NeedMore) {
    }
    maxHeld = std::max(maxHeld, p.bufferedBytes());
  };
  p.feed("a NOOP ");
  for (int i = 0; i < 2560; ++i) {
    p.feed(chunk);
    drain();
  }
  p.feed(" {10485760+}\r\n");
  drain();
  for (int i = 0; i < 2560; ++i) {
    p.feed(chunk);
    drain();
  }
  p.feed("\r\nb NOOP\r\n");
  ASSERT_EQ(p.next(), Ev::Command);
  EXPECT_EQ(p.takeCommand().tag, "b");
  EXPECT_LE(maxHeld, o.limits.maxLineLength + 64);
}

TEST(ImapFramerTest, FindLiteralHeaderForms) {
  LiteralHeader h;
  ASSERT_TRUE(findLiteralHeader("a LOGIN {12}", h));
  EXPECT_EQ(h.size, 12u);
  EXPECT_FALSE(h.nonSync);
  EXPECT_FALSE(h.binary);
  EXPECT_EQ(h.start, 8u);
  ASSERT_TRUE(findLiteralHeader("a APPEND x ~{7+}", h));
  EXPECT_TRUE(h.binary);
  EXPECT_TRUE(h.nonSync);
  EXPECT_EQ(h.size, 7u);
  EXPECT_FALSE(findLiteralHeader("a LOGIN {}", h));
  EXPECT_FALSE(findLiteralHeader("a LOGIN {+}", h));
  EXPECT_FALSE(findLiteralHeader("a LOGIN 12}", h));
  EXPECT_FALSE(findLiteralHeader("a LOGIN {1a}", h));
  EXPECT_FALSE(findLiteralHeader("", h));
}

TEST(ImapFramerTest, LineModeReturnsRawLinesWithoutLiteralProcessing) {
  Framer f;
  f.setMode(Framer::Mode::Line);
  f.feed("abc {5}\r\n");
  ASSERT_EQ(f.next(), FrameEvent::Command);
  auto raw = f.takeCommand();
  ASSERT_EQ(raw.lines.size(), 1u);
  EXPECT_EQ(raw.lines[0], "abc {5}");
  EXPECT_TRUE(raw.literals.empty());
}

// RFC 2177 3: while idling only DONE is read, as a raw line. An over-long
// line there is BAD, has no tag, and "{5+}" at its end announces nothing.
TEST(ImapFramerTest, OverlongLineWhileIdlingRfc2177Section3) {
  std::string wire = "a IDLE\r\n" + std::string(60, 'x') + " {5+}\r\nb NOOP\r\n";
  EXPECT_EQ(tags(runEverySplit(wire, small())), (std::vector<std::string>{"a", "ERR:*::Line too long", "b"}));
}

}  // namespace
}  // namespace mb::imap
