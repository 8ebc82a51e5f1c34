// Grammar of client commands (RFC 3501 9 / RFC 9051 9 plus RFC 2971, 3502,
// 3516, 4315, 4731, 4959, 5161, 5258, 5819, 6154, 6851, 7162, 7888).
// A Reader walks a framed command: lines with literals between them.
#include "protocols/imap/parser.h"

#include <algorithm>
#include <array>
#include <utility>

#include "protocols/imap/lexical.h"
#include "protocols/imap/mutf7.h"

namespace mb::imap {
namespace {

std::unexpected<Error> bad(std::string message) { return fail(ErrorKind::Syntax, std::move(message)); }

// Digits only, already length-checked by the caller; std::sto* would throw.
uint64_t digitsValue(std::string_view d) {
  uint64_t v = 0;
  for (char c : d) v = v * 10 + static_cast<uint64_t>(c - '0');
  return v;
}

bool isListChar(char c) { return isAtomChar(c) || c == '%' || c == '*' || c == ']'; }
bool isSeqChar(char c) { return isDigit(c) || c == ':' || c == ',' || c == '*' || c == '$'; }

class Reader {
 public:
  Reader(const RawCommand& raw, const ParserOptions& options) : raw_(raw), options_(options) {}

  std::string_view line() const { return raw_.lines[line_]; }
  bool atLineEnd() const { return pos_ >= line().size(); }
  bool atEnd() const { return line_ + 1 >= raw_.lines.size() && atLineEnd(); }
  char peek() const { return atLineEnd() ? '\0' : line()[pos_]; }
  char peekAt(size_t off) const { return pos_ + off < line().size() ? line()[pos_ + off] : '\0'; }
  bool consume(char c) {
    if (peek() != c || atLineEnd()) return false;
    ++pos_;
    return true;
  }

  Status expect(char c, std::string_view what) {
    if (consume(c)) return {};
    return bad(describe(std::string("Expected '") + c + "' " + std::string(what)));
  }
  Status sp(std::string_view what) {
    if (consume(' ')) return {};
    if (atEnd()) return bad("Missing " + std::string(what));
    return bad(describe("Expected SP before " + std::string(what)));
  }
  Status end() {
    if (atEnd()) return {};
    if (peek() == ' ') return bad("Unexpected extra arguments");
    return bad(describe("Unexpected characters at end of command"));
  }

  // Names the offending octet so a client author can see what went wrong.
  std::string describe(std::string msg) const {
    if (atLineEnd()) return msg + " (found end of line)";
    auto c = static_cast<unsigned char>(peek());
    if (c == 0) return msg + " (found NUL)";
    if (c < 0x20 || c >= 0x7F) {
      static constexpr char kHex[] = "0123456789ABCDEF";
      return msg + " (found octet 0x" + kHex[c >> 4] + kHex[c & 15] + ")";
    }
    return msg + " (found '" + static_cast<char>(c) + "')";
  }

  template <class Pred>
  std::string_view takeWhile(Pred pred) {
    size_t start = pos_;
    while (!atLineEnd() && pred(line()[pos_])) ++pos_;
    return line().substr(start, pos_ - start);
  }

  Result<std::string> atom(std::string_view what) {
    std::string_view a = takeWhile(isAtomChar);
    if (a.empty()) return bad(describe("Expected " + std::string(what)));
    return std::string(a);
  }

  // quoted = DQUOTE *QUOTED-CHAR DQUOTE; only \" and \\ are escapes.
  Result<std::string> quoted(std::string_view what) {
    if (!consume('"')) return bad(describe("Expected quoted " + std::string(what)));
    std::string out;
    bool eight = false;
    while (true) {
      if (atLineEnd()) return bad("Unterminated quoted string in " + std::string(what));
      char c = line()[pos_];
      auto u = static_cast<unsigned char>(c);
      if (c == '"') {
        ++pos_;
        break;
      }
      if (c == '\\') {
        char n = peekAt(1);
        if (n != '"' && n != '\\') {
          ++pos_;
          return bad(describe("Invalid escape in quoted " + std::string(what)));
        }
        out += n;
        pos_ += 2;
        continue;
      }
      if (u == 0) return bad("NUL octet in quoted " + std::string(what));
      if (c == '\r' || c == '\n') return bad("CR in quoted " + std::string(what));
      if (u >= 0x80) {
        if (!options_.utf8Accept) return bad("8-bit octet in quoted " + std::string(what) + " (use a literal or UTF8=ACCEPT)");
        eight = true;
      }
      out += c;
      ++pos_;
    }
    if (eight && !isValidUtf8(out)) return bad("Invalid UTF-8 in quoted " + std::string(what));
    return out;
  }

  // literal / literal8 (RFC 3516). The framer has already read the data.
  Result<Literal> literal(std::string_view what, bool allowBinary) {
    size_t start = pos_;
    bool binary = consume('~');
    if (!consume('{')) return bad(describe("Expected literal for " + std::string(what)));
    if (binary && !allowBinary) return bad("literal8 not allowed for " + std::string(what));
    std::string_view digits = takeWhile(isDigit);
    bool nonSync = consume('+');
    if (digits.empty() || !consume('}')) return bad(describe("Malformed literal header for " + std::string(what)));
    if (!atLineEnd() || line_ >= raw_.literals.size()) {
      pos_ = start;
      return bad("Literal header must end the line in " + std::string(what));
    }
    const Literal& lit = raw_.literals[line_];
    if (lit.nonSync != nonSync || lit.binary != binary) return bad("Literal header mismatch");
    if (!binary && lit.data.find('\0') != std::string::npos) {
      return bad("NUL octet in literal " + std::string(what) + " (RFC 3501 9: CHAR8; use literal8)");
    }
    ++line_;
    pos_ = 0;
    return lit;
  }

  // string = quoted / literal
  Result<std::string> string(std::string_view what) {
    if (peek() == '"') return quoted(what);
    if (peek() == '{') {
      auto lit = literal(what, false);
      if (!lit) return std::unexpected(lit.error());
      return std::move(lit->data);
    }
    return bad(describe("Expected string for " + std::string(what)));
  }

  // astring = 1*ASTRING-CHAR / string
  Result<std::string> astring(std::string_view what) {
    if (peek() == '"' || peek() == '{') return string(what);
    std::string_view a = takeWhile(isAstringChar);
    if (a.empty()) return bad(describe("Expected " + std::string(what)));
    return std::string(a);
  }

  bool atNil() const {
    return iequals(line().substr(pos_, 3), "NIL") && !isAstringChar(peekAt(3));
  }

  Result<std::optional<std::string>> nstring(std::string_view what) {
    if (atNil()) {
      pos_ += 3;
      return std::optional<std::string>();
    }
    auto s = string(what);
    if (!s) return std::unexpected(s.error());
    return std::optional<std::string>(std::move(*s));
  }

  Result<std::string> mailbox(std::string_view what = "mailbox name") {
    auto s = astring(what);
    if (!s) return s;
    return normalizeInbox(*s);
  }

