// The schema as an ordered list of forward migrations. PRAGMA user_version
// records the last one applied; a new schema version is one more table entry.
#pragma once

#include <span>

#include "daemon/store/sqlite.h"
#include "protocols/common/result.h"

namespace mb::store {

struct Migration {
  int version;              // user_version after this step; 1, 2, 3... no gaps
  const char* description;  // for logs and error messages
  const char* sql;          // one or more statements, run inside one transaction
};

// Marks the file as ours (PRAGMA application_id), so we never migrate some
// other program's SQLite database that happens to sit at our path.
inline constexpr int kApplicationId = 0x4d42524d;  // "MBRM"

std::span<const Migration> migrations();
int latestSchemaVersion();

// Applies every migration newer than the db's user_version, each in its own
// IMMEDIATE transaction together with the user_version bump, so a crash
// mid-way leaves the db at the last complete version. The caller has already
// refused versions newer than latestSchemaVersion().
Status migrate(Db& db);

}  // namespace mb::store
