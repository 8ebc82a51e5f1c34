// password_command resolution (see password_command.h).
#include "daemon/util/password_command.h"

#include <cstdio>

namespace mb {

Result<Secret> runPasswordCommand(const std::string& command) {
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) return fail(ErrorKind::Config, "password_command could not be started");
  std::string out;
  char buf[256];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0 && out.size() < 65536) out.append(buf, n);
  int rc = ::pclose(p);
  auto nl = out.find_first_of("\r\n");
  if (nl != std::string::npos) out.resize(nl);
  Secret s(std::move(out));
  if (rc != 0) return fail(ErrorKind::Config, "password_command exited with status " + std::to_string(rc));
  if (s.empty()) return fail(ErrorKind::Config, "password_command printed nothing");
  return s;
}

Result<Secret> resolveSecret(const Secret& password, const std::string& passwordCommand) {
  if (passwordCommand.empty()) return password;
  return runPasswordCommand(passwordCommand);
}

}  // namespace mb
