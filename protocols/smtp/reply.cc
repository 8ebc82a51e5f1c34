// Incremental SMTP reply parser and EHLO capability parsing (see reply.h).
#include "protocols/smtp/reply.h"

#include "protocols/smtp/text.h"

namespace mb::smtp {
namespace {

// RFC 5321 section 4.5.3.1.5 says 512; real servers send longer, so allow
// some slack but keep a bound: a reply is at most kMaxReply bytes in total.
constexpr size_t kMaxLine = 4096;
constexpr size_t kMaxReply = 64 * 1024;

// "c.sss.ddd" with c = 2, 4 or 5 matching the reply class (RFC 3463 section 2),
// followed by a space or the end of the line. Returns its length or 0.
size_t enhancedLength(std::string_view text, int code) {
  if (text.size() < 5 || text[0] != char('0' + code / 100) || text[1] != '.') return 0;
  if (code / 100 != 2 && code / 100 != 4 && code / 100 != 5) return 0;
  size_t i = 2;
  for (int part = 0; part < 2; ++part) {
    size_t start = i;
    while (i < text.size() && isDigit(static_cast<unsigned char>(text[i]))) ++i;
    size_t digits = i - start;
    if (digits == 0 || digits > 3) return 0;
    if (part == 0) {
      if (i >= text.size() || text[i] != '.') return 0;
      ++i;
    }
  }
  if (i < text.size() && text[i] != ' ') return 0;
  return i;
}

}  // namespace

std::string Reply::text() const {
  std::string out;
  for (const auto& line : lines) {
    if (!out.empty()) out += ' ';
    out += line;
  }
  return out;
}

void ReplyParser::feed(std::string_view bytes) {
  if (error_) return;
  buffer_.append(bytes);
}

Status ReplyParser::parseLine(std::string_view line, bool& last) {
  // Reply-line = *( Reply-code "-" [ textstring ] CRLF ) Reply-code [ SP textstring ] CRLF
  if (line.size() < 3 || !isDigit(line[0]) || !isDigit(line[1]) || !isDigit(line[2]) || line[0] < '2' ||
      line[0] > '5')
    return fail(ErrorKind::Upstream, "malformed SMTP reply line");
  int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (line.size() > 3 && line[3] != ' ' && line[3] != '-') return fail(ErrorKind::Upstream, "malformed SMTP reply line");
  last = line.size() == 3 || line[3] == ' ';
  std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view{};
  if (!inReply_) {
    current_ = Reply{};
    current_.code = code;
    if (size_t n = enhancedLength(text, code)) current_.enhanced = std::string(text.substr(0, n));
    inReply_ = true;
    replyBytes_ = 0;
  } else if (code != current_.code) {
    return fail(ErrorKind::Upstream, "SMTP reply code changed inside a multi-line reply");
  }
  replyBytes_ += line.size();
  if (replyBytes_ > kMaxReply) return fail(ErrorKind::Upstream, "SMTP reply too long");
  if (!current_.enhanced.empty() && text.substr(0, current_.enhanced.size()) == current_.enhanced &&
      enhancedLength(text, code) == current_.enhanced.size()) {
    text.remove_prefix(current_.enhanced.size());
    if (!text.empty()) text.remove_prefix(1);
  }
  current_.lines.emplace_back(text);
  if (last) {
    ready_.push_back(std::move(current_));
    inReply_ = false;
  }
  return {};
}

Result<std::optional<Reply>> ReplyParser::next() {
  while (!error_ && ready_.empty()) {
    size_t lf = buffer_.find('\n', pos_);
    if (lf == std::string::npos) {
      if (buffer_.size() - pos_ > kMaxLine) error_ = Error{ErrorKind::Upstream, "SMTP reply line too long", {}};
      break;
    }
    std::string_view line(buffer_.data() + pos_, lf - pos_);
    pos_ = lf + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // servers that send bare LF exist
    if (line.size() > kMaxLine) {
      error_ = Error{ErrorKind::Upstream, "SMTP reply line too long", {}};
      break;
    }
    bool last = false;
    if (auto st = parseLine(line, last); !st) error_ = st.error();
  }
  // Drop consumed bytes now and then, not per line, to stay linear.
  if (pos_ > 4096 || pos_ == buffer_.size()) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  if (!ready_.empty()) {
    Reply r = std::move(ready_.front());
    ready_.pop_front();
    return r;
  }
  if (error_) return std::unexpected(*error_);
  return std::optional<Reply>{};
}

Capabilities Capabilities::fromEhlo(const Reply& reply) {
  Capabilities caps;
  for (size_t i = 1; i < reply.lines.size(); ++i) {
    std::string_view line = reply.lines[i];
    std::vector<std::string> words;
    while (!line.empty()) {
      size_t sp = line.find(' ');
      if (sp != 0) words.emplace_back(line.substr(0, sp));
      if (sp == std::string_view::npos) break;
      line.remove_prefix(sp + 1);
    }
    if (words.empty()) continue;
    std::string keyword = ascii::toUpper(words[0]);
    // Old servers announce "AUTH=LOGIN PLAIN"; treat it as AUTH.
    if (startsWithIgnoreCase(keyword, "AUTH=")) {
      words[0] = keyword.substr(5);
      keyword = "AUTH";
    } else {
      words.erase(words.begin());
    }
    auto& params = caps.keywords_[keyword];
    for (auto& w : words)
      if (!w.empty()) params.push_back(std::move(w));
  }
  return caps;
}

bool Capabilities::has(std::string_view keyword) const { return keywords_.find(ascii::toUpper(keyword)) != keywords_.end(); }

const std::vector<std::string>* Capabilities::params(std::string_view keyword) const {
  auto it = keywords_.find(ascii::toUpper(keyword));
  return it == keywords_.end() ? nullptr : &it->second;
}

bool Capabilities::hasAuth(std::string_view mechanism) const {
  const auto* mechs = params("AUTH");
  if (!mechs) return false;
  for (const auto& m : *mechs)
    if (iequals(m, mechanism)) return true;
  return false;
}

std::optional<uint64_t> Capabilities::sizeLimit() const {
  const auto* p = params("SIZE");
  if (!p) return std::nullopt;
  if (p->empty()) return 0;
  return parseDecimal(p->front()).value_or(0);
}

}  // namespace mb::smtp
