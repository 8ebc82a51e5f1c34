// Incremental IMAP response parser for the upstream client (sans-I/O): fed
// the server's bytes split anywhere, it yields typed responses or errors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/common/result.h"
#include "protocols/imap/client_response.h"

namespace mb::imap::client {

// Everything the parser holds is bounded by these numbers, whatever the
// server sends (bytes handed to feed() but not yet parsed excepted: call
// next() until NeedMore after every feed()).
struct ResponseLimits {
  // All non-literal bytes of one response, summed over its lines. Large
  // because "* SEARCH" for a big mailbox lists every number on one line.
  size_t maxLineLength = 16 * 1024 * 1024;
  // One literal: an upstream message can be tens of MB.
  uint64_t maxLiteralSize = 256ull * 1024 * 1024;
  // All literal bytes of one response (BODY[HEADER] + BODY[] + BINARY[]...).
  uint64_t maxResponseLiterals = 512ull * 1024 * 1024;
};

struct ResponseParserOptions {
  ResponseLimits limits;
  // The first response must be the greeting (RFC 3501 7.1). False for a
  // parser created after STARTTLS, which sees no new greeting.
  bool expectGreeting = true;
  // UTF8=ACCEPT was enabled (RFC 6855 3): names are UTF-8, not mUTF-7.
  bool utf8Accept = false;
};

// A response that could not be framed or parsed.
struct ResponseError {
  Error error;  // Syntax: malformed; Upstream: over a limit
  // The response's tag when it could be read ("*" untagged, "+"
  // continuation, "" unknown): a lost tagged completion must fail its
  // command rather than leave it waiting forever.
  std::string tag;
  // The stream cannot be resynchronised (a literal size that does not fit
  // in 64 bits, a non-IMAP greeting): drop the connection.
  bool fatal = false;
};

class ResponseParser {
 public:
  enum class Event {
    NeedMore,  // feed() more bytes
    Response,  // takeResponse()
    Error,     // error(); unless fatal, the bad response was skipped whole
               // and next() goes on with the following one
  };

  explicit ResponseParser(ResponseParserOptions options = {});

  ResponseParser(const ResponseParser&) = delete;
  ResponseParser& operator=(const ResponseParser&) = delete;

  // Bytes of a literal being read go straight into its buffer when nothing
  // else is pending, so a large BODY[] is copied once, from here.
  void feed(std::string_view bytes);
  // Reads without the copy: while a literal is being read and nothing else
  // is buffered, the caller may read the next bytes straight into the
  // literal's own buffer. literalWindow(minBytes) returns where (empty when
  // that cannot be done, or fewer than minBytes of the literal remain); the
  // caller then reports how many bytes it put there with literalWritten(n),
  // 0 included. Any other call in between takes the window back unused.
  std::span<char> literalWindow(size_t minBytes);
  void literalWritten(size_t n);
  Event next();
  // Valid after next() returned Response; moves it out.
  Response takeResponse() { return std::move(response_); }
  const ResponseError& error() const { return error_; }

  // Call once ENABLED UTF8=ACCEPT arrived; applies to the next response.
  void setUtf8Accept(bool on) { options_.utf8Accept = on; }
  const ResponseParserOptions& options() const { return options_; }

  // Bytes held right now (unparsed input, partial response). For tests and
  // the fuzzer: stays within the limits plus one fed chunk.
  size_t bufferedBytes() const;
  // Literal bytes still expected for the response being read: lets a
  // consumer report download progress of a large message.
  uint64_t literalBytesPending() const { return remaining_; }
  bool closed() const { return state_ == State::Closed; }

 private:
  enum class State { Line, Literal, DiscardLine, DiscardLiteral, Closed };

  Event lineComplete();
  Event responseComplete();
  Event failResponse(ErrorKind kind, std::string message, bool discardRest);
  Event fatal(std::string message);
  bool literalsAllowed() const;
  void resetResponse();
  std::string currentTag() const;
  void dropWindow();

  ResponseParserOptions options_;
  State state_ = State::Line;
  std::string input_;
  size_t inputPos_ = 0;
  std::string line_;
  std::vector<std::string> lines_;       // lines_[i] is followed by literals_[i]
  std::vector<std::string> literals_;
  std::vector<bool> literal8_;
  size_t lineBytes_ = 0;
  uint64_t literalBytes_ = 0;
  uint64_t remaining_ = 0;
  // An open literalWindow: literals_.back() is sized to its end, its bytes
  // from windowBase_ on not written yet.
  bool windowOpen_ = false;
  size_t windowBase_ = 0;
  std::string discardTail_;
  bool discardLiterals_ = true;
  bool greetingSeen_ = false;
  Response response_;
  ResponseError error_;
};

// Parses one whole response (lines and the literals between them; moved
// from). Exposed for tests; ResponseParser is the normal entry point.
Result<Response> parseResponse(std::vector<std::string>& lines, std::vector<std::string>& literals,
                               const std::vector<bool>& literal8, bool utf8Accept, bool greeting);

}  // namespace mb::imap::client
