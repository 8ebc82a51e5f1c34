// ENVELOPE construction from raw header fields.
#include "protocols/mime/envelope.h"

#include "protocols/mime/header.h"
#include "protocols/mime/imap_quote.h"

namespace mb::mime {

void addEnvelopeField(Envelope& env, const HeaderField& f) {
  if (!f.hasColon) return;
  auto addTo = [&](std::vector<Address>& list) {
    std::vector<Address> more = parseAddressList(unfold(f.value));
    if (list.empty()) {
      list = std::move(more);
    } else {
      for (auto& a : more) list.push_back(std::move(a));
    }
  };
  std::string_view n = f.name;
  if (equalsIgnoreCase(n, "date")) env.date = std::string(f.value);
  else if (equalsIgnoreCase(n, "subject")) env.subject = std::string(f.value);
  else if (equalsIgnoreCase(n, "from")) addTo(env.from);
  else if (equalsIgnoreCase(n, "sender")) addTo(env.sender);
  else if (equalsIgnoreCase(n, "reply-to")) addTo(env.replyTo);
  else if (equalsIgnoreCase(n, "to")) addTo(env.to);
  else if (equalsIgnoreCase(n, "cc")) addTo(env.cc);
  else if (equalsIgnoreCase(n, "bcc")) addTo(env.bcc);
  else if (equalsIgnoreCase(n, "in-reply-to")) env.inReplyTo = std::string(f.value);
  else if (equalsIgnoreCase(n, "message-id")) env.messageId = std::string(f.value);
}

Envelope parseEnvelope(std::string_view headerBlock) {
  Envelope env;
  HeaderReader reader(headerBlock);
  HeaderField f;
  while (reader.next(f)) addEnvelopeField(env, f);
  return env;
}

std::string formatEnvelope(const Envelope& env) {
  std::string out = "(";
  appendImapNStringNoLf(out, env.date);
  out += ' ';
  if (env.subject) {
    appendImapHumanString(out, *env.subject);
  } else {
    out += "NIL";
  }
  out += ' ';
  // Sender and Reply-To default to From: its text is written once and copied.
  std::size_t fromBegin = out.size();
  appendAddressList(out, env.from);
  std::size_t fromSize = out.size() - fromBegin;
  out += ' ';
  if (env.sender.empty()) out.append(out, fromBegin, fromSize);
  else appendAddressList(out, env.sender);
  out += ' ';
  if (env.replyTo.empty()) out.append(out, fromBegin, fromSize);
  else appendAddressList(out, env.replyTo);
  out += ' ';
  appendAddressList(out, env.to);
  out += ' ';
  appendAddressList(out, env.cc);
  out += ' ';
  appendAddressList(out, env.bcc);
  out += ' ';
  appendImapNStringNoLf(out, env.inReplyTo);
  out += ' ';
  appendImapNStringNoLf(out, env.messageId);
  out += ')';
  return out;
}

}  // namespace mb::mime
