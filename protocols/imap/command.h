// Typed IMAP commands as the server receives them (RFC 3501/9051 section 6
// plus the extensions we serve). Plain data: the parser fills, handlers read.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "protocols/imap/sequence_set.h"

namespace mb::imap {

// Mailbox names below are the wire form after unquoting (mUTF-7, or UTF-8
// under UTF8=ACCEPT), with INBOX in any case folded to "INBOX" (RFC 3501
// 5.1). mailboxFromWire() in mutf7.h turns them into internal UTF-8.

struct Date {
  int year = 0, month = 0, day = 0;  // month 1..12
  bool operator==(const Date&) const = default;
};

// date-time (RFC 3501 9): "dd-Mon-yyyy hh:mm:ss +zzzz".
struct DateTime {
  Date date;
  int hour = 0, minute = 0, second = 0;
  int zoneMinutes = 0;  // east of UTC
  bool operator==(const DateTime&) const = default;
};

struct CapabilityCmd { bool operator==(const CapabilityCmd&) const = default; };
struct NoopCmd { bool operator==(const NoopCmd&) const = default; };
struct LogoutCmd { bool operator==(const LogoutCmd&) const = default; };
struct StartTlsCmd { bool operator==(const StartTlsCmd&) const = default; };
struct CheckCmd { bool operator==(const CheckCmd&) const = default; };
struct CloseCmd { bool operator==(const CloseCmd&) const = default; };
struct UnselectCmd { bool operator==(const UnselectCmd&) const = default; };
struct IdleCmd { bool operator==(const IdleCmd&) const = default; };
struct NamespaceCmd { bool operator==(const NamespaceCmd&) const = default; };

struct AuthenticateCmd {
  std::string mechanism;  // upper-cased
  // SASL-IR (RFC 4959): the base64 text as sent; "" stands for "=", an
  // empty initial response. nullopt: no initial response.
  std::optional<std::string> initialResponse;
  bool operator==(const AuthenticateCmd&) const = default;
};

struct LoginCmd {
  std::string user;
  std::string password;
  bool operator==(const LoginCmd&) const = default;
};

// QRESYNC select parameter (RFC 7162 3.2.5).
struct QresyncParams {
  uint32_t uidValidity = 0;
  uint64_t modSeq = 0;
  std::optional<SequenceSet> knownUids;
  std::optional<SequenceSet> knownSeqs;      // seq-match-data, first half
  std::optional<SequenceSet> knownSeqUids;   // seq-match-data, second half
  bool operator==(const QresyncParams&) const = default;
};

struct SelectCmd {
  std::string mailbox;
  bool readOnly = false;  // EXAMINE
  bool condstore = false;
  std::optional<QresyncParams> qresync;
  bool operator==(const SelectCmd&) const = default;
};

struct CreateCmd {
  std::string mailbox;
  std::vector<std::string> specialUse;  // RFC 6154 USE, e.g. "\\Sent", as sent
  bool operator==(const CreateCmd&) const = default;
};

struct DeleteCmd { std::string mailbox; bool operator==(const DeleteCmd&) const = default; };
struct RenameCmd {
  std::string from, to;
  bool operator==(const RenameCmd&) const = default;
};
struct SubscribeCmd { std::string mailbox; bool operator==(const SubscribeCmd&) const = default; };
struct UnsubscribeCmd { std::string mailbox; bool operator==(const UnsubscribeCmd&) const = default; };

enum class StatusItem { Messages, Recent, UidNext, UidValidity, Unseen, Deleted, Size, HighestModSeq, AppendLimit };

struct ListCmd {
  // RFC 5258 selection options, upper-cased: SUBSCRIBED, REMOTE,
  // RECURSIVEMATCH, SPECIAL-USE (RFC 6154).
  std::vector<std::string> selectOptions;
  std::string reference;
  std::vector<std::string> patterns;  // one unless "(p1 p2 ...)" was used
  bool returnSubscribed = false;
  bool returnChildren = false;
  bool returnSpecialUse = false;
  std::optional<std::vector<StatusItem>> returnStatus;  // RFC 5819
  // True when any LIST-EXTENDED syntax was used: the answer then follows
  // RFC 5258 rules (e.g. CHILDREN info is only given when asked).
  bool extended = false;
  bool operator==(const ListCmd&) const = default;
};

struct LsubCmd {
  std::string reference, pattern;
  bool operator==(const LsubCmd&) const = default;
};

struct StatusCmd {
  std::string mailbox;
  std::vector<StatusItem> items;
  bool operator==(const StatusCmd&) const = default;
};

struct AppendMessage {
  std::vector<std::string> flags;
  std::optional<DateTime> internalDate;
  std::string data;
  bool binary = false;  // sent as literal8 (RFC 3516 4.4)
  bool operator==(const AppendMessage&) const = default;
};

struct AppendCmd {
  std::string mailbox;
  std::vector<AppendMessage> messages;  // more than one: MULTIAPPEND (RFC 3502)
  bool operator==(const AppendCmd&) const = default;
};

struct ExpungeCmd {
  std::optional<SequenceSet> uids;  // UID EXPUNGE (RFC 4315 2.1)
  bool operator==(const ExpungeCmd&) const = default;
};

// One node of the SEARCH key tree (RFC 3501 6.4.4, RFC 7162 3.1.5).
struct SearchKey {
  enum class Kind {
    And,  // parenthesised group, and the implicit AND of the top level
    All, Answered, Bcc, Before, Body, Cc, Deleted, Draft, Flagged, From, Header, Keyword, Larger,
    New, Not, Old, On, Or, Recent, Seen, SentBefore, SentOn, SentSince, Since, Smaller, Subject,
    Text, To, Uid, Unanswered, Undeleted, Undraft, Unflagged, Unkeyword, Unseen,
    SequenceSet,  // a bare sequence set ("1:5" or "$")
    ModSeq,
  };
  Kind kind = Kind::All;
  std::string text;    // string argument; HEADER field name; keyword
  std::string value;   // HEADER value
  Date date;           // date keys
  uint64_t number = 0; // LARGER/SMALLER size, MODSEQ value
  SequenceSet set;     // Uid, SequenceSet
  std::string modSeqEntry;      // MODSEQ entry-name, e.g. "/flags/\\draft"
  std::string modSeqEntryType;  // "priv", "shared" or "all" (lower-cased)
  std::vector<SearchKey> children;  // And: any; Not: 1; Or: 2

