// The IMAP ENVELOPE of a header block (RFC 3501 section 7.4.2): raw header
// values, no RFC 2047 decoding, address lists parsed like Dovecot does.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/mime/header.h"

namespace mb::mime {

// Every occurrence's raw value of one address field, in header order
// (nearly always one, which is kept without an allocation).
class RawValues {
 public:
  void add(std::string_view value) {
    if (count_++ == 0) first_ = value;
    else more_.push_back(value);
  }
  bool empty() const { return count_ == 0; }
  template <class F>
  void forEach(F&& f) const {
    if (count_ == 0) return;
    f(first_);
    for (std::string_view v : more_) f(v);
  }

 private:
  std::size_t count_ = 0;
  std::string_view first_;
  std::vector<std::string_view> more_;
};

// The fields an ENVELOPE is made of, as views into the header block they
// were read from (which must outlive the Envelope): address lists are parsed
// only when the ENVELOPE is written, straight into it.
struct Envelope {
  std::optional<std::string_view> date;
  std::optional<std::string_view> subject;
  RawValues from;
  RawValues sender;   // no address means "same as from" on the wire
  RawValues replyTo;  // likewise
  RawValues to;
  RawValues cc;
  RawValues bcc;
  std::optional<std::string_view> inReplyTo;
  std::optional<std::string_view> messageId;
};

// Single-valued fields: the last occurrence wins; address fields: every
// occurrence adds to the list. Both are what Dovecot 2.3 answers.
Envelope parseEnvelope(std::string_view headerBlock);
// parseEnvelope's step for one field, for a caller that walks the header
// block itself (the analysis reads the top-level header once for ENVELOPE
// and its SEARCH fields).
void addEnvelopeField(Envelope& envelope, const HeaderField& field);

// Appends "(date subject from sender reply-to to cc bcc in-reply-to message-id)".
void appendEnvelope(std::string& out, const Envelope& envelope);

}  // namespace mb::mime
