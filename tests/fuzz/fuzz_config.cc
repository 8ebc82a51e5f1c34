// Fuzzes config parsing and validation: any bytes get a Config or an error
// naming the problem, never a crash or an exception escaping.
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
  return 0;
}
