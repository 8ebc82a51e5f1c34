// Splits a client command line into a verb and its arguments, and parses the
// arguments of MAIL, RCPT and BDAT with their ESMTP parameters (RFC 5321
// section 4.1.1, RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8,
// RFC 3461 DSN, RFC 4954 AUTH=, RFC 3030 BDAT).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocols/common/result.h"
#include "protocols/smtp/address.h"

namespace mb::smtp {

enum class Verb { Ehlo, Helo, Mail, Rcpt, Data, Bdat, Rset, Noop, Quit, Vrfy, Expn, Help, StartTls, Auth, Unknown };

struct CommandLine {
  Verb verb = Verb::Unknown;
  std::string_view args;  // after the verb and its separating space(s)
};

// line excludes the CRLF.
CommandLine splitCommand(std::string_view line);

enum class BodyType { SevenBit, EightBitMime };

struct MailParams {
  std::optional<uint64_t> size;  // SIZE=, what the client declared
  BodyType body = BodyType::SevenBit;
  bool smtputf8 = false;
  std::string auth;   // AUTH=, accepted and kept, never trusted
  std::string ret;    // RET=FULL|HDRS
  std::string envid;  // ENVID=, xtext as sent
  bool any = false;   // at least one parameter was given
};

struct MailArgs {
  Path path;
  MailParams params;
};

struct RcptArgs {
  Path path;
  std::string notify;  // NOTIFY=, as sent
  std::string orcpt;   // ORCPT=, as sent
  bool any = false;
};

struct BdatArgs {
  uint64_t size = 0;
  bool last = false;
};

// Parse failures carry the whole reply prefix in Error::respCode ("501 5.5.4")
// and the reply text in Error::message, so the session answers with them.
Result<MailArgs> parseMailArgs(std::string_view args);
Result<RcptArgs> parseRcptArgs(std::string_view args);
Result<BdatArgs> parseBdatArgs(std::string_view args);

}  // namespace mb::smtp
