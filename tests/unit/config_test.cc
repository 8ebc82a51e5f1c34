// Config validation: every error names the file, the key path and the problem.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "daemon/config/config.h"

namespace mb {
namespace {

std::string errorOf(std::string_view text) {
  auto r = parseConfig(text, "test.json");
  EXPECT_FALSE(r.has_value()) << "accepted: " << text;
  if (r) return {};
  EXPECT_EQ(r.error().kind, ErrorKind::Config);
  return r.error().message;
}

TEST(Config, EmptyObjectGivesDefaults) {
  auto c = parseConfig("{}", "test.json");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->api.toString(), "127.0.0.1:8025");
  EXPECT_EQ(c->logLevel, LogLevel::Info);
  EXPECT_TRUE(c->accounts.empty());
  EXPECT_EQ(c->source, "test.json");
}

TEST(Config, FullConfig) {
  auto c = parseConfig(R"({
    // comments are allowed
    "api": {"listen": "[::1]:0"},
    "log": {"level": "debug"},
    "accounts": [{"name": "work", "address": "me@example.com"},
                 {"name": "home.2", "address": "x@y.test"}]
  })",
                       "test.json");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->api.host, "::1");
  EXPECT_EQ(c->api.port, 0);
  EXPECT_EQ(c->api.toString(), "[::1]:0");
  EXPECT_EQ(c->logLevel, LogLevel::Debug);
  ASSERT_EQ(c->accounts.size(), 2u);
  EXPECT_EQ(c->accounts[1].name, "home.2");
}

TEST(Config, EmbeddedDefaultHasOneLocalAccount) {
  Config c = embeddedDefaultConfig();
  ASSERT_EQ(c.accounts.size(), 1u);
  EXPECT_EQ(c.accounts[0].name, "local");
  EXPECT_EQ(c.api.toString(), "127.0.0.1:8025");
}

TEST(Config, SyntaxErrorNamesLineAndColumn) {
  std::string e = errorOf("{\n  \"api\": {\n    \"listen\": \"127.0.0.1:1\",,\n  }\n}");
  EXPECT_NE(e.find("test.json: line 3"), std::string::npos) << e;
  EXPECT_NE(e.find("invalid JSON"), std::string::npos) << e;
}

TEST(Config, HugeNumberIsAnErrorNotACrash) {
  // Found by fuzz_config: nlohmann reports overflow as out_of_range, not parse_error.
  std::string e = errorOf("{\"x\": 5555555.5555E37961038278}");
  EXPECT_EQ(e, "test.json: invalid JSON: number out of range");
}

