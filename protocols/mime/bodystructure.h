// BODY and BODYSTRUCTURE (RFC 3501 section 7.4.2, RFC 9051 section 7.5.2)
// written from the parsed structure, in Dovecot 2.3's exact form.
#pragma once

#include <string>
#include <string_view>

#include "protocols/mime/structure.h"

namespace mb::mime {

// The parenthesised lists for FETCH BODYSTRUCTURE and BODY (the same
// without extension data), written in one walk of the tree. raw is the
// message the node was parsed from (for nested envelopes).
void formatBodyStructures(const Node& root, std::string_view raw, std::string& bodyStructure, std::string& body);

}  // namespace mb::mime
