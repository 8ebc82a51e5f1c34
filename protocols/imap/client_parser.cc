// ResponseParser: frames server output into responses (lines plus the
// literals between them), then parses each whole response into a typed value.
// Framing never depends on the parse, so a response we cannot parse is
// dropped whole and the next one starts cleanly.
#include "protocols/imap/client_parser.h"

#include <algorithm>
#include <utility>

#include "protocols/imap/framer.h"
#include "protocols/imap/lexical.h"
#include "protocols/imap/mutf7.h"

namespace mb::imap::client {
namespace {

// Enough of a dropped line to see a trailing "~{NNNNNNNNNNNNNNNNNNNN}".
constexpr size_t kTailKeep = 40;
// Bookkeeping a literal costs beyond its bytes; counted against the line
// limit so a stream of "{0}" literals cannot grow the vectors unbounded.
constexpr size_t kLiteralOverhead = 64;
// How much of a bad response an error message quotes.
constexpr size_t kSnippet = 80;

constexpr int kEnd = -1;      // no more text in this response
constexpr int kLiteral = -2;  // a literal starts here

bool isStatusWord(std::string_view w) {
  return iequals(w, "OK") || iequals(w, "NO") || iequals(w, "BAD") || iequals(w, "BYE") || iequals(w, "PREAUTH");
}

// Control characters would break a log line; a long line only needs its start.
std::string snippet(std::string_view s) {
  std::string out;
  for (char ch : s.substr(0, kSnippet)) {
    auto c = static_cast<unsigned char>(ch);
    out += (c < 0x20 || c == 0x7F) ? '?' : ch;
  }
  if (s.size() > kSnippet) out += "...";
  return out;
}

// The response as it was on the wire (without the final CRLF).
std::string wireText(const std::vector<std::string>& lines, const std::vector<std::string>& literals) {
  std::string out = lines.empty() ? std::string() : lines[0];
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    out += "\r\n";
    out += literals[i];
    out += lines[i + 1];
  }
  return out;
}

CodeKind codeKind(std::string_view name) {
  static constexpr std::pair<std::string_view, CodeKind> kCodes[] = {
      {"ALERT", CodeKind::Alert},
      {"ALREADYEXISTS", CodeKind::AlreadyExists},
      {"APPENDUID", CodeKind::AppendUid},
      {"AUTHENTICATIONFAILED", CodeKind::AuthenticationFailed},
      {"AUTHORIZATIONFAILED", CodeKind::AuthorizationFailed},
      {"BADCHARSET", CodeKind::BadCharset},
      {"CANNOT", CodeKind::Cannot},
      {"CAPABILITY", CodeKind::Capability},
      {"CLIENTBUG", CodeKind::ClientBug},
      {"CLOSED", CodeKind::Closed},
      {"CONTACTADMIN", CodeKind::ContactAdmin},
      {"COPYUID", CodeKind::CopyUid},
      {"CORRUPTION", CodeKind::Corruption},
      {"EXPIRED", CodeKind::Expired},
      {"EXPUNGEISSUED", CodeKind::ExpungeIssued},
      {"HIGHESTMODSEQ", CodeKind::HighestModSeq},
      {"INUSE", CodeKind::InUse},
      {"LIMIT", CodeKind::Limit},
      {"MODIFIED", CodeKind::Modified},
      {"NOMODSEQ", CodeKind::NoModSeq},
      {"NONEXISTENT", CodeKind::NonExistent},
      {"NOPERM", CodeKind::NoPerm},
      {"OVERQUOTA", CodeKind::OverQuota},
      {"PARSE", CodeKind::Parse},
      {"PERMANENTFLAGS", CodeKind::PermanentFlags},
      {"PRIVACYREQUIRED", CodeKind::PrivacyRequired},
      {"READ-ONLY", CodeKind::ReadOnly},
      {"READ-WRITE", CodeKind::ReadWrite},
      {"SERVERBUG", CodeKind::ServerBug},
      {"TRYCREATE", CodeKind::TryCreate},
      {"UIDNEXT", CodeKind::UidNext},
      {"UIDNOTSTICKY", CodeKind::UidNotSticky},
      {"UIDVALIDITY", CodeKind::UidValidity},
      {"UNAVAILABLE", CodeKind::Unavailable},
      {"UNKNOWN-CTE", CodeKind::UnknownCte},
      {"UNSEEN", CodeKind::Unseen},
  };
  for (const auto& [n, k] : kCodes) {
    if (n == name) return k;
  }
  return CodeKind::Other;
}

// Walks one response: text segments lines[i], each but the last followed by
// literals[i] whose "{N}" header ends lines[i]. The header text is hidden;
// the cursor reports kLiteral where it stood.
class Cursor {
 public:
  Cursor(std::vector<std::string>& lines, std::vector<std::string>& literals, const std::vector<bool>& literal8)
      : lines_(lines), literals_(literals), literal8_(literal8) {
    enter(0);
  }

  int peek() const {
    if (pos_ < end_) return static_cast<unsigned char>(lines_[seg_][pos_]);
    return seg_ + 1 < lines_.size() ? kLiteral : kEnd;
  }
  // Never past the visible text: a literal is only left via takeLiteral().
  void advance() {
    if (pos_ < end_) ++pos_;
  }
  bool consume(char c) {
    if (peek() != static_cast<unsigned char>(c)) return false;
    ++pos_;
    return true;
  }
  // Servers put runs of spaces (and trailing ones) where one SP belongs;
  // tolerating them costs nothing and loses nothing.
  bool spaces() {
    bool any = false;
    while (peek() == ' ') {
      ++pos_;
      any = true;
    }
    return any;
  }
  bool atEnd() {
    spaces();
    return peek() == kEnd;
  }

  // The rest of the current text segment (status text has no literals).
  std::string rest() {
    std::string out = lines_[seg_].substr(pos_, end_ - pos_);
    pos_ = end_;
    return out;
  }

