// The IMAP ENVELOPE of a header block (RFC 3501 section 7.4.2): raw header
// values, no RFC 2047 decoding, address lists parsed like Dovecot does.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/mime/address.h"
#include "protocols/mime/header.h"

namespace mb::mime {

struct Envelope {
  std::optional<std::string> date;
  std::optional<std::string> subject;
  std::vector<Address> from;
  std::vector<Address> sender;   // empty means "same as from" on the wire
  std::vector<Address> replyTo;  // likewise
  std::vector<Address> to;
  std::vector<Address> cc;
  std::vector<Address> bcc;
  std::optional<std::string> inReplyTo;
  std::optional<std::string> messageId;
};

// Single-valued fields: the last occurrence wins; address fields: every
// occurrence adds to the list. Both are what Dovecot 2.3 answers.
Envelope parseEnvelope(std::string_view headerBlock);
// parseEnvelope's step for one field, for a caller that walks the header
// block itself (the analysis reads the top-level header once for ENVELOPE
// and its SEARCH fields).
void addEnvelopeField(Envelope& envelope, const HeaderField& field);

// "(date subject from sender reply-to to cc bcc in-reply-to message-id)".
std::string formatEnvelope(const Envelope& envelope);

}  // namespace mb::mime
