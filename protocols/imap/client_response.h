// Typed IMAP server responses as an upstream client sees them (RFC 3501/9051
// section 7 plus CONDSTORE/QRESYNC, ESEARCH, LIST-EXTENDED, UIDPLUS, ID).
// Plain data: ResponseParser fills it, the upstream connector reads it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "protocols/imap/command.h"
#include "protocols/imap/sequence_set.h"

namespace mb::imap::client {

enum class StatusKind { Ok, No, Bad, Bye, Preauth };

// Response codes the sync engine acts on (RFC 3501 7.1, RFC 4315 UIDPLUS,
// RFC 5530, RFC 7162 CONDSTORE/QRESYNC, RFC 2221 ALERT...). Anything else is
// Other, with its name and arguments kept as sent.
enum class CodeKind {
  None,  // the response had no [code]
  Alert,
  AlreadyExists,
  AppendUid,
  AuthenticationFailed,
  AuthorizationFailed,
  BadCharset,
  Cannot,
  Capability,
  ClientBug,
  Closed,
  ContactAdmin,
  CopyUid,
  Corruption,
  Expired,
  ExpungeIssued,
  HighestModSeq,
  InUse,
  Limit,
  Modified,
  NoModSeq,
  NonExistent,
  NoPerm,
  OverQuota,
  Parse,
  PermanentFlags,
  PrivacyRequired,
  ReadOnly,
  ReadWrite,
  ServerBug,
  TryCreate,
  UidNext,
  UidNotSticky,
  UidValidity,
  Unavailable,
  UnknownCte,
  Unseen,
  Other,
};

struct ResponseCode {
  CodeKind kind = CodeKind::None;
  std::string name;  // upper-cased, e.g. "UIDVALIDITY"; empty when None
  std::string args;  // everything after the name up to "]", verbatim
  // UIDVALIDITY, UIDNEXT, UNSEEN, HIGHESTMODSEQ; APPENDUID/COPYUID: the
  // destination UIDVALIDITY.
  uint64_t number = 0;
  // PERMANENTFLAGS (flags as sent, "\*" included), CAPABILITY (upper-cased),
  // BADCHARSET (charsets).
  std::vector<std::string> list;
  // APPENDUID: the assigned UID(s); COPYUID: the destination UIDs, in the
  // order of sourceUids (RFC 4315 3); MODIFIED: the messages not stored.
  SequenceSet uids;
  SequenceSet sourceUids;  // COPYUID only

  bool operator==(const ResponseCode&) const = default;
};

// "OK/NO/BAD/BYE/PREAUTH [code] text".
struct StatusText {
  StatusKind status = StatusKind::Ok;
  ResponseCode code;
  std::string text;  // may be empty: servers omit it after a code
  bool operator==(const StatusText&) const = default;
};

// The first response of a connection (RFC 3501 7.1: OK, PREAUTH or BYE).
struct Greeting {
  StatusText status;
  bool operator==(const Greeting&) const = default;
};

struct Tagged {
  std::string tag;
  StatusText status;
  bool operator==(const Tagged&) const = default;
};

// "+ text" (RFC 3501 7.5): literal go-ahead, IDLE "+ idling", or an
// AUTHENTICATE challenge, which is base64 (mb::base64Decode it).
struct Continuation {
  std::string text;
  bool operator==(const Continuation&) const = default;
};

struct UntaggedStatus {
  StatusText status;
  bool operator==(const UntaggedStatus&) const = default;
};

struct CapabilityData {
  std::vector<std::string> caps;  // upper-cased (capabilities are case-insensitive)
  bool has(std::string_view cap) const;
  bool operator==(const CapabilityData&) const = default;
};

struct EnabledData {
  std::vector<std::string> caps;  // upper-cased
  bool operator==(const EnabledData&) const = default;
};

// A mailbox name as it came off the wire and as UTF-8. Commands must send
// `wire` back unchanged (Mailbox::fromWire in client_command.h): a server
// whose names are not valid mUTF-7 still finds its own spelling.
struct MailboxName {
  std::string wire;   // unquoted wire form; INBOX in any case folded to "INBOX"
  std::string utf8;   // decoded; equals wire when decoding failed
  bool decoded = true;  // false: wire was not valid mUTF-7 (or UTF-8)
  bool operator==(const MailboxName&) const = default;
};

// LIST / LSUB (RFC 3501 7.2.2, RFC 5258 LIST-EXTENDED, RFC 6154 SPECIAL-USE).
struct ListData {
  bool lsub = false;
  std::vector<std::string> attributes;  // as sent, e.g. "\\HasNoChildren", "\\Sent"
  std::optional<char> delimiter;        // nullopt: NIL, a flat namespace
  MailboxName mailbox;
  std::vector<std::string> childInfo;   // CHILDINFO ("SUBSCRIBED"), upper-cased
  std::optional<MailboxName> oldName;   // OLDNAME (RFC 5465/9051 7.3.1)
  // Other extended items: tag (upper-cased) -> raw value text.
  std::vector<std::pair<std::string, std::string>> extended;

