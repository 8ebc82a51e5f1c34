// CommandBuilder: the one place that decides how an upstream command's
// arguments are quoted, so no user data (a password, a mailbox name, a
// message) can end a line early and desynchronise the connection.
#include "protocols/imap/client_command.h"

#include <algorithm>
#include <cstring>

#include "protocols/common/base64.h"
#include "protocols/imap/framer.h"
#include "protocols/imap/lexical.h"
#include "protocols/imap/mutf7.h"
#include "protocols/imap/writer.h"

namespace mb::imap::client {
namespace {

// RFC 7888 4: LITERAL- allows non-synchronizing literals up to this size.
constexpr uint64_t kLiteralMinusMax = 4096;
// Literal data above this size gets a chunk of its own (moved, not copied).
constexpr size_t kOwnChunk = 16 * 1024;

// No control characters, no space, nothing that starts another token.
bool isSafeAtom(std::string_view a) {
  if (a.empty()) return false;
  for (char ch : a) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7F || c == '(' || c == ')' || c == '{' || c == '"') return false;
  }
  return true;
}

// Text inserted verbatim must stay on its line and must not end in what
// the server would read as a literal header.
bool isSafeRaw(std::string_view t) {
  for (char c : t) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  LiteralHeader h;
  return !findLiteralHeader(t, h);
}

const char* statusItemName(StatusItem item) {
  switch (item) {
    case StatusItem::Messages: return "MESSAGES";
    case StatusItem::Recent: return "RECENT";
    case StatusItem::UidNext: return "UIDNEXT";
    case StatusItem::UidValidity: return "UIDVALIDITY";
    case StatusItem::Unseen: return "UNSEEN";
    case StatusItem::Deleted: return "DELETED";
    case StatusItem::Size: return "SIZE";
    case StatusItem::HighestModSeq: return "HIGHESTMODSEQ";
    case StatusItem::AppendLimit: return "APPENDLIMIT";
  }
  return "MESSAGES";
}

std::string statusItemList(const std::vector<StatusItem>& items) {
  std::string out = "(";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ' ';
    out += statusItemName(items[i]);
  }
  return out + ")";
}

const char* searchReturnName(SearchReturn r) {
  switch (r) {
    case SearchReturn::Min: return "MIN";
    case SearchReturn::Max: return "MAX";
    case SearchReturn::All: return "ALL";
    case SearchReturn::Count: return "COUNT";
    case SearchReturn::Save: return "SAVE";
  }
  return "ALL";
}

// RFC 5801 5.1 saslname: "," and "=" are escaped in the gs2 authzid.
std::string gs2Escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == ',') out += "=2C";
    else if (c == '=') out += "=3D";
    else out += c;
  }
  return out;
}

bool hasCtl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return c == '\0' || c == '\r' || c == '\n' || c == '\x01'; });
}

}  // namespace

std::string Command::wire() const {
  std::string out;
  size_t n = 0;
  for (const auto& c : chunks) n += c.bytes.size();
  out.reserve(n);
  for (const auto& c : chunks) out += c.bytes;
  return out;
}

size_t Command::continuationsNeeded() const {
  return static_cast<size_t>(std::count_if(chunks.begin(), chunks.end(), [](const Chunk& c) { return c.waitForContinuation; }));
}

ServerFeatures ServerFeatures::fromCapabilities(const std::vector<std::string>& caps) {
  ServerFeatures f;
  for (const auto& c : caps) {
    if (iequals(c, "LITERAL+")) f.literalPlus = true;
    else if (iequals(c, "LITERAL-")) f.literalMinus = true;
    else if (iequals(c, "SASL-IR")) f.saslIr = true;
    else if (iequals(c, "BINARY")) f.binary = true;
    else if (iequals(c, "LIST-EXTENDED")) f.listExtended = true;
    else if (iequals(c, "LIST-STATUS")) f.listStatus = true;
    else if (iequals(c, "SPECIAL-USE")) f.specialUse = true;
    else if (iequals(c, "ESEARCH")) f.esearch = true;
    // IMAP4rev2 (RFC 9051) includes LITERAL-, ESEARCH and LIST-EXTENDED.
    else if (iequals(c, "IMAP4REV2")) f.literalMinus = f.esearch = f.listExtended = true;
  }
  return f;
}