TEST(Config, EveryErrorPathNamesTheKey) {
  struct Case {
    const char* text;
    const char* expect;
  } cases[] = {
      {"[]", "test.json: (top level): expected an object, got an array"},
      {"{\"apii\": {}}", "test.json: apii: unknown key"},
      {"{\"api\": 3}", "test.json: api: expected an object, got an integer"},
      {"{\"api\": {\"listen\": 8025}}", "test.json: api.listen: expected a string, got an integer"},
      {"{\"api\": {\"listen\": \"127.0.0.1\"}}", "test.json: api.listen: expected \"host:port\""},
      {"{\"api\": {\"listen\": \"127.0.0.1:99999\"}}", "test.json: api.listen: port must be a number"},
      {"{\"api\": {\"listen\": \"127.0.0.1:8x\"}}", "test.json: api.listen: port must be a number"},
      {"{\"api\": {\"listen\": \"example.com:80\"}}", "test.json: api.listen: \"example.com\" is not an IP address"},
      {"{\"api\": {\"listen\": \"[::1:80\"}}", "test.json: api.listen: expected \"[ipv6]:port\""},
      {"{\"api\": {\"port\": 1}}", "test.json: api.port: unknown key"},
      {"{\"log\": {\"level\": \"loud\"}}", "test.json: log.level: expected one of debug, info, warn, error"},
      {"{\"log\": []}", "test.json: log: expected an object, got an array"},
      {"{\"accounts\": {}}", "test.json: accounts: expected an array, got an object"},
      {"{\"accounts\": [1]}", "test.json: accounts[0]: expected an object, got an integer"},
      {"{\"accounts\": [{\"address\": \"a@b\"}]}", "test.json: accounts[0].name: is required"},
      {"{\"accounts\": [{\"name\": \"x\"}]}", "test.json: accounts[0].address: is required"},
      {"{\"accounts\": [{\"name\": \"Bad Name\", \"address\": \"a@b\"}]}",
       "test.json: accounts[0].name: \"Bad Name\" is not a valid account name"},
      {"{\"accounts\": [{\"name\": \"x\", \"address\": \"nobody\"}]}",
       "test.json: accounts[0].address: \"nobody\" is not an e-mail address"},
      {"{\"accounts\": [{\"name\": \"x\", \"address\": \"a@b\", \"pasword\": \"x\"}]}",
       "test.json: accounts[0].pasword: unknown key"},
      {"{\"accounts\": [{\"name\": \"x\", \"address\": \"a@b\"}, {\"name\": \"x\", \"address\": \"c@d\"}]}",
       "test.json: accounts[1].name: duplicate account name \"x\""},
      {"{\"accounts\": [{\"name\": \"x\", \"address\": \"a@b\"}, {\"name\": \"y\", \"address\": \"A@b\"}]}",
       "test.json: accounts[1].address: \"A@b\" is already used by another account"},
      {"{\"accounts\": [{\"name\": \"x\", \"address\": \"a@b\", \"aliases\": \"c@d\"}]}",
       "test.json: accounts[0].aliases: expected an array, got a string"},
      {"{\"accounts\": [{\"name\": \"x\", \"address\": \"a@b\", \"aliases\": [\"c@d\", \"nope\"]}]}",
       "test.json: accounts[0].aliases[1]: \"nope\" is not an e-mail address"},
      {"{\"imap\": {\"listen\": 1143}}", "test.json: imap.listen: expected a string or an array of strings"},
      {"{\"imap\": {\"listen\": [\"127.0.0.1:1143\", 5]}}", "test.json: imap.listen[1]: expected a string"},
      {"{\"imap\": {\"tls_listen\": \"1.2.3:4\"}}", "test.json: imap.tls_listen: \"1.2.3\" is not an IP address"},
      {"{\"imap\": {\"require_tls\": \"yes\"}}", "test.json: imap.require_tls: expected true or false"},
      {"{\"imap\": {\"max_literal_size\": 10}}", "test.json: imap.max_literal_size: must be between 1024 and"},
      {"{\"imap\": {\"max_line_length\": -1}}", "test.json: imap.max_line_length: must be at least 1024"},
      {"{\"imap\": {\"idle_timeout_seconds\": 1.5}}", "test.json: imap.idle_timeout_seconds: expected an integer"},
      {"{\"imap\": {\"max_recipients\": 5}}", "test.json: imap.max_recipients: unknown key"},
      {"{\"smtp\": {\"max_recipients\": 0}}", "test.json: smtp.max_recipients: must be between 1 and"},
      {"{\"smtp\": {\"listen\": []}, \"smtp2\": 1}", "test.json: smtp2: unknown key"},
      {"{\"tls\": {\"cert\": \"/x\"}}", "test.json: tls.key: is required"},
  };
  for (const auto& c : cases) {
    std::string e = errorOf(c.text);
    EXPECT_EQ(e.rfind(c.expect, 0), 0u) << "input: " << c.text << "\n got: " << e;
  }
}

