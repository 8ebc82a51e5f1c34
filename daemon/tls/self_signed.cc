// Self-signed certificate generation and reuse for the local listeners.
#include "daemon/tls/self_signed.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "daemon/log/log.h"
#include "daemon/tls/openssl_util.h"
#include "daemon/util/fs.h"

namespace mb::tls {
namespace {

constexpr long kValidityDays = 825;  // the most Apple platforms accept for a TLS server cert
constexpr long kRenewBeforeDays = 30;
constexpr long kBackdateSeconds = 3600;  // tolerate clients whose clock runs a little behind

std::string errnoText(int err) { return std::strerror(err); }

bool addExtension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return false;
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1;
}

struct Generated {
  std::string certPem;
  std::string keyPem;
  Sha256 fingerprint;
};

std::string bioText(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

Result<Generated> generate() {
  ERR_clear_error();
  auto failed = [](const char* step) {
    return fail(ErrorKind::Internal, std::string("tls: generating self-signed certificate: ") + step + ": " +
                                         takeOpensslErrors());
  };
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return failed("EC key");
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) return failed("X509_new");

  // Random positive serial: browsers reject two certs with one issuer+serial,
  // and every regeneration reuses the issuer name.
  BIGNUM* bn = BN_new();
  bool serialOk = bn != nullptr && BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
                  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get())) != nullptr;
  BN_free(bn);
  if (!serialOk) return failed("serial");

  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kBackdateSeconds) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), kValidityDays * 86400 - kBackdateSeconds) == nullptr)
    return failed("validity");

  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("mailbridge localhost"), -1, -1, 0) != 1 ||
      X509_set_issuer_name(cert.get(), name) != 1 || X509_set_pubkey(cert.get(), key.get()) != 1)
    return failed("names");

  if (!addExtension(cert.get(), NID_basic_constraints, "critical,CA:FALSE") ||
      !addExtension(cert.get(), NID_key_usage, "critical,digitalSignature") ||
      !addExtension(cert.get(), NID_ext_key_usage, "serverAuth") ||
      !addExtension(cert.get(), NID_subject_key_identifier, "hash") ||
      !addExtension(cert.get(), NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1"))
    return failed("extensions");

  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) return failed("sign");

  BioPtr certBio(BIO_new(BIO_s_mem()));
  BioPtr keyBio(BIO_new(BIO_s_mem()));
  if (!certBio || !keyBio || PEM_write_bio_X509(certBio.get(), cert.get()) != 1 ||
      PEM_write_bio_PrivateKey(keyBio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return failed("PEM");
  return Generated{bioText(certBio.get()), bioText(keyBio.get()), certSha256(cert.get())};
}

Result<X509Ptr> loadCert(const std::string& path) {
  ERR_clear_error();
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    ERR_clear_error();
    return fail(ErrorKind::Io, "tls: cannot open certificate " + path + ": " + errnoText(errno));
  }
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert)
    return fail(ErrorKind::Corrupt, "tls: " + path + " is not a PEM certificate (" + takeOpensslErrors() +
                                        "); move it away to have a new one generated");
  return cert;
}

Result<PkeyPtr> loadKey(const std::string& path) {
  ERR_clear_error();
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    ERR_clear_error();
    return fail(ErrorKind::Io, "tls: cannot open private key " + path + ": " + errnoText(errno));
  }
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key)
    return fail(ErrorKind::Corrupt, "tls: " + path + " is not a PEM private key (" + takeOpensslErrors() +
                                        "); move it away to have a new one generated");
  return key;
}

bool exists(const std::string& path, int* err) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) return true;
  *err = errno;
  return false;
}

// Ok(true): reuse; Ok(false): expiring, regenerate; error: leave everything alone.
Result<bool> checkExisting(const CertFiles& files) {
  auto cert = loadCert(files.certPath);
  if (!cert) return std::unexpected(cert.error());
  auto key = loadKey(files.keyPath);
  if (!key) return std::unexpected(key.error());
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    ERR_clear_error();
    return fail(ErrorKind::Corrupt, "tls: private key " + files.keyPath + " does not match certificate " +
                                        files.certPath + "; move both away to have new ones generated");
  }
  time_t limit = std::time(nullptr) + kRenewBeforeDays * 86400;
  if (X509_cmp_time(X509_get0_notAfter(cert->get()), &limit) <= 0) return false;

  struct stat st;
  if (::stat(files.keyPath.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    if (::chmod(files.keyPath.c_str(), 0600) != 0)
      return fail(ErrorKind::Io, "tls: chmod 0600 " + files.keyPath + ": " + errnoText(errno));
    logWarn("tls.selfsigned.key_mode_fixed").kv("path", files.keyPath);
  }
  return true;
}

}  // namespace

Result<CertFiles> ensureSelfSignedCert(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(ErrorKind::Io, "tls: create directory " + dir + ": " + ec.message());
  CertFiles files{dir + "/cert.pem", dir + "/key.pem"};

  int certErr = 0;
  int keyErr = 0;
  bool haveCert = exists(files.certPath, &certErr);
  bool haveKey = exists(files.keyPath, &keyErr);
  if (!haveCert && certErr != ENOENT)
    return fail(ErrorKind::Io, "tls: stat " + files.certPath + ": " + errnoText(certErr));
  if (!haveKey && keyErr != ENOENT)
    return fail(ErrorKind::Io, "tls: stat " + files.keyPath + ": " + errnoText(keyErr));
  if (haveCert && !haveKey)
    return fail(ErrorKind::Corrupt, "tls: certificate " + files.certPath + " exists but its key " + files.keyPath +
                                        " is missing; move the certificate away to have a new pair generated");

  const char* why = "created";
  if (haveCert) {
    auto reuse = checkExisting(files);
    if (!reuse) return std::unexpected(reuse.error());
    if (*reuse) return files;
    why = "expiring";
  }

  auto made = generate();
  if (!made) return std::unexpected(made.error());
  // Key first: a crash in between leaves a key without a cert, which the next
  // start treats as an unfinished first run.
  if (auto s = writeFileAtomic(files.keyPath, made->keyPem, 0600); !s) return std::unexpected(s.error());
  if (auto s = writeFileAtomic(files.certPath, made->certPem, 0644); !s) return std::unexpected(s.error());
  logInfo("tls.selfsigned.generated")
      .kv("reason", why)
      .kv("cert", files.certPath)
      .kv("sha256", fingerprintText(made->fingerprint));
  return files;
}

Result<std::string> certFingerprintSha256(const std::string& certPath) {
  auto cert = loadCert(certPath);
  if (!cert) return std::unexpected(cert.error());
  return fingerprintText(certSha256(cert->get()));
}

}  // namespace mb::tls