void CommandArgs::separate() {
  if (needSpace_) {
    chunks_.back().bytes += ' ';
    log_ += ' ';
  }
  needSpace_ = true;
}

void CommandArgs::text(std::string_view t, std::string_view log) {
  chunks_.back().bytes.append(t);
  log_.append(log);
}

void CommandArgs::setError(std::string message) {
  if (status_) status_ = fail(ErrorKind::User, std::move(message));
}

CommandArgs& CommandArgs::atom(std::string_view a) {
  if (!isSafeAtom(a)) {
    setError("Not a valid IMAP atom: '" + std::string(a.substr(0, 40)) + "'");
    return *this;
  }
  separate();
  text(a, a);
  return *this;
}

CommandArgs& CommandArgs::number(uint64_t n) {
  std::string s = std::to_string(n);
  separate();
  text(s, s);
  return *this;
}

CommandArgs& CommandArgs::raw(std::string_view t) {
  if (!isSafeRaw(t)) {
    setError("Command text contains CR, LF, NUL or a literal header");
    return *this;
  }
  separate();
  text(t, t);
  return *this;
}

CommandArgs& CommandArgs::rawNoSpace(std::string_view t) {
  if (!isSafeRaw(t)) {
    setError("Command text contains CR, LF, NUL or a literal header");
    return *this;
  }
  text(t, t);
  needSpace_ = true;
  return *this;
}

void CommandArgs::literalImpl(std::string data, bool binary, bool secret) {
  uint64_t n = data.size();
  uint64_t nonSyncMax = 0;
  if (features_->literalPlus) nonSyncMax = features_->maxNonSyncLiteral;
  else if (features_->literalMinus) nonSyncMax = std::min(features_->maxNonSyncLiteral, kLiteralMinusMax);
  bool nonSync = (features_->literalPlus || features_->literalMinus) && n <= nonSyncMax;
  std::string header = std::string(binary ? "~{" : "{") + std::to_string(n) + (nonSync ? "+}" : "}");
  separate();
  text(header + "\r\n", header + (secret ? "***" : "<" + std::to_string(n) + " bytes>"));
  if (!nonSync) chunks_.push_back(Chunk{"", true});
  if (data.size() > kOwnChunk) {
    if (chunks_.back().bytes.empty()) chunks_.back().bytes = std::move(data);
    else chunks_.push_back(Chunk{std::move(data), false});
    chunks_.push_back(Chunk{});
  } else {
    chunks_.back().bytes += data;
  }
}

CommandArgs& CommandArgs::literal(std::string data, bool binary) {
  if (!binary && std::memchr(data.data(), '\0', data.size()) != nullptr) {
    setError("A literal with NUL octets must be literal8 (RFC 3516)");
    return *this;
  }
  literalImpl(std::move(data), binary, false);
  return *this;
}

CommandArgs& CommandArgs::string(std::string_view s) {
  switch (stringForm(s, features_->utf8Accept)) {
    case StringForm::Quoted: {
      std::string q = "\"";
      for (char c : s) {
        if (c == '"' || c == '\\') q += '\\';
        q += c;
      }
      q += '"';
      separate();
      text(q, q);
      return *this;
    }
    case StringForm::Literal8:
      setError("NUL octets cannot be sent in a string argument");
      return *this;
    default:
      literalImpl(std::string(s), false, false);
      return *this;
  }
}

CommandArgs& CommandArgs::astring(std::string_view s) {
  if (astringForm(s, features_->utf8Accept) == StringForm::Atom) {
    separate();
    text(s, s);
    return *this;
  }
  return string(s);
}

CommandArgs& CommandArgs::secret(std::string_view s) {
  size_t before = log_.size();
  astring(s);
  // Whatever form it took, the log shows no byte of it.
  if (log_.size() > before) log_.replace(before + (log_[before] == ' ' ? 1 : 0), std::string::npos, "***");
  return *this;
}

