// Thin RAII over the SQLite C API: Db (a connection), Stmt (a prepared
// statement), Transaction (rolls back unless committed). Every failure is a
// Result/Status whose message names the database path and SQLite's reason.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "protocols/common/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace mb::store {

class Stmt;
class StmtCache;

// One connection. Not thread-safe: the owner thread uses it, other threads
// open their own connection (it is opened without SQLite's per-connection
// mutex, so a second thread using it would corrupt it). Must outlive every Stmt and Transaction
// made from it.
class Db {
 public:
  enum class OpenMode { ReadWriteCreate, ReadWrite, ReadOnly };

  // Opening is lazy in SQLite: a file that is not a database is only detected
  // by the first statement that reads it (see Store::open).
  static Result<Db> open(const std::string& path, OpenMode mode = OpenMode::ReadWriteCreate);

  Db(Db&& other) noexcept;
  Db& operator=(Db&& other) noexcept;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  // Runs one or more ';'-separated statements that return no rows we need.
  Status exec(std::string_view sql);
  // Compiled statements are kept once their Stmt is destroyed (reset, so
  // they hold no read snapshot) and handed out again for the same SQL text:
  // the per-message paths run the same few statements thousands of times,
  // and compiling one costs more than running it.
  Result<Stmt> prepare(std::string_view sql);
  // For "PRAGMA x" / "SELECT count(*)..." style one-value queries.
  Result<int64_t> queryInt(std::string_view sql);
  Result<std::string> queryText(std::string_view sql);

  int64_t lastInsertRowid() const;
  int changes() const;
  bool inTransaction() const;
  const std::string& path() const { return path_; }
  sqlite3* handle() const { return db_; }

  // An Error for a failed call that returned rc: "<path>: <sqlite message>
  // (<what>)", with a kind derived from rc (NOTADB/CORRUPT -> Corrupt,
  // BUSY/LOCKED -> Unavailable, CONSTRAINT -> Conflict, I/O class -> Io).
  Error error(int rc, std::string_view what) const;

 private:
  Db(sqlite3* db, std::string path);
  void close();

  sqlite3* db_ = nullptr;
  std::string path_;
  std::unique_ptr<StmtCache> cache_;  // on the heap: a Db may move, its statements' cache may not
};

// A prepared statement. Binds are chainable; a bind failure is remembered and
// reported by the next step()/run(), so call sites stay linear:
//   auto st = db.prepare("INSERT INTO t(a, b) VALUES (?1, ?2)");
//   if (!st) return std::unexpected(st.error());
//   if (auto r = st->bind(1, a).bind(2, b).run(); !r) return r;
// Indexes are 1-based for bind (as in SQL) and 0-based for column (as in SQLite).
class Stmt {
 public:
  Stmt(Stmt&& other) noexcept;
  Stmt& operator=(Stmt&& other) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt();

  template <class T>
    requires std::is_integral_v<T>
  Stmt& bind(int index, T value) {
    if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(int64_t)) {
      if (value > static_cast<T>(INT64_MAX)) return bindOverflow(index);
    }
    return bindInt64(index, static_cast<int64_t>(value));
  }
  Stmt& bind(int index, std::string_view value);
  Stmt& bind(int index, const char* value) { return bind(index, std::string_view(value)); }
  Stmt& bind(int index, const std::string& value) { return bind(index, std::string_view(value)); }
  Stmt& bind(int index, std::nullopt_t) { return bindNull(index); }
  template <class T>
  Stmt& bind(int index, const std::optional<T>& value) {
    return value ? bind(index, *value) : bindNull(index);
  }
  Stmt& bindNull(int index);
  Stmt& bindBlob(int index, std::span<const std::byte> value);
  // bind/bindBlob without SQLite's copy of the bytes, for the large values of
  // a row written thousands of times (a sync's messages): the bytes must stay
  // live and unchanged until this Stmt is reset or destroyed.
  Stmt& bindBorrowed(int index, std::string_view value);
  Stmt& bindBlobBorrowed(int index, std::span<const std::byte> value);

  // true: a row is available through column*(); false: the statement is done.
  Result<bool> step();
  // Steps to completion, for statements that return no rows.
  Status run();
  // Steps through every row, calling fn(*this) on each to read its columns.
  // fn returns void (go on), bool (false ends the walk early, without error),
  // Status (an error ends the walk and is returned) or Result<bool> (both).
  // A step failure is returned as is.
  template <class Fn>
  Status forEachRow(Fn&& fn) {
    using R = std::invoke_result_t<Fn&, Stmt&>;
    for (;;) {
      auto row = step();
      if (!row) return std::unexpected(row.error());
      if (!*row) return {};
      if constexpr (std::is_void_v<R>) {
        fn(*this);
      } else if constexpr (std::is_same_v<R, bool>) {
        if (!fn(*this)) return {};
      } else if constexpr (std::is_same_v<R, Status>) {
        if (auto s = fn(*this); !s) return s;
      } else {
        static_assert(std::is_same_v<R, Result<bool>>, "forEachRow: fn returns void, bool, Status or Result<bool>");
        auto more = fn(*this);
        if (!more) return std::unexpected(more.error());
        if (!*more) return {};
      }
    }
  }
  // Makes the statement reusable with fresh bindings.
  void reset();

  int64_t columnInt64(int col) const;
  std::string columnText(int col) const;  // NULL reads as ""
  std::optional<std::string> columnOptText(int col) const;
  std::optional<int64_t> columnOptInt64(int col) const;
  bool columnIsNull(int col) const;

 private:
  friend class Db;
  Stmt(const Db* db, sqlite3_stmt* stmt, StmtCache* cache) : db_(db), stmt_(stmt), cache_(cache) {}
  void release();  // back to the cache, or finalized
  Stmt& bindInt64(int index, int64_t value);
  Stmt& bindOverflow(int index);
  Stmt& bindText(int index, std::string_view value, bool copy);
  Stmt& bindBytes(int index, std::span<const std::byte> value, bool copy);
  Stmt& noteBind(int rc, int index);

  const Db* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  StmtCache* cache_ = nullptr;
  std::optional<Error> bindError_;
};

// BEGIN ... COMMIT with rollback on every path that does not reach commit().
// Immediate takes the write lock at BEGIN, so a writer never fails half-way
// with SQLITE_BUSY on lock upgrade; use it for anything that writes. Not
// nestable (SQLite has no nested BEGIN); the Db must outlive it.
class Transaction {
 public:
  enum class Mode { Deferred, Immediate };

  static Result<Transaction> begin(Db& db, Mode mode = Mode::Immediate);

  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  Status commit();
  void rollback();

 private:
  explicit Transaction(Db* db) : db_(db) {}
  Db* db_ = nullptr;
  bool open_ = true;
};

}  // namespace mb::store
