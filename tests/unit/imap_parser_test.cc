// IMAP command parser: every command form from a transcript, fed whole, at
// every split point and one byte at a time, must give the same typed result.
#include <gtest/gtest.h>

#include "protocols/imap/parser.h"
#include "tests/unit/imap_test_util.h"

namespace mb::imap {
namespace {

using namespace std::string_literals;

using test::Outcome;
using test::runChunks;
using test::runWhole;
using Ev = CommandParser::Event;

// Parses a transcript that must hold exactly one command (sync literals may
// add Continuation events first) and returns it.
Command parseOne(std::string_view wire, ParserOptions opt = {}) {
  auto out = runWhole(wire, opt);
  for (const auto& o : out) {
    if (o.event == Ev::Error) {
      ADD_FAILURE() << "unexpected error for " << wire << ": " << o.message;
      return {};
    }
  }
  if (out.empty() || out.back().event != Ev::Command) {
    ADD_FAILURE() << "no command from " << wire;
    return {};
  }
  return *out.back().command;
}

std::string badReason(std::string_view wire, ParserOptions opt = {}) {
  auto out = runWhole(wire, opt);
  for (const auto& o : out) {
    if (o.event == Ev::Error) return o.message;
  }
  return "<no error>";
}

template <class T>
T as(const Command& c) {
  if (!std::holds_alternative<T>(c.body)) {
    ADD_FAILURE() << "wrong command type " << commandName(c);
    return T{};
  }
  return std::get<T>(c.body);
}

// ---- the transcript table -------------------------------------------------

struct Transcript {
  const char* rfc;   // where the form is defined
  const char* name;  // expected commandName()
  std::string wire;
};

std::vector<Transcript> transcripts() {
  return {
      {"RFC 3501 6.1.1", "CAPABILITY", "a1 CAPABILITY\r\n"},
      {"RFC 3501 6.1.2", "NOOP", "a2 noop\r\n"},
      {"RFC 3501 6.1.3", "LOGOUT", "A023 LOGOUT\r\n"},
      {"RFC 3501 6.2.1", "STARTTLS", "a STARTTLS\r\n"},
      {"RFC 3501 6.2.2", "AUTHENTICATE", "A001 AUTHENTICATE GSSAPI\r\n"},
      {"RFC 4959 7", "AUTHENTICATE", "a AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\n"},
      {"RFC 4959 7", "AUTHENTICATE", "a AUTHENTICATE EXTERNAL =\r\n"},
      {"RFC 3501 6.2.3", "LOGIN", "a001 LOGIN SMITH SESAME\r\n"},
      {"RFC 3501 6.2.3 quoted", "LOGIN", "a001 LOGIN \"smith@example.com\" \"pa ss\\\"w\\\\d\"\r\n"},
      {"RFC 3501 4.3 literal", "LOGIN", "a001 LOGIN {5}\r\nsmith {6}\r\nsesame\r\n"},
      {"RFC 7888 3 LITERAL+", "LOGIN", "a001 LOGIN {5+}\r\nsmith {6+}\r\nsesame\r\n"},
      {"RFC 3501 6.3.1", "SELECT", "A142 SELECT INBOX\r\n"},
      {"RFC 7162 3.1.8", "SELECT", "a SELECT INBOX (CONDSTORE)\r\n"},
      {"RFC 7162 3.2.5", "SELECT",
       "A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n"},
      {"RFC 7162 3.2.5 seq-match", "SELECT",
       "B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 "
       "15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997)))\r\n"},
      {"RFC 3501 6.3.2", "EXAMINE", "A932 EXAMINE blurdybloop\r\n"},
      {"RFC 3501 6.3.3", "CREATE", "A003 CREATE owatagusiam/\r\n"},
      {"RFC 6154 5.2", "CREATE", "t1 CREATE \"Important Messages\" (USE (\\Important))\r\n"},
      {"RFC 6154 5.2", "CREATE", "t1 CREATE MySent (USE (\\Sent \\Archive))\r\n"},
      {"RFC 3501 6.3.4", "DELETE", "A682 DELETE blurdybloop\r\n"},
      {"RFC 3501 6.3.5", "RENAME", "A683 RENAME blurdybloop sarasoop\r\n"},
      {"RFC 3501 6.3.6", "SUBSCRIBE", "A002 SUBSCRIBE #news.comp.mail.mime\r\n"},
      {"RFC 3501 6.3.7", "UNSUBSCRIBE", "A002 UNSUBSCRIBE #news.comp.mail.mime\r\n"},
      {"RFC 3501 6.3.8", "LIST", "A101 LIST \"\" \"\"\r\n"},
      {"RFC 3501 6.3.8", "LIST", "A102 LIST #news.comp.mail.misc \"\"\r\n"},
      {"RFC 3501 6.3.8", "LIST", "A202 LIST ~/Mail/ %\r\n"},
      {"RFC 3501 6.3.8", "LIST", "a LIST \"\" *\r\n"},
      {"RFC 5258 5", "LIST", "A02 LIST (SUBSCRIBED) \"\" \"*\"\r\n"},
      {"RFC 5258 5", "LIST", "A03 LIST () \"\" \"%\" RETURN (CHILDREN)\r\n"},
      {"RFC 5258 5", "LIST", "A04 LIST (REMOTE) \"\" \"%\" RETURN (CHILDREN)\r\n"},
      {"RFC 5258 5", "LIST", "A05 LIST (REMOTE SUBSCRIBED) \"\" \"*\"\r\n"},
      {"RFC 5258 5", "LIST", "A06 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\" RETURN (CHILDREN)\r\n"},
      {"RFC 5258 5", "LIST", "BBB LIST \"\" (\"INBOX\" \"Drafts\" \"Sent/%\")\r\n"},
      {"RFC 5819 3", "LIST", "A01 LIST \"\" % RETURN (STATUS (MESSAGES UNSEEN))\r\n"},
      {"RFC 6154 5.1", "LIST", "t1 LIST (SPECIAL-USE) \"\" \"*\"\r\n"},
      {"RFC 6154 5.1", "LIST", "t3 LIST \"\" \"%\" RETURN (SPECIAL-USE SUBSCRIBED)\r\n"},
      {"RFC 3501 6.3.9", "LSUB", "A002 LSUB \"#news.\" \"comp.mail.*\"\r\n"},
      {"RFC 3501 6.3.10", "STATUS", "A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n"},
      {"RFC 7162 3.1.2", "STATUS", "a STATUS INBOX (MESSAGES HIGHESTMODSEQ SIZE DELETED UIDVALIDITY UNSEEN RECENT)\r\n"},
      {"RFC 3501 6.3.11", "APPEND",
       "A003 APPEND saved-messages (\\Seen) {12}\r\nHello Joe!\r\n\r\n"},
      {"RFC 3501 6.3.11 date-time", "APPEND",
       "A003 APPEND saved-messages (\\Seen $Forwarded) \" 7-Feb-1994 21:52:25 -0800\" {5}\r\nhello\r\n"},
      {"RFC 3501 6.3.11 no flags", "APPEND", "A003 APPEND INBOX {0}\r\n\r\n"},
      {"RFC 3502 6 MULTIAPPEND", "APPEND",
       "A003 APPEND saved-messages (\\Seen) {5}\r\nfirst (\\Draft) \"07-Feb-1994 21:52:25 +0100\" {6+}\r\nsecond "
       "{5}\r\nthird\r\n"},
      {"RFC 3516 4.4 literal8", "APPEND", "a APPEND INBOX ~{4}\r\nb\0i\n\r\n"s},
      {"RFC 6855 4 UTF8 append-data", "APPEND", "a APPEND INBOX (\\Seen) utf8 (~{3}\r\n\xc3\xa9!)\r\n"},
      {"RFC 6855 4 UTF8 in MULTIAPPEND", "APPEND",
       "a APPEND INBOX UTF8 (~{2+}\r\nab) {1}\r\nc UTF8 (~{1}\r\nd)\r\n"},
      {"RFC 3501 6.4.1", "CHECK", "FXXZ CHECK\r\n"},
      {"RFC 3501 6.4.2", "CLOSE", "A341 CLOSE\r\n"},
      {"RFC 3691 2", "UNSELECT", "A342 UNSELECT\r\n"},
      {"RFC 3501 6.4.3", "EXPUNGE", "A202 EXPUNGE\r\n"},
      {"RFC 4315 2.1", "UID EXPUNGE", "A003 UID EXPUNGE 3000:3002\r\n"},
      {"RFC 3501 6.4.4", "SEARCH", "A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n"},
      {"RFC 3501 6.4.4", "SEARCH", "A283 SEARCH TEXT \"string not in mailbox\"\r\n"},
      {"RFC 3501 6.4.4 CHARSET literal", "SEARCH", "A284 SEARCH CHARSET UTF-8 TEXT {6}\r\nXXXXXX\r\n"},
      {"RFC 3501 6.4.4 OR/NOT/groups", "SEARCH",
       "a SEARCH OR (DELETED FROM bob) NOT (UNSEEN OR SEEN KEYWORD $Junk) 1:5,7 UID 10:* LARGER 100 "
       "SMALLER 5000000000\r\n"},
      {"RFC 3501 6.4.4 all keys", "SEARCH",
       "a SEARCH ALL ANSWERED BCC b BEFORE \"1-Jan-2000\" BODY x CC c DELETED DRAFT FLAGGED FROM f "
       "HEADER X-Foo bar KEYWORD k NEW OLD ON 2-Mar-2001 RECENT SEEN SENTBEFORE 1-Jan-2000 SENTON "
       "1-Jan-2000 SENTSINCE 1-Jan-2000 SINCE 1-Jan-2000 SUBJECT s TEXT t TO to UNANSWERED UNDELETED "
       "UNDRAFT UNFLAGGED UNKEYWORD k UNSEEN\r\n"},
      {"RFC 4731 3.1", "SEARCH", "A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n"},
      {"RFC 4731 3.1", "UID SEARCH", "A285 UID SEARCH RETURN (MIN MAX) 1:5000\r\n"},
      {"RFC 4731 3.1", "UID SEARCH", "A286 UID SEARCH RETURN () CHARSET UTF-8 ALL\r\n"},
      {"RFC 5182 2.4", "UID SEARCH", "A300 UID SEARCH RETURN (SAVE) $ DELETED\r\n"},
      {"RFC 7162 3.1.5", "SEARCH", "a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n"},
      {"RFC 7162 3.1.5", "SEARCH", "a SEARCH OR NOT MODSEQ 720162338 LARGER 50000\r\n"},
      {"RFC 3501 6.4.5", "FETCH", "A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n"},
      {"RFC 3501 6.4.5 macro", "FETCH", "a FETCH 1 ALL\r\n"},
      {"RFC 3501 6.4.5 macro", "FETCH", "a FETCH 1:* FAST\r\n"},
      {"RFC 3501 6.4.5 macro", "FETCH", "a FETCH * FULL\r\n"},
      {"RFC 3501 6.4.5 all atts", "FETCH",
       "a FETCH 1 (ENVELOPE FLAGS INTERNALDATE RFC822 RFC822.HEADER RFC822.SIZE RFC822.TEXT BODY "
       "BODYSTRUCTURE UID)\r\n"},
      {"RFC 3501 6.4.5 sections", "FETCH",
       "a FETCH 1 (BODY[] BODY.PEEK[TEXT]<0.2048> BODY[1.2.3.HEADER] BODY[4.2.MIME] BODY[3.TEXT] "
       "BODY[HEADER.FIELDS.NOT (Received X-Spam)] BODY[2]<100.5>)\r\n"},
      {"RFC 3516 4.2", "FETCH", "a FETCH 1 (BINARY[1] BINARY.PEEK[1.2]<0.100> BINARY.SIZE[3] BINARY[])\r\n"},
      {"RFC 7162 3.3.1", "FETCH", "s100 FETCH 1:* (FLAGS MODSEQ) (CHANGEDSINCE 12345)\r\n"},
      {"RFC 7162 3.2.6", "UID FETCH", "A1 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n"},
      {"RFC 3501 6.4.6", "STORE", "A003 STORE 2:4 +FLAGS (\\Deleted)\r\n"},
      {"RFC 3501 6.4.6", "STORE", "A004 STORE 1 -FLAGS.SILENT \\Seen \\Flagged\r\n"},
      {"RFC 3501 6.4.6", "STORE", "A005 STORE 1:* FLAGS ()\r\n"},
      {"RFC 7162 3.1.3", "STORE", "a103 STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)\r\n"},
      {"RFC 3501 6.4.7", "COPY", "A003 COPY 2:4 MEETING\r\n"},
      {"RFC 6851 3.1", "MOVE", "a MOVE 1:3 Trash\r\n"},
      {"RFC 3501 6.4.8", "UID FETCH", "A999 UID FETCH 4827313:4828442 FLAGS\r\n"},
      {"RFC 3501 6.4.8", "UID STORE", "a UID STORE 1:* +FLAGS (\\Seen)\r\n"},
      {"RFC 3501 6.4.8", "UID COPY", "a UID COPY 4827313 \"Saved Mail\"\r\n"},
      {"RFC 6851 3.2", "UID MOVE", "a UID MOVE 42:69 foo\r\n"},
      {"RFC 3501 6.4.8", "UID SEARCH", "a UID SEARCH UID 1:* NOT DELETED\r\n"},
      {"RFC 2342 5", "NAMESPACE", "A001 NAMESPACE\r\n"},
      {"RFC 2971 3.1", "ID", "a023 ID (\"name\" \"sodr\" \"version\" \"19.34\" \"vendor\" NIL)\r\n"},
      {"RFC 2971 3.1", "ID", "a023 ID NIL\r\n"},
      {"RFC 5161 3.1", "ENABLE", "t2 ENABLE CONDSTORE X-GOOD-IDEA\r\n"},
      {"RFC 2177 3 + bare LF", "IDLE", "a IDLE\n"},
  };
}

// RFC 3501 2.2.1 / Dovecot's model: the result must not depend on how the
// bytes were split by the network.
TEST(ImapParserTest, EveryTranscriptParsesIdenticallyAtEverySplit) {
  for (const auto& t : transcripts()) {
    SCOPED_TRACE(std::string(t.rfc) + ": " + t.wire);
    auto whole = runWhole(t.wire);
    ASSERT_FALSE(whole.empty());
    ASSERT_EQ(whole.back().event, Ev::Command) << whole.back().message;
    EXPECT_EQ(commandName(*whole.back().command), t.name);
    for (size_t i = 0; i <= t.wire.size(); ++i) {
      auto split = runChunks({t.wire.substr(0, i), t.wire.substr(i)});
      ASSERT_EQ(split, whole) << "split at " << i;
    }
    std::vector<std::string> bytes;
    for (char c : t.wire) bytes.emplace_back(1, c);
    ASSERT_EQ(runChunks(bytes), whole) << "one byte at a time";
  }
}

// RFC 3501 2.2.1: commands can be pipelined; all of them in one stream.
TEST(ImapParserTest, AllTranscriptsPipelinedInOneStreamOneByteAtATime) {
  std::string all;
  size_t commands = 0;
  for (const auto& t : transcripts()) {
    if (t.wire.find("IDLE") != std::string::npos) continue;
    all += t.wire;
    ++commands;
  }
  auto whole = runWhole(all);
  size_t seen = 0;
  for (const auto& o : whole) {
    ASSERT_NE(o.event, Ev::Error) << o.message;
    if (o.event == Ev::Command) ++seen;
  }
  EXPECT_EQ(seen, commands);
  std::vector<std::string> bytes;
  for (char c : all) bytes.emplace_back(1, c);
  EXPECT_EQ(runChunks(bytes), whole);
}

// ---- typed results ---------------------------------------------------------

TEST(ImapParserTest, LoginQuotedEscapesRfc3501Section4_3) {
  auto c = parseOne("a001 LOGIN \"smith@example.com\" \"pa ss\\\"w\\\\d\"\r\n");
  EXPECT_EQ(c.tag, "a001");
  auto l = as<LoginCmd>(c);
  EXPECT_EQ(l.user, "smith@example.com");
  EXPECT_EQ(l.password, "pa ss\"w\\d");
}

TEST(ImapParserTest, SynchronizingLiteralAsksForContinuationRfc3501Section7_5) {
  auto out = runWhole("a001 LOGIN {5}\r\nsmith {6}\r\nsesame\r\n");
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].event, Ev::Continuation);
  EXPECT_EQ(out[1].event, Ev::Continuation);
  auto l = as<LoginCmd>(*out[2].command);
  EXPECT_EQ(l.user, "smith");
  EXPECT_EQ(l.password, "sesame");
}

