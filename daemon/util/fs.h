// Small filesystem helpers shared by the daemon: durable atomic writes (the
// one way we replace a file: temp, fsync, rename, fsync dir) and whole-file reads.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <sys/types.h>

#include "protocols/common/result.h"

namespace mb {

// Replaces `path` with `data` so that a crash leaves either the old or the new
// content, never a mix: write a temp file beside it, fsync, rename, fsync dir.
Status writeFileAtomic(const std::filesystem::path& path, std::string_view data, mode_t mode);

// fsync() a directory so a rename or create inside it is durable.
Status syncDirectory(const std::filesystem::path& dir);

// Creates `dir` and its parents with `mode` for the ones created.
Status ensureDirectory(const std::filesystem::path& dir, mode_t mode);

Result<std::string> readFile(const std::filesystem::path& path);

// `bytes` random bytes from the OS CSPRNG, hex encoded.
std::string randomHex(size_t bytes);

}  // namespace mb
