// The offset-keeping MIME structure parser (RFC 2045/2046, RFC 5322), modelled
// on Dovecot's message-parser so sizes and part numbers match the reference.
#pragma once

#include <string_view>
#include <vector>

#include "protocols/mime/content_info.h"
#include "protocols/mime/header.h"
#include "protocols/mime/part.h"

namespace mb::mime {

// A parsed entity with the Content-* data BODYSTRUCTURE needs; analysis keeps
// only the slimmer Part tree once the strings are written.
struct Node {
  PartKind kind = PartKind::Leaf;
  std::size_t headerBegin = 0;
  std::size_t headerEnd = 0;
  std::size_t bodyEnd = 0;
  std::uint32_t bodyLines = 0;
  ContentInfo info;
  std::vector<Node> children;
};

// Never fails: every byte string is some message. Nesting deeper than
// kMaxDepth is treated as an opaque leaf so hostile input cannot blow the stack.
// scan is LineScan(raw): line counts and boundary candidates come from it.
// Every field of the top-level header is handed to `topFields` when given.
inline constexpr int kMaxDepth = 64;
Node parseStructure(std::string_view raw, const LineScan& scan, HeaderFieldSink* topFields = nullptr);

Part toPart(const Node& node);

}  // namespace mb::mime
