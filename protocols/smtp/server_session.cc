// SMTP submission server session: command dispatch, AUTH exchanges, the
// mail transaction and the DATA/BDAT body, all driven by fed bytes.
// Design rules, kept everywhere below:
//  - One reply per command, in command order (RFC 2920 section 3.1), even
//    when a host decision sits between a command and its reply.
//  - Memory is bounded for any input: command lines by the line limit, bodies
//    by maxMessageSize, pipelined input by maxPipelinedInput.
//  - Nothing the client sent is echoed into a reply: a stray CR in an echoed
//    argument would let a client forge reply lines.
#include "protocols/smtp/server_session.h"

#include <algorithm>
#include <utility>

#include "protocols/common/base64.h"
#include "protocols/smtp/text.h"

namespace mb::smtp {
namespace {

// RFC 5321 section 4.5.3.1.4 asks for 512; we take 1000 (CRLF included) to
// be lenient with long MAIL FROM parameter lists.
constexpr size_t kMaxCommandLine = 1000;
// RFC 4954 section 4: an AUTH response line may be up to 12288 octets.
constexpr size_t kMaxAuthLine = 12288;

std::string sanitize(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c == '\r' || c == '\n') c = ' ';
  return out;
}

}  // namespace

ServerSession::ServerSession(SessionOptions options)
    : options_(std::move(options)), tls_(options_.tlsActive), body_(options_.maxMessageSize) {
  // RFC 2034 section 3: the greeting carries no enhanced code.
  reply("220", options_.hostname + " ESMTP mailbridge ready");
}

ServerSession::~ServerSession() {
  if (pending_ && std::holds_alternative<AuthRequest>(*pending_)) wipe(std::get<AuthRequest>(*pending_).password);
  wipe(loginUser_);
}

std::string ServerSession::takeOutput() { return std::exchange(out_, {}); }

void ServerSession::reply(std::string_view codes, std::string_view text) {
  out_.append(codes);
  out_ += ' ';
  out_.append(text);
  out_ += "\r\n";
}

void ServerSession::badCommand(std::string_view codes, std::string_view text) {
  reply(codes, text);
  if (++badCommands_ >= options_.maxBadCommands) {
    reply("421 4.7.0", options_.hostname + " Too many errors, closing connection");
    closed_ = true;
  }
}

void ServerSession::feed(std::string_view bytes) {
  if (closed_) return;
  if (pending_) {
    // Plaintext that arrives before the TLS switch is never a command
    // (CVE-2011-0411); the host should not even be reading now.
    if (std::holds_alternative<StartTlsRequest>(*pending_) || overflow_) return;
    if (in_.size() - pos_ + bytes.size() > options_.maxPipelinedInput) {
      overflow_ = true;
      return;
    }
    in_.append(bytes);
    return;
  }
  in_.append(bytes);
  process();
}

void ServerSession::process() {
  while (!closed_ && !pending_ && pos_ < in_.size()) {
    std::string_view avail = std::string_view(in_).substr(pos_);
    if (mode_ == Mode::Data) {
      pos_ += body_.feedDotted(avail);
      if (body_.done()) {
        mode_ = Mode::Command;
        finishMessage();
      }
    } else if (mode_ == Mode::Bdat) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(bdatRemaining_, avail.size()));
      if (!bdatDiscard_) body_.feedRaw(avail.substr(0, n));
      pos_ += n;
      bdatRemaining_ -= n;
      if (bdatRemaining_ == 0) finishChunk();
    } else if (!processCommandLine()) {
      break;
    }
  }
  if (closed_) {
    in_.clear();
    pos_ = 0;
    scanned_ = 0;
    return;
  }
  in_.erase(0, pos_);
  pos_ = 0;
  if (pending_ && in_.size() > options_.maxPipelinedInput) {
    overflow_ = true;
    in_.clear();
  }
}

