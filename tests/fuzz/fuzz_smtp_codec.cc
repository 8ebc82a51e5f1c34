// libFuzzer target: the small SMTP codecs. Path parsing must not crash and
// must agree with itself; a message the client dot-stuffs must come back
// unchanged through the server's DATA reader; base64 must round-trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocols/common/base64.h"
#include "protocols/smtp/address.h"
#include "protocols/smtp/body_reader.h"
#include "protocols/smtp/client.h"
#include "protocols/smtp/command.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  size_t used = 0;
  if (auto p = mb::smtp::parsePath(input, mb::smtp::PathKind::Reverse, used)) {
    if (used > input.size()) std::abort();
    // What we would relay upstream parses back to the same address.
    std::string wire = p->wire();
    size_t again = 0;
    auto q = mb::smtp::parsePath(wire, mb::smtp::PathKind::Reverse, again);
    if (!q || q->address() != p->address() || again != wire.size()) std::abort();
  }
  (void)mb::smtp::parseMailArgs(input);
  (void)mb::smtp::parseRcptArgs(input);
  (void)mb::smtp::parseBdatArgs(input);

  if (auto stuffed = mb::smtp::client::dotStuff(input)) {
    mb::smtp::BodyReader reader(size + 16);
    if (reader.feedDotted(*stuffed) != stuffed->size() || !reader.done() || reader.bareLineEnding()) std::abort();
    std::string expected(input);
    if (!expected.empty() && !expected.ends_with("\r\n")) expected += "\r\n";
    if (reader.takeData() != expected) std::abort();
  }

  std::string encoded = mb::base64Encode(input);
  auto decoded = mb::base64Decode(encoded);
  if (!decoded || *decoded != input) std::abort();
  (void)mb::base64Decode(input);
  return 0;
}
