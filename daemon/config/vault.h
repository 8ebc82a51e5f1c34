// Encryption at rest for upstream secrets (passwords, OAuth tokens) kept in
// the state dir: AES-256-GCM under a random key in <state dir>/vault.key
// (0600). It guards against copies of the database (backups, a synced home
// directory) leaking credentials; it does not guard against root on the host.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "daemon/log/log.h"
#include "protocols/common/result.h"

namespace mb {

class Vault {
 public:
  // Loads the key, creating it on first use. A key file of the wrong size is
  // Corrupt and left alone (sealed secrets would be lost if it were replaced).
  static Result<Vault> open(const std::filesystem::path& stateDir);

  // "v1:" + base64(nonce | ciphertext | tag). `context` (e.g. "account:3:imap")
  // is authenticated, so a sealed value cannot be moved to another field.
  Result<std::string> seal(const Secret& plain, std::string_view context) const;
  Result<Secret> open(std::string_view sealed, std::string_view context) const;

 private:
  explicit Vault(std::string key) : key_(std::move(key)) {}
  Secret key_;
};

}  // namespace mb
