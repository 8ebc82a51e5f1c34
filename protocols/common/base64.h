// Base64 (RFC 4648 section 4, standard alphabet, padded): used by SMTP AUTH and
// by any codec that carries binary in a text protocol.
#pragma once

#include <string>
#include <string_view>

#include "protocols/common/result.h"

namespace mb {

std::string base64Encode(std::string_view bytes);

// Strict: the length must be a multiple of 4, padding only at the end, no
// whitespace, and the unused bits of the last group must be zero. SASL
// (RFC 4954 section 4) expects exactly that, and being strict keeps one
// text from having two meanings.
Result<std::string> base64Decode(std::string_view text);
// The same, appended to `out`; false (and `out` left with some of the bytes
// appended) when the text is not strict base64.
bool appendBase64Decoded(std::string& out, std::string_view text);

}  // namespace mb