TEST(Config, EndpointDefaultsAndOverrides) {
  auto d = parseConfig("{}", "t");
  ASSERT_TRUE(d);
  ASSERT_EQ(d->imap.listen.size(), 2u);
  EXPECT_EQ(d->imap.listen[0].toString(), "127.0.0.1:1143");
  EXPECT_EQ(d->imap.listen[1].toString(), "[::1]:1143");
  EXPECT_EQ(d->imap.tlsListen[0].toString(), "127.0.0.1:1993");
  EXPECT_EQ(d->smtp.listen[0].toString(), "127.0.0.1:1025");
  EXPECT_EQ(d->smtp.tlsListen[1].toString(), "[::1]:1465");
  EXPECT_EQ(d->imap.optional.size(), 2u);  // the ::1 defaults may fail to bind
  EXPECT_FALSE(d->imap.requireTls);

  auto c = parseConfig(R"({"imap": {"listen": "127.0.0.1:0", "tls_listen": [], "require_tls": true,
                                    "max_literal_size": 2048, "idle_timeout_seconds": 60},
                           "smtp": {"listen": ["[::1]:2525"], "max_message_size": 4096, "max_recipients": 3},
                           "accounts": [{"name": "a", "address": "a@b.test", "aliases": ["c@b.test"]}]})",
                       "t");
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_EQ(c->imap.listen.size(), 1u);
  EXPECT_EQ(c->imap.listen[0].port, 0);
  EXPECT_TRUE(c->imap.tlsListen.empty());
  EXPECT_TRUE(c->imap.optional.empty());
  EXPECT_TRUE(c->imap.requireTls);
  EXPECT_EQ(c->imapLimits.maxLiteralSize, 2048u);
  EXPECT_EQ(c->imapLimits.idleTimeoutSeconds, 60u);
  EXPECT_EQ(c->smtp.listen[0].toString(), "[::1]:2525");
  EXPECT_EQ(c->smtp.tlsListen.size(), 2u);
  EXPECT_EQ(c->smtpLimits.maxRecipients, 3u);
  EXPECT_EQ(c->accounts[0].aliases, std::vector<std::string>{"c@b.test"});
}

TEST(Config, ListenAddressForms) {
  auto a = parseListenAddress("localhost:1143");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 1143);
  auto b = parseListenAddress("[::1]:1993");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->toString(), "[::1]:1993");
  EXPECT_FALSE(parseListenAddress("::1:1993"));
  EXPECT_FALSE(parseListenAddress(":1993"));
  EXPECT_FALSE(parseListenAddress("127.0.0.1:"));
}

TEST(Config, LoadFileMissingIsNotFound) {
  auto r = loadConfigFile("/nonexistent/mailbridge/config.json");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::NotFound);
  EXPECT_NE(r.error().message.find("/nonexistent/mailbridge/config.json"), std::string::npos);
}

TEST(Config, LoadFileNamesThePath) {
  auto dir = std::filesystem::temp_directory_path() / ("mbcfg-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / "config.json";
  std::ofstream(path) << "{\"log\": {\"level\": 7}}";
  auto r = loadConfigFile(path);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, path.string() + ": log.level: expected a string, got an integer");
  std::filesystem::remove_all(dir);
}

// Outbox relay per account ("smtp"), Sent copy and retry schedule.
TEST(Config, AccountRelayDefaults) {
  auto c = parseConfig(R"({"accounts": [{"name": "a", "address": "me@example.com",
                          "smtp": {"host": "smtp.example.com", "password": "pw"}}]})",
                       "test.json");
  ASSERT_TRUE(c) << c.error().message;
  const auto& a = c->accounts[0];
  ASSERT_TRUE(a.relay);
  EXPECT_EQ(a.relay->host, "smtp.example.com");
  EXPECT_EQ(a.relay->port, 587);
  EXPECT_EQ(a.relay->security, RelaySecurity::StartTls);
  EXPECT_EQ(a.relay->auth, RelayAuth::Plain);
  EXPECT_EQ(a.relay->username, "me@example.com");
  EXPECT_EQ(a.relay->password.reveal(), "pw");
  EXPECT_EQ(a.relay->ehlo, "localhost");
  EXPECT_EQ(a.sentCopy, SentCopy::Sent);
  EXPECT_EQ(a.retryMaxAgeSeconds, 2u * 86400);
  EXPECT_EQ(c->smtpLimits.retryInitialSeconds, 60u);
  EXPECT_EQ(c->smtpLimits.retryMaxSeconds, 3600u);
}

