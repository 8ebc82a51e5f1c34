// The per-account sync engine (see sync_engine.h).
#include "daemon/sync/sync_engine.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <nlohmann/json.hpp>

#include "daemon/log/log.h"
#include "daemon/store/mailbox_ops.h"
#include "daemon/store/message_ops.h"

namespace mb::sync {
using store::Db;
namespace {

// Downloaded messages go to the store in batches of this many messages (or
// bytes): each batch is prepared on the thread pool (analysis, hash, durable
// blob), then its rows commit on the loop in one transaction.
constexpr size_t kBatchMessages = 200;
constexpr uint64_t kBatchBytes = 16ull << 20;
// At most this many batches are on the pool at once: the loop thread, which
// reads the upstream, must not have to share the (two) cores with more.
constexpr size_t kMaxBatchesOnPool = 2;
// Reading from the upstream pauses while this much is downloaded but not
// committed yet (the bound on the pipeline's memory).
constexpr uint64_t kMaxQueuedBytes = 96ull << 20;
// A watcher's news is collected this long before a sync starts.
constexpr uint64_t kPushDebounceMs = 50;
// Local changes: replayed this soon after they were committed.
constexpr uint64_t kReplayDebounceMs = 20;
// A journal row that keeps failing upstream is dropped after this many tries
// (logged and counted in the status), so one refused change cannot block every
// later one forever; one the upstream refuses for good goes at once.
constexpr int64_t kMaxAttempts = 8;

// An upstream answer no retry can change (RFC 5530 codes, or BAD).
bool isPermanentRefusal(const Error& e) {
  if (e.kind != ErrorKind::Upstream) return false;
  static const char* kCodes[] = {"ALREADYEXISTS", "NONEXISTENT", "CANNOT", "NOPERM", "TOOBIG", "PARSE", "CLIENTBUG", "BADCHARSET"};
  for (const char* c : kCodes)
    if (e.respCode == c) return true;
  return e.message.find(": BAD") != std::string::npos;
}

uint64_t nowMs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

Result<std::vector<LocalMessage>> localMessages(store::Store& store, int64_t mailboxId) {
  auto st = store.db().prepare(
      "SELECT uid, upstream_id, flags, keywords, size, internal_date, message_id, upstream_flags FROM messages "
      "WHERE mailbox_id = ?1 ORDER BY uid");
  if (!st) return propagate(st);
  st->bind(1, mailboxId);
  std::vector<LocalMessage> out;
  auto rows = st->forEachRow([&](store::Stmt& r) {
    LocalMessage m;
    m.uid = static_cast<uint32_t>(r.columnInt64(0));
    std::string up = r.columnText(1);
    if (!up.empty()) m.upstreamUid = static_cast<uint32_t>(std::strtoul(up.c_str(), nullptr, 10));
    m.flags = static_cast<uint32_t>(r.columnInt64(2));
    m.keywords = store::splitKeywords(r.columnText(3));
    std::sort(m.keywords.begin(), m.keywords.end());
    m.size = static_cast<uint64_t>(r.columnInt64(4));
    m.internalDate = r.columnInt64(5);
    m.messageId = r.columnText(6);
    if (auto base = r.columnOptText(7)) {
      FlagState b;
      store::parseFlagWords(store::splitKeywords(*base), b.flags, b.keywords);
      std::sort(b.keywords.begin(), b.keywords.end());
      m.upstreamBase = std::move(b);
    }
    out.push_back(std::move(m));
  });
  if (!rows) return propagate(rows);
  return out;
}

Status setUpstreamIds(store::Store& store, int64_t mailboxId, const std::vector<std::pair<uint32_t, std::optional<uint32_t>>>& ids) {
  auto st = store.db().prepare("UPDATE messages SET upstream_id = ?1 WHERE mailbox_id = ?2 AND uid = ?3");
  if (!st) return propagate(st);
  for (const auto& [local, up] : ids) {
    st->reset();
    std::optional<std::string> v;
    if (up) v = std::to_string(*up);
    if (auto s = st->bind(1, v).bind(2, mailboxId).bind(3, local).run(); !s) return s;
  }
  return {};
}

// messages.upstream_flags for each local UID (nullopt: local and upstream agree).
Status setUpstreamBases(store::Store& store, int64_t mailboxId,
                        const std::vector<std::pair<uint32_t, std::optional<FlagState>>>& bases) {
  auto st = store.db().prepare("UPDATE messages SET upstream_flags = ?1 WHERE mailbox_id = ?2 AND uid = ?3");
  if (!st) return propagate(st);
  for (const auto& [uid, base] : bases) {
    st->reset();
    std::optional<std::string> v;
    if (base) v = store::joinKeywords(store::flagWords(base->flags, base->keywords));
    if (auto s = st->bind(1, v).bind(2, mailboxId).bind(3, uid).run(); !s) return s;
  }
  return {};
}

Status bindMailbox(store::Store& store, int64_t mailboxId, const std::string& upstreamName) {
  auto st = store.db().prepare("UPDATE mailboxes SET upstream_name = ?1 WHERE id = ?2");
  if (!st) return propagate(st);
  return st->bind(1, upstreamName).bind(2, mailboxId).run();
}

Result<int64_t> pendingJournal(store::Store& store, int64_t accountId) {
  auto st = store.db().prepare("SELECT count(*) FROM journal WHERE account_id = ?1");
  if (!st) return propagate(st);
  auto row = st->bind(1, accountId).step();
  if (!row) return propagate(row);
  return st->columnInt64(0);
}

// One indexed count (messages_body_missing): measured 1.6 ms for 18,000
// missing bodies, 14 ms for 180,000 (load 4.9), hence SyncEngine::publish
// runs it only when something may have changed it.
Result<int64_t> missingBodies(store::Store& store, int64_t accountId) {
  auto st = store.db().prepare(
      "SELECT count(*) FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id WHERE b.account_id = ?1 "
      "AND m.body_missing = 1");
  if (!st) return propagate(st);
  auto row = st->bind(1, accountId).step();
  if (!row) return propagate(row);
  return st->columnInt64(0);
}

uint32_t flagBits(const nlohmann::json& names, std::vector<std::string>& keywords) {
  std::vector<std::string> words;
  if (names.is_array())
    for (const auto& n : names)
      if (n.is_string()) words.push_back(n.get<std::string>());
  uint32_t bits = 0;
  store::parseFlagWords(words, bits, keywords);
  return bits;
}

std::vector<uint32_t> jsonUids(const nlohmann::json& j) {
  std::vector<uint32_t> out;
  if (j.is_array())
    for (const auto& v : j)
      if (v.is_number_unsigned()) out.push_back(v.get<uint32_t>());
  return out;
}

std::string jsonString(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

SyncEngine::SyncEngine(uv_loop_t* loop, store::Store& store, int64_t accountId, const AccountConfig& account,
                       ConnectorFactory makeConnector, std::function<void()> onStatus)
    : loop_(loop),
      store_(store),
      accountId_(accountId),
      accountName_(account.name),
      cfg_(*account.imap),
      makeConnector_(std::move(makeConnector)),
      onStatus_(std::move(onStatus)),
      rng_(std::random_device{}()) {
  bodies_ = std::make_unique<BodyFetcher>(loop_, store_, accountName_, makeConnector_);
  status_.bodies = cfg_.bodies == BodyPolicy::OnDemand ? "on_demand" : "full";
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
}

SyncEngine::~SyncEngine() {
  *alive_ = false;
  if (hubSubscription_) store_.changes().unsubscribe(hubSubscription_);
  conn_.reset();
  uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

void SyncEngine::start() {
  hubSubscription_ = store_.changes().subscribe([this](const store::StoreChange& c) { onStoreChange(c); });
  if (auto n = pendingJournal(store_, accountId_)) status_.pendingChanges = static_cast<uint64_t>(*n);
  connect();
}

void SyncEngine::poke() {
  if (connected_) {
    wantFull_ = true;
    kick(0);
  }
}

void SyncEngine::setState(const char* state, std::string error) {
  status_.state = state;
  if (!error.empty()) status_.lastError = std::move(error);
  publish(true);
}

void SyncEngine::publish(bool force) {
  uint64_t now = nowMs();
  if (!force && now - lastPublishMs_ < 100) return;
  lastPublishMs_ = now;
  if (conn_) status_.bytes = conn_->bytesReceived();
  // While a first sync stores batches (unforced publishes) at most once a second.
  if (missingStale_ && (force || now - lastMissingCountMs_ >= 1000)) {
    if (auto n = missingBodies(store_, accountId_)) {
      status_.bodiesMissing = static_cast<uint64_t>(*n);
      missingStale_ = false;
      lastMissingCountMs_ = now;
    }
  }
  status_.bodiesFetchedOnDemand = bodies_->fetchedForClients();
  status_.bodiesFailed = bodies_->failed();
  if (onStatus_) onStatus_();
}

void SyncEngine::connect() {
  busy_ = false;
  connected_ = false;
  watching_ = false;
  folders_.clear();
  todo_.clear();
  status_.nextRetry = 0;
  setState("connecting");
  conn_ = makeConnector_();
  auto alive = alive_;
  conn_->connect([this, alive] {
        if (*alive) onReady();
      },
      [this, alive](const ConnectorFailure& f) {
        if (*alive) onLost(f);
      });
}

void SyncEngine::fetchBodies(int64_t mailboxId, std::vector<uint32_t> uids, std::weak_ptr<const void> waiter,
                             std::function<void(Status)> done) {
  auto alive = alive_;
  bodies_->fetch(mailboxId, std::move(uids), BodyFetcher::Purpose::Client, std::move(waiter),
                 [this, alive, done = std::move(done)](Result<std::vector<uint32_t>> r) {
                   if (*alive) {  // the status counts them before the mail program sees them
                     missingStale_ = true;
                     publish(true);
                   }
                   // The session finds the bodies still missing itself.
                   done(r ? Status{} : Status(std::unexpected(r.error())));
                 });
}

void SyncEngine::fillBodies() {
  if (cfg_.bodies != BodyPolicy::Full || filling_) return;
  auto batch = nextFillIn(store_, accountId_, fillBackoff_, uv_now(loop_), 200);
  if (!batch || batch->uids.empty()) return;
  filling_ = true;
  auto alive = alive_;
  int64_t mailboxId = batch->mailboxId;
  std::vector<uint32_t> asked = batch->uids;
  bodies_->fetch(mailboxId, std::move(batch->uids), BodyFetcher::Purpose::FillIn, alive_,
                 [this, alive, mailboxId, asked](Result<std::vector<uint32_t>> r) {
    if (!*alive) return;
    filling_ = false;
    missingStale_ = true;
    publish(true);
    if (!r) {
      logWarn("sync.bodies_fill_failed").kv("account", accountName_).kv("mailbox_id", mailboxId).kv("error", r.error().message);
      return;
    }
    uint64_t now = uv_now(loop_);
    for (uint32_t u : asked) {
      if (std::binary_search(r->begin(), r->end(), u)) fillBackoff_.failed(mailboxId, u, now);
      else fillBackoff_.settled(mailboxId, u);
    }
    if (!r->empty())
      logWarn("sync.bodies_fill_missing").kv("account", accountName_).kv("mailbox_id", mailboxId).kv("messages", r->size());
    logInfo("sync.bodies_filled").kv("account", accountName_).kv("mailbox_id", mailboxId).kv("messages", asked.size() - r->size());
    fillBodies();
  });
}

void SyncEngine::onReady() {
  connected_ = true;
  bodies_->refuse("");
  status_.lastError.clear();
  wantFull_ = wantReplay_ = true;
  logInfo("sync.connected").kv("account", accountName_);
  cycle();
}

void SyncEngine::onLost(const ConnectorFailure& f) {
  connected_ = false;
  busy_ = false;
  cycleEnding_ = false;
  readPaused_ = false;  // the next connection reads from the start
  uv_timer_stop(timer_);
  // The connector is destroyed on the next loop turn, not inside its callback.
  auto* dying = conn_.release();
  auto* idle = new uv_idle_t;
  idle->data = dying;
  uv_idle_init(loop_, idle);
  uv_idle_start(idle, [](uv_idle_t* h) {
    delete static_cast<Connector*>(h->data);
    uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* x) { delete reinterpret_cast<uv_idle_t*>(x); });
  });
  if (f.kind == ConnectorFailure::Kind::Auth) {
    // Needs the user (a new password or token): no retry storm.
    logWarn("sync.auth_failed").kv("account", accountName_).kv("error", f.message);
    bodies_->refuse("the provider refused the login");
    status_.nextRetry = 0;
    setState("auth_failed", f.message);
    return;
  }
  logWarn("sync.offline").kv("account", accountName_).kv("error", f.message);
  status_.lastError = f.message;
  scheduleRetry();
}

void SyncEngine::scheduleRetry() {
  ++failures_;
  uint64_t delay = retryDelayMs(failures_, rng_);
  status_.nextRetry = store_.now() + static_cast<int64_t>((delay + 999) / 1000);
  setState("offline");
  uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<SyncEngine*>(t->data)->connect(); }, delay, 0);
}

