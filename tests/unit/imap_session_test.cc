// IMAP server session transcripts against the in-memory backend. Each test
// names the RFC section it pins; the whole-session test is replayed split at
// every byte and must answer identically.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "protocols/imap/memory_backend.h"
#include "protocols/imap/session.h"

namespace mb::imap {
namespace {

struct Client {
  Client(MemoryMailStore& store, SessionOptions o = {}) : store(store), backend(store), session(backend, o) {
    listener = store.listen([this](const MailboxEvent& ev, const void* origin) { session.onEvent(ev, origin == &backend); });
    session.start();
    session.takeOutput();
  }
  ~Client() { store.unlisten(listener); }

  // Feeds input (in pieces of `step` bytes, 0 = all at once), answering
  // login requests from the store, and returns what the session wrote.
  std::string send(std::string_view input, size_t step = 0) {
    std::string out;
    size_t pos = 0;
    do {
      size_t n = step ? std::min(step, input.size() - pos) : input.size() - pos;
      session.feed(input.substr(pos, n));
      pos += n;
      for (;;) {
        if (auto& l = session.pendingLogin()) {
          session.loginDone(store.checkLogin(l->user, l->password));
          continue;
        }
        if (session.startTlsRequested()) {
          out += session.takeOutput();
          session.tlsStarted();
          continue;
        }
        if (session.wantsResume()) {
          out += session.takeOutput();
          session.resume();
          continue;
        }
        break;
      }
      out += session.takeOutput();
    } while (pos < input.size());
    return out;
  }
  std::string login() { return send("l1 LOGIN alice secret\r\n"); }

