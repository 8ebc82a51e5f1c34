// IMAP command builder for the upstream client: tags, quoting, literals and
// the points where the sender must wait for a "+" continuation.
//
// A Command is a list of chunks. Send the first at once; a chunk marked
// waitForContinuation goes only after the server answered "+" (RFC 3501
// 7.5); a tagged NO/BAD instead means the command is over and the rest is
// never sent. With LITERAL+/LITERAL- (RFC 7888) small literals are sent
// non-synchronizing, so most commands are a single chunk.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocols/common/result.h"
#include "protocols/imap/command.h"
#include "protocols/imap/sequence_set.h"

namespace mb::imap::client {

struct Chunk {
  std::string bytes;
  bool waitForContinuation = false;  // send only after a "+" from the server
  bool operator==(const Chunk&) const = default;
};

struct Command {
  std::string tag;
  std::string name;  // e.g. "UID FETCH": for logs and for matching the completion
  std::vector<Chunk> chunks;
  // Safe to log: passwords and tokens are "***", literal data is "<N bytes>".
  std::string logText;

  // Every chunk joined: what goes on the wire when no waits remain.
  std::string wire() const;
  size_t continuationsNeeded() const;
};

// What the server offers, from its CAPABILITY (and what we ENABLEd).
struct ServerFeatures {
  bool literalPlus = false;   // LITERAL+ (RFC 7888)
  bool literalMinus = false;  // LITERAL- : non-synchronizing only up to 4096 octets
  bool saslIr = false;        // SASL-IR (RFC 4959)
  bool binary = false;        // BINARY (RFC 3516): literal8 in APPEND
  bool listExtended = false;  // LIST-EXTENDED (RFC 5258)
  bool listStatus = false;    // LIST-STATUS (RFC 5819)
  bool specialUse = false;    // SPECIAL-USE (RFC 6154)
  bool esearch = false;       // ESEARCH (RFC 4731): SEARCH RETURN (...)
  // Set after "* ENABLED UTF8=ACCEPT" (RFC 6855 3), never from CAPABILITY
  // alone: mailbox names then go as UTF-8 instead of mUTF-7.
  bool utf8Accept = false;
  // Even with LITERAL+ a large literal is sent synchronizing: the server can
  // refuse (TOOBIG, OVERQUOTA) before 50 MB are on the wire, at the cost of
  // one round trip (RFC 7888 4 makes the same trade at 4096 for LITERAL-).
  uint64_t maxNonSyncLiteral = 4096;

  // Reads the flags above from a CAPABILITY list (any case); utf8Accept
  // stays false.
  static ServerFeatures fromCapabilities(const std::vector<std::string>& caps);
};

// A mailbox argument. Names are UTF-8 and encoded for the wire (mUTF-7, or
// UTF-8 under UTF8=ACCEPT) unless fromWire: then the bytes the server gave
// us in LIST (MailboxName::wire) are sent back unchanged.
struct Mailbox {
  std::string name;
  bool wire = false;

  Mailbox(std::string_view utf8) : name(utf8) {}  // NOLINT: implicit on purpose
  Mailbox(const char* utf8) : name(utf8) {}       // NOLINT
  static Mailbox fromWire(std::string_view wireName) {
    Mailbox m(wireName);
    m.wire = true;
    return m;
  }
};

// Arguments of one command. Each call adds one element, separated by a
// space; the first error sticks and is reported by CommandBuilder.
class CommandArgs {
 public:
  explicit CommandArgs(const ServerFeatures& features) : features_(&features) {}

  CommandArgs& atom(std::string_view a);      // checked: no space, CR, LF, NUL, '{'
  CommandArgs& number(uint64_t n);
  CommandArgs& astring(std::string_view s);   // atom, quoted or literal, cheapest legal
  CommandArgs& string(std::string_view s);    // quoted or literal
  // Like astring() but logged as "***".
  CommandArgs& secret(std::string_view s);
  // Always a literal; data is moved into its own chunk when large, so a
  // message is not copied again. binary: literal8 "~{N}" (RFC 3516).
  CommandArgs& literal(std::string data, bool binary = false);
  CommandArgs& mailbox(const Mailbox& m);
  CommandArgs& sequenceSet(const SequenceSet& set);
  // "(" a b ")" of checked atoms, e.g. flags or fetch items.
  CommandArgs& atomList(const std::vector<std::string>& atoms);
  // Text that already is valid IMAP syntax (no CR/LF), added as one element.
  CommandArgs& raw(std::string_view text);
  // Appends without the separating space (e.g. ")" after items).
  CommandArgs& rawNoSpace(std::string_view text);