TEST(Config, AccountRelayFull) {
  auto c = parseConfig(R"({"smtp": {"retry_initial_seconds": 2, "retry_max_seconds": 10},
    "accounts": [{"name": "a", "address": "me@example.com", "sent_copy": "none",
                  "retry_max_age_seconds": 600,
                  "smtp": {"host": "127.0.0.1", "port": 2525, "security": "tls", "username": "u",
                           "password_command": "cat /x", "auth": "xoauth2", "ehlo": "me.test",
                           "ca_file": "/ca.pem", "pin_sha256": "AB:CD:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89",
                           "max_connections": 2}}]})",
                       "test.json");
  ASSERT_TRUE(c) << c.error().message;
  const auto& a = c->accounts[0];
  EXPECT_EQ(a.relay->port, 2525);
  EXPECT_EQ(a.relay->security, RelaySecurity::Tls);
  EXPECT_EQ(a.relay->auth, RelayAuth::Xoauth2);
  EXPECT_EQ(a.relay->username, "u");
  EXPECT_EQ(a.relay->passwordCommand, "cat /x");
  EXPECT_EQ(a.relay->caFile, "/ca.pem");
  EXPECT_EQ(a.relay->maxConnections, 2u);
  EXPECT_EQ(a.sentCopy, SentCopy::None);
  EXPECT_EQ(a.retryMaxAgeSeconds, 600u);
  EXPECT_EQ(c->smtpLimits.retryInitialSeconds, 2u);
  EXPECT_EQ(c->smtpLimits.retryMaxSeconds, 10u);
}

TEST(Config, AccountRelayTlsPortDefaultsTo465AndNoAuthWithoutPassword) {
  auto c = parseConfig(R"({"accounts": [{"name": "a", "address": "me@example.com",
                          "smtp": {"host": "h", "security": "tls"}}]})",
                       "test.json");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->accounts[0].relay->port, 465);
  EXPECT_EQ(c->accounts[0].relay->auth, RelayAuth::None);
  EXPECT_EQ(c->accounts[0].relay->maxConnections, 4u);
}

TEST(Config, AccountRelayErrors) {
  auto acct = [](std::string smtp) {
    return R"({"accounts": [{"name": "a", "address": "me@example.com", "smtp": )" + smtp + "}]}";
  };
  EXPECT_NE(errorOf(acct(R"({"port": 25})")).find("accounts[0].smtp.host: is required"), std::string::npos);
  EXPECT_NE(errorOf(acct(R"({"host": "h", "security": "ssl"})")).find("accounts[0].smtp.security"), std::string::npos);
  EXPECT_NE(errorOf(acct(R"({"host": "h", "auth": "cram-md5", "password": "x"})")).find("accounts[0].smtp.auth"),
            std::string::npos);
  EXPECT_NE(errorOf(acct(R"({"host": "h", "auth": "login"})")).find("needs password"), std::string::npos);
  EXPECT_NE(errorOf(acct(R"({"host": "h", "password": "a", "password_command": "b"})")).find("not both"),
            std::string::npos);
  EXPECT_NE(errorOf(acct(R"({"host": "h", "port": 0})")).find("accounts[0].smtp.port"), std::string::npos);
  EXPECT_NE(errorOf(acct(R"({"host": "h", "max_connections": 0})")).find("accounts[0].smtp.max_connections"),
            std::string::npos);
  EXPECT_NE(errorOf(acct(R"({"host": "h", "pasword": "x"})")).find("accounts[0].smtp.pasword: unknown key"),
            std::string::npos);
  EXPECT_NE(errorOf(acct(R"({"host": "h", "security": "none", "ca_file": "/x"})")).find("security"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"accounts": [{"name": "a", "address": "me@example.com", "sent_copy": "drafts"}]})")
                .find("accounts[0].sent_copy"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"accounts": [{"name": "a", "address": "me@example.com", "retry_max_age_seconds": 1}]})")
                .find("retry_max_age_seconds"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"smtp": {"retry_initial_seconds": 100, "retry_max_seconds": 10}})").find("retry_max_seconds"),
            std::string::npos);
}