  MemoryMailStore& store;
  MemoryBackend backend;
  Session session;
  size_t listener;
};

class SessionTest : public ::testing::Test {
 protected:
  SessionTest() { store.addUser("alice", "secret", 1); }
  MemoryMailStore store;
};

bool has(const std::string& out, const std::string& needle) { return out.find(needle) != std::string::npos; }

const char* kMessage =
    "From: Ann <ann@example.org>\r\nTo: bob@example.org\r\nSubject: hello world\r\n"
    "Message-ID: <m1@example.org>\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
    "--b\r\nContent-Type: text/html\r\n\r\n<p>second</p>\r\n--b--\r\n";

std::string appendCmd(const std::string& tag, const std::string& box, const std::string& msg, const std::string& flags = "") {
  return tag + " APPEND " + box + " " + (flags.empty() ? "" : "(" + flags + ") ") + "{" + std::to_string(msg.size()) + "+}\r\n" +
         msg + "\r\n";
}

// RFC 3501 7.1.1 / 6.1.1: greeting and CAPABILITY; RFC 3501 6.2.3 LOGINDISABLED.
TEST_F(SessionTest, GreetingAndCapabilities) {
  MemoryBackend b(store);
  SessionOptions o;
  o.startTlsAvailable = true;
  o.requireTls = true;
  Session s(b, o);
  s.start();
  std::string g = s.takeOutput();
  EXPECT_EQ(g.rfind("* OK [CAPABILITY IMAP4rev1 ", 0), 0u) << g;
  EXPECT_TRUE(has(g, "STARTTLS"));
  EXPECT_TRUE(has(g, "LOGINDISABLED"));
  EXPECT_TRUE(has(g, " MULTIAPPEND "));  // RFC 3502: the session accepts several messages per APPEND
  EXPECT_FALSE(has(g, "AUTH=PLAIN"));
  s.feed("a LOGIN alice secret\r\n");
  EXPECT_EQ(s.takeOutput(), "a NO [PRIVACYREQUIRED] use STARTTLS first\r\n");
  s.feed("b STARTTLS\r\nc PIPELINED\r\n");
  EXPECT_EQ(s.takeOutput(), "b OK Begin TLS negotiation now\r\n");
  ASSERT_TRUE(s.startTlsRequested());
  s.tlsStarted();
  // RFC 3501 6.2.1: the pipelined command was dropped, not executed.
  EXPECT_EQ(s.takeOutput(), "");
  s.feed("d CAPABILITY\r\n");
  std::string caps = s.takeOutput();
  EXPECT_TRUE(has(caps, "AUTH=PLAIN"));
  EXPECT_FALSE(has(caps, "STARTTLS"));
}

// Before login a literal is at most preAuthLiteralLimit (8 KiB): sync ones
// get NO [TOOBIG] (RFC 9051 7.1), non-sync ones BAD [TOOBIG] and are skipped
// (RFC 7888 4); after login the configured limits apply.
TEST_F(SessionTest, PreAuthLiteralsAreSmall) {
  Client c(store);
  EXPECT_EQ(c.send("a LOGIN {9000}\r\n"), "a NO [TOOBIG] Literal too big\r\n");
  EXPECT_EQ(c.send("b LOGIN alice {9000+}\r\n" + std::string(9000, 'x') + "\r\nc NOOP\r\n"),
            "b BAD [TOOBIG] Non-synchronizing literal too big\r\nc OK NOOP completed\r\n");
  EXPECT_EQ(c.send("d LOGIN {5}\r\n"), "+ Ready for literal data\r\n");
  EXPECT_EQ(c.send("alice {6}\r\n"), "+ Ready for literal data\r\n");
  EXPECT_TRUE(has(c.send("secret\r\n"), "d OK [CAPABILITY")) << "login with literals";
  EXPECT_EQ(c.send("e APPEND INBOX {9000}\r\n"), "+ Ready for literal data\r\n");
  EXPECT_TRUE(has(c.send(std::string(9000, 'y') + "\r\n"), "e OK [APPENDUID"));
}

// RFC 3501 6.2.3 LOGIN, RFC 4959 SASL-IR, RFC 4616 PLAIN, RFC 3501 6.2.2 exchange.
TEST_F(SessionTest, LoginAndAuthenticatePlain) {
  Client c(store);
  EXPECT_EQ(c.send("a LOGIN alice wrong\r\n"), "a NO [AUTHENTICATIONFAILED] authentication failed\r\n");
  EXPECT_EQ(c.send("x SELECT INBOX\r\n"), "x BAD SELECT needs a login first\r\n");
  // "\0alice\0secret"
  std::string out = c.send("b AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n");
  EXPECT_EQ(out.rfind("b OK [CAPABILITY IMAP4rev1", 0), 0u) << out;
  Client d(store);
  EXPECT_EQ(d.send("c AUTHENTICATE PLAIN\r\n"), "+ \r\n");
  EXPECT_TRUE(has(d.send("AGFsaWNlAHNlY3JldA==\r\n"), "c OK [CAPABILITY"));
  Client e(store);
  e.send("c AUTHENTICATE PLAIN\r\n");
  EXPECT_EQ(e.send("*\r\n"), "c BAD AUTHENTICATE cancelled\r\n");
  EXPECT_EQ(e.send("d AUTHENTICATE CRAM-MD5\r\n"), "d NO [CANNOT] unsupported authentication mechanism\r\n");
}

// RFC 3501 6.3.8 LIST, RFC 6154 special-use, RFC 3348 CHILDREN, RFC 5258/5819.
TEST_F(SessionTest, ListMailboxes) {
  Client c(store);
  c.login();
  EXPECT_EQ(c.send("a LIST \"\" \"\"\r\n"), "* LIST (\\Noselect) \"/\" \"\"\r\na OK LIST completed\r\n");
  EXPECT_EQ(c.send("b CREATE Work/2024\r\n"), "b OK CREATE completed\r\n");
  std::string out = c.send("c LIST \"\" %\r\n");
  EXPECT_TRUE(has(out, "* LIST (\\HasNoChildren) \"/\" INBOX\r\n")) << out;
  EXPECT_TRUE(has(out, "* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n")) << out;
  EXPECT_TRUE(has(out, "* LIST (\\Noselect \\HasChildren) \"/\" Work\r\n")) << out;
  EXPECT_FALSE(has(out, "Work/2024"));
  out = c.send("d LIST (SPECIAL-USE) \"\" * RETURN (STATUS (MESSAGES UIDNEXT))\r\n");
  EXPECT_TRUE(has(out, "* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n* STATUS Trash (MESSAGES 0 UIDNEXT 1)\r\n")) << out;
  EXPECT_FALSE(has(out, "INBOX"));
  // Modified UTF-7 names (RFC 3501 5.1.3).
  EXPECT_EQ(c.send("e CREATE \"Caf&AOk-\"\r\n"), "e OK CREATE completed\r\n");
  EXPECT_TRUE(has(c.send("f LIST \"\" Caf*\r\n"), "\"/\" Caf&AOk-\r\n"));
  EXPECT_EQ(c.send("g CREATE \"bad&name\"\r\n"), "g BAD mailbox name is not valid modified UTF-7\r\n");
  EXPECT_EQ(c.send("h CREATE Sent\r\n"), "h NO [ALREADYEXISTS] CREATE: mailbox exists already\r\n");
  // RFC 5258 3.5 / 5 example 6: RECURSIVEMATCH reports the parents of
  // subscribed mailboxes with CHILDINFO; without it they are not listed.
  c.send("i CREATE Lists/Unsub\r\nj UNSUBSCRIBE Lists/Unsub\r\nk UNSUBSCRIBE Work/2024\r\n");
  c.send("l CREATE Deep/A/B\r\nm UNSUBSCRIBE Deep/A\r\n");
  out = c.send("n LIST (SUBSCRIBED RECURSIVEMATCH) \"\" %\r\n");
  EXPECT_TRUE(has(out, "* LIST (\\NonExistent \\HasChildren) \"/\" Deep (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n")) << out;
  EXPECT_TRUE(has(out, "* LIST (\\HasNoChildren \\Subscribed) \"/\" INBOX\r\n")) << out;
  EXPECT_FALSE(has(out, "Lists")) << out;
  EXPECT_FALSE(has(out, "Work")) << out;
  out = c.send("o LIST (SUBSCRIBED) \"\" %\r\n");
  EXPECT_FALSE(has(out, "Deep")) << out;
  EXPECT_FALSE(has(out, "Lists")) << out;
  EXPECT_EQ(c.send("p LIST (RECURSIVEMATCH) \"\" %\r\n").substr(0, 6), "p BAD ");
}

// RFC 3501 6.3.5 RENAME (INBOX moves its messages), 6.3.4 DELETE, 6.3.6/6.3.9 LSUB.
TEST_F(SessionTest, RenameDeleteSubscribe) {
  Client c(store);
  c.login();
  c.send(appendCmd("a", "INBOX", kMessage));
  EXPECT_EQ(c.send("b RENAME INBOX Old\r\n"), "b OK RENAME completed\r\n");
  EXPECT_TRUE(has(c.send("c STATUS INBOX (MESSAGES)\r\n"), "* STATUS INBOX (MESSAGES 0)"));
  EXPECT_TRUE(has(c.send("d STATUS Old (MESSAGES)\r\n"), "* STATUS Old (MESSAGES 1)"));
  EXPECT_EQ(c.send("e DELETE INBOX\r\n"), "e NO [CANNOT] INBOX cannot be deleted\r\n");
  EXPECT_EQ(c.send("f DELETE Nope\r\n"), "f NO [NONEXISTENT] DELETE: no such mailbox\r\n");
  EXPECT_EQ(c.send("g UNSUBSCRIBE Old\r\n"), "g OK UNSUBSCRIBE completed\r\n");
  std::string lsub = c.send("h LSUB \"\" *\r\n");
  EXPECT_FALSE(has(lsub, "Old"));
  EXPECT_TRUE(has(lsub, "* LSUB () \"/\" INBOX\r\n"));
  EXPECT_EQ(c.send("i DELETE Old\r\n"), "i OK DELETE completed\r\n");
}

// RFC 3501 6.3.9: LSUB "%" answers for a subscribed "foo/bar" whose parent
// "foo" is not subscribed with "foo" marked \Noselect, not with "foo/bar".
TEST_F(SessionTest, LsubListsUnsubscribedParentsAsNoselect) {
  Client c(store);
  c.login();
  c.send("a CREATE Top/Mid/Leaf\r\n");
  std::string out = c.send("b LSUB \"\" %\r\n");
  EXPECT_TRUE(has(out, "* LSUB (\\Noselect) \"/\" Top\r\n")) << out;
  EXPECT_TRUE(has(out, "* LSUB () \"/\" INBOX\r\n")) << out;
  EXPECT_FALSE(has(out, "Top/")) << out;
  EXPECT_EQ(c.send("c LSUB \"\" Top/%\r\n"), "* LSUB (\\Noselect) \"/\" Top/Mid\r\nc OK LSUB completed\r\n");
  EXPECT_EQ(c.send("d LSUB Top/ *\r\n"), "* LSUB () \"/\" Top/Mid/Leaf\r\nd OK LSUB completed\r\n");
  // Once "Top" exists and is subscribed it is listed as itself.
  c.send("e CREATE Top\r\nf SUBSCRIBE Top\r\n");
  EXPECT_EQ(c.send("g LSUB \"\" To%\r\n"), "* LSUB () \"/\" Top\r\ng OK LSUB completed\r\n");
  // Nothing subscribed below: no phantom parent.
  c.send("h UNSUBSCRIBE Top/Mid/Leaf\r\ni UNSUBSCRIBE Top\r\n");
  EXPECT_EQ(c.send("j LSUB \"\" To%\r\n"), "j OK LSUB completed\r\n");
}

// RFC 5182 SEARCHRES: SEARCH RETURN (SAVE) keeps the result as "$" for
// FETCH/STORE/COPY/MOVE/SEARCH/UID EXPUNGE (2.1); SAVE alone sends no ESEARCH
// (2.1); with MIN/MAX but no ALL/COUNT only those are saved (2.4); expunged
// messages leave "$"; SELECT and a failed SEARCH SAVE empty it.
TEST_F(SessionTest, SearchResRfc5182) {
  Client c(store);
  c.login();
  EXPECT_TRUE(has(c.send("a CAPABILITY\r\n"), " SEARCHRES "));
  for (int i = 0; i < 5; ++i) c.send(appendCmd("x", "INBOX", "Subject: m\r\n\r\nbody\r\n", i % 2 ? "\\Flagged" : ""));
  c.send("b SELECT INBOX\r\n");
  EXPECT_EQ(c.send("c FETCH $ (FLAGS)\r\n"), "c OK FETCH completed\r\n") << "empty before any SAVE";
  EXPECT_EQ(c.send("d SEARCH RETURN (SAVE) FLAGGED\r\n"), "d OK SEARCH completed\r\n");
  EXPECT_EQ(c.send("e FETCH $ (UID FLAGS)\r\n"),
            "* 2 FETCH (UID 2 FLAGS (\\Flagged))\r\n* 4 FETCH (UID 4 FLAGS (\\Flagged))\r\ne OK FETCH completed\r\n");
  EXPECT_EQ(c.send("f UID SEARCH $ 3:5\r\n"), "* SEARCH 4\r\nf OK UID SEARCH completed\r\n");
  EXPECT_EQ(c.send("g UID SEARCH RETURN (SAVE MAX) FLAGGED\r\n"), "* ESEARCH (TAG \"g\") UID MAX 4\r\ng OK UID SEARCH completed\r\n");
  EXPECT_EQ(c.send("h UID FETCH $ (FLAGS)\r\n"), "* 4 FETCH (UID 4 FLAGS (\\Flagged))\r\nh OK UID FETCH completed\r\n");
  EXPECT_EQ(c.send("i SEARCH RETURN (SAVE ALL) NOT FLAGGED\r\n"), "* ESEARCH (TAG \"i\") ALL 1,3,5\r\ni OK SEARCH completed\r\n");
  EXPECT_TRUE(has(c.send("j COPY $ Trash\r\n"), "j OK [COPYUID "));
  EXPECT_TRUE(has(c.send("k STATUS Trash (MESSAGES)\r\n"), "(MESSAGES 3)"));
  c.send("l STORE $ +FLAGS.SILENT (\\Deleted)\r\n");
  EXPECT_EQ(c.send("m UID EXPUNGE $\r\n"), "* 5 EXPUNGE\r\n* 3 EXPUNGE\r\n* 1 EXPUNGE\r\nm OK UID EXPUNGE completed\r\n");
  EXPECT_EQ(c.send("n FETCH $ (UID)\r\n"), "n OK FETCH completed\r\n") << "expunged messages left $";
  c.send("o SEARCH RETURN (SAVE) ALL\r\n");
  EXPECT_EQ(c.send("p SEARCH CHARSET KOI8-R RETURN (SAVE) ALL\r\n").substr(0, 5), "p BAD") << "RETURN goes first";
  EXPECT_EQ(c.send("q SEARCH RETURN (SAVE) CHARSET KOI8-R ALL\r\n"), "q NO [BADCHARSET (UTF-8 US-ASCII)] unsupported charset\r\n");
  EXPECT_EQ(c.send("r FETCH $ (UID)\r\n"), "r OK FETCH completed\r\n") << "a failed SAVE empties $";
  c.send("s SEARCH RETURN (SAVE) ALL\r\n");
  EXPECT_TRUE(has(c.send("t MOVE $ Junk\r\n"), "t OK"));
  EXPECT_TRUE(has(c.send("u STATUS Junk (MESSAGES)\r\n"), "(MESSAGES 2)"));
  c.send("v SEARCH RETURN (SAVE) ALL\r\n");
  c.send("w SELECT Trash\r\n");
  EXPECT_EQ(c.send("x FETCH $ (UID)\r\n"), "x OK FETCH completed\r\n") << "SELECT resets $";
}

// RFC 9051 (IMAP4rev2) after ENABLE IMAP4rev2 (6.3.1): SELECT sends LIST
// and no RECENT/UNSEEN (6.3.2) and OK [CLOSED] when it leaves a mailbox;
// SEARCH answers ESEARCH (6.4.4, 7.3.4); LIST marks path-only parents
// \NonExistent (7.3.1); names and quoted strings are UTF-8 (5.1);
// unsolicited FETCH carries the UID. A session that did not enable it stays
// IMAP4rev1.
TEST_F(SessionTest, Imap4rev2Rfc9051) {
  Client c(store), other(store), rev1(store);
  for (Client* x : {&c, &other, &rev1}) x->login();
  EXPECT_TRUE(has(c.send("a CAPABILITY\r\n"), "* CAPABILITY IMAP4rev1 IMAP4rev2 "));
  for (int i = 0; i < 2; ++i) c.send(appendCmd("x", "INBOX", kMessage, i ? "" : "\\Seen"));
  c.send("y CREATE Work/Sub\r\n");
  EXPECT_EQ(c.send("b ENABLE IMAP4rev2\r\n"), "* ENABLED IMAP4rev2\r\nb OK ENABLE completed\r\n");
  EXPECT_EQ(c.send("b2 ENABLE IMAP4REV2\r\n"), "* ENABLED\r\nb2 OK ENABLE completed\r\n");
  std::string sel = c.send("c SELECT INBOX\r\n");
  EXPECT_TRUE(has(sel, "* 2 EXISTS\r\n* LIST (\\HasNoChildren) \"/\" INBOX\r\n")) << sel;
  EXPECT_FALSE(has(sel, "RECENT")) << sel;
  EXPECT_FALSE(has(sel, "UNSEEN")) << sel;
  EXPECT_FALSE(has(sel, "CLOSED")) << sel;
  EXPECT_EQ(c.send("d SEARCH ALL\r\n"), "* ESEARCH (TAG \"d\") ALL 1:2\r\nd OK SEARCH completed\r\n");
  EXPECT_EQ(c.send("e UID SEARCH UNSEEN\r\n"), "* ESEARCH (TAG \"e\") UID ALL 2\r\ne OK UID SEARCH completed\r\n");
  EXPECT_EQ(c.send("f SEARCH SUBJECT nowhere\r\n"), "* ESEARCH (TAG \"f\")\r\nf OK SEARCH completed\r\n");
  EXPECT_EQ(c.send("g SEARCH RETURN (COUNT) ALL\r\n"), "* ESEARCH (TAG \"g\") COUNT 2\r\ng OK SEARCH completed\r\n");
  other.send("o1 SELECT INBOX\r\no2 STORE 1 +FLAGS (\\Flagged)\r\n");
  EXPECT_EQ(c.send("h NOOP\r\n"), "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Seen))\r\nh OK NOOP completed\r\n");
  sel = c.send("i EXAMINE Sent\r\n");
  EXPECT_EQ(sel.rfind("* OK [CLOSED] ", 0), 0u) << sel;
  EXPECT_TRUE(has(sel, "* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n")) << sel;
  std::string list = c.send("j LIST \"\" %\r\n");
  EXPECT_TRUE(has(list, "* LIST (\\NonExistent \\HasChildren) \"/\" Work\r\n")) << list;
  EXPECT_EQ(c.send("k CREATE \"Caf\xc3\xa9\"\r\n"), "k OK CREATE completed\r\n");
  EXPECT_TRUE(has(c.send("l LIST \"\" Caf*\r\n"), "* LIST (\\HasNoChildren) \"/\" \"Caf\xc3\xa9\"\r\n"));
  // RFC 9051 6.3.6: RENAME tells the new name with OLDNAME.
  EXPECT_EQ(c.send("l2 RENAME \"Caf\xc3\xa9\" \"Th\xc3\xa9\"\r\n"),
            "* LIST (\\HasNoChildren) \"/\" \"Th\xc3\xa9\" (\"OLDNAME\" (\"Caf\xc3\xa9\"))\r\nl2 OK RENAME completed\r\n");
  EXPECT_EQ(c.send("l3 RENAME Work/Sub Job\r\n"),
            "* LIST (\\HasNoChildren) \"/\" Job (\"OLDNAME\" (Work/Sub))\r\nl3 OK RENAME completed\r\n");
  EXPECT_EQ(rev1.send("l4 RENAME Job Work/Sub\r\n"), "l4 OK RENAME completed\r\n") << "IMAP4rev1: no LIST";
  // The IMAP4rev1 session is unchanged.
  sel = rev1.send("m SELECT INBOX\r\n");
  EXPECT_TRUE(has(sel, "* 0 RECENT\r\n")) << sel;
  EXPECT_FALSE(has(sel, "* LIST")) << sel;
  EXPECT_EQ(rev1.send("n SEARCH ALL\r\n"), "* SEARCH 1 2\r\nn OK SEARCH completed\r\n");
  EXPECT_TRUE(has(rev1.send("p LIST \"\" %\r\n"), "* LIST (\\Noselect \\HasChildren) \"/\" Work\r\n"));
  EXPECT_TRUE(has(rev1.send("q LIST \"\" Th*\r\n"), "\"/\" Th&AOk-\r\n"));
}

// RFC 6855 3: after ENABLE UTF8=ACCEPT, mailbox names are UTF-8 on the wire
// both ways (never modified UTF-7) and quoted strings may carry UTF-8;
// RFC 6855 4: APPEND takes UTF8 (literal8). RFC 5161 3.1: ENABLED lists only
// what this command newly enabled.
TEST_F(SessionTest, Utf8AcceptRfc6855) {
  Client c(store), other(store);
  c.login();
  other.login();
  EXPECT_TRUE(has(c.send("a CAPABILITY\r\n"), " UTF8=ACCEPT"));
  EXPECT_EQ(c.send("b CREATE \"Caf&AOk-\"\r\n"), "b OK CREATE completed\r\n");
  EXPECT_EQ(c.send("c CREATE \"Caf\xc3\xa9\"\r\n").substr(0, 6), "c BAD ") << "8-bit quoted before ENABLE";
  EXPECT_EQ(c.send("d ENABLE UTF8=ACCEPT\r\n"), "* ENABLED UTF8=ACCEPT\r\nd OK ENABLE completed\r\n");
  EXPECT_EQ(c.send("d2 ENABLE UTF8=ACCEPT\r\n"), "* ENABLED\r\nd2 OK ENABLE completed\r\n");
  // The mailbox created as "Caf&AOk-" is now named in UTF-8.
  EXPECT_EQ(c.send("e LIST \"\" Caf*\r\n"), "* LIST (\\HasNoChildren) \"/\" \"Caf\xc3\xa9\"\r\ne OK LIST completed\r\n");
  EXPECT_EQ(c.send("f CREATE \"Caf\xc3\xa9\"\r\n"), "f NO [ALREADYEXISTS] CREATE: mailbox exists already\r\n");
  // "&" is an ordinary character in UTF-8 names.
  EXPECT_EQ(c.send("g CREATE \"R&D/\xe6\x97\xa5\"\r\n"), "g OK CREATE completed\r\n");
  std::string out = c.send("h LIST \"\" R*\r\n");
  EXPECT_TRUE(has(out, "* LIST (\\Noselect \\HasChildren) \"/\" R&D\r\n")) << out;
  EXPECT_TRUE(has(out, "* LIST (\\HasNoChildren) \"/\" \"R&D/\xe6\x97\xa5\"\r\n")) << out;
  EXPECT_EQ(c.send("i LSUB \"\" \"R&D/%\"\r\n"), "* LSUB () \"/\" \"R&D/\xe6\x97\xa5\"\r\ni OK LSUB completed\r\n");
  std::string msg = "Subject: \xc3\xa9t\xc3\xa9\r\n\r\nbody\r\n";
  EXPECT_TRUE(has(c.send("j APPEND \"Caf\xc3\xa9\" UTF8 (~{" + std::to_string(msg.size()) + "+}\r\n" + msg + ")\r\n"),
                  " 1] APPEND completed\r\n"));
  EXPECT_EQ(c.send("k STATUS \"Caf\xc3\xa9\" (MESSAGES)\r\n"),
            "* STATUS \"Caf\xc3\xa9\" (MESSAGES 1)\r\nk OK STATUS completed\r\n");
  EXPECT_TRUE(has(c.send("l SELECT \"Caf\xc3\xa9\"\r\n"), "l OK [READ-WRITE]"));
  EXPECT_EQ(c.send("m FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]\r\n"),
            "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: \xc3\xa9t\xc3\xa9\r\n\r\n)\r\nm OK FETCH completed\r\n");
  EXPECT_EQ(c.send("n CREATE {2}\r\n"), "+ Ready for literal data\r\n");
  EXPECT_EQ(c.send("\xff\xfe\r\n"), "n BAD mailbox name is not valid UTF-8\r\n");
  // Another session that did not enable it still sees modified UTF-7.
  EXPECT_TRUE(has(other.send("o LIST \"\" *\r\n"), "\"/\" Caf&AOk-\r\n"));
  EXPECT_TRUE(has(other.send("p LIST \"\" R*\r\n"), "\"/\" R&-D/&ZeU-\r\n"));
}

// RFC 3501 6.3.11 APPEND, RFC 4315 APPENDUID, RFC 3502 MULTIAPPEND, 7.5 continuation.
TEST_F(SessionTest, AppendSyncNonSyncAndMulti) {
  Client c(store);
  c.login();
  std::string m = "Subject: x\r\n\r\nbody\r\n";
  EXPECT_EQ(c.send("a APPEND INBOX {" + std::to_string(m.size()) + "}\r\n"), "+ Ready for literal data\r\n");
  EXPECT_EQ(c.send(m + "\r\n"), "a OK [APPENDUID 1000 1] APPEND completed\r\n");
  std::string multi = "b APPEND INBOX (\\Seen) {" + std::to_string(m.size()) + "+}\r\n" + m + " (\\Flagged $Work) {" +
                      std::to_string(m.size()) + "+}\r\n" + m + "\r\n";
  EXPECT_EQ(c.send(multi), "b OK [APPENDUID 1000 2:3] APPEND completed\r\n");
  EXPECT_EQ(c.send(appendCmd("c", "Nope", m)), "c NO [TRYCREATE] no such mailbox\r\n");
  EXPECT_EQ(c.send(appendCmd("d", "INBOX", m, "\\Bogus")), "d BAD invalid flag in APPEND\r\n");
}

// RFC 3501 6.3.5: renaming INBOX moves its messages out; every session with
// INBOX selected or examined, the renaming one included, sees them expunged.
TEST_F(SessionTest, RenameInboxWhileSelected) {
  Client a(store), b(store);
  for (Client* c : {&a, &b}) c->login();
  for (int i = 0; i < 2; ++i) a.send(appendCmd("x", "INBOX", kMessage));
  a.send("s SELECT INBOX\r\n");
  b.send("s EXAMINE INBOX\r\n");
  EXPECT_EQ(a.send("r RENAME INBOX Old\r\n"), "* 2 EXPUNGE\r\n* 1 EXPUNGE\r\nr OK RENAME completed\r\n");
  EXPECT_EQ(b.send("n NOOP\r\n"), "* 2 EXPUNGE\r\n* 1 EXPUNGE\r\nn OK NOOP completed\r\n");
  b.send(appendCmd("y", "INBOX", kMessage));
  EXPECT_EQ(a.send("n NOOP\r\n"), "* 1 EXISTS\r\nn OK NOOP completed\r\n");
  EXPECT_EQ(a.send("f FETCH 1 (UID)\r\n"), "* 1 FETCH (UID 3)\r\nf OK FETCH completed\r\n");
  EXPECT_TRUE(has(a.send("g STATUS Old (MESSAGES)\r\n"), "* STATUS Old (MESSAGES 2)"));
}

// RFC 3501 6.3.1 SELECT responses, 6.3.2 EXAMINE READ-ONLY, 6.4.2 CLOSE, RFC 3691 UNSELECT.
TEST_F(SessionTest, SelectExamineClose) {
  Client c(store);
  c.login();
  c.send(appendCmd("a", "INBOX", kMessage, "\\Seen"));
  c.send(appendCmd("a", "INBOX", kMessage, "\\Deleted $Work"));
  std::string out = c.send("b SELECT INBOX\r\n");
  EXPECT_EQ(out,
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)\r\n"
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] flags permitted\r\n"
            "* 2 EXISTS\r\n* 0 RECENT\r\n* OK [UNSEEN 2] first unseen\r\n* OK [UIDVALIDITY 1000] UIDs valid\r\n"
            "* OK [UIDNEXT 3] predicted next UID\r\n* OK [HIGHESTMODSEQ 3] highest\r\n"
            "b OK [READ-WRITE] SELECT completed\r\n");
  EXPECT_EQ(c.send("c UNSELECT\r\n"), "c OK UNSELECT completed\r\n");
  out = c.send("d EXAMINE INBOX\r\n");
  EXPECT_TRUE(has(out, "d OK [READ-ONLY] EXAMINE completed")) << out;
  EXPECT_EQ(c.send("e STORE 1 +FLAGS (\\Seen)\r\n"), "e NO [READ-ONLY] mailbox is read-only\r\n");
  EXPECT_EQ(c.send("f CLOSE\r\n"), "f OK CLOSE completed\r\n");  // read-only: no expunge
  c.send("g SELECT INBOX\r\n");
  EXPECT_EQ(c.send("h CLOSE\r\n"), "h OK CLOSE completed\r\n");
  EXPECT_TRUE(has(c.send("i STATUS INBOX (MESSAGES)\r\n"), "(MESSAGES 1)"));
  EXPECT_EQ(c.send("j FETCH 1 FLAGS\r\n"), "j BAD FETCH needs a selected mailbox\r\n");
}

