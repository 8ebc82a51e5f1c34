// One upstream IMAP connection over the loop: connect (implicit TLS,
// STARTTLS that is never skipped, or plaintext), CAPABILITY, login (PLAIN,
// LOGIN, XOAUTH2, OAUTHBEARER), ENABLE QRESYNC/CONDSTORE, then pipelined
// tagged commands. Uses the sans-I/O codec of protocols/imap/client_*.
//
// Lifetimes: destroying the client closes the socket and drops every pending
// callback (none runs afterwards). Callbacks run from the loop only, never
// from inside run(); a callback may destroy the client.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/loop/tcp_stream.h"
#include "daemon/tls/tls_context.h"
#include "protocols/imap/client_command.h"
#include "protocols/imap/client_parser.h"

namespace mb::connectors {

namespace client = mb::imap::client;

struct ImapClientOptions {
  std::string accountName;  // for logs
  std::string host;
  uint16_t port = 993;
  RelaySecurity security = RelaySecurity::Tls;
  std::string username;
  Secret secret;  // password or OAuth token, already resolved
  ImapAuth auth = ImapAuth::Plain;
  const tls::ClientTlsContext* tls = nullptr;  // required unless security is None; must outlive the client
  std::chrono::milliseconds timeout{60000};    // connect, and silence while a command is in flight
  bool enableCondstore = true;                 // ENABLE QRESYNC / CONDSTORE when offered
};

// Why a connection ended or never became ready.
struct ImapFailure {
  enum class Kind { Network, Tls, Auth, Protocol, Refused } kind = Kind::Network;
  std::string message;  // safe to log: never a secret
};

class ImapClient {
 public:
  using Untagged = std::function<void(client::Response&)>;
  // The tagged completion (OK, NO or BAD); an error when the connection ended
  // before the command completed.
  using Done = std::function<void(const Result<client::StatusText>&)>;

  ImapClient(uv_loop_t* loop, ImapClientOptions options);
  ~ImapClient();
  ImapClient(const ImapClient&) = delete;
  ImapClient& operator=(const ImapClient&) = delete;

  // Connects and logs in; onReady runs once logged in (and ENABLEd), or
  // onClosed runs with why it failed. onClosed runs at most once, also for a
  // connection lost later, unless the client was destroyed first.
  void connect(std::function<void()> onReady, std::function<void(const ImapFailure&)> onClosed);

  // Queues a command. Untagged responses that are its data go to onUntagged
  // (or the unsolicited handler when null): each goes to the oldest command
  // in flight of a kind that produces it (FETCH data to a FETCH, SEARCH to a
  // SEARCH, ESEARCH to the tag it names...), what no kind claims to the
  // oldest command. onContinuation gets "+" lines the command's own chunks
  // do not use (IDLE's "+ idling"). Commands are pipelined, except that
  // nothing is sent behind a command waiting for a continuation.
  void run(client::Command command, Untagged onUntagged, Done onDone,
           std::function<void(const client::Continuation&)> onContinuation = nullptr);
  // Untagged responses that belong to no command (e.g. between commands).
  void setUnsolicited(Untagged handler) { unsolicited_ = std::move(handler); }

  // Ends IDLE: sends DONE (the IDLE command then completes).
  void idleDone();
  // LOGOUT, then close; no callback runs afterwards.
  void logout();

  client::CommandBuilder& builder() { return builder_; }
  const client::ServerFeatures& features() const { return builder_.features(); }
  bool hasCapability(std::string_view cap) const;
  bool condstore() const { return condstore_; }
  bool qresync() const { return qresync_; }
  bool ready() const { return ready_; }
  size_t inFlight() const { return pending_.size(); }
  uint64_t bytesReceived() const { return bytesIn_; }
  // Flow control for a consumer that cannot keep up (the sync engine's
  // store pipeline): stops reading the socket, and the silence timeout with
  // it (the wait is ours), until called with false. Responses already read
  // are still dispatched.
  void pauseReading(bool paused);

 private:
  struct Pending {
    client::Command cmd;
    Untagged onUntagged;
    Done onDone;
    std::function<void(const client::Continuation&)> onContinuation;
    size_t nextChunk = 0;  // chunks sent so far
    // An untagged response that arrived while this was in flight could not
    // be read (over a limit, malformed): it may have been this command's
    // data, so its OK is not one (the caller would miss, say, a message).
    std::string lost;
  };

  void onConnected(Result<std::unique_ptr<TcpStream>> stream);
  void onData(std::string_view bytes);
  void onReadInto(size_t n);
  void parseResponses();
  void dispatch(client::Response& r);
  // The pending command an untagged response is for (see run()); null when
  // nothing is in flight.
  Pending* ownerOf(const client::Response& r);
  void pump();
  void sendChunk(Pending& p);
  void armTimer();
  void afterGreeting(const client::Greeting& g);
  void capabilityThen(std::function<void()> next);
  void startTls();
  void authenticate();
  void enable();
  void becomeReady();
  void setCapabilities(const std::vector<std::string>& caps);
  void fail(ImapFailure::Kind kind, const std::string& why);
  void failAll(const std::string& why);

  uv_loop_t* loop_;
  ImapClientOptions opt_;
  std::unique_ptr<PendingConnect> connect_;
  std::unique_ptr<TcpStream> stream_;
  std::unique_ptr<client::ResponseParser> parser_;
  client::CommandBuilder builder_;
  std::vector<std::string> caps_;
  std::deque<Pending> queue_;    // not sent yet
  std::deque<Pending> pending_;  // sent (at least the first chunk), oldest first
  Untagged unsolicited_;
  std::function<void()> onReady_;
  std::function<void(const ImapFailure&)> onClosed_;
  uv_timer_t* timer_ = nullptr;  // silence timeout; freed by its close callback
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool greeted_ = false;
  bool secured_ = false;
  bool handshaking_ = false;
  bool ready_ = false;
  bool closed_ = false;
  bool idling_ = false;
  bool condstore_ = false;
  bool qresync_ = false;
  bool readPaused_ = false;
  uint64_t bytesIn_ = 0;
};

const char* imapFailureKindName(ImapFailure::Kind kind);

// Unix seconds of an IMAP date-time (its zone applied).
int64_t toUnixSeconds(const imap::DateTime& dt);
// The inverse, in UTC.
imap::DateTime fromUnixSeconds(int64_t t);

}  // namespace mb::connectors
