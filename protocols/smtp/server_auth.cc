// AUTH for the submission session: PLAIN (RFC 4616) and LOGIN, with or
// without an initial response (RFC 4954). The session only collects the
// credentials; the host checks them (AuthRequest).
#include "protocols/common/base64.h"
#include "protocols/smtp/server_session.h"
#include "protocols/smtp/text.h"

namespace mb::smtp {

void ServerSession::onAuth(std::string_view args) {
  if (!esmtp_) return badCommand("503 5.5.1", "Send EHLO first");
  if (!user_.empty()) return badCommand("503 5.5.1", "Already authenticated");
  if (inTransaction_) return badCommand("503 5.5.1", "AUTH not allowed during a mail transaction");
  if (!authAllowed()) return reply("538 5.7.11", "Encryption required for requested authentication mechanism");
  size_t sp = args.find(' ');
  std::string mechanism = ascii::toUpper(args.substr(0, sp));
  std::string_view initial = sp == std::string_view::npos ? std::string_view{} : args.substr(sp + 1);
  bool hasInitial = !initial.empty();
  if (initial == "=") initial = {};  // RFC 4954 section 4: "=" is an empty initial response
  if (mechanism == "PLAIN") {
    if (hasInitial) return finishPlain(initial);
    authStep_ = AuthStep::PlainResponse;
    mode_ = Mode::AuthResponse;
    return reply("334", "");
  }
  if (mechanism == "LOGIN") {
    if (hasInitial) {
      auto user = base64Decode(initial);
      if (!user) return badCommand("501 5.5.2", "Cannot decode base64 response");
      loginUser_ = std::move(*user);
      authStep_ = AuthStep::LoginPassword;
      mode_ = Mode::AuthResponse;
      return reply("334", "UGFzc3dvcmQ6");  // "Password:"
    }
    authStep_ = AuthStep::LoginUser;
    mode_ = Mode::AuthResponse;
    return reply("334", "VXNlcm5hbWU6");  // "Username:"
  }
  if (mechanism.empty()) return badCommand("501 5.5.4", "Syntax: AUTH mechanism [initial-response]");
  badCommand("504 5.5.4", "Unrecognised authentication mechanism");
}

void ServerSession::onAuthResponse(std::string_view line) {
  AuthStep step = std::exchange(authStep_, AuthStep::None);
  if (line == "*") {
    wipe(loginUser_);
    return badCommand("501 5.7.0", "Authentication cancelled");
  }
  if (step == AuthStep::PlainResponse) return finishPlain(line);
  auto decoded = base64Decode(line);
  if (!decoded) {
    wipe(loginUser_);
    return badCommand("501 5.5.2", "Cannot decode base64 response");
  }
  if (step == AuthStep::LoginUser) {
    loginUser_ = std::move(*decoded);
    authStep_ = AuthStep::LoginPassword;
    mode_ = Mode::AuthResponse;
    return reply("334", "UGFzc3dvcmQ6");
  }
  pending_ = AuthRequest{"LOGIN", "", std::exchange(loginUser_, {}), std::move(*decoded)};
}

void ServerSession::finishPlain(std::string_view base64) {
  auto decoded = base64Decode(base64);
  if (!decoded) return badCommand("501 5.5.2", "Cannot decode base64 response");
  // RFC 4616 section 2: [authzid] NUL authcid NUL passwd.
  std::string& msg = *decoded;
  size_t a = msg.find('\0');
  size_t b = a == std::string::npos ? a : msg.find('\0', a + 1);
  if (b == std::string::npos || msg.find('\0', b + 1) != std::string::npos || b == a + 1 || b + 1 == msg.size()) {
    wipe(msg);
    return badCommand("501 5.5.2", "Malformed PLAIN response");
  }
  pending_ = AuthRequest{"PLAIN", msg.substr(0, a), msg.substr(a + 1, b - a - 1), msg.substr(b + 1)};
  wipe(msg);
}

}  // namespace mb::smtp
