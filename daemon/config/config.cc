// Config parsing and validation. Uses nlohmann::json's exceptions only inside
// this file (config loading is not on the data path) and turns them into Errors.
#include "daemon/config/config.h"

#include "daemon/tls/openssl_util.h"
#include "daemon/util/fs.h"

#include <arpa/inet.h>

#include <nlohmann/json.hpp>
#include <algorithm>
#include <functional>
#include <set>

namespace mb {
namespace {

using nlohmann::json;

const char* typeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    default: return "an unsupported value";
  }
}

// Walks one JSON object: each get* marks the key as known; finish() reports
// any key nobody asked for. The first problem found wins.
class ObjectReader {
 public:
  ObjectReader(const json& obj, std::string path, std::string_view source)
      : obj_(obj), path_(std::move(path)), source_(source) {}

  Status expectObject() const {
    if (!obj_.is_object()) return errorAt(path_, std::string("expected an object, got ") + typeName(obj_));
    return {};
  }

  // Returns nullptr when the key is absent.
  const json* find(const std::string& key) {
    known_.insert(key);
    auto it = obj_.find(key);
    return it == obj_.end() ? nullptr : &*it;
  }

  Result<std::string> getString(const std::string& key, bool required, std::string fallback = {}) {
    const json* v = find(key);
    if (!v) {
      if (required) return errorAt(childPath(key), "is required");
      return fallback;
    }
    if (!v->is_string()) return errorAt(childPath(key), std::string("expected a string, got ") + typeName(*v));
    return v->get<std::string>();
  }

  Status finish() const {
    for (auto it = obj_.begin(); it != obj_.end(); ++it) {
      if (!known_.count(it.key())) return errorAt(childPath(it.key()), "unknown key");
    }
    return {};
  }

  std::string childPath(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  std::unexpected<Error> errorAt(const std::string& path, const std::string& what) const {
    std::string where = path.empty() ? "(top level)" : path;
    return fail(ErrorKind::Config, (source_.empty() ? "" : std::string(source_) + ": ") + where + ": " + what);
  }

 private:
  const json& obj_;
  std::string path_;
  std::string_view source_;
  std::set<std::string> known_;
};

bool validAccountName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name[0])) return false;
  for (char c : name)
    if (!alnum(c) && c != '.' && c != '_' && c != '-') return false;
  return true;
}

bool plausibleAddress(std::string_view addr) {
  auto at = addr.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == addr.size()) return false;
  for (unsigned char c : addr)
    if (c <= ' ' || c == '<' || c == '>' || c == ',' || c == 0x7f) return false;
  return true;
}

std::string lowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// Byte offset -> "line L, column C" for JSON syntax errors.
std::string lineColumn(std::string_view text, size_t offset) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(col);
}

Result<uint64_t> readUnsigned(ObjectReader& r, const std::string& key, uint64_t fallback, uint64_t min,
                              uint64_t max) {
  const json* v = r.find(key);
  if (!v) return fallback;
  if (!v->is_number_integer() && !v->is_number_unsigned())
    return r.errorAt(r.childPath(key), std::string("expected an integer, got ") + typeName(*v));
  if (v->is_number_integer() && v->get<int64_t>() < 0)
    return r.errorAt(r.childPath(key), "must be at least " + std::to_string(min));
  uint64_t n = v->get<uint64_t>();
  if (n < min || n > max)
    return r.errorAt(r.childPath(key), "must be between " + std::to_string(min) + " and " + std::to_string(max));
  return n;
}

Result<bool> readBool(ObjectReader& r, const std::string& key, bool fallback) {
  const json* v = r.find(key);
  if (!v) return fallback;
  if (!v->is_boolean()) return r.errorAt(r.childPath(key), std::string("expected true or false, got ") + typeName(*v));
  return v->get<bool>();
}

// "listen": a string or an array of strings; absent -> `defaults` (optional).
Status readListenList(ObjectReader& r, const std::string& key, std::vector<ListenAddress> defaults,
                      std::vector<ListenAddress>& out, std::vector<ListenAddress>& optional) {
  const json* v = r.find(key);
  if (!v) {
    out = defaults;
    for (const auto& a : defaults)
      if (a.host == "::1") optional.push_back(a);
    return {};
  }
  std::vector<json> items;
  if (v->is_string()) {
    items.push_back(*v);
  } else if (v->is_array()) {
    items.assign(v->begin(), v->end());
  } else {
    return r.errorAt(r.childPath(key), std::string("expected a string or an array of strings, got ") + typeName(*v));
  }
  out.clear();
  for (size_t i = 0; i < items.size(); ++i) {
    std::string path = r.childPath(key) + (v->is_array() ? "[" + std::to_string(i) + "]" : "");
    if (!items[i].is_string()) return r.errorAt(path, std::string("expected a string, got ") + typeName(items[i]));
    auto addr = parseListenAddress(items[i].get<std::string>());
    if (!addr) return r.errorAt(path, addr.error().message);
    out.push_back(*addr);
  }
  return {};
}

