// MIME analysis of a message, done once when it enters the store: ENVELOPE,
// BODY, BODYSTRUCTURE, the part tree with byte offsets and the fields SEARCH
// and SORT need, plus the compact serialization kept in a SQLite column.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocols/common/result.h"
#include "protocols/mime/part.h"

namespace mb::mime {

struct QuickFields {
  std::string messageId;  // raw Message-ID value (last one), trimmed
  std::string subject;    // RFC 2047 decoded, UTF-8
  std::string from;       // decoded header text, UTF-8
  std::string to;
  std::string cc;
  std::string bcc;
  std::string date;                    // raw Date value
  std::optional<std::int64_t> sentAt;  // Date as unix seconds, for SEARCH SENT*
  std::uint64_t size = 0;              // RFC822.SIZE of the stored bytes
  std::uint64_t lines = 0;             // LF count of the whole message
  bool hasAttachments = false;
};

struct MessageAnalysis {
  std::string envelope;       // "(...)" for FETCH ENVELOPE
  std::string bodyStructure;  // "(...)" for FETCH BODYSTRUCTURE
  std::string body;           // "(...)" for FETCH BODY (non-extensible)
  Part root;                  // offsets refer to the analysed bytes
  QuickFields quick;
};

// Never fails on content: any byte string is some message (at worst one
// text/plain part holding everything). The offsets, and therefore every size
// in BODYSTRUCTURE, are of exactly these bytes: store them unchanged (after
// normalizeLineEndings() if they may carry bare LFs) and slice the same bytes.
Result<MessageAnalysis> analyzeMessage(std::string_view raw);

// The form the store keeps a message in, and its analysis: IMAP sends CRLF
// only, so bytes with a bare LF are normalized (normalizeLineEndings, a copy)
// and the copy is analysed; other bytes are analysed as they are. The check
// for bare LFs is part of the analysis's one pass over the bytes.
struct StoredAnalysis {
  std::optional<std::string> normalized;  // the bytes to store when they differ from the input
  MessageAnalysis analysis;               // of *normalized if set, else of the input
};
Result<StoredAnalysis> analyzeForStore(std::string_view raw);

// Bare LF -> CRLF, the form IMAP sends. Dovecot stores bare-LF mail the same
// way as far as sizes go, so analysing the normalized bytes matches its numbers.
std::string normalizeLineEndings(std::string_view raw);

// The Message-ID of a header block as QuickFields::messageId has it (the last
// Message-ID field, unfolded, blanks trimmed; "" if none): the sync engine
// matches upstream messages to stored ones by it.
std::string messageIdOf(std::string_view headerBlock);
// One Message-ID field value, as above.
std::string messageIdValue(std::string_view rawValue);

// The whole analysis as one string ("MBMA1"): binary-safe, validated on the
// way back (a damaged value is ErrorKind::Corrupt, never a crash). Stores
// written before MBMA2 hold it; golden and fuzz tests compare it.
std::string serializeAnalysis(const MessageAnalysis& analysis);
Result<MessageAnalysis> deserializeAnalysis(std::string_view data);

// The parts of an analysis the store keeps in columns of their own (FETCH
// ENVELOPE/BODYSTRUCTURE and SEARCH read them without the blob). The stored
// blob leaves them out: each byte of a row is written to the WAL and again to
// the database file, so saying them twice cost CPU on every synced message.
struct AnalysisColumns {
  std::string envelope, bodyStructure;
  std::string messageId, subject, from, to, cc, bcc;
  std::optional<std::int64_t> sentAt;
};
// The rest of the analysis ("MBMA2"), for storing beside those columns.
std::string serializeStoredAnalysis(const MessageAnalysis& analysis);
// The analysis of a stored row: an MBMA2 blob plus the row's columns, or an
// MBMA1 blob alone (which has everything; columns are not consulted).
Result<MessageAnalysis> restoreAnalysis(std::string_view blob, AnalysisColumns columns);

}  // namespace mb::mime
