// The sync engine's pure decisions: cursor round trip, what upstream changes
// mean locally, UIDVALIDITY re-mapping, folder binding, flag words, names,
// the retry schedule.
#include <gtest/gtest.h>

#include "daemon/connectors/imap_client.h"
#include "daemon/connectors/upstream_imap.h"
#include "daemon/store/store.h"
#include "daemon/sync/sync_logic.h"
#include "protocols/mime/analysis.h"

namespace mb::sync {
namespace {

LocalMessage local(uint32_t uid, std::optional<uint32_t> up, uint32_t flags = 0, std::vector<std::string> kw = {},
                   std::string mid = "", uint64_t size = 100, int64_t date = 1000) {
  LocalMessage m;
  m.uid = uid;
  m.upstreamUid = up;
  m.flags = flags;
  m.keywords = std::move(kw);
  m.messageId = std::move(mid);
  m.size = size;
  m.internalDate = date;
  return m;
}

RemoteFlags remote(uint32_t uid, uint32_t flags, std::vector<std::string> kw = {}) {
  return RemoteFlags{uid, flags, std::move(kw), 0};
}

TEST(SyncLogic, FolderStateRoundTripsAndRejectsGarbage) {
  StoredFolder s{{7, 42, 41, 99}, true};
  StoredFolder back = parseFolderState(serializeFolderState(s));
  EXPECT_EQ(back.state, s.state);
  EXPECT_TRUE(back.complete);
  EXPECT_FALSE(parseFolderState("").complete);
  EXPECT_FALSE(parseFolderState("{\"uidvalidity\":-1,\"complete\":true}").complete);
  EXPECT_FALSE(parseFolderState("[1,2]").complete);
}

TEST(SyncLogic, IncrementalChangesUpdateFlagsRemoveVanishedAndDownloadNew) {
  std::vector<LocalMessage> l = {local(1, 10, store::kFlagSeen), local(2, 11), local(3, 12, 0, {"$Work"}),
                                 local(4, std::nullopt)};  // 4: a local APPEND not sent yet
  FolderChanges ch;
  ch.flags = {remote(10, store::kFlagSeen), remote(11, store::kFlagFlagged), remote(12, 0, {"$Work"}), remote(13, 0)};
  ch.vanished = {12, 99};
  ChangePlan p = planChanges(l, ch);
  ASSERT_EQ(p.flagUpdates.size(), 1u);
  EXPECT_EQ(p.flagUpdates[0].uid, 2u);
  EXPECT_EQ(p.flagUpdates[0].flags, static_cast<uint32_t>(store::kFlagFlagged));
  EXPECT_EQ(p.removals, (std::vector<uint32_t>{3}));
  EXPECT_EQ(p.downloads, (std::vector<uint32_t>{13}));
}

// README "Conflict rules": per flag, a flag changed only locally takes the
// local value, anything else the upstream one (a change upstream after the
// local one started has the higher MODSEQ: it is newer).
TEST(SyncLogic, FlagsMergePerFlagAgainstWhereTheLocalChangeStarted) {
  using store::kFlagSeen, store::kFlagFlagged, store::kFlagAnswered;
  // Local set \Flagged; upstream cleared \Seen meanwhile: both kept.
  FlagState m = mergeFlags({kFlagSeen, {}}, {kFlagSeen | kFlagFlagged, {}}, {0, {}});
  EXPECT_EQ(m.flags, static_cast<uint32_t>(kFlagFlagged));
  // Local set then cleared \Flagged (no net local change); upstream set it
  // after: the upstream's is the newer change.
  m = mergeFlags({0, {}}, {0, {}}, {kFlagFlagged, {}});
  EXPECT_EQ(m.flags, static_cast<uint32_t>(kFlagFlagged));
  // A local FLAGS replace changes only the flags that differ from the start.
  m = mergeFlags({kFlagFlagged, {"$Old"}}, {kFlagSeen, {}}, {kFlagFlagged | kFlagAnswered, {"$New", "$Old"}});
  EXPECT_EQ(m.flags, static_cast<uint32_t>(kFlagSeen | kFlagAnswered));
  EXPECT_EQ(m.keywords, (std::vector<std::string>{"$New"}));
  // Both set the same flag: no conflict.
  m = mergeFlags({0, {}}, {kFlagSeen, {"$A"}}, {kFlagSeen, {"$A"}});
  EXPECT_EQ(m, (FlagState{kFlagSeen, {"$A"}}));
}

TEST(SyncLogic, PendingLocalFlagChangeSurvivesAnUpstreamReport) {
  auto m1 = local(1, 10, store::kFlagSeen | store::kFlagFlagged);  // local set \Flagged ...
  m1.upstreamBase = FlagState{store::kFlagSeen, {}};                // ... starting from \Seen
  auto m2 = local(2, 11, store::kFlagSeen);
  m2.upstreamBase = FlagState{0, {}};  // local set \Seen; upstream reports it set too
  auto m3 = local(3, 12, store::kFlagAnswered);
  m3.upstreamBase = FlagState{0, {}};  // expunged upstream: removed, pending or not
  FolderChanges ch;
  ch.flags = {remote(10, 0, {"$Up"}), remote(11, store::kFlagSeen)};
  ch.vanished = {12};
  ChangePlan p = planChanges({m1, m2, m3}, ch);
  ASSERT_EQ(p.flagUpdates.size(), 2u);
  EXPECT_EQ(p.flagUpdates[0].uid, 1u);
  EXPECT_EQ(p.flagUpdates[0].flags, static_cast<uint32_t>(store::kFlagFlagged));  // upstream's -\Seen, local +\Flagged
  EXPECT_EQ(p.flagUpdates[0].keywords, (std::vector<std::string>{"$Up"}));
  ASSERT_TRUE(p.flagUpdates[0].upstreamBase);  // still to send: +\Flagged against what upstream has now
  EXPECT_EQ(*p.flagUpdates[0].upstreamBase, (FlagState{0, {"$Up"}}));
  EXPECT_EQ(p.flagUpdates[1].uid, 2u);
  EXPECT_FALSE(p.flagUpdates[1].upstreamBase);  // both agree now
  EXPECT_EQ(p.removals, (std::vector<uint32_t>{3}));
}

TEST(SyncLogic, FlagPushSendsOnlyWhatTheMergeChanges) {
  auto a = local(1, 10, store::kFlagSeen | store::kFlagFlagged);
  a.upstreamBase = FlagState{store::kFlagSeen, {}};
  auto b = local(2, 11, 0, {"$Done"});
  b.upstreamBase = FlagState{store::kFlagSeen, {}};
  auto c = local(3, 12, store::kFlagFlagged);
  c.upstreamBase = FlagState{0, {}};  // expunged upstream
  auto d = local(4, 13, store::kFlagFlagged);  // merged already: nothing to send
  FlagPush p = planFlagPush({a, b, c, d}, {remote(10, 0), remote(11, store::kFlagSeen | store::kFlagAnswered), remote(13, 0)});
  // a: upstream cleared \Seen, local set \Flagged -> +\Flagged only (never +\Seen).
  // b: local cleared \Seen and set $Done -> -\Seen, +$Done; upstream's \Answered stays.
  ASSERT_EQ(p.merged.size(), 2u);
  EXPECT_EQ(p.merged[0], (std::pair<uint32_t, FlagState>{1, {store::kFlagFlagged, {}}}));
  EXPECT_EQ(p.merged[1], (std::pair<uint32_t, FlagState>{2, {store::kFlagAnswered, {"$Done"}}}));
  ASSERT_EQ(p.stores.size(), 3u);
  EXPECT_FALSE(p.stores[0].add);
  EXPECT_EQ(p.stores[0].flags, (FlagState{store::kFlagSeen, {}}));
  EXPECT_EQ(p.stores[0].upstreamUids, (std::vector<uint32_t>{11}));
  EXPECT_TRUE(p.stores[1].add);
  EXPECT_EQ(p.stores[1].flags, (FlagState{0, {"$Done"}}));
  EXPECT_EQ(p.stores[1].upstreamUids, (std::vector<uint32_t>{11}));
  EXPECT_TRUE(p.stores[2].add);
  EXPECT_EQ(p.stores[2].flags, (FlagState{store::kFlagFlagged, {}}));
  EXPECT_EQ(p.stores[2].upstreamUids, (std::vector<uint32_t>{10}));
}

TEST(SyncLogic, CompleteListingMeansTheRestIsGone) {
  std::vector<LocalMessage> l = {local(1, 10), local(2, 11), local(3, std::nullopt)};
  FolderChanges ch;
  ch.complete = true;
  ch.flags = {remote(11, 0), remote(14, 0)};
  ChangePlan p = planChanges(l, ch);
  EXPECT_EQ(p.removals, (std::vector<uint32_t>{1}));  // never the unsent local message
  EXPECT_EQ(p.downloads, (std::vector<uint32_t>{14}));
}

TEST(SyncLogic, ExistingListFindsExpungesWithoutQresync) {
  std::vector<LocalMessage> l = {local(1, 10), local(2, 11)};
  FolderChanges ch;
  ch.existing = std::vector<uint32_t>{11, 12};
  ChangePlan p = planChanges(l, ch);
  EXPECT_EQ(p.removals, (std::vector<uint32_t>{1}));
  EXPECT_EQ(p.downloads, (std::vector<uint32_t>{12}));
}

TEST(SyncLogic, KeywordOrderIsNoChange) {
  std::vector<LocalMessage> l = {local(1, 10, 0, {"$a", "$b"})};
  FolderChanges ch;
  ch.flags = {remote(10, 0, {"$b", "$a"})};
  EXPECT_TRUE(planChanges(l, ch).flagUpdates.empty());
}

TEST(SyncLogic, RemapKeepsLocalUidsAndNeverDuplicates) {
  std::vector<LocalMessage> l = {local(5, 1, 0, {}, "<a@x>", 100, 1000), local(6, 2, 0, {}, "<b@x>", 200, 2000),
                                 local(7, 3, 0, {}, "<a@x>", 100, 1000),  // a second copy of <a@x>
                                 local(8, 4, 0, {}, "<gone@x>", 50, 10), local(9, std::nullopt, 0, {}, "<new@x>")};
  auto rm = [](uint32_t uid, std::string mid, uint64_t size, int64_t date, uint32_t flags = 0) {
    RemoteMessage m;
    m.meta.uid = uid;
    m.meta.flags = flags;
    m.messageId = std::move(mid);
    m.size = size;
    m.internalDate = date;
    return m;
  };
  std::vector<RemoteMessage> r = {rm(100, "<a@x>", 100, 1000), rm(101, "<b@x>", 200, 2000, store::kFlagSeen),
                                  rm(102, "<c@x>", 300, 3000), rm(103, "<b@x>", 999, 2000)};
  RemapPlan p = planRemap(l, r);
  EXPECT_EQ(p.rebind, (std::vector<std::pair<uint32_t, uint32_t>>{{5, 100}, {6, 101}}));
  EXPECT_EQ(p.removals, (std::vector<uint32_t>{7, 8}));  // one upstream <a@x> only; <gone@x> is gone
  EXPECT_EQ(p.downloads, (std::vector<uint32_t>{102, 103}));
  ASSERT_EQ(p.flagUpdates.size(), 1u);
  EXPECT_EQ(p.flagUpdates[0].uid, 6u);
}

TEST(SyncLogic, FoldersBindBySpecialUseThenNameElseCreate) {
  std::vector<LocalMailboxRef> locals = {{"INBOX", "", ""}, {"Sent", "\\Sent", ""}, {"Projects", "", ""},
                                         {"Old", "", "Old"}};
  RemoteFolder sent{"Sent Items", "Sent Items", "\\Sent"};
  EXPECT_EQ(bindFolder(sent, locals).existing, std::optional<size_t>(1));
  RemoteFolder inbox{"INBOX", "INBOX", ""};
  EXPECT_EQ(bindFolder(inbox, locals).existing, std::optional<size_t>(0));
  RemoteFolder proj{"Projects", "Projects", ""};
  EXPECT_EQ(bindFolder(proj, locals).existing, std::optional<size_t>(2));
  RemoteFolder bound{"Old", "Renamed", ""};
  EXPECT_EQ(bindFolder(bound, locals).existing, std::optional<size_t>(3));
  RemoteFolder fresh{"a.b", "a/b", ""};
  auto b = bindFolder(fresh, locals);
  EXPECT_FALSE(b.existing);
  EXPECT_EQ(b.createName, "a/b");
  // A second \Sent when ours is bound: created, without the special use.
  locals[1].upstreamName = "Sent Items";
  RemoteFolder sent2{"Sent2", "Sent", "\\Sent"};
  b = bindFolder(sent2, locals);
  EXPECT_EQ(b.createName, "Sent (2)");
  EXPECT_EQ(b.createSpecialUse, "");
}

TEST(SyncLogic, RenamedUpstreamFolderIsFoundByItsUidValidity) {
  auto folder = [](std::string id, uint32_t validity) {
    RemoteFolder f;
    f.id = f.path = std::move(id);
    f.status = FolderState{validity, 10, 9, 0};
    return f;
  };
  std::vector<LocalMailboxRef> locals = {
      {"INBOX", "", "INBOX", 1},
      {"Alt", "", "Alt", 7},            // gone upstream; "Neu" has its UIDVALIDITY
      {"Alt/Kind", "", "Alt/Kind", 8},  // its child, renamed with it
      {"Weg", "", "Weg", 9},            // gone, nothing matches: deleted upstream
      {"Zwei", "", "Zwei", 5},          // two gone with the same UIDVALIDITY: not guessed
      {"Drei", "", "Drei", 5},
      {"Lokal", "", "", std::nullopt}};
  std::vector<RemoteFolder> remote = {folder("INBOX", 1), folder("Neu/Kind", 8), folder("Neu", 7), folder("Andere", 9 + 1),
                                      folder("Fuenf", 5)};
  auto r = findRenames(locals, remote);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0], (std::pair<size_t, size_t>{1, 2}));  // parent first
  EXPECT_EQ(r[1], (std::pair<size_t, size_t>{2, 1}));
  // A folder whose id is still listed was not renamed.
  remote.push_back(folder("Alt", 3));
  r = findRenames(locals, remote);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].first, 2u);
}

