// The IMAP4rev1 server session (RFC 3501 + the extensions in capabilities()),
// sans-I/O: fed client bytes, it produces response bytes and asks its host
// for the things it cannot do itself (check a login, start TLS). Mail data
// comes from a Backend; store changes arrive through onEvent().
//
// Rules (after mox's imapserver): untagged updates from other sessions are
// queued and sent only where RFC 3501 7.4.1 allows (no EXPUNGE during
// FETCH/STORE/SEARCH by sequence number); FETCH output is produced in bounded
// slices (wantsResume()/resume()) so one client cannot make us hold a whole
// mailbox in memory.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/imap/backend.h"
#include "protocols/imap/command.h"
#include "protocols/imap/parser.h"
#include "protocols/imap/writer.h"

namespace mb::imap {

struct SessionOptions {
  bool tlsActive = false;          // implicit TLS listener
  bool startTlsAvailable = false;  // a TLS context exists for STARTTLS
  bool requireTls = false;         // LOGINDISABLED before TLS (RFC 3501 6.2.3)
  ParserLimits limits;
  uint64_t appendLimit = 64ull * 1024 * 1024;  // APPENDLIMIT (RFC 7889)
  // Largest literal before login (a LOGIN user or password), so a client
  // that never logs in cannot make us hold limits.maxLiteralSize per
  // connection.
  uint64_t preAuthLiteralLimit = 8 * 1024;
  // Output bytes after which a FETCH pauses until the host calls resume().
  size_t outputHighWater = 1 << 20;
};

class Session {
 public:
  enum class State { NotAuthenticated, Authenticated, Selected, Logout };

  struct LoginRequest {
    std::string user;
    std::string password;
  };

  // `backend` must outlive the session.
  Session(Backend& backend, SessionOptions options);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // The greeting; call once before feeding.
  void start();
  void feed(std::string_view bytes);

  bool hasOutput() const { return !out_.empty(); }
  std::string takeOutput();
  size_t outputSize() const { return out_.size(); }
  // BYE sent: flush the output, then close the connection.
  bool closed() const { return state_ == State::Logout; }
  State state() const { return state_; }

  // A LOGIN / AUTHENTICATE is waiting for the host: check it, then call
  // loginDone(). Input stays buffered meanwhile.
  const std::optional<LoginRequest>& pendingLogin() const { return login_; }
  // accountId on success; an error of kind Auth for a bad login, anything
  // else for a temporary failure.
  void loginDone(Result<int64_t> accountId);

  // STARTTLS was accepted (the OK is in the output): flush it, start the
  // handshake, then call tlsStarted(). Bytes fed before are dropped.
  bool startTlsRequested() const { return startTls_; }
  void tlsStarted();

  // A FETCH paused at outputHighWater: take the output, wait for the socket
  // to drain, then resume().
  bool wantsResume() const { return fetch_.has_value() && !bodies_; }
  void resume();

  // A FETCH or SEARCH needs bodies the backend does not have yet
  // (Backend::bodilessUids): the host fetches them into the store, then
  // calls bodiesDone() with the outcome; the command goes on from where it
  // stopped, or is answered NO [UNAVAILABLE] with the error's text. Input
  // stays buffered meanwhile; updates from other sessions queue as usual.
  struct BodyRequest {
    int64_t mailboxId = 0;
    std::vector<uint32_t> uids;  // ascending
  };
  const std::optional<BodyRequest>& pendingBodies() const { return bodies_; }
  void bodiesDone(Status result);

  // True while the host should not read more input (login, TLS, paused
  // FETCH, bodies being fetched).
  bool busy() const { return login_.has_value() || startTls_ || fetch_.has_value() || bodies_.has_value() || search_.has_value(); }
  bool idling() const { return idleTag_.has_value(); }

  // A committed store change; `own` when this session's backend made it.
  void onEvent(const MailboxEvent& event, bool own);
  // The host's autologout timer fired (RFC 3501 5.4).
  void autologout();
  // The server is shutting down.
  void shutdown(std::string_view why);

  // Account id once authenticated (for per-account connection limits).
  int64_t accountId() const { return accountId_; }
  std::string capabilities() const;

 private:
  struct SearchContext;

  void process();
  void dispatch(Command& cmd);
  void answerParseError(const ParseError& e);
  void tagged(std::string_view tag, std::string_view status, std::string_view code, std::string_view text);
  void failed(std::string_view tag, const Error& e, std::string_view what);