void SyncEngine::kick(uint64_t delayMs) {
  if (!connected_ || busy_) return;
  uv_timer_start(timer_, [](uv_timer_t* t) {
    auto* self = static_cast<SyncEngine*>(t->data);
    if (self->connected_ && !self->busy_) self->cycle();
  }, delayMs, 0);
}

void SyncEngine::onStoreChange(const store::StoreChange& c) {
  if (c.accountId != accountId_) return;
  using Kind = store::StoreChange::Kind;
  if (c.kind == Kind::MessagesAdded || c.kind == Kind::MessagesExpunged || c.kind == Kind::MailboxDeleted)
    missingStale_ = true;  // the next publish counts the missing bodies again
  if (c.origin == this) return;
  // Every local write commits a journal row with its change.
  wantReplay_ = true;
  if (auto n = pendingJournal(store_, accountId_)) status_.pendingChanges = static_cast<uint64_t>(*n);
  publish(true);
  if (connected_ && !busy_) kick(kReplayDebounceMs);
}

SyncEngine::Folder* SyncEngine::folderByName(const std::string& localName) {
  for (auto& f : folders_)
    if (f.localName == localName) return &f;
  return nullptr;
}

// ---- one cycle: list (when full), replay, sync folders

void SyncEngine::cycle() {
  if (!downloads_.empty()) {
    // The last download (of a connection that is gone) still stores what it
    // received: the new cycle must see those rows, or it fetches them again.
    cycleWanted_ = true;
    return;
  }
  busy_ = true;
  cycleEnding_ = false;
  storeError_.reset();
  mailboxError_.reset();
  uv_timer_stop(timer_);
  bool full = wantFull_ || folders_.empty();
  wantFull_ = false;
  cycleStartNs_ = uv_hrtime();
  cycleFull_ = full;
  if (status_.state != std::string("idle") || full) setState("syncing");
  auto alive = alive_;
  if (full) {
    conn_->listFolders([this, alive](Result<std::vector<RemoteFolder>> r) {
      if (*alive) afterList(std::move(r));
    });
    return;
  }
  replay([this] {
    todo_.clear();
    for (size_t i = 0; i < folders_.size(); ++i)
      if (dirty_.count(folders_[i].remote.id)) todo_.push_back(i);
    dirty_.clear();
    status_.mailboxesTotal = static_cast<uint32_t>(todo_.size());
    status_.mailboxesDone = 0;
    syncNextFolder();
  });
}