  // A run of atom-ish characters. Stops at space, parens, quotes, a
  // literal, and at the brackets named in `stops`.
  std::string_view word(std::string_view stops = "") {
    size_t start = pos_;
    while (pos_ < end_) {
      auto c = static_cast<unsigned char>(lines_[seg_][pos_]);
      if (c <= 0x20 || c == 0x7F || c == '(' || c == ')' || c == '"' || stops.find(static_cast<char>(c)) != std::string_view::npos)
        break;
      ++pos_;
    }
    return std::string_view(lines_[seg_]).substr(start, pos_ - start);
  }

  std::string takeLiteral(bool* literal8) {
    std::string out = std::move(literals_[seg_]);
    if (literal8) *literal8 = literal8_[seg_];
    enter(seg_ + 1);
    return out;
  }
  // The literal's wire form, for raw text: "{N}" CRLF data.
  void appendLiteralRaw(std::string& out) {
    out += literal8_[seg_] ? "~{" : "{";
    out += std::to_string(literals_[seg_].size());
    out += "}\r\n";
    out += literals_[seg_];
    enter(seg_ + 1);
  }

  std::string where() const {
    std::string_view line = lines_[seg_];
    return "near '" + snippet(line.substr(std::min(pos_, line.size()))) + "'";
  }

 private:
  void enter(size_t seg) {
    seg_ = seg;
    pos_ = 0;
    end_ = lines_[seg].size();
    LiteralHeader h;
    if (seg + 1 < lines_.size() && findLiteralHeader(lines_[seg], h)) end_ = h.start;
  }

  std::vector<std::string>& lines_;
  std::vector<std::string>& literals_;
  const std::vector<bool>& literal8_;
  size_t seg_ = 0;
  size_t pos_ = 0;
  size_t end_ = 0;
};

std::unexpected<Error> bad(const Cursor& r, std::string_view what) {
  return fail(ErrorKind::Syntax, "Malformed server response: " + std::string(what) + " " + r.where());
}

// Reads values out of one response. Keywords are case-insensitive.
class Reader {
 public:
  Reader(Cursor& r, bool utf8Accept) : r_(r), utf8Accept_(utf8Accept) {}

  Cursor& cursor() { return r_; }

  Status sp() {
    if (!r_.spaces()) return bad(r_, "expected a space");
    return {};
  }
  Status expect(char c) {
    r_.spaces();
    if (!r_.consume(c)) return bad(r_, std::string("expected '") + c + "'");
    return {};
  }

  Result<uint64_t> number64() {
    r_.spaces();
    uint64_t v = 0;
    size_t n = 0;
    while (isDigit(r_.peek())) {
      uint64_t d = static_cast<uint64_t>(r_.peek() - '0');
      if (v > (UINT64_MAX - d) / 10) return bad(r_, "number too large");
      v = v * 10 + d;
      r_.advance();
      ++n;
    }
    if (n == 0) return bad(r_, "expected a number");
    return v;
  }
  Result<uint32_t> number32() {
    auto v = number64();
    if (!v) return std::unexpected(v.error());
    if (*v > UINT32_MAX) return bad(r_, "number above 2^32-1");
    return static_cast<uint32_t>(*v);
  }

  Result<std::string> quoted() {
    if (!r_.consume('"')) return bad(r_, "expected a quoted string");
    std::string out;
    while (true) {
      int c = r_.peek();
      if (c < 0) return bad(r_, "unterminated quoted string");
      r_.advance();
      if (c == '"') return out;
      if (c == '\\') {
        // Only \" and \\ are legal; keeping the next octet either way
        // reads what a sloppy server meant.
        c = r_.peek();
        if (c < 0) return bad(r_, "unterminated quoted string");
        r_.advance();
      }
      out += static_cast<char>(c);
    }
  }

  // string = quoted / literal.
  Result<std::string> string(bool* literal8 = nullptr) {
    r_.spaces();
    if (literal8) *literal8 = false;
    if (r_.peek() == kLiteral) return r_.takeLiteral(literal8);
    return quoted();
  }
  Result<std::optional<std::string>> nstring(bool* literal8 = nullptr) {
    r_.spaces();
    if (r_.peek() != '"' && r_.peek() != kLiteral) {
      std::string_view w = r_.word();
      if (iequals(w, "NIL")) return std::optional<std::string>();
      return bad(r_, "expected a string or NIL");
    }
    auto s = string(literal8);
    if (!s) return std::unexpected(s.error());
    return std::optional<std::string>(std::move(*s));
  }
  Result<std::string> astring() {
    r_.spaces();
    if (r_.peek() == '"' || r_.peek() == kLiteral) return string();
    std::string_view w = r_.word();
    if (w.empty()) return bad(r_, "expected an atom or string");
    return std::string(w);
  }
  Result<std::string> atom(std::string_view stops = "") {
    r_.spaces();
    std::string_view w = r_.word(stops);
    if (w.empty()) return bad(r_, "expected an atom");
    return std::string(w);
  }

  // "(" [flag *(SP flag)] ")": flags as sent ("\Seen", "$Label", "\*").
  Result<std::vector<std::string>> flagList() {
    if (auto s = expect('('); !s) return std::unexpected(s.error());
    std::vector<std::string> out;
    while (true) {
      r_.spaces();
      if (r_.consume(')')) return out;
      std::string_view w = r_.word();
      if (w.empty()) return bad(r_, "expected a flag or ')'");
      out.emplace_back(w);
    }
  }

  Result<SequenceSet> uidSet(bool allowStar) {
    r_.spaces();
    std::string_view w = r_.word();
    auto set = SequenceSet::parse(w);
    if (!set || set->isSaved() || (!allowStar && set->usesStar())) return bad(r_, "invalid sequence set");
    return set;
  }

