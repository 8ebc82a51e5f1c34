// Small ASCII and UTF-8 helpers shared by the SMTP codecs. Locale-free on
// purpose: protocol keywords are ASCII whatever the process locale says.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocols/common/ascii.h"

namespace mb::smtp {

inline bool isAlpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
inline bool isDigit(unsigned char c) { return c >= '0' && c <= '9'; }
inline bool isAlnum(unsigned char c) { return isAlpha(c) || isDigit(c); }
using ascii::iequals;
using ascii::startsWithIgnoreCase;

// Length of the well-formed UTF-8 sequence starting at text[pos] (a byte
// >= 0x80), or 0 when it is malformed: overlong, surrogate, > U+10FFFF or cut.
size_t utf8SequenceLength(std::string_view text, size_t pos);

// Decimal digits only, no sign, no overflow past 2^63; nullopt otherwise.
std::optional<uint64_t> parseDecimal(std::string_view text);

// Overwrites a buffer that held a secret before it is freed.
void wipe(std::string& secret);

}  // namespace mb::smtp