// Upstream IMAP ("imap" in an account): the same connection fields as the
// relay, read by the same code, plus what to sync and how.
TEST(Config, AccountImapDefaults) {
  auto c = parseConfig(R"({"accounts": [{"name": "a", "address": "me@example.com",
                          "imap": {"host": "imap.example.com", "password": "pw"}}]})",
                       "test.json");
  ASSERT_TRUE(c) << c.error().message;
  const auto& a = c->accounts[0];
  ASSERT_TRUE(a.imap);
  EXPECT_FALSE(a.relay);
  EXPECT_EQ(a.imap->host, "imap.example.com");
  EXPECT_EQ(a.imap->port, 993);
  EXPECT_EQ(a.imap->security, RelaySecurity::Tls);
  EXPECT_EQ(a.imap->username, "me@example.com");
  EXPECT_EQ(a.imap->password.reveal(), "pw");
  EXPECT_EQ(a.imap->auth, ImapAuth::Plain);
  EXPECT_TRUE(a.imap->mailboxes.empty());
  EXPECT_EQ(a.imap->idleMailboxes, std::vector<std::string>{"INBOX"});
  EXPECT_EQ(a.imap->pollSeconds, 300u);
  EXPECT_EQ(a.imap->bodies, BodyPolicy::Full);
}

TEST(Config, AccountImapFull) {
  const char* pin = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  auto c = parseConfig(std::string(R"({"accounts": [{"name": "a", "address": "me@example.com",
    "imap": {"host": "127.0.0.1", "port": 1430, "security": "starttls", "username": "u",
             "password_command": "cat /x", "auth": "oauthbearer", "ca_file": "/ca.pem", "pin_sha256": ")") +
                           pin + R"(",
             "mailboxes": ["inbox", "Archive/2024", "Sent"], "idle_mailboxes": ["INBOX", "Sent"],
             "poll_seconds": 60, "bodies": "on_demand"},
    "smtp": {"host": "smtp.example.com", "password": "pw2"}}]})",
                       "test.json");
  ASSERT_TRUE(c) << c.error().message;
  const auto& i = *c->accounts[0].imap;
  EXPECT_EQ(i.port, 1430);
  EXPECT_EQ(i.security, RelaySecurity::StartTls);
  EXPECT_EQ(i.username, "u");
  EXPECT_TRUE(i.password.empty());
  EXPECT_EQ(i.passwordCommand, "cat /x");
  EXPECT_EQ(i.auth, ImapAuth::OAuthBearer);
  EXPECT_EQ(i.caFile, "/ca.pem");
  EXPECT_EQ(i.pinSha256, pin);
  EXPECT_EQ(i.mailboxes, (std::vector<std::string>{"INBOX", "Archive/2024", "Sent"}));  // INBOX normalized
  EXPECT_EQ(i.idleMailboxes, (std::vector<std::string>{"INBOX", "Sent"}));
  EXPECT_EQ(i.pollSeconds, 60u);
  EXPECT_EQ(i.bodies, BodyPolicy::OnDemand);
  EXPECT_EQ(c->accounts[0].relay->password.reveal(), "pw2");
}

TEST(Config, AccountImapPortFollowsSecurity) {
  auto port = [](const char* security) {
    auto c = parseConfig(std::string(R"({"accounts": [{"name": "a", "address": "me@example.com",
                          "imap": {"host": "h", "password": "p", "security": ")") + security + R"("}}]})",
                         "test.json");
    EXPECT_TRUE(c) << c.error().message;
    return c ? c->accounts[0].imap->port : 0;
  };
  EXPECT_EQ(port("tls"), 993);
  EXPECT_EQ(port("starttls"), 143);
  EXPECT_EQ(port("none"), 143);
}

TEST(Config, AccountImapIdleDefaultOnlyWhenInboxIsSynced) {
  auto c = parseConfig(R"({"accounts": [{"name": "a", "address": "me@example.com",
                          "imap": {"host": "h", "password": "p", "mailboxes": ["Archive"]}}]})",
                       "test.json");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->accounts[0].imap->idleMailboxes.empty());
  c = parseConfig(R"({"accounts": [{"name": "a", "address": "me@example.com",
                     "imap": {"host": "h", "password": "p", "idle_mailboxes": []}}]})",
                  "test.json");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->accounts[0].imap->idleMailboxes.empty());
}

