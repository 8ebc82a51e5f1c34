// OpenSSL error text and certificate fingerprints.
#include "daemon/tls/openssl_util.h"

#include <cctype>

#include <openssl/err.h>

namespace mb::tls {

std::string takeOpensslErrors(std::string_view fallback) {
  std::string out;
  unsigned long err = 0;
  while ((err = ERR_get_error()) != 0) {
    const char* reason = ERR_reason_error_string(err);
    std::string text;
    if (reason != nullptr) {
      text = reason;
    } else {
      char buf[256];
      ERR_error_string_n(err, buf, sizeof buf);
      text = buf;
    }
    // The same reason is often pushed at several levels of the stack.
    if (out.find(text) != std::string::npos) continue;
    if (!out.empty()) out += "; ";
    out += text;
  }
  if (out.empty()) out = fallback;
  return out;
}

Sha256 certSha256(const X509* cert) {
  Sha256 digest{};
  unsigned int len = 0;
  X509_digest(cert, EVP_sha256(), digest.data(), &len);
  return digest;
}

std::string fingerprintText(const Sha256& digest) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(digest.size() * 3);
  for (size_t i = 0; i < digest.size(); ++i) {
    if (i != 0) out.push_back(':');
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

std::optional<Sha256> parseFingerprint(std::string_view text) {
  Sha256 out{};
  size_t nibbles = 0;
  for (char c : text) {
    if (c == ':' || c == ' ') continue;
    int v = -1;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    if (v < 0 || nibbles >= 64) return std::nullopt;
    out[nibbles / 2] = static_cast<uint8_t>(nibbles % 2 == 0 ? v << 4 : out[nibbles / 2] | v);
    ++nibbles;
  }
  if (nibbles != 64) return std::nullopt;
  return out;
}

}  // namespace mb::tls
