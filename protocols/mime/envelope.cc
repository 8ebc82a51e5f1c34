// ENVELOPE construction from raw header fields.
#include "protocols/mime/envelope.h"

#include "protocols/mime/address.h"
#include "protocols/mime/header.h"
#include "protocols/mime/imap_quote.h"

namespace mb::mime {

void addEnvelopeField(Envelope& env, const HeaderField& f) {
  if (!f.hasColon) return;
  std::string_view n = f.name;
  if (iequals(n, "date")) env.date = f.value;
  else if (iequals(n, "subject")) env.subject = f.value;
  else if (iequals(n, "from")) env.from.add(f.value);
  else if (iequals(n, "sender")) env.sender.add(f.value);
  else if (iequals(n, "reply-to")) env.replyTo.add(f.value);
  else if (iequals(n, "to")) env.to.add(f.value);
  else if (iequals(n, "cc")) env.cc.add(f.value);
  else if (iequals(n, "bcc")) env.bcc.add(f.value);
  else if (iequals(n, "in-reply-to")) env.inReplyTo = f.value;
  else if (iequals(n, "message-id")) env.messageId = f.value;
}

Envelope parseEnvelope(std::string_view headerBlock) {
  Envelope env;
  HeaderReader reader(headerBlock);
  HeaderField f;
  while (reader.next(f)) addEnvelopeField(env, f);
  return env;
}

namespace {

// The list of every occurrence's addresses; false (and NIL written) when
// there is none.
bool appendAddresses(std::string& out, const RawValues& values) {
  AddressListWriter list(out);
  values.forEach([&](std::string_view v) { list.add(v); });
  return list.finish();
}

}  // namespace

void appendEnvelope(std::string& out, const Envelope& env) {
  out += '(';
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
  appendAddresses(out, env.from);
  std::size_t fromSize = out.size() - fromBegin;
  for (const RawValues* defaulted : {&env.sender, &env.replyTo}) {
    out += ' ';
    std::size_t at = out.size();
    if (!appendAddresses(out, *defaulted)) {
      out.resize(at);
      out.append(out, fromBegin, fromSize);
    }
  }
  out += ' ';
  appendAddresses(out, env.to);
  out += ' ';
  appendAddresses(out, env.cc);
  out += ' ';
  appendAddresses(out, env.bcc);
  out += ' ';
  appendImapNStringNoLf(out, env.inReplyTo);
  out += ' ';
  appendImapNStringNoLf(out, env.messageId);
  out += ')';
}

}  // namespace mb::mime
