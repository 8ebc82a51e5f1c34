// Mailbox names on the wire: modified UTF-7 (RFC 3501 5.1.3) encode/decode,
// UTF-8 names once UTF8=ACCEPT is enabled (RFC 6855 3), and INBOX folding.
#pragma once

#include <string>
#include <string_view>

#include "protocols/common/result.h"

namespace mb::imap {

// UTF-8 -> modified UTF-7. Fails (Syntax) on invalid UTF-8.
Result<std::string> mutf7Encode(std::string_view utf8);
// Modified UTF-7 -> UTF-8. Strict: rejects what RFC 3501 5.1.3 says MUST NOT
// be sent (8-bit bytes, printable ASCII inside a shift, "&" unterminated,
// non-zero padding bits, lone surrogates, adjacent shift sequences), so every
// accepted name has exactly one wire form and round-trips.
Result<std::string> mutf7Decode(std::string_view mutf7);

// Well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool isValidUtf8(std::string_view s);

// "INBOX" in any case (RFC 3501 5.1: the name INBOX is case-insensitive).
bool isInbox(std::string_view name);
// Folds the INBOX prefix to upper case: "inbox" -> "INBOX" and, when the
// hierarchy separator is given, "Inbox/Sub" -> "INBOX/Sub" (children of
// INBOX must resolve to the same parent whatever case the client used).
std::string normalizeInbox(std::string_view name, char separator = '\0');

// Wire name (as unquoted from an astring) -> internal UTF-8 name. Without
// UTF8=ACCEPT the wire form is mUTF-7; with it, names are UTF-8 as sent.
Result<std::string> mailboxFromWire(std::string_view wire, bool utf8Accept);
// Internal UTF-8 name -> the wire form for the session's mode.
Result<std::string> mailboxToWire(std::string_view utf8, bool utf8Accept);

}  // namespace mb::imap