TEST(ImapParserTest, ContinuationComesBeforeLiteralDataRfc3501Section7_5) {
  CommandParser p;
  p.feed("a LOGIN {5}\r\n");
  EXPECT_EQ(p.next(), Ev::Continuation);
  EXPECT_EQ(p.next(), Ev::NeedMore);
  p.feed("smith pw\r\n");
  EXPECT_EQ(p.next(), Ev::Command);
}

TEST(ImapParserTest, NonSynchronizingLiteralNeedsNoContinuationRfc7888Section3) {
  auto out = runWhole("a001 LOGIN {5+}\r\nsmith {6+}\r\nsesame\r\n");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(as<LoginCmd>(*out[0].command).password, "sesame");
}

TEST(ImapParserTest, InboxIsCaseInsensitiveRfc3501Section5_1) {
  EXPECT_EQ(as<SelectCmd>(parseOne("a SELECT inbox\r\n")).mailbox, "INBOX");
  EXPECT_EQ(as<SelectCmd>(parseOne("a SELECT \"InBoX\"\r\n")).mailbox, "INBOX");
  EXPECT_EQ(as<SelectCmd>(parseOne("a SELECT inboxes\r\n")).mailbox, "inboxes");
}

TEST(ImapParserTest, ExamineIsReadOnlyRfc3501Section6_3_2) {
  auto s = as<SelectCmd>(parseOne("A932 EXAMINE blurdybloop\r\n"));
  EXPECT_TRUE(s.readOnly);
  EXPECT_EQ(s.mailbox, "blurdybloop");
}

