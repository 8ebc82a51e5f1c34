// IMAP client response parser: server transcripts (Dovecot 2.3, Gmail,
// Outlook, and the RFC examples they follow) fed whole, split at every byte
// and one byte at a time must give the same typed responses.
#include <gtest/gtest.h>

#include <cstring>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "protocols/imap/client_parser.h"

namespace mb::imap::client {
namespace {

using namespace std::string_literals;
using Ev = ResponseParser::Event;

// A response or an error, comparable across feeds.
struct Outcome {
  std::optional<Response> response;
  ErrorKind kind = ErrorKind::Internal;
  std::string tag;
  std::string message;
  bool fatal = false;
  bool operator==(const Outcome&) const = default;
};

// Every response or error the parser can give from what it holds now.
void drain(ResponseParser& p, std::vector<Outcome>& out) {
  while (true) {
    Ev ev = p.next();
    if (ev == Ev::NeedMore) break;
    Outcome o;
    if (ev == Ev::Response) {
      o.response = p.takeResponse();
    } else {
      o.kind = p.error().error.kind;
      o.tag = p.error().tag;
      o.message = p.error().error.message;
      o.fatal = p.error().fatal;
    }
    out.push_back(std::move(o));
  }
}

std::vector<Outcome> runChunks(const std::vector<std::string>& chunks, ResponseParserOptions opt = {}) {
  ResponseParser p(opt);
  std::vector<Outcome> out;
  for (const auto& c : chunks) {
    p.feed(c);
    drain(p, out);
  }
  return out;
}

std::vector<Outcome> runWhole(std::string_view wire, ResponseParserOptions opt = {}) {
  return runChunks({std::string(wire)}, opt);
}

ResponseParserOptions noGreeting() {
  ResponseParserOptions o;
  o.expectGreeting = false;
  return o;
}

// Exactly one response, no error.
template <class T>
T one(std::string_view wire, ResponseParserOptions opt = noGreeting()) {
  auto out = runWhole(wire, opt);
  if (out.size() != 1 || !out[0].response) {
    ADD_FAILURE() << "expected one response from " << wire << ", got " << out.size()
                  << (out.empty() || out[0].response ? "" : " error: " + out[0].message);
    return T{};
  }
  if (!std::holds_alternative<T>(*out[0].response)) {
    ADD_FAILURE() << "wrong response type (index " << out[0].response->index() << ") for " << wire;
    return T{};
  }
  return std::get<T>(*out[0].response);
}

Outcome oneError(std::string_view wire, ResponseParserOptions opt = noGreeting()) {
  auto out = runWhole(wire, opt);
  if (out.empty() || out[0].response) {
    ADD_FAILURE() << "expected an error from " << wire;
    return {};
  }
  return out[0];
}

struct Transcript {
  const char* name;
  std::string wire;
  size_t responses;  // how many responses it must yield, all without error
  bool greeting = true;
};

std::vector<Transcript> transcripts() {
  std::string body = "From: a@example.com\r\nSubject: hi\r\n\r\nHello {5}\r\n)\r\n";
  return {
      // RFC 3501 7.1 greeting with a CAPABILITY code, as Dovecot 2.3 sends it;
      // then LOGIN, ENABLE (RFC 5161 3.2) and ID (RFC 2971 3.2).
      {"dovecot-login",
       "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] "
       "Dovecot (Debian) ready.\r\n"
       "A0001 OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY "
       "THREAD=REFERENCES MULTIAPPEND UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE "
       "QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY "
       "PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE] Logged in\r\n"
       "* ENABLED CONDSTORE QRESYNC\r\n"
       "A0002 OK Enabled\r\n"
       "* ID (\"name\" \"Dovecot\")\r\n"
       "A0003 OK ID completed (0.001 + 0.000 secs).\r\n",
       6},
      // RFC 7162 3.2.5.1: SELECT with QRESYNC answered by Dovecot.
      {"dovecot-select-qresync",
       "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n"
       "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded \\*)] Flags permitted.\r\n"
       "* 172 EXISTS\r\n"
       "* 1 RECENT\r\n"
       "* OK [UNSEEN 12] First unseen.\r\n"
       "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"
       "* OK [UIDNEXT 4392] Predicted next UID\r\n"
       "* OK [HIGHESTMODSEQ 715194045007] Highest\r\n"
       "* VANISHED (EARLIER) 41,43:116,118,120:211,214:540\r\n"
       "* 49 FETCH (UID 117 FLAGS (\\Seen \\Answered) MODSEQ (90060115194045001))\r\n"
       "A0004 OK [READ-WRITE] Select completed (0.002 + 0.000 + 0.001 secs).\r\n",
       11, false},
      // Gmail LIST: RFC 6154 special-use attributes, quoted names, mUTF-7.
      {"gmail-list",
       "* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n"
       "* LIST (\\HasChildren \\Noselect) \"/\" \"[Gmail]\"\r\n"
       "* LIST (\\All \\HasNoChildren) \"/\" \"[Gmail]/All Mail\"\r\n"
       "* LIST (\\HasNoChildren \\Sent) \"/\" \"[Gmail]/Sent Mail\"\r\n"
       "* LIST (\\HasNoChildren) \"/\" \"&AMk-t&AOk-\"\r\n"
       "A0005 OK Success\r\n",
       6, false},
      // RFC 5819 LIST-STATUS example, Dovecot spelling.
      {"list-status",
       "* LIST () \".\" \"INBOX\"\r\n"
       "* STATUS \"INBOX\" (MESSAGES 17 UNSEEN 16)\r\n"
       "* LIST () \".\" \"foo\"\r\n"
       "* STATUS \"foo\" (MESSAGES 30 UNSEEN 29 UIDNEXT 31 UIDVALIDITY 1700000000 HIGHESTMODSEQ 99 SIZE 12345)\r\n"
       "* LIST (\\NoSelect) \".\" \"bar\" (CHILDINFO (\"SUBSCRIBED\"))\r\n"
       "A0006 OK List completed (0.001 + 0.000 secs).\r\n",
       6, false},
      // RFC 3501 7.4.2 FETCH with a body literal whose text looks like IMAP.
      {"fetch-literal",
       "* 1 FETCH (UID 101 RFC822.SIZE " + std::to_string(body.size()) +
           " FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" BODY[] {" + std::to_string(body.size()) +
           "}\r\n" + body + ")\r\n"
           "* 2 FETCH (UID 102 BODY[HEADER.FIELDS (FROM SUBJECT)] {23}\r\nSubject: x\r\nFrom: y\r\n\r\n"
           " BODY[1]<0> \"abc\" BINARY[2] ~{3}\r\na\0c)\r\n"s
           "A0007 OK Fetch completed (0.001 + 0.000 secs).\r\n",
       3, false},
      // RFC 4731 3 ESEARCH; RFC 7162 3.1.5 SEARCH with MODSEQ.
      {"esearch",
       "* ESEARCH (TAG \"A0008\") UID MIN 7 MAX 3800 COUNT 15 ALL 7,10:12,3800\r\n"
       "A0008 OK UID SEARCH completed\r\n"
       "* SEARCH 2 84 882 (MODSEQ 917162500)\r\n"
       "A0009 OK done\r\n",
       4, false},
      // RFC 4315 3 UIDPLUS codes; Outlook words its completions this way.
      {"outlook-uidplus",
       "A0010 OK [APPENDUID 38505 3955] APPEND completed.\r\n"
       "A0011 OK [COPYUID 38505 1:3,5 3956:3958,3960] COPY completed.\r\n"
       "* OK [COPYUID 38505 7 3961] Moved UIDs.\r\n"
       "* 7 EXPUNGE\r\n"
       "A0012 OK MOVE completed.\r\n",
       5, false},
      // RFC 2177 IDLE, then Gmail's XOAUTH2 failure challenge (base64 JSON).
      {"idle-and-auth",
       "+ idling\r\n"
       "* 23 EXISTS\r\n"
       "* 3 EXPUNGE\r\n"
       "A0013 OK Idle completed (0.001 + 10.000 secs).\r\n"
       "+ eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==\r\n"
       "A0014 NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n"
       "+\r\n"
       "* BYE Logging out\r\n"
       "A0015 OK Logout completed.\r\n",
       9, false},
      // Legal but unusual: lowercase keywords, NIL delimiter, backslash
      // delimiter (Exchange), literal mailbox name, empty SEARCH, extra
      // spaces, bare LF, blank lines, unknown responses and codes kept raw.
      {"odd-but-legal",
       "* ok [PERMANENTFLAGS (\\* \\Seen)]\r\n"
       "* 3 exists\r\n"
       "* SEARCH\r\n"
       "* SEARCH 1  2 3 \r\n"
       "* LIST (\\Noselect) NIL \"\"\r\n"
       "* LIST () \"\\\\\" \"Public Folders\\\\Team\"\r\n"
       "* LIST () \"/\" {5}\r\nSpam!\r\n"
       "* list (\\hasnochildren) \"/\" inbox\r\n"
       "\r\n"
       "* 12 FETCH (FLAGS () BODY[HEADER.FIELDS (FROM SUBJECT)] NIL X-GM-MSGID 1278455344230334865)\n"
       "* QUOTA \"\" (STORAGE 10 512)\r\n"
       "* METADATA INBOX (/private/comment {3}\r\nabc)\r\n"
       "* OK [XYZZY foo bar] strange code\r\n"
       "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"
       "* ID NIL\r\n"
       "a1 ok [read-write] done\r\n"
       "A2 OK\r\n",
       16, false},
  };
}

TEST(ImapClientParser, TranscriptsParseWithoutErrors) {
  for (const auto& t : transcripts()) {
    ResponseParserOptions opt;
    opt.expectGreeting = t.greeting;
    auto out = runWhole(t.wire, opt);
    EXPECT_EQ(out.size(), t.responses) << t.name;
    for (size_t i = 0; i < out.size(); ++i) {
      EXPECT_TRUE(out[i].response.has_value()) << t.name << " #" << i << ": " << out[i].message;
    }
  }
}

TEST(ImapClientParser, EverySplitGivesTheSameResult) {
  for (const auto& t : transcripts()) {
    ResponseParserOptions opt;
    opt.expectGreeting = t.greeting;
    auto whole = runWhole(t.wire, opt);
    for (size_t i = 0; i <= t.wire.size(); ++i) {
      auto split = runChunks({t.wire.substr(0, i), t.wire.substr(i)}, opt);
      ASSERT_TRUE(split == whole) << t.name << " split at " << i;
    }
    std::vector<std::string> bytes;
    for (char c : t.wire) bytes.emplace_back(1, c);
    EXPECT_TRUE(runChunks(bytes, opt) == whole) << t.name << " byte by byte";
  }
}

// RFC 3501 7.1: the greeting and its CAPABILITY code.
TEST(ImapClientParser, Greeting) {
  auto g = one<Greeting>("* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR] Dovecot ready.\r\n", {});
  EXPECT_EQ(g.status.status, StatusKind::Ok);
  EXPECT_EQ(g.status.code.kind, CodeKind::Capability);
  EXPECT_EQ(g.status.code.list, (std::vector<std::string>{"IMAP4REV1", "LITERAL+", "SASL-IR"}));
  EXPECT_EQ(g.status.text, "Dovecot ready.");
  EXPECT_EQ(one<Greeting>("* PREAUTH IMAP4rev1 server logged in as Smith\r\n", {}).status.status,
            StatusKind::Preauth);
  EXPECT_EQ(one<Greeting>("* BYE Too many connections\r\n", {}).status.status, StatusKind::Bye);
  // After the greeting, status lines are ordinary untagged ones.
  auto out = runWhole("* OK hi\r\n* OK [ALERT] System going down\r\n");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<Greeting>(*out[0].response));
  auto& u = std::get<UntaggedStatus>(*out[1].response);
  EXPECT_EQ(u.status.code.kind, CodeKind::Alert);
}

// A peer that is not an IMAP server (a proxy's HTTP answer, an SMTP
// banner) must not be talked to any further.
TEST(ImapClientParser, NonImapGreetingIsFatal) {
  for (std::string wire : {"HTTP/1.1 400 Bad Request\r\n", "220 smtp.example.com ESMTP\r\n", "* 3 EXISTS\r\n",
                           "* NO go away\r\n", "A1 OK hi\r\n", "+ go\r\n"}) {
    ResponseParser p;
    p.feed(wire + "* OK more\r\n");
    EXPECT_EQ(p.next(), Ev::Error) << wire;
    EXPECT_TRUE(p.error().fatal) << wire;
    EXPECT_TRUE(p.closed());
    EXPECT_EQ(p.next(), Ev::NeedMore);
  }
}

// RFC 3501 7.1 tagged status; RFC 5530 codes.
TEST(ImapClientParser, Tagged) {
  auto t = one<Tagged>("A0042 NO [TRYCREATE] Mailbox doesn't exist: Foo\r\n");
  EXPECT_EQ(t.tag, "A0042");
  EXPECT_EQ(t.status.status, StatusKind::No);
  EXPECT_EQ(t.status.code.kind, CodeKind::TryCreate);
  EXPECT_EQ(t.status.text, "Mailbox doesn't exist: Foo");
  auto u = one<Tagged>("A1 NO [UNAVAILABLE] Temporary failure\r\n");
  EXPECT_EQ(u.status.code.kind, CodeKind::Unavailable);
  auto b = one<Tagged>("A2 BAD Error in IMAP command: Unknown command\r\n");
  EXPECT_EQ(b.status.status, StatusKind::Bad);
  EXPECT_EQ(b.status.code.kind, CodeKind::None);
  // Free text may end in something that looks like a literal header: it is
  // text (resp-text has no literals), so the next line is not swallowed.
  auto out = runWhole("A3 NO quota is {5}\r\n* 1 EXISTS\r\n", noGreeting());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(std::get<Tagged>(*out[0].response).status.text, "quota is {5}");
  EXPECT_EQ(std::get<ExistsData>(*out[1].response).count, 1u);
}

// RFC 3501 7.1 response codes with arguments; RFC 7162 3.1.2/3.1.3.
TEST(ImapClientParser, ResponseCodes) {
  auto code = [](std::string_view wire) { return one<UntaggedStatus>(wire).status.code; };
  EXPECT_EQ(code("* OK [UIDVALIDITY 3857529045] UIDs valid\r\n").number, 3857529045u);
  EXPECT_EQ(code("* OK [UIDNEXT 4392] Predicted next UID\r\n").number, 4392u);
  EXPECT_EQ(code("* OK [UNSEEN 12] x\r\n").number, 12u);
  EXPECT_EQ(code("* OK [HIGHESTMODSEQ 18446744073709551615] x\r\n").number, UINT64_MAX);
  EXPECT_EQ(code("* OK [NOMODSEQ] Sorry, this mailbox format doesn't support modsequences\r\n").kind,
            CodeKind::NoModSeq);
  EXPECT_EQ(code("* OK [CLOSED] Previous mailbox closed.\r\n").kind, CodeKind::Closed);
  EXPECT_EQ(code("* OK [READ-ONLY] x\r\n").kind, CodeKind::ReadOnly);
  auto pf = code("* OK [PERMANENTFLAGS (\\* \\Seen)]\r\n");
  EXPECT_EQ(pf.kind, CodeKind::PermanentFlags);
  EXPECT_EQ(pf.list, (std::vector<std::string>{"\\*", "\\Seen"}));
  EXPECT_EQ(code("* OK [PERMANENTFLAGS ()] No permanent flags permitted\r\n").list.size(), 0u);
  auto bc = code("* NO [BADCHARSET (UTF-8 \"US-ASCII\")] x\r\n");
  EXPECT_EQ(bc.list, (std::vector<std::string>{"UTF-8", "US-ASCII"}));
  auto unknown = code("* OK [XYZZY foo [bar] \"]\"] strange\r\n");
  EXPECT_EQ(unknown.kind, CodeKind::Other);
  EXPECT_EQ(unknown.name, "XYZZY");
  EXPECT_EQ(unknown.args, "foo [bar] \"]\"");
  auto modified = one<Tagged>("A3 OK [MODIFIED 7,9] Conditional STORE failed\r\n").status.code;
  EXPECT_EQ(modified.kind, CodeKind::Modified);
  EXPECT_EQ(modified.uids.toString(), "7,9");
}

// RFC 4315 3: APPENDUID and COPYUID, with uid-sets.
TEST(ImapClientParser, AppendUidCopyUid) {
  auto a = one<Tagged>("A003 OK [APPENDUID 38505 3955] APPEND completed\r\n").status.code;
  EXPECT_EQ(a.kind, CodeKind::AppendUid);
  EXPECT_EQ(a.number, 38505u);
  EXPECT_EQ(a.uids, SequenceSet::single(3955));
  // MULTIAPPEND assigns a set (RFC 4315 3, append-uid = uid-set).
  auto m = one<Tagged>("A004 OK [APPENDUID 38505 1:3,5] done\r\n").status.code;
  EXPECT_EQ(m.uids.toString(), "1:3,5");
  auto c = one<Tagged>("A005 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n").status.code;
  EXPECT_EQ(c.kind, CodeKind::CopyUid);
  EXPECT_EQ(c.number, 38505u);
  EXPECT_EQ(c.sourceUids.toString(), "304,319:320");
  EXPECT_EQ(c.uids.toString(), "3956:3958");
  auto c2 = one<Tagged>("A006 OK [COPYUID 2 1:3,5 10:13] COPY completed.\r\n").status.code;
  EXPECT_EQ(c2.sourceUids.resolve(100).size(), 2u);
  EXPECT_EQ(c2.uids.resolve(100), (std::vector<SeqRange>{{10, 13}}));
  // uid-set has no "*" (RFC 4315 4), and the arguments must all be there.
  EXPECT_EQ(oneError("A7 OK [COPYUID 2 1:* 10:13] x\r\n").kind, ErrorKind::Syntax);
  EXPECT_EQ(oneError("A8 OK [APPENDUID 38505] x\r\n").kind, ErrorKind::Syntax);
  EXPECT_EQ(oneError("A9 OK [COPYUID 1 2] x\r\n").tag, "A9");
}

TEST(ImapClientParser, CapabilityAndEnabled) {
  auto c = one<CapabilityData>("* CAPABILITY IMAP4rev1 LITERAL+ auth=PLAIN  SASL-IR \r\n");
  EXPECT_EQ(c.caps, (std::vector<std::string>{"IMAP4REV1", "LITERAL+", "AUTH=PLAIN", "SASL-IR"}));
  EXPECT_TRUE(c.has("sasl-ir"));
  EXPECT_FALSE(c.has("IDLE"));
  EXPECT_EQ(one<EnabledData>("* ENABLED QRESYNC CONDSTORE\r\n").caps,
            (std::vector<std::string>{"QRESYNC", "CONDSTORE"}));
  EXPECT_TRUE(one<EnabledData>("* ENABLED\r\n").caps.empty());
  // Found by the fuzzer: a literal among capabilities is skipped, not read
  // past.
  EXPECT_EQ(one<CapabilityData>("* CAPABILITY A ({3}\r\nabc B\r\n").caps, (std::vector<std::string>{"A", "B"}));
}

// RFC 3501 7.2.2, RFC 5258 LIST-EXTENDED, RFC 6154, mUTF-7 (RFC 3501 5.1.3).
TEST(ImapClientParser, List) {
  auto l = one<ListData>("* LIST (\\HasNoChildren \\Sent) \"/\" \"&AMk-t&AOk-/Envoy&AOk-s\"\r\n");
  EXPECT_FALSE(l.lsub);
  EXPECT_EQ(l.delimiter, '/');
  EXPECT_EQ(l.mailbox.wire, "&AMk-t&AOk-/Envoy&AOk-s");
  EXPECT_EQ(l.mailbox.utf8, "\xC3\x89t\xC3\xA9/Envoy\xC3\xA9s");
  EXPECT_TRUE(l.mailbox.decoded);
  EXPECT_TRUE(l.hasAttribute("\\sent"));

  auto nil = one<ListData>("* LIST (\\Noselect) NIL \"\"\r\n");
  EXPECT_FALSE(nil.delimiter.has_value());
  EXPECT_EQ(nil.mailbox.wire, "");

  auto lsub = one<ListData>("* LSUB () \".\" #news.comp.mail.misc\r\n");
  EXPECT_TRUE(lsub.lsub);
  EXPECT_EQ(lsub.mailbox.utf8, "#news.comp.mail.misc");

  auto bs = one<ListData>("* LIST () \"\\\\\" \"Public Folders\\\\Team\"\r\n");
  EXPECT_EQ(bs.delimiter, '\\');
  EXPECT_EQ(bs.mailbox.utf8, "Public Folders\\Team");

  auto lit = one<ListData>("* LIST () \"/\" {10}\r\nfoo \"bar\" \r\n");
  EXPECT_EQ(lit.mailbox.wire, "foo \"bar\" ");

  // INBOX is case-insensitive (RFC 3501 5.1): folded for the sync engine.
  EXPECT_EQ(one<ListData>("* LIST () \"/\" inbox\r\n").mailbox.wire, "INBOX");

  // RFC 5258 9 extended data: CHILDINFO; RFC 9051 OLDNAME; unknown kept raw.
  auto ext = one<ListData>(
      "* LIST (\\Subscribed) \"/\" \"Foo\" (CHILDINFO (\"SUBSCRIBED\") OLDNAME (\"Bar\") X-THING (1 \"two\"))\r\n");
  EXPECT_EQ(ext.childInfo, (std::vector<std::string>{"SUBSCRIBED"}));
  ASSERT_TRUE(ext.oldName.has_value());
  EXPECT_EQ(ext.oldName->utf8, "Bar");
  ASSERT_EQ(ext.extended.size(), 1u);
  EXPECT_EQ(ext.extended[0], (std::pair<std::string, std::string>{"X-THING", "(1 \"two\")"}));

  // A server sending raw 8-bit names: usable, flagged, never an error.
  auto raw8 = one<ListData>("* LIST () \"/\" \"Caf\xC3\xA9\"\r\n");
  EXPECT_FALSE(raw8.mailbox.decoded);
  EXPECT_EQ(raw8.mailbox.utf8, "Caf\xC3\xA9");

  // UTF8=ACCEPT (RFC 6855 3): names are UTF-8, "&" is just a character.
  ResponseParserOptions utf8 = noGreeting();
  utf8.utf8Accept = true;
  auto u = one<ListData>("* LIST () \"/\" \"Caf\xC3\xA9 & Co\"\r\n", utf8);
  EXPECT_TRUE(u.mailbox.decoded);
  EXPECT_EQ(u.mailbox.utf8, "Caf\xC3\xA9 & Co");
}

// RFC 3501 7.2.4, RFC 7162 3.1.6, RFC 8438.
TEST(ImapClientParser, Status) {
  auto s = one<StatusData>(
      "* STATUS \"[Gmail]/All Mail\" (MESSAGES 231 UIDNEXT 44292 UIDVALIDITY 1 UNSEEN 0 RECENT 2 "
      "HIGHESTMODSEQ 7011231777 SIZE 123456789012 X-FOO 5)\r\n");
  EXPECT_EQ(s.mailbox.utf8, "[Gmail]/All Mail");
  EXPECT_EQ(s.messages, 231u);
  EXPECT_EQ(s.uidNext, 44292u);
  EXPECT_EQ(s.uidValidity, 1u);
  EXPECT_EQ(s.unseen, 0u);
  EXPECT_EQ(s.recent, 2u);
  EXPECT_EQ(s.highestModSeq, 7011231777u);
  EXPECT_EQ(s.size, 123456789012u);
  EXPECT_EQ(s.other, (std::vector<std::pair<std::string, uint64_t>>{{"X-FOO", 5}}));
  auto bare = one<StatusData>("* STATUS blurdybloop (messages 1)\r\n");
  EXPECT_EQ(bare.mailbox.utf8, "blurdybloop");
  EXPECT_EQ(bare.messages, 1u);
  EXPECT_FALSE(bare.uidNext.has_value());
  EXPECT_EQ(oneError("* STATUS x (MESSAGES 4294967296)\r\n").kind, ErrorKind::Syntax);
}

TEST(ImapClientParser, MessageCounts) {
  EXPECT_EQ(one<ExistsData>("* 23 EXISTS\r\n").count, 23u);
  EXPECT_EQ(one<ExistsData>("* 0 EXISTS\r\n").count, 0u);
  EXPECT_EQ(one<RecentData>("* 5 RECENT\r\n").count, 5u);
  EXPECT_EQ(one<ExpungeData>("* 44 EXPUNGE\r\n").seq, 44u);
  EXPECT_EQ(one<ExistsData>("* 4294967295 EXISTS\r\n").count, UINT32_MAX);
}

// RFC 3501 7.4.2 FETCH items; RFC 7162 3.1.4.1 MODSEQ; RFC 3516 BINARY.
TEST(ImapClientParser, Fetch) {
  auto f = one<FetchData>(
      "* 12 FETCH (FLAGS (\\Seen $Label1) INTERNALDATE \" 7-Feb-1994 21:52:25 -0800\" RFC822.SIZE 4286 "
      "UID 4827313 MODSEQ (12121231000) ENVELOPE (\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" {4}\r\nSubj"
      " ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) NIL NIL NIL NIL NIL NIL \"<B27397-0100000@cac>\") "
      "BODYSTRUCTURE (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 92) "
      "BODY[HEADER.FIELDS (DATE FROM)] {5}\r\nDate:"
      " BODY[]<0> \"partial\" BINARY[1] ~{3}\r\nx\0y"
      " RFC822.HEADER NIL BINARY.SIZE[1] 3 X-GM-LABELS (\\Inbox \"Work stuff\"))\r\n"s);
  EXPECT_EQ(f.seq, 12u);
  EXPECT_EQ(f.uid, 4827313u);
  EXPECT_EQ(f.flags, (std::vector<std::string>{"\\Seen", "$Label1"}));
  ASSERT_TRUE(f.internalDate.has_value());
  EXPECT_EQ(f.internalDate->date, (Date{1994, 2, 7}));
  EXPECT_EQ(f.internalDate->hour, 21);
  EXPECT_EQ(f.internalDate->zoneMinutes, -480);
  EXPECT_EQ(f.rfc822Size, 4286u);
  EXPECT_EQ(f.modSeq, 12121231000u);
  EXPECT_EQ(f.envelope,
            "(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" {4}\r\nSubj ((\"Terry Gray\" NIL \"gray\" "
            "\"cac.washington.edu\")) NIL NIL NIL NIL NIL NIL \"<B27397-0100000@cac>\")");
  EXPECT_EQ(f.bodyStructure, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 92)");
  ASSERT_EQ(f.bodies.size(), 4u);
  EXPECT_EQ(f.bodies[0].section, "HEADER.FIELDS (DATE FROM)");
  EXPECT_EQ(f.bodies[0].data, "Date:");
  EXPECT_EQ(f.bodies[1].origin, 0u);
  EXPECT_EQ(f.bodies[1].data, "partial");
  EXPECT_EQ(f.bodies[2].item, "BINARY");
  EXPECT_TRUE(f.bodies[2].literal8);
  EXPECT_EQ(f.bodies[2].data, "x\0y"s);
  EXPECT_EQ(f.bodies[3].item, "RFC822.HEADER");
  EXPECT_FALSE(f.bodies[3].data.has_value());
  ASSERT_NE(f.body("body", ""), nullptr);
  EXPECT_EQ(f.body("BINARY", "1")->data, "x\0y"s);
  EXPECT_EQ(f.other, (std::vector<std::pair<std::string, std::string>>{
                         {"BINARY.SIZE[1]", "3"}, {"X-GM-LABELS", "(\\Inbox \"Work stuff\")"}}));
  // A date we cannot read is kept, not fatal for the message.
  auto odd = one<FetchData>("* 1 FETCH (INTERNALDATE \"yesterday\" UID 1)\r\n");
  EXPECT_FALSE(odd.internalDate.has_value());
  EXPECT_EQ(odd.uid, 1u);
  EXPECT_EQ(odd.other.size(), 1u);
  // Empty item list and empty flags are legal.
  EXPECT_TRUE(one<FetchData>("* 1 FETCH ()\r\n").bodies.empty());
  EXPECT_EQ(one<FetchData>("* 1 FETCH (FLAGS ())\r\n").flags, std::vector<std::string>{});
}

// The point of moving literals: a 50 MB message arrives in 64 KB reads and
// is copied once, from feed() into the buffer the FetchBody then owns.
TEST(ImapClientParser, LargeLiteralFetch) {
  const size_t size = 50u * 1024 * 1024;
  std::string message(size, 'x');
  for (size_t i = 0; i < size; i += 997) message[i] = static_cast<char>('a' + i % 26);
  std::string head = "* 7 FETCH (UID 9 BODY[] {" + std::to_string(size) + "}\r\n";
  ResponseParser p(noGreeting());
  size_t maxBuffered = 0;
  const size_t kRead = 64 * 1024;
  std::string stream = head + message + ")\r\nA1 OK done\r\n";
  std::vector<Response> got;
  for (size_t off = 0; off < stream.size(); off += kRead) {
    p.feed(std::string_view(stream).substr(off, kRead));
    while (true) {
      Ev ev = p.next();
      if (ev == Ev::NeedMore) break;
      ASSERT_EQ(ev, Ev::Response) << p.error().error.message;
      got.push_back(p.takeResponse());
    }
    maxBuffered = std::max(maxBuffered, p.bufferedBytes());
    if (off > head.size() && off + kRead < head.size() + size) {
      EXPECT_GT(p.literalBytesPending(), 0u);
    }
  }
  EXPECT_LE(maxBuffered, size + kRead);
  ASSERT_EQ(got.size(), 2u);
  auto& f = std::get<FetchData>(got[0]);
  EXPECT_EQ(f.uid, 9u);
  ASSERT_EQ(f.bodies.size(), 1u);
  std::string data = std::move(*f.bodies[0].data);
  EXPECT_EQ(data.size(), size);
  EXPECT_TRUE(data == message);
  // Reserved once from the header: no regrowth, no second buffer.
  EXPECT_EQ(data.capacity(), size);
  EXPECT_EQ(std::get<Tagged>(got[1]).tag, "A1");
  EXPECT_EQ(p.bufferedBytes(), 0u);
}

// A reader that puts bytes straight into the literal whenever the parser
// offers a window, reading `step` bytes at a time as a socket would.
std::vector<Outcome> runInPlace(std::string_view wire, size_t step, size_t minWindow, size_t* inPlaceBytes,
                                ResponseParserOptions opt = {}) {
  ResponseParser p(opt);
  std::vector<Outcome> out;
  size_t off = 0;
  while (off < wire.size()) {
    size_t n = std::min(step, wire.size() - off);
    std::span<char> w = p.literalWindow(minWindow);
    if (!w.empty()) {
      n = std::min(n, w.size());
      std::memcpy(w.data(), wire.data() + off, n);
      p.literalWritten(n);
      *inPlaceBytes += n;
    } else {
      p.feed(wire.substr(off, n));
    }
    off += n;
    drain(p, out);
  }
  return out;
}

TEST(ImapClientParser, LiteralWindowGivesTheSameResult) {
  std::string big(70000, 'b');
  for (size_t i = 0; i < big.size(); i += 61) big[i] = '\n';
  std::string wire = "* OK hi\r\n"
                     "* 1 FETCH (UID 3 BODY[] {5}\r\nhello FLAGS (\\Seen))\r\n"
                     "* 2 FETCH (UID 4 BODY[HEADER] {3}\r\nabc BODY[] {" + std::to_string(big.size()) + "}\r\n" + big +
                     ")\r\n"
                     "* 3 FETCH (UID 5 BODY[] {0}\r\n)\r\n"
                     "A1 OK done\r\n";
  auto whole = runWhole(wire);
  ASSERT_EQ(whole.size(), 5u);
  for (size_t step : {1u, 7u, 4096u, 65536u, 200000u}) {
    for (size_t minWindow : {0u, 1u, 1024u}) {
      size_t inPlace = 0;
      EXPECT_EQ(runInPlace(wire, step, minWindow, &inPlace), whole) << "step " << step << " min " << minWindow;
      if (step > 1 && step < wire.size()) {
        EXPECT_GT(inPlace, 0u) << "step " << step;
      }
    }
  }
}

TEST(ImapClientParser, LiteralWindowOnlyWhenNothingIsBuffered) {
  ResponseParser p(noGreeting());
  EXPECT_TRUE(p.literalWindow(0).empty());  // not in a literal
  p.feed("* 1 FETCH (UID 3 BODY[] {10}\r\nab");
  EXPECT_EQ(p.next(), Ev::NeedMore);
  std::span<char> w = p.literalWindow(0);
  ASSERT_EQ(w.size(), 8u);
  EXPECT_TRUE(p.literalWindow(9).empty());  // fewer than 9 remain
  w = p.literalWindow(8);
  ASSERT_EQ(w.size(), 8u);
  std::memcpy(w.data(), "cdef", 4);
  p.literalWritten(4);
  EXPECT_EQ(p.literalBytesPending(), 4u);
  // A window taken back unused: its bytes do not count.
  const size_t held = p.bufferedBytes();
  w = p.literalWindow(0);
  ASSERT_EQ(w.size(), 4u);
  std::memcpy(w.data(), "XXXX", 4);
  EXPECT_EQ(p.bufferedBytes(), held);
  p.feed("gh");  // drops the window
  EXPECT_EQ(p.next(), Ev::NeedMore);
  p.feed("ij)\r\n");
  // Input is pending behind the literal: no window until it is parsed.
  ASSERT_EQ(p.next(), Ev::Response);
  auto f = std::get<FetchData>(p.takeResponse());
  ASSERT_EQ(f.bodies.size(), 1u);
  EXPECT_EQ(*f.bodies[0].data, "abcdefghij");
  EXPECT_TRUE(p.literalWindow(0).empty());
  p.literalWritten(5);  // no window open: ignored
  EXPECT_EQ(p.bufferedBytes(), 0u);
}

// RFC 3501 7.2.5; RFC 7162 3.1.5; RFC 4731 3.
TEST(ImapClientParser, SearchAndEsearch) {
  auto s = one<SearchData>("* SEARCH 2 84 882 (MODSEQ 917162500)\r\n");
  EXPECT_EQ(s.numbers, (std::vector<uint32_t>{2, 84, 882}));
  EXPECT_EQ(s.modSeq, 917162500u);
  EXPECT_TRUE(one<SearchData>("* SEARCH\r\n").numbers.empty());
  EXPECT_TRUE(one<SearchData>("* SEARCH \r\n").numbers.empty());

  auto e = one<EsearchData>("* ESEARCH (TAG \"A282\") UID MIN 2 COUNT 3 ALL 2,10:11 MODSEQ 917162500\r\n");
  EXPECT_EQ(e.tag, "A282");
  EXPECT_TRUE(e.uid);
  EXPECT_EQ(e.min, 2u);
  EXPECT_FALSE(e.max.has_value());
  EXPECT_EQ(e.count, 3u);
  ASSERT_TRUE(e.all.has_value());
  EXPECT_EQ(e.all->toString(), "2,10:11");
  EXPECT_EQ(e.modSeq, 917162500u);
  // No correlator, no results: "* ESEARCH (TAG "x")" alone is legal too.
  auto empty = one<EsearchData>("* ESEARCH (TAG \"A1\")\r\n");
  EXPECT_EQ(empty.tag, "A1");
  EXPECT_FALSE(empty.count.has_value());
  auto bare = one<EsearchData>("* ESEARCH COUNT 0\r\n");
  EXPECT_FALSE(bare.tag.has_value());
  EXPECT_EQ(bare.count, 0u);
  auto partial = one<EsearchData>("* ESEARCH (TAG \"A5\") UID PARTIAL (1:10 1,3,5)\r\n");
  EXPECT_EQ(partial.other, (std::vector<std::pair<std::string, std::string>>{{"PARTIAL", "(1:10 1,3,5)"}}));
}

// RFC 7162 3.2.10.
TEST(ImapClientParser, Vanished) {
  auto v = one<VanishedData>("* VANISHED (EARLIER) 41,43:116,118,120:211,214:540\r\n");
  EXPECT_TRUE(v.earlier);
  EXPECT_EQ(v.uids.toString(), "41,43:116,118,120:211,214:540");
  EXPECT_EQ(v.uids.resolve(1000).size(), 5u);
  auto now = one<VanishedData>("* VANISHED 405,407,410,425\r\n");
  EXPECT_FALSE(now.earlier);
  EXPECT_EQ(now.uids.ranges().size(), 4u);
  EXPECT_EQ(oneError("* VANISHED (LATER) 1\r\n").kind, ErrorKind::Syntax);
}

TEST(ImapClientParser, FlagsNamespaceIdUnknown) {
  EXPECT_EQ(one<FlagsData>("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n").flags.size(), 5u);
  EXPECT_EQ(one<NamespaceData>("* NAMESPACE ((\"\" \"/\")) NIL ((\"#shared/\" \"/\"))\r\n").raw,
            "((\"\" \"/\")) NIL ((\"#shared/\" \"/\"))");
  auto id = one<IdData>("* ID (\"name\" \"Cyrus\" \"version\" \"1.5\" \"os\" NIL)\r\n");
  ASSERT_TRUE(id.params.has_value());
  ASSERT_EQ(id.params->size(), 3u);
  EXPECT_EQ((*id.params)[0].second, "Cyrus");
  EXPECT_FALSE((*id.params)[2].second.has_value());
  EXPECT_FALSE(one<IdData>("* ID NIL\r\n").params.has_value());

  auto q = one<UnknownData>("* QUOTAROOT INBOX \"\"\r\n");
  EXPECT_EQ(q.name, "QUOTAROOT");
  EXPECT_EQ(q.raw, "QUOTAROOT INBOX \"\"");
  auto m = one<UnknownData>("* METADATA INBOX (/private/comment {3}\r\nabc)\r\n");
  EXPECT_EQ(m.raw, "METADATA INBOX (/private/comment {3}\r\nabc)");
  auto n = one<UnknownData>("* 5 XFOO bar\r\n");
  EXPECT_EQ(n.name, "XFOO");
  EXPECT_EQ(n.raw, "5 XFOO bar");
}

TEST(ImapClientParser, Continuation) {
  EXPECT_EQ(one<Continuation>("+ idling\r\n").text, "idling");
  EXPECT_EQ(one<Continuation>("+ \r\n").text, "");
  EXPECT_EQ(one<Continuation>("+\r\n").text, "");
  // A challenge that ends like a literal header is still just text.
  auto out = runWhole("+ Ready for {3}\r\nA1 OK x\r\n", noGreeting());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(std::get<Continuation>(*out[0].response).text, "Ready for {3}");
}

// Malformed lines: a clear Syntax error naming the problem, the tag when
// there was one, and the next response parses as if nothing happened.
TEST(ImapClientParser, MalformedThenResync) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"* 3 FETCH (UID abc)\r\n", "*"},
      {"* 3 FETCH (UID 1\r\n", "*"},
      {"* OK [UIDVALIDITY x] bad\r\n", "*"},
      {"* OK [UIDNEXT 5 unterminated\r\n", "*"},
      {"A1 MAYBE later\r\n", "A1"},
      {"A2 OK [APPENDUID 1 0:*] x\r\n", "A2"},
      {"* LIST (\\Noselect) \"ab\" foo\r\n", "*"},
      {"* LIST (\\Noselect \"/\" foo\r\n", "*"},
      {"* STATUS \"unterminated (MESSAGES 1)\r\n", "*"},
      {"* 4294967296 EXISTS\r\n", "*"},
      {"* 3 EXISTS trailing\r\n", "*"},
      {"* SEARCH 1 x 3\r\n", "*"},
      {"* ESEARCH (TAG \"A1\") COUNT many\r\n", "*"},
      {"* ID (\"a\")\r\n", "*"},
      {"(garbage\r\n", ""},
      {"* \r\n", "*"},
      {"* 1 FETCH (BODY[1 {3}\r\nabc)\r\n", "*"},
  };
  for (const auto& [wire, tag] : cases) {
    auto out = runWhole(wire + "* 9 EXISTS\r\nA9 OK done\r\n", noGreeting());
    ASSERT_EQ(out.size(), 3u) << wire;
    EXPECT_FALSE(out[0].response.has_value()) << wire;
    EXPECT_EQ(out[0].kind, ErrorKind::Syntax) << wire;
    EXPECT_FALSE(out[0].fatal) << wire;
    EXPECT_EQ(out[0].tag, tag) << wire;
    EXPECT_NE(out[0].message.find("Malformed"), std::string::npos) << wire << ": " << out[0].message;
    ASSERT_TRUE(out[1].response.has_value()) << wire << ": " << out[1].message;
    EXPECT_EQ(std::get<ExistsData>(*out[1].response).count, 9u) << wire;
    EXPECT_EQ(std::get<Tagged>(*out[2].response).tag, "A9") << wire;
  }
}

// Limits: over-long lines and over-large literals are dropped whole (their
// literals too) and reported as Upstream errors; memory stays bounded.
TEST(ImapClientParser, LimitsDropAndResync) {
  ResponseParserOptions opt = noGreeting();
  opt.limits.maxLineLength = 100;
  opt.limits.maxLiteralSize = 50;
  opt.limits.maxResponseLiterals = 80;
  std::string longLine = "* SEARCH" + std::string(300, ' ') + "1\r\n";
  std::string longThenLiteral = "A7 OK " + std::string(300, 'x') + " {5}\r\n* 1 FETCH (BODY[] {5}\r\nhello)\r\n";
  std::string bigLiteral = "* 1 FETCH (UID 1 BODY[] {60}\r\n" + std::string(60, '(') + " BODY[1] {2}\r\nab)\r\n";
  std::string twoLiterals = "* 1 FETCH (BODY[1] {45}\r\n" + std::string(45, 'a') + " BODY[2] {45}\r\n" +
                            std::string(45, 'b') + ")\r\n";
  std::string tooManyEmpty = "* 1 FETCH (X (";
  for (int i = 0; i < 5; ++i) tooManyEmpty += "{0}\r\n ";
  tooManyEmpty += "))\r\n";
  for (const std::string& bad : {longLine, bigLiteral, twoLiterals, tooManyEmpty}) {
    std::string wire = bad + "* 2 EXISTS\r\n";
    auto whole = runWhole(wire, opt);
    ASSERT_EQ(whole.size(), 2u) << bad;
    EXPECT_EQ(whole[0].kind, ErrorKind::Upstream) << bad;
    EXPECT_EQ(whole[0].tag, "*");
    ASSERT_TRUE(whole[1].response.has_value()) << whole[1].message;
    EXPECT_EQ(std::get<ExistsData>(*whole[1].response).count, 2u);
    for (size_t i = 0; i <= wire.size(); ++i) {
      ASSERT_TRUE(runChunks({wire.substr(0, i), wire.substr(i)}, opt) == whole) << bad << " split at " << i;
    }
  }
  // A status line is text, so a long one ending in "{5}" drops no literal.
  auto out = runWhole(longThenLiteral, opt);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].tag, "A7");
  EXPECT_EQ(std::get<FetchData>(*out[1].response).bodies[0].data, "hello");

  // Byte-at-a-time through a long line never holds more than the limit.
  ResponseParser p(opt);
  size_t maxBuffered = 0;
  for (char c : std::string(10000, 'a') + "\r\n* 1 EXISTS\r\n") {
    p.feed(std::string_view(&c, 1));
    while (p.next() != Ev::NeedMore) {
    }
    maxBuffered = std::max(maxBuffered, p.bufferedBytes());
  }
  EXPECT_LE(maxBuffered, opt.limits.maxLineLength + 1);
}

