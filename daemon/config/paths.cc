// Default path resolution (FHS for the system service, XDG base dirs for users).
#include "daemon/config/paths.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

namespace mb {
namespace {

std::filesystem::path homeDir() {
  if (const char* home = std::getenv("HOME"); home && *home) return home;
  if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_dir) return pw->pw_dir;
  return "/";
}

std::filesystem::path xdgDir(const char* var, const char* fallbackUnderHome) {
  if (const char* v = std::getenv(var); v && *v == '/') return v;
  return homeDir() / fallbackUnderHome;
}

}  // namespace

DefaultPaths defaultPaths() {
  if (::geteuid() == 0) return {"/etc/mailbridge/config.json", "/var/lib/mailbridge"};
  return {xdgDir("XDG_CONFIG_HOME", ".config") / "mailbridge" / "config.json",
          xdgDir("XDG_STATE_HOME", ".local/state") / "mailbridge"};
}

}  // namespace mb
