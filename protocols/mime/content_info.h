// The Content-* fields of one MIME entity (RFC 2045, 2183, 3066, 2557, 1864)
// as BODYSTRUCTURE reports them, with RFC 2231 continuations merged.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/mime/header.h"

namespace mb::mime {

struct Param {
  std::string name;   // as written (case kept: BODYSTRUCTURE echoes it)
  std::string value;  // unquoted; RFC 2231 "name*" values stay percent-encoded
};

struct ContentInfo {
  bool hasType = false;   // a Content-Type field was present
  bool typeBroken = false;  // it did not parse; its params are then ignored
  std::string type;       // as written, possibly empty
  std::string subtype;
  std::vector<Param> params;
  // Raw values: views into the header block, which must outlive the ContentInfo.
  std::optional<std::string_view> id;
  std::optional<std::string_view> description;
  std::optional<std::string> encoding;
  std::optional<std::string_view> md5;
  std::optional<std::string_view> location;
  std::optional<std::string> disposition;
  std::vector<Param> dispositionParams;
  std::vector<std::string> language;

  // First parameter with this name (case-insensitive), or nullptr.
  const std::string* param(std::string_view name) const;
  const std::string* dispositionParam(std::string_view name) const;
};

// Reads the fields of one header block. The first occurrence of each field
// counts (Dovecot does the same, so BODYSTRUCTURE agrees with the reference).
// Every field read is also handed to `alsoTo` when given.
ContentInfo parseContentInfo(std::string_view headerBlock, HeaderFieldSink* alsoTo = nullptr);

// "; a=b; c*0=d..." after the type or disposition token.
std::vector<Param> parseParams(std::string_view text);

}  // namespace mb::mime
