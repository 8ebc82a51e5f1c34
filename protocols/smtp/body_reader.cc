// DATA/BDAT body state machine (see body_reader.h). One byte-level machine
// serves both: BDAT simply never treats a line-start dot as special.
#include "protocols/smtp/body_reader.h"

namespace mb::smtp {
namespace {
constexpr size_t kMaxLineContent = 998;  // 1000 with the CRLF
}

void BodyReader::append(std::string_view bytes) {
  size_ += bytes.size();
  if (tooBig_) return;
  if (data_.size() + bytes.size() > maxSize_) {
    tooBig_ = true;
    std::string().swap(data_);  // release the memory, the message is lost anyway
    return;
  }
  data_.append(bytes);
}

void BodyReader::content(std::string_view bytes) {
  lineLength_ += bytes.size();
  if (lineLength_ > kMaxLineContent) lineTooLong_ = true;
  append(bytes);
}

size_t BodyReader::run(std::string_view in, bool dotted) {
  size_t i = 0;
  while (i < in.size() && state_ != State::Done) {
    char c = in[i];
    switch (state_) {
      case State::LineStart:
        if (dotted && c == '.') {
          state_ = State::Dot;
          ++i;
        } else {
          state_ = State::Mid;  // look at c again as line content
        }
        break;
      case State::Dot:
        if (c == '\r') {
          state_ = State::DotCr;
          ++i;
        } else {
          state_ = State::Mid;  // the dot was transparency: dropped
        }
        break;
      case State::DotCr:
        if (c == '\n') {
          state_ = State::Done;
          ++i;
        } else {
          state_ = State::Cr;  // ".\r" + other: stuffing dot, then a bare CR
        }
        break;
      case State::Mid: {
        size_t j = i;
        while (j < in.size() && in[j] != '\r' && in[j] != '\n') ++j;
        content(in.substr(i, j - i));
        i = j;
        if (i < in.size()) {
          if (in[i] == '\r') {
            state_ = State::Cr;
          } else {
            // A bare LF never starts a line, so "\n.\r\n" cannot end DATA.
            bareLineEnding_ = true;
            content("\n");
          }
          ++i;
        }
        break;
      }
      case State::Cr:
        if (c == '\n') {
          append("\r\n");
          lineLength_ = 0;
          state_ = State::LineStart;
          ++i;
        } else {
          bareLineEnding_ = true;
          content("\r");
          state_ = State::Mid;  // c is looked at again; another CR returns here
        }
        break;
      case State::Done:
        break;
    }
  }
  return i;
}

size_t BodyReader::feedDotted(std::string_view in) { return run(in, true); }

void BodyReader::feedRaw(std::string_view in) { run(in, false); }

void BodyReader::finishRaw() {
  if (state_ == State::Cr) {
    bareLineEnding_ = true;
    content("\r");
  }
  state_ = State::Done;
}

}  // namespace mb::smtp
