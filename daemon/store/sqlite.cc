// The SQLite wrapper: error mapping and resource lifetimes in one place, so
// the rest of the store reads as SQL plus Result handling.
#include "daemon/store/sqlite.h"

#include <sqlite3.h>

#include <unordered_map>
#include <vector>

#include "daemon/log/log.h"

namespace mb::store {
namespace {

ErrorKind kindOf(int rc) {
  switch (rc & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return ErrorKind::Corrupt;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return ErrorKind::Unavailable;
    case SQLITE_CONSTRAINT:
      return ErrorKind::Conflict;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_NOLFS:
      return ErrorKind::Io;
    default:
      return ErrorKind::Internal;
  }
}

}  // namespace

// Idle compiled statements by SQL text, least recently used text evicted
// first; bounded so that statements built from variable text (IN lists) do
// not pile up.
class StmtCache {
 public:
  static constexpr size_t kMaxTexts = 64;
  static constexpr size_t kMaxIdlePerText = 4;

  ~StmtCache() { clear(); }

  sqlite3_stmt* take(std::string_view sql) {
    auto it = map_.find(std::string(sql));
    if (it == map_.end() || it->second.idle.empty()) return nullptr;
    sqlite3_stmt* st = it->second.idle.back();
    it->second.idle.pop_back();
    it->second.used = ++clock_;
    return st;
  }

  // Keeps a statement that is done with (reset, bindings cleared), or
  // finalizes it when its text already has enough idle copies.
  void give(sqlite3_stmt* st) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    const char* sql = sqlite3_sql(st);
    if (!sql) {
      sqlite3_finalize(st);
      return;
    }
    auto it = map_.find(sql);
    if (it == map_.end()) {
      if (map_.size() >= kMaxTexts) evictOldest();
      it = map_.emplace(sql, Entry{}).first;
    }
    if (it->second.idle.size() >= kMaxIdlePerText) {
      sqlite3_finalize(st);
      return;
    }
    it->second.idle.push_back(st);
    it->second.used = ++clock_;
  }

  void clear() {
    for (auto& [sql, e] : map_)
      for (sqlite3_stmt* st : e.idle) sqlite3_finalize(st);
    map_.clear();
  }

 private:
  struct Entry {
    std::vector<sqlite3_stmt*> idle;
    uint64_t used = 0;
  };

  void evictOldest() {
    auto oldest = map_.begin();
    for (auto it = map_.begin(); it != map_.end(); ++it)
      if (it->second.used < oldest->second.used) oldest = it;
    for (sqlite3_stmt* st : oldest->second.idle) sqlite3_finalize(st);
    map_.erase(oldest);
  }

  std::unordered_map<std::string, Entry> map_;
  uint64_t clock_ = 0;
};

// ---- Db

Result<Db> Db::open(const std::string& path, OpenMode mode) {
  // Every sqlite3_* call of a serialized connection takes its mutex, and every
  // allocation SQLite makes takes the global memory-statistics mutex: ~10% of
  // the loop's time in a sync's row inserts, for a guarantee we do not need
  // (one thread per connection, see the class comment; nothing reads the
  // statistics). MEMSTATUS can only change before SQLite initializes, i.e.
  // before the first connection of the process; when something opened one
  // first (a test's raw sqlite3_open) it fails and the statistics stay on.
  static const bool memStatusOff = [] { return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK; }();
  (void)memStatusOff;
  int flags = SQLITE_OPEN_EXRESCODE | SQLITE_OPEN_NOMUTEX;
  switch (mode) {
    case OpenMode::ReadWriteCreate: flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE; break;
    case OpenMode::ReadWrite: flags |= SQLITE_OPEN_READWRITE; break;
    case OpenMode::ReadOnly: flags |= SQLITE_OPEN_READONLY; break;
  }
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    sqlite3_close(raw);  // a handle is returned even on failure
    return fail(kindOf(rc), path + ": " + msg + " (open)");
  }
  sqlite3_extended_result_codes(raw, 1);
  return Db(raw, path);
}

Db::Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)), cache_(std::make_unique<StmtCache>()) {}