// RFC 3501 6.4.5 FETCH: items, sections, partials, implicit \Seen (BODY vs BODY.PEEK).
TEST_F(SessionTest, FetchItems) {
  Client c(store);
  c.login();
  c.send(appendCmd("a", "INBOX", kMessage));
  c.send("b SELECT INBOX\r\n");
  std::string out = c.send("c FETCH 1 (FLAGS RFC822.SIZE UID INTERNALDATE)\r\n");
  EXPECT_EQ(out, "* 1 FETCH (UID 1 FLAGS () RFC822.SIZE " + std::to_string(std::string(kMessage).size()) +
                     " INTERNALDATE \"14-Nov-2023 22:13:20 +0000\")\r\nc OK FETCH completed\r\n");
  out = c.send("d FETCH 1 (ENVELOPE)\r\n");
  EXPECT_TRUE(has(out, "ENVELOPE (\"Mon, 7 Feb 1994 21:52:25 -0800\" \"hello world\" ((\"Ann\" NIL \"ann\" \"example.org\"))")) << out;
  out = c.send("e FETCH 1 BODYSTRUCTURE\r\n");
  EXPECT_TRUE(has(out, "BODYSTRUCTURE ((\"text\" \"plain\"")) << out;
  out = c.send("f FETCH 1 (BODY.PEEK[1] BODY.PEEK[2]<1.3> BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n");
  EXPECT_EQ(out,
            "* 1 FETCH (BODY[1] {10}\r\nfirst part BODY[2]<1> {3}\r\np>s BODY[HEADER.FIELDS (SUBJECT)] {24}\r\n"
            "Subject: hello world\r\n\r\n)\r\nf OK FETCH completed\r\n");
  out = c.send("g FETCH 1 FLAGS\r\n");
  EXPECT_TRUE(has(out, "FLAGS ()"));  // PEEK did not set \Seen
  out = c.send("h FETCH 1 BODY[1.MIME]\r\n");
  EXPECT_EQ(out, "* 1 FETCH (BODY[1.MIME] {28}\r\nContent-Type: text/plain\r\n\r\n FLAGS (\\Seen))\r\nh OK FETCH completed\r\n");
  out = c.send("i UID FETCH 1:* (BODY[9])\r\n");
  EXPECT_EQ(out, "* 1 FETCH (UID 1 BODY[9] \"\")\r\ni OK UID FETCH completed\r\n");
  EXPECT_EQ(c.send("j FETCH 2 FLAGS\r\n"), "j BAD invalid message sequence number\r\n");
  EXPECT_EQ(c.send("k UID FETCH 5:9 FLAGS\r\n"), "k OK UID FETCH completed\r\n");
}

