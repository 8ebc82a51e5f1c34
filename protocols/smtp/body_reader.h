// Reads a submitted message body, either DATA (dot-stuffed, ended by
// CRLF.CRLF, RFC 5321 section 4.5.2) or BDAT chunks (counted, RFC 3030), and
// judges it: size limit, bare CR / bare LF, line length.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mb::smtp {

class BodyReader {
 public:
  explicit BodyReader(uint64_t maxSize = 0) : maxSize_(maxSize) {}

  // DATA: consumes input up to and including the terminating CRLF.CRLF and
  // returns how many bytes it used; done() tells whether the end was found.
  // Only CRLF "." CRLF ends the data: "\n.\n", "\r\n.\n" and "\n.\r\n" do not
  // (SMTP smuggling: a relay and a receiver must agree where a message ends).
  // The first CRLF of the terminator may be the one that ended the DATA line.
  size_t feedDotted(std::string_view in);

  // BDAT: every byte is content, no transparency; finishRaw() after LAST.
  void feedRaw(std::string_view in);
  void finishRaw();

  bool done() const { return state_ == State::Done; }
  // Content octets seen (after unstuffing), counted even past the limit.
  uint64_t size() const { return size_; }
  bool tooBig() const { return tooBig_; }
  // A CR not followed by LF or an LF not preceded by CR was seen.
  bool bareLineEnding() const { return bareLineEnding_; }
  // A line longer than 998 octets + CRLF (RFC 5321 section 4.5.3.1.6).
  bool lineTooLong() const { return lineTooLong_; }
  // The content, unstuffed. Empty when tooBig(): we stop buffering at the
  // limit so memory stays bounded whatever the client sends.
  std::string takeData() { return std::move(data_); }

 private:
  enum class State { LineStart, Dot, DotCr, Mid, Cr, Done };
  size_t run(std::string_view in, bool dotted);
  void content(std::string_view bytes);
  void append(std::string_view bytes);

  uint64_t maxSize_;
  State state_ = State::LineStart;
  std::string data_;
  uint64_t size_ = 0;
  size_t lineLength_ = 0;
  bool tooBig_ = false;
  bool bareLineEnding_ = false;
  bool lineTooLong_ = false;
};

}  // namespace mb::smtp
