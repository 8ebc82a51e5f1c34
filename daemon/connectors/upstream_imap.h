// The IMAP connector: sync::Connector over one command connection
// (ImapClient) plus one IDLE connection per watched folder. Picks the
// cheapest way to find changes: QRESYNC, else CONDSTORE, else a full flag
// listing; LIST-STATUS (else pipelined STATUS) for the unchanged check.
#pragma once

#include <uv.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/connectors/imap_client.h"
#include "daemon/sync/connector.h"
#include "daemon/tls/tls_context.h"

namespace mb::connectors {

// Remote UTF-8 name with its delimiter -> local path ("/" separated), and back.
std::string remoteToPath(const std::string& utf8, std::optional<char> delimiter);
std::string pathToRemote(const std::string& path, std::optional<char> delimiter);

class UpstreamImap : public sync::Connector {
 public:
  // `config` is copied; the secret is resolved (password_command) at connect.
  UpstreamImap(uv_loop_t* loop, std::string accountName, std::string address, const ImapUpstreamConfig& config);
  ~UpstreamImap() override;

  void connect(std::function<void()> onReady, std::function<void(const sync::ConnectorFailure&)> onLost) override;
  sync::ConnectorCapabilities capabilities() const override;
  void listFolders(std::function<void(Result<std::vector<sync::RemoteFolder>>)> done) override;
  void fetchChanges(const sync::RemoteFolder& folder, const sync::FolderState& since,
                    std::function<void(Result<sync::FolderChanges>)> done) override;
  void fetchMeta(const std::string& folder, uint32_t from,
                 std::function<void(Result<std::vector<sync::RemoteMessage>>)> done) override;
  void fetchFlags(const std::string& folder, std::vector<uint32_t> uids,
                  std::function<void(Result<std::vector<sync::RemoteFlags>>)> done) override;
  void fetchMessages(const std::string& folder, std::vector<uint32_t> uids, bool headersOnly,
                     std::function<void(sync::RemoteMessage&&)> onMessage, std::function<void(Status)> done) override;
  void apply(const sync::Op& op, std::function<void(Result<sync::OpResult>)> done) override;
  void watch(std::vector<std::string> folders, std::function<void(const std::string&)> onChange) override;
  void pauseReading(bool paused) override;
  uint64_t bytesReceived() const override;
  // The folder id (wire name) a local path has upstream.
  std::string folderIdForPath(const std::string& path) const override;

 private:
  struct Watcher;
  ImapClientOptions clientOptions() const;
  void select(const std::string& folder, std::function<void(Status)> done);
  // Runs one command on the main connection. `done` (never called once this
  // connector is gone) gets the tagged OK, or the error: the command could
  // not be built, the connection failed, or the server refused it (an
  // ErrorKind::Upstream error named `what`, respCode = the response code).
  void runSimple(std::string what, Result<client::Command> cmd, std::function<void(Result<client::StatusText>)> done,
                 ImapClient::Untagged onUntagged = nullptr);
  void startWatcher(Watcher& w);
  // Expunges exactly these UIDs of the selected folder (UID EXPUNGE, or a
  // plain EXPUNGE that spares other \Deleted messages without UIDPLUS).
  void expungeUids(const std::vector<uint32_t>& uids, std::function<void(Status)> done);
  // The highest UID in `folder` whose Message-ID header is `messageId`.
  void findByMessageId(const std::string& folder, const std::string& messageId,
                       std::function<void(Result<std::optional<uint32_t>>)> done);

  uv_loop_t* loop_;
  std::string accountName_;
  std::string address_;
  ImapUpstreamConfig cfg_;
  Secret secret_;
  std::optional<tls::ClientTlsContext> tls_;
  std::unique_ptr<ImapClient> main_;
  std::string selected_;
  std::optional<char> delimiter_ = '/';
  uv_timer_t* keepalive_ = nullptr;  // NOOP on the command connection; freed by its close callback
  std::vector<std::unique_ptr<Watcher>> watchers_;
  std::function<void(const std::string&)> onChange_;
  uint64_t watcherBytes_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mb::connectors