bool ServerSession::processCommandLine() {
  std::string_view avail = std::string_view(in_).substr(pos_);
  const size_t limit = mode_ == Mode::AuthResponse ? kMaxAuthLine : kMaxCommandLine;
  size_t lf = avail.find('\n', scanned_);
  if (lf == std::string_view::npos) {
    if (mode_ == Mode::SkipLongLine || avail.size() >= limit) {
      // Drop what we have: the line is too long to be a command anyway.
      if (mode_ == Mode::AuthResponse) authStep_ = AuthStep::None;
      mode_ = Mode::SkipLongLine;
      pos_ = in_.size();
      scanned_ = 0;
    } else {
      scanned_ = avail.size();
    }
    return false;
  }
  scanned_ = 0;
  pos_ += lf + 1;
  std::string_view line = avail.substr(0, lf);
  // Commands may end in a bare LF: lenient, and harmless outside DATA.
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (mode_ == Mode::SkipLongLine || line.size() + 2 > limit) {
    if (mode_ == Mode::AuthResponse) authStep_ = AuthStep::None;
    mode_ = Mode::Command;
    badCommand("500 5.5.0", "Line too long");
    return true;
  }
  if (mode_ == Mode::AuthResponse) {
    mode_ = Mode::Command;
    onAuthResponse(line);
  } else {
    dispatch(line);
  }
  return true;
}

void ServerSession::dispatch(std::string_view line) {
  CommandLine cmd = splitCommand(line);
  switch (cmd.verb) {
    case Verb::Ehlo: return onEhlo(cmd.args, true);
    case Verb::Helo: return onEhlo(cmd.args, false);
    case Verb::Mail: return onMail(cmd.args);
    case Verb::Rcpt: return onRcpt(cmd.args);
    case Verb::Data: return onData(cmd.args);
    case Verb::Bdat: return onBdat(cmd.args);
    case Verb::StartTls: return onStartTls(cmd.args);
    case Verb::Auth: return onAuth(cmd.args);
    case Verb::Rset:
      if (!cmd.args.empty()) return badCommand("501 5.5.4", "RSET takes no arguments");
      resetTransaction();
      return reply("250 2.0.0", "OK");
    case Verb::Noop: return reply("250 2.0.0", "OK");
    case Verb::Quit:
      reply("221 2.0.0", options_.hostname + " closing connection");
      closed_ = true;
      return;
    case Verb::Vrfy:
      if (cmd.args.empty()) return badCommand("501 5.5.4", "Syntax: VRFY <address>");
      // RFC 5321 section 3.5.3: 252 says "would try" without disclosing users.
      return reply("252 2.0.0", "Cannot VRFY user, but will accept message and attempt delivery");
    case Verb::Expn: return reply("502 5.5.1", "EXPN not available");
    case Verb::Help: return reply("214 2.0.0", "Commands: EHLO HELO AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT STARTTLS");
    case Verb::Unknown: return badCommand("500 5.5.2", "Command not recognised");
  }
}

bool ServerSession::authAllowed() const { return tls_ || !options_.authRequiresTls; }