  Result<MailboxName> mailbox(std::optional<char> delimiter = std::nullopt) {
    auto raw = astring();
    if (!raw) return std::unexpected(raw.error());
    MailboxName m;
    m.wire = normalizeInbox(*raw, delimiter.value_or('\0'));
    if (isInbox(*raw)) m.wire = "INBOX";
    if (auto d = mailboxFromWire(m.wire, utf8Accept_)) {
      m.utf8 = std::move(*d);
    } else {
      // Some servers send raw 8-bit or sloppy mUTF-7; the name must still
      // be usable, so keep the wire spelling and say so.
      m.utf8 = m.wire;
      m.decoded = false;
    }
    return m;
  }

  // One value of any shape, kept as wire text: atom, number, string (a
  // literal re-encoded), or a parenthesised list. Iterative: a hostile
  // server nesting a million "(" must not exhaust the stack.
  Status raw(std::string& out) {
    r_.spaces();
    size_t depth = 0;
    size_t start = out.size();
    while (true) {
      int c = r_.peek();
      if (c == kEnd) {
        if (depth > 0 || out.size() == start) return bad(r_, "value ends early");
        return {};
      }
      if (c == kLiteral) {
        r_.appendLiteralRaw(out);
      } else if (c == '"') {
        out += '"';
        r_.advance();
        while (true) {
          int q = r_.peek();
          if (q < 0) return bad(r_, "unterminated quoted string");
          out += static_cast<char>(q);
          r_.advance();
          if (q == '"') break;
          if (q == '\\') {
            q = r_.peek();
            if (q < 0) return bad(r_, "unterminated quoted string");
            out += static_cast<char>(q);
            r_.advance();
          }
        }
      } else if (c == '(') {
        ++depth;
        out += '(';
        r_.advance();
      } else if (c == ')') {
        if (depth == 0) break;
        --depth;
        out += ')';
        r_.advance();
      } else if (c == ' ') {
        if (depth == 0) break;
        out += ' ';
        r_.advance();
      } else {
        out += static_cast<char>(c);
        r_.advance();
      }
      if (depth == 0) {
        int n = r_.peek();
        if (n == ' ' || n == ')' || n == kEnd) break;
      }
    }
    if (out.size() == start) return bad(r_, "expected a value");
    return {};
  }

  // "[" ... "]" verbatim (without the brackets); quotes may hide a "]".
  Result<std::string> bracketed() {
    if (!r_.consume('[')) return bad(r_, "expected '['");
    std::string out;
    bool inQuote = false;
    while (true) {
      int c = r_.peek();
      if (c < 0) return bad(r_, "unterminated '['");
      r_.advance();
      if (!inQuote && c == ']') return out;
      if (c == '"') inQuote = !inQuote;
      else if (inQuote && c == '\\' && r_.peek() >= 0) {
        out += '\\';
        c = r_.peek();
        r_.advance();
      }
      out += static_cast<char>(c);
    }
  }