Status readEndpoint(const json& obj, const std::string& path, std::string_view source, uint16_t port,
                    uint16_t tlsPort, EndpointConfig& out, const std::function<Status(ObjectReader&)>& limits) {
  ObjectReader r(obj, path, source);
  if (auto s = r.expectObject(); !s) return s;
  auto both = [](uint16_t p) { return std::vector<ListenAddress>{{"127.0.0.1", p}, {"::1", p}}; };
  if (auto s = readListenList(r, "listen", both(port), out.listen, out.optional); !s) return s;
  if (auto s = readListenList(r, "tls_listen", both(tlsPort), out.tlsListen, out.optional); !s) return s;
  auto require = readBool(r, "require_tls", false);
  if (!require) return std::unexpected(require.error());
  out.requireTls = *require;
  if (auto s = limits(r); !s) return s;
  return r.finish();
}

Result<ListenAddress> readListen(ObjectReader& r, const std::string& key, ListenAddress fallback) {
  auto text = r.getString(key, false, fallback.toString());
  if (!text) return std::unexpected(text.error());
  auto addr = parseListenAddress(*text);
  if (!addr) return r.errorAt(r.childPath(key), addr.error().message);
  return addr;
}

// readConnection reads the UpstreamConnection fields (config.h) for both the
// SMTP relay and the IMAP upstream, so both are validated and worded the same way.
struct ConnectionDefaults {
  RelaySecurity security;
  uint16_t tlsPort;    // default port with security tls
  uint16_t plainPort;  // default port with starttls or none
};

Result<UpstreamConnection> readConnection(ObjectReader& r, ConnectionDefaults defaults) {
  UpstreamConnection c;
  auto host = r.getString("host", true);
  if (!host) return std::unexpected(host.error());
  if (host->empty() || host->find_first_of(" \t\r\n/") != std::string::npos)
    return r.errorAt(r.childPath("host"), "\"" + *host + "\" is not a host name");
  c.host = *host;
  auto security = r.getString("security", false, relaySecurityName(defaults.security));
  if (!security) return std::unexpected(security.error());
  if (*security == "starttls") c.security = RelaySecurity::StartTls;
  else if (*security == "tls") c.security = RelaySecurity::Tls;
  else if (*security == "none") c.security = RelaySecurity::None;
  else return r.errorAt(r.childPath("security"), "expected one of starttls, tls, none; got \"" + *security + "\"");
  auto port = readUnsigned(r, "port", c.security == RelaySecurity::Tls ? defaults.tlsPort : defaults.plainPort, 1, 65535);
  if (!port) return std::unexpected(port.error());
  c.port = static_cast<uint16_t>(*port);
  auto user = r.getString("username", false);
  if (!user) return std::unexpected(user.error());
  c.username = *user;
  auto password = r.getString("password", false);
  if (!password) return std::unexpected(password.error());
  c.password = Secret(*password);
  auto command = r.getString("password_command", false);
  if (!command) return std::unexpected(command.error());
  c.passwordCommand = *command;
  if (!c.password.empty() && !c.passwordCommand.empty())
    return r.errorAt(r.childPath("password_command"), "give either password or password_command, not both");
  auto ca = r.getString("ca_file", false);
  if (!ca) return std::unexpected(ca.error());
  c.caFile = *ca;
  auto pin = r.getString("pin_sha256", false);
  if (!pin) return std::unexpected(pin.error());
  if (!pin->empty() && !tls::parseFingerprint(*pin))
    return r.errorAt(r.childPath("pin_sha256"), "expected the certificate's SHA-256 as 64 hex digits (colons allowed)");
  c.pinSha256 = *pin;
  if (c.security == RelaySecurity::None && (!c.caFile.empty() || !c.pinSha256.empty()))
    return r.errorAt(r.childPath("security"), "ca_file and pin_sha256 need security starttls or tls");
  return c;
}

