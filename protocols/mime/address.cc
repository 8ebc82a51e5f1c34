// Dovecot-compatible RFC 5322 address list parser for ENVELOPE.
#include "protocols/mime/address.h"

#include "protocols/mime/imap_quote.h"
#include "protocols/mime/rfc822_lexer.h"

namespace mb::mime {

namespace {

constexpr const char* kMissingMailbox = "MISSING_MAILBOX";
constexpr const char* kMissingDomain = "MISSING_DOMAIN";

class AddressParser {
 public:
  explicit AddressParser(std::string_view text) : lex_(text) {}

  std::vector<Address> run() {
    lex_.skipCfws();
    while (!lex_.atEnd()) {
      parseAddress();
      if (lex_.peek() != ',') break;
      lex_.advance();
      lex_.skipCfws();
    }
    return std::move(list_);
  }

 private:
  void parseAddress() {
    std::size_t start = lex_.pos();
    if (parseGroup()) return;
    lex_.seek(start);
    parseMailbox();
  }

  // group = display-name ":" [mailbox-list / CFWS] ";" [CFWS]
  bool parseGroup() {
    std::string name;
    if (!lex_.phrase(name) || lex_.peek() != ':') return false;
    lex_.advance();
    lex_.skipCfws();
    Address start;
    start.mailbox = std::move(name);
    list_.push_back(std::move(start));
    if (!lex_.atEnd() && lex_.peek() != ';') {
      for (;;) {
        if (!parseMailbox()) break;
        if (lex_.peek() != ',') break;
        lex_.advance();
        lex_.skipCfws();
        if (lex_.atEnd()) break;
      }
    }
    if (lex_.peek() == ';') {
      lex_.advance();
      lex_.skipCfws();
    }
    list_.push_back(Address{});  // end of group
    return true;
  }

  // mailbox = name-addr / addr-spec; always adds an entry, filling the gaps.
  bool parseMailbox() {
    current_ = Address{};
    std::size_t start = lex_.pos();
    bool ok = parseNameAddr();
    if (!ok) {
      lex_.seek(start);
      current_ = Address{};
      ok = parseAddrSpec();
    }
    if (!current_.mailbox || current_.mailbox->empty()) current_.mailbox = kMissingMailbox;
    if (!current_.host || current_.host->empty()) current_.host = kMissingDomain;
    list_.push_back(std::move(current_));
    return ok;
  }

  bool parseNameAddr() {
    std::string name;
    if (lex_.peek() != '<') {
      if (!lex_.phrase(name) || lex_.peek() != '<') return false;
    }
    if (!name.empty()) current_.name = std::move(name);
    lex_.advance();  // '<'
    lex_.skipCfws();
    if (lex_.peek() == '>') {  // <>: the null address, reported as missing
      lex_.advance();
      lex_.skipCfws();
      return true;
    }
    if (lex_.peek() == '@') {
      std::string route;
      while (lex_.peek() == '@') {
        lex_.advance();
        std::string d;
        if (!lex_.domain(d)) return false;
        if (!route.empty()) route += ',';
        route += '@';
        route += d;
        if (lex_.peek() == ',') {
          lex_.advance();
          lex_.skipCfws();
        }
      }
      if (lex_.peek() != ':') return false;
      lex_.advance();
      lex_.skipCfws();
      current_.adl = std::move(route);
    }
    if (!parseAddrSpec()) return false;
    if (lex_.peek() != '>') return false;
    lex_.advance();
    lex_.skipCfws();
    return true;
  }

  // addr-spec = local-part "@" domain, with Dovecot's guesses for the broken
  // forms: a lone word is a mailbox, a quoted string or several words a name.
  bool parseAddrSpec() {
    lex_.clearLastComment();
    bool quoted = lex_.peek() == '"';
    std::string local;
    bool ok = quoted ? lex_.quotedString(local) : lex_.dotAtom(local);
    if (!ok) return false;
    current_.mailbox = local;
    bool haveDomain = false;
    if (lex_.peek() == '@') {
      lex_.advance();
      std::string d;
      if (!lex_.domain(d)) {
        ok = false;
      } else {
        current_.host = std::move(d);
      }
      haveDomain = true;
    }
    if (!lex_.lastComment().empty()) {
      if (!current_.name) current_.name = lex_.lastComment();
      if (!haveDomain) ok = false;
    } else if (!haveDomain) {
      std::string more = local + ' ';
      std::size_t before = more.size();
      lex_.phrase(more);
      if (more.size() != before) {
        current_.mailbox.reset();
        current_.name = std::move(more);
      } else if (quoted) {
        current_.mailbox.reset();
        current_.name = std::move(local);
      }
      ok = false;
    }
    return ok;
  }

  Rfc822Lexer lex_;
  std::vector<Address> list_;
  Address current_;
};

}  // namespace

std::vector<Address> parseAddressList(std::string_view value) { return AddressParser(value).run(); }

void appendAddressList(std::string& out, const std::vector<Address>& list) {
  if (list.empty()) {
    out += "NIL";
    return;
  }
  out += '(';
  for (const auto& a : list) {
    out += '(';
    if (a.name) {
      appendImapHumanString(out, *a.name);
    } else {
      out += "NIL";
    }
    out += ' ';
    appendImapNStringNoLf(out, a.adl);
    out += ' ';
    appendImapNStringNoLf(out, a.mailbox);
    out += ' ';
    appendImapNStringNoLf(out, a.host);
    out += ')';
  }
  out += ')';
}

}  // namespace mb::mime