 private:
  Cursor& r_;
  bool utf8Accept_;
};

// Parses the arguments of a response code once its name is known.
Status parseCodeArgs(ResponseCode& code) {
  std::vector<std::string> lines{code.args};
  std::vector<std::string> literals;
  std::vector<bool> literal8;
  Cursor c(lines, literals, literal8);
  Reader r(c, false);
  auto badCode = [&]() { return fail(ErrorKind::Syntax, "Malformed [" + code.name + "] response code: '" + snippet(code.args) + "'"); };
  switch (code.kind) {
    case CodeKind::UidValidity:
    case CodeKind::UidNext:
    case CodeKind::Unseen: {
      auto n = r.number32();
      if (!n) return badCode();
      code.number = *n;
      break;
    }
    case CodeKind::HighestModSeq: {
      auto n = r.number64();
      if (!n) return badCode();
      code.number = *n;
      break;
    }
    case CodeKind::PermanentFlags: {
      auto f = r.flagList();
      if (!f) return badCode();
      code.list = std::move(*f);
      break;
    }
    case CodeKind::Capability:
      while (!c.atEnd()) {
        auto a = r.atom();
        if (!a) return badCode();
        code.list.push_back(toUpper(*a));
      }
      break;
    case CodeKind::BadCharset:
      if (c.atEnd()) break;
      if (auto s = r.expect('('); !s) return badCode();
      while (true) {
        c.spaces();
        if (c.consume(')')) break;
        auto a = r.astring();
        if (!a) return badCode();
        code.list.push_back(std::move(*a));
      }
      break;
    case CodeKind::AppendUid: {
      // RFC 4315 3: "APPENDUID" SP nz-number SP append-uid (a uid-set
      // when MULTIAPPEND added several).
      auto v = r.number32();
      if (!v || !r.sp()) return badCode();
      auto set = r.uidSet(false);
      if (!set) return badCode();
      code.number = *v;
      code.uids = std::move(*set);
      break;
    }
    case CodeKind::CopyUid: {
      // RFC 4315 3: "COPYUID" SP nz-number SP uid-set SP uid-set.
      auto v = r.number32();
      if (!v || !r.sp()) return badCode();
      auto src = r.uidSet(false);
      if (!src || !r.sp()) return badCode();
      auto dst = r.uidSet(false);
      if (!dst) return badCode();
      code.number = *v;
      code.sourceUids = std::move(*src);
      code.uids = std::move(*dst);
      break;
    }
    case CodeKind::Modified: {
      // RFC 7162 3.1.3: the messages UNCHANGEDSINCE kept from being stored.
      auto set = r.uidSet(false);
      if (!set) return badCode();
      code.uids = std::move(*set);
      break;
    }
    default:
      return {};  // no arguments defined, or unknown: args keeps the text
  }
  if (!c.atEnd()) return badCode();
  return {};
}

// resp-text = ["[" resp-text-code "]" SP] text, after the status word.
Result<StatusText> statusText(Reader& r, StatusKind kind) {
  Cursor& c = r.cursor();
  StatusText st;
  st.status = kind;
  c.spaces();
  if (c.peek() == '[') {
    c.advance();
    std::string_view name = c.word("[]");
    if (name.empty()) return bad(c, "expected a response code name");
    st.code.name = toUpper(name);
    st.code.kind = codeKind(st.code.name);
    if (c.consume(' ')) {
      // Up to the matching "]", outside quotes, parentheses and nested
      // brackets (an unknown code may carry any of them).
      std::string args;
      int depth = 0;
      bool inQuote = false;
      while (true) {
        int ch = c.peek();
        if (ch < 0) return bad(c, "unterminated response code");
        if (!inQuote && depth == 0 && ch == ']') break;
        c.advance();
        if (inQuote && ch == '\\' && c.peek() >= 0) {
          args += '\\';
          ch = c.peek();
          c.advance();
        } else if (ch == '"') {
          inQuote = !inQuote;
        } else if (!inQuote && (ch == '(' || ch == '[')) {
          ++depth;
        } else if (!inQuote && (ch == ')' || ch == ']') && depth > 0) {
          --depth;
        }
        args += static_cast<char>(ch);
      }
      st.code.args = std::move(args);
    }
    if (!c.consume(']')) return bad(c, "expected ']' after the response code");
    if (auto s = parseCodeArgs(st.code); !s) return std::unexpected(s.error());
    c.spaces();
  }
  st.text = c.rest();
  return st;
}

std::optional<StatusKind> statusKind(std::string_view w) {
  if (iequals(w, "OK")) return StatusKind::Ok;
  if (iequals(w, "NO")) return StatusKind::No;
  if (iequals(w, "BAD")) return StatusKind::Bad;
  if (iequals(w, "BYE")) return StatusKind::Bye;
  if (iequals(w, "PREAUTH")) return StatusKind::Preauth;
  return std::nullopt;
}

// date-time text, "dd-Mon-yyyy hh:mm:ss +zzzz" with a space-padded day
// allowed (RFC 3501 9 date-day-fixed).
std::optional<DateTime> parseDateTime(std::string_view s) {
  static constexpr std::string_view kMonths[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                 "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
  std::string norm(s);
  if (norm.size() == 26 && norm[0] == ' ') norm[0] = '0';
  // A one-digit day without padding ("7-Jul-...") is read too.
  else if (norm.size() == 25 && isDigit(norm[0]) && norm[1] == '-') norm.insert(norm.begin(), '0');
  if (norm.size() != 26) return std::nullopt;
  auto digits = [&](size_t at, size_t n, int& out) {
    out = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (!isDigit(norm[i])) return false;
      out = out * 10 + (norm[i] - '0');
    }
    return true;
  };
  DateTime dt;
  int zone = 0;
  if (!digits(0, 2, dt.date.day) || norm[2] != '-' || norm[6] != '-' || !digits(7, 4, dt.date.year) ||
      norm[11] != ' ' || !digits(12, 2, dt.hour) || norm[14] != ':' || !digits(15, 2, dt.minute) ||
      norm[17] != ':' || !digits(18, 2, dt.second) || norm[20] != ' ' || (norm[21] != '+' && norm[21] != '-') ||
      !digits(22, 4, zone))
    return std::nullopt;
  std::string mon = toUpper(std::string_view(norm).substr(3, 3));
  for (int m = 0; m < 12; ++m) {
    if (kMonths[m] == mon) dt.date.month = m + 1;
  }
  if (dt.date.month == 0 || dt.date.day < 1 || dt.date.day > 31 || dt.hour > 23 || dt.minute > 59 ||
      dt.second > 60 || zone % 100 > 59)
    return std::nullopt;
  dt.zoneMinutes = (zone / 100 * 60 + zone % 100) * (norm[21] == '-' ? -1 : 1);
  return dt;
}

Result<Response> parseFetch(Reader& r, uint32_t seq) {
  Cursor& c = r.cursor();
  FetchData f;
  f.seq = seq;
  if (auto s = r.expect('('); !s) return std::unexpected(s.error());
  while (true) {
    c.spaces();
    if (c.consume(')')) break;
    if (c.peek() < 0) return bad(c, "unterminated FETCH item list");
    std::string name = toUpper(c.word("[<"));
    if (name.empty()) return bad(c, "expected a FETCH item name");
    std::optional<std::string> section;
    std::optional<uint32_t> origin;
    if (c.peek() == '[') {
      auto sec = r.bracketed();
      if (!sec) return std::unexpected(sec.error());
      section = std::move(*sec);
      if (c.consume('<')) {
        auto o = r.number32();
        if (!o) return std::unexpected(o.error());
        if (!c.consume('>')) return bad(c, "expected '>' after the origin");
        origin = *o;
      }
    }
    if (auto s = r.sp(); !s) return std::unexpected(s.error());
    bool isBody = section && (name == "BODY" || name == "BINARY");
    bool isRfc822 = !section && (name == "RFC822" || name == "RFC822.HEADER" || name == "RFC822.TEXT");
    if (isBody || isRfc822) {
      FetchBody b;
      b.item = name;
      b.section = section.value_or("");
      b.origin = origin;
      auto v = r.nstring(&b.literal8);
      if (!v) return std::unexpected(v.error());
      b.data = std::move(*v);
      f.bodies.push_back(std::move(b));
    } else if (section) {
      std::string key = name + "[" + *section + "]";
      if (origin) key += "<" + std::to_string(*origin) + ">";
      std::string raw;
      if (auto s = r.raw(raw); !s) return std::unexpected(s.error());
      f.other.emplace_back(std::move(key), std::move(raw));
    } else if (name == "UID") {
      auto v = r.number32();
      if (!v) return std::unexpected(v.error());
      f.uid = *v;
    } else if (name == "FLAGS") {
      auto v = r.flagList();
      if (!v) return std::unexpected(v.error());
      f.flags = std::move(*v);
    } else if (name == "RFC822.SIZE") {
      auto v = r.number64();
      if (!v) return std::unexpected(v.error());
      f.rfc822Size = *v;
    } else if (name == "MODSEQ") {
      // RFC 7162 3.1.4.1: MODSEQ "(" mod-sequence-value ")".
      if (auto s = r.expect('('); !s) return std::unexpected(s.error());
      auto v = r.number64();
      if (!v) return std::unexpected(v.error());
      if (auto s = r.expect(')'); !s) return std::unexpected(s.error());
      f.modSeq = *v;
    } else if (name == "INTERNALDATE") {
      auto v = r.nstring();
      if (!v) return std::unexpected(v.error());
      auto dt = *v ? parseDateTime(**v) : std::nullopt;
      if (dt) f.internalDate = *dt;
      // A date we cannot read is kept raw rather than failing the message.
      else f.other.emplace_back(name, v->value_or("NIL"));
    } else {
      std::string raw;
      if (auto s = r.raw(raw); !s) return std::unexpected(s.error());
      if (name == "ENVELOPE") f.envelope = std::move(raw);
      else if (name == "BODYSTRUCTURE" || name == "BODY") f.bodyStructure = std::move(raw);
      else f.other.emplace_back(std::move(name), std::move(raw));
    }
  }
  return f;
}

Result<Response> parseList(Reader& r, bool lsub) {
  Cursor& c = r.cursor();
  ListData l;
  l.lsub = lsub;
  auto attrs = r.flagList();
  if (!attrs) return std::unexpected(attrs.error());
  l.attributes = std::move(*attrs);
  if (auto s = r.sp(); !s) return std::unexpected(s.error());
  if (c.peek() == '"') {
    auto d = r.quoted();
    if (!d) return std::unexpected(d.error());
    if (d->size() != 1) return bad(c, "hierarchy delimiter must be one character");
    l.delimiter = (*d)[0];
  } else if (!iequals(c.word(), "NIL")) {
    return bad(c, "expected a quoted delimiter or NIL");
  }
  if (auto s = r.sp(); !s) return std::unexpected(s.error());
  auto name = r.mailbox(l.delimiter);
  if (!name) return std::unexpected(name.error());
  l.mailbox = std::move(*name);
  c.spaces();
  if (c.consume('(')) {
    // mbox-list-extended (RFC 5258 9): tag SP value pairs.
    while (true) {
      c.spaces();
      if (c.consume(')')) break;
      auto tag = r.astring();
      if (!tag) return std::unexpected(tag.error());
      std::string key = toUpper(*tag);
      if (auto s = r.sp(); !s) return std::unexpected(s.error());
      if (key == "CHILDINFO") {
        if (auto s = r.expect('('); !s) return std::unexpected(s.error());
        while (true) {
          c.spaces();
          if (c.consume(')')) break;
          auto v = r.astring();
          if (!v) return std::unexpected(v.error());
          l.childInfo.push_back(toUpper(*v));
        }
      } else if (key == "OLDNAME") {
        if (auto s = r.expect('('); !s) return std::unexpected(s.error());
        auto old = r.mailbox(l.delimiter);
        if (!old) return std::unexpected(old.error());
        l.oldName = std::move(*old);
        if (auto s = r.expect(')'); !s) return std::unexpected(s.error());
      } else {
        std::string raw;
        if (auto s = r.raw(raw); !s) return std::unexpected(s.error());
        l.extended.emplace_back(std::move(key), std::move(raw));
      }
    }
  }
  return l;
}

Result<Response> parseStatus(Reader& r) {
  Cursor& c = r.cursor();
  StatusData st;
  auto name = r.mailbox();
  if (!name) return std::unexpected(name.error());
  st.mailbox = std::move(*name);
  if (auto s = r.expect('('); !s) return std::unexpected(s.error());
  while (true) {
    c.spaces();
    if (c.consume(')')) break;
    std::string item = toUpper(c.word());
    if (item.empty()) return bad(c, "expected a STATUS item");
    auto v = r.number64();
    if (!v) return std::unexpected(v.error());
    bool small = *v <= UINT32_MAX;
    auto set32 = [&](std::optional<uint32_t>& field) -> Status {
      if (!small) return bad(c, "STATUS value above 2^32-1");
      field = static_cast<uint32_t>(*v);
      return {};
    };
    Status ok;
    if (item == "MESSAGES") ok = set32(st.messages);
    else if (item == "RECENT") ok = set32(st.recent);
    else if (item == "UIDNEXT") ok = set32(st.uidNext);
    else if (item == "UIDVALIDITY") ok = set32(st.uidValidity);
    else if (item == "UNSEEN") ok = set32(st.unseen);
    else if (item == "DELETED") ok = set32(st.deleted);
    else if (item == "HIGHESTMODSEQ") st.highestModSeq = *v;
    else if (item == "SIZE") st.size = *v;
    else st.other.emplace_back(std::move(item), *v);
    if (!ok) return std::unexpected(ok.error());
  }
  return st;
}

Result<Response> parseSearch(Reader& r) {
  Cursor& c = r.cursor();
  SearchData s;
  while (!c.atEnd()) {
    if (c.consume('(')) {
      // RFC 7162 3.1.5: "(MODSEQ" SP mod-sequence-value ")".
      auto kw = r.atom();
      if (!kw || !iequals(*kw, "MODSEQ")) return bad(c, "expected MODSEQ");
      auto v = r.number64();
      if (!v) return std::unexpected(v.error());
      if (auto e = r.expect(')'); !e) return std::unexpected(e.error());
      s.modSeq = *v;
      continue;
    }
    auto n = r.number32();
    if (!n) return std::unexpected(n.error());
    s.numbers.push_back(*n);
  }
  return s;
}

Result<Response> parseEsearch(Reader& r) {
  Cursor& c = r.cursor();
  EsearchData e;
  c.spaces();
  if (c.consume('(')) {
    // search-correlator = SP "(" "TAG" SP tag-string ")" (RFC 4731 3).
    auto kw = r.atom();
    if (!kw || !iequals(*kw, "TAG")) return bad(c, "expected TAG in the search correlator");
    auto t = r.astring();
    if (!t) return std::unexpected(t.error());
    e.tag = std::move(*t);
    if (auto s = r.expect(')'); !s) return std::unexpected(s.error());
  }
  while (!c.atEnd()) {
    std::string name = toUpper(c.word());
    if (name.empty()) return bad(c, "expected an ESEARCH item");
    if (name == "UID") {
      e.uid = true;
      continue;
    }
    if (auto s = r.sp(); !s) return std::unexpected(s.error());
    if (name == "MIN" || name == "MAX" || name == "COUNT") {
      auto v = r.number32();
      if (!v) return std::unexpected(v.error());
      (name == "MIN" ? e.min : name == "MAX" ? e.max : e.count) = *v;
    } else if (name == "ALL") {
      auto set = r.uidSet(false);
      if (!set) return std::unexpected(set.error());
      e.all = std::move(*set);
    } else if (name == "MODSEQ") {
      auto v = r.number64();
      if (!v) return std::unexpected(v.error());
      e.modSeq = *v;
    } else {
      std::string raw;
      if (auto s = r.raw(raw); !s) return std::unexpected(s.error());
      e.other.emplace_back(std::move(name), std::move(raw));
    }
  }
  return e;
}

Result<Response> parseVanished(Reader& r) {
  Cursor& c = r.cursor();
  VanishedData v;
  c.spaces();
  if (c.consume('(')) {
    auto kw = r.atom();
    if (!kw || !iequals(*kw, "EARLIER")) return bad(c, "expected (EARLIER)");
    if (auto s = r.expect(')'); !s) return std::unexpected(s.error());
    v.earlier = true;
  }
  auto set = r.uidSet(false);
  if (!set) return std::unexpected(set.error());
  v.uids = std::move(*set);
  return v;
}

Result<Response> parseId(Reader& r) {
  Cursor& c = r.cursor();
  IdData id;
  c.spaces();
  if (!c.consume('(')) {
    if (!iequals(c.word(), "NIL")) return bad(c, "expected ID parameters or NIL");
    return id;
  }
  id.params.emplace();
  while (true) {
    c.spaces();
    if (c.consume(')')) break;
    auto key = r.string();
    if (!key) return std::unexpected(key.error());
    if (auto s = r.sp(); !s) return std::unexpected(s.error());
    auto value = r.nstring();
    if (!value) return std::unexpected(value.error());
    id.params->emplace_back(std::move(*key), std::move(*value));
  }
  return id;
}

std::vector<std::string> upperAtoms(Reader& r) {
  std::vector<std::string> out;
  while (!r.cursor().atEnd()) {
    std::string_view w = r.cursor().word();
    if (w.empty()) {
      // A stray parenthesis, quote or literal: skip it, atoms are all we want.
      if (r.cursor().peek() == kLiteral) r.cursor().takeLiteral(nullptr);
      else r.cursor().advance();
      continue;
    }
    out.push_back(toUpper(w));
  }
  return out;
}

Result<Response> parseUntagged(Reader& r, std::vector<std::string>& lines, std::vector<std::string>& literals,
                               bool greeting) {
  Cursor& c = r.cursor();
  if (auto s = r.sp(); !s) return std::unexpected(s.error());
  // Kept before any literal is moved out: an unknown response stays whole.
  auto unknown = [&](std::string name) -> Response {
    std::string raw = wireText(lines, literals);
    raw.erase(0, std::min(raw.size(), raw.find_first_not_of(' ', 1)));
    return UnknownData{std::move(name), std::move(raw)};
  };
  if (isDigit(c.peek())) {
    if (greeting) return bad(c, "expected a greeting (OK, PREAUTH or BYE)");
    auto n = r.number32();
    if (!n) return std::unexpected(n.error());
    if (auto s = r.sp(); !s) return std::unexpected(s.error());
    std::string kw = toUpper(c.word());
    if (kw == "EXISTS") return ExistsData{*n};
    if (kw == "RECENT") return RecentData{*n};
    if (kw == "EXPUNGE") return ExpungeData{*n};
    if (kw == "FETCH") return parseFetch(r, *n);
    return unknown(kw);
  }
  std::string kw = toUpper(c.word());
  if (kw.empty()) return bad(c, "expected a response keyword");
  if (auto kind = statusKind(kw)) {
    auto st = statusText(r, *kind);
    if (!st) return std::unexpected(st.error());
    if (greeting) {
      if (*kind == StatusKind::No || *kind == StatusKind::Bad) return bad(c, "greeting must be OK, PREAUTH or BYE");
      return Greeting{std::move(*st)};
    }
    return UntaggedStatus{std::move(*st)};
  }
  if (greeting) return bad(c, "expected a greeting (OK, PREAUTH or BYE)");
  if (kw == "CAPABILITY") return CapabilityData{upperAtoms(r)};
  if (kw == "ENABLED") return EnabledData{upperAtoms(r)};
  if (kw == "LIST" || kw == "LSUB") {
    if (auto s = r.sp(); !s) return std::unexpected(s.error());
    return parseList(r, kw == "LSUB");
  }
  if (kw == "STATUS") return parseStatus(r);
  if (kw == "SEARCH") return parseSearch(r);
  if (kw == "ESEARCH") return parseEsearch(r);
  if (kw == "VANISHED") return parseVanished(r);
  if (kw == "FLAGS") {
    auto f = r.flagList();
    if (!f) return std::unexpected(f.error());
    return FlagsData{std::move(*f)};
  }
  if (kw == "NAMESPACE") {
    c.spaces();
    std::string raw;
    while (c.peek() != kEnd) {
      if (c.peek() == kLiteral) c.appendLiteralRaw(raw);
      else raw += c.rest();
    }
    while (!raw.empty() && raw.back() == ' ') raw.pop_back();
    return NamespaceData{std::move(raw)};
  }
  if (kw == "ID") return parseId(r);
  return unknown(kw);
}

}  // namespace

