// Fuzzes config parsing and validation (the file, and one account as the REST
// API receives it): any bytes get a result or an error naming the problem,
// never a crash or an exception escaping.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "daemon/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cfg = mb::parseConfig(text, "fuzz.json");
  if (cfg) {
    for (const auto& a : cfg->imap.listen) (void)a.toString();
  } else if (cfg.error().message.rfind("fuzz.json: ", 0) != 0) {
    __builtin_trap();  // every error must name the source
  }
  // The REST API's account bodies: the same reader, without a file name.
  auto account = mb::parseAccount(text);
  if (!account && (account.error().kind != mb::ErrorKind::Config || account.error().message.empty()))
    __builtin_trap();
  return 0;
}
