// FETCH BODY[section] / BINARY[section] resolution over the stored part tree
// (RFC 3501 section 6.4.5, RFC 3516): byte ranges of the raw message, no parse.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/common/result.h"
#include "protocols/mime/part.h"

namespace mb::mime {

enum class SectionText : std::uint8_t {
  None,             // BODY[1.2] or BODY[] (the whole message)
  Header,           // BODY[HEADER], BODY[2.HEADER]
  HeaderFields,     // BODY[HEADER.FIELDS (a b)]
  HeaderFieldsNot,  // BODY[HEADER.FIELDS.NOT (a b)]
  Text,             // BODY[TEXT]
  Mime,             // BODY[1.MIME]
};

struct SectionSpec {
  std::vector<std::uint32_t> path;  // 1-based part numbers
  SectionText text = SectionText::None;
  std::vector<std::string> fields;  // for HEADER.FIELDS[.NOT]
};

// Parses what sits between the brackets: "", "1.2.MIME", "HEADER.FIELDS (From \"Subject\")".
// Case-insensitive; a Syntax error for anything RFC 3501 does not allow.
Result<SectionSpec> parseSectionSpec(std::string_view text);

struct ResolvedSection {
  ByteRange range;           // what to send, or the header block to filter
  SectionText text = SectionText::None;
  std::vector<std::string> fields;
  const Part* part = nullptr;  // the part the numbers led to (for BINARY: its encoding)
};

// NotFound when the numbers lead nowhere, or HEADER/TEXT is asked of a part
// that is not message/rfc822. Dovecot answers those with an empty string; the
// server should do the same (RFC 3501 leaves it open). Rules as in Dovecot:
// "1" of a non-multipart is its body (for a leaf inside a multipart "2.1"
// too, but not "1.1" of a one-part message), numbers
// after a message/rfc822 part go into the encapsulated message, MIME of a
// top-level non-multipart body is the message header.
Result<ResolvedSection> resolveSection(const Part& root, const SectionSpec& spec);
Result<ResolvedSection> resolveSection(const Part& root, std::string_view section);

// The bytes to send: a slice, or the HEADER.FIELDS filter applied to it.
std::string extractSection(std::string_view raw, const ResolvedSection& section);

// BINARY[section] (RFC 3516): the part's content with its transfer encoding
// undone. Multiparts and messages come back as they are stored.
Result<std::string> extractBinary(std::string_view raw, const Part& root, std::string_view section);

}  // namespace mb::mime
