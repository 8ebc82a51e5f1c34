// IMAP server session: input loop, state checks, the command table's
// "may this command emit EXPUNGE" rule, login/STARTTLS/IDLE exchanges and the
// mailbox-level commands. Message-level commands live in session_messages.cc.
#include "protocols/imap/session.h"

#include <algorithm>
#include <cstring>

#include "protocols/common/base64.h"
#include "protocols/imap/mutf7.h"
#include "protocols/imap/session_internal.h"

namespace mb::imap {
namespace detail {

std::vector<std::string> flagAtoms(uint32_t flags, const std::vector<std::string>& keywords) {
  std::vector<std::string> out;
  if (flags & kAnswered) out.push_back("\\Answered");
  if (flags & kFlagged) out.push_back("\\Flagged");
  if (flags & kDeleted) out.push_back("\\Deleted");
  if (flags & kSeen) out.push_back("\\Seen");
  if (flags & kDraft) out.push_back("\\Draft");
  for (const auto& k : keywords) out.push_back(k);
  return out;
}

bool parseFlags(const std::vector<std::string>& in, uint32_t& bits, std::vector<std::string>& keywords) {
  static const std::pair<const char*, uint32_t> kSystem[] = {
      {"\\SEEN", kSeen}, {"\\ANSWERED", kAnswered}, {"\\FLAGGED", kFlagged}, {"\\DELETED", kDeleted}, {"\\DRAFT", kDraft}};
  bits = 0;
  keywords.clear();
  for (const auto& f : in) {
    if (!f.empty() && f[0] == '\\') {
      std::string up = f;
      for (auto& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      bool known = false;
      for (auto [name, bit] : kSystem)
        if (up == name) {
          bits |= bit;
          known = true;
        }
      if (!known && up != "\\RECENT") return false;
      continue;
    }
    if (f.empty()) return false;
    if (std::find(keywords.begin(), keywords.end(), f) == keywords.end()) keywords.push_back(f);
  }
  return true;
}

int64_t daysFromCivil(int y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

std::string formatInternalDate(int64_t t) {
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
  int64_t secs = t - days * 86400;
  // civil_from_days (Howard Hinnant)
  int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%02u-%s-%04lld %02lld:%02lld:%02lld +0000", d, kMonths[m - 1],
                static_cast<long long>(y), static_cast<long long>(secs / 3600), static_cast<long long>(secs / 60 % 60),
                static_cast<long long>(secs % 60));
  return buf;
}

int64_t toUnix(const DateTime& dt) {
  return daysFromCivil(dt.date.year, static_cast<unsigned>(dt.date.month), static_cast<unsigned>(dt.date.day)) * 86400 +
         dt.hour * 3600 + dt.minute * 60 + dt.second - static_cast<int64_t>(dt.zoneMinutes) * 60;
}

std::string compactSet(const std::vector<uint32_t>& v) {
  std::string out;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(v[i]);
    if (j > i) out += ":" + std::to_string(v[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace detail

using namespace detail;

namespace {

bool isSelectedOnly(const CommandBody& b) {
  return std::holds_alternative<CheckCmd>(b) || std::holds_alternative<CloseCmd>(b) ||
         std::holds_alternative<UnselectCmd>(b) || std::holds_alternative<ExpungeCmd>(b) ||
         std::holds_alternative<SearchCmd>(b) || std::holds_alternative<FetchCmd>(b) ||
         std::holds_alternative<StoreCmd>(b) || std::holds_alternative<CopyCmd>(b) || std::holds_alternative<MoveCmd>(b);
}

bool isAnyState(const CommandBody& b) {
  return std::holds_alternative<CapabilityCmd>(b) || std::holds_alternative<NoopCmd>(b) ||
         std::holds_alternative<LogoutCmd>(b) || std::holds_alternative<IdCmd>(b);
}

bool isNotAuthOnly(const CommandBody& b) {
  return std::holds_alternative<StartTlsCmd>(b) || std::holds_alternative<AuthenticateCmd>(b) ||
         std::holds_alternative<LoginCmd>(b);
}

// The command table's rule (RFC 3501 7.4.1): FETCH, STORE and SEARCH by
// sequence number must not see EXPUNGE responses; their UID forms may.
bool mayExpunge(const CommandBody& b) {
  if (auto* f = std::get_if<FetchCmd>(&b)) return f->uid;
  if (auto* s = std::get_if<StoreCmd>(&b)) return s->uid;
  if (auto* s = std::get_if<SearchCmd>(&b)) return s->uid;
  return true;
}

// LIST pattern match: '*' matches anything, '%' anything but the delimiter.
bool wildMatch(std::string_view pat, std::string_view name) {
  if (pat.empty()) return name.empty();
  if (pat[0] == '*' || pat[0] == '%') {
    for (size_t i = 0; i <= name.size(); ++i) {
      if (wildMatch(pat.substr(1), name.substr(i))) return true;
      if (i < name.size() && pat[0] == '%' && name[i] == '/') return false;
    }
    return false;
  }
  return !name.empty() && pat[0] == name[0] && wildMatch(pat.substr(1), name.substr(1));
}

}  // namespace

namespace {

// Before login only small literals are taken (see preAuthLiteralLimit).
ParserOptions preAuthParserOptions(const SessionOptions& o) {
  ParserLimits l = o.limits;
  l.maxLiteralSize = std::min(l.maxLiteralSize, o.preAuthLiteralLimit);
  l.maxCommandLiterals = std::min(l.maxCommandLiterals, 2 * o.preAuthLiteralLimit);
  return ParserOptions{l, false, false, 64};
}

}  // namespace

Session::Session(Backend& backend, SessionOptions options)
    : backend_(backend), options_(options), parser_(std::in_place, preAuthParserOptions(options)) {}

std::string Session::capabilities() const {
  std::string caps = "IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ MULTIAPPEND ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN "
                     "LIST-EXTENDED LIST-STATUS SPECIAL-USE CONDSTORE QRESYNC ESEARCH SEARCHRES BINARY UTF8=ACCEPT";
  caps += " APPENDLIMIT=" + std::to_string(options_.appendLimit);
  if (state_ == State::NotAuthenticated) {
    if (options_.startTlsAvailable && !options_.tlsActive) caps += " STARTTLS";
    if (options_.requireTls && !options_.tlsActive)
      caps += " LOGINDISABLED";
    else
      caps += " AUTH=PLAIN";
  }
  return caps;
}

void Session::start() {
  w_.untaggedStatus("OK", "CAPABILITY " + capabilities(), "mailbridge ready");
  out_ += w_.take();
}

std::string Session::takeOutput() {
  std::string out = std::move(out_);
  out_.clear();
  return out;
}

void Session::tagged(std::string_view tag, std::string_view status, std::string_view code, std::string_view text) {
  w_.tagged(tag, status, code, text);
  out_ += w_.take();
}

void Session::failed(std::string_view tag, const Error& e, std::string_view what) {
  switch (e.kind) {
    case ErrorKind::NotFound:
      return tagged(tag, "NO", e.respCode.empty() ? "NONEXISTENT" : e.respCode, std::string(what) + ": no such mailbox");
    case ErrorKind::Conflict:
      return tagged(tag, "NO", "ALREADYEXISTS", std::string(what) + ": mailbox exists already");
    case ErrorKind::User:
      return tagged(tag, "NO", e.respCode, e.message);
    case ErrorKind::Syntax:
      return tagged(tag, "BAD", e.respCode, e.message);
    case ErrorKind::Corrupt:
    case ErrorKind::Internal:
      return tagged(tag, "NO", "SERVERBUG", std::string(what) + " failed");
    default:
      return tagged(tag, "NO", "UNAVAILABLE", std::string(what) + " failed, try again later");
  }
}

void Session::feed(std::string_view bytes) {
  if (state_ == State::Logout) return;
  parser_->feed(bytes);
  process();
}

void Session::process() {
  while (state_ != State::Logout && !busy()) {
    auto ev = parser_->next();
    switch (ev) {
      case CommandParser::Event::NeedMore:
        return;
      case CommandParser::Event::Continuation:
        w_.continuation("Ready for literal data");
        out_ += w_.take();
        break;
      case CommandParser::Event::Error:
        if (idleTag_) {
          // Anything but DONE ends IDLE with a BAD (RFC 2177 3).
          std::string tag = *idleTag_;
          idleTag_.reset();
          tagged(tag, "BAD", "", "expected DONE");
          break;
        }
        if (authTag_) {
          std::string tag = *authTag_;
          authTag_.reset();
          tagged(tag, "BAD", "", "invalid AUTHENTICATE response");
          break;
        }
        answerParseError(parser_->error());
        break;
      case CommandParser::Event::IdleDone: {
        std::string tag = idleTag_.value_or("*");
        idleTag_.reset();
        flushUpdates(true);
        tagged(tag, "OK", "", "IDLE terminated");
        break;
      }
      case CommandParser::Event::AuthResponse:
        authResponse(parser_->takeLine());
        break;
      case CommandParser::Event::Command: {
        Command cmd = parser_->takeCommand();
        dispatch(cmd);
        break;
      }
    }
  }
}

void Session::answerParseError(const ParseError& e) {
  std::string tag = e.tag.empty() ? "*" : e.tag;
  tagged(tag, e.bad ? "BAD" : "NO", e.respCode, e.message);
  if (e.closeConnection) {
    w_.untaggedStatus("BYE", "", "closing connection");
    out_ += w_.take();
    state_ = State::Logout;
  }
}

void Session::dispatch(Command& cmd) {
  const std::string& tag = cmd.tag;
  CommandBody& b = cmd.body;
  bool selectedOnly = isSelectedOnly(b);
  if (!isAnyState(b)) {
    if (state_ == State::NotAuthenticated && !isNotAuthOnly(b)) {
      return tagged(tag, "BAD", "", commandName(cmd) + " needs a login first");
    }
    if (state_ != State::NotAuthenticated && isNotAuthOnly(b)) {
      return tagged(tag, "BAD", "", commandName(cmd) + " is only valid before login");
    }
    if (selectedOnly && state_ != State::Selected) {
      return tagged(tag, "BAD", "", commandName(cmd) + " needs a selected mailbox");
    }
  }

  if (std::holds_alternative<CapabilityCmd>(b)) {
    w_.untagged().atom("CAPABILITY").atom(capabilities()).end();
    out_ += w_.take();
  } else if (std::holds_alternative<NoopCmd>(b) || std::holds_alternative<CheckCmd>(b)) {
    // NOOP and CHECK are how clients poll (RFC 3501 6.1.2): updates go out below.
  } else if (std::holds_alternative<LogoutCmd>(b)) {
    w_.untaggedStatus("BYE", "", "logging out");
    out_ += w_.take();
    tagged(tag, "OK", "", "LOGOUT completed");
    state_ = State::Logout;
    return;
  } else if (auto* id = std::get_if<IdCmd>(&b)) {
    (void)id;
    w_.untagged().atom("ID").beginList().quoted("name").quoted("mailbridge").endList().end();
    out_ += w_.take();
  } else if (std::holds_alternative<StartTlsCmd>(b)) {
    if (options_.tlsActive || !options_.startTlsAvailable) return tagged(tag, "BAD", "", "TLS is not available here");
    tagged(tag, "OK", "", "Begin TLS negotiation now");
    // RFC 3501 6.2.1 / CVE-2011-0411: what the client pipelined in plaintext
    // after STARTTLS must not be executed inside the TLS session.
    parser_.emplace(preAuthParserOptions(options_));
    startTls_ = true;
    return;
  } else if (auto* login = std::get_if<LoginCmd>(&b)) {
    return cmdLogin(tag, std::move(login->user), std::move(login->password));
  } else if (auto* auth = std::get_if<AuthenticateCmd>(&b)) {
    return cmdAuthenticate(tag, *auth);
  } else if (auto* en = std::get_if<EnableCmd>(&b)) {
    if (!cmdEnable(tag, *en)) return;
  } else if (std::holds_alternative<NamespaceCmd>(b)) {
    w_.untagged().atom("NAMESPACE").raw(" ((\"\" \"/\")) NIL NIL").end();
    out_ += w_.take();
  } else if (auto* c = std::get_if<ListCmd>(&b)) {
    if (!cmdList(tag, *c)) return;
  } else if (auto* c = std::get_if<LsubCmd>(&b)) {
    if (!cmdLsub(tag, *c)) return;
  } else if (auto* c = std::get_if<StatusCmd>(&b)) {
    if (!cmdStatus(tag, *c)) return;
  } else if (auto* c = std::get_if<CreateCmd>(&b)) {
    if (!cmdCreate(tag, *c)) return;
  } else if (auto* c = std::get_if<DeleteCmd>(&b)) {
    if (!cmdDelete(tag, *c)) return;
  } else if (auto* c = std::get_if<RenameCmd>(&b)) {
    if (!cmdRename(tag, *c)) return;
  } else if (auto* c = std::get_if<SubscribeCmd>(&b)) {
    if (!cmdSubscribe(tag, c->mailbox, true)) return;
  } else if (auto* c = std::get_if<UnsubscribeCmd>(&b)) {
    if (!cmdSubscribe(tag, c->mailbox, false)) return;
  } else if (auto* c = std::get_if<AppendCmd>(&b)) {
    if (!cmdAppend(tag, *c)) return;
  } else if (auto* c = std::get_if<SelectCmd>(&b)) {
    return cmdSelect(tag, *c);
  } else if (std::holds_alternative<IdleCmd>(b)) {
    return cmdIdle(tag);
  } else if (std::holds_alternative<CloseCmd>(b)) {
    return cmdClose(tag, true);
  } else if (std::holds_alternative<UnselectCmd>(b)) {
    return cmdClose(tag, false);
  } else if (auto* c = std::get_if<ExpungeCmd>(&b)) {
    return cmdExpunge(tag, *c);
  } else if (auto* c = std::get_if<SearchCmd>(&b)) {
    return cmdSearch(tag, *c);
  } else if (auto* c = std::get_if<FetchCmd>(&b)) {
    return cmdFetch(tag, *c);
  } else if (auto* c = std::get_if<StoreCmd>(&b)) {
    return cmdStore(tag, *c);
  } else if (auto* c = std::get_if<CopyCmd>(&b)) {
    return cmdCopy(tag, c->uid, c->set, c->mailbox, false);
  } else if (auto* c = std::get_if<MoveCmd>(&b)) {
    return cmdCopy(tag, c->uid, c->set, c->mailbox, true);
  }
  if (state_ == State::Selected) flushUpdates(mayExpunge(b));
  tagged(tag, "OK", "", commandName(cmd) + " completed");
}

// ---------------------------------------------------------------- login

void Session::cmdLogin(const std::string& tag, std::string user, std::string password) {
  if (options_.requireTls && !options_.tlsActive) {
    return tagged(tag, "NO", "PRIVACYREQUIRED", "use STARTTLS first");
  }
  loginTag_ = tag;
  login_ = LoginRequest{std::move(user), std::move(password)};
}

void Session::cmdAuthenticate(const std::string& tag, const AuthenticateCmd& cmd) {
  if (cmd.mechanism != "PLAIN") return tagged(tag, "NO", "CANNOT", "unsupported authentication mechanism");
  if (options_.requireTls && !options_.tlsActive) {
    return tagged(tag, "NO", "PRIVACYREQUIRED", "use STARTTLS first");
  }
  if (cmd.initialResponse) {
    authTag_ = tag;
    return authResponse(*cmd.initialResponse);
  }
  authTag_ = tag;
  w_.continuation("");
  std::string c = w_.take();
  out_ += c.substr(0, 2) + "\r\n";  // "+ " then nothing: an empty challenge (RFC 4616)
  parser_->expectAuthResponse();
}

void Session::authResponse(const std::string& line) {
  std::string tag = authTag_.value_or("*");
  authTag_.reset();
  if (line == "*") return tagged(tag, "BAD", "", "AUTHENTICATE cancelled");
  auto decoded = base64Decode(line);
  if (!decoded) return tagged(tag, "BAD", "", "invalid base64 in AUTHENTICATE response");
  // RFC 4616: authzid NUL authcid NUL passwd
  const std::string& d = *decoded;
  size_t a = d.find('\0');
  size_t b = a == std::string::npos ? std::string::npos : d.find('\0', a + 1);
  if (b == std::string::npos) return tagged(tag, "BAD", "", "malformed PLAIN response");
  std::string authz = d.substr(0, a), user = d.substr(a + 1, b - a - 1), pass = d.substr(b + 1);
  // Acting for someone else is not something local accounts can do.
  if (!authz.empty() && authz != user) return tagged(tag, "NO", "AUTHORIZATIONFAILED", "authorization identity refused");
  loginTag_ = tag;
  login_ = LoginRequest{std::move(user), std::move(pass)};
}

void Session::loginDone(Result<int64_t> account) {
  if (!login_) return;
  std::fill(login_->password.begin(), login_->password.end(), '\0');
  login_.reset();
  if (account) {
    if (auto s = backend_.openAccount(*account); !s) {
      tagged(loginTag_, "NO", "UNAVAILABLE", "mail store unavailable, try again later");
    } else {
      accountId_ = *account;
      state_ = State::Authenticated;
      parser_->setLimits(options_.limits);
      tagged(loginTag_, "OK", "CAPABILITY " + capabilities(), "logged in");
    }
  } else if (account.error().kind == ErrorKind::User) {
    tagged(loginTag_, "NO", account.error().respCode, account.error().message);
  } else if (account.error().kind == ErrorKind::Auth) {
    tagged(loginTag_, "NO", "AUTHENTICATIONFAILED", "authentication failed");
  } else {
    tagged(loginTag_, "NO", "UNAVAILABLE", "authentication temporarily unavailable");
  }
  process();
}

void Session::tlsStarted() {
  startTls_ = false;
  options_.tlsActive = true;
  process();
}

void Session::autologout() {
  if (state_ == State::Logout) return;
  w_.untaggedStatus("BYE", "", "autologout; idle for too long");
  out_ += w_.take();
  state_ = State::Logout;
}

void Session::shutdown(std::string_view why) {
  if (state_ == State::Logout) return;
  w_.untaggedStatus("BYE", "", why);
  out_ += w_.take();
  state_ = State::Logout;
}

bool Session::cmdEnable(const std::string&, const EnableCmd& cmd) {
  std::vector<std::string> enabled;
  for (const auto& c : cmd.capabilities) {
    if (c == "CONDSTORE" && !condstore_) {
      condstore_ = true;
      enabled.push_back(c);
    } else if (c == "QRESYNC" && !qresync_) {
      qresync_ = true;
      if (!condstore_) enabled.push_back("CONDSTORE");
      condstore_ = true;
      enabled.push_back(c);
    } else if ((c == "UTF8=ACCEPT" && !utf8_) || (c == "IMAP4REV2" && !rev2_)) {
      // RFC 6855 3: from now on mailbox names are UTF-8 on the wire both
      // ways and quoted strings may carry UTF-8. IMAP4rev2 (RFC 9051 5.1,
      // appendix A) has UTF-8 names and quoted strings too, and more.
      if (c == "IMAP4REV2") rev2_ = true;
      utf8_ = true;
      parser_->setUtf8Accept(true);
      w_.setUtf8(true);
      enabled.push_back(c == "IMAP4REV2" ? "IMAP4rev2" : c);
    }
  }
  w_.untagged().atom("ENABLED");
  for (const auto& e : enabled) w_.atom(e);
  out_ += w_.end().take();
  return true;
}

void Session::cmdIdle(const std::string& tag) {
  idleTag_ = tag;
  w_.continuation("idling");
  out_ += w_.take();
  parser_->expectIdleDone();
  if (state_ == State::Selected) flushUpdates(true);
}

// ---------------------------------------------------------------- mailboxes

std::optional<std::string> Session::fromWire(const std::string& tag, std::string_view wire) {
  auto name = mailboxFromWire(normalizeInbox(wire, '/'), utf8_);
  if (!name) {
    tagged(tag, "BAD", "", utf8_ ? "mailbox name is not valid UTF-8" : "mailbox name is not valid modified UTF-7");
    return std::nullopt;
  }
  return *name;
}

std::string Session::toWire(std::string_view name) const {
  auto w = mailboxToWire(name, utf8_);
  return w ? *w : std::string(name);
}

bool Session::cmdList(const std::string& tag, const ListCmd& cmd) {
  if (cmd.patterns.size() == 1 && cmd.patterns[0].empty() && !cmd.extended) {
    // RFC 3501 6.3.8: the delimiter and root of the reference.
    w_.untagged().atom("LIST").atomList({"\\Noselect"}).quoted("/").quoted("").end();
    out_ += w_.take();
    return true;
  }
  auto boxes = backend_.listMailboxes();
  if (!boxes) return failed(tag, boxes.error(), "LIST"), false;
  bool subscribedOnly = false, specialOnly = false, recursive = false;
  for (const auto& o : cmd.selectOptions) {
    if (o == "SUBSCRIBED") subscribedOnly = true;
    if (o == "SPECIAL-USE") specialOnly = true;
    if (o == "RECURSIVEMATCH") recursive = true;
  }
  // Every name plus the parents that only exist as a path (\Noselect / \NonExistent).
  std::map<std::string, const MailboxInfo*> all;
  std::set<std::string> parentsOnly;
  for (const auto& m : *boxes) all[m.name] = &m;
  for (const auto& m : *boxes) {
    for (size_t p = m.name.find('/'); p != std::string::npos; p = m.name.find('/', p + 1)) {
      std::string parent = m.name.substr(0, p);
      if (!all.count(parent)) parentsOnly.insert(parent);
    }
  }
  auto hasChildren = [&](const std::string& name) {
    auto it = all.lower_bound(name + "/");
    if (it != all.end() && it->first.compare(0, name.size() + 1, name + "/") == 0) return true;
    auto p = parentsOnly.lower_bound(name + "/");
    return p != parentsOnly.end() && p->compare(0, name.size() + 1, name + "/") == 0;
  };
  std::set<std::string> names;
  for (auto& [n, _] : all) names.insert(n);
  for (auto& n : parentsOnly) names.insert(n);
  for (const auto& name : names) {
    bool matched = false;
    for (const auto& pat : cmd.patterns) {
      std::string full = cmd.reference + pat;
      std::string normalized = normalizeInbox(full, '/');
      auto utf8 = mailboxFromWire(normalized, utf8_);
      if (utf8 && wildMatch(*utf8, name)) matched = true;
    }
    if (!matched) continue;
    const MailboxInfo* m = all.count(name) ? all[name] : nullptr;
    bool childInfo = false;
    if (subscribedOnly && (!m || !m->subscribed)) {
      // RFC 5258 3.5: with RECURSIVEMATCH, a name that is not subscribed
      // itself but has a subscribed descendant is listed with CHILDINFO.
      if (!recursive) continue;
      std::string prefix = name + "/";
      for (auto it = all.lower_bound(prefix); it != all.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
        childInfo = childInfo || it->second->subscribed;
      if (!childInfo) continue;
    }
    if (specialOnly && (!m || m->specialUse.empty())) continue;
    std::vector<std::string> attrs;
    // RFC 9051 7.3.1: IMAP4rev2 says \NonExistent (which implies \Noselect).
    if (!m) attrs.push_back(cmd.extended || rev2_ ? "\\NonExistent" : "\\Noselect");
    attrs.push_back(hasChildren(name) ? "\\HasChildren" : "\\HasNoChildren");
    if (m && (cmd.returnSubscribed || subscribedOnly) && m->subscribed) attrs.push_back("\\Subscribed");
    if (m && !m->specialUse.empty()) attrs.push_back(m->specialUse);
    std::string wire = toWire(name);
    w_.untagged().atom("LIST").atomList(attrs).quoted("/").astring(wire);
    if (childInfo) w_.raw(" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
    w_.end();
    out_ += w_.take();
    if (m && cmd.returnStatus) {
      auto counts = backend_.mailboxCounts(name);
      if (counts) writeStatus(wire, *counts, *cmd.returnStatus);
    }
  }
  return true;
}

bool Session::cmdLsub(const std::string& tag, const LsubCmd& cmd) {
  auto boxes = backend_.listMailboxes();
  if (!boxes) return failed(tag, boxes.error(), "LSUB"), false;
  std::string full = cmd.reference + cmd.pattern;
  auto pattern = mailboxFromWire(normalizeInbox(full, '/'), utf8_);
  if (!pattern) return true;
  // RFC 3501 6.3.9: when "foo/bar" is subscribed and "foo" is not, a "%"
  // that matches "foo" but not "foo/bar" returns "foo" marked \Noselect.
  std::map<std::string, bool> out;  // name -> listed as \Noselect
  std::set<std::string> subscribed;
  for (const auto& m : *boxes)
    if (m.subscribed) subscribed.insert(m.name);
  for (const auto& name : subscribed) {
    if (wildMatch(*pattern, name)) {
      out[name] = false;
      continue;
    }
    for (size_t p = name.find('/'); p != std::string::npos; p = name.find('/', p + 1)) {
      std::string parent = name.substr(0, p);
      if (!subscribed.count(parent) && wildMatch(*pattern, parent)) out.emplace(parent, true);
    }
  }
  for (const auto& [name, noselect] : out) {
    w_.untagged().atom("LSUB").atomList(noselect ? std::vector<std::string>{"\\Noselect"} : std::vector<std::string>{});
    out_ += w_.quoted("/").astring(toWire(name)).end().take();
  }
  return true;
}

void Session::writeStatus(const std::string& wireName, const MailboxCountsInfo& c, const std::vector<StatusItem>& items) {
  w_.untagged().atom("STATUS").astring(wireName).beginList();
  for (StatusItem i : items) {
    switch (i) {
      case StatusItem::Messages: w_.atom("MESSAGES").number(c.messages); break;
      case StatusItem::Recent: w_.atom("RECENT").number(0); break;
      case StatusItem::UidNext: w_.atom("UIDNEXT").number(c.uidNext); break;
      case StatusItem::UidValidity: w_.atom("UIDVALIDITY").number(c.uidValidity); break;
      case StatusItem::Unseen: w_.atom("UNSEEN").number(c.unseen); break;
      case StatusItem::Deleted: w_.atom("DELETED").number(c.deleted); break;
      case StatusItem::Size: w_.atom("SIZE").number(c.size); break;
      case StatusItem::HighestModSeq: w_.atom("HIGHESTMODSEQ").number(c.highestModseq); break;
      case StatusItem::AppendLimit: w_.atom("APPENDLIMIT").number(options_.appendLimit); break;
    }
  }
  out_ += w_.endList().end().take();
}

bool Session::cmdStatus(const std::string& tag, const StatusCmd& cmd) {
  auto name = fromWire(tag, cmd.mailbox);
  if (!name) return false;
  auto counts = backend_.mailboxCounts(*name);
  if (!counts) return failed(tag, counts.error(), "STATUS"), false;
  writeStatus(cmd.mailbox, *counts, cmd.items);
  return true;
}

bool Session::cmdCreate(const std::string& tag, const CreateCmd& cmd) {
  auto name = fromWire(tag, cmd.mailbox);
  if (!name) return false;
  std::string n = *name;
  while (!n.empty() && n.back() == '/') n.pop_back();  // RFC 3501 6.3.3: a trailing delimiter only declares intent
  // Wildcards in a name could never be LISTed on their own (RFC 3501 6.3.8).
  if (n.empty() || n.find("//") != std::string::npos || n[0] == '/' || n.find_first_of("*%") != std::string::npos) {
    tagged(tag, "NO", "CANNOT", "invalid mailbox name");
    return false;
  }
  std::string use;
  if (!cmd.specialUse.empty()) {
    static const char* kUses[] = {"\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive", "\\All", "\\Flagged"};
    if (cmd.specialUse.size() > 1) return tagged(tag, "NO", "USEATTR", "one special use per mailbox"), false;
    for (const char* u : kUses)
      if (strcasecmp(u, cmd.specialUse[0].c_str()) == 0) use = u;
    if (use.empty() || use == "\\All" || use == "\\Flagged")
      return tagged(tag, "NO", "USEATTR", "unsupported special use"), false;
  }
  if (n == "INBOX") return tagged(tag, "NO", "ALREADYEXISTS", "INBOX exists already"), false;
  if (auto s = backend_.createMailbox(n, use); !s) return failed(tag, s.error(), "CREATE"), false;
  return true;
}

bool Session::cmdDelete(const std::string& tag, const DeleteCmd& cmd) {
  auto name = fromWire(tag, cmd.mailbox);
  if (!name) return false;
  if (*name == "INBOX") return tagged(tag, "NO", "CANNOT", "INBOX cannot be deleted"), false;
  if (state_ == State::Selected && *name == selectedName_) {
    // Deleting the selected mailbox: the session leaves it (as Dovecot does).
    state_ = State::Authenticated;
    selectedId_ = 0;
    uids_.clear();
  }
  if (auto s = backend_.deleteMailbox(*name); !s) return failed(tag, s.error(), "DELETE"), false;
  return true;
}

bool Session::cmdRename(const std::string& tag, const RenameCmd& cmd) {
  auto from = fromWire(tag, cmd.from);
  if (!from) return false;
  auto to = fromWire(tag, cmd.to);
  if (!to) return false;
  if (to->empty() || to->find_first_of("*%") != std::string::npos)
    return tagged(tag, "NO", "CANNOT", "invalid mailbox name"), false;
  if (to->compare(0, from->size() + 1, *from + "/") == 0)
    return tagged(tag, "NO", "CANNOT", "a mailbox cannot become its own child"), false;
  if (auto s = backend_.renameMailbox(*from, *to); !s) return failed(tag, s.error(), "RENAME"), false;
  // RFC 9051 6.3.6: IMAP4rev2 clients learn the new name from an untagged
  // LIST with the OLDNAME extended data item.
  if (rev2_) writeMailboxList(*to, *from);
  if (state_ == State::Selected && *from == selectedName_ && *from != "INBOX") selectedName_ = *to;
  if (state_ == State::Selected && *from == "INBOX" && selectedName_ == "INBOX") {
    // RFC 3501 6.3.5: every message left INBOX. The store reports that move
    // as this session's own change, which EXPUNGE/MOVE answer themselves;
    // here nothing else would, so the snapshot is reported expunged.
    pendingExpunged_.insert(uids_.begin(), uids_.end());
    pendingAdded_.clear();
  }
  return true;
}

void Session::writeMailboxList(const std::string& name, std::string_view oldName) {
  std::vector<std::string> attrs;
  if (auto boxes = backend_.listMailboxes()) {
    bool children = false;
    const MailboxInfo* self = nullptr;
    for (const auto& b : *boxes) {
      if (b.name == name) self = &b;
      children = children || b.name.compare(0, name.size() + 1, name + "/") == 0;
    }
    attrs.push_back(children ? "\\HasChildren" : "\\HasNoChildren");
    if (self && !self->specialUse.empty()) attrs.push_back(self->specialUse);
  }
  w_.untagged().atom("LIST").atomList(attrs).quoted("/").astring(toWire(name));
  if (!oldName.empty()) {
    w_.beginList().quoted("OLDNAME").beginList().astring(toWire(oldName)).endList().endList();
  }
  out_ += w_.end().take();
}

bool Session::cmdSubscribe(const std::string& tag, const std::string& mailbox, bool on) {
  auto name = fromWire(tag, mailbox);
  if (!name) return false;
  if (auto s = backend_.setSubscribed(*name, on); !s) return failed(tag, s.error(), on ? "SUBSCRIBE" : "UNSUBSCRIBE"), false;
  return true;
}

bool Session::cmdAppend(const std::string& tag, AppendCmd& cmd) {
  auto name = fromWire(tag, cmd.mailbox);
  if (!name) return false;
  // Check everything first: a MULTIAPPEND either stores all or nothing that
  // we could have refused up front (RFC 3502 6).
  for (const auto& m : cmd.messages) {
    uint32_t bits;
    std::vector<std::string> kws;
    if (!parseFlags(m.flags, bits, kws)) return tagged(tag, "BAD", "", "invalid flag in APPEND"), false;
    if (m.data.empty()) return tagged(tag, "NO", "", "cannot append an empty message"), false;
    if (m.data.size() > options_.appendLimit) return tagged(tag, "NO", "TOOBIG", "message is larger than APPENDLIMIT"), false;
  }
  // Then every message in one backend call, one store transaction: a
  // failure of the store half-way stores nothing either. No existence check
  // up front: counting the mailbox costs O(messages) per APPEND, and the
  // backend answers NotFound (-> TRYCREATE) before anything is stored.
  std::vector<AppendItem> items(cmd.messages.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const AppendMessage& m = cmd.messages[i];
    items[i].bytes = m.data;
    parseFlags(m.flags, items[i].flags, items[i].keywords);
    items[i].internalDate = m.internalDate ? toUnix(*m.internalDate) : 0;
  }
  auto r = backend_.append(*name, items);
  items.clear();
  cmd.messages.clear();
  cmd.messages.shrink_to_fit();  // free the messages once stored
  if (!r) {
    if (r.error().kind == ErrorKind::NotFound) return tagged(tag, "NO", "TRYCREATE", "no such mailbox"), false;
    return failed(tag, r.error(), "APPEND"), false;
  }
  if (state_ == State::Selected) flushUpdates(true);
  tagged(tag, "OK", "APPENDUID " + std::to_string(r->uidValidity) + " " + compactSet(r->uids), "APPEND completed");
  return false;
}

// ---------------------------------------------------------------- selection

void Session::cmdSelect(const std::string& tag, const SelectCmd& cmd) {
  auto name = fromWire(tag, cmd.mailbox);
  if (!name) return;
  if (cmd.qresync && !qresync_) return tagged(tag, "BAD", "", "QRESYNC must be enabled first");
  bool wasSelected = state_ == State::Selected;
  // A failed SELECT leaves no mailbox selected (RFC 3501 6.3.1).
  state_ = State::Authenticated;
  selectedId_ = 0;
  uids_.clear();
  savedUids_.clear();  // RFC 5182 2.1: "$" starts empty in each selected mailbox
  pendingAdded_.clear();
  pendingExpunged_.clear();
  pendingFlags_.clear();
  if (wasSelected && (qresync_ || rev2_)) {
    w_.untaggedStatus("OK", "CLOSED", "previous mailbox closed");  // RFC 7162 3.2.11, RFC 9051 6.3.2
    out_ += w_.take();
  }
  auto sel = backend_.selectMailbox(*name);
  if (!sel) return (void)failed(tag, sel.error(), cmd.readOnly ? "EXAMINE" : "SELECT");
  if (cmd.condstore) condstore_ = true;
  state_ = State::Selected;
  selectedId_ = sel->id;
  selectedName_ = *name;
  readOnly_ = cmd.readOnly;
  uids_ = std::move(sel->uids);
  highestModseq_ = sel->highestModseq;

  std::vector<std::string> flags = flagAtoms(kAnswered | kFlagged | kDeleted | kSeen | kDraft, sel->keywords);
  w_.untagged().atom("FLAGS").atomList(flags).end();
  flags.push_back("\\*");
  w_.untaggedStatus("OK", "PERMANENTFLAGS " + std::string(readOnly_ ? "()" : [&] {
                      ResponseWriter t;
                      t.atomList(flags);
                      return t.take();
                    }()),
                    readOnly_ ? "no permanent flags permitted" : "flags permitted");
  w_.untagged().number(uids_.size()).atom("EXISTS").end();
  if (rev2_) {
    // RFC 9051 6.3.2: a LIST response for the mailbox with accurate
    // attributes; no RECENT and no UNSEEN code (both left IMAP4rev2).
    writeMailboxList(*name, "");
  } else {
    w_.untagged().number(0).atom("RECENT").end();
  }
  if (sel->firstUnseenUid && !rev2_) {
    if (uint32_t seq = seqOf(*sel->firstUnseenUid))
      w_.untaggedStatus("OK", "UNSEEN " + std::to_string(seq), "first unseen");
  }
  w_.untaggedStatus("OK", "UIDVALIDITY " + std::to_string(sel->uidValidity), "UIDs valid");
  w_.untaggedStatus("OK", "UIDNEXT " + std::to_string(sel->uidNext), "predicted next UID");
  w_.untaggedStatus("OK", "HIGHESTMODSEQ " + std::to_string(sel->highestModseq), "highest");
  out_ += w_.take();

  if (cmd.qresync && cmd.qresync->uidValidity == sel->uidValidity) {
    // RFC 7162 3.2.5: what vanished and what changed since the client's modseq.
    auto gone = backend_.vanishedSince(selectedId_, cmd.qresync->modSeq);
    if (gone && !gone->empty()) {
      std::vector<uint32_t> v;
      for (uint32_t u : *gone)
        if (!cmd.qresync->knownUids || cmd.qresync->knownUids->contains(u, UINT32_MAX)) v.push_back(u);
      if (!v.empty()) {
        w_.untagged().atom("VANISHED").raw(" (EARLIER)").atom(compactSet(v)).end();
        out_ += w_.take();
      }
    }
    for (size_t i = 0; i < uids_.size(); i += 1024) {
      std::span<const uint32_t> batch(uids_.data() + i, std::min<size_t>(1024, uids_.size() - i));
      auto metas = backend_.messages(selectedId_, batch);
      if (!metas) break;
      for (const auto& m : *metas)
        if (m.modseq > cmd.qresync->modSeq) writeFetchFlags(seqOf(m.uid), m, true);
    }
  }
  tagged(tag, "OK", readOnly_ ? "READ-ONLY" : "READ-WRITE", cmd.readOnly ? "EXAMINE completed" : "SELECT completed");
}

void Session::cmdClose(const std::string& tag, bool expunge) {
  if (expunge && !readOnly_) {
    // CLOSE expunges silently (RFC 3501 6.4.2).
    (void)backend_.expunge(selectedId_, std::nullopt);
  }
  state_ = State::Authenticated;
  selectedId_ = 0;
  uids_.clear();
  uids_.shrink_to_fit();
  savedUids_.clear();
  pendingAdded_.clear();
  pendingExpunged_.clear();
  pendingFlags_.clear();
  tagged(tag, "OK", "", expunge ? "CLOSE completed" : "UNSELECT completed");
}

// ---------------------------------------------------------------- updates

uint32_t Session::seqOf(uint32_t uid) const {
  auto it = std::lower_bound(uids_.begin(), uids_.end(), uid);
  if (it == uids_.end() || *it != uid) return 0;
  return static_cast<uint32_t>(it - uids_.begin()) + 1;
}

void Session::writeFetchFlags(uint32_t seq, const MessageInfo& m, bool withUid) {
  if (seq == 0) return;
  w_.untagged().number(seq).atom("FETCH").beginList();
  if (withUid) w_.atom("UID").number(m.uid);
  w_.atom("FLAGS").atomList(flagAtoms(m.flags, m.keywords));
  if (condstore_) w_.atom("MODSEQ").beginList().number(m.modseq).endList();
  out_ += w_.endList().end().take();
}

void Session::writeExpunged(const std::vector<uint32_t>& uids) {
  if (uids.empty()) return;
  if (qresync_) {
    // RFC 7162 3.2.10: VANISHED replaces EXPUNGE once QRESYNC is enabled.
    w_.untagged().atom("VANISHED").atom(compactSet(uids)).end();
    out_ += w_.take();
    removeFromSnapshot(uids);
    return;
  }
  // Highest first, so each number is still valid when the client reads it.
  for (auto it = uids.rbegin(); it != uids.rend(); ++it) {
    uint32_t seq = seqOf(*it);
    if (!seq) continue;
    w_.untagged().number(seq).atom("EXPUNGE").end();
    uids_.erase(uids_.begin() + (seq - 1));
  }
  out_ += w_.take();
}

void Session::removeFromSnapshot(const std::vector<uint32_t>& uids) {
  std::erase_if(uids_, [&](uint32_t u) { return std::binary_search(uids.begin(), uids.end(), u); });
}

void Session::onEvent(const MailboxEvent& ev, bool own) {
  if (state_ != State::Selected || ev.mailboxId != selectedId_) return;
  switch (ev.kind) {
    case MailboxEvent::Kind::Added:
      for (const auto& m : ev.messages)
        if (uids_.empty() || m.uid > uids_.back()) pendingAdded_.insert(m.uid);
      break;
    case MailboxEvent::Kind::Flags:
      if (own) break;  // the command that made it answers with FETCH itself
      for (const auto& m : ev.messages) pendingFlags_[m.uid] = m;
      break;
    case MailboxEvent::Kind::Expunged:
      if (own) break;  // reported (and removed) by our EXPUNGE/MOVE
      for (uint32_t u : ev.uids) {
        if (pendingAdded_.erase(u)) continue;  // never shown: nothing to take back
        if (seqOf(u)) pendingExpunged_.insert(u);
      }
      break;
    case MailboxEvent::Kind::Gone:
      for (uint32_t u : uids_) pendingExpunged_.insert(u);
      pendingAdded_.clear();
      break;
  }
  if (ev.modseq > highestModseq_) highestModseq_ = ev.modseq;
  if (idleTag_) flushUpdates(true);
}

void Session::flushUpdates(bool allowExpunge) {
  if (state_ != State::Selected) return;
  if (allowExpunge && !pendingExpunged_.empty()) {
    std::vector<uint32_t> gone(pendingExpunged_.begin(), pendingExpunged_.end());
    pendingExpunged_.clear();
    for (uint32_t u : gone) pendingFlags_.erase(u);
    writeExpunged(gone);
  }
  if (!pendingAdded_.empty()) {
    for (uint32_t u : pendingAdded_)
      if (uids_.empty() || u > uids_.back()) uids_.push_back(u);
    pendingAdded_.clear();
    w_.untagged().number(uids_.size()).atom("EXISTS").end();
    out_ += w_.take();
  }
  if (!pendingFlags_.empty()) {
    // With UID once QRESYNC (RFC 7162 3.2.4) or IMAP4rev2 is on, so the
    // client need not map sequence numbers.
    for (const auto& [uid, m] : pendingFlags_) writeFetchFlags(seqOf(uid), m, qresync_ || rev2_);
    pendingFlags_.clear();
  }
}

}  // namespace mb::imap