  // list-mailbox = 1*list-char / string (RFC 3501 9)
  Result<std::string> listMailbox() {
    if (peek() == '"' || peek() == '{') return string("mailbox pattern");
    std::string_view a = takeWhile(isListChar);
    if (a.empty()) return bad(describe("Expected mailbox pattern"));
    return std::string(a);
  }

  Result<uint64_t> number64(std::string_view what, uint64_t max) {
    std::string_view d = takeWhile(isDigit);
    if (d.empty()) return bad(describe("Expected number for " + std::string(what)));
    uint64_t v = 0;
    for (char c : d) {
      uint64_t digit = static_cast<uint64_t>(c - '0');
      if (v > (max - digit) / 10) return bad("Number too large for " + std::string(what));
      v = v * 10 + digit;
    }
    return v;
  }
  Result<uint32_t> number(std::string_view what) {
    auto v = number64(what, UINT32_MAX);
    if (!v) return std::unexpected(v.error());
    return static_cast<uint32_t>(*v);
  }
  Result<uint32_t> nzNumber(std::string_view what) {
    bool leadingZero = peek() == '0';
    auto v = number(what);
    if (!v) return v;
    if (*v == 0 || leadingZero) return bad("Expected non-zero number for " + std::string(what));
    return v;
  }
  // mod-sequence-value (RFC 7162 7): 1 .. 2^63-1; valzer allows 0.
  Result<uint64_t> modSeq(std::string_view what, bool allowZero) {
    auto v = number64(what, INT64_MAX);
    if (!v) return v;
    if (*v == 0 && !allowZero) return bad("Mod-sequence must not be zero in " + std::string(what));
    return v;
  }

  Result<SequenceSet> seqSet(std::string_view what = "sequence set") {
    std::string_view t = takeWhile(isSeqChar);
    if (t.empty()) return bad(describe("Expected " + std::string(what)));
    auto s = SequenceSet::parse(t);
    if (!s) return bad("Invalid " + std::string(what) + " '" + std::string(t) + "'");
    return s;
  }

  // flag = "\" atom / atom (RFC 3501 9 flag, flag-keyword, flag-extension)
  Result<std::string> flag() {
    std::string out;
    if (consume('\\')) out = "\\";
    std::string_view a = takeWhile(isAtomChar);
    if (a.empty()) return bad(describe("Expected flag"));
    out.append(a);
    return out;
  }

  Result<std::vector<std::string>> flagList() {
    if (auto s = expect('(', "to open flag list"); !s) return std::unexpected(s.error());
    std::vector<std::string> flags;
    if (consume(')')) return flags;
    while (true) {
      auto f = flag();
      if (!f) return std::unexpected(f.error());
      flags.push_back(std::move(*f));
      if (consume(')')) return flags;
      if (auto s = sp("flag"); !s) return std::unexpected(s.error());
    }
  }

  Result<Date> dateText() {
    Date d;
    std::string_view day = takeWhile(isDigit);
    if (day.empty() || day.size() > 2) return bad(describe("Invalid day in date"));
    d.day = static_cast<int>(digitsValue(day));
    if (auto s = expect('-', "in date"); !s) return std::unexpected(s.error());
    auto m = month();
    if (!m) return std::unexpected(m.error());
    d.month = *m;
    if (auto s = expect('-', "in date"); !s) return std::unexpected(s.error());
    std::string_view year = takeWhile(isDigit);
    if (year.size() != 4) return bad("Invalid year in date");
    d.year = static_cast<int>(digitsValue(year));
    if (d.day < 1 || d.day > 31) return bad("Invalid day in date");
    return d;
  }

  // date = date-text / DQUOTE date-text DQUOTE
  Result<Date> date() {
    bool q = consume('"');
    auto d = dateText();
    if (!d) return d;
    if (q && !consume('"')) return bad(describe("Unterminated quoted date"));
    return d;
  }

  // date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
  Result<DateTime> dateTime() {
    if (!consume('"')) return bad(describe("Expected quoted date-time"));
    DateTime dt;
    char a = peek(), b = peekAt(1);
    if (!((a == ' ' || isDigit(a)) && isDigit(b))) return bad(describe("Invalid day in date-time"));
    dt.date.day = (a == ' ' ? 0 : (a - '0') * 10) + (b - '0');
    pos_ += 2;
    if (auto s = expect('-', "in date-time"); !s) return std::unexpected(s.error());
    auto m = month();
    if (!m) return std::unexpected(m.error());
    dt.date.month = *m;
    if (auto s = expect('-', "in date-time"); !s) return std::unexpected(s.error());
    auto y = fixedDigits(4, "year in date-time");
    if (!y) return std::unexpected(y.error());
    dt.date.year = *y;
    if (auto s = expect(' ', "before time"); !s) return std::unexpected(s.error());
    auto h = fixedDigits(2, "hour");
    if (!h) return std::unexpected(h.error());
    if (auto s = expect(':', "in time"); !s) return std::unexpected(s.error());
    auto mi = fixedDigits(2, "minute");
    if (!mi) return std::unexpected(mi.error());
    if (auto s = expect(':', "in time"); !s) return std::unexpected(s.error());
    auto se = fixedDigits(2, "second");
    if (!se) return std::unexpected(se.error());
    if (auto s = expect(' ', "before zone"); !s) return std::unexpected(s.error());
    char sign = peek();
    if (sign != '+' && sign != '-') return bad(describe("Invalid zone in date-time"));
    ++pos_;
    auto z = fixedDigits(4, "zone");
    if (!z) return std::unexpected(z.error());
    if (!consume('"')) return bad(describe("Unterminated date-time"));
    if (dt.date.day < 1 || dt.date.day > 31 || *h > 23 || *mi > 59 || *se > 60 || *z % 100 > 59) {
      return bad("Invalid date-time value");
    }
    dt.hour = *h;
    dt.minute = *mi;
    dt.second = *se;
    dt.zoneMinutes = (*z / 100 * 60 + *z % 100) * (sign == '-' ? -1 : 1);
    return dt;
  }

  // Lookahead: a few places (SEARCH RETURN/CHARSET, FETCH macros) try a
  // word and step back when it is not theirs.
  struct Mark {
    size_t line, pos;
  };
  Mark mark() const { return {line_, pos_}; }
  void rewind(Mark m) {
    line_ = m.line;
    pos_ = m.pos;
  }

 private:
  Result<int> month() {
    static constexpr std::array<std::string_view, 12> kMonths = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                                 "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
    std::string_view m = line().substr(pos_, 3);
    for (size_t i = 0; i < kMonths.size(); ++i) {
      if (iequals(m, kMonths[i])) {
        pos_ += 3;
        return static_cast<int>(i + 1);
      }
    }
    return bad(describe("Invalid month in date"));
  }

  Result<int> fixedDigits(int n, std::string_view what) {
    int v = 0;
    for (int i = 0; i < n; ++i) {
      if (!isDigit(peek())) return bad(describe("Invalid " + std::string(what)));
      v = v * 10 + (peek() - '0');
      ++pos_;
    }
    return v;
  }

