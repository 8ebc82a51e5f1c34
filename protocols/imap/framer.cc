// Framer: a byte-at-a-time-safe state machine over lines and literals. It
// never interprets commands; the parser does that on a whole RawCommand.
#include "protocols/imap/framer.h"

#include <algorithm>
#include <utility>

#include "protocols/imap/lexical.h"

namespace mb::imap {
namespace {

// RFC 7888 4: with LITERAL- only non-synchronizing literals up to this size.
constexpr uint64_t kLiteralMinusMax = 4096;
// Enough of a dropped line to see its trailing "~{NNNNNNNNNNNNNNNNNNNN+}".
constexpr size_t kTailKeep = 40;

}  // namespace

bool findLiteralHeader(std::string_view line, LiteralHeader& out) {
  if (line.empty() || line.back() != '}') return false;
  size_t end = line.size() - 1;  // the '}'
  bool nonSync = false;
  if (end > 0 && line[end - 1] == '+') {
    nonSync = true;
    --end;
  }
  size_t digitsEnd = end;
  size_t i = end;
  while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9') --i;
  if (i == digitsEnd || i == 0 || line[i - 1] != '{') return false;
  out = LiteralHeader{};
  out.nonSync = nonSync;
  out.start = i - 1;
  if (out.start > 0 && line[out.start - 1] == '~') {
    out.binary = true;
    --out.start;
  }
  uint64_t v = 0;
  for (size_t k = i; k < digitsEnd; ++k) {
    uint64_t d = static_cast<uint64_t>(line[k] - '0');
    if (v > (UINT64_MAX - d) / 10) {
      out.overflow = true;
      v = UINT64_MAX;
      break;
    }
    v = v * 10 + d;
  }
  out.size = v;
  return true;
}

Framer::Framer(ParserLimits limits, bool literalMinus) : limits_(limits), literalMinus_(literalMinus) {}

void Framer::feed(std::string_view bytes) {
  if (state_ == State::Closed) return;
  if (inputPos_ > 0 && inputPos_ >= input_.size() / 2) {
    input_.erase(0, inputPos_);
    inputPos_ = 0;
  }
  input_.append(bytes);
}

size_t Framer::bufferedBytes() const {
  size_t n = input_.size() - inputPos_ + line_.size() + discardTail_.size();
  for (const auto& l : current_.lines) n += l.size();
  for (const auto& l : current_.literals) n += l.data.size();
  return n;
}

RawCommand Framer::takeCommand() {
  RawCommand out = std::move(ready_);
  ready_ = RawCommand{};
  return out;
}

void Framer::resetCommand() {
  current_ = RawCommand{};
  line_.clear();
  lineBytes_ = 0;
  literalBytes_ = 0;
  remaining_ = 0;
  discardTail_.clear();
}

std::string Framer::tagOfCurrent() const {
  // A raw line (DONE, a SASL response) has no tag of its own.
  if (mode_ == Mode::Line) return "*";
  std::string_view first = current_.lines.empty() ? std::string_view(line_) : std::string_view(current_.lines[0]);
  size_t n = 0;
  while (n < first.size() && isTagChar(static_cast<unsigned char>(first[n]))) ++n;
  if (n == 0 || n >= first.size() || first[n] != ' ') return "*";
  return std::string(first.substr(0, n));
}

FrameEvent Framer::failCommand(bool bad, std::string respCode, std::string message, bool discardRest) {
  error_ = FrameError{tagOfCurrent(), bad, std::move(respCode), std::move(message), false};
  std::string tail = line_.size() > kTailKeep ? line_.substr(line_.size() - kTailKeep) : line_;
  resetCommand();
  if (discardRest) {
    // Decided now: the session may switch modes before the line ends.
    discardLiterals_ = mode_ == Mode::Command;
    state_ = State::DiscardLine;
    discardTail_ = std::move(tail);
  } else {
    state_ = State::Line;
  }
  return FrameEvent::Error;
}

// A whole line (without its LF) is in line_.
FrameEvent Framer::lineComplete() {
  if (!line_.empty() && line_.back() == '\r') line_.pop_back();
  // Blank lines between commands carry nothing; some clients send them.
  if (mode_ == Mode::Command && current_.lines.empty() && line_.empty()) return FrameEvent::NeedMore;
  if (lineBytes_ + line_.size() > limits_.maxLineLength) {
    // The line is whole, so dropping "the rest" starts with any literal it
    // announces: reuse the discard path on its tail.
    error_ = FrameError{tagOfCurrent(), true, "", "Line too long", false};
    std::string tail = line_.size() > kTailKeep ? line_.substr(line_.size() - kTailKeep) : line_;
    resetCommand();
    discardTail_ = std::move(tail);
    state_ = State::DiscardLine;
    // Re-enter DiscardLine as if its LF had just been read.
    LiteralHeader h;
    if (mode_ == Mode::Command && findLiteralHeader(discardTail_, h) && h.nonSync) {
      if (h.overflow || h.size > limits_.maxDiscard) {
        error_.closeConnection = true;
        state_ = State::Closed;
      } else {
        remaining_ = h.size;
        state_ = State::DiscardLiteral;
      }
    } else {
      state_ = State::Line;
    }
    discardTail_.clear();
    return FrameEvent::Error;
  }
  LiteralHeader h;
  if (mode_ == Mode::Line || !findLiteralHeader(line_, h) || endsInsideQuote(std::string_view(line_).substr(0, h.start))) {
    current_.lines.push_back(std::move(line_));
    ready_ = std::move(current_);
    resetCommand();
    return FrameEvent::Command;
  }
  bool tooBig = h.overflow || h.size > limits_.maxLiteralSize ||
                h.size > limits_.maxCommandLiterals - std::min(literalBytes_, limits_.maxCommandLiterals) ||
                (literalMinus_ && h.nonSync && h.size > kLiteralMinusMax);
  if (tooBig) {
    if (!h.nonSync) {
      // RFC 3501 7.5 / RFC 9051 7.1 TOOBIG: refuse instead of "+"; the
      // client then never sends the data, so the next byte is a new command.
      return failCommand(false, "TOOBIG", "Literal too big", false);
    }
    // RFC 7888 4: the data is already coming. Answer BAD, then drop it or
    // close the connection if it is too much to drop.
    FrameEvent ev = failCommand(true, "TOOBIG", "Non-synchronizing literal too big", false);
    if (h.overflow || h.size > limits_.maxDiscard) {
      error_.closeConnection = true;
      state_ = State::Closed;
    } else {
      remaining_ = h.size;
      state_ = State::DiscardLiteral;
    }
    return ev;
  }
  lineBytes_ += line_.size();
  literalBytes_ += h.size;
  current_.lines.push_back(std::move(line_));
  line_.clear();
  current_.literals.push_back(Literal{std::string(), h.binary, h.nonSync});
  remaining_ = h.size;
  state_ = State::Literal;
  return h.nonSync ? FrameEvent::NeedMore : FrameEvent::Continuation;
}

FrameEvent Framer::next() {
  while (true) {
    if (state_ == State::Literal && remaining_ == 0) {
      // Covers {0}: the literal is complete before any byte arrives.
      state_ = State::Line;
    }
    if (state_ == State::DiscardLiteral && remaining_ == 0) state_ = State::DiscardLine;
    if (inputPos_ >= input_.size()) break;
    std::string_view avail = std::string_view(input_).substr(inputPos_);
    switch (state_) {
      case State::Closed:
        input_.clear();
        inputPos_ = 0;
        return FrameEvent::NeedMore;
      case State::Line: {
        size_t lf = avail.find('\n');
        std::string_view chunk = avail.substr(0, lf);
        // +1: a CR may still come before the LF and is not counted.
        size_t room = limits_.maxLineLength + 1 - std::min(limits_.maxLineLength + 1, lineBytes_ + line_.size());
        if (chunk.size() > room) {
          // Keep what fits (the tag is at its start), drop the rest.
          line_.append(chunk.substr(0, room));
          inputPos_ += chunk.size();
          // The tail spans line_ and the dropped bytes: with one-byte feeds
          // a trailing "{5+}" arrives across many chunks.
          std::string_view dropped = chunk.substr(room);
          std::string tail = line_.substr(line_.size() - std::min(line_.size(), kTailKeep));
          tail.append(dropped.substr(dropped.size() - std::min(dropped.size(), kTailKeep)));
          if (tail.size() > kTailKeep) tail.erase(0, tail.size() - kTailKeep);
          FrameEvent ev = failCommand(true, "", "Line too long", true);
          discardTail_ = std::move(tail);
          // inputPos_ now points at the LF, if any: DiscardLine ends there.
          return ev;
        }
        line_.append(chunk);
        if (lf == std::string_view::npos) {
          inputPos_ = input_.size();
          break;
        }
        inputPos_ += lf + 1;
        FrameEvent ev = lineComplete();
        if (ev != FrameEvent::NeedMore) return ev;
        break;
      }
      case State::Literal: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, avail.size()));
        current_.literals.back().data.append(avail.substr(0, take));
        inputPos_ += take;
        remaining_ -= take;
        break;
      }
      case State::DiscardLiteral: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, avail.size()));
        inputPos_ += take;
        remaining_ -= take;
        break;
      }
      case State::DiscardLine: {
        size_t lf = avail.find('\n');
        std::string_view chunk = avail.substr(0, lf);
        discardTail_.append(chunk.substr(chunk.size() - std::min(chunk.size(), kTailKeep)));
        if (discardTail_.size() > kTailKeep) discardTail_.erase(0, discardTail_.size() - kTailKeep);
        if (lf == std::string_view::npos) {
          inputPos_ = input_.size();
          break;
        }
        inputPos_ += lf + 1;
        if (!discardTail_.empty() && discardTail_.back() == '\r') discardTail_.pop_back();
        LiteralHeader h;
        bool more = discardLiterals_ && findLiteralHeader(discardTail_, h) && h.nonSync;
        discardTail_.clear();
        if (!more) {
          // A synchronizing literal here is never sent: the client has its
          // tagged answer already (RFC 3501 7.5).
          state_ = State::Line;
          break;
        }
        if (h.overflow || h.size > limits_.maxDiscard) {
          state_ = State::Closed;
          error_ = FrameError{"*", true, "TOOBIG", "Too much data to discard", true};
          return FrameEvent::Error;
        }
        remaining_ = h.size;
        state_ = State::DiscardLiteral;
        break;
      }
    }
  }
  // Everything is consumed; drop the buffer so memory follows the limits.
  input_.clear();
  inputPos_ = 0;
  return FrameEvent::NeedMore;
}

}  // namespace mb::imap