TEST(ImapParserTest, SelectQresyncRfc7162Section3_2_5) {
  auto s = as<SelectCmd>(parseOne(
      "B04 SELECT INBOX (CONDSTORE QRESYNC (67890007 90060115194045000 1:29997 (5000,7500 15000,22500)))\r\n"));
  EXPECT_TRUE(s.condstore);
  ASSERT_TRUE(s.qresync);
  EXPECT_EQ(s.qresync->uidValidity, 67890007u);
  EXPECT_EQ(s.qresync->modSeq, 90060115194045000ull);
  EXPECT_EQ(s.qresync->knownUids->toString(), "1:29997");
  EXPECT_EQ(s.qresync->knownSeqs->toString(), "5000,7500");
  EXPECT_EQ(s.qresync->knownSeqUids->toString(), "15000,22500");
  auto minimal = as<SelectCmd>(parseOne("a SELECT INBOX (QRESYNC (1 2))\r\n"));
  EXPECT_FALSE(minimal.qresync->knownUids);
  auto seqOnly = as<SelectCmd>(parseOne("a SELECT INBOX (QRESYNC (1 2 (1:2 5:6)))\r\n"));
  EXPECT_FALSE(seqOnly.qresync->knownUids);
  EXPECT_EQ(seqOnly.qresync->knownSeqUids->toString(), "5:6");
}

