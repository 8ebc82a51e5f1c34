// Shared helpers for the TLS unit tests: a scratch directory and a cert made once.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "daemon/tls/self_signed.h"

namespace mb::tls::testing {

// A fresh directory under TMPDIR, removed when the object dies.
class ScratchDir {
 public:
  ScratchDir() {
    std::string base = std::filesystem::temp_directory_path().string() + "/mb-tls-XXXXXX";
    char* made = ::mkdtemp(base.data());
    EXPECT_NE(made, nullptr);
    path_ = base;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
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
