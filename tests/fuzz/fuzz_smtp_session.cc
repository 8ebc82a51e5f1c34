// libFuzzer target: random bytes through the SMTP submission session in each
// state (before EHLO, after EHLO, authenticated, inside DATA, inside BDAT,
// plaintext with STARTTLS on offer), with a host that says yes to everything.
// Checks that every reply line is well-formed (nothing the client sent can
// forge one) and that, without STARTTLS, the split of the input does not
// change the replies.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocols/smtp/server_session.h"

namespace {

using mb::smtp::Request;
using mb::smtp::ServerSession;
using mb::smtp::SessionOptions;
using mb::smtp::StartTlsRequest;
using mb::smtp::Verdict;

constexpr std::string_view kPrefixes[] = {
    "",
    "EHLO fuzz\r\n",
    "EHLO fuzz\r\nAUTH PLAIN AGEAYg==\r\n",
    "EHLO fuzz\r\nAUTH PLAIN AGEAYg==\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n",
    "EHLO fuzz\r\nAUTH PLAIN AGEAYg==\r\nMAIL FROM:<a@b.c> SMTPUTF8\r\nRCPT TO:<d@e.f>\r\nBDAT 40\r\n",
    "EHLO fuzz\r\n",
};

struct Outcome {
  std::string output;
  bool sawStartTls = false;
};

void settle(ServerSession& s, Outcome& o) {
  while (Request* r = s.pending()) {
    if (std::holds_alternative<StartTlsRequest>(*r)) o.sawStartTls = true;
    if (!s.answer(Verdict::Accept)) std::abort();
  }
  o.output += s.takeOutput();
}

Outcome run(size_t state, std::string_view input, size_t split) {
  SessionOptions opt;
  opt.hostname = "fuzz.test";
  opt.maxMessageSize = 4096;
  opt.maxRecipients = 5;
  opt.maxPipelinedInput = 8192;
  opt.tlsActive = state != 5;
  opt.startTlsAvailable = state == 5;
  ServerSession s(opt);
  Outcome o;
  s.feed(kPrefixes[state]);
  settle(s, o);
  s.feed(input.substr(0, split));
  settle(s, o);
  s.feed(input.substr(split));
  settle(s, o);
  return o;
}

void checkReplies(std::string_view out) {
  while (!out.empty()) {
    size_t end = out.find("\r\n");
    if (end == std::string_view::npos || end < 3) std::abort();
    std::string_view line = out.substr(0, end);
    for (int i = 0; i < 3; ++i)
      if (line[i] < '0' || line[i] > '9') std::abort();
    if (line.size() > 3 && line[3] != ' ' && line[3] != '-') std::abort();
    if (line.find('\r') != std::string_view::npos || line.find('\n') != std::string_view::npos) std::abort();
    out.remove_prefix(end + 2);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t state = data[0] % std::size(kPrefixes);
  std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);
  size_t split = input.empty() ? 0 : data[1] % (input.size() + 1);
  Outcome whole = run(state, input, input.size());
  checkReplies(whole.output);
  Outcome parts = run(state, input, split);
  checkReplies(parts.output);
  if (!whole.sawStartTls && !parts.sawStartTls && whole.output != parts.output) std::abort();
  return 0;
}
