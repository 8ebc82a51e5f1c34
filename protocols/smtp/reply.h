// Client side of SMTP replies (RFC 5321 section 4.2): an incremental parser
// for single- and multi-line replies with enhanced status codes (RFC 2034,
// RFC 3463), and the EHLO capability list (RFC 5321 section 4.1.1.1).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/common/result.h"

namespace mb::smtp {

struct Reply {
  int code = 0;          // 220, 250, 354, 535...
  std::string enhanced;  // "2.1.0", or empty when the server sent none
  // Text of each line after "ddd-"/"ddd ", with the enhanced code removed
  // from each line that repeats it.
  std::vector<std::string> lines;

  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }
  // All lines joined by a space, for logs and bounce texts.
  std::string text() const;
};

// Feed bytes in any split; take whole replies with next(). A malformed reply
// is an error that stays: the connection is out of sync and must be dropped.
class ReplyParser {
 public:
  void feed(std::string_view bytes);
  // A complete reply, nullopt when more bytes are needed, or the error.
  Result<std::optional<Reply>> next();

 private:
  Status parseLine(std::string_view line, bool& last);

  std::string buffer_;
  size_t pos_ = 0;
  Reply current_;
  bool inReply_ = false;
  size_t replyBytes_ = 0;
  std::deque<Reply> ready_;
  std::optional<Error> error_;
};

// Capabilities from an EHLO reply: keyword (upper case) -> parameters.
// The first line (the server's name) is not a capability.
class Capabilities {
 public:
  static Capabilities fromEhlo(const Reply& reply);
  bool has(std::string_view keyword) const;
  // nullptr when the keyword is absent.
  const std::vector<std::string>* params(std::string_view keyword) const;
  bool hasAuth(std::string_view mechanism) const;
  // SIZE n; nullopt when absent, 0 when the server set no limit.
  std::optional<uint64_t> sizeLimit() const;

 private:
  std::map<std::string, std::vector<std::string>, std::less<>> keywords_;
};

}  // namespace mb::smtp
