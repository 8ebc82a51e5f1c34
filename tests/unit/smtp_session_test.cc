// Transcript tests for the SMTP submission session: each test is a client
// script and the exact server replies, with the RFC section it checks. Every
// split-invariant transcript is also replayed split at every byte offset and
// byte by byte, and must give identical replies and host requests.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "protocols/common/base64.h"
#include "protocols/smtp/server_session.h"

namespace mb::smtp {
namespace {

std::string crlf(std::initializer_list<std::string_view> lines) {
  std::string out;
  for (auto l : lines) {
    out.append(l);
    out += "\r\n";
  }
  return out;
}

std::string plain(std::string_view user, std::string_view pass) {
  std::string raw;
  raw += '\0';
  raw.append(user);
  raw += '\0';
  raw.append(pass);
  return base64Encode(raw);
}

SessionOptions tlsOptions() {
  SessionOptions o;
  o.hostname = "mx.test";
  o.maxMessageSize = 2000;
  o.maxRecipients = 3;
  o.tlsActive = true;  // implicit TLS: AUTH allowed
  return o;
}

SessionOptions plainOptions() {
  SessionOptions o = tlsOptions();
  o.tlsActive = false;
  o.startTlsAvailable = true;
  return o;
}

// A host that records each request and answers it as decided.
struct Host {
  std::function<Verdict(const Request&)> decide = [](const Request&) { return Verdict::Accept; };
  std::vector<std::string> events;
  std::vector<MessageRequest> messages;

