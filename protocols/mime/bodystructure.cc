// BODY / BODYSTRUCTURE writer. Where RFC 3501 leaves room, Dovecot's choices
// are copied (default charset, empty multipart, Content-MD5) so clients that
// cache structure see the same answer from us as from a Dovecot upstream.
#include "protocols/mime/bodystructure.h"

#include "protocols/mime/envelope.h"
#include "protocols/mime/header.h"
#include "protocols/mime/imap_quote.h"

namespace mb::mime {

namespace {

// A multipart with no parts is not allowed in BODYSTRUCTURE; say "empty text".
constexpr const char* kEmptyBody = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)";
constexpr const char* kEmptyBodyStructure =
    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)";

void writeParams(std::string& out, const std::vector<Param>& params, bool defaultCharset) {
  if (params.empty() && !defaultCharset) {
    out += "NIL";
    return;
  }
  out += '(';
  bool sawCharset = false;
  bool first = true;
  for (const auto& p : params) {
    if (!first) out += ' ';
    first = false;
    if (equalsIgnoreCase(p.name, "charset")) sawCharset = true;
    appendImapString(out, p.name);
    out += ' ';
    appendImapString(out, p.value);
  }
  if (defaultCharset && !sawCharset) {
    if (!first) out += ' ';
    out += "\"charset\" \"us-ascii\"";
  }
  out += ')';
}

// disposition language location, shared by leaves and multiparts.
void writeCommonExtension(std::string& out, const ContentInfo& info) {
  out += ' ';
  if (!info.disposition) {
    out += "NIL";
  } else {
    out += '(';
    appendImapString(out, *info.disposition);
    out += ' ';
    writeParams(out, info.dispositionParams, false);
    out += ')';
  }
  out += ' ';
  if (info.language.empty()) {
    out += "NIL";
  } else {
    out += '(';
    for (std::size_t i = 0; i < info.language.size(); ++i) {
      if (i) out += ' ';
      appendImapString(out, info.language[i]);
    }
    out += ')';
  }
  out += ' ';
  appendImapNStringNoLf(out, info.location);
}

void writePart(std::string& out, const Node& node, std::string_view raw, bool extended);

void writeMultipart(std::string& out, const Node& node, std::string_view raw, bool extended) {
  if (node.children.empty()) {
    out += extended ? kEmptyBodyStructure : kEmptyBody;
  } else {
    for (const auto& c : node.children) {
      out += '(';
      writePart(out, c, raw, extended);
      out += ')';
    }
  }
  out += ' ';
  appendImapString(out, node.info.subtype);
  if (!extended) return;
  out += ' ';
  writeParams(out, node.info.params, false);
  writeCommonExtension(out, node.info);
}

void writeLeaf(std::string& out, const Node& node, std::string_view raw, bool extended) {
  const ContentInfo& info = node.info;
  bool text = false;
  if (node.kind == PartKind::Message) {
    out += "\"message\" \"rfc822\"";
  } else if (!info.hasType) {
    text = true;
    out += "\"text\" \"plain\"";
  } else {
    text = equalsIgnoreCase(info.type, "text");
    appendImapString(out, info.type);
    out += ' ';
    appendImapString(out, info.subtype);
  }
  out += ' ';
  writeParams(out, info.params, text);
  out += ' ';
  appendImapNStringNoLf(out, info.id);
  out += ' ';
  appendImapNStringNoLf(out, info.description);
  out += ' ';
  if (info.encoding) {
    appendImapString(out, *info.encoding);
  } else {
    out += "\"7bit\"";
  }
  out += ' ';
  out += std::to_string(node.bodyEnd - node.headerEnd);
  if (text) {
    out += ' ';
    out += std::to_string(node.bodyLines);
  } else if (node.kind == PartKind::Message && !node.children.empty()) {
    const Node& inner = node.children.front();
    out += ' ';
    out += formatEnvelope(parseEnvelope(raw.substr(inner.headerBegin, inner.headerEnd - inner.headerBegin)));
    out += " (";
    writePart(out, inner, raw, extended);
    out += ") ";
    out += std::to_string(node.bodyLines);
  }
  if (!extended) return;
  out += ' ';
  appendImapNStringNoLf(out, info.md5);
  writeCommonExtension(out, info);
}

void writePart(std::string& out, const Node& node, std::string_view raw, bool extended) {
  if (node.kind == PartKind::Multipart) {
    writeMultipart(out, node, raw, extended);
  } else {
    writeLeaf(out, node, raw, extended);
  }
}

}  // namespace

std::string formatBodyStructure(const Node& root, std::string_view raw, bool extended) {
  std::string out = "(";
  writePart(out, root, raw, extended);
  out += ')';
  return out;
}

}  // namespace mb::mime
