// API account rows: settings and sealed secrets (see api_accounts.h).
#include "daemon/store/api_accounts.h"

namespace mb::store {
namespace {

// Names are UNIQUE in the schema; addresses are unique by this check (any
// case), across file and API accounts.
Status checkFree(Db& db, std::string_view name, std::string_view address, int64_t self) {
  auto st = db.prepare(
      "SELECT name, source FROM accounts WHERE (name = ?1 OR address = ?2 COLLATE NOCASE) AND id != ?3 LIMIT 1");
  if (!st) return std::unexpected(st.error());
  st->bind(1, name).bind(2, address).bind(3, self);
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return {};
  std::string other = st->columnText(0);
  std::string via = st->columnText(1) == "config" ? "the config file" : "the API";
  if (other == name) return fail(ErrorKind::Conflict, "name: account \"" + other + "\" exists already (from " + via + ")");
  return fail(ErrorKind::Conflict,
              "address: \"" + std::string(address) + "\" is used by account \"" + other + "\" (from " + via + ")");
}

Status writeSecrets(Db& db, const Vault& vault, int64_t accountId, const SecretFields& secrets) {
  auto del = db.prepare("DELETE FROM account_secrets WHERE account_id = ?1");
  if (!del) return std::unexpected(del.error());
  if (auto s = del->bind(1, accountId).run(); !s) return s;
  auto ins = db.prepare("INSERT INTO account_secrets (account_id, field, sealed) VALUES (?1, ?2, ?3)");
  if (!ins) return std::unexpected(ins.error());
  for (const auto& [field, secret] : secrets) {
    auto sealed = vault.seal(secret, secretContext(accountId, field));
    if (!sealed) return std::unexpected(sealed.error());
    ins->reset();
    if (auto s = ins->bind(1, accountId).bind(2, field).bind(3, *sealed).run(); !s) return s;
  }
  return {};
}

}  // namespace

std::string secretContext(int64_t accountId, std::string_view field) {
  return "account:" + std::to_string(accountId) + ":" + std::string(field);
}

Result<int64_t> createApiAccount(Store& store, const Vault& vault, std::string_view name, std::string_view address,
                                 std::string_view settings, const SecretFields& secrets) {
  Db& db = store.db();
  auto tx = Transaction::begin(db);
  if (!tx) return std::unexpected(tx.error());
  if (auto s = checkFree(db, name, address, 0); !s) return std::unexpected(s.error());
  auto ins = db.prepare(
      "INSERT INTO accounts (name, address, source, created_at, settings) VALUES (?1, ?2, 'api', ?3, ?4)");
  if (!ins) return std::unexpected(ins.error());
  if (auto s = ins->bind(1, name).bind(2, address).bind(3, store.now()).bind(4, settings).run(); !s)
    return std::unexpected(s.error());
  int64_t id = db.lastInsertRowid();
  if (auto s = writeSecrets(db, vault, id, secrets); !s) return std::unexpected(s.error());
  if (auto s = tx->commit(); !s) return std::unexpected(s.error());
  return id;
}

Status updateApiAccount(Store& store, const Vault& vault, int64_t accountId, std::string_view name,
                        std::string_view address, std::string_view settings, const SecretFields& secrets) {
  Db& db = store.db();
  auto tx = Transaction::begin(db);
  if (!tx) return std::unexpected(tx.error());
  auto find = db.prepare("SELECT source FROM accounts WHERE id = ?1");
  if (!find) return std::unexpected(find.error());
  auto row = find->bind(1, accountId).step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return fail(ErrorKind::NotFound, "no account with id " + std::to_string(accountId));
  if (find->columnText(0) != "api")
    return fail(ErrorKind::Conflict, "account " + std::to_string(accountId) + " comes from the config file: change it there");
  if (auto s = checkFree(db, name, address, accountId); !s) return s;
  // The local username is the address (Authenticator::issuePassword).
  auto upd = db.prepare(
      "UPDATE accounts SET name = ?1, address = ?2, settings = ?3, "
      "local_username = CASE WHEN local_username IS NULL THEN NULL ELSE ?2 END WHERE id = ?4");
  if (!upd) return std::unexpected(upd.error());
  if (auto s = upd->bind(1, name).bind(2, address).bind(3, settings).bind(4, accountId).run(); !s) return s;
  if (auto s = writeSecrets(db, vault, accountId, secrets); !s) return s;
  return tx->commit();
}

Result<std::vector<ApiAccountRecord>> loadApiAccounts(Store& store, const Vault& vault) {
  Db& db = store.db();
  std::vector<ApiAccountRecord> out;
  {
    auto st = db.prepare("SELECT id, name, address, settings FROM accounts WHERE source = 'api' ORDER BY id");
    if (!st) return std::unexpected(st.error());
    auto rows = st->forEachRow([&](Stmt& r) {
      out.push_back({r.columnInt64(0), r.columnText(1), r.columnText(2), r.columnText(3), {}});
      if (out.back().settings.empty()) out.back().settings = "{}";
    });
    if (!rows) return propagate(rows);
  }
  auto st = db.prepare("SELECT field, sealed FROM account_secrets WHERE account_id = ?1 ORDER BY field");
  if (!st) return std::unexpected(st.error());
  for (auto& rec : out) {
    st->reset();
    st->bind(1, rec.id);
    auto rows = st->forEachRow([&](Stmt& r) -> Status {
      std::string field = r.columnText(0);
      auto secret = vault.open(r.columnText(1), secretContext(rec.id, field));
      if (!secret)
        return fail(ErrorKind::Corrupt, "account " + rec.name + ": " + field + ": " + secret.error().message +
                                            " (vault.key in the state dir must be the one it was sealed with)");
      rec.secrets.emplace_back(std::move(field), std::move(*secret));
      return {};
    });
    if (!rows) return propagate(rows);
  }
  return out;
}

}  // namespace mb::store
