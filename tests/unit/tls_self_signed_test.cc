// ensureSelfSignedCert: first run creates, later runs reuse, damage is reported
// with the path and never overwritten, and an expiring pair is renewed.
#include "daemon/tls/self_signed.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <gtest/gtest.h>

#include "daemon/tls/openssl_util.h"
#include "tests/unit/tls_test_util.h"

namespace mb::tls {
namespace {

using testing::ScratchDir;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

mode_t modeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

X509Ptr readCert(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  return X509Ptr(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
}

TEST(SelfSigned, CreatesThenReuses) {
  ScratchDir dir;
  auto first = ensureSelfSignedCert(dir.path() + "/state/tls");  // parents are created
  ASSERT_TRUE(first.has_value()) << first.error().message;
  EXPECT_EQ(first->certPath, dir.path() + "/state/tls/cert.pem");
  EXPECT_EQ(first->keyPath, dir.path() + "/state/tls/key.pem");
  EXPECT_EQ(modeOf(first->keyPath), 0600u);
  EXPECT_EQ(modeOf(first->certPath), 0644u);
  auto fp1 = certFingerprintSha256(first->certPath);
  ASSERT_TRUE(fp1.has_value());
  EXPECT_EQ(fp1->size(), 95u);  // 32 bytes as "AB:" groups

  auto second = ensureSelfSignedCert(dir.path() + "/state/tls");
  ASSERT_TRUE(second.has_value());
  auto fp2 = certFingerprintSha256(second->certPath);
  ASSERT_TRUE(fp2.has_value());
  EXPECT_EQ(*fp1, *fp2);
  // No temp files left behind.
  size_t entries = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir.path() + "/state/tls")) ++entries;
  EXPECT_EQ(entries, 2u);
}

TEST(SelfSigned, CertificateContents) {
  ScratchDir dir;
  auto files = ensureSelfSignedCert(dir.path());
  ASSERT_TRUE(files.has_value());
  X509Ptr cert = readCert(files->certPath);
  ASSERT_TRUE(cert);
  char cn[128] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof cn);
  EXPECT_STREQ(cn, "mailbridge localhost");
  EXPECT_EQ(X509_check_host(cert.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "::1", 0), 1);
  EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(cert.get())), EVP_PKEY_EC);

  int days = 0;
  int secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(cert.get()), X509_get0_notAfter(cert.get())), 1);
  EXPECT_EQ(days, 825);
  EXPECT_EQ(secs, 0);

  // Two generations never share a serial.
  ScratchDir other;
  auto again = ensureSelfSignedCert(other.path());
  ASSERT_TRUE(again.has_value());
  X509Ptr cert2 = readCert(again->certPath);
  ASSERT_TRUE(cert2);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(cert.get()), X509_get0_serialNumber(cert2.get())), 0);
}

TEST(SelfSigned, CorruptCertIsAnErrorAndKept) {
  ScratchDir dir;
  ASSERT_TRUE(ensureSelfSignedCert(dir.path()).has_value());
  const std::string cert = dir.path() + "/cert.pem";
  const std::string key = dir.path() + "/key.pem";
  const std::string keyBefore = slurp(key);
  spit(cert, "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n");
  auto r = ensureSelfSignedCert(dir.path());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, ErrorKind::Corrupt);
  EXPECT_NE(r.error().message.find(cert), std::string::npos) << r.error().message;
  EXPECT_EQ(slurp(key), keyBefore);
  EXPECT_NE(slurp(cert).find("garbage"), std::string::npos);
}

TEST(SelfSigned, CorruptKeyIsAnErrorAndKept) {
  ScratchDir dir;
  ASSERT_TRUE(ensureSelfSignedCert(dir.path()).has_value());
  const std::string cert = dir.path() + "/cert.pem";
  const std::string key = dir.path() + "/key.pem";
  const std::string certBefore = slurp(cert);
  spit(key, "not a key");
  auto r = ensureSelfSignedCert(dir.path());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, ErrorKind::Corrupt);
  EXPECT_NE(r.error().message.find(key), std::string::npos) << r.error().message;
  EXPECT_EQ(slurp(cert), certBefore);
  EXPECT_EQ(slurp(key), "not a key");
}

