// What the SMTP endpoint decides for a session: which account a login is,
// which envelope senders it may use, and where an accepted message goes
// (the durable outbox for relay accounts; straight into local mailboxes for
// local accounts). Loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/smtp/outbox_writer.h"
#include "daemon/store/store.h"
#include "protocols/common/result.h"

namespace mb::smtp {

// Lower-cases the domain and, for plain ASCII, the local part too: mail
// programs vary the case of the user's own address.
std::string normalizeAddress(std::string_view address);

// Finds or creates a mailbox by name (INBOX, Sent) through the Store API.
Result<int64_t> ensureMailbox(store::Store& store, int64_t accountId, std::string_view name,
                              std::string_view specialUse = {});

// Delivers one message into a local mailbox through Store::appendMessage.
Status deliverLocal(store::Store& store, int64_t accountId, std::string_view mailbox, std::string_view specialUse,
                    std::string_view bytes, uint32_t flags = 0);

// The account config of a store account id (matched by name), nullptr if it
// is not (or no longer) configured.
const AccountConfig* accountConfigOf(const Config& config, store::Store& store, int64_t accountId);

class Submission {
 public:
  // `config` and `store` must outlive it; `onQueued` runs after each outbox
  // commit (the relay's wake-up).
  Submission(uv_loop_t* loop, const Config& config, store::Store& store, std::function<void()> onQueued)
      : config_(config), store_(store), outbox_(loop, store, std::move(onQueued)) {}

  // The account config of a store account id, nullptr if it is not (or no
  // longer) configured.
  const AccountConfig* accountConfig(int64_t accountId) { return accountConfigOf(config_, store_, accountId); }

  // May this account use sender as MAIL FROM? Its address and aliases, any case.
  Result<bool> senderAllowed(int64_t accountId, std::string_view sender);

  using AcceptDone = std::function<void(Result<std::string>)>;
  // Stores the message durably, then done gets a short queue reference for
  // the 250: at once for a local account (delivered before accept returns),
  // after the outbox commit otherwise (OutboxWriter). A failure is answered
  // 451 4.3.0: the client keeps the message.
  void accept(AcceptedMessage message, AcceptDone done);

 private:
  Result<std::string> deliverForLocalAccount(const AccountConfig& account, AcceptedMessage& message);

  const Config& config_;
  store::Store& store_;
  OutboxWriter outbox_;
};

}  // namespace mb::smtp
