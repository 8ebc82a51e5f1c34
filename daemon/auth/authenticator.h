// Checks local logins for the IMAP and SMTP endpoints. The scrypt work runs
// on the libuv thread pool so one login never stalls other sessions; failed
// attempts are answered only after a delay that grows with the failures from
// that peer, and an unknown user costs the same work as a wrong password, so
// neither timing nor wording tells whether a user exists.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/auth/password.h"
#include "daemon/log/log.h"
#include "protocols/common/result.h"

namespace mb::store {
class Store;
}

namespace mb::auth {

class Authenticator;

// A login in progress. Destroying it (the connection went away) cancels the
// callback; the thread-pool work, if already running, finishes and is dropped.
class AuthTicket {
 public:
  ~AuthTicket();
  AuthTicket(const AuthTicket&) = delete;
  AuthTicket& operator=(const AuthTicket&) = delete;

 private:
  friend class Authenticator;
  struct Job;
  explicit AuthTicket(Job* job) : job_(job) {}
  Job* job_;
};

struct AuthOptions {
  KdfParams kdf;                                        // for new hashes and the dummy
  std::chrono::milliseconds failureDelay{1000};         // first failure from a peer
  std::chrono::milliseconds maxFailureDelay{8000};      // doubling stops here
  std::chrono::minutes failureMemory{15};               // a quiet peer is forgiven
};

class Authenticator {
 public:
  using Done = std::function<void(Result<int64_t> accountId)>;

  // `store` must outlive the Authenticator; loop thread only.
  Authenticator(uv_loop_t* loop, store::Store& store, AuthOptions options = {});
  ~Authenticator();
  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  // `peer` is the client address (counts failures). `done` runs on the loop
  // with the account id, or ErrorKind::Auth (wrong user or password: the
  // message is the same for both), or Unavailable (store trouble).
  std::unique_ptr<AuthTicket> authenticate(std::string username, Secret password, std::string peer, Done done);

  // Issues a new local password for the account (username = its address) and
  // returns it; the only time the clear text exists outside the user's hands.
  // Runs the KDF here, on the loop: for start-up only; the REST API hashes on
  // its own thread (hashPassword with kdf()) and stores with setPasswordHash.
  Result<Secret> issuePassword(int64_t accountId, const std::string& username);
  // Makes `hash` (hashPassword's form) the account's local password.
  Status setPasswordHash(int64_t accountId, const std::string& username, const std::string& hash);
  const KdfParams& kdf() const { return options_.kdf; }

  uint64_t failuresTotal() const { return failuresTotal_; }
  uint64_t successesTotal() const { return successesTotal_; }
  uint64_t kdfRunsTotal() const { return kdfRunsTotal_; }  // password verifications that ran the KDF

 private:
  friend class AuthTicket;
  struct PeerRecord {
    uint32_t failures = 0;
    std::chrono::steady_clock::time_point last;
  };

  void finish(AuthTicket::Job* job);
  void finishReady();
  std::chrono::milliseconds recordFailure(const std::string& peer);
  std::string cacheKey(const std::string& username, const Secret& password, const std::string& hash) const;

  uv_loop_t* loop_;
  store::Store& store_;
  AuthOptions options_;
  std::string dummyHash_;   // verified against for unknown users
  std::string cacheSalt_;   // per-process key for the verified-login cache
  // username -> keyed digest of (password, stored hash) of the last good login,
  // so a mail program's many connections do not each pay the KDF.
  std::unordered_map<std::string, std::string> verified_;
  // Logins whose KDF is running, by cacheKey: an identical login that comes
  // meanwhile (a mail program opening several connections at once) waits for
  // that result instead of paying the KDF again.
  std::unordered_map<std::string, std::vector<AuthTicket::Job*>> inFlight_;
  // Cached logins, answered from the loop's next idle phase (never from
  // inside authenticate(), and without a thread-pool round trip).
  std::vector<AuthTicket::Job*> ready_;
  uv_idle_t* readyIdle_ = nullptr;  // freed by its close callback
  std::unordered_map<std::string, PeerRecord> peers_;
  uint64_t failuresTotal_ = 0;
  uint64_t successesTotal_ = 0;
  uint64_t kdfRunsTotal_ = 0;
  std::shared_ptr<bool> alive_;  // jobs check it: the Authenticator may be gone
};

}  // namespace mb::auth