TEST(ImapParserTest, CreateSpecialUseRfc6154Section3) {
  auto c = as<CreateCmd>(parseOne("t1 CREATE MySent (USE (\\Sent \\Archive))\r\n"));
  EXPECT_EQ(c.mailbox, "MySent");
  EXPECT_EQ(c.specialUse, (std::vector<std::string>{"\\Sent", "\\Archive"}));
  EXPECT_NE(badReason("t1 CREATE x (USE (Sent))\r\n").find("special-use"), std::string::npos);
  EXPECT_NE(badReason("t1 CREATE x (FOO (\\Sent))\r\n").find("Unknown CREATE parameter"), std::string::npos);
}

TEST(ImapParserTest, RenameTwoMailboxesRfc3501Section6_3_5) {
  auto r = as<RenameCmd>(parseOne("a RENAME \"old name\" {3+}\r\nnew\r\n"));
  EXPECT_EQ(r.from, "old name");
  EXPECT_EQ(r.to, "new");
}

TEST(ImapParserTest, ListBasicRfc3501Section6_3_8) {
  auto l = as<ListCmd>(parseOne("A202 LIST ~/Mail/ %\r\n"));
  EXPECT_EQ(l.reference, "~/Mail/");
  EXPECT_EQ(l.patterns, std::vector<std::string>{"%"});
  EXPECT_FALSE(l.extended);
}

TEST(ImapParserTest, ListExtendedRfc5258Section6) {
  auto l = as<ListCmd>(parseOne(
      "A06 LIST (subscribed RECURSIVEMATCH) \"\" (\"INBOX\" Sent/%) RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UIDNEXT))\r\n"));
  EXPECT_TRUE(l.extended);
  EXPECT_EQ(l.selectOptions, (std::vector<std::string>{"SUBSCRIBED", "RECURSIVEMATCH"}));
  EXPECT_EQ(l.patterns, (std::vector<std::string>{"INBOX", "Sent/%"}));
  EXPECT_TRUE(l.returnChildren);
  EXPECT_TRUE(l.returnSpecialUse);
  EXPECT_FALSE(l.returnSubscribed);
  EXPECT_EQ(*l.returnStatus, (std::vector<StatusItem>{StatusItem::Messages, StatusItem::UidNext}));
  EXPECT_TRUE(as<ListCmd>(parseOne("A03 LIST () \"\" %\r\n")).extended);
}

TEST(ImapParserTest, ListExtendedErrorsRfc5258Section3) {
  EXPECT_EQ(badReason("a LIST (RECURSIVEMATCH) \"\" *\r\n"), "RECURSIVEMATCH needs another selection option");
  EXPECT_EQ(badReason("a LIST (REMOTE RECURSIVEMATCH) \"\" *\r\n"), "RECURSIVEMATCH needs another selection option");
  EXPECT_EQ(badReason("a LIST (BOGUS) \"\" *\r\n"), "Unknown LIST selection option BOGUS");
  EXPECT_EQ(badReason("a LIST \"\" * RETURN (BOGUS)\r\n"), "Unknown LIST return option BOGUS");
  EXPECT_EQ(badReason("a LIST \"\" * FOO (CHILDREN)\r\n"), "Expected RETURN, got FOO");
}

TEST(ImapParserTest, StatusItemsRfc3501Section6_3_10) {
  auto s = as<StatusCmd>(parseOne("A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n"));
  EXPECT_EQ(s.items, (std::vector<StatusItem>{StatusItem::UidNext, StatusItem::Messages}));
  EXPECT_EQ(badReason("a STATUS x ()\r\n"), "Expected status item (found ')')");
  EXPECT_EQ(badReason("a STATUS x (BOGUS)\r\n"), "Unknown STATUS item BOGUS");
}

TEST(ImapParserTest, AppendWithFlagsAndDateRfc3501Section6_3_11) {
  auto a = as<AppendCmd>(
      parseOne("A003 APPEND saved-messages (\\Seen $Forwarded) \" 7-Feb-1994 21:52:25 -0800\" {5}\r\nhello\r\n"));
  EXPECT_EQ(a.mailbox, "saved-messages");
  ASSERT_EQ(a.messages.size(), 1u);
  EXPECT_EQ(a.messages[0].flags, (std::vector<std::string>{"\\Seen", "$Forwarded"}));
  ASSERT_TRUE(a.messages[0].internalDate);
  DateTime want{{1994, 2, 7}, 21, 52, 25, -480};
  EXPECT_EQ(*a.messages[0].internalDate, want);
  EXPECT_EQ(a.messages[0].data, "hello");
}

TEST(ImapParserTest, MultiAppendRfc3502Section6) {
  auto out = runWhole(
      "A003 APPEND saved (\\Seen) {5}\r\nfirst (\\Draft) \"07-Feb-1994 21:52:25 +0100\" {6+}\r\nsecond {5}\r\nthird\r\n");
  ASSERT_EQ(out.size(), 3u);  // two sync literals, one command
  auto a = as<AppendCmd>(*out[2].command);
  ASSERT_EQ(a.messages.size(), 3u);
  EXPECT_EQ(a.messages[0].data, "first");
  EXPECT_EQ(a.messages[1].data, "second");
  EXPECT_EQ(a.messages[1].flags, std::vector<std::string>{"\\Draft"});
  EXPECT_EQ(a.messages[1].internalDate->zoneMinutes, 60);
  EXPECT_EQ(a.messages[2].data, "third");
  EXPECT_TRUE(a.messages[2].flags.empty());
}

TEST(ImapParserTest, AppendLiteral8CarriesNulRfc3516Section4_4) {
  auto a = as<AppendCmd>(parseOne("a APPEND INBOX ~{4}\r\nb\0i\n\r\n"s));
  ASSERT_EQ(a.messages.size(), 1u);
  EXPECT_TRUE(a.messages[0].binary);
  EXPECT_EQ(a.messages[0].data, "b\0i\n"s);
}

