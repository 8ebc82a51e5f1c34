// Dovecot-compatible RFC 5322 address list parser for ENVELOPE.
#include "protocols/mime/address.h"

#include <optional>

#include "protocols/mime/header.h"
#include "protocols/mime/imap_quote.h"
#include "protocols/mime/rfc822_lexer.h"

namespace mb::mime {

namespace {

constexpr std::string_view kMissingMailbox = "MISSING_MAILBOX";
constexpr std::string_view kMissingDomain = "MISSING_DOMAIN";

// One address field of the entry being parsed: set or NIL. The text keeps
// its capacity from one address to the next.
struct Slot {
  std::string text;
  bool set = false;

  void assign(std::string_view s) {
    text.assign(s);
    set = true;
  }
  void reset() {
    text.clear();
    set = false;
  }
  std::optional<std::string_view> value() const {
    return set ? std::optional<std::string_view>(text) : std::nullopt;
  }
};

// Parses one field value and writes each entry as it is complete.
class AddressParser {
 public:
  AddressParser(std::string_view text, std::string& out) : lex_(text), out_(out) {}

  void run() {
    lex_.skipCfws();
    while (!lex_.atEnd()) {
      parseAddress();
      if (lex_.peek() != ',') break;
      lex_.advance();
      lex_.skipCfws();
    }
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
    if (!phraseHere() || lex_.peek() != ':') return false;
    lex_.advance();
    lex_.skipCfws();
    writeEntry(std::nullopt, std::nullopt, phrase_, std::nullopt);
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
    writeEntry(std::nullopt, std::nullopt, std::nullopt, std::nullopt);  // end of group
    return true;
  }

  // mailbox = name-addr / addr-spec; always adds an entry, filling the gaps.
  bool parseMailbox() {
    clearCurrent();
    std::size_t start = lex_.pos();
    bool ok = parseNameAddr();
    if (!ok) {
      lex_.seek(start);
      clearCurrent();
      ok = parseAddrSpec();
    }
    if (!mailbox_.set || mailbox_.text.empty()) mailbox_.assign(kMissingMailbox);
    if (!host_.set || host_.text.empty()) host_.assign(kMissingDomain);
    writeEntry(name_.value(), adl_.value(), mailbox_.value(), host_.value());
    return ok;
  }

  void clearCurrent() {
    name_.reset();
    adl_.reset();
    mailbox_.reset();
    host_.reset();
  }

  // "(name adl mailbox host)"
  void writeEntry(std::optional<std::string_view> name, std::optional<std::string_view> adl,
                  std::optional<std::string_view> mailbox, std::optional<std::string_view> host) {
    out_ += '(';
    if (name) {
      appendImapHumanString(out_, *name);
    } else {
      out_ += "NIL";
    }
    out_ += ' ';
    appendImapNStringNoLf(out_, adl);
    out_ += ' ';
    appendImapNStringNoLf(out_, mailbox);
    out_ += ' ';
    appendImapNStringNoLf(out_, host);
    out_ += ')';
  }

  // The phrase at the current position into phrase_, as lex_.phrase() reads
  // it. Each address is tried as a group and then as a name-addr, both
  // starting with the same phrase (the display name): it is read once.
  bool phraseHere() {
    std::size_t start = lex_.pos();
    if (start == phraseStart_) {
      lex_.seek(phraseEnd_);
      return phraseOk_;
    }
    phrase_.clear();
    phraseOk_ = lex_.phrase(phrase_);
    phraseStart_ = start;
    phraseEnd_ = lex_.pos();
    return phraseOk_;
  }

  bool parseNameAddr() {
    if (lex_.peek() != '<') {
      if (!phraseHere() || lex_.peek() != '<') return false;
      if (!phrase_.empty()) name_.assign(phrase_);
    }
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
        std::string& d = domain_;
        d.clear();
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
      adl_.assign(route);
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
    std::string& local = mailbox_.text;
    local.clear();
    bool ok = quoted ? lex_.quotedString(local) : lex_.dotAtom(local);
    if (!ok) return false;
    mailbox_.set = true;
    bool haveDomain = false;
    if (lex_.peek() == '@') {
      lex_.advance();
      std::string& d = host_.text;
      d.clear();
      if (!lex_.domain(d)) {
        d.clear();
        ok = false;
      } else {
        host_.set = true;
      }
      haveDomain = true;
    }
    if (!lex_.lastComment().empty()) {
      if (!name_.set) name_.assign(lex_.lastComment());
      if (!haveDomain) ok = false;
    } else if (!haveDomain) {
      std::string& more = more_;
      more.assign(local);
      more += ' ';
      std::size_t before = more.size();
      lex_.phrase(more);
      if (more.size() != before) {
        mailbox_.reset();
        name_.assign(more);
      } else if (quoted) {
        name_.assign(local);
        mailbox_.reset();
      }
      ok = false;
    }
    return ok;
  }

  Rfc822Lexer lex_;
  std::string& out_;
  Slot name_, adl_, mailbox_, host_;
  std::string phrase_;
  std::size_t phraseStart_ = std::string_view::npos, phraseEnd_ = 0;
  bool phraseOk_ = false;
  std::string more_, domain_;  // scratch, kept for their capacity
};

}  // namespace

AddressListWriter::AddressListWriter(std::string& out) : out_(out), begin_(out.size()) { out_ += '('; }

void AddressListWriter::add(std::string_view rawValue) {
  AddressParser(unfoldedView(rawValue, unfolded_), out_).run();
}

bool AddressListWriter::finish() {
  if (out_.size() == begin_ + 1) {
    out_.resize(begin_);
    out_ += "NIL";
    return false;
  }
  out_ += ')';
  return true;
}

}  // namespace mb::mime
