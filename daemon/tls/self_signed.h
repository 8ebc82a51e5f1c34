// The certificate our local listeners present when the user brings none: made
// once per state dir, reused across restarts, renewed before it expires.
#pragma once

#include <string>

#include "protocols/common/result.h"

namespace mb::tls {

struct CertFiles {
  std::string certPath;  // <dir>/cert.pem, 0644
  std::string keyPath;   // <dir>/key.pem, 0600
};

// First call: EC P-256 key + self-signed X.509 (CN=mailbridge localhost,
// SAN DNS:localhost, IP:127.0.0.1, IP:::1, 825 days, random serial), both
// files written atomically (temp, fsync, rename, fsync dir), key first.
// Later calls reuse the pair while it loads, matches and is valid for more
// than 30 days; otherwise it is regenerated (users must then re-trust it).
// A cert or key that exists but does not parse, or a pair that does not match,
// is an error (Corrupt) naming the path: we never overwrite what we cannot read.
// A key without a cert is the trace of an interrupted first run and is replaced.
Result<CertFiles> ensureSelfSignedCert(const std::string& dir);

// "AB:CD:..." SHA-256 of the first certificate in a PEM file, as pinned by
// clients and shown by the REST API.
Result<std::string> certFingerprintSha256(const std::string& certPath);

}  // namespace mb::tls
