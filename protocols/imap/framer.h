// Incremental IMAP command framer (sans-I/O): splits the client byte stream
// into whole commands (lines plus the literals between them), enforcing limits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mb::imap {

// Every buffer the framer keeps is bounded by these numbers, whatever the
// peer sends (bytes handed to feed() but not yet framed excepted: call next()
// until NeedMore after every feed()).
struct ParserLimits {
  // All non-literal bytes of one command, summed over its lines.
  size_t maxLineLength = 64 * 1024;
  // One literal ({N}, {N+}, ~{N}).
  uint64_t maxLiteralSize = 64ull * 1024 * 1024;
  // All literal bytes of one command (MULTIAPPEND sends several).
  uint64_t maxCommandLiterals = 128ull * 1024 * 1024;
  // An oversized non-synchronizing literal is already on its way (RFC 7888
  // 4/5): up to this size we read and drop it and the connection goes on;
  // beyond it, dropping costs more than reconnecting, so we ask to close.
  uint64_t maxDiscard = 256ull * 1024 * 1024;
};

// One literal as received. `binary` is literal8 (~{N}, RFC 3516), the only
// form that may carry NUL; `nonSync` is {N+} (RFC 7888).
struct Literal {
  std::string data;
  bool binary = false;
  bool nonSync = false;
};

// A framed command: lines[i] is followed on the wire by literals[i], so
// lines.size() == literals.size() + 1. Lines exclude the CRLF (or bare LF);
// a line ending in a literal header keeps the header, e.g. "a LOGIN {3}".
struct RawCommand {
  std::vector<std::string> lines;
  std::vector<Literal> literals;
};

// What the session must answer when framing fails. The framer has already
// arranged to skip the rest of the failed command (or stops, if close).
struct FrameError {
  std::string tag;        // "*" when no valid tag could be read
  bool bad = true;        // tagged BAD (syntax/limits) vs tagged NO
  std::string respCode;   // e.g. "TOOBIG"; empty when none
  std::string message;    // human text naming the problem
  bool closeConnection = false;  // send BYE and close after answering
};

enum class FrameEvent {
  NeedMore,      // feed more bytes
  Continuation,  // a synchronizing literal may be sent: write "+ ..." now
  Command,       // takeCommand() holds a whole command
  Error,         // error() says what to answer
};

class Framer {
 public:
  // Command: normal IMAP commands with literals. Line: a single raw line
  // with no literal processing, for the IDLE "DONE" line (RFC 2177) and
  // AUTHENTICATE client responses (RFC 3501 6.2.2), which are not commands.
  enum class Mode { Command, Line };

  // literalMinus: the server advertises LITERAL- instead of LITERAL+, so a
  // non-synchronizing literal above 4096 octets is an error (RFC 7888 4).
  explicit Framer(ParserLimits limits = {}, bool literalMinus = false);

  Framer(const Framer&) = delete;
  Framer& operator=(const Framer&) = delete;

  void feed(std::string_view bytes);
  FrameEvent next();
  // Valid after next() returned Command; moves it out.
  RawCommand takeCommand();
  const FrameError& error() const { return error_; }

  // Takes effect at the next line boundary; sessions switch right after
  // answering "+ idling" or an AUTHENTICATE challenge.
  void setMode(Mode mode) { mode_ = mode; }
  Mode mode() const { return mode_; }
  const ParserLimits& limits() const { return limits_; }
  // Applies from the next literal announced; one being read keeps its size.
  void setLimits(const ParserLimits& limits) { limits_ = limits; }

  // Bytes held: unframed input plus the partial command. For tests/fuzzing.
  size_t bufferedBytes() const;
  // True once a fatal error was reported; all further input is ignored.
  bool closed() const { return state_ == State::Closed; }

 private:
  enum class State { Line, Literal, DiscardLine, DiscardLiteral, Closed };

  FrameEvent lineComplete();
  FrameEvent failCommand(bool bad, std::string respCode, std::string message, bool discardRest);
  void resetCommand();
  std::string tagOfCurrent() const;

  ParserLimits limits_;
  bool literalMinus_;
  Mode mode_ = Mode::Command;
  State state_ = State::Line;
  std::string input_;  // fed but not yet consumed
  size_t inputPos_ = 0;
  std::string line_;   // the line being read
  RawCommand current_;
  RawCommand ready_;
  size_t lineBytes_ = 0;        // non-literal bytes of current_ so far
  uint64_t literalBytes_ = 0;   // literal bytes of current_ so far
  uint64_t remaining_ = 0;      // literal bytes still to read or drop
  std::string discardTail_;     // last bytes of a dropped line: finds {N+}
  bool discardLiterals_ = true;  // the dropped line may announce literals
  FrameError error_;
};

// Recognises a literal header ending a line: "{N}", "{N+}", "~{N}", "~{N+}".
// Returns false when the line does not end in one; size may exceed any limit.
struct LiteralHeader {
  uint64_t size = 0;
  bool nonSync = false;
  bool binary = false;
  size_t start = 0;  // offset of '{' or '~' in the line
  bool overflow = false;  // more digits than fit: treat as too big
};
bool findLiteralHeader(std::string_view line, LiteralHeader& out);

}  // namespace mb::imap