  void record(Request& r) {
    if (auto* a = std::get_if<AuthRequest>(&r)) {
      events.push_back("AUTH " + a->mechanism + " " + a->authzid + "/" + a->user + "/" + a->password);
    } else if (auto* s = std::get_if<SenderRequest>(&r)) {
      events.push_back("SENDER " + s->sender.wire() + " user=" + s->user);
    } else if (auto* m = std::get_if<MessageRequest>(&r)) {
      std::string e = "MESSAGE " + m->envelope.from.wire() + " ->";
      for (auto& rc : m->envelope.recipients) e += " " + rc.path.wire();
      events.push_back(e + " " + std::to_string(m->data.size()) + " bytes");
      messages.push_back(*m);
    } else {
      events.push_back("STARTTLS");
    }
  }
};

struct Transcript {
  std::string output;
  std::vector<std::string> events;
  std::vector<MessageRequest> messages;
  bool closed = false;
};

// Synchronous host: answers each request as soon as it appears.
Transcript drive(const SessionOptions& options, const std::vector<std::string>& chunks, Host host = {}) {
  ServerSession s(options);
  Transcript run;
  auto settle = [&] {
    while (Request* r = s.pending()) {
      host.record(*r);
      Verdict v = host.decide(*r);
      EXPECT_TRUE(s.answer(v).has_value());
    }
  };
  for (const auto& c : chunks) {
    s.feed(c);
    settle();
  }
  run.output = s.takeOutput();
  run.events = host.events;
  run.messages = host.messages;
  run.closed = s.closed();
  return run;
}

// The transcript must not depend on how TCP cut the input: replayed split at
// every offset (every 61st for long inputs) and byte by byte, the replies and
// the host requests are the same.
void expectSplitInvariant(const SessionOptions& options, const std::string& input, const Host& host,
                          const Transcript& whole) {
  size_t step = input.size() > 4096 ? 61 : 1;
  for (size_t k = 1; k < input.size(); k += step) {
    Transcript split = drive(options, {input.substr(0, k), input.substr(k)}, host);
    ASSERT_EQ(whole.output, split.output) << "split at " << k;
    ASSERT_EQ(whole.events, split.events) << "split at " << k;
  }
  std::vector<std::string> bytes;
  for (char c : input) bytes.emplace_back(1, c);
  Transcript single = drive(options, bytes, host);
  EXPECT_EQ(whole.output, single.output) << "byte by byte";
  EXPECT_EQ(whole.events, single.events) << "byte by byte";
}

// Runs a transcript in one write, and checks it split everywhere too, except
// after STARTTLS where the split decides what was plaintext (see the STARTTLS
// tests). Hosts must decide from the request alone for this to hold.
Transcript driveWhole(const SessionOptions& options, const std::string& input, Host host = {}) {
  Transcript whole = drive(options, {input}, host);
  if (std::find(whole.events.begin(), whole.events.end(), "STARTTLS") == whole.events.end())
    expectSplitInvariant(options, input, host, whole);
  return whole;
}

const std::string kGreeting = "220 mx.test ESMTP mailbridge ready\r\n";
const std::string kEhloTls = crlf({"250-mx.test", "250-PIPELINING", "250-SIZE 2000", "250-8BITMIME",
                                   "250-ENHANCEDSTATUSCODES", "250-SMTPUTF8", "250-CHUNKING",
                                   "250 AUTH PLAIN LOGIN"});
const std::string kLogin = "EHLO client.test\r\nAUTH PLAIN " + plain("alice", "s3cret") + "\r\n";
const std::string kLoginReplies = kEhloTls + "235 2.7.0 Authentication successful\r\n";

const std::string kTransaction = kLogin +
                                 crlf({"MAIL FROM:<alice@example.org> SIZE=100 BODY=8BITMIME",
                                       "RCPT TO:<bob@example.net>", "RCPT TO:<carol@example.net> NOTIFY=NEVER",
                                       "DATA", "Subject: hi", "", "..leading dot", ".", "QUIT"});
const std::string kTransactionReplies = kGreeting + kLoginReplies +
                                        crlf({"250 2.1.0 Sender OK", "250 2.1.5 Recipient OK",
                                              "250 2.1.5 Recipient OK", "354 End data with <CR><LF>.<CR><LF>",
                                              "250 2.0.0 Message accepted for delivery",
                                              "221 2.0.0 mx.test closing connection"});

// RFC 5321 section 3.3 (mail transaction), RFC 4954 section 4 (AUTH with an
// initial response), RFC 5321 section 4.5.2 (transparency).
TEST(SmtpSession, FullTransactionTranscript) {
  Transcript run = driveWhole(tlsOptions(), kTransaction);
  EXPECT_EQ(run.output, kTransactionReplies);
  EXPECT_TRUE(run.closed);
  ASSERT_EQ(run.events.size(), 3u);
  EXPECT_EQ(run.events[0], "AUTH PLAIN /alice/s3cret");
  EXPECT_EQ(run.events[1], "SENDER <alice@example.org> user=alice");
  EXPECT_EQ(run.events[2], "MESSAGE <alice@example.org> -> <bob@example.net> <carol@example.net> 29 bytes");
  ASSERT_EQ(run.messages.size(), 1u);
  const MessageRequest& m = run.messages[0];
  EXPECT_EQ(m.data, "Subject: hi\r\n\r\n.leading dot\r\n");
  EXPECT_EQ(m.user, "alice");
  EXPECT_EQ(m.envelope.params.size, 100u);
  EXPECT_EQ(m.envelope.params.body, BodyType::EightBitMime);
  EXPECT_EQ(m.envelope.recipients[1].notify, "NEVER");
}

// RFC 2920 section 3.1: the client sends the whole transaction in one write;
// the host answers each request later, from its own callbacks. Replies must
// come out in order and be the same as with an immediate host.
TEST(SmtpSession, PipelinedTransactionWithAsynchronousHost) {
  ServerSession s(tlsOptions());
  s.feed(kTransaction);
  EXPECT_EQ(s.takeOutput(), kGreeting + kEhloTls);  // stops at AUTH: its reply is owed
  std::string out = kGreeting + kEhloTls;
  int answered = 0;
  while (Request* r = s.pending()) {
    EXPECT_FALSE(s.closed());
    // Nothing may be answered past the pending request meanwhile.
    s.feed("");
    EXPECT_EQ(s.takeOutput(), "");
    ASSERT_TRUE(s.answer(Verdict::Accept).has_value());
    (void)r;
    ++answered;
    out += s.takeOutput();
  }
  EXPECT_EQ(answered, 3);
  EXPECT_EQ(out, kTransactionReplies);
  EXPECT_TRUE(s.closed());
}

// The same with more input arriving while a decision is pending.
TEST(SmtpSession, InputFedWhilePendingIsBuffered) {
  ServerSession s(tlsOptions());
  s.feed(kLogin + "MAIL FROM:<alice@example.org>\r\nRCPT TO:<b@example.net>\r\n");
  ASSERT_NE(s.pending(), nullptr);  // AUTH
  s.feed("DATA\r\nx\r\n.\r\n");
  ASSERT_TRUE(s.answer(Verdict::Accept).has_value());  // AUTH ok
  ASSERT_TRUE(std::holds_alternative<SenderRequest>(*s.pending()));
  ASSERT_TRUE(s.answer(Verdict::Accept).has_value());
  ASSERT_TRUE(std::holds_alternative<MessageRequest>(*s.pending()));
  EXPECT_EQ(std::get<MessageRequest>(*s.pending()).data, "x\r\n");
  ASSERT_TRUE(s.answer(Verdict::TempFail).has_value());
  EXPECT_EQ(s.takeOutput(), kGreeting + kLoginReplies +
                                crlf({"250 2.1.0 Sender OK", "250 2.1.5 Recipient OK",
                                      "354 End data with <CR><LF>.<CR><LF>",
                                      "451 4.3.0 Temporary failure storing the message, try again later"}));
  EXPECT_EQ(s.pending(), nullptr);
}

TEST(SmtpSession, AnswerWithoutPendingFails) {
  ServerSession s(tlsOptions());
  auto st = s.answer(Verdict::Accept);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().kind, ErrorKind::Internal);
}

// RFC 5321 section 4.1.1.1 + RFC 3207 + RFC 4954: what EHLO offers depends on
// TLS; AUTH is not offered in plaintext when it requires TLS.
TEST(SmtpSession, EhloAdvertisesStartTlsButNotAuthInPlaintext) {
  Transcript run = driveWhole(plainOptions(), "EHLO c\r\n");
  EXPECT_EQ(run.output, kGreeting + crlf({"250-mx.test", "250-PIPELINING", "250-SIZE 2000", "250-8BITMIME",
                                          "250-ENHANCEDSTATUSCODES", "250-SMTPUTF8", "250-CHUNKING",
                                          "250 STARTTLS"}));
  SessionOptions lax = plainOptions();
  lax.authRequiresTls = false;
  lax.startTlsAvailable = false;
  run = driveWhole(lax, "EHLO c\r\n");
  EXPECT_NE(run.output.find("250 AUTH PLAIN LOGIN\r\n"), std::string::npos);
  EXPECT_EQ(run.output.find("STARTTLS"), std::string::npos);
}

TEST(SmtpSession, HeloIsPlainSmtp) {
  Transcript run = driveWhole(tlsOptions(), "HELO c\r\nAUTH PLAIN " + plain("a", "b") + "\r\nEHLO\r\n");
  EXPECT_EQ(run.output, kGreeting + crlf({"250 mx.test", "503 5.5.1 Send EHLO first", "501 5.5.4 Syntax: EHLO hostname"}));
}

// RFC 4954 section 6 / RFC 6409 section 4.3: MAIL before AUTH -> 530 5.7.0.
TEST(SmtpSession, MailBeforeAuthIsRefused) {
  Transcript run = driveWhole(tlsOptions(), "MAIL FROM:<a@b.c>\r\nEHLO c\r\nMAIL FROM:<a@b.c>\r\n");
  EXPECT_EQ(run.output, kGreeting + "503 5.5.1 Send EHLO first\r\n" + kEhloTls + "530 5.7.0 Authentication required\r\n");
  EXPECT_TRUE(run.events.empty());
}

TEST(SmtpSession, NoAuthNeededWhenHostSaysSo) {
  SessionOptions o = tlsOptions();
  o.requireAuth = false;
  Transcript run = driveWhole(o, "EHLO c\r\nMAIL FROM:<>\r\n");
  EXPECT_EQ(run.events, std::vector<std::string>{"SENDER <> user="});
}

// RFC 4954 section 4: 334 challenge, "*" cancels, bad base64 is 501 5.5.2.
TEST(SmtpSession, AuthPlainChallengeCancelAndErrors) {
  std::string in = "EHLO c\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN\r\n%%%\r\nAUTH PLAIN =\r\nAUTH CRAM-MD5\r\nAUTH PLAIN\r\n" +
                   plain("alice", "pw") + "\r\nAUTH PLAIN " + plain("x", "y") + "\r\n";
  Transcript run = driveWhole(tlsOptions(), in);
  EXPECT_EQ(run.output, kGreeting + kEhloTls +
                            crlf({"334 ", "501 5.7.0 Authentication cancelled", "334 ",
                                  "501 5.5.2 Cannot decode base64 response", "501 5.5.2 Malformed PLAIN response",
                                  "504 5.5.4 Unrecognised authentication mechanism", "334 ",
                                  "235 2.7.0 Authentication successful", "503 5.5.1 Already authenticated"}));
  EXPECT_EQ(run.events, std::vector<std::string>{"AUTH PLAIN /alice/pw"});
}

TEST(SmtpSession, AuthPlainWithAuthzid) {
  std::string raw = std::string("boss") + '\0' + "alice" + '\0' + "pw";
  Transcript run = driveWhole(tlsOptions(), "EHLO c\r\nAUTH PLAIN " + base64Encode(raw) + "\r\nMAIL FROM:<a@b.c>\r\n");
  EXPECT_EQ(run.events[0], "AUTH PLAIN boss/alice/pw");
  EXPECT_EQ(run.events[1], "SENDER <a@b.c> user=boss");
}

// AUTH LOGIN (draft-murchison-sasl-login): Username:, Password: challenges.
TEST(SmtpSession, AuthLogin) {
  std::string in = "EHLO c\r\nAUTH LOGIN\r\n" + base64Encode("alice") + "\r\n" + base64Encode("pw") + "\r\n";
  Transcript run = driveWhole(tlsOptions(), in);
  EXPECT_EQ(run.output, kGreeting + kEhloTls + crlf({"334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6",
                                                     "235 2.7.0 Authentication successful"}));
  EXPECT_EQ(run.events, std::vector<std::string>{"AUTH LOGIN /alice/pw"});

  run = driveWhole(tlsOptions(), "EHLO c\r\nAUTH LOGIN " + base64Encode("bob") + "\r\n*\r\n");
  EXPECT_EQ(run.output, kGreeting + kEhloTls + crlf({"334 UGFzc3dvcmQ6", "501 5.7.0 Authentication cancelled"}));
}

TEST(SmtpSession, AuthFailureAndTemporaryFailure) {
  Host host;
  host.decide = [](const Request& r) {
    return std::get<AuthRequest>(r).user == "alice" ? Verdict::Reject : Verdict::TempFail;
  };
  Transcript run = driveWhole(tlsOptions(), kLogin + "AUTH PLAIN " + plain("a", "b") + "\r\n", host);
  EXPECT_EQ(run.output, kGreeting + kEhloTls + crlf({"535 5.7.8 Authentication credentials invalid",
                                                     "454 4.7.0 Temporary authentication failure"}));
}

// RFC 4954 section 4 / RFC 3207: 538 5.7.11 when AUTH needs TLS first.
TEST(SmtpSession, AuthInPlaintextNeedsTls) {
  Transcript run = driveWhole(plainOptions(), "EHLO c\r\nAUTH PLAIN " + plain("a", "b") + "\r\n");
  EXPECT_EQ(run.output.substr(run.output.rfind("250 STARTTLS")),
            crlf({"250 STARTTLS", "538 5.7.11 Encryption required for requested authentication mechanism"}));
  EXPECT_TRUE(run.events.empty());
  run = driveWhole(plainOptions(), "EHLO c\r\nMAIL FROM:<a@b.c>\r\n");
  EXPECT_TRUE(run.output.ends_with("250 STARTTLS\r\n530 5.7.0 Must issue a STARTTLS command first\r\n"));
}

// RFC 3207 section 4.2 and CVE-2011-0411: commands pipelined after STARTTLS
// arrive in plaintext and must be thrown away, not run under TLS.
TEST(SmtpSession, StartTlsDiscardsPipelinedPlaintext) {
  ServerSession s(plainOptions());
  s.feed("EHLO c\r\nSTARTTLS\r\nAUTH PLAIN " + plain("mallory", "x") + "\r\nMAIL FROM:<evil@x.y>\r\n");
  ASSERT_NE(s.pending(), nullptr);
  EXPECT_TRUE(std::holds_alternative<StartTlsRequest>(*s.pending()));
  std::string out = s.takeOutput();
  EXPECT_TRUE(out.ends_with("250 STARTTLS\r\n220 2.0.0 Ready to start TLS\r\n")) << out;
  s.feed("RSET\r\n");  // still plaintext: the handshake has not finished
  ASSERT_TRUE(s.answer(Verdict::Accept).has_value());
  EXPECT_EQ(s.takeOutput(), "");  // RFC 3207: no new greeting after the handshake
  EXPECT_TRUE(s.tlsActive());
  EXPECT_EQ(s.pending(), nullptr);
  // State was reset: EHLO is needed again and now offers AUTH, not STARTTLS.
  s.feed("MAIL FROM:<a@b.c>\r\nEHLO c\r\nSTARTTLS\r\n");
  EXPECT_EQ(s.takeOutput(), "503 5.5.1 Send EHLO first\r\n" + kEhloTls + "503 5.5.1 TLS already active\r\n");
  EXPECT_EQ(s.pending(), nullptr);
}

TEST(SmtpSession, StartTlsForgetsAuthenticationAndHandshakeFailureCloses) {
  SessionOptions o = plainOptions();
  o.authRequiresTls = false;
  ServerSession s(o);
  s.feed("EHLO c\r\nAUTH PLAIN " + plain("a", "b") + "\r\n");
  ASSERT_TRUE(s.answer(Verdict::Accept).has_value());
  EXPECT_TRUE(s.authenticated());
  s.feed("STARTTLS\r\n");
  ASSERT_TRUE(s.answer(Verdict::Accept).has_value());
  EXPECT_FALSE(s.authenticated());

  ServerSession f(plainOptions());
  f.feed("EHLO c\r\nSTARTTLS\r\n");
  ASSERT_TRUE(f.answer(Verdict::Reject).has_value());
  EXPECT_TRUE(f.closed());
}

TEST(SmtpSession, StartTlsRefusals) {
  SessionOptions noTls = plainOptions();
  noTls.startTlsAvailable = false;
  Transcript run = driveWhole(noTls, "STARTTLS\r\nEHLO c\r\nSTARTTLS x\r\nSTARTTLS\r\n");
  EXPECT_EQ(run.output.substr(run.output.find("250 CHUNKING") + 14),
            crlf({"501 5.5.4 STARTTLS takes no arguments", "502 5.5.1 STARTTLS not available"}));
  run = driveWhole(plainOptions(), "STARTTLS\r\n");
  EXPECT_EQ(run.output, kGreeting + "503 5.5.1 Send EHLO first\r\n");
}

// RFC 5321 section 4.1.1.2 and the host's policy: sender refused -> 553 5.7.1;
// the pipelined RCPT and DATA then fail as out of order.
TEST(SmtpSession, SenderRefusedByHost) {
  Host host;
  host.decide = [](const Request& r) {
    return std::holds_alternative<SenderRequest>(r) ? Verdict::Reject : Verdict::Accept;
  };
  std::string in = kLogin + crlf({"MAIL FROM:<boss@example.org>", "RCPT TO:<b@example.net>", "DATA", "RSET"});
  Transcript run = driveWhole(tlsOptions(), in, host);
  EXPECT_EQ(run.output, kGreeting + kLoginReplies +
                            crlf({"553 5.7.1 Sender address not allowed for this user", "503 5.5.1 Need MAIL command",
                                  "503 5.5.1 Need MAIL command", "250 2.0.0 OK"}));
}

TEST(SmtpSession, HostTextReplacesDefaultAndCannotInjectLines) {
  ServerSession s(tlsOptions());
  s.feed(kLogin);
  ASSERT_TRUE(s.answer(Verdict::Accept).has_value());
  s.feed("MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n.\r\n");
  ASSERT_TRUE(s.answer(Verdict::Accept).has_value());
  ASSERT_TRUE(s.answer(Verdict::Accept, "Queued as 42\r\n250 fake").has_value());
  std::string out = s.takeOutput();
  EXPECT_EQ(out.substr(out.rfind("354")), "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Queued as 42  250 fake\r\n");
}

// RFC 5321 sections 4.1.4 and 4.2.4: order, unknown commands and syntax.
TEST(SmtpSession, OutOfOrderUnknownAndSyntaxErrors) {
  std::string in = kLogin + crlf({"RCPT TO:<a@b.c>", "DATA", "FROB", "", "MAIL FROM:a@b.c", "MAIL FROM:<a@b.c> FOO=1",
                                  "MAIL FROM:<a@b.c> SIZE=abc", "MAIL FROM:<a@b.c>", "MAIL FROM:<a@b.c>",
                                  "RCPT TO:<>", "RCPT TO:<a@b.c> XYZ", "DATA", "DATA now", "RSET x", "VRFY bob",
                                  "VRFY", "NOOP", "HELP", "EXPN list"});
  SessionOptions o = tlsOptions();
  o.maxBadCommands = 100;
  Transcript run = driveWhole(o, in);
  EXPECT_EQ(run.output, kGreeting + kLoginReplies +
                            crlf({"503 5.5.1 Need MAIL command", "503 5.5.1 Need MAIL command",
                                  "500 5.5.2 Command not recognised", "500 5.5.2 Command not recognised",
                                  "501 5.1.7 Bad address syntax: path must start with '<'",
                                  "555 5.5.4 Unsupported parameter FOO", "501 5.5.4 Bad SIZE value",
                                  "250 2.1.0 Sender OK", "503 5.5.1 Nested MAIL command",
                                  "501 5.1.3 Bad address syntax: null path not allowed here",
                                  "555 5.5.4 Unsupported parameter XYZ", "554 5.5.1 No valid recipients",
                                  "501 5.5.4 DATA takes no arguments", "501 5.5.4 RSET takes no arguments",
                                  "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery",
                                  "501 5.5.4 Syntax: VRFY <address>", "250 2.0.0 OK",
                                  "214 2.0.0 Commands: EHLO HELO AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT STARTTLS",
                                  "502 5.5.1 EXPN not available"}));
}

TEST(SmtpSession, TooManyBadCommandsCloses) {
  SessionOptions o = tlsOptions();
  o.maxBadCommands = 3;
  Transcript run = driveWhole(o, "A\r\nB\r\nNOOP\r\nC\r\nNOOP\r\n");
  EXPECT_EQ(run.output, kGreeting + crlf({"500 5.5.2 Command not recognised", "500 5.5.2 Command not recognised",
                                          "250 2.0.0 OK", "500 5.5.2 Command not recognised",
                                          "421 4.7.0 mx.test Too many errors, closing connection"}));
  EXPECT_TRUE(run.closed);
}

TEST(SmtpSession, QuitClosesAndIgnoresTheRest) {
  Transcript run = driveWhole(tlsOptions(), "QUIT\r\nNOOP\r\n");
  EXPECT_EQ(run.output, kGreeting + "221 2.0.0 mx.test closing connection\r\n");
  EXPECT_TRUE(run.closed);
}

// RFC 5321 section 4.5.3.1.4: 1000 octets per command line, CRLF included.
TEST(SmtpSession, OverlongCommandLine) {
  std::string ok(998, 'X');
  std::string tooLong(999, 'X');
  std::string huge(50000, 'Y');
  std::string in = ok + "\r\n" + tooLong + "\r\n" + huge + "\r\nNOOP\r\n";
  Transcript run = driveWhole(tlsOptions(), in);
  EXPECT_EQ(run.output, kGreeting + crlf({"500 5.5.2 Command not recognised", "500 5.5.0 Line too long",
                                          "500 5.5.0 Line too long", "250 2.0.0 OK"}));
  std::vector<std::string> chunks;
  for (size_t i = 0; i < in.size(); i += 7) chunks.push_back(in.substr(i, 7));
  EXPECT_EQ(drive(tlsOptions(), chunks).output, run.output);
}

// RFC 1870 section 6.1: a declared SIZE over the limit is refused at MAIL.
TEST(SmtpSession, DeclaredSizeOverLimit) {
  Transcript run = driveWhole(tlsOptions(), kLogin + "MAIL FROM:<a@b.c> SIZE=2001\r\nMAIL FROM:<a@b.c> SIZE=2000\r\n");
  EXPECT_EQ(run.output, kGreeting + kLoginReplies +
                            crlf({"552 5.3.4 Message size exceeds fixed maximum message size", "250 2.1.0 Sender OK"}));
}

// RFC 1870 section 6.3: an actual message over the limit is refused after
// DATA; the session reads to the end without buffering it and goes on.
TEST(SmtpSession, ActualSizeOverLimit) {
  std::string line(100, 'z');
  std::string body;
  for (int i = 0; i < 500; ++i) body += line + "\r\n";  // ~50 KB > 2000
  std::string tx = crlf({"MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>", "DATA"});
  std::string in = kLogin + tx + body + ".\r\n" + tx + "small\r\n.\r\n";
  Transcript run = driveWhole(tlsOptions(), in);
  std::string txReplies = crlf({"250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", "354 End data with <CR><LF>.<CR><LF>"});
  EXPECT_EQ(run.output, kGreeting + kLoginReplies + txReplies +
                            "552 5.3.4 Message size exceeds fixed maximum message size\r\n" + txReplies +
                            "250 2.0.0 Message accepted for delivery\r\n");
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].data, "small\r\n");
}