TEST(Config, AccountImapEqualityComparesTheSecret) {
  auto parse = [](const char* password) {
    return parseConfig(std::string(R"({"accounts": [{"name": "a", "address": "me@example.com",
                          "imap": {"host": "h", "password": ")") + password + R"("}}]})",
                       "test.json");
  };
  auto a = parse("one"), b = parse("one"), c = parse("two");
  ASSERT_TRUE(a && b && c);
  EXPECT_TRUE(*a->accounts[0].imap == *b->accounts[0].imap);
  EXPECT_FALSE(*a->accounts[0].imap == *c->accounts[0].imap);
  EXPECT_FALSE(a->accounts[0] == c->accounts[0]);  // a reload sees a changed upstream password
}

TEST(Config, AccountImapErrors) {
  auto acct = [](std::string imap) {
    return R"({"accounts": [{"name": "a", "address": "me@example.com", "imap": )" + imap + "}]}";
  };
  struct Case {
    std::string imap;
    const char* expect;
  } cases[] = {
      {"[]", "test.json: accounts[0].imap: expected an object, got an array"},
      {R"({"password": "p"})", "test.json: accounts[0].imap.host: is required"},
      {R"({"host": 5, "password": "p"})", "test.json: accounts[0].imap.host: expected a string, got an integer"},
      {R"({"host": "a b", "password": "p"})", "test.json: accounts[0].imap.host: \"a b\" is not a host name"},
      {R"({"host": "h", "password": "p", "security": "ssl"})",
       "test.json: accounts[0].imap.security: expected one of starttls, tls, none; got \"ssl\""},
      {R"({"host": "h", "password": "p", "port": 0})", "test.json: accounts[0].imap.port: must be between 1 and 65535"},
      {R"({"host": "h", "password": "p", "port": 70000})",
       "test.json: accounts[0].imap.port: must be between 1 and 65535"},
      {R"({"host": "h", "password": "p", "port": "993"})",
       "test.json: accounts[0].imap.port: expected an integer, got a string"},
      {R"({"host": "h", "password": "p", "username": 1})",
       "test.json: accounts[0].imap.username: expected a string, got an integer"},
      {R"({"host": "h", "password": "a", "password_command": "b"})",
       "test.json: accounts[0].imap.password_command: give either password or password_command, not both"},
      {R"({"host": "h"})", "test.json: accounts[0].imap.password: is required (or password_command)"},
      {R"({"host": "h", "password": "p", "auth": "cram-md5"})",
       "test.json: accounts[0].imap.auth: expected one of plain, login, xoauth2, oauthbearer; got \"cram-md5\""},
      {R"({"host": "h", "password": "p", "auth": "none"})", "test.json: accounts[0].imap.auth: expected one of"},
      {R"({"host": "h", "password": "p", "pin_sha256": "ab"})",
       "test.json: accounts[0].imap.pin_sha256: expected the certificate's SHA-256 as 64 hex digits"},
      {R"({"host": "h", "password": "p", "security": "none", "ca_file": "/x"})",
       "test.json: accounts[0].imap.security: ca_file and pin_sha256 need security starttls or tls"},
      {R"({"host": "h", "password": "p", "mailboxes": "INBOX"})",
       "test.json: accounts[0].imap.mailboxes: expected an array of mailbox names, got a string"},
      {R"({"host": "h", "password": "p", "mailboxes": ["INBOX", 3]})",
       "test.json: accounts[0].imap.mailboxes[1]: expected a string, got an integer"},
      {R"({"host": "h", "password": "p", "mailboxes": [""]})",
       "test.json: accounts[0].imap.mailboxes[0]: is not a mailbox name"},
      {R"({"host": "h", "password": "p", "mailboxes": ["a\r\nb"]})",
       "test.json: accounts[0].imap.mailboxes[0]: is not a mailbox name"},
      {R"({"host": "h", "password": "p", "mailboxes": ["INBOX", "Inbox"]})",
       "test.json: accounts[0].imap.mailboxes[1]: \"INBOX\" is listed twice"},
      {R"({"host": "h", "password": "p", "idle_mailboxes": {}})",
       "test.json: accounts[0].imap.idle_mailboxes: expected an array of mailbox names, got an object"},
      {R"({"host": "h", "password": "p", "mailboxes": ["INBOX"], "idle_mailboxes": ["INBOX", "Sent"]})",
       "test.json: accounts[0].imap.idle_mailboxes[1]: \"Sent\" is not in mailboxes"},
      {R"({"host": "h", "password": "p", "idle_mailboxes": ["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"]})",
       "test.json: accounts[0].imap.idle_mailboxes: at most 16"},
      {R"({"host": "h", "password": "p", "poll_seconds": 1})",
       "test.json: accounts[0].imap.poll_seconds: must be between 5 and 86400"},
      {R"({"host": "h", "password": "p", "poll_seconds": 100000})",
       "test.json: accounts[0].imap.poll_seconds: must be between 5 and 86400"},
      {R"({"host": "h", "password": "p", "poll_seconds": -3})",
       "test.json: accounts[0].imap.poll_seconds: must be at least 5"},
      {R"({"host": "h", "password": "p", "bodies": "headers"})",
       "test.json: accounts[0].imap.bodies: expected \"full\" or \"on_demand\", got \"headers\""},
      {R"({"host": "h", "password": "p", "ehlo": "x"})", "test.json: accounts[0].imap.ehlo: unknown key"},
      {R"({"host": "h", "password": "p", "max_connections": 2})",
       "test.json: accounts[0].imap.max_connections: unknown key"},
  };
  for (const auto& c : cases) {
    std::string e = errorOf(acct(c.imap));
    EXPECT_EQ(e.rfind(c.expect, 0), 0u) << "input: " << c.imap << "\n got: " << e;
  }
  // The relay shares the connection reader, so it checks the pin too.
  EXPECT_EQ(errorOf(R"({"accounts": [{"name": "a", "address": "me@example.com",
                      "smtp": {"host": "h", "pin_sha256": "zz"}}]})")
                .rfind("test.json: accounts[0].smtp.pin_sha256: expected the certificate's SHA-256", 0),
            0u);
}

