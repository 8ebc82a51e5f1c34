// Reads a file under tests/fixtures/. The directory comes from CMake
// (MB_FIXTURE_DIR), not from __FILE__, which compiler launchers such as
// ccache may rewrite into a path relative to the build dir.
#pragma once

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace mb::test {

inline std::string readFixture(const std::string& relPath) {
  std::string path = std::string(MB_FIXTURE_DIR) + "/" + relPath;
  std::ifstream in(path, std::ios::binary);
  // A missing fixture must fail the test loudly, not compare as empty input.
  if (!in) throw std::runtime_error("cannot read fixture " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace mb::test