CommandArgs& CommandArgs::mailbox(const Mailbox& m) {
  if (m.wire) return astring(m.name);
  if (isInbox(m.name)) return astring("INBOX");
  auto w = mailboxToWire(m.name, features_->utf8Accept);
  if (!w) {
    setError(w.error().message);
    return *this;
  }
  return astring(*w);
}

CommandArgs& CommandArgs::sequenceSet(const SequenceSet& set) {
  if (set.empty()) {
    setError("Empty sequence set");
    return *this;
  }
  return atom(set.toString());
}

CommandArgs& CommandArgs::atomList(const std::vector<std::string>& atoms) {
  std::string list = "(";
  for (size_t i = 0; i < atoms.size(); ++i) {
    if (!isSafeAtom(atoms[i])) {
      setError("Not a valid IMAP atom: '" + atoms[i].substr(0, 40) + "'");
      return *this;
    }
    if (i) list += ' ';
    list += atoms[i];
  }
  list += ')';
  separate();
  text(list, list);
  return *this;
}

CommandBuilder::CommandBuilder(ServerFeatures features, std::string tagPrefix)
    : features_(features), prefix_(std::move(tagPrefix)) {}

std::string CommandBuilder::peekTag() const {
  std::string n = std::to_string(counter_);
  if (n.size() < 4) n.insert(0, 4 - n.size(), '0');
  return prefix_ + n;
}

Result<Command> CommandBuilder::finish(std::string_view name, CommandArgs& args) {
  if (!args.status_) return std::unexpected(args.status_.error());
  Command cmd;
  cmd.tag = peekTag();
  ++counter_;
  cmd.name = std::string(name);
  cmd.chunks = std::move(args.chunks_);
  std::string head = cmd.tag + " " + cmd.name;
  cmd.chunks.front().bytes.insert(0, head);
  cmd.chunks.back().bytes += "\r\n";
  cmd.logText = head + args.log_;
  return cmd;
}

Result<Command> CommandBuilder::custom(std::string_view name, CommandArgs a) {
  if (!isSafeRaw(name) || name.empty()) return fail(ErrorKind::User, "Invalid command name");
  return finish(name, a);
}

Command CommandBuilder::simple(std::string_view name) {
  CommandArgs a = args();
  return *finish(name, a);
}

Command CommandBuilder::capability() { return simple("CAPABILITY"); }
Command CommandBuilder::noop() { return simple("NOOP"); }
Command CommandBuilder::logout() { return simple("LOGOUT"); }
Command CommandBuilder::startTls() { return simple("STARTTLS"); }
Command CommandBuilder::namespaceCmd() { return simple("NAMESPACE"); }
Command CommandBuilder::expunge() { return simple("EXPUNGE"); }
Command CommandBuilder::close() { return simple("CLOSE"); }
Command CommandBuilder::unselect() { return simple("UNSELECT"); }
Command CommandBuilder::idle() { return simple("IDLE"); }

Result<Command> CommandBuilder::login(std::string_view user, std::string_view password) {
  CommandArgs a = args();
  a.astring(user).secret(password);
  return finish("LOGIN", a);
}

Result<Command> CommandBuilder::authenticate(std::string_view mechanism, std::string_view response) {
  // RFC 4959 3: an empty initial response is sent as "=".
  std::string b64 = response.empty() ? "=" : base64Encode(response);
  CommandArgs a = args();
  a.atom(mechanism);
  if (features_.saslIr) {
    a.separate();
    a.text(b64, "***");
    return finish("AUTHENTICATE", a);
  }
  // Without SASL-IR the response answers the server's empty "+ ".
  a.chunks_.back().bytes += "\r\n";
  a.chunks_.push_back(Chunk{std::move(b64), true});
  a.log_ += " ***";
  auto cmd = finish("AUTHENTICATE", a);
  return cmd;
}

Result<Command> CommandBuilder::authenticatePlain(std::string_view user, std::string_view password,
                                                  std::string_view authzid) {
  if (std::string_view(user).find('\0') != std::string_view::npos ||
      password.find('\0') != std::string_view::npos || authzid.find('\0') != std::string_view::npos)
    return fail(ErrorKind::User, "PLAIN credentials cannot contain NUL (RFC 4616 2)");
  std::string msg;
  msg.append(authzid);
  msg += '\0';
  msg.append(user);
  msg += '\0';
  msg.append(password);
  return authenticate("PLAIN", msg);
}

