// The set-up every Store test shares: a Store in a fresh state dir with a
// test clock, and config-file accounts with their default mailboxes.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "daemon/store/mailbox_ops.h"
#include "daemon/store/store.h"
#include "tests/unit/test_fixtures.h"

namespace mb::store {

class StoreFixture : public ::testing::Test {
 protected:
  explicit StoreFixture(const std::string& prefix = "mb-store") : tmp_(prefix), dir_(tmp_.path()) {}

  // Opens (or re-opens: the old Store is closed first) the store in dir_,
  // with now_ as its clock.
  void open(StoreOptions options = {}) {
    store_.reset();
    options.clock = [this] { return now_; };
    auto s = Store::open(dir_, options);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
  }
  // A config-file account named `name` (<name>@example.org), no mailboxes;
  // its id.
  int64_t account(const std::string& name) {
    auto a = store_->ensureAccount(name, name + "@example.org", AccountSource::Config);
    EXPECT_TRUE(a) << a.error().message;
    return a.value_or(0);
  }
  // The same with the default mailboxes (INBOX, Sent, Drafts, Trash...).
  int64_t accountWithMailboxes(const std::string& name) {
    int64_t id = account(name);
    auto s = ensureDefaultMailboxes(*store_, id);
    EXPECT_TRUE(s) << s.error().message;
    return id;
  }
  int64_t mailboxId(int64_t account, const std::string& name) {
    auto m = store_->findMailbox(account, name);
    EXPECT_TRUE(m && *m) << name;
    return m && *m ? (*m)->id : 0;
  }
  int64_t count(const std::string& sql) { return store_->db().queryInt(sql).value_or(-1); }

  test::TempDir tmp_;
  const std::filesystem::path dir_;
  int64_t now_ = 1700000000;
  std::unique_ptr<Store> store_;  // declared last: closed before the dir goes
};

}  // namespace mb::store
