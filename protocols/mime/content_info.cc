// Parsing of the Content-* header fields, lenient like Dovecot's message-part-data.c.
#include "protocols/mime/content_info.h"

#include <algorithm>

#include "protocols/mime/header.h"
#include "protocols/mime/rfc822_lexer.h"

namespace mb::mime {

namespace {

const std::string* findParam(const std::vector<Param>& params, std::string_view name) {
  for (const auto& p : params) {
    if (iequals(p.name, name)) return &p.value;
  }
  return nullptr;
}

struct Continuation {
  std::string key;
  unsigned index = 0;
  bool extended = false;
  std::string value;
};

// "name*3" or "name*3*" -> a continuation segment of RFC 2231 section 3/4.
bool splitContinuation(const std::string& key, Continuation& c) {
  std::size_t star = key.find('*');
  if (star == std::string::npos || star + 1 >= key.size()) return false;
  std::size_t i = star + 1;
  if (key[i] < '0' || key[i] > '9') return false;
  unsigned index = 0;
  while (i < key.size() && key[i] >= '0' && key[i] <= '9') {
    index = index * 10 + static_cast<unsigned>(key[i] - '0');
    if (index > 100000) return false;
    ++i;
  }
  bool extended = false;
  if (i < key.size() && key[i] == '*') {
    extended = true;
    ++i;
  }
  if (i != key.size()) return false;
  c.key = key.substr(0, star);
  c.index = index;
  c.extended = extended;
  return true;
}

}  // namespace

const std::string* ContentInfo::param(std::string_view name) const { return findParam(params, name); }
const std::string* ContentInfo::dispositionParam(std::string_view name) const {
  return findParam(dispositionParams, name);
}

std::vector<Param> parseParams(std::string_view text) {
  Rfc822Lexer lex(text);
  std::vector<Param> plain;
  std::vector<Continuation> parts;
  lex.skipCfws();
  while (!lex.atEnd()) {
    // Like Dovecot: on anything unexpected skip one byte and look again, so
    // one broken parameter does not hide the ones after it.
    if (lex.peek() != ';') {
      lex.advance();
      lex.skipCfws();
      continue;
    }
    lex.advance();
    lex.skipCfws();
    std::string key;
    if (!lex.mimeToken(key)) continue;
    if (lex.peek() != '=') continue;
    lex.advance();
    lex.skipCfws();
    std::string value;
    if (lex.peek() == '"') {
      lex.quotedString(value);
    } else if (lex.peek() == '=') {
      // name==?utf-8?b?...?= : an encoded word where a token belongs.
      while (!lex.atEnd() && lex.peek() != ';' && lex.peek() != ' ' && lex.peek() != '\t') {
        value += lex.peek();
        lex.advance();
      }
      lex.skipCfws();
    } else if (!lex.mimeToken(value)) {
      continue;
    }
    Continuation c;
    if (splitContinuation(key, c)) {
      c.value = std::move(value);
      parts.push_back(std::move(c));
    } else {
      plain.push_back(Param{std::move(key), std::move(value)});
    }
  }
  // Merged continuations go after the plain parameters, in key order.
  std::stable_sort(parts.begin(), parts.end(), [](const Continuation& a, const Continuation& b) {
    std::string la = ascii::toLower(a.key), lb = ascii::toLower(b.key);
    return la != lb ? la < lb : a.index < b.index;
  });
  for (std::size_t i = 0; i < parts.size();) {
    std::size_t j = i;
    std::string value;
    unsigned next = 0;
    while (j < parts.size() && iequals(parts[j].key, parts[i].key)) {
      if (parts[j].index == next) {
        value += parts[j].value;
        ++next;
      }
      ++j;
    }
    if (next > 0) {
      plain.push_back(Param{parts[i].key + (parts[i].extended ? "*" : ""), std::move(value)});
    }
    i = j;
  }
  return plain;
}

ContentInfo parseContentInfo(std::string_view headerBlock, HeaderFieldSink* alsoTo) {
  ContentInfo info;
  HeaderReader reader(headerBlock);
  HeaderField f;
  bool haveDisposition = false, haveLanguage = false;
  std::string unfolded;
  while (reader.next(f)) {
    if (alsoTo) alsoTo->field(f);
    if (!f.hasColon || f.name.size() < 9 || !iequals(f.name.substr(0, 8), "content-")) continue;
    std::string_view what = f.name.substr(8);
    if (iequals(what, "type")) {
      if (info.hasType) continue;
      info.hasType = true;
      Rfc822Lexer lex(unfoldedView(f.value, unfolded));
      lex.skipCfws();
      bool ok = lex.mimeToken(info.type);
      if (ok && lex.peek() == '/') {
        lex.advance();
        lex.skipCfws();
        ok = lex.mimeToken(info.subtype);
      } else {
        ok = false;
      }
      if (!ok) {
        info.typeBroken = true;
        continue;
      }
      info.params = parseParams(lex.rest());
    } else if (iequals(what, "transfer-encoding")) {
      if (info.encoding) continue;
      Rfc822Lexer lex(unfoldedView(f.value, unfolded));
      lex.skipCfws();
      std::string token;
      if (lex.mimeToken(token)) info.encoding = std::move(token);
    } else if (iequals(what, "id")) {
      if (!info.id) info.id = f.value;
    } else if (iequals(what, "description")) {
      if (!info.description) info.description = f.value;
    } else if (iequals(what, "md5")) {
      if (!info.md5) info.md5 = f.value;
    } else if (iequals(what, "location")) {
      if (!info.location) info.location = f.value;
    } else if (iequals(what, "disposition")) {
      if (haveDisposition) continue;
      haveDisposition = true;
      Rfc822Lexer lex(unfoldedView(f.value, unfolded));
      lex.skipCfws();
      std::string token;
      if (!lex.mimeToken(token)) continue;
      info.disposition = std::move(token);
      info.dispositionParams = parseParams(lex.rest());
    } else if (iequals(what, "language")) {
      if (haveLanguage) continue;
      haveLanguage = true;
      Rfc822Lexer lex(unfoldedView(f.value, unfolded));
      lex.skipCfws();
      for (;;) {
        std::string lang;
        if (!lex.mimeToken(lang)) break;
        info.language.push_back(std::move(lang));
        if (lex.peek() != ',') break;
        lex.advance();
        lex.skipCfws();
      }
    }
  }
  return info;
}

}  // namespace mb::mime
