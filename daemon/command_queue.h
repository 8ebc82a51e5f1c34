// Runs closures on the loop thread on behalf of other threads (the REST API),
// through one uv_async_t. A caller blocks for the result with a timeout; once
// the queue is closed (shutdown) every pending and later call fails at once,
// so no API thread can hold up the daemon's exit.
#pragma once

#include <uv.h>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "protocols/common/result.h"

namespace mb {

class CommandQueue {
 public:
  // The closure returns a JSON document as text (the API layer owns JSON shape).
  using Command = std::function<Result<std::string>()>;

  explicit CommandQueue(uv_loop_t* loop);
  ~CommandQueue();
  CommandQueue(const CommandQueue&) = delete;
  CommandQueue& operator=(const CommandQueue&) = delete;

  // Any thread except the loop thread. Fails with Unavailable when the queue
  // is closed or the loop does not answer within `timeout`.
  Result<std::string> call(Command command, std::chrono::milliseconds timeout);

  // Loop thread: fail everything pending, refuse new calls, close the handle.
  void close();

 private:
  struct Pending;
  static void onAsync(uv_async_t* handle);
  void drain();

  uv_async_t* async_;  // freed in its close callback
  std::mutex mutex_;
  bool closed_ = false;
  std::deque<std::shared_ptr<Pending>> queue_;
};

}  // namespace mb