// RFC 6855 4: append-data =/ "UTF8" SP "(" literal8 ")".
TEST(ImapParserTest, AppendUtf8DataRfc6855Section4) {
  auto a = as<AppendCmd>(parseOne("a APPEND INBOX (\\Seen) UTF8 (~{7}\r\nS: \xc3\xa9\r\n) {1}\r\nx\r\n"));
  ASSERT_EQ(a.messages.size(), 2u);
  EXPECT_EQ(a.messages[0].data, "S: \xc3\xa9\r\n");
  EXPECT_TRUE(a.messages[0].binary);
  EXPECT_EQ(a.messages[0].flags, std::vector<std::string>{"\\Seen"});
  EXPECT_EQ(a.messages[1].data, "x");
  EXPECT_FALSE(a.messages[1].binary);
  EXPECT_EQ(badReason("a APPEND INBOX UTF8 ({1}\r\nx)\r\n"), "UTF8 APPEND data must be a literal8 (RFC 6855 4)");
  EXPECT_EQ(badReason("a APPEND INBOX UTF8 (~{1}\r\nx\r\n"), "Expected \")\" after UTF8 APPEND data");
  EXPECT_EQ(badReason("a APPEND INBOX UTF8 ~{1}\r\nx\r\n"), "Expected \"(\" after UTF8 in APPEND");
  EXPECT_EQ(badReason("a APPEND INBOX UTF9 (~{1}\r\nx)\r\n"), "Expected message literal or UTF8 (literal8), got UTF9");
}

TEST(ImapParserTest, AppendErrorsRfc3501Section6_3_11) {
  EXPECT_EQ(badReason("a APPEND INBOX {3}\r\na\0b\r\n"s),
            "NUL octet in literal APPEND message (RFC 3501 9: CHAR8; use literal8)");
  // A quoted string where the message goes reads as a bad date-time.
  EXPECT_EQ(badReason("a APPEND INBOX \"hello\"\r\n"), "Invalid day in date-time (found 'h')");
  EXPECT_EQ(badReason("a APPEND INBOX\r\n"), "Missing message literal");
  EXPECT_EQ(badReason("a APPEND INBOX \"31-Feb-1994 25:00:00 +0000\" {1}\r\nx\r\n"), "Invalid date-time value");
  EXPECT_EQ(badReason("a APPEND INBOX \"1-Feb-1994 10:00:00 +0000\" {1}\r\nx\r\n"),
            "Invalid day in date-time (found '1')");
  EXPECT_EQ(badReason("a APPEND INBOX {1}\r\nx junk\r\n"), "Expected literal for APPEND message (found 'j')");
}

TEST(ImapParserTest, UidExpungeRfc4315Section2_1) {
  auto e = as<ExpungeCmd>(parseOne("A003 UID EXPUNGE 3000:3002\r\n"));
  ASSERT_TRUE(e.uids);
  EXPECT_TRUE(e.uids->contains(3001, 5000));
  EXPECT_FALSE(as<ExpungeCmd>(parseOne("a EXPUNGE\r\n")).uids);
}

TEST(ImapParserTest, SearchTreeRfc3501Section6_4_4) {
  using K = SearchKey::Kind;
  auto s = as<SearchCmd>(parseOne("A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n"));
  EXPECT_FALSE(s.uid);
  ASSERT_EQ(s.key.kind, K::And);
  ASSERT_EQ(s.key.children.size(), 3u);
  EXPECT_EQ(s.key.children[0].kind, K::Flagged);
  EXPECT_EQ(s.key.children[1].kind, K::Since);
  EXPECT_EQ(s.key.children[1].date, (Date{1994, 2, 1}));
  EXPECT_EQ(s.key.children[2].kind, K::Not);
  ASSERT_EQ(s.key.children[2].children.size(), 1u);
  EXPECT_EQ(s.key.children[2].children[0].kind, K::From);
  EXPECT_EQ(s.key.children[2].children[0].text, "Smith");
}

TEST(ImapParserTest, SearchNestingOrAndGroupsRfc3501Section6_4_4) {
  using K = SearchKey::Kind;
  auto s = as<SearchCmd>(
      parseOne("a UID SEARCH OR (DELETED FROM bob) NOT (UNSEEN OR SEEN KEYWORD $Junk) 1:5,7 UID 10:* "
               "HEADER X-Foo \"\" LARGER 5000000000\r\n"));
  EXPECT_TRUE(s.uid);
  const auto& k = s.key.children;
  ASSERT_EQ(k.size(), 5u);
  ASSERT_EQ(k[0].kind, K::Or);
  ASSERT_EQ(k[0].children.size(), 2u);
  EXPECT_EQ(k[0].children[0].kind, K::And);
  EXPECT_EQ(k[0].children[0].children[1].text, "bob");
  EXPECT_EQ(k[0].children[1].kind, K::Not);
  const auto& group = k[0].children[1].children[0];
  EXPECT_EQ(group.kind, K::And);
  ASSERT_EQ(group.children.size(), 2u);
  EXPECT_EQ(group.children[1].kind, K::Or);
  EXPECT_EQ(group.children[1].children[1].kind, K::Keyword);
  EXPECT_EQ(group.children[1].children[1].text, "$Junk");
  EXPECT_EQ(k[1].kind, K::SequenceSet);
  EXPECT_EQ(k[1].set.toString(), "1:5,7");
  EXPECT_EQ(k[2].kind, K::Uid);
  EXPECT_TRUE(k[2].set.usesStar());
  EXPECT_EQ(k[3].kind, K::Header);
  EXPECT_EQ(k[3].text, "X-Foo");
  EXPECT_EQ(k[3].value, "");
  EXPECT_EQ(k[4].number, 5000000000ull);
}

TEST(ImapParserTest, SearchReturnAndCharsetRfc4731Section3_1) {
  auto s = as<SearchCmd>(parseOne("A286 UID SEARCH RETURN () CHARSET UTF-8 ALL\r\n"));
  EXPECT_EQ(*s.returnOptions, std::vector<SearchReturn>{SearchReturn::All});
  EXPECT_EQ(*s.charset, "UTF-8");
  auto t = as<SearchCmd>(parseOne("A282 SEARCH RETURN (MIN COUNT SAVE) FLAGGED\r\n"));
  EXPECT_EQ(*t.returnOptions, (std::vector<SearchReturn>{SearchReturn::Min, SearchReturn::Count, SearchReturn::Save}));
  EXPECT_FALSE(t.charset);
  EXPECT_FALSE(as<SearchCmd>(parseOne("a SEARCH ALL\r\n")).returnOptions);
  EXPECT_EQ(badReason("a SEARCH RETURN (FOO) ALL\r\n"), "Unknown SEARCH RETURN option FOO");
}