Db::Db(Db&& other) noexcept : db_(other.db_), path_(std::move(other.path_)), cache_(std::move(other.cache_)) {
  other.db_ = nullptr;
}

Db& Db::operator=(Db&& other) noexcept {
  if (this != &other) {
    close();
    db_ = other.db_;
    path_ = std::move(other.path_);
    cache_ = std::move(other.cache_);
    other.db_ = nullptr;
  }
  return *this;
}

Db::~Db() { close(); }

void Db::close() {
  if (cache_) cache_->clear();
  if (!db_) return;
  // sqlite3_close (not _v2) refuses while statements are alive; a leak there
  // is a bug we want to see in the log rather than a zombie connection.
  int rc = sqlite3_close(db_);
  if (rc != SQLITE_OK) {
    logError("store.db_close_failed").kv("path", path_).kv("error", sqlite3_errmsg(db_));
    sqlite3_close_v2(db_);
  }
  db_ = nullptr;
}

Error Db::error(int rc, std::string_view what) const {
  std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  return Error{kindOf(rc), path_ + ": " + msg + " (" + std::string(what) + ")", {}};
}

Status Db::exec(std::string_view sql) {
  std::string text(sql);  // sqlite3_exec needs NUL termination
  char* errmsg = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &errmsg);
  if (rc != SQLITE_OK) {
    std::string msg = errmsg ? errmsg : sqlite3_errstr(rc);
    sqlite3_free(errmsg);
    std::string head(sql.substr(0, 60));
    return fail(kindOf(rc), path_ + ": " + msg + " (exec: " + head + ")");
  }
  return {};
}

Result<Stmt> Db::prepare(std::string_view sql) {
  if (sqlite3_stmt* cached = cache_ ? cache_->take(sql) : nullptr) return Stmt(this, cached, cache_.get());
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
  if (rc != SQLITE_OK) {
    return std::unexpected(error(rc, "prepare: " + std::string(sql.substr(0, 60))));
  }
  if (!raw) return fail(ErrorKind::Internal, path_ + ": empty statement");
  return Stmt(this, raw, cache_.get());
}

Result<int64_t> Db::queryInt(std::string_view sql) {
  auto st = prepare(sql);
  if (!st) return std::unexpected(st.error());
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return fail(ErrorKind::Internal, path_ + ": no row from " + std::string(sql));
  return st->columnInt64(0);
}

Result<std::string> Db::queryText(std::string_view sql) {
  auto st = prepare(sql);
  if (!st) return std::unexpected(st.error());
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return fail(ErrorKind::Internal, path_ + ": no row from " + std::string(sql));
  return st->columnText(0);
}

int64_t Db::lastInsertRowid() const { return sqlite3_last_insert_rowid(db_); }
int Db::changes() const { return sqlite3_changes(db_); }
bool Db::inTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

// ---- Stmt

Stmt::Stmt(Stmt&& other) noexcept
    : db_(other.db_), stmt_(other.stmt_), cache_(other.cache_), bindError_(std::move(other.bindError_)) {
  other.stmt_ = nullptr;
}

Stmt& Stmt::operator=(Stmt&& other) noexcept {
  if (this != &other) {
    release();
    db_ = other.db_;
    stmt_ = other.stmt_;
    cache_ = other.cache_;
    bindError_ = std::move(other.bindError_);
    other.stmt_ = nullptr;
  }
  return *this;
}

Stmt::~Stmt() { release(); }

void Stmt::release() {
  if (!stmt_) return;
  if (cache_) cache_->give(stmt_);
  else sqlite3_finalize(stmt_);
  stmt_ = nullptr;
}

Stmt& Stmt::noteBind(int rc, int index) {
  if (rc != SQLITE_OK && !bindError_) bindError_ = db_->error(rc, "bind ?" + std::to_string(index));
  return *this;
}

Stmt& Stmt::bindInt64(int index, int64_t value) { return noteBind(sqlite3_bind_int64(stmt_, index, value), index); }

Stmt& Stmt::bindOverflow(int index) {
  if (!bindError_) {
    bindError_ = Error{ErrorKind::Internal, db_->path() + ": value for ?" + std::to_string(index) + " exceeds int64", {}};
  }
  return *this;
}