// RFC 5321 section 4.5.3.1.10: too many recipients -> 452 4.5.3.
TEST(SmtpSession, TooManyRecipients) {
  std::string in = kLogin + crlf({"MAIL FROM:<a@b.c>", "RCPT TO:<1@x.y>", "RCPT TO:<2@x.y>", "RCPT TO:<3@x.y>",
                                  "RCPT TO:<4@x.y>", "RCPT TO:<Postmaster>", "DATA", ".",});
  Transcript run = driveWhole(tlsOptions(), in);
  EXPECT_EQ(run.output, kGreeting + kLoginReplies +
                            crlf({"250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", "250 2.1.5 Recipient OK",
                                  "250 2.1.5 Recipient OK", "452 4.5.3 Too many recipients",
                                  "452 4.5.3 Too many recipients", "354 End data with <CR><LF>.<CR><LF>",
                                  "250 2.0.0 Message accepted for delivery"}));
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].envelope.recipients.size(), 3u);
}

std::string dataTransaction(std::string_view body) {
  return kLogin + crlf({"MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>", "DATA"}) + std::string(body);
}
const std::string kDataReplies =
    kGreeting + kLoginReplies + crlf({"250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", "354 End data with <CR><LF>.<CR><LF>"});

// RFC 5321 section 4.5.2: a leading dot is doubled by the client and removed
// here; a line of two dots is a line of one dot; the message keeps its CRLF.
TEST(SmtpSession, DotUnstuffing) {
  std::string in = dataTransaction("..\r\n.a\r\n...b\r\nc.\r\n.\r\n");
  Transcript run = driveWhole(tlsOptions(), in);
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].data, ".\r\na\r\n..b\r\nc.\r\n");
}

