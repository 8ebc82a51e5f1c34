// Daemon start-up order, signal handling, config reload and clean shutdown.
#include "daemon/daemon.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>

#include "daemon/auth/authenticator.h"
#include "daemon/connectors/upstream_imap.h"
#include "daemon/sync/sync_engine.h"
#include "daemon/store/credentials.h"
#include "daemon/store/state_lock.h"
#include "daemon/store/store.h"
#include "daemon/tls/self_signed.h"
#include "daemon/util/fs.h"
#include "mailbridge_version.h"

namespace mb {
namespace {

// SIGTERM must end the process within 5 s; past this the loop is stopped even
// if some handle has not finished closing.
constexpr uint64_t kShutdownGraceMs = 4000;

Result<Config> loadConfig(const DaemonOptions& options) {
  auto cfg = loadConfigFile(options.configPath);
  if (!cfg && cfg.error().kind == ErrorKind::NotFound && !options.configRequired) return embeddedDefaultConfig();
  return cfg;
}

// The API token: generated once into <state dir>/api-token (0600).
Result<Secret> ensureApiToken(const std::filesystem::path& stateDir) {
  auto path = stateDir / "api-token";
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    auto text = readFile(path);
    if (!text) return std::unexpected(text.error());
    std::string token = *text;
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (token.size() < 32) return fail(ErrorKind::Corrupt, path.string() + ": token is too short (delete the file to make a new one)");
    return Secret(std::move(token));
  }
  std::string token = randomHex(32);
  if (auto s = writeFileAtomic(path, token + "\n", 0600); !s) return std::unexpected(s.error());
  logInfo("api.token_created").kv("path", path.string());
  return Secret(std::move(token));
}

}  // namespace

void Daemon::LoopDeleter::operator()(uv_loop_t* loop) const {
  // Close whatever is left (handles of aborted start-ups) so the loop can close.
  uv_walk(
      loop, [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) uv_close(h, nullptr);
      },
      nullptr);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  delete loop;
}

Daemon::Daemon(DaemonOptions options) : options_(std::move(options)), loop_(new uv_loop_t) {
  uv_loop_init(loop_.get());
  started_ = std::chrono::steady_clock::now();
}

Daemon::~Daemon() {
  // A start-up that failed after open() (e.g. a port in use) never ran the loop.
  closeSignals();
  uv_run(loop(), UV_RUN_NOWAIT);
  engines_.clear();
  commands_.reset();
  authenticator_.reset();
  store_.reset();  // closes the database before the lock is released
  lock_.reset();
}

Result<std::unique_ptr<Daemon>> Daemon::open(const DaemonOptions& options) {
  auto config = loadConfig(options);
  if (!config) return std::unexpected(config.error());
  setLogLevel(config->logLevel);

  std::unique_ptr<Daemon> d(new Daemon(options));
  d->config_ = std::move(*config);

  auto lock = store::StateDirLock::acquire(options.stateDir);
  if (!lock) return std::unexpected(lock.error());
  d->lock_ = std::make_unique<store::StateDirLock>(std::move(*lock));

  auto st = store::Store::open(options.stateDir);
  if (!st) return std::unexpected(st.error());
  d->store_ = std::move(*st);

  auto cert = tls::ensureSelfSignedCert((options.stateDir / "tls").string());
  if (!cert) return std::unexpected(cert.error());
  d->certPath_ = cert->certPath;
  d->keyPath_ = cert->keyPath;

  auto token = ensureApiToken(options.stateDir);
  if (!token) return std::unexpected(token.error());
  d->apiToken_ = std::move(*token);

  if (auto s = d->applyAccounts(d->config_); !s) return std::unexpected(s.error());
  d->commands_ = std::make_unique<CommandQueue>(d->loop());
  d->authenticator_ = std::make_unique<auth::Authenticator>(d->loop(), *d->store_);
  d->reconcileSync(d->config_, false);
  d->publishStatus();
  d->greetNewAccounts();
  logInfo("daemon.opened")
      .kv("version", MAILBRIDGE_VERSION)
      .kv("config", d->config_.source)
      .kv("state_dir", options.stateDir.string());
  d->installSignals();
  return d;
}

