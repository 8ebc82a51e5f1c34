// The daemon's configuration: parsed from JSON, validated strictly (unknown
// keys are errors, so typos surface), or the embedded default when no file
// exists. Errors name the file, the key path and what is wrong.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/log/log.h"
#include "protocols/common/result.h"

namespace mb {

struct ListenAddress {
  std::string host;  // literal IPv4 or IPv6 address, no brackets
  uint16_t port = 0;
  std::string toString() const;  // "127.0.0.1:8025", "[::1]:8025"
  bool operator==(const ListenAddress&) const = default;
};

// "127.0.0.1:8025", "[::1]:1143", "localhost:1025" (resolved to 127.0.0.1).
Result<ListenAddress> parseListenAddress(std::string_view text);

// One local endpoint kind (IMAP or SMTP): plaintext listeners (STARTTLS
// offered) and implicit-TLS listeners.
struct EndpointConfig {
  std::vector<ListenAddress> listen;     // plaintext + STARTTLS
  std::vector<ListenAddress> tlsListen;  // implicit TLS
  bool requireTls = false;               // refuse login/AUTH before STARTTLS
  // Addresses that came from the defaults: failing to bind one of these (no
  // IPv6 on the host) is a warning; a configured address must bind.
  std::vector<ListenAddress> optional;
};

struct ImapLimits {
  uint64_t maxLineLength = 64 * 1024;               // non-literal bytes of one command
  uint64_t maxLiteralSize = 64ull * 1024 * 1024;    // one literal; also APPENDLIMIT
  uint32_t maxConnectionsPerAccount = 20;
  uint32_t idleTimeoutSeconds = 30 * 60;            // RFC 3501 5.4 autologout
};

struct SmtpLimits {
  uint64_t maxMessageSize = 50ull * 1024 * 1024;  // SIZE
  uint32_t maxRecipients = 100;
  // Outbox retry schedule for transient relay failures: the first retry waits
  // retryInitialSeconds, each later one twice as long (with jitter), capped
  // at retryMaxSeconds.
  uint32_t retryInitialSeconds = 60;
  uint32_t retryMaxSeconds = 3600;
};

struct TlsFiles {
  std::string cert;  // empty: the generated self-signed identity
  std::string key;
};

// How the outbox relays an account's mail upstream ("smtp" in an account).
enum class RelaySecurity { StartTls, Tls, None };
enum class RelayAuth { Plain, Login, Xoauth2, None };

// "tls", "starttls", "none": the config file's words.
const char* relaySecurityName(RelaySecurity security);

// The connection fields an SMTP relay and an IMAP upstream share: one struct,
// one reader (readConnection in config.cc), one comparison.
struct UpstreamConnection {
  std::string host;
  uint16_t port = 0;
  RelaySecurity security = RelaySecurity::Tls;
  std::string username;         // default: the account address
  Secret password;              // or the OAuth / XOAUTH2 token; never logged
  std::string passwordCommand;  // run through /bin/sh; its first output line is the secret
  std::string caFile;           // trust these CAs instead of the system store
  std::string pinSha256;        // accept exactly this leaf certificate
  bool haveSecret() const { return !password.empty() || !passwordCommand.empty(); }
  bool operator==(const UpstreamConnection& o) const {  // compares the secret too
    return host == o.host && port == o.port && security == o.security && username == o.username &&
           password.reveal() == o.password.reveal() && passwordCommand == o.passwordCommand &&
           caFile == o.caFile && pinSha256 == o.pinSha256;
  }
};

struct RelayConfig : UpstreamConnection {
  RelayConfig() {
    port = 587;  // default: 587 for starttls/none, 465 for tls
    security = RelaySecurity::StartTls;
  }
  RelayAuth auth = RelayAuth::Plain;  // default: plain, or none without credentials
  std::string ehlo = "localhost";
  uint32_t maxConnections = 4;  // parallel upstream connections while the outbox holds several due messages
  bool operator==(const RelayConfig&) const = default;
};

// How an account syncs with its provider's IMAP server ("imap" in an account).
enum class ImapAuth { Plain, Login, Xoauth2, OAuthBearer };
// Full: every body is downloaded with the initial sync (and bodies missing
// from an earlier on_demand time are filled in). OnDemand: messages are
// synced with their header only; a body is fetched when a local client first
// asks for it, then kept (README, "bodies").
enum class BodyPolicy { Full, OnDemand };

struct ImapUpstreamConfig : UpstreamConnection {
  ImapUpstreamConfig() {
    port = 993;  // 143 when security is starttls or none
    security = RelaySecurity::Tls;  // tls | starttls | none, never a silent fallback
  }
  ImapAuth auth = ImapAuth::Plain;
  std::vector<std::string> mailboxes;          // upstream names to sync; empty = all
  std::vector<std::string> idleMailboxes = {"INBOX"};
  uint32_t pollSeconds = 300;
  BodyPolicy bodies = BodyPolicy::Full;
  bool operator==(const ImapUpstreamConfig&) const = default;
};

// Where a copy of submitted mail goes: nowhere (the provider keeps one) or
// the account's local Sent mailbox.
enum class SentCopy { None, Sent };

struct AccountConfig {
  std::string name;     // stable identifier: [a-z0-9][a-z0-9._-]*, unique
  std::string address;  // the account's primary e-mail address; also its local username
  std::vector<std::string> aliases;  // further addresses it may send from
  std::optional<RelayConfig> relay;  // absent: a local account (mail to its own addresses stays local)
  std::optional<ImapUpstreamConfig> imap;  // absent: no upstream mailbox sync
  // Default: Sent for every account. A provider that files sent mail itself
  // (Gmail, Outlook.com) wants "none", or the copy appears twice once synced.
  SentCopy sentCopy = SentCopy::Sent;
  uint64_t retryMaxAgeSeconds = 2 * 86400;  // then a transient failure bounces
  bool operator==(const AccountConfig&) const = default;
};

struct Config {
  std::string source;  // file path, or "(embedded default)"
  ListenAddress api{"127.0.0.1", 8025};
  EndpointConfig imap;  // defaults: 127.0.0.1 + ::1, ports 1143 / 1993
  EndpointConfig smtp;  // defaults: 127.0.0.1 + ::1, ports 1025 / 1465
  ImapLimits imapLimits;
  SmtpLimits smtpLimits;
  TlsFiles tls;
  LogLevel logLevel = LogLevel::Info;
  std::vector<AccountConfig> accounts;
};

// Two accounts may not share an address; addresses compare ignoring ASCII case.
bool sameAddress(std::string_view a, std::string_view b);

// The configuration used when no config file exists: one local account that
// needs no upstream, so a fresh install works offline.
Config embeddedDefaultConfig();

// Parses and validates `text`; `source` names the file in error messages.
Result<Config> parseConfig(std::string_view text, std::string_view source);

// One account object as the REST API receives it (POST/PATCH /v1/accounts),
// validated by the same code as an entry of "accounts" in the file. Errors
// name the key path without a file ("imap.host: is required"). Uniqueness
// against the other accounts is the caller's to check.
Result<AccountConfig> parseAccount(std::string_view text);

// Reads and parses a file. A missing file is ErrorKind::NotFound.
Result<Config> loadConfigFile(const std::filesystem::path& path);

}  // namespace mb