// RFC 5321 section 4.1.1.4: the CRLF ending DATA starts the terminator, so
// "DATA\r\n.\r\n" is an empty message.
TEST(SmtpSession, EmptyMessage) {
  Transcript run = driveWhole(tlsOptions(), dataTransaction(".\r\n"));
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].data, "");
}

// SMTP smuggling: only CRLF.CRLF ends DATA; "\n.\n", "\r\n.\n" and
// "\n.\r\n" are body bytes, and bare LF/CR make the message refused once the
// real end is seen (one reply only, nothing smuggled runs as a command).
TEST(SmtpSession, SmugglingAttemptsDoNotEndData) {
  for (std::string trick : {"\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r"}) {
    std::string in = dataTransaction("a" + trick + "MAIL FROM:<x@y.z>\r\nRCPT TO:<v@w.x>\r\nDATA\r\nsmuggled\r\n.\r\n");
    Transcript run = driveWhole(tlsOptions(), in);
    EXPECT_EQ(run.output, kDataReplies + "550 5.6.0 Bare CR or LF in message; lines must end with CRLF\r\n")
        << "trick " << ::testing::PrintToString(trick);
    EXPECT_TRUE(run.messages.empty());
    EXPECT_EQ(run.events.size(), 2u);  // AUTH, SENDER: no second SENDER
  }
}