// A literal size beyond 64 bits leaves no way to find the next response.
TEST(ImapClientParser, LiteralOverflowIsFatal) {
  ResponseParser p(noGreeting());
  p.feed("* 1 FETCH (BODY[] {99999999999999999999999}\r\n* 2 EXISTS\r\n");
  ASSERT_EQ(p.next(), Ev::Error);
  EXPECT_TRUE(p.error().fatal);
  EXPECT_TRUE(p.closed());
  p.feed("* 3 EXISTS\r\n");
  EXPECT_EQ(p.next(), Ev::NeedMore);
  EXPECT_EQ(p.bufferedBytes(), 0u);
}

// parseResponse is reachable on its own, e.g. for a stored transcript.
TEST(ImapClientParser, ParseResponseDirect) {
  std::vector<std::string> lines{"* 1 FETCH (BODY[] {3}", ")"};
  std::vector<std::string> literals{"abc"};
  std::vector<bool> l8{false};
  auto r = parseResponse(lines, literals, l8, false, false);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(std::get<FetchData>(*r).bodies[0].data, "abc");
  std::vector<std::string> bad{"x"};
  std::vector<std::string> none;
  std::vector<bool> n8;
  EXPECT_EQ(parseResponse(bad, literals, n8, false, false).error().kind, ErrorKind::Internal);
}

}  // namespace
}  // namespace mb::imap::client
