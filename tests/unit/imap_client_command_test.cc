// IMAP client command builder: exact wire bytes per RFC example, literal and
// continuation chunks, secrets kept out of logs, and a round trip through
// our own server-side parser to prove the quoting reads back as meant.
#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

#include "protocols/common/base64.h"
#include "protocols/imap/client_command.h"
#include "protocols/imap/parser.h"

namespace mb::imap::client {
namespace {

using namespace std::string_literals;

ServerFeatures literalPlus() {
  ServerFeatures f;
  f.literalPlus = true;
  return f;
}

std::string wireOf(Result<Command> c) {
  if (!c) {
    ADD_FAILURE() << "build failed: " << c.error().message;
    return {};
  }
  return c->wire();
}

// Parses what the builder produced with the server's CommandParser, the
// way a real server would read it (continuations are implicit here).
mb::imap::Command serverSees(const Command& c, ParserOptions opt = {}) {
  CommandParser p(opt);
  p.feed(c.wire());
  while (true) {
    auto ev = p.next();
    if (ev == CommandParser::Event::Continuation) continue;
    if (ev == CommandParser::Event::Command) return p.takeCommand();
    ADD_FAILURE() << "server parser: " << (ev == CommandParser::Event::Error ? p.error().message : "need more")
                  << " for " << c.wire();
    return {};
  }
}

TEST(ImapClientCommand, TagsCountUp) {
  CommandBuilder b;
  EXPECT_EQ(b.peekTag(), "A0001");
  EXPECT_EQ(b.capability().wire(), "A0001 CAPABILITY\r\n");
  EXPECT_EQ(b.noop().wire(), "A0002 NOOP\r\n");
  EXPECT_EQ(b.logout().tag, "A0003");
  // A refused build uses no tag, so tags on the wire stay consecutive.
  EXPECT_FALSE(b.enable({"BAD\r\nX"}).has_value());
  EXPECT_EQ(b.startTls().wire(), "A0004 STARTTLS\r\n");
  CommandBuilder other({}, "mb");
  EXPECT_EQ(other.namespaceCmd().wire(), "mb0001 NAMESPACE\r\n");
  for (int i = 0; i < 10000; ++i) other.noop();
  EXPECT_EQ(other.noop().tag, "mb10002");
}

// RFC 3501 6.2.3 and 4.3: astring quoting; literal when quoting cannot work.
TEST(ImapClientCommand, LoginQuotingAndLiterals) {
  CommandBuilder b;
  auto c = b.login("smith", "sesame");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->wire(), "A0001 LOGIN smith sesame\r\n");
  EXPECT_EQ(c->chunks.size(), 1u);
  EXPECT_EQ(c->logText, "A0001 LOGIN smith ***");
  EXPECT_EQ(wireOf(b.login("fred foobar@x", "p\"a\\ss word")), "A0002 LOGIN \"fred foobar@x\" \"p\\\"a\\\\ss word\"\r\n");
  // 8-bit without UTF8=ACCEPT: a synchronizing literal, sent after "+".
  auto lit = b.login("joe", "p\xC3\xA4ss");
  ASSERT_TRUE(lit);
  ASSERT_EQ(lit->chunks.size(), 2u);
  EXPECT_EQ(lit->chunks[0], (Chunk{"A0003 LOGIN joe {5}\r\n", false}));
  EXPECT_EQ(lit->chunks[1], (Chunk{"p\xC3\xA4ss\r\n", true}));
  EXPECT_EQ(lit->continuationsNeeded(), 1u);
  EXPECT_EQ(lit->logText, "A0003 LOGIN joe ***");
  // LITERAL+ (RFC 7888 3): "{5+}" and no wait.
  CommandBuilder plus(literalPlus());
  auto np = plus.login("joe", "p\xC3\xA4ss");
  ASSERT_TRUE(np);
  EXPECT_EQ(np->chunks.size(), 1u);
  EXPECT_EQ(np->wire(), "A0001 LOGIN joe {5+}\r\np\xC3\xA4ss\r\n");
  EXPECT_EQ(std::get<LoginCmd>(serverSees(*np).body), (LoginCmd{"joe", "p\xC3\xA4ss"}));
  // CR/LF in a password must not end the line early.
  auto crlf = b.login("joe", "a\r\nA0099 DELETE INBOX");
  ASSERT_TRUE(crlf);
  EXPECT_EQ(crlf->continuationsNeeded(), 1u);
  EXPECT_EQ(std::get<LoginCmd>(serverSees(*crlf).body).password, "a\r\nA0099 DELETE INBOX");
  EXPECT_FALSE(b.login("joe", "nul\0byte"s));
  // "NIL" as a user name must not read as nil.
  EXPECT_EQ(wireOf(b.login("NIL", "x")), "A0005 LOGIN \"NIL\" x\r\n");
}

// RFC 4616 PLAIN, RFC 4959 SASL-IR.
TEST(ImapClientCommand, AuthenticatePlain) {
  ServerFeatures f;
  f.saslIr = true;
  CommandBuilder ir(f);
  auto c = ir.authenticatePlain("tim", "tanstaaftanstaaf");
  ASSERT_TRUE(c);
  // RFC 4616 4 example: "\0tim\0tanstaaftanstaaf".
  EXPECT_EQ(c->wire(), "A0001 AUTHENTICATE PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n");
  EXPECT_EQ(c->logText, "A0001 AUTHENTICATE PLAIN ***");
  auto sc = serverSees(*c);
  EXPECT_EQ(std::get<AuthenticateCmd>(sc.body).initialResponse, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");

  // Without SASL-IR the response answers the server's empty "+ "
  // (RFC 3501 6.2.2).
  CommandBuilder plain;
  auto two = plain.authenticatePlain("tim", "tanstaaftanstaaf", "admin");
  ASSERT_TRUE(two);
  ASSERT_EQ(two->chunks.size(), 2u);
  EXPECT_EQ(two->chunks[0], (Chunk{"A0001 AUTHENTICATE PLAIN\r\n", false}));
  EXPECT_TRUE(two->chunks[1].waitForContinuation);
  auto decoded = base64Decode(two->chunks[1].bytes.substr(0, two->chunks[1].bytes.size() - 2));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, "admin\0tim\0tanstaaftanstaaf"s);
  EXPECT_FALSE(plain.authenticatePlain("a\0b"s, "x"));
}

// SASL LOGIN: username and password are separate base64 answers to the
// server's "+" prompts ("Username:", "Password:"); with SASL-IR the username
// rides on the command line and only the password waits.
TEST(ImapClientCommand, AuthenticateLogin) {
  ServerFeatures f;
  f.saslIr = true;
  CommandBuilder ir(f);
  auto c = ir.authenticateLogin("tim", "tanstaaf");
  ASSERT_TRUE(c);
  ASSERT_EQ(c->chunks.size(), 2u);
  EXPECT_EQ(c->chunks[0], (Chunk{"A0001 AUTHENTICATE LOGIN dGlt\r\n", false}));
  EXPECT_EQ(c->chunks[1], (Chunk{"dGFuc3RhYWY=\r\n", true}));
  EXPECT_EQ(c->logText, "A0001 AUTHENTICATE LOGIN ***");
  EXPECT_EQ(c->logText.find("dGFuc3RhYWY"), std::string::npos);

  CommandBuilder plain;
  auto three = plain.authenticateLogin("tim", "tanstaaf");
  ASSERT_TRUE(three);
  ASSERT_EQ(three->chunks.size(), 3u);
  EXPECT_EQ(three->chunks[0], (Chunk{"A0001 AUTHENTICATE LOGIN\r\n", false}));
  EXPECT_EQ(three->chunks[1], (Chunk{"dGlt\r\n", true}));
  EXPECT_EQ(three->chunks[2], (Chunk{"dGFuc3RhYWY=\r\n", true}));
}

// After a failed OAuth exchange the server's JSON error challenge is
// acknowledged: empty for XOAUTH2, a single ^A for OAUTHBEARER (RFC 7628 3.2.3).
TEST(ImapClientCommand, SaslFailureResponse) {
  EXPECT_EQ(saslFailureResponse("XOAUTH2"), "\r\n");
  EXPECT_EQ(saslFailureResponse("OAUTHBEARER"), "AQ==\r\n");
  EXPECT_EQ(saslFailureResponse("PLAIN"), "\r\n");
}

// Google's XOAUTH2 and RFC 7628 OAUTHBEARER initial responses.
TEST(ImapClientCommand, AuthenticateOauth) {
  ServerFeatures f;
  f.saslIr = true;
  CommandBuilder b(f);
  auto x = b.authenticateXoauth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg");
  ASSERT_TRUE(x);
  std::string line = x->wire();
  ASSERT_EQ(line.rfind("A0001 AUTHENTICATE XOAUTH2 ", 0), 0u);
  auto xr = base64Decode(line.substr(27, line.size() - 29));
  ASSERT_TRUE(xr);
  EXPECT_EQ(*xr, "user=someuser@example.com\x01" "auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01");
  EXPECT_EQ(x->logText, "A0001 AUTHENTICATE XOAUTH2 ***");

  // RFC 7628 4.1 example.
  auto o = b.authenticateOauthBearer("user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
                                     "server.example.com", 143);
  ASSERT_TRUE(o);
  line = o->wire();
  EXPECT_EQ(line,
            "A0002 AUTHENTICATE OAUTHBEARER "
            "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRj"
            "Mk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB\r\n");
  // gs2 saslname escaping (RFC 5801 5.1), no host/port.
  auto esc = b.authenticateOauthBearer("a,b=c", "t");
  ASSERT_TRUE(esc);
  line = esc->wire();
  auto er = base64Decode(line.substr(31, line.size() - 33));
  ASSERT_TRUE(er);
  EXPECT_EQ(*er, "n,a=a=2Cb=3Dc,\x01" "auth=Bearer t\x01\x01");
  EXPECT_FALSE(b.authenticateXoauth2("u\x01", "t"));
  EXPECT_EQ(saslEmptyResponse(), "\r\n");
  EXPECT_EQ(saslCancel(), "*\r\n");
  EXPECT_EQ(saslResponse("abc"), "YWJj\r\n");
}

TEST(ImapClientCommand, EnableAndId) {
  CommandBuilder b;
  EXPECT_EQ(wireOf(b.enable({"CONDSTORE", "QRESYNC"})), "A0001 ENABLE CONDSTORE QRESYNC\r\n");
  EXPECT_FALSE(b.enable({}));
  auto id = b.id({{"name", "mailbridge"}, {"version", "0.1.0"}});
  EXPECT_EQ(wireOf(id), "A0002 ID (\"name\" \"mailbridge\" \"version\" \"0.1.0\")\r\n");
  EXPECT_EQ(wireOf(b.id({})), "A0003 ID NIL\r\n");
  auto back = b.id({{"name", "a \"b\""}});
  ASSERT_TRUE(back);
  auto params = std::get<IdCmd>(serverSees(*back).body).params;
  ASSERT_TRUE(params.has_value());
  EXPECT_EQ((*params)[0].second, "a \"b\"");
}

// RFC 5258 / RFC 5819 / RFC 6154: RETURN options only where offered.
TEST(ImapClientCommand, List) {
  CommandBuilder plain;
  ListOptions opt;
  opt.specialUse = true;
  opt.status = {StatusItem::Messages, StatusItem::UidNext, StatusItem::UidValidity, StatusItem::HighestModSeq};
  EXPECT_EQ(wireOf(plain.list("", "*", opt)), "A0001 LIST \"\" \"*\"\r\n");
  EXPECT_EQ(wireOf(plain.list("", "%")), "A0002 LIST \"\" \"%\"\r\n");
  auto caps = ServerFeatures::fromCapabilities({"IMAP4rev1", "LIST-EXTENDED", "list-status", "SPECIAL-USE"});
  CommandBuilder ext(caps);
  auto c = ext.list("", "*", opt);
  EXPECT_EQ(wireOf(c), "A0001 LIST \"\" \"*\" RETURN (SPECIAL-USE STATUS (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ))\r\n");
  auto sc = std::get<ListCmd>(serverSees(*c).body);
  EXPECT_TRUE(sc.returnSpecialUse);
  ASSERT_TRUE(sc.returnStatus.has_value());
  EXPECT_EQ(sc.returnStatus->size(), 4u);
  ListOptions sub;
  sub.subscribed = true;
  EXPECT_EQ(wireOf(ext.list("", "*", sub)), "A0002 LIST \"\" \"*\" RETURN (SUBSCRIBED)\r\n");
  EXPECT_EQ(wireOf(ext.lsub("", "*")), "A0003 LSUB \"\" \"*\"\r\n");
  // mUTF-7 in the pattern (RFC 3501 5.1.3).
  EXPECT_EQ(wireOf(ext.list("", "\xC3\x89t\xC3\xA9/%")), "A0004 LIST \"\" \"&AMk-t&AOk-/%\"\r\n");
}

TEST(ImapClientCommand, StatusAndSelect) {
  CommandBuilder b;
  EXPECT_EQ(wireOf(b.status("[Gmail]/All Mail", {StatusItem::Messages, StatusItem::UidNext, StatusItem::Unseen})),
            "A0001 STATUS \"[Gmail]/All Mail\" (MESSAGES UIDNEXT UNSEEN)\r\n");
  EXPECT_EQ(wireOf(b.select("INBOX")), "A0002 SELECT INBOX\r\n");
  EXPECT_EQ(wireOf(b.select("inbox")), "A0003 SELECT INBOX\r\n");
  SelectOptions cs;
  cs.readOnly = true;
  cs.condstore = true;
  EXPECT_EQ(wireOf(b.select("Archive", cs)), "A0004 EXAMINE Archive (CONDSTORE)\r\n");
  // RFC 7162 3.2.5.1 example.
  SelectOptions q;
  q.qresync = QresyncParams{67890007, 20050715194045000ull, SequenceSet::parse("41,43:211,214:541").value(),
                            std::nullopt, std::nullopt};
  auto c = b.select("INBOX", q);
  EXPECT_EQ(wireOf(c), "A0005 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n");
  EXPECT_EQ(std::get<SelectCmd>(serverSees(*c).body).qresync, q.qresync);
  q.qresync->knownSeqs = SequenceSet::parse("1:10").value();
  q.qresync->knownSeqUids = SequenceSet::parse("41:50").value();
  EXPECT_EQ(wireOf(b.select("INBOX", q)),
            "A0006 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1:10 41:50)))\r\n");
  q.qresync->knownUids.reset();
  EXPECT_FALSE(b.select("INBOX", q));
  // mUTF-7 names, and wire names sent back as the server spelled them.
  EXPECT_EQ(wireOf(b.select("\xC3\x89t\xC3\xA9")), "A0007 SELECT &AMk-t&AOk-\r\n");
  EXPECT_EQ(wireOf(b.select(Mailbox::fromWire("Caf\xC3\xA9"))), "A0008 SELECT {5}\r\nCaf\xC3\xA9\r\n");
  EXPECT_FALSE(b.select("bad \xFF utf8"));
  // UTF8=ACCEPT (RFC 6855 3): UTF-8 names go quoted as they are.
  ServerFeatures u;
  u.utf8Accept = true;
  CommandBuilder utf8(u);
  EXPECT_EQ(wireOf(utf8.select("\xC3\x89t\xC3\xA9")), "A0001 SELECT \"\xC3\x89t\xC3\xA9\"\r\n");
}

// RFC 7162 3.1.4 / 3.2.6 / 3.1.3, RFC 4731, RFC 4315, RFC 6851.
TEST(ImapClientCommand, UidCommands) {
  CommandBuilder b(ServerFeatures::fromCapabilities({"ESEARCH"}));
  FetchOptions fo;
  fo.changedSince = 12345;
  fo.vanished = true;
  auto f = b.uidFetch(SequenceSet::range(300, SeqRange::kStar), {"UID", "FLAGS", "MODSEQ"}, fo);
  EXPECT_EQ(wireOf(f), "A0001 UID FETCH 300:* (UID FLAGS MODSEQ) (CHANGEDSINCE 12345 VANISHED)\r\n");
  auto sf = std::get<FetchCmd>(serverSees(*f).body);
  EXPECT_TRUE(sf.uid);
  EXPECT_EQ(sf.changedSince, 12345u);
  EXPECT_TRUE(sf.vanished);
  EXPECT_EQ(wireOf(b.uidFetch(SequenceSet::parse("1:3,5").value(), {"BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.1024>"})),
            "A0002 UID FETCH 1:3,5 (BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.1024>)\r\n");
  EXPECT_EQ(wireOf(b.fetch(SequenceSet::range(5, SeqRange::kStar), {"UID", "FLAGS"})),
            "A0003 FETCH 5:* (UID FLAGS)\r\n");
  FetchOptions onlyVanished;
  onlyVanished.vanished = true;
  EXPECT_FALSE(b.uidFetch(SequenceSet::single(1), {"UID"}, onlyVanished));
  EXPECT_FALSE(b.uidFetch(SequenceSet::single(1), {"UID\r\nA1 LOGOUT"}));
  EXPECT_FALSE(b.uidFetch(SequenceSet::single(1), {"BODY[] {5}"}));
  EXPECT_FALSE(b.uidFetch(SequenceSet(), {"UID"}));

  SearchOptions so;
  so.returns = {SearchReturn::Min, SearchReturn::Count, SearchReturn::All};
  auto s = b.uidSearch("UID 1:* MODSEQ 620162338", so);
  EXPECT_EQ(wireOf(s), "A0004 UID SEARCH RETURN (MIN COUNT ALL) UID 1:* MODSEQ 620162338\r\n");
  EXPECT_TRUE(std::get<SearchCmd>(serverSees(*s).body).returnOptions.has_value());
  CommandBuilder noEsearch;
  EXPECT_EQ(wireOf(noEsearch.uidSearch("UNSEEN", so)), "A0001 UID SEARCH UNSEEN\r\n");
  EXPECT_FALSE(noEsearch.uidSearch("SUBJECT {3}"));

  StoreOptions st;
  st.unchangedSince = 12121230045ull;
  auto store = b.uidStore(SequenceSet::parse("7,5,9").value(), StoreMode::Add, {"\\Deleted"}, st);
  EXPECT_EQ(wireOf(store), "A0005 UID STORE 7,5,9 (UNCHANGEDSINCE 12121230045) +FLAGS (\\Deleted)\r\n");
  auto ss = std::get<StoreCmd>(serverSees(*store).body);
  EXPECT_EQ(ss.unchangedSince, 12121230045ull);
  EXPECT_EQ(ss.mode, StoreCmd::Mode::Add);
  StoreOptions silent;
  silent.silent = true;
  EXPECT_EQ(wireOf(b.uidStore(SequenceSet::single(4), StoreMode::Remove, {"\\Seen", "$Forwarded"}, silent)),
            "A0006 UID STORE 4 -FLAGS.SILENT (\\Seen $Forwarded)\r\n");
  EXPECT_EQ(wireOf(b.uidStore(SequenceSet::single(4), StoreMode::Replace, {})), "A0007 UID STORE 4 FLAGS ()\r\n");
  EXPECT_FALSE(b.uidStore(SequenceSet::single(4), StoreMode::Add, {"bad flag"}));

  EXPECT_EQ(wireOf(b.uidCopy(SequenceSet::parse("2:4").value(), "MEETING")), "A0008 UID COPY 2:4 MEETING\r\n");
  EXPECT_EQ(wireOf(b.uidMove(SequenceSet::parse("42:69").value(), "foo bar")), "A0009 UID MOVE 42:69 \"foo bar\"\r\n");
  EXPECT_EQ(wireOf(b.uidExpunge(SequenceSet::parse("3000:3002").value())), "A0010 UID EXPUNGE 3000:3002\r\n");
  EXPECT_EQ(b.expunge().wire(), "A0011 EXPUNGE\r\n");
}

TEST(ImapClientCommand, MailboxManagement) {
  CommandBuilder b;
  EXPECT_EQ(wireOf(b.create("owatagusiam/")), "A0001 CREATE owatagusiam/\r\n");
  EXPECT_EQ(wireOf(b.deleteMailbox("blurdybloop")), "A0002 DELETE blurdybloop\r\n");
  EXPECT_EQ(wireOf(b.rename("Old Stuff", "\xE5\x8F\xB0\xE5\x8C\x97")), "A0003 RENAME \"Old Stuff\" &U,BTFw-\r\n");
  EXPECT_EQ(wireOf(b.subscribe("#news.comp.mail.mime")), "A0004 SUBSCRIBE #news.comp.mail.mime\r\n");
  EXPECT_EQ(wireOf(b.unsubscribe("a&b")), "A0005 UNSUBSCRIBE a&-b\r\n");
}

// RFC 2177 IDLE: the command, then DONE on its own line.
TEST(ImapClientCommand, IdleDone) {
  CommandBuilder b;
  EXPECT_EQ(b.idle().wire(), "A0001 IDLE\r\n");
  EXPECT_EQ(idleDone(), "DONE\r\n");
  EXPECT_EQ(b.close().wire(), "A0002 CLOSE\r\n");
  EXPECT_EQ(b.unselect().wire(), "A0003 UNSELECT\r\n");
}

// RFC 3501 6.3.11 APPEND; RFC 3516 literal8; chunk shape for senders.
TEST(ImapClientCommand, Append) {
  std::string msg = "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nFrom: Fred <fred@example>\r\n\r\nHello Joe\r\n";
  AppendOptions opt;
  opt.flags = {"\\Seen"};
  opt.internalDate = DateTime{{1994, 2, 7}, 21, 52, 25, -480};
  CommandBuilder sync;
  auto c = sync.append("saved-messages", msg, opt);
  ASSERT_TRUE(c);
  ASSERT_EQ(c->chunks.size(), 2u);
  EXPECT_EQ(c->chunks[0].bytes, "A0001 APPEND saved-messages (\\Seen) \"07-Feb-1994 21:52:25 -0800\" {" +
                                    std::to_string(msg.size()) + "}\r\n");
  EXPECT_EQ(c->chunks[1], (Chunk{msg + "\r\n", true}));
  EXPECT_EQ(c->logText, "A0001 APPEND saved-messages (\\Seen) \"07-Feb-1994 21:52:25 -0800\" {" +
                            std::to_string(msg.size()) + "}<" + std::to_string(msg.size()) + " bytes>");
  auto back = std::get<AppendCmd>(serverSees(*c).body);
  ASSERT_EQ(back.messages.size(), 1u);
  EXPECT_EQ(back.messages[0].data, msg);
  EXPECT_EQ(back.messages[0].internalDate, opt.internalDate);
  EXPECT_EQ(back.messages[0].flags, opt.flags);

  // LITERAL+: small messages go at once.
  CommandBuilder plus(literalPlus());
  auto p = plus.append("INBOX", msg);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->continuationsNeeded(), 0u);
  EXPECT_EQ(p->wire(), "A0001 APPEND INBOX {" + std::to_string(msg.size()) + "+}\r\n" + msg + "\r\n");

