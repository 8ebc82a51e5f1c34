// libFuzzer target for the IMAP client response parser: whatever an upstream
// server sends, in whatever chunks, the parser must not crash, must keep its
// buffers within the limits, and must parse the same way however it is split.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "protocols/imap/client_command.h"
#include "protocols/imap/client_parser.h"

using namespace mb::imap;
using namespace mb::imap::client;

namespace {

struct Seen {
  std::vector<Response> responses;
  std::vector<std::string> errors;  // tag + message
  bool operator==(const Seen&) const = default;
};

// Properties of every accepted response: sets round-trip, and names the
// server sent can be sent back by the builder without breaking a line.
void check(const Response& r, CommandBuilder& b) {
  auto checkSet = [](const SequenceSet& s) {
    if (s.empty()) return;
    auto again = SequenceSet::parse(s.toString());
    if (!again || !(*again == s)) abort();
  };
  auto sendBack = [&](const MailboxName& m) {
    auto c = b.select(Mailbox::fromWire(m.wire));
    if (c && c->chunks.back().bytes.size() < 2) abort();
  };
  if (auto* v = std::get_if<VanishedData>(&r)) checkSet(v->uids);
  if (auto* e = std::get_if<EsearchData>(&r); e && e->all) checkSet(*e->all);
  if (auto* l = std::get_if<ListData>(&r)) sendBack(l->mailbox);
  if (auto* s = std::get_if<StatusData>(&r)) sendBack(s->mailbox);
  auto code = [&](const StatusText& st) {
    checkSet(st.code.uids);
    checkSet(st.code.sourceUids);
  };
  if (auto* t = std::get_if<Tagged>(&r)) code(t->status);
  if (auto* u = std::get_if<UntaggedStatus>(&r)) code(u->status);
}

// inPlace: whenever the parser offers a literal window, the next chunk is
// written into it (as the daemon's socket reads do) instead of fed.
Seen run(std::string_view stream, const ResponseParserOptions& opt, size_t chunk, CommandBuilder* b,
         bool inPlace = false) {
  ResponseParser p(opt);
  Seen seen;
  size_t limit = opt.limits.maxLineLength + opt.limits.maxResponseLiterals + chunk + 64;
  for (size_t off = 0, n = 0; off < stream.size(); off += n) {
    n = std::min(chunk, stream.size() - off);
    std::span<char> w = inPlace ? p.literalWindow(1) : std::span<char>();
    if (!w.empty()) {
      n = std::min(n, w.size());
      std::memcpy(w.data(), stream.data() + off, n);
      p.literalWritten(n);
    } else {
      p.feed(stream.substr(off, n));
    }
    while (true) {
      auto ev = p.next();
      if (ev == ResponseParser::Event::NeedMore) break;
      if (ev == ResponseParser::Event::Response) {
        seen.responses.push_back(p.takeResponse());
        if (b) check(seen.responses.back(), *b);
      } else {
        seen.errors.push_back(p.error().tag + " " + p.error().error.message);
      }
    }
    if (p.bufferedBytes() > limit) abort();
  }
  return seen;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // Byte 0 picks options, byte 1 the chunk size; the rest is the stream.
  ResponseParserOptions opt;
  opt.expectGreeting = data[0] & 1;
  opt.utf8Accept = data[0] & 2;
  if (!(data[0] & 4)) {
    // Small limits most of the time, so the limit paths get exercised.
    opt.limits.maxLineLength = 256;
    opt.limits.maxLiteralSize = 512;
    opt.limits.maxResponseLiterals = 1024;
  } else {
    // Defaults would let one header reserve 256 MB; keep the fuzzer lean.
    opt.limits.maxLiteralSize = 1 << 20;
    opt.limits.maxResponseLiterals = 2 << 20;
  }
  size_t chunk = data[1] % 64 + 1;
  std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);
  CommandBuilder b;
  Seen split = run(stream, opt, chunk, &b);
  // Framing is split-independent: the same input whole gives the same.
  Seen whole = run(stream, opt, stream.size() + 1, nullptr);
  if (!(split == whole)) abort();
  // Reading literals in place changes nothing either.
  if (!(run(stream, opt, chunk, nullptr, true) == whole)) abort();
  return 0;
}