TEST(ImapParserTest, SearchSavedResultRfc5182Section2_4) {
  auto s = as<SearchCmd>(parseOne("A300 UID SEARCH RETURN (SAVE) $ DELETED\r\n"));
  EXPECT_TRUE(s.key.children[0].set.isSaved());
  auto f = as<FetchCmd>(parseOne("A301 UID FETCH $ (UID)\r\n"));
  EXPECT_TRUE(f.set.isSaved());
}

TEST(ImapParserTest, SearchModSeqRfc7162Section3_1_5) {
  auto s = as<SearchCmd>(parseOne("a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n"));
  const auto& k = s.key.children[0];
  EXPECT_EQ(k.kind, SearchKey::Kind::ModSeq);
  EXPECT_EQ(k.modSeqEntry, "/flags/\\draft");
  EXPECT_EQ(k.modSeqEntryType, "all");
  EXPECT_EQ(k.number, 620162338u);
  EXPECT_EQ(as<SearchCmd>(parseOne("a SEARCH MODSEQ 0\r\n")).key.children[0].number, 0u);
  EXPECT_EQ(badReason("a SEARCH MODSEQ \"/flags/x\" mine 5\r\n"), "Invalid MODSEQ entry type mine");
}

TEST(ImapParserTest, SearchErrorsNameTheProblemRfc3501Section6_4_4) {
  EXPECT_EQ(badReason("a SEARCH FOO\r\n"), "Unknown search key FOO");
  EXPECT_EQ(badReason("a SEARCH SINCE 1-Foo-2000\r\n"), "Invalid month in date (found 'F')");
  EXPECT_EQ(badReason("a SEARCH SINCE 1-Jan-20\r\n"), "Invalid year in date");
  EXPECT_EQ(badReason("a SEARCH OR ALL\r\n"), "Missing search key argument");
  EXPECT_EQ(badReason("a SEARCH (ALL\r\n"), "Missing search key");
  EXPECT_EQ(badReason("a SEARCH 0:5\r\n"), "Invalid sequence set '0:5'");
  EXPECT_EQ(badReason("a SEARCH\r\n"), "Missing search keys");
  std::string deep = "a SEARCH ";
  for (int i = 0; i < 10000; ++i) deep += "NOT ";
  deep += "ALL\r\n";
  EXPECT_EQ(badReason(deep), "Search keys nested too deeply");
  std::string parens = "a SEARCH " + std::string(10000, '(') + "ALL" + std::string(10000, ')') + "\r\n";
  EXPECT_EQ(badReason(parens), "Search keys nested too deeply");
}

TEST(ImapParserTest, FetchMacrosExpandRfc3501Section6_4_5) {
  using K = FetchAtt::Kind;
  auto kinds = [](const FetchCmd& f) {
    std::vector<K> out;
    for (const auto& a : f.items) out.push_back(a.kind);
    return out;
  };
  EXPECT_EQ(kinds(as<FetchCmd>(parseOne("a FETCH 1 ALL\r\n"))),
            (std::vector<K>{K::Flags, K::InternalDate, K::Rfc822Size, K::Envelope}));
  EXPECT_EQ(kinds(as<FetchCmd>(parseOne("a FETCH 1 fast\r\n"))),
            (std::vector<K>{K::Flags, K::InternalDate, K::Rfc822Size}));
  EXPECT_EQ(kinds(as<FetchCmd>(parseOne("a FETCH 1 FULL\r\n"))),
            (std::vector<K>{K::Flags, K::InternalDate, K::Rfc822Size, K::Envelope, K::Body}));
  EXPECT_NE(badReason("a FETCH 1 (ALL)\r\n").find("Unknown fetch attribute ALL"), std::string::npos);
}

TEST(ImapParserTest, FetchSectionsRfc3501Section6_4_5) {
  using K = FetchAtt::Kind;
  using T = Section::Text;
  auto f = as<FetchCmd>(parseOne(
      "a FETCH 1 (BODY[] BODY.PEEK[TEXT]<0.2048> BODY[1.2.3.HEADER] BODY[4.2.MIME] "
      "BODY[HEADER.FIELDS.NOT (Received x-spam)] body[2]<100.5> BODY)\r\n"));
  ASSERT_EQ(f.items.size(), 7u);
  EXPECT_EQ(f.items[0].kind, K::BodySection);
  EXPECT_FALSE(f.items[0].peek);
  EXPECT_TRUE(f.items[0].section.part.empty());
  EXPECT_EQ(f.items[0].section.text, T::None);
  EXPECT_TRUE(f.items[1].peek);
  EXPECT_EQ(f.items[1].section.text, T::Text);
  EXPECT_EQ(f.items[1].partial, (Partial{0, 2048}));
  EXPECT_EQ(f.items[2].section.part, (std::vector<uint32_t>{1, 2, 3}));
  EXPECT_EQ(f.items[2].section.text, T::Header);
  EXPECT_EQ(f.items[3].section.text, T::Mime);
  EXPECT_EQ(f.items[4].section.text, T::HeaderFieldsNot);
  EXPECT_EQ(f.items[4].section.fields, (std::vector<std::string>{"RECEIVED", "X-SPAM"}));
  EXPECT_EQ(f.items[5].section.part, std::vector<uint32_t>{2});
  EXPECT_EQ(f.items[5].partial, (Partial{100, 5}));
  EXPECT_EQ(f.items[6].kind, K::Body);
}

TEST(ImapParserTest, FetchBinaryRfc3516Section4_2) {
  using K = FetchAtt::Kind;
  auto f = as<FetchCmd>(parseOne("a FETCH 1 (BINARY[1] BINARY.PEEK[1.2]<0.100> BINARY.SIZE[3])\r\n"));
  ASSERT_EQ(f.items.size(), 3u);
  EXPECT_EQ(f.items[0].kind, K::Binary);
  EXPECT_TRUE(f.items[1].peek);
  EXPECT_EQ(f.items[1].partial, (Partial{0, 100}));
  EXPECT_EQ(f.items[2].kind, K::BinarySize);
  EXPECT_EQ(badReason("a FETCH 1 BINARY[1.HEADER]\r\n"), "BINARY section takes part numbers only: 1.HEADER");
  EXPECT_EQ(badReason("a FETCH 1 BINARY.SIZE[1]<0.5>\r\n"), "Expected SP before FETCH modifiers (found '<')");
}

