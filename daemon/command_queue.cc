// CommandQueue: a mutex-guarded deque drained on the loop thread.
#include "daemon/command_queue.h"

#include <condition_variable>
#include <optional>

namespace mb {

struct CommandQueue::Pending {
  Command command;
  std::mutex mutex;
  std::condition_variable done;
  std::optional<Result<std::string>> result;

  void finish(Result<std::string> r) {
    std::lock_guard lock(mutex);
    result = std::move(r);
    done.notify_all();
  }
};

CommandQueue::CommandQueue(uv_loop_t* loop) : async_(new uv_async_t) {
  uv_async_init(loop, async_, &CommandQueue::onAsync);
  async_->data = this;
}

CommandQueue::~CommandQueue() { close(); }

Result<std::string> CommandQueue::call(Command command, std::chrono::milliseconds timeout) {
  auto pending = std::make_shared<Pending>();
  pending->command = std::move(command);
  {
    std::lock_guard lock(mutex_);
    if (closed_) return fail(ErrorKind::Unavailable, "the daemon is shutting down");
    queue_.push_back(pending);
    uv_async_send(async_);
  }
  std::unique_lock lock(pending->mutex);
  if (!pending->done.wait_for(lock, timeout, [&] { return pending->result.has_value(); }))
    return fail(ErrorKind::Unavailable, "the daemon did not answer in time");
  return std::move(*pending->result);
}

void CommandQueue::onAsync(uv_async_t* handle) { static_cast<CommandQueue*>(handle->data)->drain(); }

void CommandQueue::drain() {
  for (;;) {
    std::shared_ptr<Pending> next;
    {
      std::lock_guard lock(mutex_);
      if (queue_.empty()) return;
      next = std::move(queue_.front());
      queue_.pop_front();
    }
    next->finish(next->command());
  }
}

void CommandQueue::close() {
  std::deque<std::shared_ptr<Pending>> orphans;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    orphans.swap(queue_);
  }
  for (auto& p : orphans) p->finish(fail(ErrorKind::Unavailable, "the daemon is shutting down"));
  uv_close(reinterpret_cast<uv_handle_t*>(async_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
}

}  // namespace mb