// An account's "smtp" object: the upstream relay.
Result<RelayConfig> readRelay(const json& obj, const std::string& path, std::string_view source) {
  ObjectReader r(obj, path, source);
  if (auto s = r.expectObject(); !s) return std::unexpected(s.error());
  auto conn = readConnection(r, {RelaySecurity::StartTls, 465, 587});
  if (!conn) return std::unexpected(conn.error());
  RelayConfig c;
  static_cast<UpstreamConnection&>(c) = std::move(*conn);
  auto auth = r.getString("auth", false, c.haveSecret() ? "plain" : "none");
  if (!auth) return std::unexpected(auth.error());
  if (*auth == "plain") c.auth = RelayAuth::Plain;
  else if (*auth == "login") c.auth = RelayAuth::Login;
  else if (*auth == "xoauth2") c.auth = RelayAuth::Xoauth2;
  else if (*auth == "none") c.auth = RelayAuth::None;
  else return r.errorAt(r.childPath("auth"), "expected one of plain, login, xoauth2, none; got \"" + *auth + "\"");
  if (c.auth != RelayAuth::None && !c.haveSecret())
    return r.errorAt(r.childPath("auth"), "\"" + *auth + "\" needs password or password_command");
  auto ehlo = r.getString("ehlo", false, "localhost");
  if (!ehlo) return std::unexpected(ehlo.error());
  if (ehlo->empty() || ehlo->find_first_of(" \t\r\n") != std::string::npos)
    return r.errorAt(r.childPath("ehlo"), "\"" + *ehlo + "\" is not a host name");
  c.ehlo = *ehlo;
  auto connections = readUnsigned(r, "max_connections", c.maxConnections, 1, 32);
  if (!connections) return std::unexpected(connections.error());
  c.maxConnections = static_cast<uint32_t>(*connections);
  if (auto s = r.finish(); !s) return std::unexpected(s.error());
  return c;
}

bool isInbox(std::string_view name) { return lowerAscii(name) == "inbox"; }

// A list of upstream mailbox names: non-empty strings without CR/LF/NUL,
// no name twice (INBOX compared case-insensitively, as RFC 3501 5.1 says).
Result<std::vector<std::string>> readMailboxList(ObjectReader& r, const std::string& key) {
  const json* v = r.find(key);
  std::vector<std::string> out;
  if (!v) return out;
  std::string path = r.childPath(key);
  if (!v->is_array()) return r.errorAt(path, std::string("expected an array of mailbox names, got ") + typeName(*v));
  if (v->size() > 10000) return r.errorAt(path, "at most 10000 mailboxes");
  std::set<std::string> seen;
  for (size_t i = 0; i < v->size(); ++i) {
    const json& item = (*v)[i];
    std::string ipath = path + "[" + std::to_string(i) + "]";
    if (!item.is_string()) return r.errorAt(ipath, std::string("expected a string, got ") + typeName(item));
    std::string name = item.get<std::string>();
    if (name.empty() || name.size() > 1024 || name.find_first_of(std::string("\r\n\0", 3)) != std::string::npos)
      return r.errorAt(ipath, "is not a mailbox name (1 to 1024 bytes, no CR, LF or NUL)");
    if (isInbox(name)) name = "INBOX";
    if (!seen.insert(name).second) return r.errorAt(ipath, "\"" + name + "\" is listed twice");
    out.push_back(std::move(name));
  }
  return out;
}