void ServerSession::onEhlo(std::string_view args, bool extended) {
  if (args.empty()) return badCommand("501 5.5.4", extended ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
  // RFC 5321 section 4.1.4: EHLO in mid-session acts as RSET.
  resetTransaction();
  helo_ = std::string(args.substr(0, 255));
  esmtp_ = extended;
  // RFC 2034 section 3: no enhanced codes on EHLO/HELO replies.
  if (!extended) return reply("250", options_.hostname);
  std::vector<std::string> lines{options_.hostname,
                                 "PIPELINING",
                                 "SIZE " + std::to_string(options_.maxMessageSize),
                                 "8BITMIME",
                                 "ENHANCEDSTATUSCODES",
                                 "SMTPUTF8",
                                 "CHUNKING"};
  if (!tls_ && options_.startTlsAvailable) lines.push_back("STARTTLS");
  if (authAllowed() && user_.empty()) lines.push_back("AUTH PLAIN LOGIN");
  for (size_t i = 0; i < lines.size(); ++i) {
    out_ += i + 1 < lines.size() ? "250-" : "250 ";
    out_ += lines[i];
    out_ += "\r\n";
  }
}

void ServerSession::onMail(std::string_view args) {
  if (helo_.empty()) return badCommand("503 5.5.1", "Send EHLO first");
  // RFC 6409 section 4.3 / RFC 4954 section 6: submission needs AUTH first.
  if (options_.requireAuth && user_.empty()) return reply("530 5.7.0", "Authentication required");
  if (inTransaction_) return badCommand("503 5.5.1", "Nested MAIL command");
  auto mail = parseMailArgs(args);
  if (!mail) return badCommand(mail.error().respCode, mail.error().message);
  if (mail->params.any && !esmtp_) return badCommand("555 5.5.4", "Parameters need EHLO");
  // RFC 1870 section 6.1: refuse early when the declared size is too big.
  if (mail->params.size && *mail->params.size > options_.maxMessageSize)
    return reply("552 5.3.4", "Message size exceeds fixed maximum message size");
  // RFC 6531 section 3.4: a UTF-8 address needs the SMTPUTF8 parameter.
  if (mail->path.needsUtf8 && !mail->params.smtputf8) return reply("553 5.6.7", "Non-ASCII address requires SMTPUTF8");
  envelope_.from = mail->path;
  envelope_.params = mail->params;
  pending_ = SenderRequest{user_, std::move(mail->path), std::move(mail->params)};
}

void ServerSession::onRcpt(std::string_view args) {
  if (!inTransaction_) return badCommand("503 5.5.1", "Need MAIL command");
  if (bdatUsed_) return badCommand("503 5.5.1", "RCPT after BDAT");
  auto rcpt = parseRcptArgs(args);
  if (!rcpt) return badCommand(rcpt.error().respCode, rcpt.error().message);
  if (rcpt->any && !esmtp_) return badCommand("555 5.5.4", "Parameters need EHLO");
  if (rcpt->path.needsUtf8 && !envelope_.params.smtputf8)
    return reply("553 5.6.7", "Non-ASCII address requires SMTPUTF8");
  // RFC 5321 section 4.5.3.1.10: 452 tells the client to retry the rest later.
  if (envelope_.recipients.size() >= options_.maxRecipients) return reply("452 4.5.3", "Too many recipients");
  envelope_.recipients.push_back(Recipient{std::move(rcpt->path), std::move(rcpt->notify), std::move(rcpt->orcpt)});
  reply("250 2.1.5", "Recipient OK");
}

void ServerSession::onData(std::string_view args) {
  if (!args.empty()) return badCommand("501 5.5.4", "DATA takes no arguments");
  if (!inTransaction_) return badCommand("503 5.5.1", "Need MAIL command");
  if (bdatUsed_) return badCommand("503 5.5.1", "DATA after BDAT");
  // RFC 2920 section 3.1: with no good recipient, DATA fails with 554.
  if (envelope_.recipients.empty()) return reply("554 5.5.1", "No valid recipients");
  body_ = BodyReader(options_.maxMessageSize);
  mode_ = Mode::Data;
  reply("354", "End data with <CR><LF>.<CR><LF>");
}

void ServerSession::onBdat(std::string_view args) {
  auto bdat = parseBdatArgs(args);
  // Without a size we cannot find the next command; the client must resync.
  if (!bdat) return badCommand(bdat.error().respCode, bdat.error().message);
  // RFC 3030 section 2: the chunk is read even when it is refused.
  bdatRefusal_.clear();
  if (!inTransaction_) {
    bdatRefusal_ = "503 5.5.1|Need MAIL command";
  } else if (envelope_.recipients.empty()) {
    bdatRefusal_ = "554 5.5.1|No valid recipients";
  } else if (!bdatUsed_) {
    bdatUsed_ = true;
    body_ = BodyReader(options_.maxMessageSize);
  }
  bdatDiscard_ = !bdatRefusal_.empty();
  bdatLast_ = bdat->last;
  bdatChunk_ = bdat->size;
  bdatRemaining_ = bdat->size;
  mode_ = Mode::Bdat;
  if (bdatRemaining_ == 0) finishChunk();
}

void ServerSession::finishChunk() {
  mode_ = Mode::Command;
  if (bdatDiscard_) {
    bdatDiscard_ = false;
    size_t bar = bdatRefusal_.find('|');
    return reply(std::string_view(bdatRefusal_).substr(0, bar), std::string_view(bdatRefusal_).substr(bar + 1));
  }
  if (!bdatLast_) return reply("250 2.0.0", std::to_string(bdatChunk_) + " octets received");
  body_.finishRaw();
  finishMessage();
}

void ServerSession::finishMessage() {
  // Order: size first (we hold no data), then smuggling, then line length.
  if (body_.tooBig()) {
    reply("552 5.3.4", "Message size exceeds fixed maximum message size");
  } else if (body_.bareLineEnding()) {
    // SMTP smuggling defence: a bare CR or LF could hide a second message
    // from one parser and not from another. 5.6.0: RFC 3463 "other media error".
    reply("550 5.6.0", "Bare CR or LF in message; lines must end with CRLF");
  } else if (body_.lineTooLong()) {
    reply("500 5.5.0", "Line too long; RFC 5321 allows 1000 octets per line");
  } else {
    pending_ = MessageRequest{user_, std::move(envelope_), body_.takeData()};
    return;
  }
  resetTransaction();
}

void ServerSession::onStartTls(std::string_view args) {
  if (!args.empty()) return badCommand("501 5.5.4", "STARTTLS takes no arguments");
  if (tls_) return badCommand("503 5.5.1", "TLS already active");
  if (!options_.startTlsAvailable) return badCommand("502 5.5.1", "STARTTLS not available");
  if (helo_.empty()) return badCommand("503 5.5.1", "Send EHLO first");
  if (inTransaction_) return badCommand("503 5.5.1", "STARTTLS not allowed during a mail transaction");
  reply("220 2.0.0", "Ready to start TLS");
  // CVE-2011-0411: whatever was pipelined after STARTTLS arrived in
  // plaintext and must not be executed inside the TLS session.
  pos_ = in_.size();
  scanned_ = 0;
  pending_ = StartTlsRequest{};
}

void ServerSession::restartAfterTls() {
  // RFC 3207 section 4.2: forget everything learnt from the client.
  tls_ = true;
  in_.clear();
  pos_ = 0;
  scanned_ = 0;
  mode_ = Mode::Command;
  helo_.clear();
  esmtp_ = false;
  user_.clear();
  authStep_ = AuthStep::None;
  wipe(loginUser_);
  resetTransaction();
}

void ServerSession::onAuth(std::string_view args) {
  if (!esmtp_) return badCommand("503 5.5.1", "Send EHLO first");
  if (!user_.empty()) return badCommand("503 5.5.1", "Already authenticated");
  if (inTransaction_) return badCommand("503 5.5.1", "AUTH not allowed during a mail transaction");
  if (!authAllowed()) return reply("538 5.7.11", "Encryption required for requested authentication mechanism");
  size_t sp = args.find(' ');
  std::string mechanism = upper(args.substr(0, sp));
  std::string_view initial = sp == std::string_view::npos ? std::string_view{} : args.substr(sp + 1);
  bool hasInitial = !initial.empty();
  if (initial == "=") initial = {};  // RFC 4954 section 4: "=" is an empty initial response
  if (mechanism == "PLAIN") {
    if (hasInitial) return finishPlain(initial);
    authStep_ = AuthStep::PlainResponse;
    mode_ = Mode::AuthResponse;
    return reply("334", "");
  }
  if (mechanism == "LOGIN") {
    if (hasInitial) {
      auto user = base64Decode(initial);
      if (!user) return badCommand("501 5.5.2", "Cannot decode base64 response");
      loginUser_ = std::move(*user);
      authStep_ = AuthStep::LoginPassword;
      mode_ = Mode::AuthResponse;
      return reply("334", "UGFzc3dvcmQ6");  // "Password:"
    }
    authStep_ = AuthStep::LoginUser;
    mode_ = Mode::AuthResponse;
    return reply("334", "VXNlcm5hbWU6");  // "Username:"
  }
  if (mechanism.empty()) return badCommand("501 5.5.4", "Syntax: AUTH mechanism [initial-response]");
  badCommand("504 5.5.4", "Unrecognised authentication mechanism");
}

void ServerSession::onAuthResponse(std::string_view line) {
  AuthStep step = std::exchange(authStep_, AuthStep::None);
  if (line == "*") {
    wipe(loginUser_);
    return badCommand("501 5.7.0", "Authentication cancelled");
  }
  if (step == AuthStep::PlainResponse) return finishPlain(line);
  auto decoded = base64Decode(line);
  if (!decoded) {
    wipe(loginUser_);
    return badCommand("501 5.5.2", "Cannot decode base64 response");
  }
  if (step == AuthStep::LoginUser) {
    loginUser_ = std::move(*decoded);
    authStep_ = AuthStep::LoginPassword;
    mode_ = Mode::AuthResponse;
    return reply("334", "UGFzc3dvcmQ6");
  }
  pending_ = AuthRequest{"LOGIN", "", std::exchange(loginUser_, {}), std::move(*decoded)};
}

void ServerSession::finishPlain(std::string_view base64) {
  auto decoded = base64Decode(base64);
  if (!decoded) return badCommand("501 5.5.2", "Cannot decode base64 response");
  // RFC 4616 section 2: [authzid] NUL authcid NUL passwd.
  std::string& msg = *decoded;
  size_t a = msg.find('\0');
  size_t b = a == std::string::npos ? a : msg.find('\0', a + 1);
  if (b == std::string::npos || msg.find('\0', b + 1) != std::string::npos || b == a + 1 || b + 1 == msg.size()) {
    wipe(msg);
    return badCommand("501 5.5.2", "Malformed PLAIN response");
  }
  pending_ = AuthRequest{"PLAIN", msg.substr(0, a), msg.substr(a + 1, b - a - 1), msg.substr(b + 1)};
  wipe(msg);
}

void ServerSession::resetTransaction() {
  inTransaction_ = false;
  envelope_ = Envelope{};
  body_ = BodyReader(options_.maxMessageSize);
  bdatUsed_ = false;
}

Status ServerSession::answer(Verdict verdict, std::string_view text) {
  if (!pending_) return fail(ErrorKind::Internal, "smtp: answer() without a pending request");
  Request request = std::move(*pending_);
  pending_.reset();
  std::string custom = sanitize(text);
  auto say = [&](std::string_view codes, std::string_view fallback) {
    reply(codes, custom.empty() ? fallback : std::string_view(custom));
  };

  if (auto* auth = std::get_if<AuthRequest>(&request)) {
    if (verdict == Verdict::Accept) {
      user_ = auth->authzid.empty() ? auth->user : auth->authzid;
      say("235 2.7.0", "Authentication successful");
    } else if (verdict == Verdict::Reject) {
      say("535 5.7.8", "Authentication credentials invalid");
      if (++badCommands_ >= options_.maxBadCommands) {
        reply("421 4.7.0", options_.hostname + " Too many errors, closing connection");
        closed_ = true;
      }
    } else {
      say("454 4.7.0", "Temporary authentication failure");
    }
    wipe(auth->password);
  } else if (std::holds_alternative<SenderRequest>(request)) {
    if (verdict == Verdict::Accept) {
      inTransaction_ = true;
      say("250 2.1.0", "Sender OK");
    } else {
      resetTransaction();
      if (verdict == Verdict::Reject) say("553 5.7.1", "Sender address not allowed for this user");
      else say("451 4.3.0", "Temporary failure checking the sender, try again later");
    }
  } else if (std::holds_alternative<MessageRequest>(request)) {
    if (verdict == Verdict::Accept) say("250 2.0.0", "Message accepted for delivery");
    else if (verdict == Verdict::Reject) say("554 5.7.1", "Message rejected");
    else say("451 4.3.0", "Temporary failure storing the message, try again later");
    resetTransaction();  // RFC 5321 section 4.1.1.4: the transaction ends with DATA's reply
  } else {
    if (verdict == Verdict::Accept) restartAfterTls();
    else closed_ = true;  // the 220 is out; a failed handshake leaves nothing to talk over
  }

  if (overflow_ && !closed_) {
    reply("421 4.7.0", options_.hostname + " Too much pipelined input, closing connection");
    closed_ = true;
  }
  process();
  return {};
}

}  // namespace mb::smtp
