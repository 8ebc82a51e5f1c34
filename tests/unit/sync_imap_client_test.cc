// ImapClient over a real socket against a scripted server: untagged data of
// pipelined commands reaches the command it belongs to, whatever order the
// server interleaves it in (Dovecot runs some pipelined commands in parallel),
// and data that could not be read fails the commands it may have been for.
#include "daemon/connectors/imap_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace mb::connectors {
namespace {

// A one-connection IMAP server on 127.0.0.1 that logs any user in, then reads
// `commands` command lines and answers them with `script`, where "$1", "$2"...
// stand for the tags of the first, second... of those commands.
class ScriptedServer {
 public:
  ScriptedServer(size_t commands, std::string script) : commands_(commands), script_(std::move(script)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 1), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    ::shutdown(fd_, SHUT_RDWR);
    if (conn_ >= 0) ::shutdown(conn_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
    if (conn_ >= 0) ::close(conn_);
  }
  uint16_t port() const { return port_; }

 private:
  bool readLine(std::string& line) {
    line.clear();
    char c;
    while (::read(conn_, &c, 1) == 1) {
      line += c;
      if (line.size() >= 2 && line.ends_with("\r\n")) {
        line.resize(line.size() - 2);
        return true;
      }
    }
    return false;
  }
  void send(const std::string& s) { (void)!::write(conn_, s.data(), s.size()); }
  void serve() {
    conn_ = ::accept(fd_, nullptr, nullptr);
    if (conn_ < 0) return;
    send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] scripted\r\n");
    std::string line;
    std::vector<std::string> tags;
    while (tags.size() < commands_ && readLine(line)) {
      std::string tag = line.substr(0, line.find(' '));
      if (line.find(" AUTHENTICATE PLAIN") != std::string::npos) {
        if (line.ends_with("AUTHENTICATE PLAIN")) {  // no initial response: ask for it
          send("+ \r\n");
          std::string response;
          if (!readLine(response)) return;
        }
        send(tag + " OK [CAPABILITY IMAP4rev1] logged in\r\n");
        continue;
      }
      tags.push_back(tag);
    }
    std::string out = script_;
    for (size_t i = tags.size(); i > 0; --i) {
      std::string key = "$" + std::to_string(i);
      for (size_t p; (p = out.find(key)) != std::string::npos;) out.replace(p, key.size(), tags[i - 1]);
    }
    send(out);
    while (readLine(line)) {
      if (line.find(" LOGOUT") != std::string::npos) send("* BYE\r\n" + line.substr(0, line.find(' ')) + " OK bye\r\n");
    }
  }

  size_t commands_;
  std::string script_;
  int fd_ = -1, conn_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

struct Seen {
  std::vector<std::string> kinds;  // "FETCH", "SEARCH", "ESEARCH", "EXISTS", "other"
  bool done = false;
  std::string error;  // why it did not complete with OK
};

std::string kindOf(const client::Response& r) {
  if (std::holds_alternative<client::FetchData>(r)) return "FETCH";
  if (std::holds_alternative<client::SearchData>(r)) return "SEARCH";
  if (std::holds_alternative<client::EsearchData>(r)) return "ESEARCH";
  if (std::holds_alternative<client::ExistsData>(r)) return "EXISTS";
  return "other";
}

class ImapClientRouting : public ::testing::Test {
 protected:
  void SetUp() override { uv_loop_init(&loop_); }
  void TearDown() override {
    client_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }
  using Make = std::function<std::vector<Result<client::Command>>(client::CommandBuilder&)>;
  // Connects to `server`, runs the commands `make` builds with the client's
  // builder (each recording what reaches it) and spins the loop until all
  // have completed or 10 s have passed.
  void runAll(ScriptedServer& server, size_t count, Make make) {
    ImapClientOptions o;
    o.accountName = "routing";
    o.host = "127.0.0.1";
    o.port = server.port();
    o.security = RelaySecurity::None;
    o.username = "u";
    o.secret = Secret("p");
    o.timeout = std::chrono::milliseconds(10000);
    client_ = std::make_unique<ImapClient>(&loop_, o);
    seen_.assign(count, Seen{});
    bool failed = false;
    client_->connect(
        [this, make] {
          auto commands = make(client_->builder());
          ASSERT_EQ(commands.size(), seen_.size());
          for (size_t i = 0; i < commands.size(); ++i) {
            ASSERT_TRUE(commands[i]) << commands[i].error().message;
            client_->run(
                std::move(*commands[i]),
                [this, i](client::Response& r) {
                  seen_[i].kinds.push_back(kindOf(r));
                  if (auto* f = std::get_if<client::FetchData>(&r))
                    for (auto& b : f->bodies)
                      if (b.data) bodies_.push_back(std::move(*b.data));
                },
                [this, i](const Result<client::StatusText>& r) {
                  if (!r) seen_[i].error = r.error().message;
                  else if (r->status != client::StatusKind::Ok) seen_[i].error = r->text;
                  if (expectOk_) {
                    EXPECT_EQ(seen_[i].error, "");
                  }
                  seen_[i].done = true;
                });
          }
        },
        [&failed](const ImapFailure& f) {
          ADD_FAILURE() << f.message;
          failed = true;
        });
    auto all = [this] {
      for (auto& s : seen_)
        if (!s.done) return false;
      return true;
    };
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!failed && !all() && std::chrono::steady_clock::now() < deadline) uv_run(&loop_, UV_RUN_ONCE);
    ASSERT_TRUE(all()) << "commands did not complete";
  }

  uv_loop_t loop_;
  std::unique_ptr<ImapClient> client_;
  std::vector<Seen> seen_;
  std::vector<std::string> bodies_;  // every FETCH body, in arrival order
  bool expectOk_ = true;             // every command completes with OK
};