Result<Command> CommandBuilder::authenticateLogin(std::string_view user, std::string_view password) {
  auto cmd = authenticate("LOGIN", user);
  if (!cmd) return cmd;
  cmd->chunks.push_back(Chunk{base64Encode(password) + "\r\n", true});
  return cmd;
}

Result<Command> CommandBuilder::authenticateXoauth2(std::string_view user, std::string_view token) {
  if (hasCtl(user) || hasCtl(token)) return fail(ErrorKind::User, "XOAUTH2 user or token contains control characters");
  std::string msg = "user=" + std::string(user) + "\x01" + "auth=Bearer " + std::string(token) + "\x01\x01";
  return authenticate("XOAUTH2", msg);
}

Result<Command> CommandBuilder::authenticateOauthBearer(std::string_view user, std::string_view token,
                                                        std::string_view host, uint16_t port) {
  if (hasCtl(user) || hasCtl(token) || hasCtl(host))
    return fail(ErrorKind::User, "OAUTHBEARER user, host or token contains control characters");
  // RFC 7628 3.1: gs2-header kvsep *kvpair kvsep, kvsep = %x01.
  std::string msg = "n,";
  if (!user.empty()) msg += "a=" + gs2Escape(user);
  msg += ",\x01";
  if (!host.empty()) msg += "host=" + std::string(host) + "\x01";
  if (port != 0) msg += "port=" + std::to_string(port) + "\x01";
  msg += "auth=Bearer " + std::string(token) + "\x01\x01";
  return authenticate("OAUTHBEARER", msg);
}

Result<Command> CommandBuilder::enable(const std::vector<std::string>& capabilities) {
  if (capabilities.empty()) return fail(ErrorKind::User, "ENABLE needs at least one capability");
  CommandArgs a = args();
  for (const auto& c : capabilities) a.atom(c);
  return finish("ENABLE", a);
}

Result<Command> CommandBuilder::id(const std::vector<std::pair<std::string, std::string>>& params) {
  CommandArgs a = args();
  if (params.empty()) {
    a.atom("NIL");
    return finish("ID", a);
  }
  a.raw("(");
  a.needSpace_ = false;
  for (const auto& [k, v] : params) a.string(k).string(v);
  a.rawNoSpace(")");
  return finish("ID", a);
}

Result<Command> CommandBuilder::list(std::string_view reference, std::string_view pattern,
                                     const ListOptions& options) {
  CommandArgs a = args();
  a.mailbox(Mailbox(reference)).mailbox(Mailbox(pattern));
  // Return options only where the server said it understands them: an
  // unknown RETURN is a BAD, and plain LIST still lists every mailbox.
  std::vector<std::string> ret;
  if (features_.listExtended) {
    if (options.subscribed) ret.emplace_back("SUBSCRIBED");
    if (options.children) ret.emplace_back("CHILDREN");
    if (options.specialUse && features_.specialUse) ret.emplace_back("SPECIAL-USE");
    if (!options.status.empty() && features_.listStatus) ret.push_back("STATUS " + statusItemList(options.status));
  }
  if (!ret.empty()) {
    std::string r = "RETURN (";
    for (size_t i = 0; i < ret.size(); ++i) r += (i ? " " : "") + ret[i];
    a.raw(r + ")");
  }
  return finish("LIST", a);
}

Result<Command> CommandBuilder::lsub(std::string_view reference, std::string_view pattern) {
  CommandArgs a = args();
  a.mailbox(Mailbox(reference)).mailbox(Mailbox(pattern));
  return finish("LSUB", a);
}

Result<Command> CommandBuilder::status(const Mailbox& mailbox, const std::vector<StatusItem>& items) {
  if (items.empty()) return fail(ErrorKind::User, "STATUS needs at least one item");
  CommandArgs a = args();
  a.mailbox(mailbox).raw(statusItemList(items));
  return finish("STATUS", a);
}

