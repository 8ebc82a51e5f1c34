// Test helpers shared by the IMAP parser tests: drive a CommandParser over a
// transcript split into chunks and record every event it reports.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/imap/parser.h"

namespace mb::imap::test {

struct Outcome {
  CommandParser::Event event = CommandParser::Event::NeedMore;
  std::optional<Command> command;
  std::string tag, respCode, message, line;
  bool bad = false, close = false;

  bool operator==(const Outcome& o) const {
    return event == o.event && command == o.command && tag == o.tag && respCode == o.respCode &&
           message == o.message && line == o.line && bad == o.bad && close == o.close;
  }
};

// Feeds each chunk, draining events after each one. IDLE switches the
// parser to wait for DONE, as a session would after "+ idling".
inline std::vector<Outcome> runChunks(const std::vector<std::string>& chunks, ParserOptions options = {}) {
  CommandParser p(options);
  std::vector<Outcome> out;
  for (const auto& c : chunks) {
    p.feed(c);
    while (true) {
      auto ev = p.next();
      if (ev == CommandParser::Event::NeedMore) break;
      Outcome o;
      o.event = ev;
      if (ev == CommandParser::Event::Command) {
        o.command = p.takeCommand();
        if (std::holds_alternative<IdleCmd>(o.command->body)) p.expectIdleDone();
      } else if (ev == CommandParser::Event::Error) {
        o.tag = p.error().tag;
        o.respCode = p.error().respCode;
        o.message = p.error().message;
        o.bad = p.error().bad;
        o.close = p.error().closeConnection;
      } else if (ev == CommandParser::Event::AuthResponse) {
        o.line = p.takeLine();
      }
      out.push_back(std::move(o));
    }
  }
  return out;
}

inline std::vector<Outcome> runWhole(std::string_view wire, ParserOptions options = {}) {
  return runChunks({std::string(wire)}, options);
}

}  // namespace mb::imap::test
