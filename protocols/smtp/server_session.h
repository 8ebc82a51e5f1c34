// The SMTP submission server session (RFC 5321, RFC 6409), sans-I/O: the host
// feeds it the bytes a client sent, writes out the reply bytes it produces,
// and answers the decisions it asks for (credentials, sender, storing).
//
// How a host drives it:
//
//   ServerSession s(options);          // queues the 220 greeting
//   loop:
//     write(s.takeOutput());
//     if (s.closed()) close after the write;
//     if (Request* r = s.pending()) {   // a decision is owed
//       ...decide, possibly later, on another callback...
//       s.answer(Verdict::Accept);       // continues with buffered input
//     }
//     on bytes from the socket: s.feed(bytes);
//
// Rules the host must keep:
//  - While pending() is set the session only buffers input (up to
//    SessionOptions::maxPipelinedInput; past that it answers 421 and closes
//    after the pending reply). The host should stop reading the socket
//    meanwhile; that is its back-pressure.
//  - STARTTLS: when pending() holds a StartTlsRequest, the host first writes
//    takeOutput() (the 220) in plaintext, then runs the TLS handshake and
//    calls answer(Accept) when it is up, or answer(Reject) to close. Any
//    plaintext that followed STARTTLS is discarded (CVE-2011-0411) and so is
//    anything fed before answer().
//  - MessageRequest::data is the unstuffed message, CRLF line endings only,
//    within maxMessageSize. Answer Accept only after it is durably stored
//    (DESIGN.md rule 4); the host may move the data out of the request.
//  - AuthRequest holds a password: never log it. The session wipes its own
//    copies when the request is answered.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "protocols/common/result.h"
#include "protocols/smtp/address.h"
#include "protocols/smtp/body_reader.h"
#include "protocols/smtp/command.h"

namespace mb::smtp {

struct SessionOptions {
  std::string hostname = "localhost";
  uint64_t maxMessageSize = 25ull << 20;  // advertised as SIZE
  size_t maxRecipients = 100;
  int maxBadCommands = 10;  // then 421 and close
  bool tlsActive = false;   // implicit-TLS listener: the connection is already encrypted
  bool startTlsAvailable = false;  // the host can switch this connection to TLS
  bool authRequiresTls = true;     // do not offer or accept AUTH in plaintext
  bool requireAuth = true;         // MAIL needs a successful AUTH first (RFC 6409 section 4.3)
  size_t maxPipelinedInput = 256 * 1024;
};

struct Recipient {
  Path path;
  std::string notify;  // DSN NOTIFY= as sent, may be empty
  std::string orcpt;   // DSN ORCPT= as sent, may be empty
};

struct Envelope {
  Path from;
  MailParams params;
  std::vector<Recipient> recipients;
};

// AUTH PLAIN or LOGIN completed its exchange; are these credentials good?
struct AuthRequest {
  std::string mechanism;  // "PLAIN" or "LOGIN"
  std::string authzid;    // PLAIN only; empty means "same as user"
  std::string user;
  std::string password;
};

// MAIL FROM parsed and within limits; may this user send as this address?
struct SenderRequest {
  std::string user;  // the authenticated user, empty without AUTH
  Path sender;
  MailParams params;
};

// End of DATA or BDAT LAST with a clean message; store it durably.
struct MessageRequest {
  std::string user;
  Envelope envelope;
  std::string data;
};

// STARTTLS accepted and 220 queued; switch the connection to TLS.
struct StartTlsRequest {};

using Request = std::variant<AuthRequest, SenderRequest, MessageRequest, StartTlsRequest>;

// The host's answer to a request. Accept/Reject/TempFail become, per request:
//   Auth:     235 2.7.0 / 535 5.7.8 / 454 4.7.0
//   Sender:   250 2.1.0 / 553 5.7.1 / 451 4.3.0
//   Message:  250 2.0.0 / 554 5.7.1 / 451 4.3.0
//   StartTls: session restarts under TLS / close / close
enum class Verdict { Accept, Reject, TempFail };

class ServerSession {
 public:
  explicit ServerSession(SessionOptions options);
  ServerSession(const ServerSession&) = delete;
  ServerSession& operator=(const ServerSession&) = delete;
  ~ServerSession();

  // Bytes from the client, in any split. Ignored once closed().
  void feed(std::string_view bytes);

  // Reply bytes produced so far; the caller writes them in order.
  std::string takeOutput();
  bool hasOutput() const { return !out_.empty(); }

  // The decision the session waits for, or nullptr.
  Request* pending() { return pending_ ? &*pending_ : nullptr; }

  // Answers pending(); text (optional) replaces the default reply text, e.g.
  // "Queued as 42". Fails when nothing is pending.
  Status answer(Verdict verdict, std::string_view text = {});

  // QUIT, 421 or a failed TLS switch: write the output, then close.
  bool closed() const { return closed_; }
  bool tlsActive() const { return tls_; }
  bool authenticated() const { return !user_.empty(); }
  const std::string& user() const { return user_; }

 private:
  enum class Mode { Command, SkipLongLine, AuthResponse, Data, Bdat };
  enum class AuthStep { None, PlainResponse, LoginUser, LoginPassword };

  void process();
  bool processCommandLine();
  void dispatch(std::string_view line);
  void onEhlo(std::string_view args, bool extended);
  void onMail(std::string_view args);
  void onRcpt(std::string_view args);
  void onData(std::string_view args);
  void onBdat(std::string_view args);
  void onStartTls(std::string_view args);
  void onAuth(std::string_view args);
  void onAuthResponse(std::string_view line);
  void finishPlain(std::string_view base64);
  void finishChunk();
  void finishMessage();
  void resetTransaction();
  void restartAfterTls();
  bool authAllowed() const;

  void reply(std::string_view codes, std::string_view text);
  void badCommand(std::string_view codes, std::string_view text);

  SessionOptions options_;
  std::string in_;       // client bytes; those before pos_ are consumed
  size_t pos_ = 0;
  size_t scanned_ = 0;   // bytes after pos_ already searched for LF
  std::string out_;
  std::optional<Request> pending_;
  Mode mode_ = Mode::Command;
  bool closed_ = false;
  bool tls_ = false;
  bool overflow_ = false;  // too much input while pending
  int badCommands_ = 0;

  std::string helo_;       // empty until HELO/EHLO
  bool esmtp_ = false;     // EHLO rather than HELO
  std::string user_;       // authenticated user
  AuthStep authStep_ = AuthStep::None;
  std::string loginUser_;  // AUTH LOGIN between its two steps

  bool inTransaction_ = false;
  Envelope envelope_;
  BodyReader body_;
  bool bdatUsed_ = false;   // BDAT began this transaction: DATA is now out of order
  bool bdatDiscard_ = false;  // chunk is consumed but its transaction was refused
  bool bdatLast_ = false;
  std::string bdatRefusal_;  // "codes|text" to send once a refused chunk is read
  uint64_t bdatChunk_ = 0;
  uint64_t bdatRemaining_ = 0;
};

}  // namespace mb::smtp