TEST(SelfSigned, MismatchedPairIsAnError) {
  ScratchDir a;
  ScratchDir b;
  ASSERT_TRUE(ensureSelfSignedCert(a.path()).has_value());
  ASSERT_TRUE(ensureSelfSignedCert(b.path()).has_value());
  spit(a.path() + "/key.pem", slurp(b.path() + "/key.pem"));
  auto r = ensureSelfSignedCert(a.path());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, ErrorKind::Corrupt);
  EXPECT_NE(r.error().message.find("does not match"), std::string::npos);
}

TEST(SelfSigned, CertWithoutKeyIsAnError) {
  ScratchDir dir;
  ASSERT_TRUE(ensureSelfSignedCert(dir.path()).has_value());
  std::filesystem::remove(dir.path() + "/key.pem");
  auto r = ensureSelfSignedCert(dir.path());
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find(dir.path() + "/key.pem"), std::string::npos);
}

TEST(SelfSigned, KeyWithoutCertIsAnUnfinishedRun) {
  ScratchDir dir;
  ASSERT_TRUE(ensureSelfSignedCert(dir.path()).has_value());
  std::filesystem::remove(dir.path() + "/cert.pem");
  auto r = ensureSelfSignedCert(dir.path());
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_TRUE(readCert(r->certPath));
}

TEST(SelfSigned, LooseKeyModeIsTightened) {
  ScratchDir dir;
  ASSERT_TRUE(ensureSelfSignedCert(dir.path()).has_value());
  ::chmod((dir.path() + "/key.pem").c_str(), 0644);
  ASSERT_TRUE(ensureSelfSignedCert(dir.path()).has_value());
  EXPECT_EQ(modeOf(dir.path() + "/key.pem"), 0600u);
}

// Re-sign the existing key into a cert that ends in 10 days: due for renewal.
TEST(SelfSigned, ExpiringPairIsRegenerated) {
  ScratchDir dir;
  auto files = ensureSelfSignedCert(dir.path());
  ASSERT_TRUE(files.has_value());
  auto before = certFingerprintSha256(files->certPath);
  ASSERT_TRUE(before.has_value());

  BioPtr keyBio(BIO_new_file(files->keyPath.c_str(), "r"));
  PkeyPtr key(PEM_read_bio_PrivateKey(keyBio.get(), nullptr, nullptr, nullptr));
  X509Ptr cert = readCert(files->certPath);
  ASSERT_TRUE(key && cert);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 10L * 86400);
  ASSERT_GT(X509_sign(cert.get(), key.get(), EVP_sha256()), 0);
  BioPtr out(BIO_new_file(files->certPath.c_str(), "w"));
  ASSERT_EQ(PEM_write_bio_X509(out.get(), cert.get()), 1);
  out.reset();
  auto shortLived = certFingerprintSha256(files->certPath);
  ASSERT_TRUE(shortLived.has_value());
  ASSERT_NE(*shortLived, *before);

  auto renewed = ensureSelfSignedCert(dir.path());
  ASSERT_TRUE(renewed.has_value()) << renewed.error().message;
  auto after = certFingerprintSha256(renewed->certPath);
  ASSERT_TRUE(after.has_value());
  EXPECT_NE(*after, *shortLived);
  EXPECT_EQ(modeOf(renewed->keyPath), 0600u);
}

TEST(SelfSigned, FingerprintOfMissingFileNamesIt) {
  auto r = certFingerprintSha256("/nonexistent/cert.pem");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("/nonexistent/cert.pem"), std::string::npos);
}

TEST(SelfSigned, UnwritableDirNamesIt) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory modes";
  ScratchDir dir;
  ::chmod(dir.path().c_str(), 0500);
  auto r = ensureSelfSignedCert(dir.path());
  ::chmod(dir.path().c_str(), 0700);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, ErrorKind::Io);
  EXPECT_NE(r.error().message.find(dir.path()), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace mb::tls
