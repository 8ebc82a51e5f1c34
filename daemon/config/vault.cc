// AES-256-GCM sealing with OpenSSL's EVP interface.
#include "daemon/config/vault.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <memory>

#include "daemon/util/fs.h"
#include "protocols/common/base64.h"

namespace mb {
namespace {

constexpr size_t kKeyBytes = 32;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;
constexpr std::string_view kPrefix = "v1:";

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

}  // namespace

Result<Vault> Vault::open(const std::filesystem::path& stateDir) {
  auto path = stateDir / "vault.key";
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    auto key = readFile(path);
    if (!key) return std::unexpected(key.error());
    if (key->size() != kKeyBytes)
      return fail(ErrorKind::Corrupt, path.string() + ": not a vault key (" + std::to_string(key->size()) +
                                          " bytes, expected 32); sealed secrets cannot be read without it");
    return Vault(std::move(*key));
  }
  std::string key(kKeyBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(key.size())) != 1)
    return fail(ErrorKind::Internal, "no randomness for the vault key");
  if (auto s = writeFileAtomic(path, key, 0600); !s) return std::unexpected(s.error());
  logInfo("vault.key_created").kv("path", path.string());
  return Vault(std::move(key));
}

Result<std::string> Vault::seal(const Secret& plain, std::string_view context) const {
  std::string nonce(kNonceBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(nonce.data()), static_cast<int>(nonce.size())) != 1)
    return fail(ErrorKind::Internal, "no randomness for a nonce");
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  std::string out = nonce;
  out.resize(kNonceBytes + plain.reveal().size() + kTagBytes);
  int len = 0;
  auto* ct = reinterpret_cast<unsigned char*>(out.data()) + kNonceBytes;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, bytes(key_.reveal()), bytes(nonce)) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, bytes(context), static_cast<int>(context.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), ct, &len, bytes(plain.reveal()), static_cast<int>(plain.reveal().size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), ct + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, ct + plain.reveal().size()) != 1)
    return fail(ErrorKind::Internal, "AES-GCM sealing failed");
  return std::string(kPrefix) + base64Encode(out);
}

Result<Secret> Vault::open(std::string_view sealed, std::string_view context) const {
  auto bad = [] { return fail(ErrorKind::Corrupt, "sealed secret is damaged or belongs to another vault key"); };
  if (sealed.substr(0, kPrefix.size()) != kPrefix) return bad();
  auto raw = base64Decode(sealed.substr(kPrefix.size()));
  if (!raw || raw->size() < kNonceBytes + kTagBytes) return bad();
  size_t ctLen = raw->size() - kNonceBytes - kTagBytes;
  std::string plain(ctLen, '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  const auto* nonce = bytes(*raw);
  const auto* ct = nonce + kNonceBytes;
  auto* pt = reinterpret_cast<unsigned char*>(plain.data());
  std::string tag = raw->substr(kNonceBytes + ctLen);
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, bytes(key_.reveal()), nonce) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, bytes(context), static_cast<int>(context.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), pt, &len, ct, static_cast<int>(ctLen)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), pt + len, &len) != 1)
    return bad();
  return Secret(std::move(plain));
}

}  // namespace mb