TEST(SyncLogic, FolderFilter) {
  RemoteFolder f{"INBOX.Work", "INBOX/Work", ""};
  EXPECT_TRUE(folderWanted(f, {}));
  EXPECT_TRUE(folderWanted(f, {"INBOX/Work"}));
  EXPECT_TRUE(folderWanted(f, {"INBOX.Work"}));
  EXPECT_FALSE(folderWanted(f, {"INBOX"}));
  RemoteFolder inbox{"INBOX", "INBOX", ""};
  EXPECT_TRUE(folderWanted(inbox, {"inbox"}));
}

TEST(SyncLogic, RetryDelayGrowsWithJitterAndIsCapped) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 50; ++i) {
    uint64_t d1 = retryDelayMs(1, rng);
    EXPECT_GE(d1, 500u);
    EXPECT_LE(d1, 1000u);
    uint64_t d30 = retryDelayMs(30, rng);
    EXPECT_GE(d30, 150000u);
    EXPECT_LE(d30, 300000u);
  }
}

TEST(ImapConnector, FlagWordsRoundTrip) {
  uint32_t flags = 0;
  std::vector<std::string> kw;
  store::parseFlagWords({"\\Seen", "\\recent", "$Label1", "\\FLAGGED", "\\*", "$Label1", "NonJunk"}, flags, kw);
  EXPECT_EQ(flags, static_cast<uint32_t>(store::kFlagSeen | store::kFlagFlagged));
  EXPECT_EQ(kw, (std::vector<std::string>{"$Label1", "NonJunk"}));
  EXPECT_EQ(store::flagWords(flags, kw), (std::vector<std::string>{"\\Seen", "\\Flagged", "$Label1", "NonJunk"}));
}