Result<Command> CommandBuilder::select(const Mailbox& mailbox, const SelectOptions& options) {
  CommandArgs a = args();
  a.mailbox(mailbox);
  if (options.qresync) {
    // QRESYNC implies CONDSTORE (RFC 7162 3.2.5), so one parameter does.
    const QresyncParams& q = *options.qresync;
    if (q.uidValidity == 0 || q.modSeq == 0) return fail(ErrorKind::User, "QRESYNC needs a UIDVALIDITY and a MODSEQ");
    if ((q.knownSeqs.has_value() != q.knownSeqUids.has_value()) || (q.knownSeqs && !q.knownUids))
      return fail(ErrorKind::User, "QRESYNC seq-match data needs known UIDs and both sets");
    std::string p = "(QRESYNC (" + std::to_string(q.uidValidity) + " " + std::to_string(q.modSeq);
    if (q.knownUids) p += " " + q.knownUids->toString();
    if (q.knownSeqs) p += " (" + q.knownSeqs->toString() + " " + q.knownSeqUids->toString() + ")";
    a.raw(p + "))");
  } else if (options.condstore) {
    a.raw("(CONDSTORE)");
  }
  return finish(options.readOnly ? "EXAMINE" : "SELECT", a);
}

Result<Command> CommandBuilder::create(const Mailbox& mailbox) {
  CommandArgs a = args();
  a.mailbox(mailbox);
  return finish("CREATE", a);
}

Result<Command> CommandBuilder::deleteMailbox(const Mailbox& mailbox) {
  CommandArgs a = args();
  a.mailbox(mailbox);
  return finish("DELETE", a);
}

Result<Command> CommandBuilder::rename(const Mailbox& from, const Mailbox& to) {
  CommandArgs a = args();
  a.mailbox(from).mailbox(to);
  return finish("RENAME", a);
}

Result<Command> CommandBuilder::subscribe(const Mailbox& mailbox) {
  CommandArgs a = args();
  a.mailbox(mailbox);
  return finish("SUBSCRIBE", a);
}

Result<Command> CommandBuilder::unsubscribe(const Mailbox& mailbox) {
  CommandArgs a = args();
  a.mailbox(mailbox);
  return finish("UNSUBSCRIBE", a);
}

namespace {

Status fetchArgs(CommandArgs& a, const SequenceSet& set, const std::vector<std::string>& items,
                 const FetchOptions& options, bool uid) {
  if (items.empty()) return fail(ErrorKind::User, "FETCH needs at least one item");
  if (options.vanished && (!uid || !options.changedSince))
    return fail(ErrorKind::User, "VANISHED needs UID FETCH with CHANGEDSINCE (RFC 7162 3.2.6)");
  std::string list = "(";
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].empty() || !isSafeRaw(items[i])) return fail(ErrorKind::User, "Invalid FETCH item");
    if (i) list += ' ';
    list += items[i];
  }
  list += ')';
  a.sequenceSet(set).raw(list);
  if (options.changedSince) {
    std::string m = "(CHANGEDSINCE " + std::to_string(*options.changedSince);
    if (options.vanished) m += " VANISHED";
    a.raw(m + ")");
  }
  return {};
}

}  // namespace

Result<Command> CommandBuilder::uidFetch(const SequenceSet& uids, const std::vector<std::string>& items,
                                         const FetchOptions& options) {
  CommandArgs a = args();
  if (auto s = fetchArgs(a, uids, items, options, true); !s) return std::unexpected(s.error());
  return finish("UID FETCH", a);
}

Result<Command> CommandBuilder::fetch(const SequenceSet& seqs, const std::vector<std::string>& items,
                                      const FetchOptions& options) {
  CommandArgs a = args();
  if (auto s = fetchArgs(a, seqs, items, options, false); !s) return std::unexpected(s.error());
  return finish("FETCH", a);
}