TEST_F(ImapClientRouting, LargeBodiesArriveWholeThroughTheirOwnReads) {
  // Bodies of 16 KiB and more are read straight into their literal (the
  // parser's window), smaller ones through the stream's buffer; mixed and
  // back to back, every byte must land in its own body, in order.
  std::vector<std::string> sent;
  std::string script;
  size_t sizes[] = {100000, 17000, 1000, 16 * 1024, 0, 2u << 20, 5, 70000};
  for (size_t i = 0; i < std::size(sizes); ++i) {
    std::string body(sizes[i], 'a');
    for (size_t k = 0; k < body.size(); ++k) body[k] = static_cast<char>("\r\n-xyz0123"[(k * 7 + i) % 11]);
    script += "* " + std::to_string(i + 1) + " FETCH (UID " + std::to_string(i + 1) + " BODY[] {" +
              std::to_string(body.size()) + "}\r\n" + body + " FLAGS ())\r\n";
    sent.push_back(std::move(body));
  }
  script += "$1 OK fetched\r\n";
  ScriptedServer server(1, script);
  runAll(server, 1, [](client::CommandBuilder& b) {
    return std::vector{b.uidFetch(imap::SequenceSet::range(1, imap::SeqRange::kStar), {"UID", "BODY.PEEK[]"})};
  });
  ASSERT_EQ(bodies_.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) EXPECT_TRUE(bodies_[i] == sent[i]) << "body " << i << " size " << sent[i].size();
}

TEST_F(ImapClientRouting, FetchDataReachesTheFetchWhenASearchIsOlder) {
  // The server answers the younger UID FETCH first, with the SEARCH data in
  // between: the FETCH data must not land in the SEARCH's handler.
  ScriptedServer server(2,
                        "* 1 FETCH (UID 5 FLAGS (\\Seen))\r\n"
                        "* SEARCH 5 9\r\n"
                        "* 2 FETCH (UID 9 FLAGS ())\r\n"
                        "$2 OK fetched\r\n"
                        "$1 OK searched\r\n");
  runAll(server, 2, [](client::CommandBuilder& b) {
    return std::vector{b.uidSearch("ALL"), b.uidFetch(imap::SequenceSet::range(1, imap::SeqRange::kStar), {"UID", "FLAGS"})};
  });
  EXPECT_EQ(seen_[0].kinds, (std::vector<std::string>{"SEARCH"}));
  EXPECT_EQ(seen_[1].kinds, (std::vector<std::string>{"FETCH", "FETCH"}));
}

TEST_F(ImapClientRouting, EsearchGoesToTheCommandItsCorrelatorNames) {
  // Two UID SEARCHes in flight, answered in reverse order: ESEARCH's
  // (TAG "...") decides, not the order.
  ScriptedServer server(2,
                        "* ESEARCH (TAG \"$2\") UID ALL 7\r\n"
                        "$2 OK second\r\n"
                        "* ESEARCH (TAG \"$1\") UID ALL 3\r\n"
                        "$1 OK first\r\n");
  runAll(server, 2, [](client::CommandBuilder& b) { return std::vector{b.uidSearch("SEEN"), b.uidSearch("UNSEEN")}; });
  EXPECT_EQ(seen_[0].kinds, (std::vector<std::string>{"ESEARCH"}));
  EXPECT_EQ(seen_[1].kinds, (std::vector<std::string>{"ESEARCH"}));
}

TEST_F(ImapClientRouting, DataNoKindClaimsGoesToTheOldestCommand) {
  // EXISTS during a UID FETCH and a UID SEARCH (no SELECT in flight): the
  // oldest command gets it, as before.
  ScriptedServer server(2,
                        "* 3 EXISTS\r\n"
                        "$1 OK a\r\n"
                        "$2 OK b\r\n");
  runAll(server, 2, [](client::CommandBuilder& b) {
    return std::vector{b.uidFetch(imap::SequenceSet::range(1, 2), {"UID"}), b.uidSearch("ALL")};
  });
  EXPECT_EQ(seen_[0].kinds, (std::vector<std::string>{"EXISTS"}));
  EXPECT_TRUE(seen_[1].kinds.empty());
}

TEST_F(ImapClientRouting, AnUnreadableResponseFailsTheCommandsInFlight) {
  // Malformed FETCH data arrives while the second and third commands are in
  // flight: it may have been theirs, so their OK is not one (a sync would
  // otherwise take the FETCH as complete without that message). The first
  // completed before it and stays OK.
  ScriptedServer server(3,
                        "* 1 FETCH (UID 1 FLAGS ())\r\n"
                        "$1 OK a\r\n"
                        "* 2 FETCH (UID 2 BODY[] \"unterminated)\r\n"
                        "$2 OK b\r\n"
                        "$3 OK c\r\n");
  expectOk_ = false;
  runAll(server, 3, [](client::CommandBuilder& b) {
    return std::vector{b.uidFetch(imap::SequenceSet::range(1, 1), {"UID", "FLAGS"}),
                       b.uidFetch(imap::SequenceSet::range(2, 2), {"UID", "BODY.PEEK[]"}), b.uidSearch("ALL")};
  });
  EXPECT_EQ(seen_[0].error, "");
  EXPECT_NE(seen_[1].error.find("UID FETCH: a response to it could not be read"), std::string::npos) << seen_[1].error;
  EXPECT_NE(seen_[2].error.find("UID SEARCH: a response to it could not be read"), std::string::npos) << seen_[2].error;
  EXPECT_TRUE(seen_[1].kinds.empty());
}

}  // namespace
}  // namespace mb::connectors
