// Daemon start-up order, signal handling, config reload and clean shutdown.
#include "daemon/daemon.h"

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "daemon/auth/authenticator.h"
#include "daemon/connectors/upstream_imap.h"
#include "daemon/sync/sync_engine.h"
#include "daemon/config/vault.h"
#include "daemon/store/api_accounts.h"
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

// The upstream objects of an account body whose "password" is a secret.
constexpr const char* kSecretObjects[] = {"imap", "smtp"};

// Moves the upstream passwords out of an account document (they are sealed
// apart from the settings), after the rules only API accounts have.
Result<store::SecretFields> takeSecrets(nlohmann::json& doc) {
  store::SecretFields secrets;
  for (const char* key : kSecretObjects) {
    auto it = doc.find(key);
    if (it == doc.end() || !it->is_object()) continue;
    // A command the daemon would run through /bin/sh is not something a REST
    // client may configure; it belongs in the config file.
    if (it->contains("password_command"))
      return fail(ErrorKind::Config, std::string(key) + ".password_command: not accepted through the API (use password, or the config file)");
    if (auto pw = it->find("password"); pw != it->end()) {
      secrets.emplace_back(std::string(key) + ".password", Secret(pw->get<std::string>()));
      it->erase(pw);
    }
  }
  return secrets;
}

// The stored settings with the opened secrets put back: the document the
// account was created from (after its patches).
nlohmann::json accountDocument(const store::ApiAccountRecord& rec) {
  auto doc = nlohmann::json::parse(rec.settings, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) doc = nlohmann::json::object();
  for (const auto& [field, secret] : rec.secrets) {
    auto dot = field.find('.');
    if (dot == std::string::npos) continue;
    std::string object = field.substr(0, dot);
    if (doc.contains(object) && doc[object].is_object()) doc[object][field.substr(dot + 1)] = secret.reveal();
  }
  return doc;
}

// An API account as the account parser sees it; a stored account that no
// longer parses is Corrupt (never silently dropped: that would delete it).
Result<AccountConfig> apiAccountConfig(const store::ApiAccountRecord& rec) {
  auto doc = accountDocument(rec);
  auto parsed = parseAccount(doc.dump());
  doc.clear();
  if (!parsed)
    return fail(ErrorKind::Corrupt, "account " + rec.name + " (created through the API) has invalid stored settings: " +
                                        parsed.error().message);
  return parsed;
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
  vault_.reset();
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

  auto vault = Vault::open(options.stateDir);
  if (!vault) return std::unexpected(vault.error());
  d->vault_ = std::make_unique<Vault>(std::move(*vault));
  auto records = store::loadApiAccounts(*d->store_, *d->vault_);
  if (!records) return std::unexpected(records.error());
  std::vector<AccountConfig> api;
  for (const auto& rec : *records) {
    auto a = apiAccountConfig(rec);
    if (!a) return std::unexpected(a.error());
    api.push_back(std::move(*a));
  }
  if (auto s = d->applyAccounts(d->config_, std::move(api)); !s) return std::unexpected(s.error());
  d->commands_ = std::make_unique<CommandQueue>(d->loop());
  d->authenticator_ = std::make_unique<auth::Authenticator>(d->loop(), *d->store_);
  d->publishStatus();
  d->greetNewAccounts();
  logInfo("daemon.opened")
      .kv("version", MAILBRIDGE_VERSION)
      .kv("config", d->config_.source)
      .kv("state_dir", options.stateDir.string());
  d->installSignals();
  return d;
}