  // A large message: synchronizing even under LITERAL+ (so the server may
  // refuse first), moved into a chunk of its own, CRLF in a chunk after.
  std::string big(3 * 1024 * 1024, 'b');
  const char* bigData = big.data();
  auto l = plus.append("INBOX", std::move(big));
  ASSERT_TRUE(l);
  ASSERT_EQ(l->chunks.size(), 3u);
  EXPECT_EQ(l->chunks[0].bytes, "A0002 APPEND INBOX {3145728}\r\n");
  EXPECT_TRUE(l->chunks[1].waitForContinuation);
  EXPECT_EQ(l->chunks[1].bytes.data(), bigData);  // the same buffer: no copy
  EXPECT_EQ(l->chunks[2], (Chunk{"\r\n", false}));

  // LITERAL-: non-synchronizing only up to 4096 (RFC 7888 4).
  ServerFeatures minus;
  minus.literalMinus = true;
  minus.maxNonSyncLiteral = 1 << 20;
  CommandBuilder lm(minus);
  EXPECT_EQ(lm.append("INBOX", std::string(4096, 'x'))->continuationsNeeded(), 0u);
  EXPECT_EQ(lm.append("INBOX", std::string(4097, 'x'))->continuationsNeeded(), 1u);

  // NUL octets need BINARY (RFC 3516 4.4): literal8.
  std::string withNul = "a\0b"s;
  EXPECT_FALSE(sync.append("INBOX", withNul));
  ServerFeatures bin;
  bin.binary = true;
  CommandBuilder binary(bin);
  auto b8 = binary.append("INBOX", withNul);
  ASSERT_TRUE(b8);
  EXPECT_EQ(b8->wire(), "A0001 APPEND INBOX ~{3}\r\na\0b\r\n"s);
  AppendOptions asked;
  asked.binary = true;
  EXPECT_EQ(binary.append("INBOX", "plain", asked)->chunks[0].bytes, "A0002 APPEND INBOX ~{5}\r\n");
  AppendOptions badDate;
  badDate.internalDate = DateTime{{2024, 13, 1}, 0, 0, 0, 0};
  EXPECT_FALSE(binary.append("INBOX", "x", badDate));
}