TEST(ImapParserTest, FetchSectionErrorsRfc3501Section6_4_5) {
  EXPECT_EQ(badReason("a FETCH 1 BODY[MIME]\r\n"), "MIME section needs a part number");
  EXPECT_EQ(badReason("a FETCH 1 BODY[0]\r\n"), "Invalid section part number 0");
  EXPECT_EQ(badReason("a FETCH 1 BODY[4294967296]\r\n"), "Invalid section part number 4294967296");
  EXPECT_EQ(badReason("a FETCH 1 BODY[99999999999999999999999]\r\n"),
            "Invalid section part number 99999999999999999999999");
  EXPECT_EQ(as<FetchCmd>(parseOne("a FETCH 1 BODY[4294967295]\r\n")).items[0].section.part,
            std::vector<uint32_t>{4294967295u});
  EXPECT_EQ(badReason("a FETCH 1 BODY[1.]\r\n"), "Section ends with '.'");
  EXPECT_EQ(badReason("a FETCH 1 BODY[FOO]\r\n"), "Unknown section text FOO");
  EXPECT_EQ(badReason("a FETCH 1 BODY[HEADER.FIELDS]\r\n"), "Expected SP before header list (found ']')");
  EXPECT_EQ(badReason("a FETCH 1 BODY[TEXT]<0.0>\r\n"), "Expected non-zero number for partial length");
  EXPECT_EQ(badReason("a FETCH 1 BODY.PEEK\r\n"), "Expected '[' to open section (found end of line)");
  EXPECT_EQ(badReason("a FETCH 1 (FLAGS\r\n"), "Missing fetch attribute");
  EXPECT_EQ(badReason("a FETCH 1 FLAGZ\r\n"), "Unknown fetch attribute FLAGZ");
  EXPECT_EQ(badReason("a FETCH 1\r\n"), "Missing fetch attributes");
}

TEST(ImapParserTest, FetchModifiersRfc7162Section3_1_4And3_2_6) {
  auto f = as<FetchCmd>(parseOne("A1 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n"));
  EXPECT_EQ(f.changedSince, 12345u);
  EXPECT_TRUE(f.vanished);
  EXPECT_EQ(badReason("a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)\r\n"), "VANISHED requires UID FETCH");
  EXPECT_EQ(badReason("a UID FETCH 1 FLAGS (VANISHED)\r\n"), "VANISHED requires CHANGEDSINCE");
  EXPECT_EQ(badReason("a FETCH 1 FLAGS (CHANGEDSINCE 0)\r\n"), "Mod-sequence must not be zero in CHANGEDSINCE");
  EXPECT_EQ(badReason("a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)\r\n"), "Number too large for CHANGEDSINCE");
  EXPECT_EQ(badReason("a FETCH 1 FLAGS (FOO)\r\n"), "Unknown FETCH modifier FOO");
}

TEST(ImapParserTest, StoreFormsRfc3501Section6_4_6) {
  auto a = as<StoreCmd>(parseOne("A003 STORE 2:4 +FLAGS (\\Deleted)\r\n"));
  EXPECT_EQ(a.mode, StoreCmd::Mode::Add);
  EXPECT_FALSE(a.silent);
  EXPECT_EQ(a.flags, std::vector<std::string>{"\\Deleted"});
  auto b = as<StoreCmd>(parseOne("A004 STORE 1 -FLAGS.SILENT \\Seen $Label1\r\n"));
  EXPECT_EQ(b.mode, StoreCmd::Mode::Remove);
  EXPECT_TRUE(b.silent);
  EXPECT_EQ(b.flags, (std::vector<std::string>{"\\Seen", "$Label1"}));
  auto c = as<StoreCmd>(parseOne("a103 UID STORE 7,5,9 (UNCHANGEDSINCE 0) FLAGS ()\r\n"));
  EXPECT_TRUE(c.uid);
  EXPECT_EQ(c.mode, StoreCmd::Mode::Replace);
  EXPECT_EQ(c.unchangedSince, 0u);
  EXPECT_TRUE(c.flags.empty());
  EXPECT_EQ(badReason("a STORE 1 +FLAGZ (\\Seen)\r\n"), "Unknown STORE item FLAGZ");
  EXPECT_EQ(badReason("a STORE 1 FLAGS (\\Seen\r\n"), "Missing flag");
}

TEST(ImapParserTest, CopyMoveRfc3501Section6_4_7AndRfc6851) {
  auto c = as<CopyCmd>(parseOne("a UID COPY 4827313 \"Saved Mail\"\r\n"));
  EXPECT_TRUE(c.uid);
  EXPECT_EQ(c.mailbox, "Saved Mail");
  auto m = as<MoveCmd>(parseOne("a MOVE 1:3 inbox\r\n"));
  EXPECT_EQ(m.mailbox, "INBOX");
  EXPECT_EQ(m.set.toString(), "1:3");
}

TEST(ImapParserTest, AuthenticateSaslIrRfc4959Section7) {
  auto a = as<AuthenticateCmd>(parseOne("a AUTHENTICATE plain dGVzdAB0ZXN0AHRlc3Q=\r\n"));
  EXPECT_EQ(a.mechanism, "PLAIN");
  EXPECT_EQ(*a.initialResponse, "dGVzdAB0ZXN0AHRlc3Q=");
  EXPECT_EQ(*as<AuthenticateCmd>(parseOne("a AUTHENTICATE EXTERNAL =\r\n")).initialResponse, "");
  EXPECT_FALSE(as<AuthenticateCmd>(parseOne("a AUTHENTICATE PLAIN\r\n")).initialResponse);
  EXPECT_EQ(badReason("a AUTHENTICATE PLAIN abc\r\n"), "Initial response is not valid base64");
}

TEST(ImapParserTest, AuthenticateResponseLinesRfc3501Section6_2_2) {
  CommandParser p;
  p.feed("a AUTHENTICATE PLAIN\r\n");
  ASSERT_EQ(p.next(), Ev::Command);
  p.expectAuthResponse();
  p.feed("dGVzdAB0ZXN0AHRlc3Q=\r\nb NOOP\r\n");
  ASSERT_EQ(p.next(), Ev::AuthResponse);
  EXPECT_EQ(p.takeLine(), "dGVzdAB0ZXN0AHRlc3Q=");
  ASSERT_EQ(p.next(), Ev::Command);
  EXPECT_EQ(p.takeCommand().tag, "b");
}

