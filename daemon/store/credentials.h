// Bridge-local login credentials of accounts: the username local mail
// programs use (the account address) and the scrypt hash of its password.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "daemon/store/store.h"

namespace mb::store {

struct LocalCredentials {
  int64_t accountId = 0;
  std::string username;
  std::string passwordHash;  // empty: no password issued yet (login impossible)
};

// Case-insensitive lookup by local username.
Result<std::optional<LocalCredentials>> findCredentials(Store& store, std::string_view username);
Result<std::optional<LocalCredentials>> credentialsOf(Store& store, int64_t accountId);

// Sets username and hash of an account. Conflict if another account uses the
// username; NotFound if the account does not exist.
Status setCredentials(Store& store, int64_t accountId, std::string_view username, std::string_view passwordHash);

}  // namespace mb::store