// RFC 3501 6.4.6 STORE, RFC 7162 3.1.3 UNCHANGEDSINCE / MODIFIED.
TEST_F(SessionTest, StoreFlags) {
  Client c(store);
  c.login();
  c.send(appendCmd("a", "INBOX", kMessage));
  c.send(appendCmd("a", "INBOX", kMessage));
  c.send("b SELECT INBOX\r\n");
  EXPECT_EQ(c.send("c STORE 1:2 +FLAGS (\\Flagged $Todo)\r\n"),
            "* 1 FETCH (FLAGS (\\Flagged $Todo))\r\n* 2 FETCH (FLAGS (\\Flagged $Todo))\r\nc OK STORE completed\r\n");
  EXPECT_EQ(c.send("d UID STORE 2 -FLAGS.SILENT ($Todo)\r\n"), "d OK UID STORE completed\r\n");
  EXPECT_EQ(c.send("e STORE 2 FLAGS (\\Seen)\r\n"), "* 2 FETCH (FLAGS (\\Seen))\r\ne OK STORE completed\r\n");
  EXPECT_EQ(c.send("f STORE 1 (UNCHANGEDSINCE 1) +FLAGS (\\Deleted)\r\n"), "f OK [MODIFIED 1] conditional STORE failed for some messages\r\n");
  EXPECT_EQ(c.send("g STORE 1 +FLAGS (\\Bogus)\r\n"), "g BAD invalid flag\r\n");
}