bool CapabilityData::has(std::string_view cap) const {
  return std::any_of(caps.begin(), caps.end(), [&](const std::string& c) { return iequals(c, cap); });
}

bool ListData::hasAttribute(std::string_view attr) const {
  return std::any_of(attributes.begin(), attributes.end(), [&](const std::string& a) { return iequals(a, attr); });
}

const FetchBody* FetchData::body(std::string_view item, std::string_view section) const {
  for (const auto& b : bodies) {
    if (iequals(b.item, item) && iequals(b.section, section)) return &b;
  }
  return nullptr;
}

const char* statusKindName(StatusKind kind) {
  switch (kind) {
    case StatusKind::Ok: return "OK";
    case StatusKind::No: return "NO";
    case StatusKind::Bad: return "BAD";
    case StatusKind::Bye: return "BYE";
    case StatusKind::Preauth: return "PREAUTH";
  }
  return "?";
}

Result<Response> parseResponse(std::vector<std::string>& lines, std::vector<std::string>& literals,
                               const std::vector<bool>& literal8, bool utf8Accept, bool greeting) {
  if (lines.empty() || lines.size() != literals.size() + 1 || literal8.size() != literals.size())
    return fail(ErrorKind::Internal, "parseResponse: lines and literals do not match");
  Cursor c(lines, literals, literal8);
  Reader r(c, utf8Accept);
  Result<Response> out;
  if (c.peek() == '+') {
    if (greeting) return bad(c, "expected a greeting, got a continuation");
    c.advance();
    // "+" alone happens (some servers drop the SP before empty text).
    c.consume(' ');
    return Continuation{c.rest()};
  }
  std::string_view tag = c.word();
  if (tag.empty()) return bad(c, "expected a tag, '*' or '+'");
  if (tag == "*") {
    out = parseUntagged(r, lines, literals, greeting);
  } else {
    if (greeting) return bad(c, "expected a greeting, got a tagged response");
    if (!std::all_of(tag.begin(), tag.end(), [](char ch) { return isTagChar(ch); }))
      return bad(c, "invalid tag");
    std::string t(tag);
    if (auto s = r.sp(); !s) return std::unexpected(s.error());
    auto kind = statusKind(c.word());
    if (!kind || *kind == StatusKind::Bye || *kind == StatusKind::Preauth)
      return bad(c, "tagged response must be OK, NO or BAD");
    auto st = statusText(r, *kind);
    if (!st) return std::unexpected(st.error());
    out = Tagged{std::move(t), std::move(*st)};
  }
  if (!out) return out;
  // Unknown responses were kept whole without reading their arguments.
  if (!std::holds_alternative<UnknownData>(*out) && !c.atEnd())
    return bad(c, "unexpected data at the end of the response");
  return out;
}