Status Daemon::applyAccounts(Config next, std::vector<AccountConfig> api) {
  // File and API accounts share one namespace of names and addresses.
  for (const auto& a : api) {
    for (const auto& f : next.accounts) {
      if (a.name == f.name)
        return fail(ErrorKind::Conflict, "account \"" + a.name +
                                             "\" is in the config file and was also created through the API; "
                                             "rename one of them");
      if (sameAddress(a.address, f.address))
        return fail(ErrorKind::Conflict, "address \"" + a.address + "\" is used by account \"" + f.name +
                                             "\" in the config file and by account \"" + a.name + "\" from the API");
    }
  }
  Config merged = next;
  merged.accounts.insert(merged.accounts.end(), api.begin(), api.end());
  reconcileSync(merged, /*stopOnly=*/true);  // no engine may outlive its account's rows
  // On a failure from here on, the engines of the accounts still standing run again.
  auto failed = [this](const Error& e) -> Status {
    reconcileSync(config_, /*stopOnly=*/false);
    return std::unexpected(e);
  };
  auto existing = store_->listAccounts();
  if (!existing) return failed(existing.error());
  std::set<std::string> wantedFile, wantedApi;
  for (const auto& a : next.accounts) {
    wantedFile.insert(a.name);
    auto id = store_->ensureAccount(a.name, a.address, store::AccountSource::Config);
    if (!id) return failed(id.error());
  }
  for (const auto& a : api) wantedApi.insert(a.name);
  // Rows of accounts that left their set go, with everything they own. The
  // file never removes an API account, nor the API a file account.
  for (const auto& row : *existing) {
    bool fromApi = row.source == store::AccountSource::Api;
    if ((fromApi ? wantedApi : wantedFile).count(row.name)) continue;
    if (auto s = store_->removeAccount(row.id); !s) return failed(s.error());
    logInfo("account.removed").kv("account", row.name).kv("reason", fromApi ? "deleted through the API" : "no longer in config");
  }
  config_ = std::move(merged);
  apiAccounts_ = std::move(api);
  reconcileSync(config_, /*stopOnly=*/false);  // publishes the status
  return {};
}

Config Daemon::fileConfig() const {
  Config c = config_;
  c.accounts.resize(config_.accounts.size() - apiAccounts_.size());
  return c;
}

Result<std::string> Daemon::createAccount(std::string_view body) {
  auto account = parseAccount(body);
  if (!account) return std::unexpected(account.error());
  auto doc = nlohmann::json::parse(body);  // valid: parseAccount read it
  auto secrets = takeSecrets(doc);
  if (!secrets) return std::unexpected(secrets.error());
  auto id = store::createApiAccount(*store_, *vault_, account->name, account->address, doc.dump(), *secrets);
  if (!id) return std::unexpected(id.error());
  auto api = apiAccounts_;
  api.push_back(*account);
  if (auto s = applyAccounts(fileConfig(), std::move(api)); !s) {
    (void)store_->removeAccount(*id);
    return std::unexpected(s.error());
  }
  logInfo("account.created").kv("account", account->name).kv("id", *id).kv("via", "api");
  // The local password comes next (setLocalPassword), hashed on the REST
  // thread while this account's first sync already runs.
  publishStatus();
  nlohmann::json out{{"id", *id}, {"local", {{"username", account->address}}}};
  return out.dump();
}

Result<std::string> Daemon::updateAccount(int64_t accountId, std::string_view patchText) {
  auto records = store::loadApiAccounts(*store_, *vault_);
  if (!records) return std::unexpected(records.error());
  auto rec = std::find_if(records->begin(), records->end(), [&](const auto& r) { return r.id == accountId; });
  if (rec == records->end()) {
    auto rows = store_->listAccounts();
    if (!rows) return std::unexpected(rows.error());
    for (const auto& row : *rows)
      if (row.id == accountId)
        return fail(ErrorKind::Conflict, "account " + row.name + " comes from the config file: change it there");
    return fail(ErrorKind::NotFound, "no account with id " + std::to_string(accountId));
  }
  auto patch = nlohmann::json::parse(patchText, nullptr, /*allow_exceptions=*/false);
  if (patch.is_discarded()) return fail(ErrorKind::Config, "(top level): invalid JSON");
  if (!patch.is_object()) return fail(ErrorKind::Config, "(top level): expected an object");
  auto doc = accountDocument(*rec);
  doc.merge_patch(patch);
  auto account = parseAccount(doc.dump());
  if (!account) return std::unexpected(account.error());
  auto secrets = takeSecrets(doc);
  if (!secrets) return std::unexpected(secrets.error());
  if (auto s = store::updateApiAccount(*store_, *vault_, accountId, account->name, account->address, doc.dump(),
                                       *secrets);
      !s)
    return std::unexpected(s.error());
  auto api = apiAccounts_;
  for (auto& a : api)
    if (a.name == rec->name) a = *account;
  if (auto s = applyAccounts(fileConfig(), std::move(api)); !s) return std::unexpected(s.error());
  logInfo("account.changed").kv("account", account->name).kv("id", accountId).kv("via", "api");
  return nlohmann::json{{"id", accountId}}.dump();
}

