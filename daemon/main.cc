// mailbridged: the only place that wires real sockets, clocks and files
// together. Parses options, opens the daemon, starts the REST API, runs.
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "api/rest_server.h"
#include "daemon/auth/authenticator.h"
#include "daemon/auth/password.h"
#include "daemon/config/paths.h"
#include "daemon/daemon.h"
#include "daemon/imap/imap_server.h"
#include "daemon/smtp/outbox_relay.h"
#include "daemon/smtp/smtp_server.h"
#include "mailbridge_version.h"

namespace {

// Exit codes: 0 ok, 1 runtime failure (store, ports, TLS), 2 bad config or usage.
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

void printHelp(const mb::DefaultPaths& defaults) {
  std::printf(
      "Usage: mailbridged [OPTIONS]\n"
      "A local mail bridge: IMAP and SMTP on localhost, synced with your provider.\n\n"
      "  --config FILE      configuration file (default: %s;\n"
      "                     when that file does not exist, a local account is used)\n"
      "  --state-dir DIR    database, messages, certificate, API token (default: %s)\n"
      "  --check-config     validate the configuration and exit (0 valid, 2 invalid)\n"
      "  --version          print the version and exit\n"
      "  --help             this text\n\n"
      "Signals: SIGTERM/SIGINT stop cleanly, SIGHUP reloads the configuration.\n",
      defaults.config.c_str(), defaults.stateDir.c_str());
}

int usageError(const std::string& message) {
  std::fprintf(stderr, "mailbridged: %s (see --help)\n", message.c_str());
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  const mb::DefaultPaths defaults = mb::defaultPaths();
  mb::DaemonOptions options{defaults.config, false, defaults.stateDir};
  bool checkOnly = false;

  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (arg == "--help" || arg == "-h") {
      printHelp(defaults);
      return 0;
    } else if (arg == "--version") {
      std::printf("mailbridged %s\n", MAILBRIDGE_VERSION);
      return 0;
    } else if (arg == "--check-config") {
      checkOnly = true;
    } else if (arg == "--config") {
      const char* v = value();
      if (!v) return usageError("--config needs a file");
      options.configPath = v;
      options.configRequired = true;
    } else if (arg == "--state-dir") {
      const char* v = value();
      if (!v) return usageError("--state-dir needs a directory");
      options.stateDir = v;
    } else {
      return usageError("unknown option " + std::string(arg));
    }
  }

  if (checkOnly) {
    auto cfg = mb::loadConfigFile(options.configPath);
    if (!cfg && cfg.error().kind == mb::ErrorKind::NotFound && !options.configRequired) {
      std::printf("%s: not found; the embedded default configuration would be used\n", options.configPath.c_str());
      return 0;
    }
    if (!cfg) {
      std::fprintf(stderr, "mailbridged: %s\n", cfg.error().message.c_str());
      return kExitUsage;
    }
    std::printf("%s: ok (%zu account%s)\n", cfg->source.c_str(), cfg->accounts.size(),
                cfg->accounts.size() == 1 ? "" : "s");
    return 0;
  }

  auto daemon = mb::Daemon::open(options);
  if (!daemon) {
    std::fprintf(stderr, "mailbridged: %s\n", daemon.error().message.c_str());
    return daemon.error().kind == mb::ErrorKind::Config ? kExitUsage : kExitFailure;
  }
  mb::Daemon& d = **daemon;

  // SMTP submission and its outbox relay (destroyed before the Daemon and its loop).
  mb::smtp::OutboxRelay relay(d.loop(), d.config(), d.store());
  mb::smtp::SmtpServer smtp(mb::smtp::SmtpServerDeps{
      d.loop(), &d.config(), &d.store(), &d.authenticator(), d.certPath().string(), d.keyPath().string(),
      [&relay] { relay.wake(); }, [&d](mb::ListenerStatus l) { return d.addListener(std::move(l)); }});
  if (auto s = smtp.start(); !s) {
    std::fprintf(stderr, "mailbridged: %s\n", s.error().message.c_str());
    return kExitFailure;
  }
  relay.start();

  // Local IMAP (destroyed before the Daemon and its loop).
  mb::imap::ImapServer imap(mb::imap::ImapServerDeps{
      d.loop(), &d.config(), &d.store(), &d.authenticator(), d.certPath().string(), d.keyPath().string(),
      [&d](mb::ListenerStatus l) { return d.addListener(std::move(l)); },
      [&d](int64_t account, int64_t mailbox, std::vector<uint32_t> uids, std::weak_ptr<const void> waiter,
           std::function<void(mb::Status)> done) {
        d.fetchBodies(account, mailbox, std::move(uids), std::move(waiter), std::move(done));
      }});
  if (auto s = imap.start(); !s) {
    std::fprintf(stderr, "mailbridged: %s\n", s.error().message.c_str());
    return kExitFailure;
  }

  mb::ApiCommands commands;
  commands.reload = [&d] { return d.reload(); };
  // Called on the HTTP thread: only the (immutable) KDF parameters are shared.
  commands.newPassword = [kdf = d.authenticator().kdf()]() -> mb::Result<std::pair<std::string, std::string>> {
    mb::Secret password = mb::auth::generatePassword();
    auto hash = mb::auth::hashPassword(password, kdf);
    if (!hash) return std::unexpected(hash.error());
    return std::pair<std::string, std::string>(password.reveal(), std::move(*hash));
  };
  commands.setPassword = [&d](int64_t id, std::string hash) { return d.setLocalPassword(id, hash); };
  commands.createAccount = [&d](std::string body) { return d.createAccount(body); };
  commands.updateAccount = [&d](int64_t id, std::string patch) { return d.updateAccount(id, patch); };
  commands.deleteAccount = [&d](int64_t id) { return d.deleteAccount(id); };
  commands.outboxList = [&relay] { return relay.listJson(); };
  commands.outboxRetry = [&relay](int64_t id) { return relay.retry(id); };
  commands.outboxDelete = [&relay](int64_t id) { return relay.remove(id); };
  mb::RestServer api(d.status(), d.commands(), std::move(commands), d.apiToken());
  auto bound = api.start(d.config().api);
  if (!bound) {
    std::fprintf(stderr, "mailbridged: %s\n", bound.error().message.c_str());
    return kExitFailure;
  }
  if (auto s = d.addListener({"api", bound->toString(), false}); !s) {
    std::fprintf(stderr, "mailbridged: %s\n", s.error().message.c_str());
    api.stop();
    return kExitFailure;
  }
  return d.run([&api, &smtp, &relay, &imap] {
    api.stop();
    smtp.shutdown();
    imap.shutdown();
    relay.shutdown();
  });
}