  const Status& status() const { return status_; }

 private:
  friend class CommandBuilder;
  void separate();
  void text(std::string_view t, std::string_view log);
  void setError(std::string message);
  void literalImpl(std::string data, bool binary, bool secret);

  const ServerFeatures* features_;
  std::vector<Chunk> chunks_{Chunk{}};
  std::string log_;
  bool needSpace_ = true;  // every argument follows the command name
  Status status_;
};

enum class StoreMode { Replace, Add, Remove };

struct ListOptions {
  bool specialUse = false;  // RETURN (SPECIAL-USE) when SPECIAL-USE is offered
  bool subscribed = false;  // RETURN (SUBSCRIBED) when LIST-EXTENDED is offered
  bool children = false;    // RETURN (CHILDREN) when LIST-EXTENDED is offered
  std::vector<StatusItem> status;  // RETURN (STATUS (...)) when LIST-STATUS is offered
};

struct SelectOptions {
  bool readOnly = false;   // EXAMINE
  bool condstore = false;  // (CONDSTORE), RFC 7162 3.1.8
  // (QRESYNC (uidvalidity modseq [known-uids [seq-match]])), RFC 7162 3.2.5;
  // needs ENABLE QRESYNC first.
  std::optional<QresyncParams> qresync;
};

struct FetchOptions {
  std::optional<uint64_t> changedSince;  // (CHANGEDSINCE n), RFC 7162 3.1.4
  bool vanished = false;                 // VANISHED with CHANGEDSINCE, RFC 7162 3.2.6 (UID FETCH)
};

struct StoreOptions {
  std::optional<uint64_t> unchangedSince;  // (UNCHANGEDSINCE n), RFC 7162 3.1.3
  bool silent = false;                     // +FLAGS.SILENT
};

struct SearchOptions {
  std::vector<SearchReturn> returns;  // RETURN (...) when ESEARCH is offered
  std::optional<std::string> charset;
};

struct AppendOptions {
  std::vector<std::string> flags;
  std::optional<DateTime> internalDate;
  // literal8 (RFC 3516) when the server has BINARY; required for a message
  // with NUL octets.
  bool binary = false;
};

// Builds tagged commands "A0001", "A0002"... Helpers check their inputs
// and fail (ErrorKind::User) instead of producing a command that would
// desynchronise the connection (a CR/LF in an atom, a NUL in LOGIN...). A
// failed build consumes no tag.
class CommandBuilder {
 public:
  explicit CommandBuilder(ServerFeatures features = {}, std::string tagPrefix = "A");

  void setFeatures(const ServerFeatures& f) { features_ = f; }
  ServerFeatures& features() { return features_; }
  const ServerFeatures& features() const { return features_; }

  // Arguments for custom(): commands this file has no helper for.
  CommandArgs args() const { return CommandArgs(features_); }
  Result<Command> custom(std::string_view name, CommandArgs args);

  Command capability();
  Command noop();
  Command logout();
  Command startTls();
  Command namespaceCmd();
  Command expunge();
  Command close();
  Command unselect();
  // IDLE (RFC 2177): after "+", wait; send idleDone() to end it.
  Command idle();