// Borrowed bytes stay valid for SQLite as long as it can read them: reset()
// and release() clear every binding.
Stmt& Stmt::bindText(int index, std::string_view value, bool copy) {
  return noteBind(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), copy ? SQLITE_TRANSIENT : SQLITE_STATIC,
                                      SQLITE_UTF8),
                  index);
}

Stmt& Stmt::bindBytes(int index, std::span<const std::byte> value, bool copy) {
  return noteBind(
      sqlite3_bind_blob64(stmt_, index, value.data(), value.size(), copy ? SQLITE_TRANSIENT : SQLITE_STATIC), index);
}

Stmt& Stmt::bind(int index, std::string_view value) { return bindText(index, value, true); }
Stmt& Stmt::bindBorrowed(int index, std::string_view value) { return bindText(index, value, false); }
Stmt& Stmt::bindBlob(int index, std::span<const std::byte> value) { return bindBytes(index, value, true); }
Stmt& Stmt::bindBlobBorrowed(int index, std::span<const std::byte> value) { return bindBytes(index, value, false); }

Stmt& Stmt::bindNull(int index) { return noteBind(sqlite3_bind_null(stmt_, index), index); }

Result<bool> Stmt::step() {
  if (bindError_) return std::unexpected(*bindError_);
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  const char* sql = sqlite3_sql(stmt_);
  std::string head = sql ? std::string(sql).substr(0, 60) : std::string();
  return std::unexpected(db_->error(rc, "step: " + head));
}

Status Stmt::run() {
  return forEachRow([](Stmt&) {});
}

void Stmt::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bindError_.reset();
}

int64_t Stmt::columnInt64(int col) const { return sqlite3_column_int64(stmt_, col); }

std::string Stmt::columnText(int col) const {
  const unsigned char* text = sqlite3_column_text(stmt_, col);
  if (!text) return {};
  return std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

std::optional<std::string> Stmt::columnOptText(int col) const {
  if (columnIsNull(col)) return std::nullopt;
  return columnText(col);
}

std::optional<int64_t> Stmt::columnOptInt64(int col) const {
  if (columnIsNull(col)) return std::nullopt;
  return columnInt64(col);
}

bool Stmt::columnIsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

// ---- Transaction

Result<Transaction> Transaction::begin(Db& db, Mode mode) {
  auto st = db.exec(mode == Mode::Immediate ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED");
  if (!st) return std::unexpected(st.error());
  return Transaction(&db);
}

Transaction::Transaction(Transaction&& other) noexcept : db_(other.db_), open_(other.open_) {
  other.open_ = false;
}

Transaction::~Transaction() { rollback(); }

Status Transaction::commit() {
  if (!open_) return fail(ErrorKind::Internal, db_->path() + ": commit of a finished transaction");
  // A statement stepped but not run to completion (read one row, then commit)
  // keeps this connection's read snapshot open past COMMIT, and the WAL
  // auto-checkpoint that COMMIT triggers can then never copy frames back: the
  // WAL grows forever and every page read gets slower. Nothing may read on
  // across a commit, so end every such statement here, in one place.
  for (sqlite3_stmt* s = sqlite3_next_stmt(db_->handle(), nullptr); s; s = sqlite3_next_stmt(db_->handle(), s)) {
    if (sqlite3_stmt_busy(s) && sqlite3_stmt_readonly(s)) sqlite3_reset(s);
  }
  auto st = db_->exec("COMMIT");
  // A failed COMMIT (e.g. I/O error) can leave the transaction open; the
  // destructor then rolls it back. If SQLite already ended it, we are done.
  if (st || !db_->inTransaction()) open_ = false;
  return st;
}

void Transaction::rollback() {
  if (!open_) return;
  open_ = false;
  if (!db_->inTransaction()) return;  // SQLite rolled back by itself (e.g. SQLITE_FULL)
  if (auto st = db_->exec("ROLLBACK"); !st) {
    logError("store.rollback_failed").kv("error", st.error().message);
  }
}

}  // namespace mb::store
