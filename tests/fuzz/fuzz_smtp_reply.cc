// libFuzzer target: the upstream reply parser and EHLO capability parsing.
// The input is fed whole and split at a fuzzer-chosen offset; both must give
// the same replies (or the same failure).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/smtp/reply.h"

namespace {

struct Parsed {
  std::vector<mb::smtp::Reply> replies;
  bool failed = false;
};

void drain(mb::smtp::ReplyParser& p, Parsed& out) {
  while (!out.failed) {
    auto r = p.next();
    if (!r) {
      out.failed = true;
      return;
    }
    if (!*r) return;
    auto caps = mb::smtp::Capabilities::fromEhlo(**r);
    (void)caps.hasAuth("PLAIN");
    (void)caps.sizeLimit();
    out.replies.push_back(std::move(**r));
  }
}

Parsed parse(std::string_view input, size_t split) {
  mb::smtp::ReplyParser p;
  Parsed out;
  p.feed(input.substr(0, split));
  drain(p, out);
  p.feed(input.substr(split));
  drain(p, out);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  size_t split = data[0] % (input.size() + 1);
  Parsed a = parse(input, input.size());
  Parsed b = parse(input, split);
  if (a.failed != b.failed || a.replies.size() != b.replies.size()) std::abort();
  for (size_t i = 0; i < a.replies.size(); ++i) {
    if (a.replies[i].code != b.replies[i].code || a.replies[i].enhanced != b.replies[i].enhanced ||
        a.replies[i].lines != b.replies[i].lines)
      std::abort();
  }
  return 0;
}
