// The IMAP server-side command parser: fed bytes, it answers "need more",
// "send a continuation", a typed Command, or an error to answer with.
#pragma once

#include <string>
#include <string_view>

#include "protocols/common/result.h"
#include "protocols/imap/command.h"
#include "protocols/imap/framer.h"

namespace mb::imap {

struct ParserOptions {
  ParserLimits limits;
  // The server advertises LITERAL- rather than LITERAL+ (RFC 7888 4).
  bool literalMinus = false;
  // UTF8=ACCEPT is enabled (RFC 6855 3, RFC 9051 6.3.1): quoted strings may
  // carry UTF-8. Otherwise 8-bit octets are allowed only inside literals.
  bool utf8Accept = false;
  // Nesting bound for SEARCH keys ("NOT NOT ...", "((((...") so a hostile
  // command cannot exhaust the stack.
  int maxSearchDepth = 64;
};

// What to answer for a command that could not be parsed or framed:
// "<tag> BAD [respCode] message" (or NO when !bad), then BYE + close when
// closeConnection. tag is "*" when no valid tag was read.
struct ParseError {
  std::string tag;
  bool bad = true;
  std::string respCode;
  std::string message;
  bool closeConnection = false;
};

// Parses one framed command. On failure `tag` still holds the tag if one
// was read ("*" otherwise) so the BAD can be tagged. Errors are Syntax.
Result<Command> parseCommand(const RawCommand& raw, const ParserOptions& options, std::string& tag);

class CommandParser {
 public:
  enum class Event {
    NeedMore,      // feed() more bytes
    Continuation,  // write "+ Ready for literal data\r\n" now (RFC 3501 7.5)
    Command,       // takeCommand()
    IdleDone,      // the client ended IDLE with "DONE" (RFC 2177)
    AuthResponse,  // takeLine(): one AUTHENTICATE response line ("*" cancels)
    Error,         // error(): answer it; the parser has already skipped the
                   // rest of the bad command, so just call next() again
  };

  explicit CommandParser(ParserOptions options = {});

  CommandParser(const CommandParser&) = delete;
  CommandParser& operator=(const CommandParser&) = delete;

  void feed(std::string_view bytes) { framer_.feed(bytes); }
  Event next();

  Command takeCommand() { return std::move(command_); }
  std::string takeLine() { return std::move(line_); }
  const ParseError& error() const { return error_; }

  // After "+ idling": the next line must be DONE; then back to commands.
  void expectIdleDone();
  // After an AUTHENTICATE challenge: the next line is a SASL response.
  void expectAuthResponse();
  // After ENABLE UTF8=ACCEPT (RFC 6855 3).
  void setUtf8Accept(bool on) { options_.utf8Accept = on; }
  // E.g. the larger literals allowed once logged in.
  void setLimits(const ParserLimits& limits) {
    options_.limits = limits;
    framer_.setLimits(limits);
  }
  const ParserOptions& options() const { return options_; }
  // For tests and the fuzzer: bytes held right now.
  size_t bufferedBytes() const { return framer_.bufferedBytes(); }

 private:
  enum class Expect { Command, IdleDone, AuthResponse };

  ParserOptions options_;
  Framer framer_;
  Expect expect_ = Expect::Command;
  Command command_;
  std::string line_;
  ParseError error_;
};

}  // namespace mb::imap
