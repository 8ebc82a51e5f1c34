// SMTP client command lines and DATA dot-stuffing (see client.h).
#include "protocols/smtp/client.h"

#include "protocols/common/base64.h"

namespace mb::smtp::client {
namespace {

bool safeAddress(std::string_view a) {
  for (char c : a)
    if (c == '\r' || c == '\n' || c == '<' || c == '>' || c == '\0') return false;
  return true;
}

}  // namespace

std::string ehlo(std::string_view domain) { return "EHLO " + std::string(domain) + "\r\n"; }

Result<std::string> mailFrom(std::string_view address, const MailOptions& options) {
  if (!safeAddress(address)) return fail(ErrorKind::User, "sender address contains forbidden characters");
  std::string line = "MAIL FROM:<" + std::string(address) + ">";
  if (options.size) line += " SIZE=" + std::to_string(*options.size);
  if (options.eightBitMime) line += " BODY=8BITMIME";
  if (options.smtputf8) line += " SMTPUTF8";
  return line + "\r\n";
}

Result<std::string> rcptTo(std::string_view address) {
  if (address.empty() || !safeAddress(address)) return fail(ErrorKind::User, "recipient address is empty or contains forbidden characters");
  return "RCPT TO:<" + std::string(address) + ">\r\n";
}

std::string data() { return "DATA\r\n"; }
std::string rset() { return "RSET\r\n"; }
std::string quit() { return "QUIT\r\n"; }
std::string startTls() { return "STARTTLS\r\n"; }

std::string authPlain(std::string_view user, std::string_view password, std::string_view authzid) {
  std::string raw;
  raw.append(authzid);
  raw += '\0';
  raw.append(user);
  raw += '\0';
  raw.append(password);
  std::string line = "AUTH PLAIN " + base64Encode(raw) + "\r\n";
  // The plaintext password should not linger in freed memory.
  for (char& c : raw) *const_cast<volatile char*>(&c) = 0;
  return line;
}

std::string authLogin() { return "AUTH LOGIN\r\n"; }

std::string authResponse(std::string_view raw) { return base64Encode(raw) + "\r\n"; }

std::string xoauth2InitialResponse(std::string_view user, std::string_view token) {
  std::string s = "user=";
  s.append(user);
  s += "\x01" "auth=Bearer ";
  s.append(token);
  s += "\x01\x01";
  return s;
}

std::string authXoauth2(std::string_view user, std::string_view token) {
  return "AUTH XOAUTH2 " + base64Encode(xoauth2InitialResponse(user, token)) + "\r\n";
}

Status DotStuffer::append(std::string_view bytes, std::string& out) {
  if (failed_) return fail(ErrorKind::Corrupt, "message has a bare CR or LF");
  size_t i = 0;
  while (i < bytes.size()) {
    char c = bytes[i];
    if (pendingCr_) {
      if (c != '\n') {
        failed_ = true;
        return fail(ErrorKind::Corrupt, "message has a bare CR");
      }
      out += "\r\n";
      pendingCr_ = false;
      lineStart_ = true;
      ++i;
      continue;
    }
    if (lineStart_ && c == '.') out += '.';  // RFC 5321 section 4.5.2 transparency
    lineStart_ = false;
    size_t j = i;
    while (j < bytes.size() && bytes[j] != '\r' && bytes[j] != '\n') ++j;
    out.append(bytes.substr(i, j - i));
    i = j;
    if (i < bytes.size()) {
      if (bytes[i] == '\n') {
        failed_ = true;
        return fail(ErrorKind::Corrupt, "message has a bare LF");
      }
      pendingCr_ = true;
      ++i;
    }
  }
  return {};
}

Status DotStuffer::finish(std::string& out) {
  if (failed_ || pendingCr_) {
    failed_ = true;
    return fail(ErrorKind::Corrupt, "message has a bare CR");
  }
  // lineStart_ is true at the very beginning too: an empty message is just ".".
  if (!lineStart_) out += "\r\n";
  out += ".\r\n";
  return {};
}

Result<std::string> dotStuff(std::string_view message) {
  DotStuffer stuffer;
  std::string out;
  out.reserve(message.size() + message.size() / 64 + 5);
  if (auto st = stuffer.append(message, out); !st) return std::unexpected(st.error());
  if (auto st = stuffer.finish(out); !st) return std::unexpected(st.error());
  return out;
}

}  // namespace mb::smtp::client