// An account's "imap" object: the provider's IMAP server to sync with.
Result<ImapUpstreamConfig> readImapUpstream(const json& obj, const std::string& path, std::string_view source) {
  ObjectReader r(obj, path, source);
  if (auto s = r.expectObject(); !s) return std::unexpected(s.error());
  auto conn = readConnection(r, {RelaySecurity::Tls, 993, 143});
  if (!conn) return std::unexpected(conn.error());
  ImapUpstreamConfig c;
  static_cast<UpstreamConnection&>(c) = std::move(*conn);
  auto auth = r.getString("auth", false, "plain");
  if (!auth) return std::unexpected(auth.error());
  if (*auth == "plain") c.auth = ImapAuth::Plain;
  else if (*auth == "login") c.auth = ImapAuth::Login;
  else if (*auth == "xoauth2") c.auth = ImapAuth::Xoauth2;
  else if (*auth == "oauthbearer") c.auth = ImapAuth::OAuthBearer;
  else return r.errorAt(r.childPath("auth"), "expected one of plain, login, xoauth2, oauthbearer; got \"" + *auth + "\"");
  // Every IMAP login needs a secret (there is no "none" as for SMTP relays).
  if (!c.haveSecret()) return r.errorAt(r.childPath("password"), "is required (or password_command)");
  auto mailboxes = readMailboxList(r, "mailboxes");
  if (!mailboxes) return std::unexpected(mailboxes.error());
  c.mailboxes = std::move(*mailboxes);
  auto synced = [&](const std::string& name) {
    return c.mailboxes.empty() || std::find(c.mailboxes.begin(), c.mailboxes.end(), name) != c.mailboxes.end();
  };
  if (r.find("idle_mailboxes")) {
    auto idle = readMailboxList(r, "idle_mailboxes");
    if (!idle) return std::unexpected(idle.error());
    if (idle->size() > 16) return r.errorAt(r.childPath("idle_mailboxes"), "at most 16 (one connection each)");
    for (size_t i = 0; i < idle->size(); ++i)
      if (!synced((*idle)[i]))
        return r.errorAt(r.childPath("idle_mailboxes") + "[" + std::to_string(i) + "]",
                         "\"" + (*idle)[i] + "\" is not in mailboxes");
    c.idleMailboxes = std::move(*idle);
  } else if (!synced("INBOX")) {
    c.idleMailboxes.clear();  // the default INBOX is not synced: poll only
  }
  auto poll = readUnsigned(r, "poll_seconds", c.pollSeconds, 5, 86400);
  if (!poll) return std::unexpected(poll.error());
  c.pollSeconds = static_cast<uint32_t>(*poll);
  auto bodies = r.getString("bodies", false, "full");
  if (!bodies) return std::unexpected(bodies.error());
  if (*bodies == "full") c.bodies = BodyPolicy::Full;
  else if (*bodies == "on_demand") c.bodies = BodyPolicy::OnDemand;
  else return r.errorAt(r.childPath("bodies"), "expected \"full\" or \"on_demand\", got \"" + *bodies + "\"");
  if (auto s = r.finish(); !s) return std::unexpected(s.error());
  return c;
}

// One entry of "accounts" (or a REST API account body, with an empty path).
// Uniqueness across accounts is the caller's to check.
Result<AccountConfig> readAccount(const json& obj, const std::string& path, std::string_view source) {
  ObjectReader r(obj, path, source);
  if (auto s = r.expectObject(); !s) return std::unexpected(s.error());
  AccountConfig a;
  auto name = r.getString("name", true);
  if (!name) return std::unexpected(name.error());
  if (!validAccountName(*name))
    return r.errorAt(r.childPath("name"), "\"" + *name +
                                         "\" is not a valid account name (lowercase letters, digits, '.', '_', "
                                         "'-'; starting with a letter or digit; at most 64)");
  auto address = r.getString("address", true);
  if (!address) return std::unexpected(address.error());
  if (!plausibleAddress(*address))
    return r.errorAt(r.childPath("address"), "\"" + *address + "\" is not an e-mail address");
  a.name = *name;
  a.address = *address;
  if (const json* aliases = r.find("aliases")) {
    if (!aliases->is_array())
      return r.errorAt(r.childPath("aliases"), std::string("expected an array, got ") + typeName(*aliases));
    for (size_t j = 0; j < aliases->size(); ++j) {
      const json& al = (*aliases)[j];
      std::string apath = r.childPath("aliases") + "[" + std::to_string(j) + "]";
      if (!al.is_string()) return r.errorAt(apath, std::string("expected a string, got ") + typeName(al));
      if (!plausibleAddress(al.get<std::string>()))
        return r.errorAt(apath, "\"" + al.get<std::string>() + "\" is not an e-mail address");
      a.aliases.push_back(al.get<std::string>());
    }
  }
  if (const json* relay = r.find("smtp")) {
    auto rc = readRelay(*relay, r.childPath("smtp"), source);
    if (!rc) return std::unexpected(rc.error());
    a.relay = std::move(*rc);
    if (a.relay->username.empty()) a.relay->username = a.address;
  }
  if (const json* imap = r.find("imap")) {
    auto ic = readImapUpstream(*imap, r.childPath("imap"), source);
    if (!ic) return std::unexpected(ic.error());
    a.imap = std::move(*ic);
    if (a.imap->username.empty()) a.imap->username = a.address;
  }
  auto sent = r.getString("sent_copy", false, "sent");
  if (!sent) return std::unexpected(sent.error());
  if (*sent == "sent") a.sentCopy = SentCopy::Sent;
  else if (*sent == "none") a.sentCopy = SentCopy::None;
  else return r.errorAt(r.childPath("sent_copy"), "expected \"none\" or \"sent\", got \"" + *sent + "\"");
  auto maxAge = readUnsigned(r, "retry_max_age_seconds", a.retryMaxAgeSeconds, 60, 30ull * 86400);
  if (!maxAge) return std::unexpected(maxAge.error());
  a.retryMaxAgeSeconds = *maxAge;
  if (auto s = r.finish(); !s) return std::unexpected(s.error());
  return a;
}

}  // namespace