  bool hasAttribute(std::string_view attr) const;  // case-insensitive
  bool operator==(const ListData&) const = default;
};

// STATUS (RFC 3501 7.2.4, RFC 7162 HIGHESTMODSEQ, RFC 8438 SIZE).
struct StatusData {
  MailboxName mailbox;
  std::optional<uint32_t> messages, recent, uidNext, uidValidity, unseen, deleted;
  std::optional<uint64_t> highestModSeq, size;
  std::vector<std::pair<std::string, uint64_t>> other;  // unknown items
  bool operator==(const StatusData&) const = default;
};

struct ExistsData { uint32_t count = 0; bool operator==(const ExistsData&) const = default; };
struct RecentData { uint32_t count = 0; bool operator==(const RecentData&) const = default; };
struct ExpungeData { uint32_t seq = 0; bool operator==(const ExpungeData&) const = default; };

// One BODY[...] / BINARY[...] / RFC822* item of a FETCH response.
struct FetchBody {
  std::string item;     // "BODY", "BINARY", "RFC822", "RFC822.HEADER", "RFC822.TEXT"
  std::string section;  // between the brackets, verbatim ("" for BODY[])
  std::optional<uint32_t> origin;  // "<n>" of a partial fetch
  // nullopt for NIL. A literal is moved here from the parser's buffer:
  // take it with std::move, a 50 MB message is never copied twice.
  std::optional<std::string> data;
  bool literal8 = false;  // arrived as ~{N} (RFC 3516): may hold NUL
  bool operator==(const FetchBody&) const = default;
};

// FETCH (RFC 3501 7.4.2, RFC 7162 MODSEQ). ENVELOPE and BODYSTRUCTURE stay
// raw wire text (literals re-encoded as {N}CRLF data) for mime/ to parse.
struct FetchData {
  uint32_t seq = 0;
  std::optional<uint32_t> uid;
  std::optional<std::vector<std::string>> flags;
  std::optional<DateTime> internalDate;
  std::optional<uint64_t> rfc822Size;
  std::optional<uint64_t> modSeq;
  std::optional<std::string> envelope;
  std::optional<std::string> bodyStructure;  // BODYSTRUCTURE or non-extensible BODY
  std::vector<FetchBody> bodies;
  // Anything else (X-GM-MSGID, BINARY.SIZE[1], EMAILID...): name as sent,
  // upper-cased, with its section -> raw value text.
  std::vector<std::pair<std::string, std::string>> other;

  // The first body with this item and section (e.g. "BODY", ""), or null.
  const FetchBody* body(std::string_view item, std::string_view section) const;
  bool operator==(const FetchData&) const = default;
};

// SEARCH (RFC 3501 7.2.5) with the CONDSTORE "(MODSEQ n)" (RFC 7162 3.1.5).
struct SearchData {
  std::vector<uint32_t> numbers;
  std::optional<uint64_t> modSeq;
  bool operator==(const SearchData&) const = default;
};

// ESEARCH (RFC 4731 3, RFC 7162 3.1.5 MODSEQ).
struct EsearchData {
  std::optional<std::string> tag;  // the search-correlator
  bool uid = false;
  std::optional<uint32_t> min, max, count;
  std::optional<SequenceSet> all;
  std::optional<uint64_t> modSeq;
  std::vector<std::pair<std::string, std::string>> other;  // e.g. PARTIAL: name -> raw
  bool operator==(const EsearchData&) const = default;
};

// VANISHED (RFC 7162 3.2.10).
struct VanishedData {
  bool earlier = false;
  SequenceSet uids;
  bool operator==(const VanishedData&) const = default;
};

struct FlagsData {
  std::vector<std::string> flags;
  bool operator==(const FlagsData&) const = default;
};

struct NamespaceData {
  std::string raw;  // everything after "NAMESPACE "
  bool operator==(const NamespaceData&) const = default;
};

// ID (RFC 2971 3.2): nullopt for "ID NIL"; values may be NIL too.
struct IdData {
  std::optional<std::vector<std::pair<std::string, std::optional<std::string>>>> params;
  bool operator==(const IdData&) const = default;
};

// An untagged response we do not model: kept whole, never an error.
struct UnknownData {
  std::string name;  // the keyword, upper-cased ("XLIST", "QUOTA"...); for
                     // "* 5 XFOO" the word after the number
  std::string raw;   // the response after "* ", literals re-encoded
  bool operator==(const UnknownData&) const = default;
};

using Response = std::variant<Greeting, Tagged, Continuation, UntaggedStatus, CapabilityData, EnabledData,
                              ListData, StatusData, ExistsData, RecentData, ExpungeData, FetchData,
                              SearchData, EsearchData, VanishedData, FlagsData, NamespaceData, IdData,
                              UnknownData>;

const char* statusKindName(StatusKind kind);

}  // namespace mb::imap::client
