// Helpers shared by the session's source files (not a public interface).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocols/imap/command.h"

namespace mb::imap::detail {

// "(\Seen $Label)" atoms for a flags value.
std::vector<std::string> flagAtoms(uint32_t flags, const std::vector<std::string>& keywords);
// Client flag list -> bits + keywords. False for an unknown system flag
// ("\Foo"); \Recent is accepted and dropped (it cannot be stored).
bool parseFlags(const std::vector<std::string>& in, uint32_t& bits, std::vector<std::string>& keywords);
// Days since 1970-01-01 of a civil date.
int64_t daysFromCivil(int y, unsigned m, unsigned d);
// "17-Jul-1996 02:44:25 +0000" for unix seconds (UTC).
std::string formatInternalDate(int64_t unixSeconds);
int64_t toUnix(const DateTime& dt);
// "1:3,5" for ascending values.
std::string compactSet(const std::vector<uint32_t>& values);

}  // namespace mb::imap::detail
