// Names of error kinds, for logs and JSON error bodies.
#include "protocols/common/result.h"

namespace mb {

const char* errorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Syntax: return "syntax";
    case ErrorKind::User: return "user";
    case ErrorKind::Auth: return "auth";
    case ErrorKind::NotFound: return "not_found";
    case ErrorKind::Conflict: return "conflict";
    case ErrorKind::Unavailable: return "unavailable";
    case ErrorKind::Upstream: return "upstream";
    case ErrorKind::Config: return "config";
    case ErrorKind::Io: return "io";
    case ErrorKind::Corrupt: return "corrupt";
    case ErrorKind::Internal: return "internal";
  }
  return "internal";
}

}  // namespace mb
