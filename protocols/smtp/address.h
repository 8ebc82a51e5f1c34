// Mailbox paths of MAIL FROM / RCPT TO (RFC 5321 section 4.1.2), with the
// UTF-8 extensions of RFC 6531 section 3.3. Pure parsing, no DNS.
#pragma once

#include <string>
#include <string_view>

#include "protocols/common/result.h"

namespace mb::smtp {

struct Path {
  // The local part as it was written, quotes and backslashes included, so the
  // address is relayed upstream byte for byte. Empty for the null path <>.
  std::string localPart;
  // The domain, or an address literal with its brackets ("[127.0.0.1]").
  // Empty for the null path and for the special RCPT TO:<Postmaster>.
  std::string domain;
  // True when a byte >= 0x80 occurs: the client must have said SMTPUTF8.
  bool needsUtf8 = false;

  bool isNull() const { return localPart.empty() && domain.empty(); }
  // "local@domain", "Postmaster", or "" for the null path.
  std::string address() const;
  // The path as written on the wire: "<local@domain>" or "<>".
  std::string wire() const { return "<" + address() + ">"; }
};

enum class PathKind {
  Reverse,  // MAIL FROM: the null path <> is allowed
  Forward,  // RCPT TO: <Postmaster> without a domain is allowed, <> is not
};

// Parses "<...>" at the start of text. On success returns the path and sets
// consumed to the bytes used (the caller parses the ESMTP parameters after
// them). A source route ("<@a,@b:user@c>", RFC 5321 appendix C) is accepted
// and dropped. Bytes >= 0x80 must be well-formed UTF-8; whether they are
// allowed is the caller's decision (Path::needsUtf8).
Result<Path> parsePath(std::string_view text, PathKind kind, size_t& consumed);

// Validates a bare domain name (the EHLO argument uses the same grammar,
// but we are lenient there; this is for paths).
bool isValidDomain(std::string_view domain);

}  // namespace mb::smtp
