// Pure decisions of the sync engine (see sync_logic.h).
#include "daemon/sync/sync_logic.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "protocols/imap/mutf7.h"

namespace mb::sync {

std::string serializeFolderState(const StoredFolder& s) {
  nlohmann::json j{{"uidvalidity", s.state.uidValidity},
                   {"uidnext", s.state.uidNext},
                   {"messages", s.state.messages},
                   {"highestmodseq", s.state.highestModSeq},
                   {"complete", s.complete}};
  return j.dump();
}

StoredFolder parseFolderState(const std::string& text) {
  StoredFolder s;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return s;
  auto num = [&](const char* k) -> uint64_t {
    auto it = j.find(k);
    return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
  };
  s.state.uidValidity = static_cast<uint32_t>(num("uidvalidity"));
  s.state.uidNext = static_cast<uint32_t>(num("uidnext"));
  s.state.messages = static_cast<uint32_t>(num("messages"));
  s.state.highestModSeq = num("highestmodseq");
  auto c = j.find("complete");
  s.complete = c != j.end() && c->is_boolean() && c->get<bool>() && s.state.uidValidity != 0;
  return s;
}

namespace {

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

bool has(const std::vector<std::string>& sortedWords, const std::string& w) {
  return std::binary_search(sortedWords.begin(), sortedWords.end(), w);
}

}  // namespace

FlagState mergeFlags(const FlagState& base, const FlagState& local, const FlagState& upstream) {
  FlagState out;
  uint32_t localOnly = (local.flags ^ base.flags) & ~(upstream.flags ^ base.flags);
  out.flags = (upstream.flags & ~localOnly) | (local.flags & localOnly);
  auto b = sorted(base.keywords), l = sorted(local.keywords), u = sorted(upstream.keywords);
  std::set<std::string> all(b.begin(), b.end());
  all.insert(l.begin(), l.end());
  all.insert(u.begin(), u.end());
  for (const auto& k : all) {
    bool inB = has(b, k), inL = has(l, k), inU = has(u, k);
    bool take = (inL != inB && inU == inB) ? inL : inU;
    if (take) out.keywords.push_back(k);
  }
  return out;
}

ChangePlan planChanges(const std::vector<LocalMessage>& local, const FolderChanges& ch) {
  ChangePlan plan;
  std::map<uint32_t, const LocalMessage*> byUpstream;
  for (const auto& m : local)
    if (m.upstreamUid) byUpstream[*m.upstreamUid] = &m;

  std::set<uint32_t> present;  // upstream UIDs known to exist now
  std::set<uint32_t> wantDownload;
  for (const auto& r : ch.flags) {
    present.insert(r.uid);
    auto it = byUpstream.find(r.uid);
    if (it == byUpstream.end()) {
      wantDownload.insert(r.uid);
      continue;
    }
    const LocalMessage& m = *it->second;
    FlagState up{r.flags, sorted(r.keywords)};
    FlagState now{m.flags, sorted(m.keywords)};
    if (m.upstreamBase) {
      FlagState merged = mergeFlags(*m.upstreamBase, now, up);
      std::optional<FlagState> base;
      if (merged != up) base = up;  // still to be sent; the upstream now has `up`
      plan.flagUpdates.push_back({m.uid, merged.flags, merged.keywords, base});
    } else if (now != up) {
      plan.flagUpdates.push_back({m.uid, up.flags, up.keywords, std::nullopt});
    }
  }
  std::set<uint32_t> gone(ch.vanished.begin(), ch.vanished.end());
  if (ch.existing) {
    std::set<uint32_t> existing(ch.existing->begin(), ch.existing->end());
    for (const auto& [up, m] : byUpstream)
      if (!existing.count(up)) gone.insert(up);
    for (uint32_t u : existing)
      if (!byUpstream.count(u)) wantDownload.insert(u);
  }
  if (ch.complete) {
    for (const auto& [up, m] : byUpstream)
      if (!present.count(up)) gone.insert(up);
  }
  for (uint32_t up : gone) {
    auto it = byUpstream.find(up);
    if (it != byUpstream.end()) plan.removals.push_back(it->second->uid);
    wantDownload.erase(up);
  }
  plan.downloads.assign(wantDownload.begin(), wantDownload.end());
  std::sort(plan.removals.begin(), plan.removals.end());
  return plan;
}

FlagPush planFlagPush(const std::vector<LocalMessage>& local, const std::vector<RemoteFlags>& upstream) {
  FlagPush out;
  std::map<uint32_t, const RemoteFlags*> byUid;
  for (const auto& r : upstream) byUid[r.uid] = &r;
  std::map<std::pair<bool, std::pair<uint32_t, std::vector<std::string>>>, std::vector<uint32_t>> groups;
  for (const auto& m : local) {
    if (!m.upstreamBase || !m.upstreamUid) continue;
    auto it = byUid.find(*m.upstreamUid);
    if (it == byUid.end()) continue;  // expunged upstream: the next fetch removes it
    FlagState up{it->second->flags, sorted(it->second->keywords)};
    FlagState merged = mergeFlags(*m.upstreamBase, m.flagState(), up);
    out.merged.emplace_back(m.uid, merged);
    FlagState add, remove;
    add.flags = merged.flags & ~up.flags;
    remove.flags = up.flags & ~merged.flags;
    for (const auto& k : merged.keywords)
      if (!has(up.keywords, k)) add.keywords.push_back(k);
    for (const auto& k : up.keywords)
      if (!has(merged.keywords, k)) remove.keywords.push_back(k);
    if (add.flags || !add.keywords.empty()) groups[{true, {add.flags, add.keywords}}].push_back(*m.upstreamUid);
    if (remove.flags || !remove.keywords.empty()) groups[{false, {remove.flags, remove.keywords}}].push_back(*m.upstreamUid);
  }
  for (auto& [key, uids] : groups) {
    FlagPush::Store st;
    st.add = key.first;
    st.flags = {key.second.first, key.second.second};
    st.upstreamUids = std::move(uids);
    out.stores.push_back(std::move(st));
  }
  return out;
}

RemapPlan planRemap(const std::vector<LocalMessage>& local, const std::vector<RemoteMessage>& remote) {
  RemapPlan plan;
  using Key = std::tuple<std::string, uint64_t, int64_t>;
  std::multimap<Key, const RemoteMessage*> byKey;
  for (const auto& r : remote) byKey.emplace(Key{r.messageId, r.size, r.internalDate}, &r);
  std::set<uint32_t> taken;
  for (const auto& m : local) {
    if (!m.upstreamUid) continue;  // never upstream: its journal entry will send it
    auto [lo, hi] = byKey.equal_range(Key{m.messageId, m.size, m.internalDate});
    const RemoteMessage* match = nullptr;
    for (auto it = lo; it != hi; ++it) {
      if (taken.count(it->second->meta.uid)) continue;
      match = it->second;
      break;
    }
    if (!match || m.messageId.empty()) {
      plan.removals.push_back(m.uid);
      continue;
    }
    taken.insert(match->meta.uid);
    plan.rebind.emplace_back(m.uid, match->meta.uid);
    std::vector<std::string> kw = match->meta.keywords, localKw = m.keywords;
    std::sort(kw.begin(), kw.end());
    std::sort(localKw.begin(), localKw.end());
    if (m.flags != match->meta.flags || kw != localKw) plan.flagUpdates.push_back({m.uid, match->meta.flags, kw});
  }
  for (const auto& r : remote)
    if (!taken.count(r.meta.uid)) plan.downloads.push_back(r.meta.uid);
  std::sort(plan.downloads.begin(), plan.downloads.end());
  return plan;
}

FolderBinding bindFolder(const RemoteFolder& remote, const std::vector<LocalMailboxRef>& locals) {
  FolderBinding b;
  for (size_t i = 0; i < locals.size(); ++i)
    if (locals[i].upstreamName == remote.id) {
      b.existing = i;
      return b;
    }
  if (imap::isInbox(remote.path)) {
    for (size_t i = 0; i < locals.size(); ++i)
      if (locals[i].name == "INBOX") {
        b.existing = i;
        return b;
      }
    b.createName = "INBOX";
    return b;
  }
  // A special-use folder takes the local mailbox with the same use (the
  // provider's "Sent Items" becomes our "Sent"), unless that is bound already.
  bool useTaken = false;
  if (!remote.specialUse.empty()) {
    for (size_t i = 0; i < locals.size(); ++i) {
      if (locals[i].specialUse != remote.specialUse) continue;
      if (locals[i].upstreamName.empty()) {
        b.existing = i;
        return b;
      }
      useTaken = true;
    }
  }
  for (size_t i = 0; i < locals.size(); ++i)
    if (locals[i].name == remote.path && locals[i].upstreamName.empty()) {
      b.existing = i;
      return b;
    }
  // A name in use by a mailbox bound elsewhere: keep both, visibly.
  std::string name = remote.path;
  auto clash = [&](const std::string& n) {
    for (const auto& l : locals)
      if (l.name == n) return true;
    return false;
  };
  for (int n = 2; clash(name); ++n) name = remote.path + " (" + std::to_string(n) + ")";
  b.createName = name;
  if (!useTaken) b.createSpecialUse = remote.specialUse;
  return b;
}

std::vector<std::pair<size_t, size_t>> findRenames(const std::vector<LocalMailboxRef>& locals,
                                                   const std::vector<RemoteFolder>& remote) {
  std::set<std::string> listed, bound;
  for (const auto& r : remote) listed.insert(r.id);
  for (const auto& l : locals)
    if (!l.upstreamName.empty()) bound.insert(l.upstreamName);
  std::multimap<uint32_t, size_t> gone;  // UIDVALIDITY -> local index
  for (size_t i = 0; i < locals.size(); ++i) {
    const auto& l = locals[i];
    if (l.upstreamName.empty() || listed.count(l.upstreamName) || l.name == "INBOX" || !l.upstreamUidValidity) continue;
    gone.emplace(*l.upstreamUidValidity, i);
  }
  std::multimap<uint32_t, size_t> fresh;  // UIDVALIDITY -> remote index
  for (size_t i = 0; i < remote.size(); ++i)
    if (!bound.count(remote[i].id) && remote[i].status && remote[i].status->uidValidity && !imap::isInbox(remote[i].path))
      fresh.emplace(remote[i].status->uidValidity, i);
  std::vector<std::pair<size_t, size_t>> out;
  for (const auto& [v, li] : gone)
    if (gone.count(v) == 1 && fresh.count(v) == 1) out.emplace_back(li, fresh.find(v)->second);
  std::sort(out.begin(), out.end(), [&](const auto& a, const auto& b) {
    return remote[a.second].path.size() < remote[b.second].path.size();
  });
  return out;
}

bool folderWanted(const RemoteFolder& f, const std::vector<std::string>& wanted) {
  if (wanted.empty()) return true;
  for (const auto& w : wanted) {
    if (imap::isInbox(w) && imap::isInbox(f.path)) return true;
    if (w == f.path || w == f.id) return true;
  }
  return false;
}

uint64_t retryDelayMs(uint32_t failures, std::mt19937_64& rng) {
  uint64_t full = std::min<uint64_t>(300000, 1000ull << std::min<uint32_t>(failures > 0 ? failures - 1 : 0, 20));
  std::uniform_int_distribution<uint64_t> d(full / 2, full);
  return d(rng);
}

}  // namespace mb::sync
