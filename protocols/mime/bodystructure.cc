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
    if (iequals(p.name, "charset")) sawCharset = true;
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

// BODYSTRUCTURE and BODY in one walk: BODY is BODYSTRUCTURE without the
// extension data, so everything else is written once (to ext) and copied to
// basic. A nested message's ENVELOPE is parsed and written once too.
class Writer {
 public:
  Writer(std::string_view raw, std::string& ext, std::string& basic) : raw_(raw), ext_(ext), basic_(basic) {}

  void part(const Node& node) {
    if (node.kind == PartKind::Multipart) {
      multipart(node);
    } else {
      leaf(node);
    }
  }

 private:
  // What ext got since `from` goes to basic as well.
  void copySince(std::size_t from) { basic_.append(ext_, from, std::string::npos); }
  void both(std::string_view s) {
    ext_ += s;
    basic_ += s;
  }

  void multipart(const Node& node) {
    if (node.children.empty()) {
      ext_ += kEmptyBodyStructure;
      basic_ += kEmptyBody;
    } else {
      for (const auto& c : node.children) {
        both("(");
        part(c);
        both(")");
      }
    }
    std::size_t from = ext_.size();
    ext_ += ' ';
    appendImapString(ext_, node.info.subtype);
    copySince(from);
    ext_ += ' ';
    writeParams(ext_, node.info.params, false);
    writeCommonExtension(ext_, node.info);
  }

  void leaf(const Node& node) {
    const ContentInfo& info = node.info;
    std::size_t from = ext_.size();
    bool text = false;
    if (node.kind == PartKind::Message) {
      ext_ += "\"message\" \"rfc822\"";
    } else if (!info.hasType) {
      text = true;
      ext_ += "\"text\" \"plain\"";
    } else {
      text = iequals(info.type, "text");
      appendImapString(ext_, info.type);
      ext_ += ' ';
      appendImapString(ext_, info.subtype);
    }
    ext_ += ' ';
    writeParams(ext_, info.params, text);
    ext_ += ' ';
    appendImapNStringNoLf(ext_, info.id);
    ext_ += ' ';
    appendImapNStringNoLf(ext_, info.description);
    ext_ += ' ';
    if (info.encoding) {
      appendImapString(ext_, *info.encoding);
    } else {
      ext_ += "\"7bit\"";
    }
    ext_ += ' ';
    ext_ += std::to_string(node.bodyEnd - node.headerEnd);
    if (text) {
      ext_ += ' ';
      ext_ += std::to_string(node.bodyLines);
    } else if (node.kind == PartKind::Message && !node.children.empty()) {
      const Node& inner = node.children.front();
      ext_ += ' ';
      appendEnvelope(ext_, parseEnvelope(raw_.substr(inner.headerBegin, inner.headerEnd - inner.headerBegin)));
      ext_ += " (";
      copySince(from);
      part(inner);
      from = ext_.size();
      ext_ += ") ";
      ext_ += std::to_string(node.bodyLines);
    }
    copySince(from);
    ext_ += ' ';
    appendImapNStringNoLf(ext_, info.md5);
    writeCommonExtension(ext_, info);
  }

  std::string_view raw_;
  std::string& ext_;
  std::string& basic_;
};

}  // namespace

void formatBodyStructures(const Node& root, std::string_view raw, std::string& bodyStructure, std::string& body) {
  bodyStructure = "(";
  body = "(";
  Writer(raw, bodyStructure, body).part(root);
  bodyStructure += ')';
  body += ')';
}

}  // namespace mb::mime