// Commands the helpers do not cover, e.g. a Gmail X-GM-RAW search whose
// string needs a literal.
TEST(ImapClientCommand, CustomCommands) {
  CommandBuilder b;
  auto args = b.args();
  args.atom("X-GM-RAW").string("has:attachment \xC3\xA9t\xC3\xA9");
  auto c = b.custom("UID SEARCH", std::move(args));
  ASSERT_TRUE(c);
  ASSERT_EQ(c->chunks.size(), 2u);
  EXPECT_EQ(c->chunks[0].bytes, "A0001 UID SEARCH X-GM-RAW {20}\r\n");
  EXPECT_EQ(c->chunks[1], (Chunk{"has:attachment \xC3\xA9t\xC3\xA9\r\n", true}));
  auto bad = b.args();
  bad.atom("OK").raw("x\r\nA2 LOGOUT");
  EXPECT_FALSE(b.custom("NOOP", std::move(bad)));
  EXPECT_FALSE(b.custom("NO\r\nOP", b.args()));
}

TEST(ImapClientCommand, FeaturesFromCapabilities) {
  auto f = ServerFeatures::fromCapabilities({"IMAP4rev1", "literal+", "SASL-IR", "BINARY", "UTF8=ACCEPT"});
  EXPECT_TRUE(f.literalPlus);
  EXPECT_TRUE(f.saslIr);
  EXPECT_TRUE(f.binary);
  EXPECT_FALSE(f.utf8Accept);  // only ENABLE turns it on
  auto rev2 = ServerFeatures::fromCapabilities({"IMAP4rev2"});
  EXPECT_TRUE(rev2.literalMinus);
  EXPECT_TRUE(rev2.esearch);
  EXPECT_EQ(formatDateTime(DateTime{{2024, 1, 5}, 9, 3, 0, 330}), "05-Jan-2024 09:03:00 +0530");
}

}  // namespace
}  // namespace mb::imap::client