  const RawCommand& raw_;
  const ParserOptions& options_;
  size_t line_ = 0;
  size_t pos_ = 0;
};

#define MB_TRY(var, expr)                               \
  auto var##_r = (expr);                                \
  if (!var##_r) return std::unexpected(var##_r.error()); \
  auto var = std::move(*var##_r)
#define MB_CHECK(expr)                          \
  do {                                          \
    auto mb_s_ = (expr);                        \
    if (!mb_s_) return std::unexpected(mb_s_.error()); \
  } while (0)

Result<StatusItem> statusItem(Reader& r) {
  MB_TRY(name, r.atom("status item"));
  std::string u = toUpper(name);
  static constexpr std::pair<std::string_view, StatusItem> kItems[] = {
      {"MESSAGES", StatusItem::Messages},       {"RECENT", StatusItem::Recent},
      {"UIDNEXT", StatusItem::UidNext},         {"UIDVALIDITY", StatusItem::UidValidity},
      {"UNSEEN", StatusItem::Unseen},           {"DELETED", StatusItem::Deleted},
      {"SIZE", StatusItem::Size},               {"HIGHESTMODSEQ", StatusItem::HighestModSeq},
      {"APPENDLIMIT", StatusItem::AppendLimit},
  };
  for (const auto& [n, item] : kItems) {
    if (u == n) return item;
  }
  return bad("Unknown STATUS item " + name);
}

Result<std::vector<StatusItem>> statusItems(Reader& r) {
  MB_CHECK(r.expect('(', "to open STATUS items"));
  std::vector<StatusItem> items;
  while (true) {
    MB_TRY(item, statusItem(r));
    items.push_back(item);
    if (r.consume(')')) return items;
    MB_CHECK(r.sp("status item"));
  }
}

// ---- mailbox commands ------------------------------------------------------

Result<CommandBody> parseSelect(Reader& r, bool readOnly) {
  SelectCmd cmd;
  cmd.readOnly = readOnly;
  MB_CHECK(r.sp("mailbox name"));
  MB_TRY(mbox, r.mailbox());
  cmd.mailbox = std::move(mbox);
  if (r.atEnd()) return cmd;
  // select-params (RFC 4466 2.1; CONDSTORE RFC 7162 3.1.8, QRESYNC 3.2.5)
  MB_CHECK(r.sp("SELECT parameters"));
  MB_CHECK(r.expect('(', "to open SELECT parameters"));
  while (true) {
    MB_TRY(name, r.atom("SELECT parameter"));
    std::string u = toUpper(name);
    if (u == "CONDSTORE") {
      cmd.condstore = true;
    } else if (u == "QRESYNC") {
      if (cmd.qresync) return bad("QRESYNC given twice");
      QresyncParams q;
      MB_CHECK(r.sp("QRESYNC parameters"));
      MB_CHECK(r.expect('(', "to open QRESYNC parameters"));
      MB_TRY(uv, r.nzNumber("QRESYNC uidvalidity"));
      q.uidValidity = uv;
      MB_CHECK(r.sp("QRESYNC mod-sequence"));
      MB_TRY(ms, r.modSeq("QRESYNC", false));
      q.modSeq = ms;
      if (r.consume(' ') && r.peek() != '(') {
        if (r.peek() == ')') return bad("Unexpected SP before ')' in QRESYNC parameters");
        MB_TRY(known, r.seqSet("QRESYNC known-uids"));
        q.knownUids = std::move(known);
        if (r.peek() != ')') MB_CHECK(r.sp("QRESYNC seq-match-data"));
      }
      if (r.consume('(')) {
        MB_TRY(seqs, r.seqSet("QRESYNC known-sequence-set"));
        MB_CHECK(r.sp("QRESYNC known-uid-set"));
        MB_TRY(uids, r.seqSet("QRESYNC known-uid-set"));
        MB_CHECK(r.expect(')', "to close QRESYNC seq-match-data"));
        q.knownSeqs = std::move(seqs);
        q.knownSeqUids = std::move(uids);
      }
      MB_CHECK(r.expect(')', "to close QRESYNC parameters"));
      cmd.qresync = std::move(q);
    } else {
      return bad("Unknown SELECT parameter " + name);
    }
    if (r.consume(')')) break;
    MB_CHECK(r.sp("SELECT parameter"));
  }
  MB_CHECK(r.end());
  return cmd;
}

Result<CommandBody> parseCreate(Reader& r) {
  CreateCmd cmd;
  MB_CHECK(r.sp("mailbox name"));
  MB_TRY(mbox, r.mailbox());
  cmd.mailbox = std::move(mbox);
  if (r.atEnd()) return cmd;
  // create-params (RFC 4466 2.2) with USE (RFC 6154 3)
  MB_CHECK(r.sp("CREATE parameters"));
  MB_CHECK(r.expect('(', "to open CREATE parameters"));
  while (true) {
    MB_TRY(name, r.atom("CREATE parameter"));
    if (toUpper(name) != "USE") return bad("Unknown CREATE parameter " + name);
    MB_CHECK(r.sp("USE attributes"));
    MB_CHECK(r.expect('(', "to open USE attributes"));
    if (!r.consume(')')) {
      while (true) {
        if (r.peek() != '\\') return bad(r.describe("Expected special-use attribute"));
        MB_TRY(f, r.flag());
        cmd.specialUse.push_back(std::move(f));
        if (r.consume(')')) break;
        MB_CHECK(r.sp("special-use attribute"));
      }
    }
    if (r.consume(')')) break;
    MB_CHECK(r.sp("CREATE parameter"));
  }
  MB_CHECK(r.end());
  return cmd;
}

template <class Cmd>
Result<CommandBody> parseOneMailbox(Reader& r) {
  MB_CHECK(r.sp("mailbox name"));
  MB_TRY(mbox, r.mailbox());
  MB_CHECK(r.end());
  return Cmd{std::move(mbox)};
}

Result<CommandBody> parseRename(Reader& r) {
  MB_CHECK(r.sp("existing mailbox name"));
  MB_TRY(from, r.mailbox("existing mailbox name"));
  MB_CHECK(r.sp("new mailbox name"));
  MB_TRY(to, r.mailbox("new mailbox name"));
  MB_CHECK(r.end());
  return RenameCmd{std::move(from), std::move(to)};
}

Result<CommandBody> parseList(Reader& r) {
  ListCmd cmd;
  MB_CHECK(r.sp("LIST arguments"));
  // list-select-opts (RFC 5258 6)
  if (r.consume('(')) {
    cmd.extended = true;
    bool recursive = false;
    while (!r.consume(')')) {
      if (!cmd.selectOptions.empty() || recursive) MB_CHECK(r.sp("LIST selection option"));
      MB_TRY(opt, r.atom("LIST selection option"));
      std::string u = toUpper(opt);
      if (u == "RECURSIVEMATCH") {
        recursive = true;
      } else if (u != "SUBSCRIBED" && u != "REMOTE" && u != "SPECIAL-USE") {
        return bad("Unknown LIST selection option " + opt);
      }
      if (std::find(cmd.selectOptions.begin(), cmd.selectOptions.end(), u) == cmd.selectOptions.end()) {
        cmd.selectOptions.push_back(u);
      }
    }
    // RFC 5258 3.1: RECURSIVEMATCH alone (or with only REMOTE) is
    // meaningless and MUST be answered with BAD.
    if (recursive) {
      bool other = std::any_of(cmd.selectOptions.begin(), cmd.selectOptions.end(),
                               [](const std::string& o) { return o != "RECURSIVEMATCH" && o != "REMOTE"; });
      if (!other) return bad("RECURSIVEMATCH needs another selection option");
    }
    MB_CHECK(r.sp("reference name"));
  }
  MB_TRY(ref, r.astring("reference name"));
  cmd.reference = std::move(ref);
  MB_CHECK(r.sp("mailbox pattern"));
  if (r.consume('(')) {
    cmd.extended = true;
    while (true) {
      MB_TRY(p, r.listMailbox());
      cmd.patterns.push_back(std::move(p));
      if (r.consume(')')) break;
      MB_CHECK(r.sp("mailbox pattern"));
    }
  } else {
    MB_TRY(p, r.listMailbox());
    cmd.patterns.push_back(std::move(p));
  }
  if (!r.atEnd()) {
    // list-return-opts (RFC 5258 6, RFC 5819, RFC 6154)
    MB_CHECK(r.sp("LIST return options"));
    MB_TRY(kw, r.atom("RETURN"));
    if (toUpper(kw) != "RETURN") return bad("Expected RETURN, got " + kw);
    cmd.extended = true;
    MB_CHECK(r.sp("LIST return options"));
    MB_CHECK(r.expect('(', "to open LIST return options"));
    bool first = true;
    while (!r.consume(')')) {
      if (!first) MB_CHECK(r.sp("LIST return option"));
      first = false;
      MB_TRY(opt, r.atom("LIST return option"));
      std::string u = toUpper(opt);
      if (u == "SUBSCRIBED") {
        cmd.returnSubscribed = true;
      } else if (u == "CHILDREN") {
        cmd.returnChildren = true;
      } else if (u == "SPECIAL-USE") {
        cmd.returnSpecialUse = true;
      } else if (u == "STATUS") {
        MB_CHECK(r.sp("STATUS items"));
        MB_TRY(items, statusItems(r));
        cmd.returnStatus = std::move(items);
      } else {
        return bad("Unknown LIST return option " + opt);
      }
    }
    MB_CHECK(r.end());
  }
  return cmd;
}

Result<CommandBody> parseLsub(Reader& r) {
  MB_CHECK(r.sp("reference name"));
  MB_TRY(ref, r.astring("reference name"));
  MB_CHECK(r.sp("mailbox pattern"));
  MB_TRY(pat, r.listMailbox());
  MB_CHECK(r.end());
  return LsubCmd{std::move(ref), std::move(pat)};
}

Result<CommandBody> parseStatus(Reader& r) {
  StatusCmd cmd;
  MB_CHECK(r.sp("mailbox name"));
  MB_TRY(mbox, r.mailbox());
  cmd.mailbox = std::move(mbox);
  MB_CHECK(r.sp("STATUS items"));
  MB_TRY(items, statusItems(r));
  cmd.items = std::move(items);
  MB_CHECK(r.end());
  return cmd;
}

// append = "APPEND" SP mailbox 1*append-message (RFC 3502 6, RFC 3516 4.4)
Result<CommandBody> parseAppend(Reader& r) {
  AppendCmd cmd;
  MB_CHECK(r.sp("mailbox name"));
  MB_TRY(mbox, r.mailbox());
  cmd.mailbox = std::move(mbox);
  do {
    AppendMessage msg;
    MB_CHECK(r.sp("message literal"));
    if (r.peek() == '(') {
      MB_TRY(flags, r.flagList());
      msg.flags = std::move(flags);
      MB_CHECK(r.sp("message literal"));
    }
    if (r.peek() == '"') {
      MB_TRY(dt, r.dateTime());
      msg.internalDate = dt;
      MB_CHECK(r.sp("message literal"));
    }
    if (r.peek() == 'U' || r.peek() == 'u') {
      // append-data =/ "UTF8" SP "(" literal8 ")" (RFC 6855 4): a message
      // whose header may carry UTF-8.
      MB_TRY(kw, r.atom("APPEND data"));
      if (!iequals(kw, "UTF8")) return bad("Expected message literal or UTF8 (literal8), got " + kw);
      MB_CHECK(r.sp("UTF8 message"));
      if (!r.consume('(')) return bad("Expected \"(\" after UTF8 in APPEND");
      MB_TRY(lit, r.literal("APPEND UTF8 message", true));
      if (!lit.binary) return bad("UTF8 APPEND data must be a literal8 (RFC 6855 4)");
      if (!r.consume(')')) return bad("Expected \")\" after UTF8 APPEND data");
      msg.data = std::move(lit.data);
      msg.binary = true;
    } else {
      MB_TRY(lit, r.literal("APPEND message", true));
      msg.data = std::move(lit.data);
      msg.binary = lit.binary;
    }
    cmd.messages.push_back(std::move(msg));
  } while (!r.atEnd());
  return cmd;
}

// ---- SEARCH ----------------------------------------------------------------

Result<SearchKey> searchKey(Reader& r, int depth, const ParserOptions& opt);

Result<SearchKey> searchKeyArg(Reader& r, int depth, const ParserOptions& opt) {
  MB_CHECK(r.sp("search key argument"));
  return searchKey(r, depth + 1, opt);
}

Result<SearchKey> searchKey(Reader& r, int depth, const ParserOptions& opt) {
  using K = SearchKey::Kind;
  if (depth > opt.maxSearchDepth) return bad("Search keys nested too deeply");
  SearchKey key;
  if (r.consume('(')) {
    key.kind = K::And;
    while (true) {
      MB_TRY(child, searchKey(r, depth + 1, opt));
      key.children.push_back(std::move(child));
      if (r.consume(')')) return key;
      MB_CHECK(r.sp("search key"));
    }
  }
  if (isSeqChar(r.peek())) {
    key.kind = K::SequenceSet;
    MB_TRY(set, r.seqSet());
    key.set = std::move(set);
    return key;
  }
  MB_TRY(name, r.atom("search key"));
  std::string u = toUpper(name);
  struct Simple {
    std::string_view name;
    K kind;
    enum Arg { None, Str, DateArg, Num, Flag } arg;
  };
  static constexpr Simple kKeys[] = {
      {"ALL", K::All, Simple::None},           {"ANSWERED", K::Answered, Simple::None},
      {"BCC", K::Bcc, Simple::Str},            {"BEFORE", K::Before, Simple::DateArg},
      {"BODY", K::Body, Simple::Str},          {"CC", K::Cc, Simple::Str},
      {"DELETED", K::Deleted, Simple::None},   {"DRAFT", K::Draft, Simple::None},
      {"FLAGGED", K::Flagged, Simple::None},   {"FROM", K::From, Simple::Str},
      {"KEYWORD", K::Keyword, Simple::Flag},   {"LARGER", K::Larger, Simple::Num},
      {"NEW", K::New, Simple::None},           {"OLD", K::Old, Simple::None},
      {"ON", K::On, Simple::DateArg},          {"RECENT", K::Recent, Simple::None},
      {"SEEN", K::Seen, Simple::None},         {"SENTBEFORE", K::SentBefore, Simple::DateArg},
      {"SENTON", K::SentOn, Simple::DateArg},  {"SENTSINCE", K::SentSince, Simple::DateArg},
      {"SINCE", K::Since, Simple::DateArg},    {"SMALLER", K::Smaller, Simple::Num},
      {"SUBJECT", K::Subject, Simple::Str},    {"TEXT", K::Text, Simple::Str},
      {"TO", K::To, Simple::Str},              {"UNANSWERED", K::Unanswered, Simple::None},
      {"UNDELETED", K::Undeleted, Simple::None}, {"UNDRAFT", K::Undraft, Simple::None},
      {"UNFLAGGED", K::Unflagged, Simple::None}, {"UNKEYWORD", K::Unkeyword, Simple::Flag},
      {"UNSEEN", K::Unseen, Simple::None},
  };
  for (const Simple& s : kKeys) {
    if (u != s.name) continue;
    key.kind = s.kind;
    if (s.arg == Simple::None) return key;
    MB_CHECK(r.sp(std::string(s.name) + " argument"));
    switch (s.arg) {
      case Simple::Str: {
        MB_TRY(v, r.astring(std::string(s.name) + " argument"));
        key.text = std::move(v);
        break;
      }
      case Simple::DateArg: {
        MB_TRY(d, r.date());
        key.date = d;
        break;
      }
      case Simple::Num: {
        // number64 in RFC 9051 so > 4 GB sizes are expressible.
        MB_TRY(n, r.number64(std::string(s.name) + " argument", UINT64_MAX));
        key.number = n;
        break;
      }
      case Simple::Flag: {
        MB_TRY(f, r.atom("keyword"));
        key.text = std::move(f);
        break;
      }
      case Simple::None:
        break;
    }
    return key;
  }
  if (u == "HEADER") {
    key.kind = K::Header;
    MB_CHECK(r.sp("header field name"));
    MB_TRY(field, r.astring("header field name"));
    MB_CHECK(r.sp("header value"));
    MB_TRY(value, r.astring("header value"));
    key.text = std::move(field);
    key.value = std::move(value);
    return key;
  }
  if (u == "UID") {
    key.kind = K::Uid;
    MB_CHECK(r.sp("UID set"));
    MB_TRY(set, r.seqSet("UID set"));
    key.set = std::move(set);
    return key;
  }
  if (u == "NOT") {
    key.kind = K::Not;
    MB_TRY(child, searchKeyArg(r, depth, opt));
    key.children.push_back(std::move(child));
    return key;
  }
  if (u == "OR") {
    key.kind = K::Or;
    MB_TRY(a, searchKeyArg(r, depth, opt));
    MB_TRY(b, searchKeyArg(r, depth, opt));
    key.children.push_back(std::move(a));
    key.children.push_back(std::move(b));
    return key;
  }
  if (u == "MODSEQ") {
    // "MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer (RFC 7162 7)
    key.kind = K::ModSeq;
    MB_CHECK(r.sp("MODSEQ value"));
    if (r.peek() == '"') {
      MB_TRY(entry, r.quoted("MODSEQ entry name"));
      if (entry.size() <= 7 || !iequals(std::string_view(entry).substr(0, 7), "/flags/")) {
        return bad("MODSEQ entry name must be \"/flags/<flag>\"");
      }
      MB_CHECK(r.sp("MODSEQ entry type"));
      MB_TRY(type, r.atom("MODSEQ entry type"));
      std::string t = toUpper(type);
      if (t != "PRIV" && t != "SHARED" && t != "ALL") return bad("Invalid MODSEQ entry type " + type);
      for (char& c : t) c = static_cast<char>(c + 32);
      key.modSeqEntry = std::move(entry);
      key.modSeqEntryType = std::move(t);
      MB_CHECK(r.sp("MODSEQ value"));
    }
    MB_TRY(v, r.modSeq("MODSEQ search key", true));
    key.number = v;
    return key;
  }
  return bad("Unknown search key " + name);
}

Result<CommandBody> parseSearch(Reader& r, bool uid, const ParserOptions& opt) {
  SearchCmd cmd;
  cmd.uid = uid;
  cmd.key.kind = SearchKey::Kind::And;
  MB_CHECK(r.sp("search keys"));
  auto m = r.mark();
  // RFC 4731 3 / RFC 4466 2.6: search-return-opts come first.
  if (auto kw = r.atom("search key"); kw && toUpper(*kw) == "RETURN" && r.peek() == ' ' && r.peekAt(1) == '(') {
    r.consume(' ');
    r.consume('(');
    std::vector<SearchReturn> opts;
    while (!r.consume(')')) {
      if (!opts.empty()) MB_CHECK(r.sp("RETURN option"));
      MB_TRY(o, r.atom("RETURN option"));
      std::string u = toUpper(o);
      SearchReturn v;
      if (u == "MIN") v = SearchReturn::Min;
      else if (u == "MAX") v = SearchReturn::Max;
      else if (u == "ALL") v = SearchReturn::All;
      else if (u == "COUNT") v = SearchReturn::Count;
      else if (u == "SAVE") v = SearchReturn::Save;
      else return bad("Unknown SEARCH RETURN option " + o);
      if (std::find(opts.begin(), opts.end(), v) == opts.end()) opts.push_back(v);
    }
    // RFC 4731 3.1: "RETURN ()" is the same as "RETURN (ALL)".
    if (opts.empty()) opts.push_back(SearchReturn::All);
    cmd.returnOptions = std::move(opts);
    MB_CHECK(r.sp("search keys"));
    m = r.mark();
  }
  r.rewind(m);
  if (auto kw = r.atom("search key"); kw && toUpper(*kw) == "CHARSET") {
    MB_CHECK(r.sp("charset"));
    MB_TRY(cs, r.astring("charset"));
    cmd.charset = std::move(cs);
    MB_CHECK(r.sp("search keys"));
  } else {
    r.rewind(m);
  }
  while (true) {
    MB_TRY(key, searchKey(r, 1, opt));
    cmd.key.children.push_back(std::move(key));
    if (r.atEnd()) break;
    MB_CHECK(r.sp("search key"));
  }
  return cmd;
}

// ---- FETCH -----------------------------------------------------------------

// "[" [section-spec] "]" for BODY, or "[" [section-part] "]" for BINARY.
Result<Section> section(Reader& r, bool binary) {
  Section sec;
  MB_CHECK(r.expect('[', "to open section"));
  std::string_view spec = r.takeWhile([](char c) { return isDigit(c) || c == '.' || (ascii::upper(c) >= 'A' && ascii::upper(c) <= 'Z'); });
  size_t i = 0;
  while (i < spec.size() && isDigit(spec[i])) {
    size_t j = i;
    while (j < spec.size() && isDigit(spec[j])) ++j;
    std::string_view num = spec.substr(i, j - i);
    if (num[0] == '0' || num.size() > 10 || digitsValue(num) > UINT32_MAX) {
      return bad("Invalid section part number " + std::string(num));
    }
    sec.part.push_back(static_cast<uint32_t>(digitsValue(num)));
    i = j;
    if (i == spec.size()) break;
    if (spec[i] != '.') return bad("Invalid section " + std::string(spec));
    ++i;
    if (i == spec.size()) return bad("Section ends with '.'");
  }
  std::string text = toUpper(spec.substr(i));
  if (binary && !text.empty()) return bad("BINARY section takes part numbers only: " + std::string(spec));
  if (text.empty()) {
    sec.text = Section::Text::None;
  } else if (text == "HEADER") {
    sec.text = Section::Text::Header;
  } else if (text == "TEXT") {
    sec.text = Section::Text::Text;
  } else if (text == "MIME") {
    // RFC 3501 6.4.5: MIME applies to a body part, never to the message.
    if (sec.part.empty()) return bad("MIME section needs a part number");
    sec.text = Section::Text::Mime;
  } else if (text == "HEADER.FIELDS" || text == "HEADER.FIELDS.NOT") {
    sec.text = text == "HEADER.FIELDS" ? Section::Text::HeaderFields : Section::Text::HeaderFieldsNot;
    MB_CHECK(r.sp("header list"));
    MB_CHECK(r.expect('(', "to open header list"));
    while (true) {
      MB_TRY(f, r.astring("header field name"));
      if (f.empty()) return bad("Empty header field name");
      sec.fields.push_back(toUpper(f));
      if (r.consume(')')) break;
      MB_CHECK(r.sp("header field name"));
    }
  } else {
    return bad("Unknown section text " + std::string(spec.substr(i)));
  }
  MB_CHECK(r.expect(']', "to close section"));
  return sec;
}

Result<std::optional<Partial>> partial(Reader& r) {
  if (!r.consume('<')) return std::optional<Partial>();
  Partial p;
  MB_TRY(off, r.number("partial offset"));
  MB_CHECK(r.expect('.', "in partial range"));
  MB_TRY(len, r.nzNumber("partial length"));
  MB_CHECK(r.expect('>', "to close partial range"));
  p.offset = off;
  p.length = len;
  return std::optional<Partial>(p);
}

Status fetchAtt(Reader& r, std::vector<FetchAtt>& out) {
  using K = FetchAtt::Kind;
  std::string_view nameView = r.takeWhile([](char c) { return isAtomChar(c) && c != '[' && c != '<'; });
  if (nameView.empty()) return bad(r.describe("Expected fetch attribute"));
  std::string name = toUpper(nameView);
  FetchAtt att;
  static constexpr std::pair<std::string_view, K> kPlain[] = {
      {"ENVELOPE", K::Envelope},         {"FLAGS", K::Flags},         {"INTERNALDATE", K::InternalDate},
      {"RFC822", K::Rfc822},             {"RFC822.HEADER", K::Rfc822Header},
      {"RFC822.SIZE", K::Rfc822Size},    {"RFC822.TEXT", K::Rfc822Text},
      {"BODYSTRUCTURE", K::BodyStructure}, {"UID", K::Uid},         {"MODSEQ", K::ModSeq},
  };
  for (const auto& [n, kind] : kPlain) {
    if (name == n) {
      att.kind = kind;
      out.push_back(std::move(att));
      return {};
    }
  }
  if (name == "BODY" && r.peek() != '[') {
    att.kind = K::Body;
    out.push_back(std::move(att));
    return {};
  }
  bool binary = false;
  if (name == "BODY" || name == "BODY.PEEK") {
    att.kind = K::BodySection;
    att.peek = name == "BODY.PEEK";
  } else if (name == "BINARY" || name == "BINARY.PEEK") {
    att.kind = K::Binary;
    att.peek = name == "BINARY.PEEK";
    binary = true;
  } else if (name == "BINARY.SIZE") {
    att.kind = K::BinarySize;
    binary = true;
  } else {
    return bad("Unknown fetch attribute " + std::string(nameView));
  }
  MB_TRY(sec, section(r, binary));
  att.section = std::move(sec);
  if (att.kind != K::BinarySize) {
    MB_TRY(p, partial(r));
    att.partial = p;
  }
  out.push_back(std::move(att));
  return {};
}

Result<CommandBody> parseFetch(Reader& r, bool uid) {
  using K = FetchAtt::Kind;
  FetchCmd cmd;
  cmd.uid = uid;
  MB_CHECK(r.sp("sequence set"));
  MB_TRY(set, r.seqSet());
  cmd.set = std::move(set);
  MB_CHECK(r.sp("fetch attributes"));
  if (r.consume('(')) {
    while (true) {
      MB_CHECK(fetchAtt(r, cmd.items));
      if (r.consume(')')) break;
      MB_CHECK(r.sp("fetch attribute"));
    }
  } else {
    auto m = r.mark();
    std::string word = toUpper(r.takeWhile(isAtomChar));
    // Macros (RFC 3501 6.4.5) expand to their attribute lists.
    auto att = [](K k) { FetchAtt a; a.kind = k; return a; };
    if (word == "ALL" || word == "FAST" || word == "FULL") {
      cmd.items = {att(K::Flags), att(K::InternalDate), att(K::Rfc822Size)};
      if (word != "FAST") cmd.items.push_back(att(K::Envelope));
      if (word == "FULL") cmd.items.push_back(att(K::Body));
    } else {
      r.rewind(m);
      MB_CHECK(fetchAtt(r, cmd.items));
    }
  }
  if (!r.atEnd()) {
    // fetch-modifiers (RFC 4466 2.4): CHANGEDSINCE, VANISHED (RFC 7162)
    MB_CHECK(r.sp("FETCH modifiers"));
    MB_CHECK(r.expect('(', "to open FETCH modifiers"));
    while (true) {
      MB_TRY(mod, r.atom("FETCH modifier"));
      std::string u = toUpper(mod);
      if (u == "CHANGEDSINCE") {
        MB_CHECK(r.sp("CHANGEDSINCE value"));
        MB_TRY(v, r.modSeq("CHANGEDSINCE", false));
        cmd.changedSince = v;
      } else if (u == "VANISHED") {
        cmd.vanished = true;
      } else {
        return bad("Unknown FETCH modifier " + mod);
      }
      if (r.consume(')')) break;
      MB_CHECK(r.sp("FETCH modifier"));
    }
    MB_CHECK(r.end());
    // RFC 7162 3.2.6: VANISHED only with UID FETCH and CHANGEDSINCE.
    if (cmd.vanished && !uid) return bad("VANISHED requires UID FETCH");
    if (cmd.vanished && !cmd.changedSince) return bad("VANISHED requires CHANGEDSINCE");
  }
  return cmd;
}

// ---- STORE / COPY / MOVE ---------------------------------------------------

Result<CommandBody> parseStore(Reader& r, bool uid) {
  StoreCmd cmd;
  cmd.uid = uid;
  MB_CHECK(r.sp("sequence set"));
  MB_TRY(set, r.seqSet());
  cmd.set = std::move(set);
  MB_CHECK(r.sp("STORE item"));
  if (r.consume('(')) {
    // store-modifiers (RFC 4466 2.5): UNCHANGEDSINCE (RFC 7162 3.1.3)
    while (true) {
      MB_TRY(mod, r.atom("STORE modifier"));
      if (toUpper(mod) != "UNCHANGEDSINCE") return bad("Unknown STORE modifier " + mod);
      MB_CHECK(r.sp("UNCHANGEDSINCE value"));
      MB_TRY(v, r.modSeq("UNCHANGEDSINCE", true));
      cmd.unchangedSince = v;
      if (r.consume(')')) break;
      MB_CHECK(r.sp("STORE modifier"));
    }
    MB_CHECK(r.sp("STORE item"));
  }
  if (r.consume('+')) cmd.mode = StoreCmd::Mode::Add;
  else if (r.consume('-')) cmd.mode = StoreCmd::Mode::Remove;
  MB_TRY(item, r.atom("STORE item"));
  std::string u = toUpper(item);
  if (u == "FLAGS.SILENT") cmd.silent = true;
  else if (u != "FLAGS") return bad("Unknown STORE item " + item);
  MB_CHECK(r.sp("flags"));
  if (r.peek() == '(') {
    MB_TRY(flags, r.flagList());
    cmd.flags = std::move(flags);
  } else {
    while (true) {
      MB_TRY(f, r.flag());
      cmd.flags.push_back(std::move(f));
      if (r.atEnd()) break;
      MB_CHECK(r.sp("flag"));
    }
  }
  MB_CHECK(r.end());
  return cmd;
}

template <class Cmd>
Result<CommandBody> parseCopyLike(Reader& r, bool uid) {
  Cmd cmd;
  cmd.uid = uid;
  MB_CHECK(r.sp("sequence set"));
  MB_TRY(set, r.seqSet());
  cmd.set = std::move(set);
  MB_CHECK(r.sp("mailbox name"));
  MB_TRY(mbox, r.mailbox());
  cmd.mailbox = std::move(mbox);
  MB_CHECK(r.end());
  return cmd;
}

// ---- the rest ---------------------------------------------------------------

bool isBase64(std::string_view s) {
  if (s.empty() || s.size() % 4 != 0) return false;
  size_t pad = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool b64 = isDigit(c) || (ascii::upper(c) >= 'A' && ascii::upper(c) <= 'Z') || c == '+' || c == '/';
    if (c == '=') {
      if (i + 2 < s.size()) return false;
      ++pad;
    } else if (!b64 || pad) {
      return false;
    }
  }
  return pad <= 2;
}

Result<CommandBody> parseAuthenticate(Reader& r) {
  AuthenticateCmd cmd;
  MB_CHECK(r.sp("SASL mechanism"));
  MB_TRY(mech, r.atom("SASL mechanism"));
  cmd.mechanism = toUpper(mech);
  if (!r.atEnd()) {
    // SASL-IR (RFC 4959 7): base64 or "=" for an empty response.
    MB_CHECK(r.sp("initial response"));
    std::string_view ir = r.takeWhile([](char c) { return isAtomChar(c) || c == '='; });
    if (ir == "=") cmd.initialResponse = std::string();
    else if (isBase64(ir)) cmd.initialResponse = std::string(ir);
    else return bad("Initial response is not valid base64");
  }
  MB_CHECK(r.end());
  return cmd;
}

Result<CommandBody> parseLogin(Reader& r) {
  MB_CHECK(r.sp("user name"));
  MB_TRY(user, r.astring("user name"));
  MB_CHECK(r.sp("password"));
  MB_TRY(pass, r.astring("password"));
  MB_CHECK(r.end());
  return LoginCmd{std::move(user), std::move(pass)};
}

Result<CommandBody> parseId(Reader& r) {
  IdCmd cmd;
  MB_CHECK(r.sp("ID parameters"));
  if (r.atNil()) {
    r.takeWhile(isAtomChar);
    MB_CHECK(r.end());
    return cmd;
  }
  MB_CHECK(r.expect('(', "to open ID parameters"));
  cmd.params.emplace();
  while (!r.consume(')')) {
    if (!cmd.params->empty()) MB_CHECK(r.sp("ID field"));
    MB_TRY(field, r.string("ID field"));
    MB_CHECK(r.sp("ID value"));
    MB_TRY(value, r.nstring("ID value"));
    cmd.params->emplace_back(std::move(field), std::move(value));
  }
  MB_CHECK(r.end());
  return cmd;
}

Result<CommandBody> parseEnable(Reader& r) {
  EnableCmd cmd;
  do {
    MB_CHECK(r.sp("capability"));
    MB_TRY(cap, r.atom("capability"));
    cmd.capabilities.push_back(toUpper(cap));
  } while (!r.atEnd());
  return cmd;
}

template <class Cmd>
Result<CommandBody> noArgs(Reader& r) {
  MB_CHECK(r.end());
  return Cmd{};
}

Result<CommandBody> parseUidCommand(Reader& r, const ParserOptions& opt) {
  MB_CHECK(r.sp("UID command"));
  MB_TRY(name, r.atom("UID command"));
  std::string u = toUpper(name);
  if (u == "FETCH") return parseFetch(r, true);
  if (u == "STORE") return parseStore(r, true);
  if (u == "COPY") return parseCopyLike<CopyCmd>(r, true);
  if (u == "MOVE") return parseCopyLike<MoveCmd>(r, true);
  if (u == "SEARCH") return parseSearch(r, true, opt);
  if (u == "EXPUNGE") {
    MB_CHECK(r.sp("UID set"));
    MB_TRY(set, r.seqSet("UID set"));
    MB_CHECK(r.end());
    return ExpungeCmd{std::move(set)};
  }
  return bad("Unknown UID command " + name);
}

Result<CommandBody> parseBody(Reader& r, const std::string& name, const ParserOptions& opt) {
  std::string u = toUpper(name);
  if (u == "CAPABILITY") return noArgs<CapabilityCmd>(r);
  if (u == "NOOP") return noArgs<NoopCmd>(r);
  if (u == "LOGOUT") return noArgs<LogoutCmd>(r);
  if (u == "STARTTLS") return noArgs<StartTlsCmd>(r);
  if (u == "AUTHENTICATE") return parseAuthenticate(r);
  if (u == "LOGIN") return parseLogin(r);
  if (u == "SELECT") return parseSelect(r, false);
  if (u == "EXAMINE") return parseSelect(r, true);
  if (u == "CREATE") return parseCreate(r);
  if (u == "DELETE") return parseOneMailbox<DeleteCmd>(r);
  if (u == "RENAME") return parseRename(r);
  if (u == "SUBSCRIBE") return parseOneMailbox<SubscribeCmd>(r);
  if (u == "UNSUBSCRIBE") return parseOneMailbox<UnsubscribeCmd>(r);
  if (u == "LIST") return parseList(r);
  if (u == "LSUB") return parseLsub(r);
  if (u == "STATUS") return parseStatus(r);
  if (u == "APPEND") return parseAppend(r);
  if (u == "CHECK") return noArgs<CheckCmd>(r);
  if (u == "CLOSE") return noArgs<CloseCmd>(r);
  if (u == "UNSELECT") return noArgs<UnselectCmd>(r);
  if (u == "EXPUNGE") return noArgs<ExpungeCmd>(r);
  if (u == "SEARCH") return parseSearch(r, false, opt);
  if (u == "FETCH") return parseFetch(r, false);
  if (u == "STORE") return parseStore(r, false);
  if (u == "COPY") return parseCopyLike<CopyCmd>(r, false);
  if (u == "MOVE") return parseCopyLike<MoveCmd>(r, false);
  if (u == "UID") return parseUidCommand(r, opt);
  if (u == "IDLE") return noArgs<IdleCmd>(r);
  if (u == "NAMESPACE") return noArgs<NamespaceCmd>(r);
  if (u == "ID") return parseId(r);
  if (u == "ENABLE") return parseEnable(r);
  return bad("Unknown command " + name);
}

}  // namespace

Result<Command> parseCommand(const RawCommand& raw, const ParserOptions& options, std::string& tag) {
  tag = "*";
  if (raw.lines.size() != raw.literals.size() + 1) return bad("Malformed command framing");
  Reader r(raw, options);
  std::string_view t = r.takeWhile(isTagChar);
  if (t.empty()) return bad(r.describe("Invalid tag"));
  if (!r.atLineEnd() && r.peek() != ' ') return bad(r.describe("Invalid character in tag"));
  tag = std::string(t);
  MB_CHECK(r.sp("command name"));
  std::string_view name = r.takeWhile([](char c) { return (ascii::upper(c) >= 'A' && ascii::upper(c) <= 'Z'); });
  if (name.empty() || (!r.atLineEnd() && r.peek() != ' ')) return bad(r.describe("Invalid command name"));
  MB_TRY(body, parseBody(r, std::string(name), options));
  MB_CHECK(r.end());
  return Command{tag, std::move(body)};
}

CommandParser::CommandParser(ParserOptions options)
    : options_(options), framer_(options.limits, options.literalMinus) {}

void CommandParser::expectIdleDone() {
  expect_ = Expect::IdleDone;
  framer_.setMode(Framer::Mode::Line);
}

void CommandParser::expectAuthResponse() {
  expect_ = Expect::AuthResponse;
  framer_.setMode(Framer::Mode::Line);
}

CommandParser::Event CommandParser::next() {
  FrameEvent ev = framer_.next();
  switch (ev) {
    case FrameEvent::NeedMore:
      return Event::NeedMore;
    case FrameEvent::Continuation:
      return Event::Continuation;
    case FrameEvent::Error: {
      // A failed DONE or SASL line ends that exchange, as a wrong line does.
      expect_ = Expect::Command;
      framer_.setMode(Framer::Mode::Command);
      const FrameError& fe = framer_.error();
      error_ = ParseError{fe.tag, fe.bad, fe.respCode, fe.message, fe.closeConnection};
      return Event::Error;
    }
    case FrameEvent::Command:
      break;
  }
  RawCommand raw = framer_.takeCommand();
  Expect was = expect_;
  expect_ = Expect::Command;
  framer_.setMode(Framer::Mode::Command);
  if (was == Expect::IdleDone) {
    // RFC 2177 3: only "DONE" ends IDLE; anything else is a protocol error
    // the session answers against the IDLE tag.
    if (iequals(raw.lines[0], "DONE")) return Event::IdleDone;
    error_ = ParseError{"*", true, "", "Expected DONE to end IDLE", false};
    return Event::Error;
  }
  if (was == Expect::AuthResponse) {
    line_ = std::move(raw.lines[0]);
    return Event::AuthResponse;
  }
  std::string tag;
  auto cmd = parseCommand(raw, options_, tag);
  if (!cmd) {
    error_ = ParseError{tag, true, cmd.error().respCode, cmd.error().message, false};
    return Event::Error;
  }
  command_ = std::move(*cmd);
  return Event::Command;
}

std::string commandName(const Command& cmd) {
  struct Namer {
    std::string operator()(const CapabilityCmd&) const { return "CAPABILITY"; }
    std::string operator()(const NoopCmd&) const { return "NOOP"; }
    std::string operator()(const LogoutCmd&) const { return "LOGOUT"; }
    std::string operator()(const StartTlsCmd&) const { return "STARTTLS"; }
    std::string operator()(const AuthenticateCmd&) const { return "AUTHENTICATE"; }
    std::string operator()(const LoginCmd&) const { return "LOGIN"; }
    std::string operator()(const SelectCmd& c) const { return c.readOnly ? "EXAMINE" : "SELECT"; }
    std::string operator()(const CreateCmd&) const { return "CREATE"; }
    std::string operator()(const DeleteCmd&) const { return "DELETE"; }
    std::string operator()(const RenameCmd&) const { return "RENAME"; }
    std::string operator()(const SubscribeCmd&) const { return "SUBSCRIBE"; }
    std::string operator()(const UnsubscribeCmd&) const { return "UNSUBSCRIBE"; }
    std::string operator()(const ListCmd&) const { return "LIST"; }
    std::string operator()(const LsubCmd&) const { return "LSUB"; }
    std::string operator()(const StatusCmd&) const { return "STATUS"; }
    std::string operator()(const AppendCmd&) const { return "APPEND"; }
    std::string operator()(const CheckCmd&) const { return "CHECK"; }
    std::string operator()(const CloseCmd&) const { return "CLOSE"; }
    std::string operator()(const UnselectCmd&) const { return "UNSELECT"; }
    std::string operator()(const ExpungeCmd& c) const { return c.uids ? "UID EXPUNGE" : "EXPUNGE"; }
    std::string operator()(const SearchCmd& c) const { return c.uid ? "UID SEARCH" : "SEARCH"; }
    std::string operator()(const FetchCmd& c) const { return c.uid ? "UID FETCH" : "FETCH"; }
    std::string operator()(const StoreCmd& c) const { return c.uid ? "UID STORE" : "STORE"; }
    std::string operator()(const CopyCmd& c) const { return c.uid ? "UID COPY" : "COPY"; }
    std::string operator()(const MoveCmd& c) const { return c.uid ? "UID MOVE" : "MOVE"; }
    std::string operator()(const IdleCmd&) const { return "IDLE"; }
    std::string operator()(const NamespaceCmd&) const { return "NAMESPACE"; }
    std::string operator()(const IdCmd&) const { return "ID"; }
    std::string operator()(const EnableCmd&) const { return "ENABLE"; }
  };
  return std::visit(Namer{}, cmd.body);
}

}  // namespace mb::imap
