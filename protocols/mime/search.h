// Text for SEARCH (RFC 3501 section 6.4.4): decoded header values, decoded
// body text, and the case-insensitive substring match SEARCH uses.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "protocols/mime/part.h"

namespace mb::mime {

// Every value of the named field in a header block, unfolded, RFC 2047
// decoded, UTF-8. For SEARCH HEADER / FROM / SUBJECT...
std::vector<std::string> headerValues(std::string_view headerBlock, std::string_view name);

// A header block as SEARCH TEXT sees it: every field as "Name: value" with
// the value unfolded and RFC 2047 decoded to UTF-8, one per line.
std::string headerText(std::string_view headerBlock);

// The message's top-level header block.
std::string_view topHeader(std::string_view raw, const Part& root);

// The text of every text/* leaf (encapsulated messages included), transfer
// encoding undone and converted to UTF-8, parts separated by a newline.
// For SEARCH BODY; SEARCH TEXT is this plus the decoded header.
std::string bodyText(std::string_view raw, const Part& root);

// Unicode case folding (GLib's) so "STRASSE" finds "straße"... as far as
// simple folding goes; invalid UTF-8 falls back to ASCII folding.
std::string foldForSearch(std::string_view text);

// SEARCH's "contains, case-insensitively". Fold the needle once with
// foldForSearch and use containsFolded when matching many messages.
bool containsIgnoreCase(std::string_view haystack, std::string_view needle);
bool containsFolded(std::string_view haystack, std::string_view foldedNeedle);

// SEARCH HEADER over many messages without re-reading their headers: every
// value of the named field (headerValues), each folded (foldForSearch) and
// followed by a NUL, in one string ("" when the field is absent). A cache
// keeps this per message; packedContains answers what containsIgnoreCase
// answers for any of the values: a NUL-free folded needle cannot match
// across two values.
std::string packFoldedValues(std::string_view headerBlock, std::string_view name);
// Whether some value contains foldedNeedle (foldForSearch of the key). A
// needle with a NUL (never from IMAP: CHAR8 excludes it) is checked value by
// value.
bool packedContains(std::string_view packed, std::string_view foldedNeedle);

}  // namespace mb::mime
