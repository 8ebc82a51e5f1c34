// The MIME part tree of a stored message: byte offsets into the raw bytes for
// every entity, so FETCH BODY[section] is a slice and never a re-parse.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mb::mime {

enum class PartKind : std::uint8_t {
  Leaf,       // a body with no structure we look into
  Multipart,  // children are the body parts (may be none when the boundary never shows)
  Message,    // message/rfc822: exactly one child, the encapsulated message
};

struct ByteRange {
  std::size_t begin = 0;
  std::size_t end = 0;
  std::size_t size() const { return end - begin; }
  bool operator==(const ByteRange&) const = default;
};

// One MIME entity. The header is [headerBegin, headerEnd) including the empty
// line that ends it; the body is [headerEnd, bodyEnd) and excludes the line
// break before the next boundary (RFC 2046 section 5.1.1 gives it to the boundary).
struct Part {
  PartKind kind = PartKind::Leaf;
  std::size_t headerBegin = 0;
  std::size_t headerEnd = 0;
  std::size_t bodyEnd = 0;
  std::uint32_t bodyLines = 0;  // LF count of the body, as BODYSTRUCTURE reports
  // What the parser took the part for, lower case: "text/plain" by default,
  // "message/rfc822" for digest members without Content-Type.
  std::string mediaType;
  std::string charset;   // the charset parameter as written, may be empty
  std::string encoding;  // Content-Transfer-Encoding lower case, empty = 7bit
  std::string filename;  // filename / name parameter, raw, may be empty
  bool attachment = false;
  std::vector<Part> children;

  ByteRange header() const { return {headerBegin, headerEnd}; }
  ByteRange body() const { return {headerEnd, bodyEnd}; }
  ByteRange whole() const { return {headerBegin, bodyEnd}; }
};

}  // namespace mb::mime
