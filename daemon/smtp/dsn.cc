// RFC 3464 delivery status notification builder (see dsn.h).
#include "daemon/smtp/dsn.h"

#include <ctime>

namespace mb::smtp {
namespace {

std::string clean(std::string_view text) {
  std::string out;
  for (unsigned char c : text) out += (c < 0x20 || c == 0x7f) ? ' ' : static_cast<char>(c);
  return out;
}

std::string statusOf(const DsnRecipient& r) {
  if (!r.status.empty()) return r.status;
  if (r.code >= 500) return "5.0.0";
  if (r.code >= 400) return "4.0.0";
  return "5.0.0";
}

// The header block of the original, ending with its blank line (CRLF form).
std::string_view headerOf(std::string_view message) {
  auto end = message.find("\r\n\r\n");
  if (end == std::string_view::npos) return message;
  return message.substr(0, end + 2);
}

}  // namespace

std::string rfc5322Date(int64_t unixSeconds) {
  std::time_t t = static_cast<std::time_t>(unixSeconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  static const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday % 7], tm.tm_mday,
                kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string buildDsn(const DsnInput& in) {
  const std::string boundary = "=_mailbridge_dsn_" + clean(in.uniqueId);
  const std::string mta = clean(in.reportingMta);
  std::string m;
  m += "From: Mail Delivery System <MAILER-DAEMON@" + mta + ">\r\n";
  m += "To: <" + clean(in.sender) + ">\r\n";
  m += "Subject: Undelivered Mail Returned to Sender\r\n";
  m += "Date: " + rfc5322Date(in.now) + "\r\n";
  m += "Message-ID: <dsn." + clean(in.uniqueId) + "@" + mta + ">\r\n";
  m += "Auto-Submitted: auto-replied\r\n";
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: multipart/report; report-type=delivery-status;\r\n boundary=\"" + boundary + "\"\r\n";
  m += "\r\n";
  m += "This is a MIME-encapsulated message.\r\n\r\n";

  m += "--" + boundary + "\r\n";
  m += "Content-Description: Notification\r\n";
  m += "Content-Type: text/plain; charset=utf-8\r\n\r\n";
  m += "Your message could not be delivered to ";
  m += in.failed.size() == 1 ? "this recipient" : "these recipients";
  m += ". Mail to any other recipient was delivered or is still being tried.\r\n\r\n";
  for (const auto& r : in.failed) {
    m += "<" + clean(r.address) + ">: ";
    if (!r.remoteMta.empty()) m += "host " + clean(r.remoteMta) + " said: ";
    if (r.code) m += std::to_string(r.code) + " ";
    m += clean(r.diagnostic) + "\r\n";
  }
  m += "\r\n";

  m += "--" + boundary + "\r\n";
  m += "Content-Description: Delivery report\r\n";
  m += "Content-Type: message/delivery-status\r\n\r\n";
  m += "Reporting-MTA: dns; " + mta + "\r\n";
  if (in.arrivalDate) m += "Arrival-Date: " + rfc5322Date(in.arrivalDate) + "\r\n";
  for (const auto& r : in.failed) {
    m += "\r\n";
    m += "Final-Recipient: rfc822; " + clean(r.address) + "\r\n";
    m += "Action: failed\r\n";
    m += "Status: " + clean(statusOf(r)) + "\r\n";
    if (!r.remoteMta.empty()) m += "Remote-MTA: dns; " + clean(r.remoteMta) + "\r\n";
    m += "Diagnostic-Code: smtp; ";
    if (r.code) m += std::to_string(r.code) + " ";
    if (!r.status.empty()) m += clean(r.status) + " ";
    m += clean(r.diagnostic) + "\r\n";
  }
  m += "\r\n";

  m += "--" + boundary + "\r\n";
  m += "Content-Description: Undelivered message headers\r\n";
  m += "Content-Type: text/rfc822-headers\r\n\r\n";
  m += headerOf(in.original);
  m += "\r\n--" + boundary + "--\r\n";
  return m;
}

}  // namespace mb::smtp