void SyncEngine::afterList(Result<std::vector<RemoteFolder>> folders) {
  if (!folders) return cycleFailed(folders.error());
  if (auto s = mapFolders(std::move(*folders)); !s) return cycleFailed(s.error());
  replay([this] {
    todo_.clear();
    dirty_.clear();
    // INBOX first: it is what the user waits for.
    for (size_t i = 0; i < folders_.size(); ++i)
      if (folders_[i].localName == "INBOX") todo_.push_back(i);
    for (size_t i = 0; i < folders_.size(); ++i)
      if (folders_[i].localName != "INBOX") todo_.push_back(i);
    status_.mailboxesTotal = static_cast<uint32_t>(todo_.size());
    status_.mailboxesDone = 0;
    status_.messagesTotal = status_.messagesDone = 0;
    syncNextFolder();
  });
}

Status SyncEngine::followRenames(const std::vector<RemoteFolder>& remote) {
  auto boxes = store_.listMailboxes(accountId_);
  if (!boxes) return propagate(boxes);
  std::vector<LocalMailboxRef> locals;
  for (const auto& b : *boxes) locals.push_back({b.name, b.specialUse, b.upstreamName, b.upstreamUidValidity});
  auto renames = findRenames(locals, remote);
  if (renames.empty()) return {};
  std::vector<std::pair<int64_t, size_t>> byId;  // a parent's rename renames its children too
  for (auto [li, ri] : renames) byId.emplace_back((*boxes)[li].id, ri);
  for (auto [id, ri] : byId) {
    const RemoteFolder& r = remote[ri];
    auto now = store_.listMailboxes(accountId_);
    if (!now) return propagate(now);
    std::string from;
    bool clash = false;
    for (const auto& b : *now) {
      if (b.id == id) from = b.name;
      else if (b.name == r.path) clash = true;
    }
    if (from.empty() || clash) continue;  // taken locally: handled as delete + create
    if (from != r.path) {
      if (auto s = store::renameMailboxLocal(store_, accountId_, from, r.path, '/', this, false); !s) return s;
    }
    // Bound to the new name; listed in full once (no bodies: the UIDs are the
    // same), in case the UIDVALIDITY match was a coincidence.
    auto st = store_.db().prepare("UPDATE mailboxes SET upstream_name = ?1, upstream_state = NULL WHERE id = ?2");
    if (!st) return propagate(st);
    if (auto s = st->bind(1, r.id).bind(2, id).run(); !s) return s;
    logInfo("sync.mailbox_renamed_upstream").kv("account", accountName_).kv("from", from).kv("to", r.path);
  }
  return {};
}

Status SyncEngine::mapFolders(std::vector<RemoteFolder> remote) {
  if (cfg_.mailboxes.empty()) {
    std::vector<RemoteFolder> selectable;
    for (const auto& r : remote)
      if (r.selectable) selectable.push_back(r);
    if (auto s = followRenames(selectable); !s) return s;
  }
  auto boxes = store_.listMailboxes(accountId_);
  if (!boxes) return propagate(boxes);
  std::vector<LocalMailboxRef> locals;
  for (const auto& b : *boxes) locals.push_back({b.name, b.specialUse, b.upstreamName, b.upstreamUidValidity});
  std::vector<Folder> mapped;
  std::set<std::string> seen;
  for (auto& r : remote) {
    if (!r.selectable || !folderWanted(r, cfg_.mailboxes)) continue;
    seen.insert(r.id);
    FolderBinding b = bindFolder(r, locals);
    Folder f;
    if (b.existing) {
      const auto& box = (*boxes)[*b.existing];
      f.mailboxId = box.id;
      f.localName = box.name;
      if (box.upstreamName != r.id) {
        if (auto s = bindMailbox(store_, box.id, r.id); !s) return s;
        locals[*b.existing].upstreamName = r.id;
      }
    } else {
      // Created by the upstream: no journal row (nothing to send back).
      auto created = store_.createMailbox(accountId_, b.createName, b.createSpecialUse, std::nullopt, this);
      if (!created) return propagate(created);
      if (auto s = bindMailbox(store_, created->id, r.id); !s) return s;
      f.mailboxId = created->id;
      f.localName = created->name;
      locals.push_back({created->name, created->specialUse, r.id, std::nullopt});
      boxes->push_back(*created);
      boxes->back().upstreamName = r.id;
      logInfo("sync.mailbox_created").kv("account", accountName_).kv("mailbox", f.localName).kv("upstream", r.path);
    }
    f.remote = std::move(r);
    mapped.push_back(std::move(f));
  }
  // Bound mailboxes whose folder is gone upstream were deleted there.
  if (cfg_.mailboxes.empty()) {
    for (const auto& b : *boxes) {
      if (b.upstreamName.empty() || seen.count(b.upstreamName) || b.name == "INBOX") continue;
      logInfo("sync.mailbox_deleted_upstream").kv("account", accountName_).kv("mailbox", b.name);
      if (auto s = store::deleteMailboxLocal(store_, accountId_, b.name, this, false); !s && s.error().kind != ErrorKind::NotFound)
        return s;
    }
  }
  folders_ = std::move(mapped);
  return {};
}

void SyncEngine::syncNextFolder() {
  if (!connected_) return;
  if (storeError_) return endCycle();
  if (todo_.empty()) {
    // The last mailboxes' tails are still being stored: the cycle ends with them.
    if (!downloads_.empty()) {
      cycleEnding_ = true;
      return;
    }
    return endCycle();
  }
  size_t idx = todo_.front();
  todo_.erase(todo_.begin());
  if (idx >= folders_.size()) return syncNextFolder();
  auto alive = alive_;
  syncFolder(folders_[idx], [this, alive, name = folders_[idx].localName](Status s) {
    if (!*alive) return;
    if (!s) {
      // The upstream failing one mailbox (a refusal, a response that could
      // not be read: a message over the limits) is that mailbox's trouble:
      // it is not marked complete, and the others still sync. Anything
      // else (the connection, the store) ends the cycle.
      if (s.error().kind != ErrorKind::Upstream || !connected_) return cycleFailed(s.error());
      logWarn("sync.mailbox_failed").kv("account", accountName_).kv("mailbox", name).kv("error", s.error().message);
      if (!mailboxError_) mailboxError_ = "mailbox " + name + ": " + s.error().message;
    } else {
      ++status_.mailboxesDone;
    }
    publish();
    syncNextFolder();
  });
}

void SyncEngine::syncFolder(Folder& f, std::function<void(Status)> done) {
  auto box = store_.findMailbox(accountId_, f.localName);
  if (!box) return done(std::unexpected(box.error()));
  if (!*box) return done({});  // deleted locally meanwhile; the journal handles it
  StoredFolder stored = parseFolderState((*box)->upstreamState);
  FolderState since = stored.complete ? stored.state : FolderState{};
  // The cheap check: the listing's status equals what we stored, and the
  // server has CONDSTORE (else flag changes would not show in it).
  // The listing's status is used once: a later push for this folder means
  // it is stale.
  std::optional<FolderState> listed = std::move(f.remote.status);
  f.remote.status.reset();
  if (stored.complete && listed && listed->highestModSeq != 0 && *listed == stored.state) return done({});
  if (listed)
    logDebug("sync.mailbox_check")
        .kv("account", accountName_)
        .kv("mailbox", f.localName)
        .kv("stored", serializeFolderState(stored))
        .kv("listed", serializeFolderState({*listed, true}));
  auto alive = alive_;
  Folder* fp = &f;
  std::optional<uint32_t> boundValidity = (*box)->upstreamUidValidity;
  conn_->fetchChanges(f.remote, since, [this, alive, fp, boundValidity, done = std::move(done)](Result<FolderChanges> r) mutable {
    if (!*alive) return;
    if (!r) return done(std::unexpected(r.error()));
    if (boundValidity && *boundValidity != r->state.uidValidity) return remap(*fp, std::move(*r), std::move(done));
    applyChanges(*fp, std::move(*r), std::move(done));
  });
}