Status Daemon::applyAccounts(const Config& config) {
  auto existing = store_->listAccounts();
  if (!existing) return std::unexpected(existing.error());
  std::set<std::string> wanted;
  for (const auto& a : config.accounts) {
    wanted.insert(a.name);
    auto id = store_->ensureAccount(a.name, a.address, store::AccountSource::Config);
    if (!id) return std::unexpected(id.error());
  }
  // Accounts that came from the config and left it are removed; accounts
  // created through the API are not the config's to remove.
  for (const auto& row : *existing) {
    if (row.source != store::AccountSource::Config || wanted.count(row.name)) continue;
    if (auto s = store_->removeAccount(row.id); !s) return s;
    logInfo("account.removed").kv("account", row.name).kv("reason", "no longer in config");
  }
  return {};
}

void Daemon::greetNewAccounts() {
  // Someone is watching the terminal (the quick start): give each account
  // without a local password one, on stdout. Never into the log, and not when
  // stdout is a journal or a file.
  if (!::isatty(STDOUT_FILENO)) return;
  auto rows = store_->listAccounts();
  if (!rows) return;
  for (const auto& row : *rows) {
    if (row.localUsername) continue;
    auto password = authenticator_->issuePassword(row.id, row.address);
    if (!password) continue;
    std::printf(
        "account %s: local login username %s password %s\n"
        "  (shown once; a new one: curl -X POST -H \"Authorization: Bearer $(cat %s)\" "
        "http://%s/v1/accounts/%lld/password)\n",
        row.name.c_str(), row.address.c_str(), password->reveal().c_str(),
        (options_.stateDir / "api-token").c_str(), config_.api.toString().c_str(), static_cast<long long>(row.id));
  }
  std::fflush(stdout);
  publishStatus();
}

Result<std::string> Daemon::issueLocalPassword(int64_t accountId) {
  auto rows = store_->listAccounts();
  if (!rows) return std::unexpected(rows.error());
  for (const auto& row : *rows) {
    if (row.id != accountId) continue;
    auto password = authenticator_->issuePassword(row.id, row.address);
    if (!password) return std::unexpected(password.error());
    publishStatus();
    nlohmann::json body{{"username", row.address}, {"password", password->reveal()}};
    return body.dump();
  }
  return fail(ErrorKind::NotFound, "no account with id " + std::to_string(accountId));
}

void Daemon::reconcileSync(const Config& config, bool stopOnly) {
  std::map<std::string, const AccountConfig*> wanted;
  for (const auto& a : config.accounts)
    if (a.imap) wanted[a.name] = &a;
  for (auto it = engines_.begin(); it != engines_.end();) {
    auto w = wanted.find(it->first);
    if (w != wanted.end() && it->second->config() == *w->second->imap) {
      ++it;
      continue;
    }
    logInfo("sync.stopped").kv("account", it->first);
    it = engines_.erase(it);
  }
  if (stopOnly) return;
  for (const auto& [name, account] : wanted) {
    if (engines_.count(name)) continue;
    auto row = store_->findAccount(name);
    if (!row || !*row) continue;
    const AccountConfig acct = *account;
    uv_loop_t* loop = loop_.get();
    auto engine = std::make_unique<sync::SyncEngine>(
        loop, *store_, (*row)->id, acct,
        [loop, acct] {
          return std::make_unique<connectors::UpstreamImap>(loop, acct.name, acct.address, *acct.imap);
        },
        [this] { publishStatus(); });
    engine->start();
    engines_[name] = std::move(engine);
  }
  publishStatus();
}

void Daemon::publishStatus() {
  auto snap = std::make_shared<StatusSnapshot>();
  snap->version = MAILBRIDGE_VERSION;
  snap->started = started_;
  snap->configSource = config_.source;
  snap->stateDir = options_.stateDir.string();
  snap->listeners = listeners_;
  if (auto rows = store_->listAccounts()) {
    for (const auto& row : *rows) {
      AccountStatus a{row.id, row.name, row.address, row.localUsername.value_or(""), "local", "ready", std::nullopt};
      if (auto e = engines_.find(row.name); e != engines_.end()) {
        a.kind = "imap";
        a.sync = e->second->status();
        a.state = a.sync->state;
      }
      snap->accounts.push_back(std::move(a));
    }
  } else {
    logError("status.accounts_unreadable").kv("error", rows.error().message);
  }
  status_.publish(std::move(snap));
}