  // Handlers returning bool: true means "done, send the generic tagged OK";
  // false means they answered (NO/BAD/special OK) themselves.
  // not authenticated
  void cmdLogin(const std::string& tag, std::string user, std::string password);
  void cmdAuthenticate(const std::string& tag, const AuthenticateCmd& cmd);
  void authResponse(const std::string& line);
  // authenticated
  bool cmdList(const std::string& tag, const ListCmd& cmd);
  bool cmdLsub(const std::string& tag, const LsubCmd& cmd);
  bool cmdStatus(const std::string& tag, const StatusCmd& cmd);
  void writeStatus(const std::string& wireName, const MailboxCountsInfo& c, const std::vector<StatusItem>& items);
  bool cmdCreate(const std::string& tag, const CreateCmd& cmd);
  bool cmdDelete(const std::string& tag, const DeleteCmd& cmd);
  bool cmdRename(const std::string& tag, const RenameCmd& cmd);
  bool cmdSubscribe(const std::string& tag, const std::string& mailbox, bool on);
  bool cmdAppend(const std::string& tag, AppendCmd& cmd);
  void cmdSelect(const std::string& tag, const SelectCmd& cmd);
  bool cmdEnable(const std::string& tag, const EnableCmd& cmd);
  void cmdIdle(const std::string& tag);
  // selected
  void cmdClose(const std::string& tag, bool expunge);
  void cmdExpunge(const std::string& tag, const ExpungeCmd& cmd);
  // bodiesAsked: run again after bodiesDone(), so bodies still missing now
  // cannot be had.
  void cmdSearch(const std::string& tag, const SearchCmd& cmd, bool bodiesAsked = false);
  void cmdFetch(const std::string& tag, const FetchCmd& cmd);
  void cmdStore(const std::string& tag, const StoreCmd& cmd);
  void cmdCopy(const std::string& tag, bool uid, const SequenceSet& set, const std::string& mailbox, bool move);

  void runFetch();
  enum class FetchResult { Ok, Unreadable, UnknownCte };
  // `stored`: the batch's stored ENVELOPE/BODYSTRUCTURE for this message, if
  // any; `header`: for a message without its body, the stored header block
  // that the FETCH (header items only) is answered from.
  FetchResult fetchOne(uint32_t seq, MessageInfo& info, const StoredStructure* stored, const std::string* header);
  // Asks the host for these bodies (see pendingBodies); false when they were
  // asked for already and are still missing (the caller then answers
  // without them).
  bool askBodies(std::vector<uint32_t> uids, bool askedBefore);
  bool matches(const SearchKey& key, SearchContext& ctx);

  // Sequence set -> ascending (seq, uid) pairs of the snapshot; false (and a
  // BAD already written) when a sequence number is out of range.
  bool resolve(const std::string& tag, const SequenceSet& set, bool uid, std::vector<uint32_t>& seqs);
  uint32_t seqOf(uint32_t uid) const;  // 0 when not in the snapshot
  void removeFromSnapshot(const std::vector<uint32_t>& uids);
  void writeExpunged(const std::vector<uint32_t>& uids);  // EXPUNGE or VANISHED, updates the snapshot
  void flushUpdates(bool allowExpunge);
  void writeFetchFlags(uint32_t seq, const MessageInfo& m, bool withUid);
  // "* LIST (attrs) "/" name" as a basic LIST would give it, with
  // ("OLDNAME" (old)) when oldName is not empty (RFC 9051 6.3.2, 6.3.6).
  void writeMailboxList(const std::string& name, std::string_view oldName);
  std::optional<std::string> fromWire(const std::string& tag, std::string_view wire);
  std::string toWire(std::string_view name) const;
  bool checkReadWrite(const std::string& tag);

  Backend& backend_;
  SessionOptions options_;
  std::optional<CommandParser> parser_;  // re-made after STARTTLS
  ResponseWriter w_;
  std::string out_;
  State state_ = State::NotAuthenticated;
  int64_t accountId_ = 0;

  std::optional<LoginRequest> login_;
  std::string loginTag_;
  std::optional<std::string> authTag_;  // AUTHENTICATE waiting for the client's response
  bool startTls_ = false;
  std::optional<std::string> idleTag_;
  bool condstore_ = false, qresync_ = false;
  bool utf8_ = false;  // ENABLE UTF8=ACCEPT (RFC 6855 3) or IMAP4rev2
  bool rev2_ = false;  // ENABLE IMAP4rev2 (RFC 9051 6.3.1)

  // Selected mailbox: the snapshot the client's sequence numbers refer to.
  int64_t selectedId_ = 0;
  std::string selectedName_;
  bool readOnly_ = false;
  std::vector<uint32_t> uids_;
  // SEARCHRES "$" (RFC 5182): UIDs of the last SEARCH RETURN (SAVE),
  // ascending; expunged ones simply no longer resolve.
  std::vector<uint32_t> savedUids_;
  uint64_t highestModseq_ = 0;
  // Changes by others not yet reported.
  std::set<uint32_t> pendingAdded_, pendingExpunged_;
  std::map<uint32_t, MessageInfo> pendingFlags_;

  struct FetchState {
    std::string tag;
    FetchCmd cmd;
    std::vector<uint32_t> seqs;
    size_t next = 0;
    bool setSeen = false;
    bool any = false;
    bool structuresOnly = false;  // the only analysis items are ENVELOPE / BODYSTRUCTURE
    bool bodyItems = false;       // some item needs the body (not only the header)
    bool headerItems = false;     // some item reads the header block (ENVELOPE, RFC822.HEADER, BODY[HEADER...])
    size_t bodiesAskedAt = SIZE_MAX;  // `next` when bodies were last asked for
    // Asked for and still missing after the host's answer (gone upstream...):
    // left out of the answer, which then ends NO [UNAVAILABLE].
    std::vector<uint32_t> unavailable;  // ascending
  };
  std::optional<FetchState> fetch_;
  std::optional<BodyRequest> bodies_;
  // A SEARCH waiting for bodies (BODY/TEXT keys), run again when they came.
  struct PendingSearch {
    std::string tag;
    SearchCmd cmd;
  };
  std::optional<PendingSearch> search_;
};

}  // namespace mb::imap