// The REST API's account bodies go through the same reader; errors name the
// key path without a file.
TEST(Config, ParseAccountForTheApi) {
  auto a = parseAccount(R"({"name": "work", "address": "me@example.com",
                            "imap": {"host": "imap.example.com", "password": "pw"},
                            "smtp": {"host": "smtp.example.com", "password": "pw2"}})");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->imap->username, "me@example.com");
  EXPECT_EQ(a->imap->port, 993);
  EXPECT_EQ(a->relay->port, 587);
  struct Case {
    const char* text;
    const char* expect;
  } cases[] = {
      {"{", "(top level): invalid JSON"},
      {"[]", "(top level): expected an object, got an array"},
      {R"({"address": "a@b"})", "name: is required"},
      {R"({"name": "x", "address": "a@b", "imap": {"password": "p"}})", "imap.host: is required"},
      {R"({"name": "x", "address": "a@b", "smtp": {"host": "h", "security": "ssl"}})", "smtp.security: expected one of"},
      {R"({"name": "x", "address": "a@b", "aliases": [1]})", "aliases[0]: expected a string, got an integer"},
      {R"({"name": "x", "address": "a@b", "local": {}})", "local: unknown key"},
  };
  for (const auto& c : cases) {
    auto r = parseAccount(c.text);
    ASSERT_FALSE(r) << c.text;
    EXPECT_EQ(r.error().kind, ErrorKind::Config);
    EXPECT_EQ(r.error().message.rfind(c.expect, 0), 0u) << "input: " << c.text << "\n got: " << r.error().message;
  }
}

}  // namespace
}  // namespace mb
