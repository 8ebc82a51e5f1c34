// The message body of the submission session: DATA (RFC 5321 section
// 4.1.1.4) and BDAT (RFC 3030), and the verdict on a complete body.
#include <algorithm>
#include <string>

#include "protocols/smtp/server_session.h"

namespace mb::smtp {

void ServerSession::onData(std::string_view args) {
  if (!args.empty()) return badCommand("501 5.5.4", "DATA takes no arguments");
  if (!inTransaction_) return badCommand("503 5.5.1", "Need MAIL command");
  if (bdatUsed_) return badCommand("503 5.5.1", "DATA after BDAT");
  // RFC 2920 section 3.1: with no good recipient, DATA fails with 554.
  if (envelope_.recipients.empty()) return reply("554 5.5.1", "No valid recipients");
  body_ = BodyReader(options_.maxMessageSize);
  mode_ = Mode::Data;
  reply("354", "End data with <CR><LF>.<CR><LF>");
}

void ServerSession::onBdat(std::string_view args) {
  auto bdat = parseBdatArgs(args);
  // Without a size we cannot find the next command; the client must resync.
  if (!bdat) return badCommand(bdat.error().respCode, bdat.error().message);
  // RFC 3030 section 2: the chunk is read even when it is refused.
  bdatRefusal_.clear();
  if (!inTransaction_) {
    bdatRefusal_ = "503 5.5.1|Need MAIL command";
  } else if (envelope_.recipients.empty()) {
    bdatRefusal_ = "554 5.5.1|No valid recipients";
  } else if (!bdatUsed_) {
    bdatUsed_ = true;
    body_ = BodyReader(options_.maxMessageSize);
  }
  bdatDiscard_ = !bdatRefusal_.empty();
  bdatLast_ = bdat->last;
  bdatChunk_ = bdat->size;
  bdatRemaining_ = bdat->size;
  mode_ = Mode::Bdat;
  if (bdatRemaining_ == 0) finishChunk();
}

void ServerSession::finishChunk() {
  mode_ = Mode::Command;
  if (bdatDiscard_) {
    bdatDiscard_ = false;
    size_t bar = bdatRefusal_.find('|');
    return reply(std::string_view(bdatRefusal_).substr(0, bar), std::string_view(bdatRefusal_).substr(bar + 1));
  }
  if (!bdatLast_) return reply("250 2.0.0", std::to_string(bdatChunk_) + " octets received");
  body_.finishRaw();
  finishMessage();
}

void ServerSession::finishMessage() {
  // Order: size first (we hold no data), then smuggling, then line length.
  if (body_.tooBig()) {
    reply("552 5.3.4", "Message size exceeds fixed maximum message size");
  } else if (body_.bareLineEnding()) {
    // SMTP smuggling defence: a bare CR or LF could hide a second message
    // from one parser and not from another. 5.6.0: RFC 3463 "other media error".
    reply("550 5.6.0", "Bare CR or LF in message; lines must end with CRLF");
  } else if (body_.lineTooLong()) {
    reply("500 5.5.0", "Line too long; RFC 5321 allows 1000 octets per line");
  } else {
    pending_ = MessageRequest{user_, std::move(envelope_), body_.takeData()};
    return;
  }
  resetTransaction();
}

}  // namespace mb::smtp
