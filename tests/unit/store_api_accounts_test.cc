// Accounts created through the REST API: persistence of settings and sealed
// secrets, the Vault context binding each secret to its account and field,
// removal leaving nothing, and the v2 -> v3 migration that added them.
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "daemon/config/vault.h"
#include "daemon/store/api_accounts.h"
#include "daemon/store/credentials.h"
#include "daemon/store/migrations.h"
#include "daemon/store/store.h"
#include "tests/unit/store_fixture.h"

namespace mb::store {
namespace {

namespace fs = std::filesystem;

class ApiAccountsTest : public StoreFixture {
 protected:
  ApiAccountsTest() : StoreFixture("mb-apiacct") {}
  void SetUp() override {
    auto v = Vault::open(dir_);
    ASSERT_TRUE(v) << v.error().message;
    vault_.emplace(std::move(*v));
  }
  // Every byte SQLite keeps for us: the database and its WAL.
  std::string dbBytes() const {
    return test::readFile(dir_ / "mailbridge.db") + test::readFile(dir_ / "mailbridge.db-wal");
  }
  SecretFields secrets(const std::string& imap, const std::string& smtp) {
    SecretFields out;
    out.emplace_back("imap.password", Secret(imap));
    out.emplace_back("smtp.password", Secret(smtp));
    return out;
  }

  std::optional<Vault> vault_;
};

TEST_F(ApiAccountsTest, PersistAcrossReopenWithSecretsSealed) {
  open();
  auto id = createApiAccount(*store_, *vault_, "work", "me@example.com", R"({"name":"work","imap":{"host":"h"}})",
                             secrets("imap-pw-3141", "smtp-pw-2718"));
  ASSERT_TRUE(id) << id.error().message;
  ASSERT_TRUE(store_->ensureAccount("file", "file@example.com", AccountSource::Config));

  EXPECT_EQ(dbBytes().find("imap-pw-3141"), std::string::npos);
  EXPECT_EQ(dbBytes().find("smtp-pw-2718"), std::string::npos);
  EXPECT_NE(dbBytes().find("me@example.com"), std::string::npos);  // the search does see row contents

  open();  // a restart
  auto loaded = loadApiAccounts(*store_, *vault_);
  ASSERT_TRUE(loaded) << loaded.error().message;
  ASSERT_EQ(loaded->size(), 1u);  // config accounts are not the API's
  const auto& rec = loaded->front();
  EXPECT_EQ(rec.id, *id);
  EXPECT_EQ(rec.name, "work");
  EXPECT_EQ(rec.address, "me@example.com");
  EXPECT_EQ(rec.settings, R"({"name":"work","imap":{"host":"h"}})");
  ASSERT_EQ(rec.secrets.size(), 2u);
  EXPECT_EQ(rec.secrets[0].first, "imap.password");
  EXPECT_EQ(rec.secrets[0].second.reveal(), "imap-pw-3141");
  EXPECT_EQ(rec.secrets[1].first, "smtp.password");
  EXPECT_EQ(rec.secrets[1].second.reveal(), "smtp-pw-2718");
  auto row = store_->findAccount("work");
  ASSERT_TRUE(row && *row);
  EXPECT_EQ((*row)->source, AccountSource::Api);
}

TEST_F(ApiAccountsTest, SealedSecretIsBoundToItsAccountAndField) {
  open();
  auto a = createApiAccount(*store_, *vault_, "a", "a@example.com", "{}", secrets("pw-of-a", "smtp-of-a"));
  auto b = createApiAccount(*store_, *vault_, "b", "b@example.com", "{}", {});
  ASSERT_TRUE(a && b);
  EXPECT_EQ(secretContext(*a, "imap.password"), "account:" + std::to_string(*a) + ":imap.password");
  // Copy a's sealed IMAP password into b's row: opening it there must fail.
  ASSERT_TRUE(store_->db().exec("INSERT INTO account_secrets (account_id, field, sealed) SELECT " +
                                std::to_string(*b) + ", field, sealed FROM account_secrets WHERE account_id = " +
                                std::to_string(*a) + " AND field = 'imap.password'"));
  auto loaded = loadApiAccounts(*store_, *vault_);
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().kind, ErrorKind::Corrupt);
  EXPECT_NE(loaded.error().message.find("account b: imap.password"), std::string::npos) << loaded.error().message;
  EXPECT_EQ(loaded.error().message.find("pw-of-a"), std::string::npos);