const char* relaySecurityName(RelaySecurity security) {
  switch (security) {
    case RelaySecurity::Tls: return "tls";
    case RelaySecurity::StartTls: return "starttls";
    case RelaySecurity::None: return "none";
  }
  return "none";
}

bool sameAddress(std::string_view a, std::string_view b) { return lowerAscii(a) == lowerAscii(b); }

std::string ListenAddress::toString() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<ListenAddress> parseListenAddress(std::string_view text) {
  std::string host;
  std::string_view portText;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return fail(ErrorKind::Config, "expected \"[ipv6]:port\", got \"" + std::string(text) + "\"");
    host = std::string(text.substr(1, close - 1));
    portText = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon)
      return fail(ErrorKind::Config, "expected \"host:port\", got \"" + std::string(text) + "\"");
    host = std::string(text.substr(0, colon));
    portText = text.substr(colon + 1);
  }
  if (host == "localhost") host = "127.0.0.1";
  unsigned char buf[16];
  if (inet_pton(AF_INET, host.c_str(), buf) != 1 && inet_pton(AF_INET6, host.c_str(), buf) != 1)
    return fail(ErrorKind::Config, "\"" + host + "\" is not an IP address (use 127.0.0.1, ::1 or localhost)");
  if (portText.empty() || portText.size() > 5)
    return fail(ErrorKind::Config, "port must be a number from 0 to 65535");
  unsigned port = 0;
  for (char c : portText) {
    if (c < '0' || c > '9') return fail(ErrorKind::Config, "port must be a number from 0 to 65535");
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port > 65535) return fail(ErrorKind::Config, "port must be a number from 0 to 65535");
  return ListenAddress{host, static_cast<uint16_t>(port)};
}

Config embeddedDefaultConfig() {
  // Parsing "{}" gives every default in one place (listeners, limits).
  Config c = *parseConfig("{}", "(embedded default)");
  c.source = "(embedded default)";
  c.accounts.push_back(AccountConfig{"local", "me@localhost"});
  return c;
}