void SyncEngine::applyChanges(Folder& f, FolderChanges ch, std::function<void(Status)> done) {
  auto local = localMessages(store_, f.mailboxId);
  if (!local) return done(std::unexpected(local.error()));
  ChangePlan plan = planChanges(*local, ch);
  if (!plan.flagUpdates.empty()) {
    std::vector<store::ChangedMessage> wanted;
    std::vector<std::pair<uint32_t, std::optional<FlagState>>> bases;
    for (auto& u : plan.flagUpdates) {
      wanted.push_back({u.uid, u.flags, u.keywords, 0});
      bases.emplace_back(u.uid, u.upstreamBase);
    }
    if (auto s = store::setFlagsExact(store_, f.mailboxId, wanted, this); !s) return done(s);
    if (auto s = setUpstreamBases(store_, f.mailboxId, bases); !s) return done(s);
  }
  if (!plan.removals.empty()) {
    if (auto s = store::removeMessages(store_, f.mailboxId, plan.removals, this); !s) return done(std::unexpected(s.error()));
  }
  if (!plan.flagUpdates.empty() || !plan.removals.empty() || !plan.downloads.empty())
    logInfo("sync.mailbox_changes")
        .kv("account", accountName_)
        .kv("mailbox", f.localName)
        .kv("flags", plan.flagUpdates.size())
        .kv("removed", plan.removals.size())
        .kv("new", plan.downloads.size());
  download(f, std::move(plan.downloads), ch.state, std::move(done));
}

void SyncEngine::remap(Folder& f, FolderChanges ch, std::function<void(Status)> done) {
  logWarn("sync.uidvalidity_changed").kv("account", accountName_).kv("mailbox", f.localName).kv("uidvalidity", ch.state.uidValidity);
  auto alive = alive_;
  Folder* fp = &f;
  FolderState state = ch.state;
  conn_->fetchMeta(f.remote.id, 1, [this, alive, fp, state, done = std::move(done)](Result<std::vector<RemoteMessage>> r) mutable {
    if (!*alive) return;
    if (!r) return done(std::unexpected(r.error()));
    auto local = localMessages(store_, fp->mailboxId);
    if (!local) return done(std::unexpected(local.error()));
    RemapPlan plan = planRemap(*local, *r);
    {
      auto tx = store::Transaction::begin(store_.db());
      if (!tx) return done(std::unexpected(tx.error()));
      std::vector<std::pair<uint32_t, std::optional<uint32_t>>> ids;
      // Clear first, then set: a new upstream UID may equal an old one of another message.
      for (const auto& m : *local)
        if (m.upstreamUid) ids.emplace_back(m.uid, std::nullopt);
      for (auto [l, u] : plan.rebind) ids.emplace_back(l, u);
      if (auto s = setUpstreamIds(store_, fp->mailboxId, ids); !s) return done(s);
      // The upstream is the truth for a re-mapped mailbox's flags.
      auto clear = store_.db().prepare("UPDATE messages SET upstream_flags = NULL WHERE mailbox_id = ?1");
      if (!clear) return done(std::unexpected(clear.error()));
      if (auto s = clear->bind(1, fp->mailboxId).run(); !s) return done(s);
      auto st = store_.db().prepare("UPDATE mailboxes SET upstream_uidvalidity = ?1, upstream_state = NULL WHERE id = ?2");
      if (!st) return done(std::unexpected(st.error()));
      if (auto s = st->bind(1, state.uidValidity).bind(2, fp->mailboxId).run(); !s) return done(s);
      if (auto s = tx->commit(); !s) return done(s);
    }
    if (!plan.removals.empty()) {
      if (auto s = store::removeMessages(store_, fp->mailboxId, plan.removals, this); !s) return done(std::unexpected(s.error()));
    }
    if (!plan.flagUpdates.empty()) {
      std::vector<store::ChangedMessage> wanted;
      for (auto& u : plan.flagUpdates) wanted.push_back({u.uid, u.flags, u.keywords, 0});
      if (auto s = store::setFlagsExact(store_, fp->mailboxId, wanted, this); !s) return done(s);
    }
    logInfo("sync.remapped")
        .kv("account", accountName_)
        .kv("mailbox", fp->localName)
        .kv("kept", plan.rebind.size())
        .kv("removed", plan.removals.size())
        .kv("new", plan.downloads.size());
    download(*fp, std::move(plan.downloads), state, std::move(done));
  });
}

Status SyncEngine::saveFolderState(store::Db& db, int64_t mailboxId, const FolderState& state, bool complete) {
  auto st = db.prepare("UPDATE mailboxes SET upstream_uidvalidity = ?1, upstream_state = ?2 WHERE id = ?3");
  if (!st) return propagate(st);
  return st->bind(1, state.uidValidity).bind(2, serializeFolderState({state, complete})).bind(3, mailboxId).run();
}

// The download pipeline: the loop thread only reads the upstream stream and
// cuts it into batches; each batch is prepared on the libuv thread pool
// (Store::prepareMessage: line ends, MIME analysis, content hash, blob written and
// pinned; then one BlobStore::syncBatch for the whole batch instead of a file
// and a directory fsync per message), and the batches' rows commit on the loop in upstream order
// once their bodies are durable (Store::commitMessages), as the SMTP outbox's
// OutboxWriter does. A kill at any moment leaves committed rows with durable
// bodies and, at worst, unreferenced blobs that the next open deletes.
//
// Mailboxes overlap: once a mailbox's stream has ended the connection moves
// on to the next mailbox while the last batches of this one are still being
// prepared and committed (downloads_ holds every download still storing).
// Without it each mailbox ended in a bubble: the upstream waited for our
// tail, then our pool for the next mailbox's first batch. A mailbox's state
// is marked complete only once all its rows are in; the cycle ends once
// every download is stored. The pool slots and the read-ahead bound
// (onPool_, queuedBytes_) are the engine's, shared by all downloads.
struct SyncEngine::Download {
  struct Job {
    uv_work_t work{};
    std::shared_ptr<Download> owner;  // set while the job is on the pool
    std::vector<RemoteMessage> messages;
    std::vector<store::PreparedMessage> prepared;  // messages[0..prepared.size()) on success
    std::vector<store::PreparedMessage> unsynced;  // written, but the batch's sync failed: discarded
    std::optional<Error> error;                    // why preparing messages[prepared.size()] failed
    uint64_t bytes = 0;
    bool started = false;  // queued on the pool
    bool ready = false;    // back from the pool
  };
  SyncEngine* engine = nullptr;
  std::shared_ptr<bool> alive;  // the engine's
  store::Store* store = nullptr;  // outlives the engine (the daemon's)
  int64_t mailboxId = 0;
  FolderState finalState;
  std::deque<std::unique_ptr<Job>> jobs;  // on the pool or prepared, in upstream order
  std::unique_ptr<Job> filling;           // being received
  std::optional<Error> error;     // a store failure: nothing after it is committed
  std::optional<Status> fetched;  // fetchMessages finished, with this
};

void SyncEngine::download(Folder& f, std::vector<uint32_t> uids, FolderState finalState, std::function<void(Status)> done) {
  int64_t mailboxId = f.mailboxId;
  if (uids.empty()) return done(saveFolderState(store_.db(), mailboxId, finalState, true));
  // Bind the UIDVALIDITY before the first message lands, so a restart knows
  // what the stored upstream ids refer to.
  {
    auto st = store_.db().prepare("UPDATE mailboxes SET upstream_uidvalidity = ?1 WHERE id = ?2");
    if (!st) return done(std::unexpected(st.error()));
    if (auto s = st->bind(1, finalState.uidValidity).bind(2, mailboxId).run(); !s) return done(s);
  }
  status_.messagesTotal += uids.size();
  publish(true);
  auto d = std::make_shared<Download>();
  d->engine = this;
  d->alive = alive_;
  d->store = &store_;
  d->mailboxId = mailboxId;
  d->finalState = finalState;
  downloads_.push_back(d);
  conn_->fetchMessages(
      f.remote.id, std::move(uids), cfg_.bodies == BodyPolicy::OnDemand,
      [d](RemoteMessage&& m) {
        if (!*d->alive || d->error) return;
        d->engine->received(d, std::move(m));
      },
      [d, done = std::move(done)](Status s) {
        if (!*d->alive) return;
        d->fetched = s;
        SyncEngine* engine = d->engine;
        engine->submit();
        engine->drain(d);
        // The connection is free: the next mailbox starts while this one's
        // tail is still stored. A store failure already seen ends the cycle.
        if (s && d->error) s = std::unexpected(*d->error);
        done(std::move(s));
      });
}

