// IMAP string output for ENVELOPE and BODYSTRUCTURE (RFC 3501 section 4.3 and
// 4.5): quoted strings, literals and NIL, with Dovecot's choices of when to use which.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mb::mime {

// The one quoting rule: a quoted string with " and \ escaped, unless the value
// holds bytes a quoted string cannot carry (CR, LF, NUL, 8-bit), then a
// literal {n}\r\n. NUL becomes 0x80 because no IMAP string may carry it.
void appendImapString(std::string& out, std::string_view value);

// For header-derived strings (date, message-id, content-id...): folding CR/LF
// is dropped first, as Dovecot does, so the value stays a quoted string.
void appendImapNStringNoLf(std::string& out, std::optional<std::string_view> value);

// For text shown to people (subject, display names): whitespace runs become
// one space and the ends are trimmed. Dovecot then prefers a literal whenever
// it changed anything or the text has " \ or 8-bit; we match it byte for byte
// so clients see the same ENVELOPE from us as from the reference server.
void appendImapHumanString(std::string& out, std::string_view value);

}  // namespace mb::mime
