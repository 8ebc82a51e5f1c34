// Result<T> and Error: how every layer reports failure without exceptions.
// Error kinds map to the wire (Syntax -> BAD, User -> NO, Unavailable -> NO
// [UNAVAILABLE], Io -> close the connection) and to process exit codes.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace mb {

enum class ErrorKind {
  Syntax,       // the peer sent something malformed
  User,         // a well-formed request we refuse (NO)
  Auth,         // authentication failed
  NotFound,     // the named thing does not exist
  Conflict,     // the named thing exists already / is in use
  Unavailable,  // a dependency (upstream, disk) is not there right now
  Upstream,     // the upstream answered with an error
  Config,       // configuration is invalid
  Io,           // local I/O failed
  Corrupt,      // stored data is not what we wrote
  Internal,     // a bug: an invariant did not hold
};

const char* errorKindName(ErrorKind kind);

struct Error {
  ErrorKind kind = ErrorKind::Internal;
  std::string message;
  std::string respCode;  // protocol response code, e.g. "TOOBIG"; may be empty
};

template <class T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

inline std::unexpected<Error> fail(ErrorKind kind, std::string message, std::string respCode = {}) {
  return std::unexpected<Error>(Error{kind, std::move(message), std::move(respCode)});
}

// Passes a failed Result's error on: `if (!r) return propagate(r);` in a
// function whose own Result type differs.
template <class T>
std::unexpected<Error> propagate(const Result<T>& r) {
  return std::unexpected(r.error());
}

}  // namespace mb
