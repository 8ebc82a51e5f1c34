// What the sync tests' scripted upstreams share: a message's text, and a
// Connector whose every operation fails "not scripted" until a test's
// subclass scripts it. Answers go through answer(), which runs them at once
// unless the subclass delivers them later.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "daemon/sync/connector.h"

namespace mb::sync::test {

inline std::string messageText(uint32_t n) {
  return "Message-ID: <" + std::to_string(n) + "@example.org>\r\nSubject: m" + std::to_string(n) + "\r\n\r\nbody " +
         std::to_string(n) + "\r\n";
}

class ConnectorStub : public Connector {
 public:
  void connect(std::function<void()> onReady, std::function<void(const ConnectorFailure&)>) override {
    answer(std::move(onReady));
  }
  ConnectorCapabilities capabilities() const override { return {}; }
  void listFolders(std::function<void(Result<std::vector<RemoteFolder>>)> done) override { refuse(done); }
  void fetchChanges(const RemoteFolder&, const FolderState&, std::function<void(Result<FolderChanges>)> done) override {
    refuse(done);
  }
  void fetchMeta(const std::string&, uint32_t, std::function<void(Result<std::vector<RemoteMessage>>)> done) override {
    refuse(done);
  }
  void fetchFlags(const std::string&, std::vector<uint32_t>,
                  std::function<void(Result<std::vector<RemoteFlags>>)> done) override {
    refuse(done);
  }
  void fetchMessages(const std::string&, std::vector<uint32_t>, bool, std::function<void(RemoteMessage&&)>,
                     std::function<void(Status)> done) override {
    refuse(done);
  }
  void apply(const Op&, std::function<void(Result<OpResult>)> done) override { refuse(done); }
  void watch(std::vector<std::string>, std::function<void(const std::string&)>) override {}
  std::string folderIdForPath(const std::string& path) const override { return path; }
  void pauseReading(bool) override {}
  uint64_t bytesReceived() const override { return 0; }

 protected:
  // Delivers one answer (a callback with its arguments bound).
  virtual void answer(std::function<void()> f) { f(); }
  template <typename Done>
  void refuse(Done done) {
    answer([done = std::move(done)] { done(fail(ErrorKind::Internal, "not scripted")); });
  }
};

}  // namespace mb::sync::test
