// scrypt password hashing (OpenSSL EVP_PBE_scrypt) in a self-describing format,
// so the cost can be raised later without invalidating stored hashes.
#include "daemon/auth/password.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdio>

#include "protocols/common/base64.h"

namespace mb::auth {
namespace {

constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;

Result<std::string> derive(const Secret& password, std::string_view salt, const KdfParams& p) {
  std::string out(kHashBytes, '\0');
  uint64_t n = uint64_t{1} << p.logN;
  // maxmem: 128 * r * N bytes plus slack; OpenSSL's default cap is 32 MiB.
  uint64_t maxmem = 128ull * static_cast<uint64_t>(p.r) * n + (1u << 20);
  if (EVP_PBE_scrypt(password.reveal().data(), password.reveal().size(),
                     reinterpret_cast<const unsigned char*>(salt.data()), salt.size(), n,
                     static_cast<uint64_t>(p.r), static_cast<uint64_t>(p.p), maxmem,
                     reinterpret_cast<unsigned char*>(out.data()), out.size()) != 1)
    return fail(ErrorKind::Internal, "scrypt failed");
  return out;
}

}  // namespace

Secret generatePassword() {
  // No 0/O, 1/l/I: the password is typed by hand into mail program settings.
  static constexpr std::string_view kAlphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  std::string out;
  out.reserve(20);
  while (out.size() < 20) {
    unsigned char b[32];
    if (RAND_bytes(b, sizeof b) != 1) std::abort();  // no CSPRNG: nothing safe to do
    for (unsigned char c : b) {
      // Rejection sampling keeps the distribution uniform.
      if (c >= 256 - 256 % kAlphabet.size()) continue;
      out.push_back(kAlphabet[c % kAlphabet.size()]);
      if (out.size() == 20) break;
    }
  }
  return Secret(std::move(out));
}

Result<std::string> hashPassword(const Secret& password, KdfParams params) {
  std::string salt(kSaltBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), static_cast<int>(salt.size())) != 1)
    return fail(ErrorKind::Internal, "no randomness for a salt");
  auto hash = derive(password, salt, params);
  if (!hash) return std::unexpected(hash.error());
  char head[64];
  std::snprintf(head, sizeof head, "$scrypt$ln=%d,r=%d,p=%d$", params.logN, params.r, params.p);
  return std::string(head) + base64Encode(salt) + "$" + base64Encode(*hash);
}

Result<bool> verifyPassword(const Secret& password, std::string_view encoded) {
  auto bad = [] { return fail(ErrorKind::Corrupt, "stored password hash is not in a known format"); };
  static constexpr std::string_view kPrefix = "$scrypt$";
  if (encoded.substr(0, kPrefix.size()) != kPrefix) return bad();
  std::string_view rest = encoded.substr(kPrefix.size());
  KdfParams p;
  int consumed = 0;
  std::string paramText(rest.substr(0, rest.find('$')));
  if (std::sscanf(paramText.c_str(), "ln=%d,r=%d,p=%d%n", &p.logN, &p.r, &p.p, &consumed) != 3 ||
      consumed != static_cast<int>(paramText.size()) || p.logN < 1 || p.logN > 24 || p.r < 1 || p.r > 64 ||
      p.p < 1 || p.p > 16)
    return bad();
  rest.remove_prefix(paramText.size());
  if (rest.empty() || rest[0] != '$') return bad();
  rest.remove_prefix(1);
  auto dollar = rest.find('$');
  if (dollar == std::string_view::npos) return bad();
  auto salt = base64Decode(rest.substr(0, dollar));
  auto want = base64Decode(rest.substr(dollar + 1));
  if (!salt || !want || want->size() != kHashBytes) return bad();
  auto got = derive(password, *salt, p);
  if (!got) return std::unexpected(got.error());
  return CRYPTO_memcmp(got->data(), want->data(), kHashBytes) == 0;
}

}  // namespace mb::auth