  Result<Command> login(std::string_view user, std::string_view password);
  // AUTHENTICATE PLAIN (RFC 4616); the response rides on the command line
  // with SASL-IR (RFC 4959), otherwise it waits for the empty "+".
  Result<Command> authenticatePlain(std::string_view user, std::string_view password,
                                    std::string_view authzid = {});
  // SASL LOGIN (draft-murchison-sasl-login): the username answers the
  // server's first "+" (or rides on the line with SASL-IR), the password the
  // next one; each a separate base64 response.
  Result<Command> authenticateLogin(std::string_view user, std::string_view password);
  // Google/Microsoft XOAUTH2: "user=" u ^A "auth=Bearer " token ^A ^A.
  // On failure the server sends "+ <base64 JSON>": answer
  // saslFailureResponse("XOAUTH2").
  Result<Command> authenticateXoauth2(std::string_view user, std::string_view token);
  // OAUTHBEARER (RFC 7628 3.1): "n,a=user," ^A host=... ^A port=... ^A
  // auth=Bearer token ^A ^A. host/port are optional (empty / 0).
  Result<Command> authenticateOauthBearer(std::string_view user, std::string_view token,
                                          std::string_view host = {}, uint16_t port = 0);
  Result<Command> enable(const std::vector<std::string>& capabilities);
  // ID (RFC 2971): an empty list sends "ID NIL".
  Result<Command> id(const std::vector<std::pair<std::string, std::string>>& params);

  Result<Command> list(std::string_view reference, std::string_view pattern, const ListOptions& options = {});
  Result<Command> lsub(std::string_view reference, std::string_view pattern);
  Result<Command> status(const Mailbox& mailbox, const std::vector<StatusItem>& items);
  Result<Command> select(const Mailbox& mailbox, const SelectOptions& options = {});
  Result<Command> create(const Mailbox& mailbox);
  Result<Command> deleteMailbox(const Mailbox& mailbox);
  Result<Command> rename(const Mailbox& from, const Mailbox& to);
  Result<Command> subscribe(const Mailbox& mailbox);
  Result<Command> unsubscribe(const Mailbox& mailbox);

  // items as IMAP fetch-att text, e.g. "UID", "FLAGS", "BODY.PEEK[]",
  // "BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.1024>": each checked for CR/LF.
  Result<Command> uidFetch(const SequenceSet& uids, const std::vector<std::string>& items,
                           const FetchOptions& options = {});
  Result<Command> fetch(const SequenceSet& seqs, const std::vector<std::string>& items,
                        const FetchOptions& options = {});
  // criteria is search-key text without strings ("UID 1:* MODSEQ 5",
  // "SINCE 1-Feb-2024"); build keys with strings via custom().
  Result<Command> uidSearch(std::string_view criteria, const SearchOptions& options = {});
  Result<Command> uidStore(const SequenceSet& uids, StoreMode mode, const std::vector<std::string>& flags,
                           const StoreOptions& options = {});
  Result<Command> uidCopy(const SequenceSet& uids, const Mailbox& to);
  Result<Command> uidMove(const SequenceSet& uids, const Mailbox& to);
  Result<Command> uidExpunge(const SequenceSet& uids);  // UIDPLUS (RFC 4315 2.1)
  // APPEND mailbox [(flags)] ["date-time"] literal (RFC 3501 6.3.11). The
  // message is moved into its chunk, never copied.
  Result<Command> append(const Mailbox& mailbox, std::string message, const AppendOptions& options = {});

  std::string peekTag() const;  // the tag the next command will get

 private:
  Result<Command> finish(std::string_view name, CommandArgs& args);
  Result<Command> authenticate(std::string_view mechanism, std::string_view response);
  Command simple(std::string_view name);

  ServerFeatures features_;
  std::string prefix_;
  uint64_t counter_ = 1;
};

// Lines sent outside a tagged command.
std::string idleDone();                                 // "DONE\r\n" (RFC 2177)
std::string saslResponse(std::string_view rawBytes);    // base64 + CRLF
std::string saslEmptyResponse();                        // "\r\n"
// The answer to a server's error challenge ("+ <base64 JSON>") after a failed
// XOAUTH2 (empty) or OAUTHBEARER (a single ^A, RFC 7628 3.2.3); the tagged NO
// follows it.
std::string saslFailureResponse(std::string_view mechanism);
std::string saslCancel();                               // "*\r\n" (RFC 3501 6.2.2)

// "dd-Mon-yyyy hh:mm:ss +zzzz" (RFC 3501 9 date-time, without quotes).
std::string formatDateTime(const DateTime& dt);

}  // namespace mb::imap::client
