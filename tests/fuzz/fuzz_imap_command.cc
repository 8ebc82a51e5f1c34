// libFuzzer target for the IMAP command parser: arbitrary bytes in arbitrary
// chunks must never crash it, and its buffers must stay within the limits.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "protocols/imap/mutf7.h"
#include "protocols/imap/parser.h"
#include "protocols/imap/writer.h"

using namespace mb::imap;

namespace {

// Properties that must hold for anything the parser accepts.
void checkCommand(const Command& cmd, bool utf8) {
  ResponseWriter w(utf8);
  w.tagged(cmd.tag, "OK", "", commandName(cmd));
  auto checkMailbox = [&](const std::string& name) {
    w.untagged().atom("X").astring(name).end();
    // Strict mUTF-7 means one wire form per name: decode then encode is
    // the identity.
    if (auto d = mutf7Decode(name)) {
      auto e = mutf7Encode(*d);
      if (!e || *e != name) abort();
    }
  };
  auto checkSet = [](const SequenceSet& s) {
    auto again = SequenceSet::parse(s.toString());
    if (!again || !(*again == s)) abort();
  };
  if (auto* s = std::get_if<SelectCmd>(&cmd.body)) checkMailbox(s->mailbox);
  if (auto* s = std::get_if<CreateCmd>(&cmd.body)) checkMailbox(s->mailbox);
  if (auto* s = std::get_if<AppendCmd>(&cmd.body)) {
    checkMailbox(s->mailbox);
    for (const auto& m : s->messages) w.untagged().atom("X").string(m.data).end();
  }
  if (auto* s = std::get_if<FetchCmd>(&cmd.body)) checkSet(s->set);
  if (auto* s = std::get_if<StoreCmd>(&cmd.body)) checkSet(s->set);
  if (auto* s = std::get_if<CopyCmd>(&cmd.body)) {
    checkSet(s->set);
    checkMailbox(s->mailbox);
  }
  if (auto* s = std::get_if<LoginCmd>(&cmd.body)) w.untagged().nstring(s->user).string(s->password).end();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // Byte 0 picks options, byte 1 the chunk size; the rest is the stream.
  ParserOptions opt;
  opt.utf8Accept = data[0] & 1;
  opt.literalMinus = data[0] & 2;
  if (data[0] & 4) {
    opt.limits.maxLineLength = 64;
    opt.limits.maxLiteralSize = 128;
    opt.limits.maxCommandLiterals = 256;
    opt.limits.maxDiscard = 1024;
  }
  const bool answerAuth = data[0] & 8;
  const size_t chunk = 1 + data[1] % 64;
  std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);
  const size_t bound = opt.limits.maxLineLength + opt.limits.maxCommandLiterals + 64;

  CommandParser parser(opt);
  for (size_t off = 0; off < in.size(); off += chunk) {
    parser.feed(in.substr(off, chunk));
    while (true) {
      auto ev = parser.next();
      if (ev == CommandParser::Event::NeedMore) break;
      if (ev == CommandParser::Event::Command) {
        Command cmd = parser.takeCommand();
        checkCommand(cmd, opt.utf8Accept);
        if (std::holds_alternative<IdleCmd>(cmd.body)) parser.expectIdleDone();
        if (answerAuth && std::holds_alternative<AuthenticateCmd>(cmd.body)) parser.expectAuthResponse();
      } else if (ev == CommandParser::Event::AuthResponse) {
        (void)parser.takeLine();
      } else if (ev == CommandParser::Event::Error) {
        const ParseError& e = parser.error();
        ResponseWriter w;
        w.tagged(e.tag, e.bad ? "BAD" : "NO", e.respCode, e.message);
      }
    }
    // Everything fed has been consumed or kept under the limits.
    if (parser.bufferedBytes() > bound) abort();
  }
  return 0;
}