TEST(SmtpSession, BareLfAndBareCrRejected) {
  for (std::string body : {"a\nb\r\n.\r\n", "a\rb\r\n.\r\n", "a\r\r\n.\r\n", ".\nx\r\n.\r\n"}) {
    Transcript run = driveWhole(tlsOptions(), dataTransaction(body) + "NOOP\r\n");
    EXPECT_EQ(run.output, kDataReplies + "550 5.6.0 Bare CR or LF in message; lines must end with CRLF\r\n250 2.0.0 OK\r\n")
        << ::testing::PrintToString(body);
  }
}

// RFC 5321 section 4.5.3.1.6: text lines are at most 1000 octets with CRLF.
TEST(SmtpSession, OverlongDataLine) {
  Transcript ok = driveWhole(tlsOptions(), dataTransaction(std::string(998, 'a') + "\r\n.\r\n"));
  EXPECT_EQ(ok.messages.size(), 1u);
  Transcript bad = driveWhole(tlsOptions(), dataTransaction(std::string(999, 'a') + "\r\n.\r\n"));
  EXPECT_EQ(bad.output, kDataReplies + "500 5.5.0 Line too long; RFC 5321 allows 1000 octets per line\r\n");
}

// RFC 6531 section 3.4: UTF-8 addresses need SMTPUTF8 on MAIL.
TEST(SmtpSession, Smtputf8Addresses) {
  std::string in = kLogin + crlf({"MAIL FROM:<j\xC3\xB6rg@example.org>", "MAIL FROM:<a@b.c>", "RCPT TO:<\xE7\x94\xB0@x.y>",
                                  "RSET", "MAIL FROM:<j\xC3\xB6rg@example.org> SMTPUTF8", "RCPT TO:<\xE7\x94\xB0@x.y>"});
  Transcript run = driveWhole(tlsOptions(), in);
  EXPECT_EQ(run.output, kGreeting + kLoginReplies +
                            crlf({"553 5.6.7 Non-ASCII address requires SMTPUTF8", "250 2.1.0 Sender OK",
                                  "553 5.6.7 Non-ASCII address requires SMTPUTF8", "250 2.0.0 OK",
                                  "250 2.1.0 Sender OK", "250 2.1.5 Recipient OK"}));
}