// RFC 3501 6.4.4 SEARCH (keys, OR/NOT, nesting, CHARSET), RFC 4731 ESEARCH.
TEST_F(SessionTest, Search) {
  Client c(store);
  c.login();
  c.send(appendCmd("a", "INBOX", kMessage, "\\Seen"));
  c.send(appendCmd("a", "INBOX", "From: zed@example.net\r\nSubject: other\r\n\r\nnothing here\r\n"));
  c.send("b SELECT INBOX\r\n");
  EXPECT_EQ(c.send("c SEARCH SUBJECT hello\r\n"), "* SEARCH 1\r\nc OK SEARCH completed\r\n");
  EXPECT_EQ(c.send("d SEARCH OR FROM zed (BODY \"first PART\")\r\n"), "* SEARCH 1 2\r\nd OK SEARCH completed\r\n");
  EXPECT_EQ(c.send("e UID SEARCH NOT SEEN\r\n"), "* SEARCH 2\r\ne OK UID SEARCH completed\r\n");
  EXPECT_EQ(c.send("f SEARCH CHARSET UTF-8 HEADER Message-ID m1@\r\n"), "* SEARCH 1\r\nf OK SEARCH completed\r\n");
  EXPECT_EQ(c.send("g SEARCH CHARSET KOI8-R ALL\r\n"), "g NO [BADCHARSET (UTF-8 US-ASCII)] unsupported charset\r\n");
  EXPECT_EQ(c.send("h SEARCH RETURN (MIN COUNT ALL) ALL\r\n"), "* ESEARCH (TAG \"h\") MIN 1 COUNT 2 ALL 1:2\r\nh OK SEARCH completed\r\n");
  EXPECT_EQ(c.send("i SEARCH TEXT nothing 2 SENTBEFORE 1-Jan-2000\r\n"), "* SEARCH\r\ni OK SEARCH completed\r\n");
  EXPECT_EQ(c.send("j SEARCH LARGER 100 UNDELETED\r\n"), "* SEARCH 1\r\nj OK SEARCH completed\r\n");
  EXPECT_EQ(c.send("k SEARCH MODSEQ 3\r\n"), "* SEARCH 2 (MODSEQ 3)\r\nk OK SEARCH completed\r\n");
}

