// Delivery status notifications (RFC 3464 multipart/report with a
// message/delivery-status part and the original headers, RFC 6522) for mail
// the outbox could not deliver; they go into the sender's local INBOX.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mb::smtp {

struct DsnRecipient {
  std::string address;
  std::string status;      // enhanced status, "5.1.1"; derived from code when empty
  int code = 0;            // the SMTP reply code, 0 when none (e.g. expired)
  std::string diagnostic;  // the server's reply text or our reason
  std::string remoteMta;   // upstream host, empty for local failures
};

struct DsnInput {
  std::string reportingMta = "localhost";
  std::string sender;           // the envelope sender, the DSN's To
  int64_t arrivalDate = 0;      // unix seconds the message was submitted
  int64_t now = 0;              // unix seconds, for Date:
  std::string uniqueId;         // for the Message-ID
  std::vector<DsnRecipient> failed;
  std::string_view original;    // the message as submitted; its header is quoted
};

// RFC 5322 date in UTC: "Tue, 24 Nov 2026 10:00:00 +0000".
std::string rfc5322Date(int64_t unixSeconds);

// The whole DSN message, CRLF line endings. Diagnostic texts are cleaned of
// control characters so a hostile reply cannot inject header lines.
std::string buildDsn(const DsnInput& input);

}  // namespace mb::smtp
