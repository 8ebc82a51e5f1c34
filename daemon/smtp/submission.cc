// Submission decisions (see submission.h): sender check, outbox enqueue and
// local-account delivery with a bounce for what cannot be delivered locally.
#include "daemon/smtp/submission.h"

#include "daemon/log/log.h"
#include "daemon/smtp/dsn.h"
#include "daemon/store/outbox.h"
#include "daemon/util/fs.h"

namespace mb::smtp {

std::string normalizeAddress(std::string_view address) {
  std::string out(address);
  bool ascii = true;
  for (unsigned char c : out)
    if (c >= 0x80) ascii = false;
  auto at = out.rfind('@');
  size_t from = (ascii || at == std::string::npos) ? 0 : at;
  for (size_t i = from; i < out.size(); ++i)
    if (out[i] >= 'A' && out[i] <= 'Z') out[i] = static_cast<char>(out[i] - 'A' + 'a');
  return out;
}

Result<int64_t> ensureMailbox(store::Store& store, int64_t accountId, std::string_view name,
                              std::string_view specialUse) {
  auto found = store.findMailbox(accountId, name);
  if (!found) return std::unexpected(found.error());
  if (*found) return (*found)->id;
  auto created = store.createMailbox(accountId, name, specialUse);
  if (!created && created.error().kind == ErrorKind::Conflict) {
    auto again = store.findMailbox(accountId, name);
    if (again && *again) return (*again)->id;
  }
  if (!created) return std::unexpected(created.error());
  return created->id;
}

Status deliverLocal(store::Store& store, int64_t accountId, std::string_view mailbox, std::string_view specialUse,
                    std::string_view bytes, uint32_t flags) {
  auto box = ensureMailbox(store, accountId, mailbox, specialUse);
  if (!box) return std::unexpected(box.error());
  store::NewMessage m;
  m.bytes = bytes;
  m.flags = flags;
  m.internalDate = store.now();
  auto r = store.appendMessage(*box, m);
  if (!r) return std::unexpected(r.error());
  return {};
}

const AccountConfig* accountConfigOf(const Config& config, store::Store& store, int64_t accountId) {
  auto rows = store.listAccounts();
  if (!rows) return nullptr;
  for (const auto& row : *rows) {
    if (row.id != accountId) continue;
    for (const auto& a : config.accounts)
      if (a.name == row.name) return &a;
  }
  return nullptr;
}

Result<bool> Submission::senderAllowed(int64_t accountId, std::string_view sender) {
  const AccountConfig* a = accountConfig(accountId);
  if (!a) return false;
  std::string want = normalizeAddress(sender);
  if (normalizeAddress(a->address) == want) return true;
  for (const auto& alias : a->aliases)
    if (normalizeAddress(alias) == want) return true;
  return false;
}

void Submission::accept(AcceptedMessage message, AcceptDone done) {
  const AccountConfig* account = accountConfig(message.accountId);
  if (!account) return done(fail(ErrorKind::Unavailable, "account is no longer configured"));
  if (!account->relay) return done(deliverForLocalAccount(*account, message));
  if (message.recipients.empty()) return done(fail(ErrorKind::User, "outbox: a message needs at least one recipient"));
  std::string name = account->name;
  size_t recipients = message.recipients.size(), size = message.data.size();
  outbox_.write(std::move(message), [done = std::move(done), name, recipients, size](Result<int64_t> id) {
    if (!id) return done(std::unexpected(id.error()));
    logInfo("smtp.queued").kv("account", name).kv("outbox_id", *id).kv("recipients", recipients).kv("size", size);
    done("Queued as " + std::to_string(*id));
  });
}

// A local account has no upstream: mail for any configured account's address
// goes into that account's INBOX, each once; anything else bounces at once.
// Done before the 250, so each copy is durable and exactly once.
Result<std::string> Submission::deliverForLocalAccount(const AccountConfig& account, AcceptedMessage& message) {
  auto rows = store_.listAccounts();
  if (!rows) return std::unexpected(rows.error());
  auto accountIdOf = [&](const std::string& name) -> int64_t {
    for (const auto& r : *rows)
      if (r.name == name) return r.id;
    return 0;
  };
  std::vector<int64_t> targets;
  std::vector<DsnRecipient> failed;
  for (const auto& rcpt : message.recipients) {
    std::string want = normalizeAddress(rcpt);
    int64_t target = 0;
    for (const auto& a : config_.accounts) {
      bool match = normalizeAddress(a.address) == want;
      for (const auto& alias : a.aliases) match = match || normalizeAddress(alias) == want;
      if (match && !a.relay) target = accountIdOf(a.name);
    }
    if (target == 0) {
      failed.push_back({rcpt, "5.1.1", 550, "no upstream relay is configured for account " + account.name +
                                                 " and the address is not a local account", ""});
    } else if (std::find(targets.begin(), targets.end(), target) == targets.end()) {
      targets.push_back(target);
    }
  }
  for (int64_t target : targets)
    if (auto s = deliverLocal(store_, target, "INBOX", "", message.data); !s) return std::unexpected(s.error());
  if (account.sentCopy == SentCopy::Sent) {
    if (auto s = deliverLocal(store_, message.accountId, "Sent", "\\Sent", message.data, store::kFlagSeen); !s)
      logWarn("smtp.sent_copy_failed").kv("account", account.name).kv("error", s.error().message);
  }
  if (!failed.empty()) {
    DsnInput dsn;
    dsn.sender = message.mailFrom;
    dsn.arrivalDate = dsn.now = store_.now();
    dsn.uniqueId = randomHex(8);
    dsn.failed = failed;
    dsn.original = message.data;
    std::string bounce = buildDsn(dsn);
    if (auto s = deliverLocal(store_, message.accountId, "INBOX", "", bounce); !s)
      logWarn("smtp.dsn_failed").kv("account", account.name).kv("error", s.error().message);
  }
  logInfo("smtp.delivered_local")
      .kv("account", account.name)
      .kv("mailboxes", targets.size())
      .kv("bounced", failed.size())
      .kv("size", message.data.size());
  return std::string("Delivered");
}

}  // namespace mb::smtp
