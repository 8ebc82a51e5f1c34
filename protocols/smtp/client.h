// Client side of SMTP for the upstream relay: command lines and the DATA
// body encoding (dot-stuffing, RFC 5321 section 4.5.2).
//
// What we send as DATA: exactly the stored message. Stored messages are
// CRLF-normalised at submission (ServerSession refuses bare CR and bare LF),
// so the encoder does not convert line endings; it refuses a bare CR or LF
// as corrupt instead, because sending one upstream is how SMTP smuggling
// starts. It adds the final CRLF when the message does not end with one, then
// the terminating ".\r\n".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocols/common/result.h"

namespace mb::smtp::client {

struct MailOptions {
  std::optional<uint64_t> size;  // SIZE= (RFC 1870), only if the server has SIZE
  bool eightBitMime = false;     // BODY=8BITMIME (RFC 6152)
  bool smtputf8 = false;         // SMTPUTF8 (RFC 6531)
};

// Each returns one command line with its CRLF. Addresses are the bare
// address ("a@b", "" for the null reverse path); the caller has parsed them,
// they must not contain CR, LF, '<' or '>' (checked: fails otherwise).
std::string ehlo(std::string_view domain);
Result<std::string> mailFrom(std::string_view address, const MailOptions& options = {});
Result<std::string> rcptTo(std::string_view address);
std::string data();
std::string rset();
std::string quit();
std::string startTls();

// AUTH PLAIN with initial response (RFC 4954, RFC 4616): base64 of
// authzid NUL user NUL password.
std::string authPlain(std::string_view user, std::string_view password, std::string_view authzid = {});
// AUTH LOGIN: send authLogin(), then authResponse(user) and
// authResponse(password) after each 334.
std::string authLogin();
std::string authResponse(std::string_view raw);
// XOAUTH2 (Google/Microsoft): "user=" u ^A "auth=Bearer " token ^A ^A.
std::string xoauth2InitialResponse(std::string_view user, std::string_view token);  // not base64-encoded
std::string authXoauth2(std::string_view user, std::string_view token);              // the whole AUTH line

// Streams a stored message as DATA content. Usage: append() each piece of
// the message, then finish(); send the output after the server's 354.
class DotStuffer {
 public:
  // Appends the encoded form of bytes to out. Fails (ErrorKind::Corrupt) on a
  // bare CR or bare LF; the encoder is then unusable.
  Status append(std::string_view bytes, std::string& out);
  // The final CRLF if missing, then ".\r\n".
  Status finish(std::string& out);

 private:
  bool lineStart_ = true;
  bool pendingCr_ = false;
  bool failed_ = false;
};

// Convenience: the whole message encoded in one go.
Result<std::string> dotStuff(std::string_view message);

}  // namespace mb::smtp::client
