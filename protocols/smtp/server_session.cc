// SMTP submission server session: input framing, command dispatch, the
// envelope (EHLO, MAIL, RCPT), STARTTLS and the host's answers. AUTH is in
// server_auth.cc, DATA/BDAT in server_data.cc.
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
  if (options_.requireAuth && user_.empty()) {
    // RFC 3207 section 4: tell a plaintext client what it has to do first.
    if (!authAllowed()) return reply("530 5.7.0", "Must issue a STARTTLS command first");
    return reply("530 5.7.0", "Authentication required");
  }
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