// RFC 3501 6.4.4 / 6.4.5 + RFC 2047 / 2045: SEARCH CHARSET UTF-8 with 8-bit
// literals matches decoded, case-folded header and body text (encoded words,
// quoted-printable); NOT/OR nest.
TEST_F(SessionTest, SearchUtf8Text) {
  Client c(store);
  c.login();
  c.send(appendCmd("a", "INBOX",
                   "Subject: =?UTF-8?Q?Caf=C3=A9_cr=C3=A8me?=\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   "Content-Transfer-Encoding: quoted-printable\r\n\r\nna=C3=AFve body\r\n"));
  c.send(appendCmd("a", "INBOX", "Subject: plain\r\n\r\nnaive body\r\n", "\\Flagged"));
  c.send("s SELECT INBOX\r\n");
  EXPECT_EQ(c.send("a SEARCH CHARSET UTF-8 SUBJECT {5+}\r\ncaf\xc3\xa9\r\n"), "* SEARCH 1\r\na OK SEARCH completed\r\n");
  EXPECT_EQ(c.send("b SEARCH CHARSET UTF-8 BODY {6+}\r\nNA\xc3\x8fVE\r\n"), "* SEARCH 1\r\nb OK SEARCH completed\r\n");
  EXPECT_EQ(c.send("c SEARCH CHARSET UTF-8 TEXT {6+}\r\nCR\xc3\x88ME\r\n"), "* SEARCH 1\r\nc OK SEARCH completed\r\n");
  EXPECT_EQ(c.send("d SEARCH CHARSET UTF-8 NOT BODY {6+}\r\nna\xc3\xafve\r\n"), "* SEARCH 2\r\nd OK SEARCH completed\r\n");
  // One OR of a group and a NOT: message 1 matches through NOT ("naïve" is not "naive").
  EXPECT_EQ(c.send("e SEARCH OR (SUBJECT nothing FLAGGED) NOT (OR BODY naive SUBJECT plain)\r\n"),
            "* SEARCH 1\r\ne OK SEARCH completed\r\n");
  EXPECT_EQ(c.send("e SEARCH OR (SUBJECT plain FLAGGED) (NOT FLAGGED BODY naive)\r\n"),
            "* SEARCH 2\r\ne OK SEARCH completed\r\n");
  EXPECT_EQ(c.send("f UID SEARCH NOT (NOT (NOT FLAGGED)) 1:*\r\n"), "* SEARCH 1\r\nf OK UID SEARCH completed\r\n");
  EXPECT_EQ(c.send("g SEARCH caf\xc3\xa9\r\n").substr(0, 6), "g BAD ");  // 8-bit outside a literal
  // HEADER: the backend's packed field values (decoded, folded), a value at a time.
  EXPECT_EQ(c.send("h SEARCH CHARSET UTF-8 HEADER subject {6+}\r\nCAF\xc3\x89 \r\n"), "* SEARCH 1\r\nh OK SEARCH completed\r\n");
  EXPECT_EQ(c.send("i SEARCH OR HEADER Subject PLAIN HEADER Content-Transfer-Encoding PRINTABLE\r\n"), "* SEARCH 1 2\r\ni OK SEARCH completed\r\n");
  EXPECT_EQ(c.send("j SEARCH NOT HEADER X-Absent \"\"\r\n"), "* SEARCH 1 2\r\nj OK SEARCH completed\r\n");
  EXPECT_EQ(c.send("k SEARCH HEADER Subject \"\"\r\n"), "* SEARCH 1 2\r\nk OK SEARCH completed\r\n");
}

// RFC 3501 6.4.5: sections of an encapsulated message (part 2 is a
// message/rfc822 whose body is multipart), HEADER.FIELDS.NOT, MIME and
// partials <offset.length> counted within the section.
TEST_F(SessionTest, FetchNestedSectionsWithPartials) {
  Client c(store);
  c.login();
  c.send(appendCmd("a", "INBOX",
                   "From: a@x\r\nSubject: outer\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n"
                   "--o\r\nContent-Type: text/plain\r\n\r\none\r\n"
                   "--o\r\nContent-Type: message/rfc822\r\n\r\n"
                   "From: b@y\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n"
                   "--i\r\nContent-Type: text/plain\r\n\r\ninner text\r\n"
                   "--i\r\nContent-Type: text/html\r\n\r\n<b>x</b>\r\n--i--\r\n--o--\r\n"));
  c.send("s SELECT INBOX\r\n");
  EXPECT_EQ(c.send("a FETCH 1 (BODY.PEEK[2.HEADER.FIELDS.NOT (From Content-Type)] "
                   "BODY.PEEK[2.HEADER.FIELDS.NOT (From Content-Type)]<2.5> BODY.PEEK[2.1.MIME] BODY.PEEK[2.1] "
                   "BODY.PEEK[2.2]<3.3> BODY.PEEK[2.TEXT]<0.4> BODY.PEEK[2.HEADER.FIELDS (SUBJECT)]<100.5>)\r\n"),
            "* 1 FETCH (BODY[2.HEADER.FIELDS.NOT (FROM CONTENT-TYPE)] {18}\r\nSubject: inner\r\n\r\n "
            "BODY[2.HEADER.FIELDS.NOT (FROM CONTENT-TYPE)]<2> {5}\r\nbject "
            "BODY[2.1.MIME] {28}\r\nContent-Type: text/plain\r\n\r\n BODY[2.1] {10}\r\ninner text "
            "BODY[2.2]<3> {3}\r\nx</ BODY[2.TEXT]<0> {4}\r\n--i\r BODY[2.HEADER.FIELDS (SUBJECT)]<100> \"\")\r\n"
            "a OK FETCH completed\r\n");
}

// RFC 4315 COPYUID / UID EXPUNGE, RFC 6851 MOVE, RFC 3501 6.4.3 EXPUNGE.
TEST_F(SessionTest, CopyMoveExpunge) {
  Client c(store);
  c.login();
  for (int i = 0; i < 3; ++i) c.send(appendCmd("a", "INBOX", kMessage));
  c.send("b SELECT INBOX\r\n");
  EXPECT_EQ(c.send("c COPY 1:2 Trash\r\n"), "c OK [COPYUID 1003 1:2 1:2] COPY completed\r\n");
  EXPECT_EQ(c.send("d COPY 1 Nope\r\n"), "d NO [TRYCREATE] no such mailbox\r\n");
  EXPECT_EQ(c.send("e MOVE 2 Archive\r\n"), "* OK [COPYUID 1005 2 1] moved\r\n* 2 EXPUNGE\r\ne OK MOVE completed\r\n");
  c.send("f STORE 1:2 +FLAGS.SILENT (\\Deleted)\r\n");
  EXPECT_EQ(c.send("g UID EXPUNGE 3\r\n"), "* 2 EXPUNGE\r\ng OK UID EXPUNGE completed\r\n");
  EXPECT_EQ(c.send("h EXPUNGE\r\n"), "* 1 EXPUNGE\r\nh OK EXPUNGE completed\r\n");
  EXPECT_EQ(c.send("i COPY 1 Trash\r\n"), "i BAD invalid message sequence number\r\n");
}

// RFC 3501 7.4.1 / 5.5: another session's changes reach us only where allowed;
// never an EXPUNGE during FETCH/STORE/SEARCH by sequence number. RFC 2177 IDLE.
TEST_F(SessionTest, ConcurrentSessionsSeeUpdates) {
  Client a(store), b(store);
  a.login();
  b.login();
  a.send(appendCmd("x", "INBOX", kMessage));
  a.send(appendCmd("x", "INBOX", kMessage));
  a.send("s SELECT INBOX\r\n");
  b.send("s SELECT INBOX\r\n");
  b.send(appendCmd("t", "INBOX", kMessage));
  EXPECT_EQ(a.send("n NOOP\r\n"), "* 3 EXISTS\r\nn OK NOOP completed\r\n");
  b.send("u STORE 1 +FLAGS (\\Deleted)\r\n");
  b.send("v EXPUNGE\r\n");
  b.send("w STORE 2 +FLAGS (\\Flagged)\r\n");
  // FETCH by sequence number: FETCH FLAGS may come, EXPUNGE must wait.
  std::string out = a.send("f FETCH 2 UID\r\n");
  EXPECT_EQ(out, "* 2 FETCH (UID 2)\r\n* 1 FETCH (FLAGS (\\Deleted))\r\n* 3 FETCH (FLAGS (\\Flagged))\r\nf OK FETCH completed\r\n");
  EXPECT_EQ(a.send("g NOOP\r\n"), "* 1 EXPUNGE\r\ng OK NOOP completed\r\n");
  // IDLE: the update goes out as soon as it happens.
  EXPECT_EQ(a.send("i IDLE\r\n"), "+ idling\r\n");
  b.send(appendCmd("t", "INBOX", kMessage));
  EXPECT_EQ(a.session.takeOutput(), "* 3 EXISTS\r\n");
  EXPECT_EQ(a.send("DONE\r\n"), "i OK IDLE terminated\r\n");
}

// RFC 7162 3.2.5 SELECT (QRESYNC ...), 3.2.10 VANISHED, RFC 5161 ENABLE.
TEST_F(SessionTest, CondstoreQresync) {
  Client c(store);
  c.login();
  for (int i = 0; i < 3; ++i) c.send(appendCmd("a", "INBOX", kMessage));
  EXPECT_EQ(c.send("e ENABLE QRESYNC\r\n"), "* ENABLED CONDSTORE QRESYNC\r\ne OK ENABLE completed\r\n");
  c.send("s SELECT INBOX\r\n");
  c.send("t STORE 1 +FLAGS.SILENT (\\Deleted)\r\n");
  EXPECT_EQ(c.send("x EXPUNGE\r\n"), "* VANISHED 1\r\nx OK EXPUNGE completed\r\n");
  c.send("u UID STORE 3 +FLAGS.SILENT (\\Seen)\r\n");
  std::string out = c.send("q SELECT INBOX (QRESYNC (1000 3 1:3))\r\n");
  EXPECT_TRUE(has(out, "* OK [CLOSED]")) << out;
  EXPECT_TRUE(has(out, "* VANISHED (EARLIER) 1\r\n")) << out;
  EXPECT_TRUE(has(out, "* 2 FETCH (UID 3 FLAGS (\\Seen) MODSEQ (7))\r\n")) << out;
  out = c.send("f UID FETCH 1:* FLAGS (CHANGEDSINCE 5 VANISHED)\r\n");
  EXPECT_EQ(out, "* VANISHED (EARLIER) 1\r\n* 2 FETCH (UID 3 FLAGS (\\Seen) MODSEQ (7))\r\nf OK UID FETCH completed\r\n");
}

// RFC 3501 7.1.5 / 6.1.3 LOGOUT, 2971 ID, 2342 NAMESPACE, BAD for syntax errors.
TEST_F(SessionTest, MiscAndErrors) {
  Client c(store);
  EXPECT_EQ(c.send("a ID NIL\r\n"), "* ID (\"name\" \"mailbridge\")\r\na OK ID completed\r\n");
  c.login();
  EXPECT_EQ(c.send("b NAMESPACE\r\n"), "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\nb OK NAMESPACE completed\r\n");
  EXPECT_EQ(c.send("c FROB\r\n").substr(0, 6), "c BAD ");
  EXPECT_EQ(c.send("d LOGIN a b\r\n"), "d BAD LOGIN is only valid before login\r\n");
  EXPECT_EQ(c.send("e LOGOUT\r\n"), "* BYE logging out\r\ne OK LOGOUT completed\r\n");
  EXPECT_TRUE(c.session.closed());
}

// RFC 3516 BINARY: content decoded; an unknown CTE is NO [UNKNOWN-CTE] (4.3).
TEST_F(SessionTest, BinaryFetch) {
  Client c(store);
  c.login();
  c.send(appendCmd("a", "INBOX",
                   "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                   "aGVsbG8=\r\n--x\r\nContent-Transfer-Encoding: x-weird\r\n\r\nzz\r\n--x--\r\n"));
  c.send("s SELECT INBOX\r\n");
  EXPECT_EQ(c.send("b FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])\r\n"),
            "* 1 FETCH (BINARY[1] {5}\r\nhello BINARY.SIZE[1] 5)\r\nb OK FETCH completed\r\n");
  EXPECT_EQ(c.send("c FETCH 1 BINARY.PEEK[2]\r\n"), "c NO [UNKNOWN-CTE] cannot decode the content transfer encoding\r\n");
}

// RFC 3501 6.3.3/6.3.5: names LIST could not show, and renaming into oneself.
TEST_F(SessionTest, InvalidNames) {
  Client c(store);
  c.login();
  EXPECT_EQ(c.send("a CREATE \"x*y\"\r\n"), "a NO [CANNOT] invalid mailbox name\r\n");
  EXPECT_EQ(c.send("b CREATE Work/\r\n"), "b OK CREATE completed\r\n");  // trailing delimiter dropped
  EXPECT_EQ(c.send("c RENAME Work Work/Sub\r\n"), "c NO [CANNOT] a mailbox cannot become its own child\r\n");
  EXPECT_EQ(c.send("d RENAME Nope Other\r\n"), "d NO [NONEXISTENT] RENAME: no such mailbox\r\n");
}

// RFC 3501 5.4 autologout and server shutdown: BYE, then the host closes.
TEST_F(SessionTest, AutologoutAndShutdown) {
  Client c(store);
  c.login();
  c.session.autologout();
  EXPECT_EQ(c.session.takeOutput(), "* BYE autologout; idle for too long\r\n");
  EXPECT_TRUE(c.session.closed());
  EXPECT_EQ(c.send("a NOOP\r\n"), "");
  Client d(store);
  d.session.shutdown("server shutting down");
  EXPECT_EQ(d.session.takeOutput(), "* BYE server shutting down\r\n");
}

// A whole session fed one byte (and 7 bytes) at a time answers the same.
TEST_F(SessionTest, SplitAtEveryByte) {
  std::string script = "a CAPABILITY\r\nb LOGIN alice secret\r\n" + appendCmd("c", "INBOX", kMessage, "\\Seen") +
                       "d APPEND INBOX {5}\r\nSub\r\n\r\n" + "e SELECT INBOX\r\nf FETCH 1:* (FLAGS BODY.PEEK[] BODYSTRUCTURE)\r\n"
                       "g SEARCH TEXT first\r\nh STORE 1 +FLAGS (\\Answered)\r\ni IDLE\r\nDONE\r\nj LOGOUT\r\n";
  std::string whole, bytewise, chunked;
  {
    MemoryMailStore s1;
    s1.addUser("alice", "secret", 1);
    Client c(s1);
    whole = c.send(script);
  }
  {
    MemoryMailStore s2;
    s2.addUser("alice", "secret", 1);
    Client c(s2);
    bytewise = c.send(script, 1);
  }
  {
    MemoryMailStore s3;
    s3.addUser("alice", "secret", 1);
    Client c(s3);
    chunked = c.send(script, 7);
  }
  EXPECT_TRUE(has(whole, "j OK LOGOUT completed")) << whole;
  EXPECT_EQ(whole, bytewise);
  EXPECT_EQ(whole, chunked);
}

// A FETCH larger than the output high-water mark pauses and resumes (bounded memory).
TEST_F(SessionTest, FetchStreamsInSlices) {
  SessionOptions o;
  o.outputHighWater = 512;
  Client c(store, o);
  c.login();
  for (int i = 0; i < 20; ++i) c.send(appendCmd("a", "INBOX", kMessage));
  c.send("s SELECT INBOX\r\n");
  c.session.feed("f FETCH 1:* BODY.PEEK[]\r\n");
  EXPECT_TRUE(c.session.wantsResume());
  EXPECT_LT(c.session.outputSize(), 512u + 2 * std::string(kMessage).size());
  std::string all = c.session.takeOutput();
  while (c.session.wantsResume()) {
    c.session.resume();
    all += c.session.takeOutput();
  }
  EXPECT_TRUE(has(all, "* 20 FETCH")) << all.size();
  EXPECT_TRUE(has(all, "f OK FETCH completed"));
}


// Bodies fetched on demand (README "bodies"; DESIGN "Errors": Unavailable ->
// NO [UNAVAILABLE]): header items of messages without their body answer at
// once from the stored header block; a FETCH or SEARCH that needs a body stops
// the session (no further input is read) until the host reports the bodies
// stored or failed; other sessions go on meanwhile.
TEST_F(SessionTest, BodiesOnDemandSuspendAndResume) {
  Client c(store), other(store);
  c.login();
  other.login();
  std::string second = "From: zed@example.net\r\nSubject: two\r\nMessage-ID: <m2@example.org>\r\n\r\nsecond body text\r\n";
  c.send(appendCmd("a", "INBOX", kMessage));
  c.send(appendCmd("a", "INBOX", second));
  c.send(appendCmd("a", "INBOX", kMessage));
  c.send("b SELECT INBOX\r\n");
  other.send("b SELECT INBOX\r\n");
  std::string full = c.send("c FETCH 1:3 (FLAGS RFC822.SIZE ENVELOPE RFC822.HEADER BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n");
  auto& msgs = store.accounts[1]["INBOX"].messages;
  auto missing = [&](uint32_t uid, bool m) { msgs[uid].bodyMissing = m; };
  missing(1, true);
  missing(2, true);
  // Header items: the same answer, no body asked for.
  EXPECT_EQ(c.send("c FETCH 1:3 (FLAGS RFC822.SIZE ENVELOPE RFC822.HEADER BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n"), full);
  EXPECT_FALSE(c.session.pendingBodies());
  EXPECT_EQ(c.send("d SEARCH SUBJECT two\r\n"), "* SEARCH 2\r\nd OK SEARCH completed\r\n");

  // BODY[] waits for the two bodies; the NOOP behind it is not read yet.
  EXPECT_EQ(c.send("e FETCH 1:3 (BODY.PEEK[])\r\nf NOOP\r\n"), "");
  ASSERT_TRUE(c.session.pendingBodies());
  EXPECT_EQ(c.session.pendingBodies()->uids, (std::vector<uint32_t>{1, 2}));
  EXPECT_TRUE(c.session.busy());
  // Another session is not held up.
  EXPECT_EQ(other.send("g STORE 3 +FLAGS (\\Flagged)\r\n"), "* 3 FETCH (FLAGS (\\Flagged))\r\ng OK STORE completed\r\n");
  missing(1, false);
  missing(2, false);
  c.session.bodiesDone({});
  std::string out = c.session.takeOutput();
  EXPECT_TRUE(has(out, "* 1 FETCH (BODY[] {" + std::to_string(std::string(kMessage).size()) + "}\r\n" + kMessage + ")")) << out;
  EXPECT_TRUE(has(out, "* 2 FETCH (BODY[] {" + std::to_string(second.size()) + "}\r\n" + second + ")")) << out;
  // The other session's flag change is reported at the end of the FETCH,
  // then the queued NOOP is answered.
  EXPECT_TRUE(has(out, "* 3 FETCH (FLAGS (\\Flagged))\r\ne OK FETCH completed\r\nf OK NOOP completed\r\n")) << out;
  EXPECT_FALSE(c.session.busy());

  // The upstream is unreachable: NO [UNAVAILABLE], no \Seen set, and the
  // session reads input again.
  missing(2, true);
  EXPECT_EQ(c.send("h FETCH 2 (BODY[TEXT])\r\n"), "");
  ASSERT_TRUE(c.session.pendingBodies());
  c.session.bodiesDone(fail(ErrorKind::Unavailable, "the provider is unreachable"));
  EXPECT_EQ(c.session.takeOutput(),
            "h NO [UNAVAILABLE] message bodies could not be fetched from the provider: the provider is unreachable\r\n");
  EXPECT_EQ(c.send("i FETCH 2 FLAGS\r\n"), "* 2 FETCH (FLAGS ())\r\ni OK FETCH completed\r\n");
  // BODYSTRUCTURE needs the body; a host that reports success without
  // storing it gets NO, not a loop.
  EXPECT_EQ(c.send("j FETCH 2 BODYSTRUCTURE\r\n"), "");
  ASSERT_TRUE(c.session.pendingBodies());
  c.session.bodiesDone({});
  EXPECT_EQ(c.session.takeOutput(), "j NO [UNAVAILABLE] 1 message bodies could not be fetched from the provider\r\n");
  // One body that cannot be had (gone upstream) does not hide the others:
  // those that came are answered, the lost one is left out, then NO
  // (RFC 2180 4.1.3), and it is not asked for twice.
  missing(1, true);
  EXPECT_EQ(c.send("j2 FETCH 1:3 (BODY.PEEK[])\r\n"), "");
  ASSERT_TRUE(c.session.pendingBodies());
  EXPECT_EQ(c.session.pendingBodies()->uids, (std::vector<uint32_t>{1, 2}));
  missing(1, false);
  c.session.bodiesDone({});
  out = c.session.takeOutput();
  EXPECT_TRUE(has(out, "* 1 FETCH (BODY[] {")) << out;
  EXPECT_FALSE(has(out, "* 2 FETCH")) << out;
  EXPECT_TRUE(has(out, "* 3 FETCH (BODY[] {")) << out;
  EXPECT_TRUE(has(out, "j2 NO [UNAVAILABLE] 1 message bodies could not be fetched from the provider\r\n")) << out;
  EXPECT_FALSE(c.session.pendingBodies());
  EXPECT_FALSE(c.session.busy());

  // The provider's BODYSTRUCTURE stored with the header answers FETCH
  // BODYSTRUCTURE (and ENVELOPE) without the body; BODY still needs it.
  missing(2, true);
  msgs[2].upstreamBodyStructure = "(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 18 1 NIL NIL NIL NIL)";
  out = c.send("j3 FETCH 2 (ENVELOPE BODYSTRUCTURE)\r\n");
  EXPECT_TRUE(has(out, "* 2 FETCH (ENVELOPE (NIL \"two\" ")) << out;
  EXPECT_TRUE(has(out, " BODYSTRUCTURE " + msgs[2].upstreamBodyStructure + ")\r\nj3 OK FETCH completed\r\n")) << out;
  EXPECT_FALSE(c.session.pendingBodies());
  EXPECT_EQ(c.send("j4 FETCH 2 BODY\r\n"), "");
  ASSERT_TRUE(c.session.pendingBodies());
  c.session.bodiesDone(fail(ErrorKind::Unavailable, "the provider is unreachable"));
  c.session.takeOutput();
  msgs[2].upstreamBodyStructure.clear();

  // SEARCH BODY asks for every missing body of the mailbox, then runs.
  missing(1, true);
  EXPECT_EQ(c.send("k UID SEARCH BODY \"second body\"\r\n"), "");
  ASSERT_TRUE(c.session.pendingBodies());
  EXPECT_EQ(c.session.pendingBodies()->uids, (std::vector<uint32_t>{1, 2}));
  missing(1, false);
  missing(2, false);
  c.session.bodiesDone({});
  EXPECT_EQ(c.session.takeOutput(), "* SEARCH 2\r\nk OK UID SEARCH completed\r\n");
  EXPECT_EQ(c.send("l SEARCH TEXT nothing\r\n"), "* SEARCH\r\nl OK SEARCH completed\r\n");
}

}  // namespace
}  // namespace mb::imap
