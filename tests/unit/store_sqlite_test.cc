// The SQLite wrapper: transactions roll back unless committed, binds and
// columns round-trip, and errors carry the db path and SQLite's reason.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "daemon/store/sqlite.h"
#include "tests/unit/test_fixtures.h"

namespace mb::store {
namespace {

class StoreSqlite : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (dir_ / "t.db").string();
    auto db = Db::open(path_);
    ASSERT_TRUE(db) << db.error().message;
    db_.emplace(std::move(*db));
    ASSERT_TRUE(db_->exec("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, s TEXT UNIQUE)"));
  }
  int64_t count() { return db_->queryInt("SELECT count(*) FROM t").value_or(-1); }

  test::TempDir tmp_{"mb-store-sqlite"};
  const std::filesystem::path dir_ = tmp_.path();
  std::string path_;
  std::optional<Db> db_;
};

TEST_F(StoreSqlite, TransactionRollsBackUnlessCommitted) {
  {
    auto tx = Transaction::begin(*db_);
    ASSERT_TRUE(tx);
    ASSERT_TRUE(db_->exec("INSERT INTO t (n) VALUES (1)"));
    EXPECT_TRUE(db_->inTransaction());
  }
  EXPECT_FALSE(db_->inTransaction());
  EXPECT_EQ(count(), 0);
  {
    auto tx = Transaction::begin(*db_);
    ASSERT_TRUE(tx);
    ASSERT_TRUE(db_->exec("INSERT INTO t (n) VALUES (1)"));
    ASSERT_TRUE(tx->commit());
    EXPECT_FALSE(tx->commit());  // a second commit is a bug, reported
  }
  EXPECT_EQ(count(), 1);
}

int liveStatements(Db& db, int* busy = nullptr) {
  int n = 0;
  for (sqlite3_stmt* s = sqlite3_next_stmt(db.handle(), nullptr); s; s = sqlite3_next_stmt(db.handle(), s)) {
    ++n;
    if (busy && sqlite3_stmt_busy(s)) ++*busy;
  }
  return n;
}

// Statements are compiled once and reused; a reused one has no old bindings
// and no read snapshot left, and two live ones of the same text are independent.
TEST_F(StoreSqlite, PreparedStatementsAreReusedClean) {
  ASSERT_TRUE(db_->exec("INSERT INTO t (n, s) VALUES (1, 'a'), (2, 'b')"));
  for (int i = 0; i < 100; ++i) {
    auto st = db_->prepare("SELECT n FROM t WHERE n >= ?1 ORDER BY n");
    ASSERT_TRUE(st);
    st->bind(1, 1);
    ASSERT_TRUE(st->step().value_or(false));  // one row read, the second left unread
  }
  int busy = 0;
  EXPECT_EQ(liveStatements(*db_, &busy), 1);
  EXPECT_EQ(busy, 0);
  {
    auto st = db_->prepare("SELECT n FROM t WHERE n >= ?1 ORDER BY n");
    ASSERT_TRUE(st);
    ASSERT_TRUE(st->step().value_or(false) == false);  // ?1 unbound is NULL: no row
  }
  {
    auto a = db_->prepare("SELECT n FROM t WHERE n >= ?1 ORDER BY n");
    auto b = db_->prepare("SELECT n FROM t WHERE n >= ?1 ORDER BY n");
    ASSERT_TRUE(a && b);
    a->bind(1, 2);
    b->bind(1, 1);
    ASSERT_TRUE(a->step().value_or(false));
    ASSERT_TRUE(b->step().value_or(false));
    EXPECT_EQ(a->columnInt64(0), 2);
    EXPECT_EQ(b->columnInt64(0), 1);
  }
  EXPECT_EQ(liveStatements(*db_), 2);
  // Many different texts stay bounded.
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(db_->prepare("SELECT " + std::to_string(i)));
  EXPECT_LE(liveStatements(*db_), 64 * 4);
  // A schema change is picked up by a cached statement.
  ASSERT_TRUE(db_->exec("ALTER TABLE t ADD COLUMN extra INTEGER DEFAULT 7"));
  auto st = db_->prepare("SELECT * FROM t ORDER BY n");
  ASSERT_TRUE(st && st->step().value_or(false));
  EXPECT_EQ(st->columnInt64(3), 7);
}

TEST_F(StoreSqlite, BindAndColumnsRoundTrip) {
  auto ins = db_->prepare("INSERT INTO t (n, s) VALUES (?1, ?2)");
  ASSERT_TRUE(ins);
  ASSERT_TRUE(ins->bind(1, int64_t{1} << 40).bind(2, std::string_view("h\xc3\xa9llo")).run());
  ins->reset();
  ASSERT_TRUE(ins->bind(1, std::optional<int>()).bind(2, std::nullopt).run());
  ins->reset();
  ASSERT_TRUE(ins->bind(1, 7u).bind(2, std::optional<std::string>("x")).run());

  auto sel = db_->prepare("SELECT n, s FROM t ORDER BY id");
  ASSERT_TRUE(sel);
  ASSERT_EQ(sel->step().value_or(false), true);
  EXPECT_EQ(sel->columnInt64(0), int64_t{1} << 40);
  EXPECT_EQ(sel->columnText(1), "h\xc3\xa9llo");
  ASSERT_EQ(sel->step().value_or(false), true);
  EXPECT_TRUE(sel->columnIsNull(0));
  EXPECT_EQ(sel->columnOptInt64(0), std::nullopt);
  EXPECT_EQ(sel->columnOptText(1), std::nullopt);
  EXPECT_EQ(sel->columnText(1), "");
  ASSERT_EQ(sel->step().value_or(false), true);
  EXPECT_EQ(sel->columnOptInt64(0), 7);
  EXPECT_EQ(sel->columnOptText(1), "x");
  auto end = sel->step();
  ASSERT_TRUE(end);
  EXPECT_FALSE(*end);
}

TEST_F(StoreSqlite, ErrorsNamePathAndReason) {
  auto bad = db_->prepare("SELEKT 1");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find(path_ + ": "), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("syntax error"), std::string::npos) << bad.error().message;

  ASSERT_TRUE(db_->exec("INSERT INTO t (s) VALUES ('dup')"));
  auto dup = db_->exec("INSERT INTO t (s) VALUES ('dup')");
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().kind, ErrorKind::Conflict);
  EXPECT_NE(dup.error().message.find("UNIQUE"), std::string::npos) << dup.error().message;
}

TEST_F(StoreSqlite, BindErrorsSurfaceAtStep) {
  auto st = db_->prepare("INSERT INTO t (n) VALUES (?1)");
  ASSERT_TRUE(st);
  auto r = st->bind(2, 1).run();  // no ?2
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("bind ?2"), std::string::npos) << r.error().message;
  st->reset();
  auto big = st->bind(1, UINT64_MAX).run();
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("exceeds int64"), std::string::npos) << big.error().message;
  EXPECT_EQ(count(), 0);
}

TEST_F(StoreSqlite, OpenFailureNamesPath) {
  auto r = Db::open("/dev/null/x.db");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Io);
  EXPECT_NE(r.error().message.find("/dev/null/x.db"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace mb::store
