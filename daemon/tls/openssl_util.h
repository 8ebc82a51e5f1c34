// Small OpenSSL helpers shared by the TLS engine, contexts and certificate code:
// RAII deleters, readable error text, SHA-256 fingerprints.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace mb::tls {

struct SslCtxFree { void operator()(SSL_CTX* p) const { SSL_CTX_free(p); } };
struct SslFree { void operator()(SSL* p) const { SSL_free(p); } };
struct BioFree { void operator()(BIO* p) const { BIO_free_all(p); } };
struct X509Free { void operator()(X509* p) const { X509_free(p); } };
struct PkeyFree { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };

using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

using Sha256 = std::array<uint8_t, 32>;

// Drains this thread's OpenSSL error queue into "reason; reason" (most specific
// first). Returns `fallback` when the queue was empty.
std::string takeOpensslErrors(std::string_view fallback = "unknown OpenSSL error");

// SHA-256 over the DER encoding of the certificate, as pinned by clients.
Sha256 certSha256(const X509* cert);

// "AB:CD:..." (upper case, colon separated), the form users see and paste.
std::string fingerprintText(const Sha256& digest);

// Accepts hex with or without colons/spaces, any case; nullopt unless exactly
// 32 bytes.
std::optional<Sha256> parseFingerprint(std::string_view text);

}  // namespace mb::tls
