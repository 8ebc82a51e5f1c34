// Section specifiers and their resolution to byte ranges of the stored message.
#include "protocols/mime/section.h"

#include "protocols/mime/decode.h"
#include "protocols/mime/header.h"
#include <algorithm>

namespace mb::mime {

namespace {

bool takeKeyword(std::string_view& s, std::string_view word) {
  if (s.size() < word.size() || !iequals(s.substr(0, word.size()), word)) return false;
  s.remove_prefix(word.size());
  return true;
}

Status parseFieldList(std::string_view s, std::vector<std::string>& out) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  if (s.empty() || s.front() != '(' || s.back() != ')') return fail(ErrorKind::Syntax, "header field list expected");
  s = s.substr(1, s.size() - 2);
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == ' ') {
      ++i;
      continue;
    }
    std::string name;
    if (s[i] == '"') {
      ++i;
      while (i < s.size() && s[i] != '"') {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        name += s[i++];
      }
      if (i >= s.size()) return fail(ErrorKind::Syntax, "unterminated quoted field name");
      ++i;
    } else {
      while (i < s.size() && s[i] != ' ') {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c <= ' ' || c >= 0x7f || c == '(' || c == ')' || c == '"' || c == ':')
          return fail(ErrorKind::Syntax, "bad header field name");
        name += s[i++];
      }
    }
    if (name.empty()) return fail(ErrorKind::Syntax, "empty header field name");
    out.push_back(std::move(name));
  }
  if (out.empty()) return fail(ErrorKind::Syntax, "empty header field list");
  return {};
}

}  // namespace

Result<SectionSpec> parseSectionSpec(std::string_view s) {
  SectionSpec spec;
  while (!s.empty() && s.front() >= '0' && s.front() <= '9') {
    if (s.front() == '0') return fail(ErrorKind::Syntax, "part numbers start at 1");
    std::uint64_t n = 0;
    while (!s.empty() && s.front() >= '0' && s.front() <= '9') {
      n = n * 10 + static_cast<std::uint64_t>(s.front() - '0');
      if (n > 0xffffffffu) return fail(ErrorKind::Syntax, "part number too large");
      s.remove_prefix(1);
    }
    spec.path.push_back(static_cast<std::uint32_t>(n));
    if (s.empty()) return spec;
    if (s.front() != '.') return fail(ErrorKind::Syntax, "bad section");
    s.remove_prefix(1);
    if (s.empty()) return fail(ErrorKind::Syntax, "section ends with a dot");
  }
  if (s.empty()) return spec;
  if (takeKeyword(s, "HEADER.FIELDS.NOT")) {
    spec.text = SectionText::HeaderFieldsNot;
  } else if (takeKeyword(s, "HEADER.FIELDS")) {
    spec.text = SectionText::HeaderFields;
  } else if (takeKeyword(s, "HEADER")) {
    spec.text = SectionText::Header;
  } else if (takeKeyword(s, "TEXT")) {
    spec.text = SectionText::Text;
  } else if (takeKeyword(s, "MIME")) {
    if (spec.path.empty()) return fail(ErrorKind::Syntax, "MIME needs a part number");
    spec.text = SectionText::Mime;
  } else {
    return fail(ErrorKind::Syntax, "unknown section text");
  }
  if (spec.text == SectionText::HeaderFields || spec.text == SectionText::HeaderFieldsNot) {
    if (auto st = parseFieldList(s, spec.fields); !st) return std::unexpected(st.error());
  } else if (!s.empty()) {
    return fail(ErrorKind::Syntax, "junk after section");
  }
  return spec;
}

Result<ResolvedSection> resolveSection(const Part& root, const SectionSpec& spec) {
  ResolvedSection out;
  out.text = spec.text;
  out.fields = spec.fields;
  const Part* part = &root;
  if (spec.path.empty()) {
    out.part = part;
    switch (spec.text) {
      case SectionText::None: out.range = root.whole(); break;
      case SectionText::Text: out.range = root.body(); break;
      case SectionText::Mime: return fail(ErrorKind::Syntax, "MIME needs a part number");
      default: out.range = root.header(); break;
    }
    return out;
  }
  for (std::size_t i = 0; i < spec.path.size(); ++i) {
    std::uint32_t n = spec.path[i];
    if (part->kind == PartKind::Multipart) {
      if (n > part->children.size()) return fail(ErrorKind::NotFound, "no such part");
      part = &part->children[n - 1];
    } else if (n != 1 || (part == &root && i > 0)) {
      // Only "1" names the body of a non-multipart entity; the top-level
      // body takes it once (Dovecot answers BODY[1.1] of a one-part message
      // with nothing, but BODY[2.1] of a leaf inside a multipart with it).
      return fail(ErrorKind::NotFound, "no such part");
    }
    if (part->kind == PartKind::Message && i + 1 < spec.path.size() && !part->children.empty()) {
      part = &part->children.front();
    }
  }
  out.part = part;
  switch (spec.text) {
    case SectionText::None: out.range = part->body(); break;
    case SectionText::Mime: out.range = part->header(); break;
    default: {
      if (part->kind != PartKind::Message || part->children.empty())
        return fail(ErrorKind::NotFound, "HEADER and TEXT need a message/rfc822 part");
      const Part& inner = part->children.front();
      out.range = spec.text == SectionText::Text ? inner.body() : inner.header();
      break;
    }
  }
  return out;
}

Result<ResolvedSection> resolveSection(const Part& root, std::string_view section) {
  auto spec = parseSectionSpec(section);
  if (!spec) return std::unexpected(spec.error());
  return resolveSection(root, *spec);
}

std::string extractSection(std::string_view raw, const ResolvedSection& section) {
  if (section.range.end > raw.size() || section.range.begin > section.range.end) return {};
  std::string_view bytes = raw.substr(section.range.begin, section.range.size());
  if (section.text == SectionText::HeaderFields) return filterHeaderFields(bytes, section.fields, false);
  if (section.text == SectionText::HeaderFieldsNot) return filterHeaderFields(bytes, section.fields, true);
  return std::string(bytes);
}

Result<std::string> extractBinary(std::string_view raw, const Part& root, std::string_view section) {
  auto spec = parseSectionSpec(section);
  if (!spec) return std::unexpected(spec.error());
  if (spec->text != SectionText::None) return fail(ErrorKind::Syntax, "BINARY takes part numbers only");
  if (spec->path.empty()) return std::string(raw.substr(0, std::min(raw.size(), root.bodyEnd)));
  auto resolved = resolveSection(root, *spec);
  if (!resolved) return std::unexpected(resolved.error());
  const ResolvedSection& r = *resolved;
  if (r.range.end > raw.size()) return fail(ErrorKind::Corrupt, "part tree does not fit the message");
  std::string_view body = raw.substr(r.range.begin, r.range.size());
  if (r.part->kind != PartKind::Leaf) return std::string(body);
  return decodeTransfer(body, r.part->encoding);
}

}  // namespace mb::mime
