// Local credential rows (columns of accounts).
#include "daemon/store/credentials.h"

namespace mb::store {
namespace {

Result<std::optional<LocalCredentials>> readOne(Stmt& st) {
  auto row = st.step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::optional<LocalCredentials>();
  return std::optional<LocalCredentials>(LocalCredentials{st.columnInt64(0), st.columnText(1), st.columnText(2)});
}

}  // namespace

Result<std::optional<LocalCredentials>> findCredentials(Store& store, std::string_view username) {
  auto st = store.db().prepare(
      "SELECT id, local_username, local_password_hash FROM accounts WHERE local_username = ?1 COLLATE NOCASE");
  if (!st) return std::unexpected(st.error());
  st->bind(1, username);
  return readOne(*st);
}

Result<std::optional<LocalCredentials>> credentialsOf(Store& store, int64_t accountId) {
  auto st = store.db().prepare(
      "SELECT id, local_username, local_password_hash FROM accounts WHERE id = ?1 AND local_username IS NOT NULL");
  if (!st) return std::unexpected(st.error());
  st->bind(1, accountId);
  return readOne(*st);
}

Status setCredentials(Store& store, int64_t accountId, std::string_view username, std::string_view passwordHash) {
  auto tx = Transaction::begin(store.db());
  if (!tx) return std::unexpected(tx.error());
  auto clash = store.db().prepare("SELECT id FROM accounts WHERE local_username = ?1 COLLATE NOCASE AND id != ?2");
  if (!clash) return std::unexpected(clash.error());
  clash->bind(1, username).bind(2, accountId);
  auto row = clash->step();
  if (!row) return std::unexpected(row.error());
  if (*row) return fail(ErrorKind::Conflict, "local username \"" + std::string(username) + "\" is used by another account");
  auto st = store.db().prepare("UPDATE accounts SET local_username = ?1, local_password_hash = ?2 WHERE id = ?3");
  if (!st) return std::unexpected(st.error());
  st->bind(1, username).bind(2, passwordHash).bind(3, accountId);
  if (auto s = st->run(); !s) return s;
  if (store.db().changes() != 1) return fail(ErrorKind::NotFound, "no account with id " + std::to_string(accountId));
  return tx->commit();
}

}  // namespace mb::store
