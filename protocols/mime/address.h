// Address lists for ENVELOPE (RFC 3501 section 7.4.2, RFC 5322 section 3.4):
// parsed the way Dovecot 2.3 parses them, so our ENVELOPE matches the reference.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mb::mime {

// One ENVELOPE address. A group start has mailbox = group name and no host;
// a group end has every field empty (NIL NIL NIL NIL).
struct Address {
  std::optional<std::string> name;
  std::optional<std::string> adl;      // source route "@a,@b", obsolete but reported
  std::optional<std::string> mailbox;
  std::optional<std::string> host;
};

// Never fails: what cannot be parsed becomes MISSING_MAILBOX / MISSING_DOMAIN
// entries (as in Dovecot) and parsing stops where the list stops making sense.
// Encoded words are kept raw: decoding them is the client's job in ENVELOPE.
std::vector<Address> parseAddressList(std::string_view value);

// ((name adl mailbox host)...) or NIL for an empty list.
void appendAddressList(std::string& out, const std::vector<Address>& list);

}  // namespace mb::mime