ResponseParser::ResponseParser(ResponseParserOptions options)
    : options_(options), greetingSeen_(!options.expectGreeting) {}

void ResponseParser::feed(std::string_view bytes) {
  dropWindow();
  if (state_ == State::Closed) return;
  if (inputPos_ == input_.size()) {
    input_.clear();
    inputPos_ = 0;
    // Nothing else pending: literal bytes go straight to their home.
    if (remaining_ > 0 && (state_ == State::Literal || state_ == State::DiscardLiteral)) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, bytes.size()));
      if (state_ == State::Literal) literals_.back().append(bytes.substr(0, n));
      remaining_ -= n;
      bytes.remove_prefix(n);
    }
  } else if (inputPos_ > 0 && inputPos_ >= input_.size() / 2) {
    input_.erase(0, inputPos_);
    inputPos_ = 0;
  }
  input_.append(bytes);
}

size_t ResponseParser::bufferedBytes() const {
  size_t n = input_.size() - inputPos_ + line_.size() + discardTail_.size();
  for (const auto& l : lines_) n += l.size();
  for (const auto& l : literals_) n += l.size();
  if (windowOpen_) n -= literals_.back().size() - windowBase_;
  return n;
}

std::span<char> ResponseParser::literalWindow(size_t minBytes) {
  dropWindow();
  if (state_ != State::Literal || inputPos_ != input_.size() || remaining_ == 0 || remaining_ < minBytes) return {};
  std::string& literal = literals_.back();
  windowBase_ = literal.size();
  const auto want = static_cast<size_t>(remaining_);
  // Within the capacity reserved when the literal began: no reallocation,
  // and no zero fill of bytes the read is about to overwrite.
  literal.resize_and_overwrite(windowBase_ + want, [](char*, size_t n) { return n; });
  windowOpen_ = true;
  return {literal.data() + windowBase_, want};
}