TEST(SmtpSession, HeloClientCannotUseParameters) {
  SessionOptions o = tlsOptions();
  o.requireAuth = false;
  Transcript run = driveWhole(o, "HELO c\r\nMAIL FROM:<a@b.c> SIZE=10\r\nMAIL FROM:<a@b.c>\r\n");
  EXPECT_EQ(run.output, kGreeting + crlf({"250 mx.test", "555 5.5.4 Parameters need EHLO", "250 2.1.0 Sender OK"}));
}

// RFC 3030 section 2: BDAT chunks, no dot transparency, 250 per chunk.
TEST(SmtpSession, BdatChunks) {
  std::string in = kLogin + crlf({"MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>"}) + "BDAT 7\r\n.a\r\nb\r\nBDAT 5 LAST\r\n.\r\n\r\n" +
                   "BDAT 3 LAST\r\nabc" + "DATA\r\n";
  Transcript run = driveWhole(tlsOptions(), in);
  EXPECT_EQ(run.output, kGreeting + kLoginReplies +
                            crlf({"250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", "250 2.0.0 7 octets received",
                                  "250 2.0.0 Message accepted for delivery", "503 5.5.1 Need MAIL command",
                                  "503 5.5.1 Need MAIL command"}));
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].data, ".a\r\nb\r\n.\r\n\r\n");
}

