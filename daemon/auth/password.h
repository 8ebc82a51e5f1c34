// Bridge-local passwords: generated for each account, stored only as a slow
// KDF hash (scrypt), verified in constant time. Hashing is CPU-heavy on
// purpose: call it off the loop thread (see LoginGuard for the pacing side).
#pragma once

#include <string>
#include <string_view>

#include "daemon/log/log.h"
#include "protocols/common/result.h"

namespace mb::auth {

// A new random password: 20 characters from an unambiguous alphabet
// (about 100 bits), easy to type into a mail program's settings.
Secret generatePassword();

struct KdfParams {
  int logN = 15;  // scrypt N = 2^logN; 2^15 with r=8 uses 32 MiB and ~60 ms
  int r = 8;
  int p = 1;
};

// "$scrypt$ln=15,r=8,p=1$<salt b64>$<hash b64>"
Result<std::string> hashPassword(const Secret& password, KdfParams params = {});

// True when `password` matches `encoded`; an unparseable `encoded` is an error.
Result<bool> verifyPassword(const Secret& password, std::string_view encoded);

}  // namespace mb::auth
