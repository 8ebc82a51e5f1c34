// Accounts created through the REST API: the Store keeps what the config file
// keeps for the others. Settings are the account's JSON object without its
// secrets (accounts.settings); each upstream secret is sealed by the Vault,
// bound to the account id and the field (account_secrets), and never stored
// in clear.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/config/vault.h"
#include "daemon/log/log.h"
#include "daemon/store/store.h"

namespace mb::store {

// field ("imap.password", "smtp.password") -> value
using SecretFields = std::vector<std::pair<std::string, Secret>>;

struct ApiAccountRecord {
  int64_t id = 0;
  std::string name;
  std::string address;
  std::string settings;  // JSON object without secrets
  SecretFields secrets;  // opened
};

// The Vault context of one sealed field: "account:<id>:<field>".
std::string secretContext(int64_t accountId, std::string_view field);

// Inserts the account row (source 'api') with its settings and sealed
// secrets in one transaction. Conflict when the name or address is taken.
Result<int64_t> createApiAccount(Store& store, const Vault& vault, std::string_view name, std::string_view address,
                                 std::string_view settings, const SecretFields& secrets);

// Replaces name, address, settings and every secret of an API account in one
// transaction; the local username follows the address. NotFound for no such
// account, Conflict for an account from the config file or a name, address or
// username another account has.
Status updateApiAccount(Store& store, const Vault& vault, int64_t accountId, std::string_view name,
                        std::string_view address, std::string_view settings, const SecretFields& secrets);

// Every API account with its secrets opened, by id. Corrupt when a secret
// cannot be opened (damaged, or the vault key changed): the caller must not
// treat such an account as gone.
Result<std::vector<ApiAccountRecord>> loadApiAccounts(Store& store, const Vault& vault);

}  // namespace mb::store