Result<Config> parseConfig(std::string_view text, std::string_view source) {
  json root;
  try {
    root = json::parse(text.begin(), text.end(), nullptr, true, /*ignore_comments=*/true);
  } catch (const json::out_of_range& e) {
    // A number too large for any C++ type (nlohmann reports it as a range error).
    return fail(ErrorKind::Config, std::string(source) + ": invalid JSON: number out of range");
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    // nlohmann prefixes "[json.exception.parse_error.101] parse error at line 1, column 2: ".
    auto colon = what.find(": ", what.find("parse error"));
    std::string detail = colon == std::string::npos ? what : what.substr(colon + 2);
    return fail(ErrorKind::Config,
                std::string(source) + ": " + lineColumn(text, e.byte ? e.byte - 1 : 0) + ": invalid JSON: " + detail);
  }

  Config cfg;
  cfg.source = std::string(source);
  ObjectReader top(root, "", source);
  if (auto s = top.expectObject(); !s) return std::unexpected(s.error());

  if (const json* api = top.find("api")) {
    ObjectReader r(*api, "api", source);
    if (auto s = r.expectObject(); !s) return std::unexpected(s.error());
    auto listen = readListen(r, "listen", cfg.api);
    if (!listen) return std::unexpected(listen.error());
    cfg.api = *listen;
    if (auto s = r.finish(); !s) return std::unexpected(s.error());
  }

  static const json kEmpty = json::object();
  {
    const json* imap = top.find("imap");
    auto s = readEndpoint(imap ? *imap : kEmpty, "imap", source, 1143, 1993, cfg.imap, [&](ObjectReader& r) -> Status {
      auto line = readUnsigned(r, "max_line_length", cfg.imapLimits.maxLineLength, 1024, 64ull << 20);
      if (!line) return std::unexpected(line.error());
      auto literal = readUnsigned(r, "max_literal_size", cfg.imapLimits.maxLiteralSize, 1024, 4ull << 30);
      if (!literal) return std::unexpected(literal.error());
      auto conns = readUnsigned(r, "max_connections_per_account", cfg.imapLimits.maxConnectionsPerAccount, 1, 10000);
      if (!conns) return std::unexpected(conns.error());
      auto idle = readUnsigned(r, "idle_timeout_seconds", cfg.imapLimits.idleTimeoutSeconds, 30, 86400);
      if (!idle) return std::unexpected(idle.error());
      cfg.imapLimits = {*line, *literal, static_cast<uint32_t>(*conns), static_cast<uint32_t>(*idle)};
      return {};
    });
    if (!s) return std::unexpected(s.error());
  }
  {
    const json* smtp = top.find("smtp");
    auto s = readEndpoint(smtp ? *smtp : kEmpty, "smtp", source, 1025, 1465, cfg.smtp, [&](ObjectReader& r) -> Status {
      auto size = readUnsigned(r, "max_message_size", cfg.smtpLimits.maxMessageSize, 1024, 4ull << 30);
      if (!size) return std::unexpected(size.error());
      auto rcpts = readUnsigned(r, "max_recipients", cfg.smtpLimits.maxRecipients, 1, 100000);
      if (!rcpts) return std::unexpected(rcpts.error());
      auto initial = readUnsigned(r, "retry_initial_seconds", cfg.smtpLimits.retryInitialSeconds, 1, 86400);
      if (!initial) return std::unexpected(initial.error());
      auto maxDelay = readUnsigned(r, "retry_max_seconds", cfg.smtpLimits.retryMaxSeconds, 1, 7 * 86400);
      if (!maxDelay) return std::unexpected(maxDelay.error());
      if (*maxDelay < *initial) return r.errorAt(r.childPath("retry_max_seconds"), "must be at least retry_initial_seconds");
      cfg.smtpLimits = {*size, static_cast<uint32_t>(*rcpts), static_cast<uint32_t>(*initial),
                        static_cast<uint32_t>(*maxDelay)};
      return {};
    });
    if (!s) return std::unexpected(s.error());
  }

  if (const json* tls = top.find("tls")) {
    ObjectReader r(*tls, "tls", source);
    if (auto s = r.expectObject(); !s) return std::unexpected(s.error());
    auto cert = r.getString("cert", true);
    if (!cert) return std::unexpected(cert.error());
    auto key = r.getString("key", true);
    if (!key) return std::unexpected(key.error());
    cfg.tls = {*cert, *key};
    if (auto s = r.finish(); !s) return std::unexpected(s.error());
  }

  if (const json* log = top.find("log")) {
    ObjectReader r(*log, "log", source);
    if (auto s = r.expectObject(); !s) return std::unexpected(s.error());
    auto level = r.getString("level", false, "info");
    if (!level) return std::unexpected(level.error());
    if (!parseLogLevel(*level, cfg.logLevel))
      return r.errorAt("log.level", "expected one of debug, info, warn, error; got \"" + *level + "\"");
    if (auto s = r.finish(); !s) return std::unexpected(s.error());
  }

  if (const json* accounts = top.find("accounts")) {
    if (!accounts->is_array())
      return top.errorAt("accounts", std::string("expected an array, got ") + typeName(*accounts));
    std::set<std::string> names;
    std::set<std::string> addresses;
    for (size_t i = 0; i < accounts->size(); ++i) {
      std::string path = "accounts[" + std::to_string(i) + "]";
      auto a = readAccount((*accounts)[i], path, source);
      if (!a) return std::unexpected(a.error());
      if (!names.insert(a->name).second)
        return top.errorAt(path + ".name", "duplicate account name \"" + a->name + "\"");
      if (!addresses.insert(lowerAscii(a->address)).second)  // the same rule as sameAddress()
        return top.errorAt(path + ".address", "\"" + a->address + "\" is already used by another account");
      cfg.accounts.push_back(std::move(*a));
    }
  }

  if (auto s = top.finish(); !s) return std::unexpected(s.error());
  return cfg;
}

Result<AccountConfig> parseAccount(std::string_view text) {
  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    // Byte offsets and nlohmann's wording say little to an API client.
    return fail(ErrorKind::Config, "(top level): invalid JSON");
  }
  return readAccount(root, "", "");
}

Result<Config> loadConfigFile(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return fail(ErrorKind::NotFound, path.string() + ": no such file");
  auto text = readFile(path);
  if (!text) return std::unexpected(text.error());
  return parseConfig(*text, path.string());
}

}  // namespace mb