void SyncEngine::received(const std::shared_ptr<Download>& d, RemoteMessage&& m) {
  if (!d->filling) d->filling = std::make_unique<Download::Job>();
  uint64_t n = m.bytes->size();
  d->filling->bytes += n;
  queuedBytes_ += n;
  d->filling->messages.push_back(std::move(m));
  if (d->filling->messages.size() >= kBatchMessages || d->filling->bytes >= kBatchBytes) {
    d->jobs.push_back(std::move(d->filling));
    submit();
  }
  if (!readPaused_ && queuedBytes_ >= kMaxQueuedBytes && conn_) {
    readPaused_ = true;
    conn_->pauseReading(true);
  }
}

void SyncEngine::submit() {
  std::vector<std::shared_ptr<Download>> failed;  // a batch that could not be queued
  for (auto& d : downloads_) {
    // A finished stream's last, partial batch goes too.
    if (d->fetched && d->filling) {
      if (!d->filling->messages.empty()) d->jobs.push_back(std::move(d->filling));
      d->filling.reset();
    }
    if (d->error) continue;  // its batches would only be discarded (drain does)
    for (auto& jp : d->jobs) {
      if (onPool_ >= kMaxBatchesOnPool) break;
      if (jp->started) continue;
      Download::Job* job = jp.get();
      job->started = true;
      job->owner = d;
      job->work.data = job;
      ++onPool_;
      int rc = uv_queue_work(
          loop_, &job->work,
          [](uv_work_t* w) {
            auto* j = static_cast<Download::Job*>(w->data);
            j->prepared.reserve(j->messages.size());
            for (const auto& m : j->messages) {
              auto p = m.headersOnly ? Result<store::PreparedMessage>(store::Store::prepareHeader(*m.bytes))
                                     : store::Store::prepareMessage(j->owner->store->blobs(), *m.bytes, true,
                                                                    store::BlobStore::Sync::Batch);
              if (!p) {
                j->error = p.error();
                break;
              }
              j->prepared.push_back(std::move(*p));
            }
            // Header-only rows have no blob to sync.
            if (std::none_of(j->prepared.begin(), j->prepared.end(), [](const auto& p) { return !p.blobId.empty(); }))
              return;
            // No row before its body is durable: a failed sync commits none.
            if (auto s = j->owner->store->blobs().syncBatch(); !s) {
              j->error = s.error();
              j->unsynced = std::move(j->prepared);
              j->prepared.clear();
            }
          },
          [](uv_work_t* w, int) {
            auto* j = static_cast<Download::Job*>(w->data);
            std::shared_ptr<Download> d = std::move(j->owner);
            j->ready = true;
            if (*d->alive) {
              --d->engine->onPool_;
              d->engine->submit();
              return d->engine->drain(d);
            }
            // The engine is gone (account removed, shutdown): no row will
            // take these bodies, nor those of batches that came back before
            // this one and waited behind it. Their files go now unless
            // another row has the same content: a removed account's mail
            // must not stay on disk until the next start's GC.
            for (auto& job : d->jobs) {
              if (!job->ready) continue;
              d->store->discardPrepared(job->prepared);
              d->store->discardPrepared(job->unsynced);
              job->prepared.clear();
              job->unsynced.clear();
            }
          });
      if (rc != 0) {
        --onPool_;
        job->owner.reset();
        job->error = Error{ErrorKind::Internal, std::string("uv_queue_work: ") + uv_strerror(rc)};
        job->ready = true;
        failed.push_back(d);
      }
    }
  }
  for (const auto& d : failed) drain(d);
}

void SyncEngine::drain(const std::shared_ptr<Download>& d) {
  // Every batch ready at the head commits in one transaction.
  std::vector<std::unique_ptr<Download::Job>> ready;
  while (!d->jobs.empty() && d->jobs.front()->ready) {
    ready.push_back(std::move(d->jobs.front()));
    d->jobs.pop_front();
  }
  size_t total = 0;
  for (const auto& job : ready) total += job->prepared.size();
  std::vector<store::NewMessage> rows;
  std::vector<store::PreparedMessage> prepared;
  rows.reserve(total);
  prepared.reserve(total);
  for (auto& job : ready) {
    queuedBytes_ -= job->bytes;
    store_.discardPrepared(job->unsynced);
    if (d->error) {
      store_.discardPrepared(job->prepared);
      continue;
    }
    for (size_t i = 0; i < job->prepared.size(); ++i) {
      const RemoteMessage& m = job->messages[i];
      store::NewMessage n;
      n.bytes = *m.bytes;
      n.flags = m.meta.flags;
      n.keywords = m.meta.keywords;
      n.internalDate = m.internalDate;
      n.upstreamId = std::to_string(m.meta.uid);
      if (m.headersOnly) {
        n.fullSize = m.size;
        n.bodyStructure = m.bodyStructure;
      }
      n.origin = this;
      rows.push_back(std::move(n));
      prepared.push_back(std::move(job->prepared[i]));
    }
    // A batch that failed half-way: its prepared head commits, nothing after.
    if (job->error) d->error = job->error;
  }
  if (!rows.empty()) {
    auto r = store_.commitMessages(d->mailboxId, rows, prepared);
    if (!r) {
      d->error = r.error();
    } else {
      status_.messagesDone += rows.size();
      failures_ = 0;  // progress: the next failure waits the shortest again
    }
    publish();
  }
  if (d->error) {
    // Nothing after a failure is stored: the batches not on the pool go now
    // (those on it come back here), and the cycle stops at its next mailbox.
    std::erase_if(d->jobs, [this](const std::unique_ptr<Download::Job>& j) {
      if (j->started) return false;
      queuedBytes_ -= j->bytes;
      return true;
    });
    if (!storeError_) storeError_ = d->error;
  }
  if (readPaused_ && queuedBytes_ < kMaxQueuedBytes / 2 && conn_) {
    readPaused_ = false;
    conn_->pauseReading(false);
  }
  if (!d->fetched || d->filling || !d->jobs.empty()) return;
  // Everything of this download is stored (or discarded after a failure).
  std::erase(downloads_, d);
  if (!d->error && *d->fetched) {
    // What arrived is kept even when the rest failed: a restart goes on from
    // there; only a whole mailbox is marked complete.
    if (auto s = saveFolderState(store_.db(), d->mailboxId, d->finalState, true); !s && !storeError_)
      storeError_ = s.error();
  }
  if (!downloads_.empty()) return;
  if (readPaused_ && conn_) conn_->pauseReading(false);
  readPaused_ = false;
  if (cycleEnding_) {
    cycleEnding_ = false;
    endCycle();
  }
  // A cycle asked for while the last download was still storing (after a
  // reconnect) starts now that nothing of it can land any more.
  if (cycleWanted_ && downloads_.empty() && !busy_ && connected_) {
    cycleWanted_ = false;
    cycle();
  }
}

void SyncEngine::endCycle() {
  if (storeError_) {
    Error e = std::move(*storeError_);
    storeError_.reset();
    return cycleFailed(e);
  }
  cycleDone();
}