Status Daemon::addListener(ListenerStatus listener) {
  logInfo("listener.ready").kv("name", listener.name).kv("addr", listener.address).kv("tls", listener.tls);
  listeners_.push_back(std::move(listener));
  publishStatus();
  // Lets scripts and tests find ports chosen with ":0".
  nlohmann::json doc = nlohmann::json::object();
  for (const auto& l : listeners_) doc[l.name] = l.address;
  return writeFileAtomic(options_.stateDir / "listeners.json", doc.dump() + "\n", 0644);
}

Status Daemon::reload() {
  auto cfg = loadConfig(options_);
  if (!cfg) {
    logError("config.reload_failed").kv("error", cfg.error().message);
    return std::unexpected(cfg.error());
  }
  if (!(cfg->api == config_.api))
    logWarn("config.reload_partial").kv("key", "api.listen").kv("note", "takes effect after a restart");
  setLogLevel(cfg->logLevel);
  reconcileSync(*cfg, true);  // no engine may outlive its account's rows
  if (auto s = applyAccounts(*cfg); !s) {
    logError("config.reload_failed").kv("error", s.error().message);
    return s;
  }
  cfg->api = config_.api;
  config_ = std::move(*cfg);
  reconcileSync(config_, false);
  publishStatus();
  logInfo("config.reloaded").kv("config", config_.source).kv("accounts", config_.accounts.size());
  return {};
}

void Daemon::installSignals() {
  // Installed before any listener is announced, so a SIGTERM that arrives as
  // soon as a port is visible is a clean stop, not the default death.
  std::signal(SIGPIPE, SIG_IGN);
  for (int signum : {SIGINT, SIGTERM, SIGHUP}) {
    auto* h = new uv_signal_t;
    uv_signal_init(loop(), h);
    h->data = this;
    uv_signal_start(
        h, [](uv_signal_t* sig, int num) {
          auto* self = static_cast<Daemon*>(sig->data);
          if (num == SIGHUP) {
            (void)self->reload();
            return;
          }
          self->beginShutdown(num == SIGTERM ? "SIGTERM" : "SIGINT");
        },
        signum);
    signals_.push_back(h);
  }
}

void Daemon::closeSignals() {
  for (uv_signal_t* s : signals_) uv_close(reinterpret_cast<uv_handle_t*>(s), [](uv_handle_t* h) {
    delete reinterpret_cast<uv_signal_t*>(h);
  });
  signals_.clear();
}

void Daemon::beginShutdown(const char* why) {
  if (shuttingDown_) return;
  shuttingDown_ = true;
  logInfo("daemon.stopping").kv("reason", why);
  closeSignals();
  engines_.clear();
  commands_->close();
  if (onShutdown_) onShutdown_();

  auto* grace = new uv_timer_t;
  grace_ = grace;
  uv_timer_init(loop(), grace);
  uv_timer_start(
      grace, [](uv_timer_t* t) {
        logWarn("daemon.stop_forced").kv("after_ms", kShutdownGraceMs);
        uv_stop(t->loop);
      },
      kShutdownGraceMs, 0);
  // The grace timer alone must not keep the loop alive.
  uv_unref(reinterpret_cast<uv_handle_t*>(grace));
}

int Daemon::run(std::function<void()> onShutdown) {
  onShutdown_ = std::move(onShutdown);
  logInfo("daemon.running").kv("pid", static_cast<int64_t>(::getpid()));
  uv_run(loop(), UV_RUN_DEFAULT);
  if (grace_) {
    uv_close(reinterpret_cast<uv_handle_t*>(grace_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    grace_ = nullptr;
    uv_run(loop(), UV_RUN_NOWAIT);
  }
  store_.reset();
  logInfo("daemon.stopped");
  return 0;
}

}  // namespace mb
