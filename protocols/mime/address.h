// Address lists for ENVELOPE (RFC 3501 section 7.4.2, RFC 5322 section 3.4):
// parsed the way Dovecot 2.3 parses them, so our ENVELOPE matches the reference.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mb::mime {

// Writes one ENVELOPE address list, "((name adl mailbox host)...)", or NIL
// when it has no address. Each add() parses one occurrence of the field (its
// raw value: unfolded here) and writes its addresses straight into `out`, so
// no address is kept as strings of its own.
//
// Parsing never fails: what cannot be parsed becomes MISSING_MAILBOX /
// MISSING_DOMAIN entries (as in Dovecot) and parsing stops where the list
// stops making sense. A group start has mailbox = group name and no host; a
// group end has every field NIL. Encoded words are kept raw: decoding them is
// the client's job in ENVELOPE.
class AddressListWriter {
 public:
  explicit AddressListWriter(std::string& out);
  void add(std::string_view rawValue);
  // Closes the list; false if it had no address (NIL was written).
  bool finish();

 private:
  std::string& out_;
  std::size_t begin_;
  std::string unfolded_;
};

}  // namespace mb::mime