  // Within one account, a value moved to another field fails the same way.
  ASSERT_TRUE(store_->db().exec("DELETE FROM account_secrets WHERE account_id = " + std::to_string(*b)));
  ASSERT_TRUE(store_->db().exec(
      "UPDATE account_secrets SET sealed = (SELECT sealed FROM account_secrets WHERE account_id = " +
      std::to_string(*a) + " AND field = 'imap.password') WHERE account_id = " + std::to_string(*a) +
      " AND field = 'smtp.password'"));
  loaded = loadApiAccounts(*store_, *vault_);
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find("account a: smtp.password"), std::string::npos) << loaded.error().message;
}

TEST_F(ApiAccountsTest, AnotherVaultKeyCannotOpenThem) {
  open();
  ASSERT_TRUE(createApiAccount(*store_, *vault_, "a", "a@example.com", "{}", secrets("x", "y")));
  fs::remove(dir_ / "vault.key");
  auto other = Vault::open(dir_);  // a new random key
  ASSERT_TRUE(other);
  auto loaded = loadApiAccounts(*store_, *other);
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find("vault.key"), std::string::npos) << loaded.error().message;
}

TEST_F(ApiAccountsTest, NamesAndAddressesAreOneNamespaceWithFileAccounts) {
  open();
  ASSERT_TRUE(store_->ensureAccount("file", "File@Example.com", AccountSource::Config));
  auto dupName = createApiAccount(*store_, *vault_, "file", "other@example.com", "{}", {});
  ASSERT_FALSE(dupName);
  EXPECT_EQ(dupName.error().kind, ErrorKind::Conflict);
  EXPECT_EQ(dupName.error().message, "name: account \"file\" exists already (from the config file)");
  auto dupAddress = createApiAccount(*store_, *vault_, "api", "file@EXAMPLE.com", "{}", {});
  ASSERT_FALSE(dupAddress);
  EXPECT_EQ(dupAddress.error().kind, ErrorKind::Conflict);
  EXPECT_NE(dupAddress.error().message.find("address:"), std::string::npos);
  EXPECT_EQ(store_->db().queryInt("SELECT count(*) FROM accounts").value_or(-1), 1);
}

TEST_F(ApiAccountsTest, UpdateReplacesEverythingAndMovesTheLocalUsername) {
  open();
  auto id = createApiAccount(*store_, *vault_, "a", "a@example.com", "{}", secrets("old-imap", "old-smtp"));
  ASSERT_TRUE(id);
  ASSERT_TRUE(setCredentials(*store_, *id, "a@example.com", "hash"));
  SecretFields one;
  one.emplace_back("imap.password", Secret("new-imap"));
  ASSERT_TRUE(updateApiAccount(*store_, *vault_, *id, "b", "b@example.com", R"({"v":2})", one));
  auto loaded = loadApiAccounts(*store_, *vault_);
  ASSERT_TRUE(loaded);
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ(loaded->front().name, "b");
  EXPECT_EQ(loaded->front().settings, R"({"v":2})");
  ASSERT_EQ(loaded->front().secrets.size(), 1u);  // smtp.password is gone
  EXPECT_EQ(loaded->front().secrets[0].second.reveal(), "new-imap");
  auto creds = credentialsOf(*store_, *id);
  ASSERT_TRUE(creds && *creds);
  EXPECT_EQ((*creds)->username, "b@example.com");
  EXPECT_EQ((*creds)->passwordHash, "hash");

  ASSERT_TRUE(store_->ensureAccount("file", "file@example.com", AccountSource::Config));
  auto fileId = store_->findAccount("file");
  auto s = updateApiAccount(*store_, *vault_, (*fileId)->id, "file", "file@example.com", "{}", {});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind, ErrorKind::Conflict);
  s = updateApiAccount(*store_, *vault_, *id, "file", "b@example.com", "{}", {});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind, ErrorKind::Conflict);
  s = updateApiAccount(*store_, *vault_, 4242, "x", "x@example.com", "{}", {});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind, ErrorKind::NotFound);
  // The refused updates changed nothing.
  loaded = loadApiAccounts(*store_, *vault_);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->front().name, "b");
  EXPECT_EQ(loaded->front().secrets[0].second.reveal(), "new-imap");
}