TEST(ImapParserTest, IdleDoneRfc2177Section3) {
  auto out = runWhole("a IDLE\r\nDONE\r\nb NOOP\r\n");
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].event, Ev::Command);
  EXPECT_EQ(out[1].event, Ev::IdleDone);
  EXPECT_EQ(commandName(*out[2].command), "NOOP");
  auto lower = runWhole("a IDLE\r\ndone\n");
  EXPECT_EQ(lower[1].event, Ev::IdleDone);
  auto wrong = runWhole("a IDLE\r\nb NOOP\r\n");
  ASSERT_EQ(wrong.size(), 2u);
  EXPECT_EQ(wrong[1].event, Ev::Error);
  EXPECT_EQ(wrong[1].message, "Expected DONE to end IDLE");
  // The split-everywhere property holds across the mode switch too.
  std::string wire = "a IDLE\r\nDONE\r\nb NOOP\r\n";
  for (size_t i = 0; i <= wire.size(); ++i) EXPECT_EQ(runChunks({wire.substr(0, i), wire.substr(i)}), out);
}

TEST(ImapParserTest, IdAndEnableRfc2971AndRfc5161) {
  auto id = as<IdCmd>(parseOne("a023 ID (\"name\" \"sodr\" \"vendor\" NIL)\r\n"));
  ASSERT_TRUE(id.params);
  ASSERT_EQ(id.params->size(), 2u);
  EXPECT_EQ((*id.params)[0].first, "name");
  EXPECT_EQ(*(*id.params)[0].second, "sodr");
  EXPECT_FALSE((*id.params)[1].second);
  EXPECT_FALSE(as<IdCmd>(parseOne("a ID NIL\r\n")).params);
  EXPECT_TRUE(as<IdCmd>(parseOne("a ID ()\r\n")).params->empty());
  auto en = as<EnableCmd>(parseOne("t2 ENABLE condstore UTF8=ACCEPT\r\n"));
  EXPECT_EQ(en.capabilities, (std::vector<std::string>{"CONDSTORE", "UTF8=ACCEPT"}));
  EXPECT_EQ(badReason("t2 ENABLE\r\n"), "Missing capability");
}

// ---- general syntax errors --------------------------------------------------

TEST(ImapParserTest, SyntaxErrorsAreTaggedBadWithReasonRfc3501Section7_1_3) {
  auto out = runWhole("a1 FROB\r\n");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].event, Ev::Error);
  EXPECT_TRUE(out[0].bad);
  EXPECT_EQ(out[0].tag, "a1");
  EXPECT_EQ(out[0].message, "Unknown command FROB");
  EXPECT_EQ(badReason("a1 NOOP extra\r\n"), "Unexpected extra arguments");
  EXPECT_EQ(badReason("a1  NOOP\r\n"), "Invalid command name (found ' ')");
  EXPECT_EQ(badReason("a1\r\n"), "Missing command name");
  EXPECT_EQ(badReason("a+1 NOOP\r\n"), "Invalid character in tag (found '+')");
  EXPECT_EQ(badReason("(a NOOP\r\n"), "Invalid tag (found '(')");
  EXPECT_EQ(badReason("a LOGIN \"unterminated\r\n"), "Unterminated quoted string in user name");
  EXPECT_EQ(badReason("a LOGIN \"bad\\escape\" x\r\n"), "Invalid escape in quoted user name (found 'e')");
  EXPECT_EQ(badReason("a LOGIN user\r\n"), "Missing password");
  EXPECT_EQ(badReason("a SELECT\r\n"), "Missing mailbox name");
  EXPECT_EQ(badReason("a SELECT INBOX (FOO)\r\n"), "Unknown SELECT parameter FOO");
  EXPECT_EQ(badReason("a UID FROB 1\r\n"), "Unknown UID command FROB");
  EXPECT_EQ(badReason("a LOGIN {3}x\r\n"), "Literal header must end the line in user name");
  EXPECT_EQ(badReason("a LOGIN {3} x\r\n"), "Literal header must end the line in user name");
  // The tag of an unparseable line is "*" so the BAD is untagged.
  auto untagged = runWhole("\x01 NOOP\r\n");
  EXPECT_EQ(untagged[0].tag, "*");
}

TEST(ImapParserTest, ErrorRecoveryParsesTheNextCommandRfc3501Section7_1_3) {
  auto out = runWhole("a FROB\r\nb NOOP\r\n");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].event, Ev::Error);
  EXPECT_EQ(out[1].command->tag, "b");
}

TEST(ImapParserTest, NulOctetsAreRejectedRfc3501Section9Char8) {
  EXPECT_EQ(badReason("a LOGIN \"x\0y\" z\r\n"s), "NUL octet in quoted user name");
  EXPECT_EQ(badReason("a NOOP\0\r\n"s), "Invalid command name (found NUL)");
  EXPECT_EQ(badReason("a LOGIN {3}\r\nx\0y z\r\n"s),
            "NUL octet in literal user name (RFC 3501 9: CHAR8; use literal8)");
  // A NUL must not end the line or desynchronise the stream.
  auto out = runWhole("a NO\0OP\r\nb NOOP\r\n"s);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].command->tag, "b");
}

TEST(ImapParserTest, BareLfEndsALineLikeCrlfRfc3501Section2_2) {
  EXPECT_EQ(parseOne("a LOGIN {3}\nabc def\n"), parseOne("a LOGIN {3}\r\nabc def\r\n"));
  EXPECT_EQ(badReason("a NOOP\r\r\n"), "Invalid command name (found octet 0x0D)");
}

TEST(ImapParserTest, BlankLinesBetweenCommandsAreIgnored) {
  auto out = runWhole("\r\n\na NOOP\r\n\r\n");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].command->tag, "a");
}

TEST(ImapParserTest, EightBitQuotedNeedsUtf8AcceptRfc6855Section3) {
  std::string wire = "a SELECT \"Gr\xC3\xBC\xC3\x9F" "e\"\r\n";
  EXPECT_EQ(badReason(wire), "8-bit octet in quoted mailbox name (use a literal or UTF8=ACCEPT)");
  ParserOptions utf8;
  utf8.utf8Accept = true;
  EXPECT_EQ(as<SelectCmd>(parseOne(wire, utf8)).mailbox, "Gr\xC3\xBC\xC3\x9F" "e");
  EXPECT_EQ(badReason("a SELECT \"\xC3(\"\r\n", utf8), "Invalid UTF-8 in quoted mailbox name");
  // Literals may carry 8-bit data in any mode (RFC 3501 4.3).
  EXPECT_EQ(as<SelectCmd>(parseOne("a SELECT {2}\r\n\xC3\xBC\r\n")).mailbox, "\xC3\xBC");
  // The session flips the option after ENABLE UTF8=ACCEPT.
  CommandParser p;
  p.setUtf8Accept(true);
  p.feed(wire);
  EXPECT_EQ(p.next(), Ev::Command);
}

}  // namespace
}  // namespace mb::imap