Result<std::string> Daemon::deleteAccount(int64_t accountId) {
  auto rows = store_->listAccounts();
  if (!rows) return std::unexpected(rows.error());
  auto row = std::find_if(rows->begin(), rows->end(), [&](const auto& r) { return r.id == accountId; });
  if (row == rows->end()) return fail(ErrorKind::NotFound, "no account with id " + std::to_string(accountId));
  if (row->source != store::AccountSource::Api)
    return fail(ErrorKind::Conflict, "account " + row->name + " comes from the config file: remove it there");
  auto api = apiAccounts_;
  std::erase_if(api, [&](const AccountConfig& a) { return a.name == row->name; });
  if (auto s = applyAccounts(fileConfig(), std::move(api)); !s) return std::unexpected(s.error());
  return nlohmann::json{{"deleted", accountId}}.dump();
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

Result<std::string> Daemon::setLocalPassword(int64_t accountId, const std::string& hash) {
  auto rows = store_->listAccounts();
  if (!rows) return std::unexpected(rows.error());
  for (const auto& row : *rows) {
    if (row.id != accountId) continue;
    if (auto s = authenticator_->setPasswordHash(row.id, row.address, hash); !s) return std::unexpected(s.error());
    publishStatus();
    return nlohmann::json{{"username", row.address}}.dump();
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
    // Out of the map before it goes: its BodyFetcher fails the bodies local
    // sessions wait for, and a session may ask again (fetchBodies) at once.
    auto dying = std::move(it->second);
    it = engines_.erase(it);
    dying.reset();
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

void Daemon::stopEngines() {
  // Moved out first, for the reason in reconcileSync.
  auto dying = std::move(engines_);
  engines_.clear();
  dying.clear();
}

void Daemon::fetchBodies(int64_t accountId, int64_t mailboxId, std::vector<uint32_t> uids,
                         std::weak_ptr<const void> waiter, std::function<void(Status)> done) {
  for (auto& [name, engine] : engines_)
    if (engine->accountId() == accountId)
      return engine->fetchBodies(mailboxId, std::move(uids), std::move(waiter), std::move(done));
  done(fail(ErrorKind::Unavailable, "the account is not synced with a provider"));
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
      AccountStatus a;
      a.id = row.id;
      a.name = row.name;
      a.address = row.address;
      a.localUsername = row.localUsername.value_or("");
      a.kind = "local";
      a.state = "ready";
      a.source = store::accountSourceName(row.source);
      for (const auto& c : config_.accounts) {
        if (c.name != row.name) continue;
        if (c.imap) a.imap = UpstreamSummary{c.imap->host, c.imap->port, relaySecurityName(c.imap->security), c.imap->username};
        if (c.relay) a.smtp = UpstreamSummary{c.relay->host, c.relay->port, relaySecurityName(c.relay->security), c.relay->username};
      }
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
  cfg->api = config_.api;
  size_t fileAccounts = cfg->accounts.size();
  if (auto s = applyAccounts(std::move(*cfg), apiAccounts_); !s) {
    logError("config.reload_failed").kv("error", s.error().message);
    return s;
  }
  logInfo("config.reloaded").kv("config", config_.source).kv("accounts", fileAccounts);
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
  stopEngines();
  commands_->close();
  if (onShutdown_) onShutdown_();

  auto* grace = new uv_timer_t;
  grace_ = grace;
  uv_timer_init(loop(), grace);
  uv_timer_start(
      grace, [](uv_timer_t*) {
        // What still runs after the grace (a peer that will not close, a
        // batch still on the thread pool) is abandoned the way kill -9
        // abandons it: the store is crash-safe by design (and tested so),
        // while destroying it under a pool thread still writing a body or
        // committing a batch would not be.
        logWarn("daemon.stop_forced").kv("after_ms", kShutdownGraceMs);
        std::_Exit(0);
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
  // The store stays open until ~Daemon: main's servers (destroyed after run()
  // returns, before the Daemon) unsubscribe from its ChangeHub as they go.
  logInfo("daemon.stopped");
  return 0;
}

}  // namespace mb