TEST_F(ApiAccountsTest, RemovalLeavesNoBytesInTheDatabaseOrWal) {
  open();
  auto id = createApiAccount(*store_, *vault_, "gone", "gone-marker@example.com", R"({"note":"settings-marker"})",
                             secrets("x", "y"));
  ASSERT_TRUE(id);
  auto box = store_->createMailbox(*id, "INBOX");
  ASSERT_TRUE(box);
  NewMessage m;
  std::string bytes = "Subject: subject-marker\r\n\r\nbody\r\n";
  m.bytes = bytes;
  auto appended = store_->appendMessage(box->id, m);
  ASSERT_TRUE(appended);
  ASSERT_NE(dbBytes().find("subject-marker"), std::string::npos);
  auto blobPath = store_->blobs().pathOf(appended->blobId);
  ASSERT_TRUE(blobPath);
  ASSERT_TRUE(fs::exists(*blobPath));
  ASSERT_TRUE(store_->removeAccount(*id));
  EXPECT_EQ(store_->db().queryInt("SELECT count(*) FROM account_secrets").value_or(-1), 0);
  std::string all = dbBytes();
  for (const char* marker : {"gone-marker@example.com", "settings-marker", "subject-marker"})
    EXPECT_EQ(all.find(marker), std::string::npos) << marker;
  EXPECT_FALSE(fs::exists(*blobPath));
}

// A database made by the previous release (schema v2) gains the API account
// columns and table without losing its rows.
TEST_F(ApiAccountsTest, MigratesAVersion2Database) {
  {
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "mailbridge.db").c_str(), &h), SQLITE_OK);
    std::string sql = "PRAGMA journal_mode = WAL;";
    for (const auto& m : migrations())
      if (m.version <= 2) sql += m.sql;
    sql += "PRAGMA user_version = 2; PRAGMA application_id = " + std::to_string(kApplicationId) + ";";
    sql += "INSERT INTO accounts (name, address, source, created_at) VALUES ('old', 'old@example.com', 'config', 1);";
    char* err = nullptr;
    int rc = sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err);
    std::string msg = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(h);
    ASSERT_EQ(rc, SQLITE_OK) << msg;
  }
  open();
  EXPECT_EQ(store_->db().queryInt("PRAGMA user_version").value_or(-1), latestSchemaVersion());
  auto old = store_->findAccount("old");
  ASSERT_TRUE(old && *old);
  EXPECT_EQ((*old)->address, "old@example.com");
  EXPECT_EQ(store_->db().queryInt("SELECT count(*) FROM accounts WHERE settings IS NULL").value_or(-1), 1);
  auto loaded = loadApiAccounts(*store_, *vault_);
  ASSERT_TRUE(loaded);
  EXPECT_TRUE(loaded->empty());
  ASSERT_TRUE(createApiAccount(*store_, *vault_, "new", "new@example.com", "{}", secrets("a", "b")));
}

}  // namespace
}  // namespace mb::store