void ResponseParser::literalWritten(size_t n) {
  if (!windowOpen_) return;
  std::string& literal = literals_.back();
  n = std::min(n, literal.size() - windowBase_);
  literal.resize(windowBase_ + n);
  windowOpen_ = false;
  remaining_ -= n;
}

void ResponseParser::dropWindow() {
  if (!windowOpen_) return;
  literals_.back().resize(windowBase_);
  windowOpen_ = false;
}

void ResponseParser::resetResponse() {
  windowOpen_ = false;
  lines_.clear();
  literals_.clear();
  literal8_.clear();
  line_.clear();
  lineBytes_ = 0;
  literalBytes_ = 0;
  remaining_ = 0;
}

std::string ResponseParser::currentTag() const {
  std::string_view first = lines_.empty() ? std::string_view(line_) : std::string_view(lines_[0]);
  if (!first.empty() && first[0] == '+') return "+";
  size_t n = 0;
  while (n < first.size() && (first[n] == '*' || isTagChar(first[n]))) ++n;
  if (n == 0 || n >= first.size() || first[n] != ' ') return "";
  return std::string(first.substr(0, n));
}

// Status lines and continuations carry free text: a "{5}" at their end is
// text, never a literal (RFC 3501 9 resp-text has no literal).
bool ResponseParser::literalsAllowed() const {
  if (!lines_.empty()) return true;
  std::string_view l = line_;
  if (!l.empty() && l[0] == '+') return false;
  size_t sp = l.find(' ');
  if (sp == std::string_view::npos) return true;
  size_t start = l.find_first_not_of(' ', sp);
  if (start == std::string_view::npos) return true;
  size_t end = l.find(' ', start);
  return !isStatusWord(l.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
}

ResponseParser::Event ResponseParser::fatal(std::string message) {
  error_ = ResponseError{Error{ErrorKind::Syntax, std::move(message), {}}, currentTag(), true};
  resetResponse();
  input_.clear();
  inputPos_ = 0;
  discardTail_.clear();
  state_ = State::Closed;
  return Event::Error;
}

ResponseParser::Event ResponseParser::failResponse(ErrorKind kind, std::string message, bool discardRest) {
  error_ = ResponseError{Error{kind, std::move(message), {}}, currentTag(), false};
  if (discardRest) {
    discardLiterals_ = literalsAllowed();
    discardTail_ = line_.size() > kTailKeep ? line_.substr(line_.size() - kTailKeep) : line_;
    state_ = State::DiscardLine;
  }
  resetResponse();
  std::string().swap(line_);  // it may have grown to the line limit
  return Event::Error;
}

ResponseParser::Event ResponseParser::responseComplete() {
  std::string tag = currentTag();
  bool greeting = !greetingSeen_;
  auto r = parseResponse(lines_, literals_, literal8_, options_.utf8Accept, greeting);
  greetingSeen_ = true;
  resetResponse();
  if (!r) {
    if (greeting) return fatal("Not an IMAP server greeting: " + r.error().message);
    error_ = ResponseError{std::move(r.error()), std::move(tag), false};
    return Event::Error;
  }
  response_ = std::move(*r);
  return Event::Response;
}

// A whole line (without its LF) is in line_. Returns NeedMore to mean
// "keep going": the response continues with a literal.
ResponseParser::Event ResponseParser::lineComplete() {
  if (!line_.empty() && line_.back() == '\r') line_.pop_back();
  // Blank lines between responses carry nothing; a few servers send them.
  if (lines_.empty() && line_.empty()) return Event::NeedMore;
  LiteralHeader h;
  if (!literalsAllowed() || !findLiteralHeader(line_, h) || endsInsideQuote(std::string_view(line_).substr(0, h.start))) {
    lines_.push_back(std::move(line_));
    line_.clear();
    return responseComplete();
  }
  if (h.overflow) return fatal("Literal size does not fit in 64 bits");
  const ResponseLimits& lim = options_.limits;
  if (h.size > lim.maxLiteralSize || h.size > lim.maxResponseLiterals - std::min(literalBytes_, lim.maxResponseLiterals)) {
    Event ev = failResponse(ErrorKind::Upstream,
                            "Server sent a literal of " + std::to_string(h.size) + " bytes, above the limit of " +
                                std::to_string(lim.maxLiteralSize),
                            false);
    // The literal and the rest of its response are dropped as they come.
    discardLiterals_ = true;
    remaining_ = h.size;
    state_ = State::DiscardLiteral;
    return ev;
  }
  lineBytes_ += kLiteralOverhead;
  if (lineBytes_ + line_.size() > lim.maxLineLength) {
    // The header is at the end: the literal it announces goes too.
    Event ev = failResponse(ErrorKind::Upstream, "Server response longer than the line limit", false);
    discardLiterals_ = true;
    remaining_ = h.size;
    state_ = State::DiscardLiteral;
    return ev;
  }
  lineBytes_ += line_.size();
  literalBytes_ += h.size;
  lines_.push_back(std::move(line_));
  line_.clear();
  literals_.emplace_back();
  literals_.back().reserve(static_cast<size_t>(h.size));
  literal8_.push_back(h.binary);
  remaining_ = h.size;
  state_ = State::Literal;
  return Event::NeedMore;
}

ResponseParser::Event ResponseParser::next() {
  dropWindow();
  while (true) {
    switch (state_) {
      case State::Closed:
        return Event::NeedMore;
      case State::Literal:
      case State::DiscardLiteral: {
        if (remaining_ > 0) {
          size_t avail = input_.size() - inputPos_;
          size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, avail));
          if (state_ == State::Literal) literals_.back().append(input_, inputPos_, n);
          inputPos_ += n;
          remaining_ -= n;
          if (remaining_ > 0) return Event::NeedMore;
        }
        if (state_ == State::Literal) {
          state_ = State::Line;
        } else {
          state_ = State::DiscardLine;
          discardTail_.clear();
        }
        break;
      }
      case State::Line: {
        size_t lf = input_.find('\n', inputPos_);
        size_t end = lf == std::string::npos ? input_.size() : lf;
        line_.append(input_, inputPos_, end - inputPos_);
        inputPos_ = end;
        if (lineBytes_ + line_.size() > options_.limits.maxLineLength) {
          // DiscardLine picks up at the LF, if it is already here.
          return failResponse(ErrorKind::Upstream,
                              "Server response longer than " + std::to_string(options_.limits.maxLineLength) +
                                  " bytes",
                              true);
        }
        if (lf == std::string::npos) return Event::NeedMore;
        inputPos_ = lf + 1;
        Event ev = lineComplete();
        if (ev != Event::NeedMore) return ev;
        break;
      }
      case State::DiscardLine: {
        size_t lf = input_.find('\n', inputPos_);
        size_t end = lf == std::string::npos ? input_.size() : lf;
        discardTail_.append(input_, inputPos_, end - inputPos_);
        if (discardTail_.size() > kTailKeep) discardTail_.erase(0, discardTail_.size() - kTailKeep);
        inputPos_ = end;
        if (lf == std::string::npos) return Event::NeedMore;
        inputPos_ = lf + 1;
        if (!discardTail_.empty() && discardTail_.back() == '\r') discardTail_.pop_back();
        LiteralHeader h;
        if (discardLiterals_ && findLiteralHeader(discardTail_, h)) {
          if (h.overflow) return fatal("Literal size does not fit in 64 bits");
          remaining_ = h.size;
          discardLiterals_ = true;
          state_ = State::DiscardLiteral;
        } else {
          state_ = State::Line;
          resetResponse();
        }
        discardTail_.clear();
        break;
      }
    }
  }
}

}  // namespace mb::imap::client