TEST(ImapConnector, NamesTranslateBetweenDelimiters) {
  EXPECT_EQ(connectors::remoteToPath("INBOX.Work.2024", '.'), "INBOX/Work/2024");
  EXPECT_EQ(connectors::remoteToPath("a/b.c", '.'), "a_b/c");
  EXPECT_EQ(connectors::remoteToPath("a/b", '/'), "a/b");
  EXPECT_EQ(connectors::remoteToPath("flat", std::nullopt), "flat");
  EXPECT_EQ(connectors::pathToRemote("INBOX/Work", '.'), "INBOX.Work");
  EXPECT_EQ(connectors::pathToRemote("a/b", '/'), "a/b");
}

TEST(ImapConnector, MessageIdOfFetchedHeaderFieldsMatchesTheStoredOne) {
  // BODY[HEADER.FIELDS (MESSAGE-ID)] and the analysis of the whole message
  // must agree, or a UIDVALIDITY re-map would match nothing.
  std::string raw = "Subject: x\r\nmessage-id:\r\n  <folded@b>  \r\n\r\nbody\r\n";
  EXPECT_EQ(mime::messageIdOf("message-id:\r\n  <folded@b>  \r\n\r\n"), "<folded@b>");
  EXPECT_EQ(mime::analyzeMessage(raw)->quick.messageId, "<folded@b>");
  EXPECT_EQ(mime::messageIdOf("\r\n"), "");
  EXPECT_EQ(mime::messageIdOf("X-Message-ID: <no>\r\n\r\n"), "");
}

TEST(ImapConnector, DateTimeToUnixAndBack) {
  imap::DateTime dt{{2024, 2, 29}, 23, 30, 0, 120};  // +0200
  int64_t t = connectors::toUnixSeconds(dt);
  EXPECT_EQ(t, 1709242200);
  imap::DateTime back = connectors::fromUnixSeconds(t);
  EXPECT_EQ(connectors::toUnixSeconds(back), t);
  EXPECT_EQ(back.zoneMinutes, 0);
}

}  // namespace
}  // namespace mb::sync