  bool operator==(const SearchKey&) const = default;
};

enum class SearchReturn { Min, Max, All, Count, Save };

struct SearchCmd {
  bool uid = false;
  std::optional<std::string> charset;
  SearchKey key;  // Kind::And of the top-level keys
  // RFC 4731 ESEARCH: present when RETURN (...) was given; "RETURN ()"
  // means ALL and is stored as {All}.
  std::optional<std::vector<SearchReturn>> returnOptions;
  bool operator==(const SearchCmd&) const = default;
};

// section-spec (RFC 3501 9, RFC 3516 for BINARY).
struct Section {
  enum class Text { None, Header, HeaderFields, HeaderFieldsNot, Text, Mime };
  std::vector<uint32_t> part;  // "1.2.3"
  Text text = Text::None;
  std::vector<std::string> fields;  // HEADER.FIELDS(.NOT), upper-cased
  bool operator==(const Section&) const = default;
};

struct Partial {
  uint32_t offset = 0;
  uint32_t length = 0;  // nz-number
  bool operator==(const Partial&) const = default;
};

struct FetchAtt {
  enum class Kind {
    Envelope, Flags, InternalDate, Rfc822, Rfc822Header, Rfc822Size, Rfc822Text,
    Body,           // BODY without section: non-extensible BODYSTRUCTURE
    BodyStructure,
    Uid,
    BodySection,    // BODY[...] / BODY.PEEK[...]
    Binary,         // BINARY[...] / BINARY.PEEK[...] (RFC 3516)
    BinarySize,     // BINARY.SIZE[...]
    ModSeq,         // RFC 7162
  };
  Kind kind = Kind::Flags;
  bool peek = false;
  Section section;
  std::optional<Partial> partial;
  bool operator==(const FetchAtt&) const = default;
};

struct FetchCmd {
  bool uid = false;
  SequenceSet set;
  std::vector<FetchAtt> items;  // macros ALL/FAST/FULL expanded
  std::optional<uint64_t> changedSince;  // RFC 7162 3.1.4
  bool vanished = false;                  // RFC 7162 3.2.6
  bool operator==(const FetchCmd&) const = default;
};

struct StoreCmd {
  enum class Mode { Replace, Add, Remove };
  bool uid = false;
  SequenceSet set;
  std::optional<uint64_t> unchangedSince;  // RFC 7162 3.1.3
  Mode mode = Mode::Replace;
  bool silent = false;
  std::vector<std::string> flags;
  bool operator==(const StoreCmd&) const = default;
};

struct CopyCmd {
  bool uid = false;
  SequenceSet set;
  std::string mailbox;
  bool operator==(const CopyCmd&) const = default;
};

struct MoveCmd {
  bool uid = false;
  SequenceSet set;
  std::string mailbox;
  bool operator==(const MoveCmd&) const = default;
};

struct IdCmd {
  // nullopt: "ID NIL". Values may be NIL (RFC 2971 3.1).
  std::optional<std::vector<std::pair<std::string, std::optional<std::string>>>> params;
  bool operator==(const IdCmd&) const = default;
};

struct EnableCmd {
  std::vector<std::string> capabilities;  // upper-cased
  bool operator==(const EnableCmd&) const = default;
};

// The line a client sends to end IDLE (RFC 2177 3).
struct IdleDone { bool operator==(const IdleDone&) const = default; };

using CommandBody =
    std::variant<CapabilityCmd, NoopCmd, LogoutCmd, StartTlsCmd, AuthenticateCmd, LoginCmd, SelectCmd, CreateCmd,
                 DeleteCmd, RenameCmd, SubscribeCmd, UnsubscribeCmd, ListCmd, LsubCmd, StatusCmd, AppendCmd, CheckCmd,
                 CloseCmd, UnselectCmd, ExpungeCmd, SearchCmd, FetchCmd, StoreCmd, CopyCmd, MoveCmd, IdleCmd,
                 NamespaceCmd, IdCmd, EnableCmd>;

struct Command {
  std::string tag;
  CommandBody body;
  bool operator==(const Command&) const = default;
};

// Upper-case command name for logs and the session's command table, e.g.
// "UID FETCH", "EXAMINE".
std::string commandName(const Command& cmd);

}  // namespace mb::imap