Result<Command> CommandBuilder::uidSearch(std::string_view criteria, const SearchOptions& options) {
  if (criteria.empty()) return fail(ErrorKind::User, "SEARCH needs criteria");
  CommandArgs a = args();
  if (!options.returns.empty() && features_.esearch) {
    std::string r = "RETURN (";
    for (size_t i = 0; i < options.returns.size(); ++i) r += std::string(i ? " " : "") + searchReturnName(options.returns[i]);
    a.raw(r + ")");
  }
  if (options.charset) a.atom("CHARSET").astring(*options.charset);
  a.raw(criteria);
  return finish("UID SEARCH", a);
}

Result<Command> CommandBuilder::uidStore(const SequenceSet& uids, StoreMode mode, const std::vector<std::string>& flags,
                                         const StoreOptions& options) {
  CommandArgs a = args();
  a.sequenceSet(uids);
  if (options.unchangedSince) a.raw("(UNCHANGEDSINCE " + std::to_string(*options.unchangedSince) + ")");
  std::string item = mode == StoreMode::Add ? "+FLAGS" : mode == StoreMode::Remove ? "-FLAGS" : "FLAGS";
  if (options.silent) item += ".SILENT";
  a.atom(item).atomList(flags);
  return finish("UID STORE", a);
}

Result<Command> CommandBuilder::uidCopy(const SequenceSet& uids, const Mailbox& to) {
  CommandArgs a = args();
  a.sequenceSet(uids).mailbox(to);
  return finish("UID COPY", a);
}

Result<Command> CommandBuilder::uidMove(const SequenceSet& uids, const Mailbox& to) {
  CommandArgs a = args();
  a.sequenceSet(uids).mailbox(to);
  return finish("UID MOVE", a);
}

Result<Command> CommandBuilder::uidExpunge(const SequenceSet& uids) {
  CommandArgs a = args();
  a.sequenceSet(uids);
  return finish("UID EXPUNGE", a);
}

Result<Command> CommandBuilder::append(const Mailbox& mailbox, std::string message, const AppendOptions& options) {
  bool hasNul = std::memchr(message.data(), '\0', message.size()) != nullptr;
  if (hasNul && !features_.binary)
    return fail(ErrorKind::User, "Message contains NUL octets and the server lacks BINARY (RFC 3516)");
  CommandArgs a = args();
  a.mailbox(mailbox);
  if (!options.flags.empty()) a.atomList(options.flags);
  if (options.internalDate) {
    const DateTime& d = *options.internalDate;
    if (d.date.month < 1 || d.date.month > 12 || d.date.day < 1 || d.date.day > 31 || d.date.year < 0 ||
        d.date.year > 9999 || d.hour < 0 || d.hour > 23 || d.minute < 0 || d.minute > 59 || d.second < 0 ||
        d.second > 60 || d.zoneMinutes <= -24 * 60 || d.zoneMinutes >= 24 * 60)
      return fail(ErrorKind::User, "Invalid APPEND date-time");
    a.raw("\"" + formatDateTime(d) + "\"");
  }
  a.literal(std::move(message), features_.binary && (options.binary || hasNul));
  return finish("APPEND", a);
}

std::string idleDone() { return "DONE\r\n"; }
std::string saslResponse(std::string_view rawBytes) { return base64Encode(rawBytes) + "\r\n"; }
std::string saslEmptyResponse() { return "\r\n"; }

std::string saslFailureResponse(std::string_view mechanism) {
  return mechanism == "OAUTHBEARER" ? saslResponse("\x01") : saslEmptyResponse();
}
std::string saslCancel() { return "*\r\n"; }

std::string formatDateTime(const DateTime& dt) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  auto two = [](int v) {
    std::string s = std::to_string(v);
    return s.size() < 2 ? "0" + s : s;
  };
  std::string year = std::to_string(dt.date.year);
  if (year.size() < 4) year.insert(0, 4 - year.size(), '0');
  int zone = dt.zoneMinutes < 0 ? -dt.zoneMinutes : dt.zoneMinutes;
  int month = std::clamp(dt.date.month, 1, 12);
  return two(dt.date.day) + "-" + kMonths[month - 1] + "-" + year + " " + two(dt.hour) + ":" + two(dt.minute) +
         ":" + two(dt.second) + " " + (dt.zoneMinutes < 0 ? "-" : "+") + two(zone / 60) + two(zone % 60);
}

}  // namespace mb::imap::client
