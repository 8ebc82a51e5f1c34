// Authenticator: store lookup on the loop, scrypt on the thread pool, paced
// failures, and a keyed cache of recent good logins.
#include "daemon/auth/authenticator.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "daemon/store/credentials.h"
#include "daemon/util/fs.h"

namespace mb::auth {

struct AuthTicket::Job {
  uv_work_t work;
  uv_timer_t* delay = nullptr;
  Authenticator* owner = nullptr;
  std::shared_ptr<bool> ownerAlive;
  AuthTicket* ticket = nullptr;  // null once cancelled
  std::string username;
  Secret password;
  std::string peer;
  std::string hash;  // stored hash, or the dummy for unknown users
  std::string flightKey;  // set while other identical logins wait for this one's KDF
  int64_t accountId = 0;  // 0: unknown user
  bool matched = false;
  bool verifyError = false;
  Authenticator::Done done;
};

AuthTicket::~AuthTicket() {
  if (job_) job_->ticket = nullptr;
}

Authenticator::Authenticator(uv_loop_t* loop, store::Store& store, AuthOptions options)
    : loop_(loop), store_(store), options_(options), alive_(std::make_shared<bool>(true)) {
  cacheSalt_ = randomHex(32);
  dummyHash_ = hashPassword(Secret(randomHex(16)), options_.kdf).value_or(std::string());
}

Authenticator::~Authenticator() {
  *alive_ = false;
  // Jobs that are not on the thread pool are ours to free; their tickets
  // must not point at them any more.
  auto drop = [](AuthTicket::Job* j) {
    if (j->ticket) j->ticket->job_ = nullptr;
    delete j;
  };
  for (auto* j : ready_) drop(j);
  for (auto& [key, waiting] : inFlight_)
    for (auto* j : waiting) drop(j);
  if (readyIdle_) {
    uv_close(reinterpret_cast<uv_handle_t*>(readyIdle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_idle_t*>(h); });
    readyIdle_ = nullptr;
  }
}

void Authenticator::finishReady() {
  uv_idle_stop(readyIdle_);
  std::vector<AuthTicket::Job*> jobs = std::move(ready_);
  ready_.clear();
  for (auto* j : jobs) finish(j);
}

std::string Authenticator::cacheKey(const std::string& username, const Secret& password,
                                    const std::string& hash) const {
  std::string msg = username;
  msg.push_back('\0');
  msg += password.reveal();
  msg.push_back('\0');
  msg += hash;
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  HMAC(EVP_sha256(), cacheSalt_.data(), static_cast<int>(cacheSalt_.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len);
  OPENSSL_cleanse(msg.data(), msg.size());
  return std::string(reinterpret_cast<char*>(out), len);
}

std::unique_ptr<AuthTicket> Authenticator::authenticate(std::string username, Secret password, std::string peer,
                                                        Done done) {
  auto* job = new AuthTicket::Job;
  job->owner = this;
  job->ownerAlive = alive_;
  job->username = std::move(username);
  job->password = std::move(password);
  job->peer = std::move(peer);
  job->done = std::move(done);
  std::unique_ptr<AuthTicket> ticket(new AuthTicket(job));
  job->ticket = ticket.get();
  job->work.data = job;

  auto creds = store::findCredentials(store_, job->username);
  if (!creds) {
    logError("auth.store_error").kv("error", creds.error().message);
    job->verifyError = true;
  } else if (*creds && !(*creds)->passwordHash.empty()) {
    job->accountId = (*creds)->accountId;
    job->hash = (*creds)->passwordHash;
    auto it = verified_.find(job->username);
    std::string key = it == verified_.end() ? std::string() : cacheKey(job->username, job->password, job->hash);
    if (it != verified_.end() && it->second.size() == key.size() &&
        CRYPTO_memcmp(it->second.data(), key.data(), key.size()) == 0) {
      job->matched = true;
      if (!readyIdle_) {
        readyIdle_ = new uv_idle_t;
        uv_idle_init(loop_, readyIdle_);
        readyIdle_->data = this;
      }
      ready_.push_back(job);
      uv_idle_start(readyIdle_, [](uv_idle_t* h) { static_cast<Authenticator*>(h->data)->finishReady(); });
      return ticket;
    }
  }
  if (job->hash.empty()) job->hash = dummyHash_;

  if (!job->verifyError) {
    // The same user, password and hash as a login whose KDF is running: the
    // same answer, without a second KDF. Unknown users coalesce the same way.
    std::string key = cacheKey(job->username, job->password, job->hash);
    if (auto waiting = inFlight_.find(key); waiting != inFlight_.end()) {
      waiting->second.push_back(job);
      return ticket;
    }
    inFlight_.emplace(key, std::vector<AuthTicket::Job*>());
    job->flightKey = std::move(key);
    ++kdfRunsTotal_;
  }

  uv_queue_work(
      loop_, &job->work,
      [](uv_work_t* w) {
        auto* j = static_cast<AuthTicket::Job*>(w->data);
        if (j->verifyError) return;
        auto ok = verifyPassword(j->password, j->hash);
        if (!ok) j->verifyError = true;
        else j->matched = *ok && j->accountId != 0;
      },
      [](uv_work_t* w, int) {
        auto* j = static_cast<AuthTicket::Job*>(w->data);
        if (*j->ownerAlive) j->owner->finish(j); else delete j;
      });
  return ticket;
}

std::chrono::milliseconds Authenticator::recordFailure(const std::string& peer) {
  auto now = std::chrono::steady_clock::now();
  auto& rec = peers_[peer];
  if (now - rec.last > options_.failureMemory) rec.failures = 0;
  rec.last = now;
  ++rec.failures;
  auto delay = options_.failureDelay;
  for (uint32_t i = 1; i < rec.failures && delay < options_.maxFailureDelay; ++i) delay *= 2;
  return std::min(delay, options_.maxFailureDelay);
}

void Authenticator::finish(AuthTicket::Job* job) {
  if (!job->flightKey.empty()) {
    // Identical logins that waited for this KDF get its outcome, each with
    // its own bookkeeping (failure delay per peer).
    std::vector<AuthTicket::Job*> waiting;
    if (auto it = inFlight_.find(job->flightKey); it != inFlight_.end()) {
      waiting = std::move(it->second);
      inFlight_.erase(it);
    }
    job->flightKey.clear();
    for (auto* w : waiting) {
      w->matched = job->matched;
      w->verifyError = job->verifyError;
    }
    finish(job);
    for (auto* w : waiting) finish(w);
    return;
  }
  if (job->matched) {
    ++successesTotal_;
    verified_[job->username] = cacheKey(job->username, job->password, job->hash);
    peers_.erase(job->peer);
    logInfo("auth.ok").kv("user", job->username).kv("account", job->accountId).kv("peer", job->peer);
    if (job->ticket) {
      job->ticket->job_ = nullptr;
      job->done(job->accountId);
    }
    delete job;
    return;
  }
  if (job->verifyError) {
    logError("auth.unavailable").kv("user", job->username).kv("peer", job->peer);
    if (job->ticket) {
      job->ticket->job_ = nullptr;
      job->done(fail(ErrorKind::Unavailable, "authentication is temporarily unavailable"));
    }
    delete job;
    return;
  }
  ++failuresTotal_;
  auto delay = recordFailure(job->peer);
  logInfo("auth.failed")
      .kv("user", job->username)
      .kv("peer", job->peer)
      .kv("known_user", job->accountId != 0)
      .kv("delay_ms", static_cast<int64_t>(delay.count()));
  job->delay = new uv_timer_t;
  uv_timer_init(loop_, job->delay);
  job->delay->data = job;
  uv_timer_start(
      job->delay,
      [](uv_timer_t* t) {
        auto* j = static_cast<AuthTicket::Job*>(t->data);
        if (j->ticket) {
          j->ticket->job_ = nullptr;
          j->done(fail(ErrorKind::Auth, "authentication failed"));
        }
        uv_close(reinterpret_cast<uv_handle_t*>(t), [](uv_handle_t* h) {
          auto* jj = static_cast<AuthTicket::Job*>(h->data);
          delete reinterpret_cast<uv_timer_t*>(h);
          delete jj;
        });
      },
      static_cast<uint64_t>(delay.count()), 0);
}

Result<Secret> Authenticator::issuePassword(int64_t accountId, const std::string& username) {
  Secret password = generatePassword();
  auto hash = hashPassword(password, options_.kdf);
  if (!hash) return std::unexpected(hash.error());
  if (auto s = setPasswordHash(accountId, username, *hash); !s) return std::unexpected(s.error());
  return password;
}

Status Authenticator::setPasswordHash(int64_t accountId, const std::string& username, const std::string& hash) {
  if (auto s = store::setCredentials(store_, accountId, username, hash); !s) return s;
  verified_.erase(username);
  logInfo("auth.password_issued").kv("account", accountId).kv("user", username);
  return {};
}

}  // namespace mb::auth
