// Shared helpers for the TLS unit tests: a scratch directory and a cert made once.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "daemon/tls/self_signed.h"
#include "tests/unit/test_fixtures.h"

namespace mb::tls::testing {

// A fresh directory under TMPDIR, removed when the object dies; its path as
// a string, as the TLS helpers take it.
class ScratchDir {
 public:
  const std::string& path() const { return path_; }

 private:
  mb::test::TempDir dir_{"mb-tls"};
  std::string path_ = dir_.path().string();
};

// One self-signed localhost certificate for the whole test binary.
inline const CertFiles& localhostCert() {
  static ScratchDir dir;  // removed at exit
  static CertFiles files = [] {
    auto made = ensureSelfSignedCert(dir.path());
    EXPECT_TRUE(made.has_value()) << (made ? "" : made.error().message);
    return made ? *made : CertFiles{};
  }();
  return files;
}

}  // namespace mb::tls::testing
