// Upstream secrets from a command (password_command in the config): runs it
// through /bin/sh and takes its first output line. Shared by the SMTP relay
// and the IMAP sync connector.
#pragma once

#include <string>

#include "daemon/log/log.h"
#include "protocols/common/result.h"

namespace mb {

// Blocks while the command runs: it is meant for a quick secret-store lookup
// (pass, secret-tool), not a prompt. Errors (Config) never contain output.
Result<Secret> runPasswordCommand(const std::string& command);

// The configured secret: the command's output when one is set, else the
// stored password (which may be empty).
Result<Secret> resolveSecret(const Secret& password, const std::string& passwordCommand);

}  // namespace mb
