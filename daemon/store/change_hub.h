// Typed notifications of committed store changes (new messages, flag
// changes, expunges, mailbox create/rename/delete) for the local sessions,
// which turn them into untagged IMAP responses. Loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace mb::store {

struct ChangedMessage {
  uint32_t uid = 0;
  uint32_t flags = 0;  // MessageFlag bits
  std::vector<std::string> keywords;
  uint64_t modseq = 0;
};

struct StoreChange {
  // AccountRemoved: the account and everything in it is gone (config reload
  // or REST); only accountId is set. Sessions of that account end.
  enum class Kind { MessagesAdded, FlagsChanged, MessagesExpunged, MailboxCreated, MailboxRenamed, MailboxDeleted, AccountRemoved };
  Kind kind = Kind::MessagesAdded;
  int64_t accountId = 0;
  int64_t mailboxId = 0;
  std::vector<ChangedMessage> messages;  // MessagesAdded / FlagsChanged
  std::vector<uint32_t> uids;            // MessagesExpunged, ascending
  uint64_t modseq = 0;                   // the mailbox's HIGHESTMODSEQ after the change
  std::string name;                      // mailbox name (the new one for a rename)
  std::string oldName;                   // MailboxRenamed
  // Who made the change (an opaque pointer the writer passes in, e.g. one
  // IMAP session's backend), so that session does not report it twice.
  const void* origin = nullptr;
};

// Publishing happens only after the transaction committed ("commit first,
// then broadcast"), synchronously; a subscriber must only queue the change
// (it may unsubscribe itself or others from inside the callback).
class ChangeHub {
 public:
  using Subscriber = std::function<void(const StoreChange&)>;

  uint64_t subscribe(Subscriber fn) {
    subscribers_.emplace_back(++nextId_, std::move(fn));
    return nextId_;
  }
  void unsubscribe(uint64_t id) {
    for (auto& s : subscribers_)
      if (s.first == id) s.first = 0;  // erased after the current publish
    if (depth_ == 0) compact();
  }
  void publish(const StoreChange& change) {
    ++depth_;
    // Subscribers added during the loop see the next change, not this one.
    size_t n = subscribers_.size();
    for (size_t i = 0; i < n; ++i) {
      if (subscribers_[i].first == 0) continue;
      Subscriber fn = subscribers_[i].second;  // the vector may grow under us
      fn(change);
    }
    if (--depth_ == 0) compact();
  }
  size_t subscriberCount() const {
    size_t n = 0;
    for (auto& s : subscribers_) n += s.first != 0;
    return n;
  }

 private:
  void compact() {
    std::erase_if(subscribers_, [](const auto& s) { return s.first == 0; });
  }
  std::vector<std::pair<uint64_t, Subscriber>> subscribers_;
  uint64_t nextId_ = 0;
  int depth_ = 0;
};

}  // namespace mb::store
