// libFuzzer target: random bytes through the IMAP server session in each
// state (not authenticated, authenticated, selected with messages, idling,
// UTF8=ACCEPT or IMAP4rev2 enabled), with every message stored or one
// without its body (bodies on demand: the host then stores it or fails),
// over the in-memory backend, with a second session on the same mailbox so
// cross-session updates are exercised too. Checks that the session never
// crashes, that its output stays bounded, and that a split of the input does
// not change the answers.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocols/imap/memory_backend.h"
#include "protocols/imap/session.h"

namespace {

using namespace mb::imap;

constexpr std::string_view kPrefixes[] = {
    "",
    "p1 LOGIN alice secret\r\n",
    "p1 LOGIN alice secret\r\np2 SELECT INBOX\r\n",
    "p1 LOGIN alice secret\r\np2 ENABLE QRESYNC\r\np3 SELECT INBOX\r\n",
    "p1 LOGIN alice secret\r\np2 SELECT INBOX\r\np3 IDLE\r\n",
    "p1 LOGIN alice secret\r\np2 ENABLE UTF8=ACCEPT\r\np3 SELECT INBOX\r\n",
    "p1 LOGIN alice secret\r\np2 ENABLE IMAP4rev2\r\np3 SELECT INBOX\r\n",
};

const char kMessage[] =
    "From: A <a@b.c>\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
    "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--x\r\n"
    "Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nbody\r\n--x--\r\n";

struct Peer {
  explicit Peer(MemoryMailStore& store) : backend(store), session(backend, options()) {
    id = store.listen([this](const MailboxEvent& ev, const void* origin) { session.onEvent(ev, origin == &backend); });
    session.start();
  }
  static SessionOptions options() {
    SessionOptions o;
    o.limits.maxLineLength = 4096;
    o.limits.maxLiteralSize = 65536;
    o.limits.maxCommandLiterals = 131072;
    o.limits.maxDiscard = 1 << 20;
    // No STARTTLS: it drops pipelined input by design, which would make the
    // answer depend on how the input was split.
    o.outputHighWater = 8192;
    return o;
  }
  // Runs the host side: logins, STARTTLS, paused FETCHes, bodies asked for
  // (stored when bodiesArrive, else failed).
  std::string drive(MemoryMailStore& store, bool bodiesArrive = true) {
    std::string out;
    for (int guard = 0; guard < 100000; ++guard) {
      if (auto& want = session.pendingBodies()) {
        if (!bodiesArrive) {
          session.bodiesDone(mb::fail(mb::ErrorKind::Unavailable, "upstream down"));
          continue;
        }
        for (auto& [name, box] : store.accounts[1])
          if (box.info.id == want->mailboxId)
            for (uint32_t u : want->uids)
              if (auto it = box.messages.find(u); it != box.messages.end()) it->second.bodyMissing = false;
        session.bodiesDone({});
      } else if (auto& l = session.pendingLogin()) {
        session.loginDone(store.checkLogin(l->user, l->password));
      } else if (session.startTlsRequested()) {
        out += session.takeOutput();
        session.tlsStarted();
      } else if (session.wantsResume()) {
        out += session.takeOutput();
        session.resume();
      } else {
        break;
      }
    }
    out += session.takeOutput();
    return out;
  }
  MemoryBackend backend;
  Session session;
  size_t id = 0;
};

// bodies: 0 all stored, 1 one message without its body that arrives when
// asked for, 2 one whose fetch fails.
std::string run(std::string_view prefix, std::string_view input, size_t split, int bodies) {
  MemoryMailStore store;
  store.addUser("alice", "secret", 1);
  Peer other(store);
  other.session.feed("o1 LOGIN alice secret\r\n");
  other.drive(store);
  std::string append = "o2 APPEND INBOX (\\Seen $K) {" + std::to_string(sizeof kMessage - 1) + "+}\r\n" + kMessage + "\r\n";
  for (int i = 0; i < 3; ++i) other.session.feed(append);
  other.session.feed("o3 SELECT INBOX\r\n");
  other.drive(store);
  if (bodies) store.accounts[1]["INBOX"].messages[2].bodyMissing = true;

  Peer p(store);
  std::string out = p.session.takeOutput();
  p.session.feed(prefix);
  out += p.drive(store, bodies != 2);
  for (size_t pos = 0; pos < input.size(); pos += split) {
    p.session.feed(input.substr(pos, split));
    out += p.drive(store, bodies != 2);
    if (out.size() > (64u << 20)) abort();  // output must stay proportional to input
  }
  // Another session changes the mailbox; ours must cope whatever its state.
  other.session.feed("o4 STORE 1 +FLAGS (\\Deleted)\r\no5 EXPUNGE\r\n" + append);
  other.drive(store);
  p.session.feed("z NOOP\r\n");
  out += p.drive(store, bodies != 2);
  store.unlisten(other.id);
  store.unlisten(p.id);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::string_view prefix = kPrefixes[data[0] % std::size(kPrefixes)];
  size_t split = 1 + data[1] % 16;
  int bodies = data[1] / 16 % 3;
  std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  std::string whole = run(prefix, input, input.size() + 1, bodies);
  std::string pieces = run(prefix, input, split, bodies);
  if (whole != pieces) abort();
  return 0;
}
