// The IMAP connector (see upstream_imap.h).
#include "daemon/connectors/upstream_imap.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "daemon/log/log.h"
#include "daemon/store/store.h"
#include "daemon/util/password_command.h"
#include "protocols/imap/mutf7.h"
#include "protocols/mime/analysis.h"

namespace mb::connectors {
namespace {

using sync::ConnectorFailure;

// UIDs per UID FETCH of whole messages, and how many such commands are in
// flight at once: enough to keep the pipe full across round trips, small
// enough that a lost connection wastes little.
constexpr size_t kFetchBatch = 250;
constexpr size_t kFetchWindow = 4;
// Command connection keepalive and IDLE re-issue (RFC 2177: under 29 min;
// NAT tables often forget after a few minutes of silence).
constexpr uint64_t kKeepaliveMs = 120 * 1000;
constexpr uint64_t kIdleRefreshMs = 9 * 60 * 1000;

std::string describe(const client::StatusText& s) {
  std::string out = client::statusKindName(s.status);
  if (s.code.kind != client::CodeKind::None) out += " [" + s.code.name + (s.code.args.empty() ? "" : " " + s.code.args) + "]";
  if (!s.text.empty()) out += " " + s.text;
  return out;
}

Error upstreamError(const std::string& what, const client::StatusText& s) {
  return Error{ErrorKind::Upstream, what + ": " + describe(s), s.code.name};
}

ConnectorFailure toFailure(const ImapFailure& f) {
  ConnectorFailure out;
  out.message = f.message;
  switch (f.kind) {
    case ImapFailure::Kind::Auth: out.kind = ConnectorFailure::Kind::Auth; break;
    case ImapFailure::Kind::Tls:
    case ImapFailure::Kind::Protocol:
    case ImapFailure::Kind::Refused: out.kind = ConnectorFailure::Kind::Protocol; break;
    case ImapFailure::Kind::Network: out.kind = ConnectorFailure::Kind::Network; break;
  }
  return out;
}

// All UIDs of a set (no '*').
std::vector<uint32_t> expand(const imap::SequenceSet& set) {
  std::vector<uint32_t> out;
  for (const auto& r : set.ranges()) {
    uint32_t a = std::min(r.first, r.last), b = std::max(r.first, r.last);
    if (b == imap::SeqRange::kStar) continue;
    for (uint64_t u = a; u <= b; ++u) out.push_back(static_cast<uint32_t>(u));
  }
  return out;
}

imap::SequenceSet compress(std::vector<uint32_t> uids) {
  std::sort(uids.begin(), uids.end());
  uids.erase(std::unique(uids.begin(), uids.end()), uids.end());
  imap::SequenceSet set;
  for (size_t i = 0; i < uids.size();) {
    size_t j = i;
    while (j + 1 < uids.size() && uids[j + 1] == uids[j] + 1) ++j;
    set.add({uids[i], uids[j]});
    i = j + 1;
  }
  return set;
}

sync::RemoteFlags flagsOf(const client::FetchData& f) {
  sync::RemoteFlags r;
  r.uid = f.uid.value_or(0);
  if (f.flags) store::parseFlagWords(*f.flags, r.flags, r.keywords);
  r.modseq = f.modSeq.value_or(0);
  return r;
}

const char* specialUseOf(const client::ListData& l) {
  static const char* kUses[] = {"\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive", "\\All", "\\Flagged"};
  for (const char* u : kUses)
    if (l.hasAttribute(u)) return u;
  return "";
}

}  // namespace

std::string remoteToPath(const std::string& utf8, std::optional<char> delimiter) {
  if (!delimiter || *delimiter == '/') return utf8;
  std::string out = utf8;
  // A "/" inside a level cannot be told from a level break locally.
  for (char& c : out) {
    if (c == '/') c = '_';
    else if (c == *delimiter) c = '/';
  }
  return out;
}

std::string pathToRemote(const std::string& path, std::optional<char> delimiter) {
  if (!delimiter || *delimiter == '/') return path;
  std::string out = path;
  for (char& c : out)
    if (c == '/') c = *delimiter;
  return out;
}

struct UpstreamImap::Watcher {
  std::string folder;
  std::unique_ptr<ImapClient> client;
  uv_timer_t* timer = nullptr;  // refresh IDLE or reconnect; freed by its close callback
  uint32_t failures = 0;
  UpstreamImap* owner = nullptr;
};

UpstreamImap::UpstreamImap(uv_loop_t* loop, std::string accountName, std::string address, const ImapUpstreamConfig& config)
    : loop_(loop), accountName_(std::move(accountName)), address_(std::move(address)), cfg_(config) {
  keepalive_ = new uv_timer_t;
  uv_timer_init(loop_, keepalive_);
  keepalive_->data = this;
}

UpstreamImap::~UpstreamImap() {
  *alive_ = false;
  for (auto& w : watchers_) {
    w->client.reset();
    uv_close(reinterpret_cast<uv_handle_t*>(w->timer), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }
  main_.reset();
  uv_close(reinterpret_cast<uv_handle_t*>(keepalive_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

ImapClientOptions UpstreamImap::clientOptions() const {
  ImapClientOptions o;
  o.accountName = accountName_;
  o.host = cfg_.host;
  o.port = cfg_.port;
  o.security = cfg_.security;
  o.username = cfg_.username.empty() ? address_ : cfg_.username;
  o.secret = secret_;
  o.auth = cfg_.auth;
  o.tls = tls_ ? &*tls_ : nullptr;
  return o;
}

void UpstreamImap::connect(std::function<void()> onReady, std::function<void(const ConnectorFailure&)> onLost) {
  auto secret = resolveSecret(cfg_.password, cfg_.passwordCommand);
  if (!secret) return onLost(ConnectorFailure{ConnectorFailure::Kind::Auth, secret.error().message});
  secret_ = std::move(*secret);
  if (cfg_.security != RelaySecurity::None && !tls_) {
    tls::ClientTlsOptions o;
    o.caFile = cfg_.caFile;
    o.pinSha256 = cfg_.pinSha256;
    o.hostname = cfg_.host;
    auto ctx = tls::ClientTlsContext::create(o);
    if (!ctx) return onLost(ConnectorFailure{ConnectorFailure::Kind::Protocol, "tls setup: " + ctx.error().message});
    tls_ = std::move(*ctx);
  }
  main_ = std::make_unique<ImapClient>(loop_, clientOptions());
  main_->setUnsolicited([](client::Response&) {});  // EXISTS after NOOP etc.: the engine polls and watches
  main_->connect(
      [this, onReady = std::move(onReady)] {
        uv_timer_start(
            keepalive_, [](uv_timer_t* t) {
              auto* self = static_cast<UpstreamImap*>(t->data);
              if (self->main_ && self->main_->ready() && self->main_->inFlight() == 0)
                self->main_->run(self->main_->builder().noop(), nullptr, nullptr);
            },
            kKeepaliveMs, kKeepaliveMs);
        onReady();
      },
      [this, onLost = std::move(onLost)](const ImapFailure& f) {
        uv_timer_stop(keepalive_);
        onLost(toFailure(f));
      });
}

sync::ConnectorCapabilities UpstreamImap::capabilities() const {
  sync::ConnectorCapabilities c;
  c.push = main_ && main_->hasCapability("IDLE");
  c.stableIds = main_ && main_->hasCapability("UIDPLUS");
  return c;
}

void UpstreamImap::pauseReading(bool paused) {
  if (main_) main_->pauseReading(paused);
}

uint64_t UpstreamImap::bytesReceived() const { return (main_ ? main_->bytesReceived() : 0) + watcherBytes_; }

std::string UpstreamImap::folderIdForPath(const std::string& path) const {
  if (imap::isInbox(path)) return "INBOX";
  auto wire = imap::mailboxToWire(pathToRemote(path, delimiter_), main_ && main_->features().utf8Accept);
  return wire ? *wire : path;
}

void UpstreamImap::runSimple(std::string what, Result<client::Command> cmd,
                             std::function<void(Result<client::StatusText>)> done, ImapClient::Untagged onUntagged) {
  if (!cmd) return done(std::unexpected(cmd.error()));
  main_->run(std::move(*cmd), std::move(onUntagged),
             [alive = alive_, what = std::move(what), done = std::move(done)](const Result<client::StatusText>& r) {
               if (!*alive) return;
               if (!r) return done(std::unexpected(r.error()));
               if (r->status != client::StatusKind::Ok) return done(std::unexpected(upstreamError(what, *r)));
               done(*r);
             });
}

void UpstreamImap::listFolders(std::function<void(Result<std::vector<sync::RemoteFolder>>)> done) {
  struct Ctx {
    std::vector<sync::RemoteFolder> folders;
    std::map<std::string, size_t> byWire;
  };
  auto ctx = std::make_shared<Ctx>();
  client::ListOptions lo;
  lo.specialUse = true;
  lo.subscribed = true;
  lo.status = {imap::StatusItem::Messages, imap::StatusItem::UidNext, imap::StatusItem::UidValidity};
  if (main_->condstore()) lo.status.push_back(imap::StatusItem::HighestModSeq);
  bool listStatus = main_->features().listExtended && main_->features().listStatus;
  auto statusItems = lo.status;
  auto onUntagged = [this, ctx](client::Response& r) {
    if (auto* l = std::get_if<client::ListData>(&r)) {
      if (l->lsub) return;
      sync::RemoteFolder f;
      f.id = l->mailbox.wire;
      if (l->delimiter) delimiter_ = l->delimiter;
      f.path = imap::isInbox(l->mailbox.utf8) ? std::string("INBOX") : remoteToPath(l->mailbox.utf8, l->delimiter);
      f.specialUse = specialUseOf(*l);
      f.selectable = !l->hasAttribute("\\Noselect") && !l->hasAttribute("\\NonExistent");
      f.subscribed = l->hasAttribute("\\Subscribed");
      ctx->byWire[f.id] = ctx->folders.size();
      ctx->folders.push_back(std::move(f));
    } else if (auto* s = std::get_if<client::StatusData>(&r)) {
      auto it = ctx->byWire.find(s->mailbox.wire);
      if (it == ctx->byWire.end()) return;
      sync::FolderState st;
      st.uidValidity = s->uidValidity.value_or(0);
      st.uidNext = s->uidNext.value_or(0);
      st.messages = s->messages.value_or(0);
      st.highestModSeq = s->highestModSeq.value_or(0);
      ctx->folders[it->second].status = st;
    }
  };
  runSimple("LIST", main_->builder().list("", "*", lo),
            [this, ctx, listStatus, statusItems, onUntagged, done = std::move(done)](Result<client::StatusText> r) {
              if (!r) return done(propagate(r));
              if (listStatus) return done(std::move(ctx->folders));
              // No LIST-STATUS: one STATUS per folder, all pipelined (one round trip).
              auto left = std::make_shared<size_t>(1);
              auto finish = [ctx, left, done] {
                if (--*left == 0) done(std::move(ctx->folders));
              };
              for (const auto& f : ctx->folders) {
                if (!f.selectable) continue;
                auto cmd = main_->builder().status(client::Mailbox::fromWire(f.id), statusItems);
                if (!cmd) continue;
                ++*left;
                main_->run(std::move(*cmd), onUntagged, [finish](const Result<client::StatusText>&) { finish(); });
              }
              finish();
            },
            onUntagged);
}

void UpstreamImap::select(const std::string& folder, std::function<void(Status)> done) {
  if (selected_ == folder) return done({});
  client::SelectOptions so;
  so.condstore = main_->condstore();
  selected_.clear();
  runSimple("SELECT " + folder, main_->builder().select(client::Mailbox::fromWire(folder), so),
            [this, folder, done = std::move(done)](Result<client::StatusText> r) {
              if (!r) return done(propagate(r));
              selected_ = folder;
              done({});
            });
}

void UpstreamImap::fetchChanges(const sync::RemoteFolder& folder, const sync::FolderState& since,
                                std::function<void(Result<sync::FolderChanges>)> done) {
  struct Ctx {
    sync::FolderChanges ch;
    std::optional<Error> error;
    bool searched = false;
  };
  auto ctx = std::make_shared<Ctx>();
  auto onUntagged = [ctx](client::Response& r) {
    if (auto* s = std::get_if<client::UntaggedStatus>(&r)) {
      const auto& c = s->status.code;
      if (c.kind == client::CodeKind::UidValidity) ctx->ch.state.uidValidity = static_cast<uint32_t>(c.number);
      else if (c.kind == client::CodeKind::UidNext) ctx->ch.state.uidNext = static_cast<uint32_t>(c.number);
      else if (c.kind == client::CodeKind::HighestModSeq) ctx->ch.state.highestModSeq = c.number;
    } else if (auto* e = std::get_if<client::ExistsData>(&r)) {
      ctx->ch.state.messages = e->count;
    } else if (auto* v = std::get_if<client::VanishedData>(&r)) {
      for (uint32_t u : expand(v->uids)) ctx->ch.vanished.push_back(u);
    } else if (auto* f = std::get_if<client::FetchData>(&r)) {
      if (f->uid && f->flags) ctx->ch.flags.push_back(flagsOf(*f));
    } else if (auto* s = std::get_if<client::SearchData>(&r)) {
      ctx->ch.existing = s->numbers;
    } else if (auto* e = std::get_if<client::EsearchData>(&r)) {
      ctx->ch.existing = e->all ? expand(*e->all) : std::vector<uint32_t>{};
    }
  };
  auto check = [ctx](const char* what) {
    return [ctx, what](const Result<client::StatusText>& r) {
      if (ctx->error) return;
      if (!r) ctx->error = r.error();
      else if (r->status != client::StatusKind::Ok) ctx->error = upstreamError(what, *r);
    };
  };

  bool known = since.uidValidity != 0 && since.highestModSeq != 0;
  client::SelectOptions so;
  so.condstore = main_->condstore();
  bool qresync = known && main_->qresync();
  if (qresync) so.qresync = imap::QresyncParams{since.uidValidity, since.highestModSeq, std::nullopt, std::nullopt, std::nullopt};
  auto sel = main_->builder().select(client::Mailbox::fromWire(folder.id), so);
  if (!sel) return done(std::unexpected(sel.error()));
  selected_.clear();
  main_->run(std::move(*sel), onUntagged, check("SELECT"));

  std::vector<std::string> items = {"UID", "FLAGS"};
  if (main_->condstore()) items.push_back("MODSEQ");
  if (qresync) {
    // The SELECT itself reports VANISHED (EARLIER) and the changed FLAGS.
  } else if (known && main_->condstore()) {
    client::FetchOptions fo;
    fo.changedSince = since.highestModSeq;
    if (auto c = main_->builder().uidFetch(imap::SequenceSet::range(1, imap::SeqRange::kStar), items, fo))
      main_->run(std::move(*c), onUntagged, check("UID FETCH"));
    client::SearchOptions so2;
    if (main_->features().esearch) so2.returns = {imap::SearchReturn::All};
    if (auto c = main_->builder().uidSearch("ALL", so2)) main_->run(std::move(*c), onUntagged, check("UID SEARCH"));
  } else {
    ctx->ch.complete = true;
    if (auto c = main_->builder().uidFetch(imap::SequenceSet::range(1, imap::SeqRange::kStar), items))
      main_->run(std::move(*c), onUntagged, check("UID FETCH"));
  }
  // A NOOP closes the pipeline: its completion means every command above is done.
  auto alive = alive_;
  std::string id = folder.id;
  main_->run(main_->builder().noop(), onUntagged,
             [this, alive, ctx, id, since, done = std::move(done)](const Result<client::StatusText>& r) {
               if (!*alive) return;
               if (!r) return done(std::unexpected(r.error()));
               if (ctx->error) return done(std::unexpected(*ctx->error));
               selected_ = id;
               ctx->ch.uidValidityChanged = since.uidValidity != 0 && ctx->ch.state.uidValidity != since.uidValidity;
               if (!main_->condstore()) ctx->ch.state.highestModSeq = 0;
               done(std::move(ctx->ch));
             });
}

void UpstreamImap::fetchMeta(const std::string& folder, uint32_t from,
                             std::function<void(Result<std::vector<sync::RemoteMessage>>)> done) {
  select(folder, [this, from, done = std::move(done)](Status s) mutable {
    if (!s) return done(std::unexpected(s.error()));
    auto out = std::make_shared<std::vector<sync::RemoteMessage>>();
    std::vector<std::string> items = {"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"};
    runSimple(
        "UID FETCH", main_->builder().uidFetch(imap::SequenceSet::range(std::max<uint32_t>(from, 1), imap::SeqRange::kStar), items),
        [out, done = std::move(done)](Result<client::StatusText> r) {
          if (!r) return done(propagate(r));
          done(std::move(*out));
        },
        [out, from](client::Response& r) {
          auto* f = std::get_if<client::FetchData>(&r);
          if (!f || !f->uid || *f->uid < from) return;  // "n:*" also returns the last message when n is past it
          sync::RemoteMessage m;
          m.meta = flagsOf(*f);
          if (f->internalDate) m.internalDate = toUnixSeconds(*f->internalDate);
          m.size = f->rfc822Size.value_or(0);
          for (const auto& b : f->bodies)
            if (b.data) m.messageId = mime::messageIdOf(*b.data);
          out->push_back(std::move(m));
        });
  });
}

void UpstreamImap::fetchFlags(const std::string& folder, std::vector<uint32_t> uids,
                              std::function<void(Result<std::vector<sync::RemoteFlags>>)> done) {
  if (uids.empty()) return done(std::vector<sync::RemoteFlags>{});
  select(folder, [this, uids = std::move(uids), done = std::move(done)](Status s) mutable {
    if (!s) return done(std::unexpected(s.error()));
    auto out = std::make_shared<std::vector<sync::RemoteFlags>>();
    std::vector<std::string> items = {"UID", "FLAGS"};
    if (main_->condstore()) items.push_back("MODSEQ");
    std::set<uint32_t> wanted(uids.begin(), uids.end());
    runSimple(
        "UID FETCH", main_->builder().uidFetch(compress(std::move(uids)), items),
        [out, done = std::move(done)](Result<client::StatusText> r) {
          if (!r) return done(propagate(r));
          done(std::move(*out));
        },
        [out, wanted](client::Response& r) {
          auto* f = std::get_if<client::FetchData>(&r);
          if (!f || !f->uid || !f->flags || !wanted.count(*f->uid)) return;
          out->push_back(flagsOf(*f));
        });
  });
}

void UpstreamImap::fetchMessages(const std::string& folder, std::vector<uint32_t> uids, bool headersOnly,
                                 std::function<void(sync::RemoteMessage&&)> onMessage, std::function<void(Status)> done) {
  auto alive = alive_;
  select(folder, [this, alive, headersOnly, uids = std::move(uids), onMessage = std::move(onMessage), done = std::move(done)](Status s) mutable {
    if (!s) return done(std::unexpected(s.error()));
    std::sort(uids.begin(), uids.end());
    struct Ctx {
      std::vector<imap::SequenceSet> batches;
      size_t next = 0, inFlight = 0;
      std::optional<Error> error;
      std::function<void(sync::RemoteMessage&&)> onMessage;
      std::function<void(Status)> done;
      bool finished = false;
    };
    auto ctx = std::make_shared<Ctx>();
    for (size_t i = 0; i < uids.size(); i += kFetchBatch)
      ctx->batches.push_back(compress({uids.begin() + i, uids.begin() + std::min(uids.size(), i + kFetchBatch)}));
    ctx->onMessage = std::move(onMessage);
    ctx->done = std::move(done);
    std::vector<std::string> items = {"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE",
                                      headersOnly ? "BODY.PEEK[HEADER]" : "BODY.PEEK[]"};
    if (headersOnly) items.push_back("BODYSTRUCTURE");  // served without the body
    if (main_->condstore()) items.push_back("MODSEQ");
    std::string section = headersOnly ? "HEADER" : "";
    auto onUntagged = [ctx, section, headersOnly](client::Response& r) {
      auto* f = std::get_if<client::FetchData>(&r);
      if (!f || !f->uid || ctx->error) return;
      sync::RemoteMessage m;
      m.meta = flagsOf(*f);
      if (f->internalDate) m.internalDate = toUnixSeconds(*f->internalDate);
      m.size = f->rfc822Size.value_or(0);
      for (auto& b : f->bodies)
        if (b.item == "BODY" && b.section == section && b.data) m.bytes = std::move(*b.data);
      if (!m.bytes) return;  // a FETCH of flags alone (another client changed them)
      m.headersOnly = headersOnly;
      if (headersOnly) m.bodyStructure = std::move(f->bodyStructure);
      ctx->onMessage(std::move(m));
    };
    auto pump = std::make_shared<std::function<void()>>();
    *pump = [this, alive, ctx, items, onUntagged, pump] {
      if (!*alive || ctx->finished) return;
      while (!ctx->error && ctx->inFlight < kFetchWindow && ctx->next < ctx->batches.size()) {
        auto cmd = main_->builder().uidFetch(ctx->batches[ctx->next++], items);
        if (!cmd) {
          ctx->error = cmd.error();
          break;
        }
        ++ctx->inFlight;
        main_->run(std::move(*cmd), onUntagged, [alive, ctx, pump](const Result<client::StatusText>& r) {
          if (!*alive) return;
          --ctx->inFlight;
          if (!ctx->error) {
            if (!r) ctx->error = r.error();
            else if (r->status != client::StatusKind::Ok) ctx->error = upstreamError("UID FETCH", *r);
          }
          (*pump)();
        });
      }
      if (ctx->inFlight == 0 && (ctx->error || ctx->next == ctx->batches.size())) {
        ctx->finished = true;
        auto d = std::move(ctx->done);
        auto p = std::move(*pump);  // break the cycle pump -> lambda -> pump
        if (ctx->error) d(std::unexpected(*ctx->error));
        else d({});
      }
    };
    (*pump)();
  });
}

void UpstreamImap::findByMessageId(const std::string& folder, const std::string& messageId,
                                   std::function<void(Result<std::optional<uint32_t>>)> done) {
  select(folder, [this, messageId, done = std::move(done)](Status s) mutable {
    if (!s) return done(std::unexpected(s.error()));
    auto args = main_->builder().args();
    args.atom("HEADER").atom("Message-ID").string(messageId);
    auto found = std::make_shared<std::vector<uint32_t>>();
    runSimple(
        "UID SEARCH", main_->builder().custom("UID SEARCH", std::move(args)),
        [found, done = std::move(done)](Result<client::StatusText> r) {
          // A refused SEARCH finds nothing: the caller appends (or leaves it unmapped).
          if (!r && r.error().kind != ErrorKind::Upstream) return done(propagate(r));
          if (!r || found->empty()) return done(std::optional<uint32_t>{});
          // The newest copy: the one just appended.
          done(std::optional<uint32_t>{*std::max_element(found->begin(), found->end())});
        },
        [found](client::Response& r) {
          if (auto* s = std::get_if<client::SearchData>(&r)) *found = s->numbers;
        });
  });
}

void UpstreamImap::expungeUids(const std::vector<uint32_t>& uids, std::function<void(Status)> done) {
  client::StoreOptions so;
  so.silent = true;
  auto check = [](std::function<void(Status)> next) {
    return [next](Result<client::StatusText> r) {
      if (!r) return next(propagate(r));
      next({});
    };
  };
  if (main_->hasCapability("UIDPLUS")) {
    if (auto st = main_->builder().uidStore(compress(uids), client::StoreMode::Add, {"\\Deleted"}, so))
      main_->run(std::move(*st), nullptr, nullptr);
    return runSimple("UID EXPUNGE", main_->builder().uidExpunge(compress(uids)), check(done));
  }
  // No UID EXPUNGE (RFC 4315): a plain EXPUNGE removes every \Deleted message,
  // so others marked \Deleted (by another client, not expunged) are unmarked
  // around it and marked again after. One command at a time: Dovecot runs
  // some pipelined commands in parallel.
  std::set<uint32_t> mine(uids.begin(), uids.end());
  auto found = std::make_shared<std::vector<uint32_t>>();
  auto afterSearch = [this, found, mine, done, check, so](Status s) {
    if (!s) return done(s);
    std::vector<uint32_t> others;
    for (uint32_t u : *found)
      if (!mine.count(u)) others.push_back(u);
    logDebug("upstream.expunge_plain").kv("account", accountName_).kv("deleted", found->size()).kv("spared", others.size());
    if (others.empty()) return runSimple("EXPUNGE", main_->builder().expunge(), check(done));
    auto set = compress(others);
    runSimple("UID STORE", main_->builder().uidStore(set, client::StoreMode::Remove, {"\\Deleted"}, so),
              check([this, set, done, check, so](Status s) {
                if (!s) return done(s);
                runSimple("EXPUNGE", main_->builder().expunge(), check([this, set, done, check, so](Status s) {
                            if (!s) return done(s);
                            runSimple("UID STORE", main_->builder().uidStore(set, client::StoreMode::Add, {"\\Deleted"}, so),
                                      check(done));
                          }));
              }));
  };
  runSimple("UID STORE", main_->builder().uidStore(compress(uids), client::StoreMode::Add, {"\\Deleted"}, so),
            check([this, found, afterSearch, check](Status s) {
              if (!s) return afterSearch(s);
              runSimple("UID SEARCH DELETED", main_->builder().uidSearch("DELETED"), check(afterSearch),
                        [found](client::Response& r) {
                          if (auto* x = std::get_if<client::SearchData>(&r)) *found = x->numbers;
                        });
            }));
}

void UpstreamImap::apply(const sync::Op& op, std::function<void(Result<sync::OpResult>)> done) {
  // A command whose refusal with one of okCodes means it was done before
  // (CREATE of an existing folder: ALREADYEXISTS).
  auto simple = [this](const std::string& what, Result<client::Command> cmd,
                       std::function<void(Result<sync::OpResult>)> done, std::vector<std::string> okCodes = {}) {
    runSimple(what, std::move(cmd), [okCodes, done = std::move(done)](Result<client::StatusText> r) {
      if (r) return done(sync::OpResult{});
      if (r.error().kind == ErrorKind::Upstream && !r.error().respCode.empty() &&
          std::find(okCodes.begin(), okCodes.end(), r.error().respCode) != okCodes.end()) {
        sync::OpResult res;
        res.alreadyDone = true;
        return done(res);
      }
      done(propagate(r));
    });
  };

  if (auto* a = std::get_if<sync::AppendOp>(&op)) {
    auto doAppend = [this, a = *a, done](void) mutable {
      client::AppendOptions ao;
      ao.flags = store::flagWords(a.flags, a.keywords);
      if (a.internalDate) ao.internalDate = fromUnixSeconds(a.internalDate);
      ao.binary = main_->features().binary && a.bytes.find('\0') != std::string::npos;
      runSimple("APPEND", main_->builder().append(client::Mailbox::fromWire(a.folder), std::move(a.bytes), ao),
                [this, folder = a.folder, id = a.messageId, done](Result<client::StatusText> r) {
                  if (!r) return done(propagate(r));
                  sync::OpResult res;
                  if (r->code.kind == client::CodeKind::AppendUid) res.newUids = expand(r->code.uids);
                  if (!res.newUids.empty() || id.empty()) return done(res);
                  // No APPENDUID (a server without UIDPLUS): find the new UID by
                  // its Message-ID, so the message is not downloaded as a second copy.
                  findByMessageId(folder, id, [done](Result<std::optional<uint32_t>> found) {
                    if (!found) return done(std::unexpected(found.error()));
                    sync::OpResult res;
                    if (*found) res.newUids = {**found};
                    done(res);
                  });
                });
    };
    if (!a->lookupFirst || a->messageId.empty()) return doAppend();
    // A retry: the earlier attempt may have reached the server before we
    // could record it. Look for the Message-ID first.
    return findByMessageId(a->folder, a->messageId, [doAppend, done](Result<std::optional<uint32_t>> found) mutable {
      if (!found) return done(std::unexpected(found.error()));
      if (!*found) return doAppend();
      sync::OpResult res;
      res.alreadyDone = true;
      res.newUids = {**found};
      done(res);
    });
  }
  if (auto* f = std::get_if<sync::FlagsOp>(&op)) {
    if (f->uids.empty()) return done(sync::OpResult{{}, "", true});
    return select(f->folder, [this, f = *f, simple, done](Status s) {
      if (!s) return done(std::unexpected(s.error()));
      client::StoreOptions so;
      so.silent = true;
      auto mode = f.mode == sync::FlagsOp::Mode::Add      ? client::StoreMode::Add
                  : f.mode == sync::FlagsOp::Mode::Remove ? client::StoreMode::Remove
                                                          : client::StoreMode::Replace;
      simple("UID STORE", main_->builder().uidStore(compress(f.uids), mode, store::flagWords(f.flags, f.keywords), so), done);
    });
  }
  if (auto* c = std::get_if<sync::CopyOp>(&op)) {
    if (c->uids.empty()) return done(sync::OpResult{{}, "", true});
    return select(c->from, [this, c = *c, done](Status s) {
      if (!s) return done(std::unexpected(s.error()));
      bool useMove = c.move && main_->hasCapability("MOVE");
      auto code = std::make_shared<std::optional<client::ResponseCode>>();
      auto cmd = useMove ? main_->builder().uidMove(compress(c.uids), client::Mailbox::fromWire(c.to))
                         : main_->builder().uidCopy(compress(c.uids), client::Mailbox::fromWire(c.to));
      runSimple(
          useMove ? "UID MOVE" : "UID COPY", std::move(cmd),
          [this, c, useMove, code, done](Result<client::StatusText> r) {
            if (!r) return done(propagate(r));
            if (r->code.kind == client::CodeKind::CopyUid) *code = r->code;
            sync::OpResult res;
            if (*code) {
              auto src = expand((*code)->sourceUids), dst = expand((*code)->uids);
              std::map<uint32_t, uint32_t> m;
              for (size_t i = 0; i < src.size() && i < dst.size(); ++i) m[src[i]] = dst[i];
              for (uint32_t u : c.uids) res.newUids.push_back(m.count(u) ? m[u] : 0);
            }
            // No COPYUID (a server without UIDPLUS): find the copies by Message-ID.
            auto finish = [this, c, done](sync::OpResult res) {
              if (!res.newUids.empty() || c.messageIds.size() != c.uids.size()) return done(res);
              // One SEARCH at a time: Dovecot may send the untagged responses of
              // pipelined commands out of order, and each SEARCH has its own result.
              auto found = std::make_shared<sync::OpResult>(res);
              found->newUids.assign(c.uids.size(), 0);
              auto step = std::make_shared<std::function<void(size_t)>>();
              *step = [this, c, found, done, step](size_t i) {
                while (i < c.uids.size() && c.messageIds[i].empty()) ++i;
                if (i >= c.uids.size()) {
                  auto keep = std::move(*step);  // break the cycle; only copies below
                  auto d = done;
                  auto f = found;
                  return d(*f);
                }
                // A failed lookup leaves the copy unmapped (downloaded once more),
                // never a second COPY upstream.
                findByMessageId(c.to, c.messageIds[i], [found, step, i](Result<std::optional<uint32_t>> f) {
                  if (f && *f) found->newUids[i] = **f;
                  (*step)(i + 1);
                });
              };
              (*step)(0);
            };
            if (!c.move || useMove) return finish(res);
            // No MOVE: COPY, then expunge the originals.
            expungeUids(c.uids, [res, done, finish](Status s) {
              if (!s) return done(std::unexpected(s.error()));
              finish(res);
            });
          },
          [code](client::Response& r) {
            if (auto* s = std::get_if<client::UntaggedStatus>(&r))
              if (s->status.code.kind == client::CodeKind::CopyUid) *code = s->status.code;
          });
    });
  }
  if (auto* e = std::get_if<sync::ExpungeOp>(&op)) {
    if (e->uids.empty()) return done(sync::OpResult{{}, "", true});
    return select(e->folder, [this, e = *e, simple, done](Status s) {
      if (!s) return done(std::unexpected(s.error()));
      expungeUids(e.uids, [done](Status s) {
        if (!s) return done(std::unexpected(s.error()));
        done(sync::OpResult{});
      });
    });
  }
  if (auto* c = std::get_if<sync::CreateFolderOp>(&op)) {
    std::string id = folderIdForPath(c->path);
    return simple("CREATE", main_->builder().create(client::Mailbox::fromWire(id)),
                  [id, done](Result<sync::OpResult> r) {
                    if (r) r->folder = id;
                    done(std::move(r));
                  },
                  {"ALREADYEXISTS"});
  }
  if (auto* d = std::get_if<sync::DeleteFolderOp>(&op)) {
    if (selected_ == d->folder) selected_.clear();
    return simple("DELETE", main_->builder().deleteMailbox(client::Mailbox::fromWire(d->folder)), done, {"NONEXISTENT"});
  }
  if (auto* r = std::get_if<sync::RenameFolderOp>(&op)) {
    if (selected_ == r->folder) selected_.clear();
    std::string id = folderIdForPath(r->toPath);
    return simple("RENAME", main_->builder().rename(client::Mailbox::fromWire(r->folder), client::Mailbox::fromWire(id)),
                  [id, done](Result<sync::OpResult> res) {
                    if (res) res->folder = id;
                    done(std::move(res));
                  });
  }
  if (auto* s = std::get_if<sync::SubscribeOp>(&op)) {
    auto m = client::Mailbox::fromWire(s->folder);
    return simple(s->subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE",
                  s->subscribe ? main_->builder().subscribe(m) : main_->builder().unsubscribe(m), done);
  }
}

void UpstreamImap::watch(std::vector<std::string> folders, std::function<void(const std::string&)> onChange) {
  onChange_ = std::move(onChange);
  if (!main_ || !main_->hasCapability("IDLE")) return;
  for (auto& f : folders) {
    bool have = false;
    for (auto& w : watchers_) have = have || w->folder == f;
    if (have) continue;
    auto w = std::make_unique<Watcher>();
    w->folder = f;
    w->owner = this;
    w->timer = new uv_timer_t;
    uv_timer_init(loop_, w->timer);
    w->timer->data = w.get();
    watchers_.push_back(std::move(w));
    startWatcher(*watchers_.back());
  }
}

void UpstreamImap::startWatcher(Watcher& w) {
  if (w.client) watcherBytes_ += w.client->bytesReceived();
  w.client = std::make_unique<ImapClient>(loop_, clientOptions());
  Watcher* wp = &w;
  auto retry = [this, wp](const ImapFailure& f) {
    ++wp->failures;
    // Reconnect with backoff; the owner's engine deals with auth failures
    // on its own connection.
    uint64_t delay = std::min<uint64_t>(60000, 1000ull << std::min<uint32_t>(wp->failures, 6));
    logInfo("upstream.idle_lost").kv("account", accountName_).kv("mailbox", wp->folder).kv("error", f.message).kv("retry_ms", delay);
    if (f.kind == ImapFailure::Kind::Auth) return;
    uv_timer_start(wp->timer, [](uv_timer_t* t) {
      auto* w = static_cast<Watcher*>(t->data);
      w->owner->startWatcher(*w);
    }, delay, 0);
    // Something may have changed while we were not listening.
    if (onChange_) onChange_(wp->folder);
  };
  auto idle = std::make_shared<std::function<void()>>();
  std::weak_ptr<std::function<void()>> weakIdle = idle;
  *idle = [this, wp, weakIdle] {
    auto idle = weakIdle.lock();
    if (!idle) return;
    auto onUntagged = [this, wp](client::Response& r) {
      if (std::holds_alternative<client::ExistsData>(r) || std::holds_alternative<client::ExpungeData>(r) ||
          std::holds_alternative<client::FetchData>(r) || std::holds_alternative<client::VanishedData>(r)) {
        if (onChange_) onChange_(wp->folder);
      }
    };
    wp->client->run(
        wp->client->builder().idle(), onUntagged,
        [this, wp, idle](const Result<client::StatusText>& r) {
          if (!r && r.error().kind == ErrorKind::Unavailable) return;  // the connection is gone: retry follows
          if (r && r->status != client::StatusKind::Ok) return;  // the watcher stays quiet; polling covers the folder
          // A notification that could not be read is still news of a change.
          if (!r && onChange_) onChange_(wp->folder);
          (*idle)();  // IDLE ended (refresh): start the next one
        },
        [wp](const client::Continuation&) {
          wp->failures = 0;
          uv_timer_start(wp->timer, [](uv_timer_t* t) { static_cast<Watcher*>(t->data)->client->idleDone(); },
                         kIdleRefreshMs, 0);
        });
  };
  w.client->setUnsolicited([this, wp](client::Response& r) {
    if (std::holds_alternative<client::ExistsData>(r) && onChange_) onChange_(wp->folder);
  });
  w.client->connect(
      [this, wp, idle] {
        client::SelectOptions so;
        so.readOnly = true;
        auto cmd = wp->client->builder().select(client::Mailbox::fromWire(wp->folder), so);
        if (!cmd) return;
        wp->client->run(std::move(*cmd), nullptr, [idle](const Result<client::StatusText>& r) {
          if (!r || r->status != client::StatusKind::Ok) return;
          (*idle)();
        });
      },
      retry);
}

}  // namespace mb::connectors