void SyncEngine::cycleDone() {
  busy_ = false;
  // A mailbox the upstream failed on is tried again after the backoff (and
  // at the latest with the poll): soon for a passing fault, rarely for a
  // message that fails every time.
  std::optional<std::string> failed = std::exchange(mailboxError_, std::nullopt);
  if (failed) {
    ++failures_;
    status_.lastError = *failed;
    mailboxErrorShown_ = *failed;
  } else {
    failures_ = 0;
    // Every mailbox synced: a mailbox's error shown since is over (another
    // error shown since, say a refused local change, stays).
    if (!mailboxErrorShown_.empty() && status_.lastError == mailboxErrorShown_) status_.lastError.clear();
    mailboxErrorShown_.clear();
  }
  status_.lastSync = store_.now();
  // How long a check took (a no-op poll of an unchanged account included):
  // what bench/sync_bench.py times.
  logInfo("sync.cycle_done")
      .kv("account", accountName_)
      .kv("full", cycleFull_)
      .kv("mailboxes", static_cast<uint64_t>(folders_.size()))
      .kv("checked", static_cast<uint64_t>(status_.mailboxesTotal))
      .kv("messages", status_.messagesDone)
      .kv("us", (uv_hrtime() - cycleStartNs_) / 1000);
  if (auto n = pendingJournal(store_, accountId_)) status_.pendingChanges = static_cast<uint64_t>(*n);
  setState("idle");
  fillBodies();
  if (!watching_) {
    watching_ = true;
    std::vector<std::string> ids;
    for (const auto& f : folders_)
      for (const auto& w : cfg_.idleMailboxes)
        if (folderWanted(f.remote, {w})) ids.push_back(f.remote.id);
    auto alive = alive_;
    conn_->watch(ids, [this, alive](const std::string& folder) {
      if (!*alive) return;
      dirty_.insert(folder);
      if (connected_ && !busy_) kick(kPushDebounceMs);
    });
  }
  if (wantReplay_ || !dirty_.empty() || wantFull_) return kick(0);
  uint64_t pollMs = static_cast<uint64_t>(std::max<uint32_t>(cfg_.pollSeconds, 1)) * 1000;
  if (failed) pollMs = std::min<uint64_t>(pollMs, retryDelayMs(failures_, rng_));
  if (replayAt_) {
    // A journal row waits for its retry time: a cycle that replays it then,
    // unless the poll comes first.
    uint64_t dueMs = static_cast<uint64_t>(std::max<int64_t>(replayAt_ - store_.now(), 0)) * 1000;
    if (dueMs < pollMs) {
      uv_timer_start(timer_, [](uv_timer_t* t) {
        auto* self = static_cast<SyncEngine*>(t->data);
        self->wantReplay_ = true;
        if (self->connected_ && !self->busy_) self->cycle();
      }, dueMs, 0);
      return;
    }
  }
  // The poll: the next full cycle (replaying a row that still waits).
  uv_timer_start(timer_, [](uv_timer_t* t) {
    auto* self = static_cast<SyncEngine*>(t->data);
    self->wantFull_ = true;
    if (self->replayAt_) self->wantReplay_ = true;
    if (self->connected_ && !self->busy_) self->cycle();
  }, pollMs, 0);
}

void SyncEngine::cycleFailed(const Error& e) {
  busy_ = false;
  if (e.kind == ErrorKind::Unavailable && !connected_) return;  // the connection is gone: onLost dealt with it
  status_.lastError = e.message;
  if (e.kind != ErrorKind::Unavailable) return retryCycle();
  // Mostly the connection is going: a connector fails its pending callbacks,
  // then runs onLost at once, which stops this timer and reconnects. The
  // store's Unavailable (SQLite busy past its timeout: another process holds
  // the write lock) has no onLost after it: it fails the cycle like any other
  // error, a loop turn later.
  uv_timer_start(timer_, [](uv_timer_t* t) {
    auto* self = static_cast<SyncEngine*>(t->data);
    if (self->connected_ && !self->busy_) self->retryCycle();
  }, 0, 0);
}

void SyncEngine::retryCycle() {
  logWarn("sync.cycle_failed").kv("account", accountName_).kv("error", status_.lastError);
  if (!connected_) return;  // onLost deals with it
  // Not a lost connection (an upstream refusal, a store failure): try again
  // later, from a full listing.
  wantFull_ = true;
  ++failures_;
  uint64_t delay = retryDelayMs(failures_, rng_);
  setState("idle", status_.lastError);
  uv_timer_start(timer_, [](uv_timer_t* t) {
    auto* self = static_cast<SyncEngine*>(t->data);
    if (self->connected_ && !self->busy_) self->cycle();
  }, delay, 0);
}

// ---- local -> upstream

void SyncEngine::finishFlagMerge(int64_t mailboxId, const std::vector<LocalMessage>& pending, const FlagPush& plan,
                                 const ReplayDone& done) {
  auto now = localMessages(store_, mailboxId);
  if (!now) return done(std::unexpected(now.error()), nullptr);
  std::map<uint32_t, FlagState> current, before;
  for (const auto& m : *now) current[m.uid] = m.flagState();
  for (const auto& m : pending) before[m.uid] = m.flagState();
  std::vector<store::ChangedMessage> take;
  std::vector<std::pair<uint32_t, std::optional<FlagState>>> bases;
  for (const auto& [uid, merged] : plan.merged) {
    auto it = current.find(uid);
    if (it == current.end()) continue;
    if (it->second == before[uid]) {
      take.push_back({uid, merged.flags, merged.keywords, 0});
      bases.emplace_back(uid, std::nullopt);
    } else {
      bases.emplace_back(uid, merged);  // changed again meanwhile: its own row merges it
    }
  }
  if (auto s = store::setFlagsExact(store_, mailboxId, take, this); !s) return done(std::unexpected(s.error()), nullptr);
  if (auto s = setUpstreamBases(store_, mailboxId, bases); !s) return done(std::unexpected(s.error()), nullptr);
  done(OpResult{}, nullptr);
}

// A flag change the upstream refused for good: the messages go back to the
// flags the upstream had (their start), so the refused flag is not merged
// into every later change of them and refused again.
Status SyncEngine::undoFlagChange(const std::string& mailbox, const std::vector<uint32_t>& uids) {
  auto box = store_.findMailbox(accountId_, mailbox);
  if (!box) return propagate(box);
  if (!*box) return {};
  auto local = localMessages(store_, (*box)->id);
  if (!local) return propagate(local);
  std::set<uint32_t> wanted(uids.begin(), uids.end());
  std::vector<store::ChangedMessage> back;
  std::vector<std::pair<uint32_t, std::optional<FlagState>>> bases;
  for (const auto& m : *local)
    if (wanted.count(m.uid) && m.upstreamBase) {
      back.push_back({m.uid, m.upstreamBase->flags, m.upstreamBase->keywords, 0});
      bases.emplace_back(m.uid, std::nullopt);
    }
  if (auto s = store::setFlagsExact(store_, (*box)->id, back, this); !s) return s;
  return setUpstreamBases(store_, (*box)->id, bases);
}

// A local flag change: fetch the messages' upstream flags, merge per flag
// against what the upstream had when the local change started
// (messages.upstream_flags), send the difference, and take the merged flags
// locally. The journal row only says which messages to look at, so a later
// change of the same message is merged by whichever row comes first.
void SyncEngine::replayFlagMerge(const std::string& folder, int64_t mailboxId, const std::vector<uint32_t>& localUids,
                                 ReplayDone done) {
  auto all = localMessages(store_, mailboxId);
  if (!all) return done(std::unexpected(all.error()), nullptr);
  std::set<uint32_t> wanted(localUids.begin(), localUids.end());
  auto pending = std::make_shared<std::vector<LocalMessage>>();
  std::vector<uint32_t> upUids;
  for (auto& m : *all)
    if (wanted.count(m.uid) && m.upstreamBase && m.upstreamUid) {
      upUids.push_back(*m.upstreamUid);
      pending->push_back(std::move(m));
    }
  if (pending->empty()) return done(OpResult{{}, "", true}, nullptr);
  auto alive = alive_;
  conn_->fetchFlags(folder, upUids, [this, alive, folder, mailboxId, pending, done](Result<std::vector<RemoteFlags>> r) {
    if (!*alive) return;
    if (!r) return done(std::unexpected(r.error()), nullptr);
    auto plan = std::make_shared<FlagPush>(planFlagPush(*pending, *r));
    // The STOREs one after the other; then the merged flags locally.
    auto step = std::make_shared<std::function<void(size_t)>>();
    *step = [this, alive, folder, mailboxId, pending, plan, done, step](size_t i) {
      if (i == plan->stores.size()) {
        // Break the cycle step -> lambda -> step; only copies are used after.
        auto self = this;
        int64_t box = mailboxId;
        auto keepPending = pending;
        auto keepPlan = plan;
        auto keepDone = done;
        auto keepStep = std::move(*step);
        self->finishFlagMerge(box, *keepPending, *keepPlan, keepDone);
        return;
      }
      const auto& st = plan->stores[i];
      FlagsOp op;
      op.folder = folder;
      op.mode = st.add ? FlagsOp::Mode::Add : FlagsOp::Mode::Remove;
      op.flags = st.flags.flags;
      op.keywords = st.flags.keywords;
      op.uids = st.upstreamUids;
      conn_->apply(op, [alive, step, done, i](Result<OpResult> r) {
        if (!*alive) return;
        if (!r) {
          auto stepKeep = std::move(*step);
          return done(std::unexpected(r.error()), nullptr);
        }
        (*step)(i + 1);
      });
    };
    (*step)(0);
  });
}