TEST(SmtpSession, BdatRulesAndRefusals) {
  std::string in = kLogin + crlf({"MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>"}) +
                   "BDAT 2\r\nx\nDATA\r\nRCPT TO:<g@h.i>\r\nBDAT 0 LAST\r\nBDAT x\r\n";
  Transcript run = driveWhole(tlsOptions(), in);
  EXPECT_EQ(run.output, kGreeting + kLoginReplies +
                            crlf({"250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", "250 2.0.0 2 octets received",
                                  "503 5.5.1 DATA after BDAT", "503 5.5.1 RCPT after BDAT",
                                  "550 5.6.0 Bare CR or LF in message; lines must end with CRLF",
                                  "501 5.5.4 Syntax: BDAT <size> [LAST]"}));
  // Oversized BDAT: consumed, not buffered, refused at LAST.
  std::string big(5000, 'q');
  run = driveWhole(tlsOptions(), kLogin + crlf({"MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>"}) + "BDAT 5000 LAST\r\n" + big + "NOOP\r\n");
  EXPECT_EQ(run.output.substr(run.output.rfind("250 2.1.5")),
            crlf({"250 2.1.5 Recipient OK", "552 5.3.4 Message size exceeds fixed maximum message size", "250 2.0.0 OK"}));
}

// Pipelined input while a decision is pending is bounded.
TEST(SmtpSession, PipelinedInputIsBounded) {
  SessionOptions o = tlsOptions();
  o.maxPipelinedInput = 1000;
  ServerSession s(o);
  s.feed(kLogin);
  ASSERT_NE(s.pending(), nullptr);
  for (int i = 0; i < 200; ++i) s.feed("NOOP\r\n");
  ASSERT_TRUE(s.answer(Verdict::Accept).has_value());
  std::string out = s.takeOutput();
  EXPECT_TRUE(s.closed());
  EXPECT_TRUE(out.ends_with("235 2.7.0 Authentication successful\r\n"
                            "421 4.7.0 mx.test Too much pipelined input, closing connection\r\n"))
      << out;
}

}  // namespace
}  // namespace mb::smtp
