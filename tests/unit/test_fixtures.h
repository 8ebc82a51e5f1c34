// Shared test helpers: fixture files under tests/fixtures/, whole-file reads,
// and temporary directories that clean up after themselves.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace mb::test {

// A file's bytes; "" when it does not exist (tests compare against it).
inline std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Reads a file under tests/fixtures/. The directory comes from CMake
// (MB_FIXTURE_DIR), not from __FILE__, which compiler launchers such as
// ccache may rewrite into a path relative to the build dir.
inline std::string readFixture(const std::string& relPath) {
  std::string path = std::string(MB_FIXTURE_DIR) + "/" + relPath;
  // A missing fixture must fail the test loudly, not compare as empty input.
  if (!std::filesystem::exists(path)) throw std::runtime_error("cannot read fixture " + path);
  return readFile(path);
}

// A fresh directory <TMPDIR or /tmp>/<prefix>-XXXXXX, removed with its
// contents when the object goes. Throws when it cannot be made: a test must
// not run in "".
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "mb-test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp " + tmpl + " failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace mb::test
