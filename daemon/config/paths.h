// Where the daemon looks for its config and keeps its state when not told:
// a system service (root) uses /etc and /var/lib; a user run uses XDG dirs.
#pragma once

#include <filesystem>

namespace mb {

struct DefaultPaths {
  std::filesystem::path config;    // config.json
  std::filesystem::path stateDir;  // database, blobs, certificate, API token
};

DefaultPaths defaultPaths();

}  // namespace mb
