// BODY and BODYSTRUCTURE (RFC 3501 section 7.4.2, RFC 9051 section 7.5.2)
// written from the parsed structure, in Dovecot 2.3's exact form.
#pragma once

#include <string>
#include <string_view>

#include "protocols/mime/structure.h"

namespace mb::mime {

// The parenthesised list for FETCH BODYSTRUCTURE (extended = true) or BODY.
// raw is the message the node was parsed from (for nested envelopes).
std::string formatBodyStructure(const Node& root, std::string_view raw, bool extended);

}  // namespace mb::mime
