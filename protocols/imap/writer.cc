// ResponseWriter: the only place that decides how a value is quoted on the
// wire, so handlers cannot produce a response a client would misparse.
#include "protocols/imap/writer.h"

#include "protocols/imap/lexical.h"
#include "protocols/imap/mutf7.h"

namespace mb::imap {
namespace {

bool isNil(std::string_view s) {
  return s.size() == 3 && (s[0] | 0x20) == 'n' && (s[1] | 0x20) == 'i' && (s[2] | 0x20) == 'l';
}

}  // namespace

StringForm stringForm(std::string_view s, bool utf8) {
  bool eight = false;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == 0) return StringForm::Literal8;
  }
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '\r' || c == '\n') return StringForm::Literal;
    if (c >= 0x80) eight = true;
  }
  if (eight && !(utf8 && isValidUtf8(s))) return StringForm::Literal;
  // Long values go as literals: quoted strings must fit clients' line limits.
  if (s.size() > 1024) return StringForm::Literal;
  return StringForm::Quoted;
}

StringForm astringForm(std::string_view s, bool utf8) {
  if (!s.empty() && !isNil(s)) {
    bool atom = true;
    for (char ch : s) {
      auto c = static_cast<unsigned char>(ch);
      if (!isAtomChar(c) && c != ']') {
        atom = false;
        break;
      }
    }
    if (atom) return StringForm::Atom;
  }
  return stringForm(s, utf8);
}

void ResponseWriter::separate() {
  if (needSpace_) out_ += ' ';
  needSpace_ = true;
}

void ResponseWriter::text(std::string_view t) {
  if (t.empty()) t = "done";
  for (char ch : t) {
    auto c = static_cast<unsigned char>(ch);
    out_ += (c < 0x20 || c == 0x7F) ? ' ' : ch;
  }
}

ResponseWriter& ResponseWriter::untagged() {
  out_ += '*';
  needSpace_ = true;
  return *this;
}

ResponseWriter& ResponseWriter::continuation(std::string_view t) {
  out_ += "+ ";
  text(t);
  out_ += "\r\n";
  needSpace_ = false;
  return *this;
}

ResponseWriter& ResponseWriter::tagged(std::string_view tag, std::string_view status, std::string_view code,
                                       std::string_view t) {
  out_.append(tag);
  out_ += ' ';
  out_.append(status);
  out_ += ' ';
  if (!code.empty()) {
    out_ += '[';
    out_.append(code);
    out_ += "] ";
  }
  text(t);
  out_ += "\r\n";
  needSpace_ = false;
  return *this;
}

ResponseWriter& ResponseWriter::untaggedStatus(std::string_view status, std::string_view code, std::string_view t) {
  return tagged("*", status, code, t);
}

ResponseWriter& ResponseWriter::atom(std::string_view a) {
  separate();
  out_.append(a);
  return *this;
}

ResponseWriter& ResponseWriter::number(uint64_t n) { return atom(std::to_string(n)); }

ResponseWriter& ResponseWriter::nil() { return atom("NIL"); }

ResponseWriter& ResponseWriter::quoted(std::string_view s) {
  separate();
  out_ += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') out_ += '\\';
    out_ += c;
  }
  out_ += '"';
  return *this;
}

ResponseWriter& ResponseWriter::literal(std::string_view s) {
  separate();
  out_ += '{';
  out_ += std::to_string(s.size());
  out_ += "}\r\n";
  out_.append(s);
  return *this;
}

std::string& ResponseWriter::literalBuffer(uint64_t size) {
  separate();
  out_ += '{';
  out_ += std::to_string(size);
  out_ += "}\r\n";
  return out_;
}

ResponseWriter& ResponseWriter::literal8(std::string_view s) {
  separate();
  out_ += "~{";
  out_ += std::to_string(s.size());
  out_ += "}\r\n";
  out_.append(s);
  return *this;
}

ResponseWriter& ResponseWriter::string(std::string_view s) {
  switch (stringForm(s, utf8_)) {
    case StringForm::Quoted:
      return quoted(s);
    case StringForm::Literal8:
      return literal8(s);
    default:
      return literal(s);
  }
}

ResponseWriter& ResponseWriter::astring(std::string_view s) {
  if (astringForm(s, utf8_) == StringForm::Atom) return atom(s);
  return string(s);
}

ResponseWriter& ResponseWriter::nstring(std::optional<std::string_view> s) {
  if (!s) return nil();
  return string(*s);
}

ResponseWriter& ResponseWriter::beginList() {
  separate();
  out_ += '(';
  needSpace_ = false;
  return *this;
}

ResponseWriter& ResponseWriter::endList() {
  out_ += ')';
  needSpace_ = true;
  return *this;
}

ResponseWriter& ResponseWriter::atomList(const std::vector<std::string>& atoms) {
  beginList();
  for (const auto& a : atoms) atom(a);
  return endList();
}

ResponseWriter& ResponseWriter::raw(std::string_view t) {
  out_.append(t);
  return *this;
}

ResponseWriter& ResponseWriter::end() {
  out_ += "\r\n";
  needSpace_ = false;
  return *this;
}

ResponseWriter& ResponseWriter::appendTo(std::string&& buffer) {
  buffer += out_;
  out_ = std::move(buffer);
  needSpace_ = false;
  return *this;
}

std::string ResponseWriter::take() {
  std::string out = std::move(out_);
  out_.clear();
  needSpace_ = false;
  return out;
}

}  // namespace mb::imap