void SyncEngine::replay(std::function<void()> next) {
  if (!wantReplay_) return next();
  wantReplay_ = false;
  replayAt_ = 0;
  replayOne(std::move(next));
}

void SyncEngine::replayOne(std::function<void()> next) {
  if (!connected_) return;
  Db& db = store_.db();
  auto st = db.prepare(
      "SELECT id, op, payload, attempts, next_attempt FROM journal WHERE account_id = ?1 ORDER BY id LIMIT 1");
  if (!st) return cycleFailed(st.error());
  auto row = st->bind(1, accountId_).step();
  if (!row) return cycleFailed(row.error());
  if (!*row) {
    status_.pendingChanges = 0;
    return next();
  }
  int64_t id = st->columnInt64(0);
  std::string op = st->columnText(1);
  auto payload = nlohmann::json::parse(st->columnText(2), nullptr, false);
  int64_t attempts = st->columnInt64(3);
  int64_t nextAttempt = st->columnInt64(4);
  st->reset();
  if (attempts > 0 && nextAttempt > store_.now()) {
    // Waiting for its retry time; later rows wait behind it (order matters).
    // Not wantReplay_: cycleDone would start the next cycle at once, and
    // that one would find the row still waiting, and so on until it is due.
    replayAt_ = nextAttempt;
    return next();
  }
  auto finishRow = [this, id](std::function<Status(Db&)> alsoInTx) -> Status {
    auto tx = store::Transaction::begin(store_.db());
    if (!tx) return propagate(tx);
    if (alsoInTx) {
      if (auto s = alsoInTx(store_.db()); !s) return s;
    }
    auto del = store_.db().prepare("DELETE FROM journal WHERE id = ?1");
    if (!del) return propagate(del);
    if (auto s = del->bind(1, id).run(); !s) return s;
    return tx->commit();
  };
  auto alive = alive_;
  auto again = [this, alive, next](void) mutable {
    if (!*alive) return;
    if (status_.pendingChanges) --status_.pendingChanges;
    publish();
    replayOne(std::move(next));
  };
  auto skip = [&](const std::string& why) {
    logInfo("sync.journal_skipped").kv("account", accountName_).kv("op", op).kv("why", why);
    if (auto s = finishRow(nullptr); !s) return cycleFailed(s.error());
    again();
  };
  if (!payload.is_object()) return skip("unreadable payload");
  // Mark the attempt first: after a crash, a retried APPEND looks before it sends.
  {
    auto upd = db.prepare("UPDATE journal SET attempts = attempts + 1 WHERE id = ?1");
    if (!upd || !upd->bind(1, id).run()) return cycleFailed(Error{ErrorKind::Io, "journal update failed"});
  }
  auto onResult = [this, alive, id, op, payload, attempts, next, again, finishRow](Result<OpResult> r,
                                                                         std::function<Status(Db&, const OpResult&)> record) mutable {
    if (!*alive) return;
    if (!r) {
      if (!connected_) return;  // the row stays; replayed after the reconnect
      if (r.error().kind == ErrorKind::Unavailable) return;
      logWarn("sync.replay_failed").kv("account", accountName_).kv("op", op).kv("error", r.error().message).kv("attempt", attempts + 1);
      bool permanent = isPermanentRefusal(r.error());
      if (permanent || attempts + 1 >= kMaxAttempts) {
        // Never silently: the log, the status (last_error, dropped_changes).
        logWarn("sync.journal_dropped")
            .kv("account", accountName_)
            .kv("op", op)
            .kv("attempts", attempts + 1)
            .kv("permanent", permanent)
            .kv("error", r.error().message);
        ++status_.droppedChanges;
        status_.lastError = "local change not applied upstream (" + op + "): " + r.error().message;
        if (op == "flags" && payload.value("merge", 0) == 1) {
          if (auto s = undoFlagChange(jsonString(payload, "mailbox"), jsonUids(payload.value("uids", nlohmann::json::array())));
              !s)
            return cycleFailed(s.error());
        }
        if (auto s = finishRow(nullptr); !s) return cycleFailed(s.error());
        return again();
      }
      std::mt19937_64 rng(static_cast<uint64_t>(id) * 7919 + static_cast<uint64_t>(attempts));
      int64_t delay = static_cast<int64_t>(retryDelayMs(static_cast<uint32_t>(attempts + 1), rng) / 1000) + 1;
      auto upd = store_.db().prepare("UPDATE journal SET next_attempt = ?1, last_error = ?2 WHERE id = ?3");
      if (upd) (void)upd->bind(1, store_.now() + delay).bind(2, r.error().message).bind(3, id).run();
      replayAt_ = store_.now() + delay;
      return next();
    }
    OpResult res = std::move(*r);
    if (auto s = finishRow([&](Db& db) { return record ? record(db, res) : Status{}; }); !s) return cycleFailed(s.error());
    again();
  };

  auto folderOf = [&](const std::string& localName) -> std::string {
    if (Folder* f = folderByName(localName)) return f->remote.id;
    auto box = store_.findMailbox(accountId_, localName);
    if (box && *box && !(*box)->upstreamName.empty()) return (*box)->upstreamName;
    return {};
  };
  auto upstreamUidsOf = [&](int64_t mailboxId, const std::vector<uint32_t>& localUids) {
    std::vector<uint32_t> out;
    auto q = store_.db().prepare("SELECT upstream_id FROM messages WHERE mailbox_id = ?1 AND uid = ?2");
    if (!q) return out;
    for (uint32_t u : localUids) {
      q->reset();
      auto row = q->bind(1, mailboxId).bind(2, u).step();
      if (row && *row && !q->columnText(0).empty()) out.push_back(static_cast<uint32_t>(std::stoul(q->columnText(0))));
    }
    return out;
  };

  std::string mailbox = jsonString(payload, "mailbox");
  if (op == "append") {
    auto box = store_.findMailbox(accountId_, mailbox);
    if (!box || !*box) return skip("mailbox gone");
    std::string folder = folderOf(mailbox);
    if (folder.empty()) return skip("mailbox not synced");
    uint32_t uid = payload.value("uid", 0u);
    auto local = localMessages(store_, (*box)->id);
    if (!local) return cycleFailed(local.error());
    const LocalMessage* lm = nullptr;
    for (const auto& m : *local)
      if (m.uid == uid) lm = &m;
    if (!lm) return skip("message gone");
    if (lm->upstreamUid) return skip("already upstream");
    auto bytes = store::messageBytes(store_, (*box)->id, uid);
    if (!bytes) return cycleFailed(bytes.error());
    AppendOp a;
    a.folder = folder;
    a.bytes = std::move(*bytes);
    a.flags = lm->flags;
    a.keywords = lm->keywords;
    a.internalDate = lm->internalDate;
    a.messageId = lm->messageId;
    a.lookupFirst = attempts > 0;
    int64_t mailboxId = (*box)->id;
    return conn_->apply(a, [onResult, mailboxId, uid](Result<OpResult> r) mutable {
      onResult(std::move(r), [mailboxId, uid](Db& db, const OpResult& res) -> Status {
        // No UID (no UIDPLUS and no Message-ID to find it by): the message stays
        // unmapped and the next sync downloads the upstream copy too (README).
        if (res.newUids.empty()) return {};
        // A UID found by Message-ID may belong to a copy that is mapped already.
        auto st = db.prepare(
            "UPDATE messages SET upstream_id = ?1 WHERE mailbox_id = ?2 AND uid = ?3 AND NOT EXISTS "
            "(SELECT 1 FROM messages WHERE mailbox_id = ?2 AND upstream_id = ?1)");
        if (!st) return std::unexpected(st.error());
        return st->bind(1, std::to_string(res.newUids.front())).bind(2, mailboxId).bind(3, uid).run();
      });
    });
  }
  if (op == "flags") {
    auto box = store_.findMailbox(accountId_, mailbox);
    if (!box || !*box) return skip("mailbox gone");
    std::string folder = folderOf(mailbox);
    if (folder.empty()) return skip("mailbox not synced");
    if (payload.value("merge", 0) == 1)
      return replayFlagMerge(folder, (*box)->id, jsonUids(payload.value("uids", nlohmann::json::array())), onResult);
    // A row journaled before upstream_flags existed: its change as it was made.
    FlagsOp f;
    f.folder = folder;
    std::string mode = jsonString(payload, "mode");
    f.mode = mode == "remove" ? FlagsOp::Mode::Remove : mode == "replace" ? FlagsOp::Mode::Replace : FlagsOp::Mode::Add;
    f.flags = flagBits(payload.value("flags", nlohmann::json::array()), f.keywords);
    f.uids = upstreamUidsOf((*box)->id, jsonUids(payload.value("uids", nlohmann::json::array())));
    if (f.uids.empty()) return skip("no message upstream");
    return conn_->apply(f, [onResult](Result<OpResult> r) mutable { onResult(std::move(r), nullptr); });
  }
  if (op == "copy" || op == "move") {
    std::string from = jsonString(payload, "from"), to = jsonString(payload, "to");
    std::string fromFolder = folderOf(from), toFolder = folderOf(to);
    if (fromFolder.empty() || toFolder.empty()) return skip("mailbox not synced");
    auto dst = store_.findMailbox(accountId_, to);
    if (!dst || !*dst) return skip("mailbox gone");
    std::vector<uint32_t> localSrc = jsonUids(payload.value("uids", nlohmann::json::array()));
    std::vector<uint32_t> localDst = jsonUids(payload.value("dest_uids", nlohmann::json::array()));
    const auto& ups = payload.value("upstream_ids", nlohmann::json::array());
    CopyOp c;
    c.from = fromFolder;
    c.to = toFolder;
    c.move = op == "move";
    std::vector<uint32_t> dstForUp;  // local dest UID per upstream source UID
    auto mid = store_.db().prepare("SELECT message_id FROM messages WHERE mailbox_id = ?1 AND uid = ?2");
    if (!mid) return cycleFailed(mid.error());
    for (size_t i = 0; i < localSrc.size() && i < localDst.size(); ++i) {
      if (i >= ups.size() || !ups[i].is_string() || ups[i].get<std::string>().empty()) continue;
      c.uids.push_back(static_cast<uint32_t>(std::stoul(ups[i].get<std::string>())));
      dstForUp.push_back(localDst[i]);
      mid->reset();
      auto row = mid->bind(1, (*dst)->id).bind(2, localDst[i]).step();
      c.messageIds.push_back(row && *row ? mid->columnText(0) : std::string());
    }
    mid->reset();
    if (c.uids.empty()) return skip("no message upstream");
    int64_t dstId = (*dst)->id;
    return conn_->apply(c, [onResult, dstId, dstForUp](Result<OpResult> r) mutable {
      onResult(std::move(r), [dstId, dstForUp](Db& db, const OpResult& res) -> Status {
        // Without COPYUID the UIDs come from a Message-ID search: never map one twice.
        auto st = db.prepare(
            "UPDATE messages SET upstream_id = ?1 WHERE mailbox_id = ?2 AND uid = ?3 AND NOT EXISTS "
            "(SELECT 1 FROM messages WHERE mailbox_id = ?2 AND upstream_id = ?1)");
        if (!st) return std::unexpected(st.error());
        for (size_t i = 0; i < res.newUids.size() && i < dstForUp.size(); ++i) {
          if (res.newUids[i] == 0) continue;
          st->reset();
          if (auto s = st->bind(1, std::to_string(res.newUids[i])).bind(2, dstId).bind(3, dstForUp[i]).run(); !s) return s;
        }
        return {};
      });
    });
  }
  if (op == "expunge") {
    std::string folder = folderOf(mailbox);
    if (folder.empty()) return skip("mailbox not synced");
    ExpungeOp e;
    e.folder = folder;
    for (const auto& u : payload.value("upstream_ids", nlohmann::json::array()))
      if (u.is_string() && !u.get<std::string>().empty()) e.uids.push_back(static_cast<uint32_t>(std::stoul(u.get<std::string>())));
    if (e.uids.empty()) return skip("no message upstream");
    return conn_->apply(e, [onResult](Result<OpResult> r) mutable { onResult(std::move(r), nullptr); });
  }
  if (op == "mailbox.create") {
    auto box = store_.findMailbox(accountId_, mailbox);
    if (!box || !*box) return skip("mailbox gone");
    if (!(*box)->upstreamName.empty()) return skip("already bound");
    int64_t boxId = (*box)->id;
    CreateFolderOp c{mailbox};
    return conn_->apply(c, [this, onResult, boxId](Result<OpResult> r) mutable {
      onResult(std::move(r), [this, boxId](Db&, const OpResult& res) -> Status {
        wantFull_ = true;  // the new folder joins the map at the next listing
        return bindMailbox(store_, boxId, res.folder);
      });
    });
  }
  if (op == "mailbox.delete") {
    DeleteFolderOp d{conn_->folderIdForPath(mailbox)};
    for (const auto& f : folders_)
      if (f.localName == mailbox) d.folder = f.remote.id;
    return conn_->apply(d, [this, onResult](Result<OpResult> r) mutable {
      wantFull_ = true;
      onResult(std::move(r), nullptr);
    });
  }
  if (op == "mailbox.rename") {
    std::string from = jsonString(payload, "from"), to = jsonString(payload, "to");
    std::string folder;
    for (const auto& f : folders_)
      if (f.localName == from) folder = f.remote.id;
    auto box = store_.findMailbox(accountId_, to);
    if (folder.empty() && box && *box) folder = (*box)->upstreamName;
    if (folder.empty()) return skip("mailbox not synced");
    RenameFolderOp rn{folder, to};
    return conn_->apply(rn, [this, onResult, folder](Result<OpResult> r) mutable {
      onResult(std::move(r), [this, folder](Db& db, const OpResult& res) -> Status {
        wantFull_ = true;
        // The renamed mailbox and its children keep their bindings under the new names.
        auto st = db.prepare(
            "UPDATE mailboxes SET upstream_name = ?1 || substr(upstream_name, ?2) WHERE account_id = ?3 AND "
            "(upstream_name = ?4 OR substr(upstream_name, 1, ?5) = ?4 || '/')");
        if (!st) return std::unexpected(st.error());
        return st->bind(1, res.folder)
            .bind(2, static_cast<int64_t>(folder.size()) + 1)
            .bind(3, accountId_)
            .bind(4, folder)
            .bind(5, static_cast<int64_t>(folder.size()) + 1)
            .run();
      });
    });
  }
  if (op == "mailbox.subscribe" || op == "mailbox.unsubscribe") {
    std::string folder = folderOf(mailbox);
    if (folder.empty()) return skip("mailbox not synced");
    SubscribeOp s{folder, op == "mailbox.subscribe"};
    return conn_->apply(s, [onResult](Result<OpResult> r) mutable { onResult(std::move(r), nullptr); });
  }
  skip("unknown op");
}

}  // namespace mb::sync
