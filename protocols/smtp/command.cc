// Command-line splitting and MAIL/RCPT/BDAT argument parsing (see command.h).
#include "protocols/smtp/command.h"

#include <array>
#include <utility>
#include <vector>

#include "protocols/smtp/text.h"

namespace mb::smtp {
namespace {

constexpr std::array<std::pair<std::string_view, Verb>, 14> kVerbs{{
    {"EHLO", Verb::Ehlo}, {"HELO", Verb::Helo}, {"MAIL", Verb::Mail}, {"RCPT", Verb::Rcpt},
    {"DATA", Verb::Data}, {"BDAT", Verb::Bdat}, {"RSET", Verb::Rset}, {"NOOP", Verb::Noop},
    {"QUIT", Verb::Quit}, {"VRFY", Verb::Vrfy}, {"EXPN", Verb::Expn}, {"HELP", Verb::Help},
    {"STARTTLS", Verb::StartTls}, {"AUTH", Verb::Auth},
}};

std::unexpected<Error> syntax(std::string reply, std::string text) {
  return fail(ErrorKind::Syntax, std::move(text), std::move(reply));
}

std::string_view trimSpaces(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

struct Param {
  std::string keyword;  // upper-cased
  std::string_view value;
  bool hasValue = false;
};

// esmtp-param = esmtp-keyword ["=" esmtp-value] (RFC 5321 section 4.1.2);
// esmtp-value may carry UTF-8 under SMTPUTF8 (RFC 6531 section 3.3).
Result<std::vector<Param>> parseParams(std::string_view text) {
  std::vector<Param> params;
  text = trimSpaces(text);
  while (!text.empty()) {
    size_t end = text.find(' ');
    std::string_view item = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : trimSpaces(text.substr(end));
    Param p;
    size_t eq = item.find('=');
    std::string_view key = item.substr(0, eq);
    if (key.empty() || !isAlnum(static_cast<unsigned char>(key[0])))
      return syntax("501 5.5.4", "Syntax error in parameters");
    for (char c : key)
      if (!isAlnum(static_cast<unsigned char>(c)) && c != '-') return syntax("501 5.5.4", "Syntax error in parameters");
    p.keyword = ascii::toUpper(key);
    if (eq != std::string_view::npos) {
      p.value = item.substr(eq + 1);
      p.hasValue = true;
      if (p.value.empty()) return syntax("501 5.5.4", "Syntax error in parameters");
      for (char c : p.value) {
        auto u = static_cast<unsigned char>(c);
        if (u < 33 || u == '=' || u == 127) return syntax("501 5.5.4", "Syntax error in parameters");
      }
    }
    if (params.size() >= 16) return syntax("501 5.5.4", "Too many parameters");
    params.push_back(std::move(p));
  }
  return params;
}

// "FROM:" / "TO:" then the path, spaces around the colon tolerated because
// widespread clients send "MAIL FROM: <a@b>".
Result<Path> parsePrefixAndPath(std::string_view& args, std::string_view prefix, PathKind kind,
                                const char* badAddressReply) {
  if (!startsWithIgnoreCase(args, prefix)) return syntax("501 5.5.4", "Syntax: MAIL FROM:<address> / RCPT TO:<address>");
  args.remove_prefix(prefix.size());
  args = trimSpaces(args);
  size_t used = 0;
  auto path = parsePath(args, kind, used);
  if (!path) return syntax(badAddressReply, "Bad address syntax: " + path.error().message);
  args.remove_prefix(used);
  if (!args.empty() && args.front() != ' ') return syntax(badAddressReply, "Bad address syntax");
  return path;
}

}  // namespace

CommandLine splitCommand(std::string_view line) {
  CommandLine out;
  size_t sp = line.find(' ');
  std::string_view verb = line.substr(0, sp);
  for (const auto& [name, v] : kVerbs) {
    if (iequals(verb, name)) {
      out.verb = v;
      break;
    }
  }
  if (sp != std::string_view::npos) out.args = trimSpaces(line.substr(sp));
  return out;
}

Result<MailArgs> parseMailArgs(std::string_view args) {
  MailArgs out;
  auto path = parsePrefixAndPath(args, "FROM:", PathKind::Reverse, "501 5.1.7");
  if (!path) return std::unexpected(path.error());
  out.path = std::move(*path);
  auto params = parseParams(args);
  if (!params) return std::unexpected(params.error());
  for (const Param& p : *params) {
    out.params.any = true;
    if (p.keyword == "SIZE") {
      auto n = p.hasValue ? parseDecimal(p.value) : std::nullopt;
      if (!n) return syntax("501 5.5.4", "Bad SIZE value");
      out.params.size = *n;
    } else if (p.keyword == "BODY") {
      std::string v = ascii::toUpper(p.value);
      if (v == "7BIT") out.params.body = BodyType::SevenBit;
      else if (v == "8BITMIME") out.params.body = BodyType::EightBitMime;
      else if (v == "BINARYMIME") return syntax("555 5.5.4", "BINARYMIME not supported");
      else return syntax("501 5.5.4", "Bad BODY value");
    } else if (p.keyword == "SMTPUTF8") {
      if (p.hasValue) return syntax("501 5.5.4", "SMTPUTF8 takes no value");
      out.params.smtputf8 = true;
    } else if (p.keyword == "AUTH" && p.hasValue) {
      out.params.auth = std::string(p.value);
    } else if (p.keyword == "RET" && p.hasValue) {
      out.params.ret = ascii::toUpper(p.value);
      if (out.params.ret != "FULL" && out.params.ret != "HDRS") return syntax("501 5.5.4", "Bad RET value");
    } else if (p.keyword == "ENVID" && p.hasValue) {
      out.params.envid = std::string(p.value);
    } else {
      return syntax("555 5.5.4", "Unsupported parameter " + p.keyword);
    }
  }
  return out;
}

Result<RcptArgs> parseRcptArgs(std::string_view args) {
  RcptArgs out;
  auto path = parsePrefixAndPath(args, "TO:", PathKind::Forward, "501 5.1.3");
  if (!path) return std::unexpected(path.error());
  out.path = std::move(*path);
  auto params = parseParams(args);
  if (!params) return std::unexpected(params.error());
  for (const Param& p : *params) {
    out.any = true;
    if (p.keyword == "NOTIFY" && p.hasValue) {
      out.notify = ascii::toUpper(p.value);
    } else if (p.keyword == "ORCPT" && p.hasValue) {
      out.orcpt = std::string(p.value);
    } else {
      return syntax("555 5.5.4", "Unsupported parameter " + p.keyword);
    }
  }
  return out;
}

Result<BdatArgs> parseBdatArgs(std::string_view args) {
  // bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] (RFC 3030 section 2)
  BdatArgs out;
  size_t sp = args.find(' ');
  auto n = parseDecimal(args.substr(0, sp));
  if (!n) return syntax("501 5.5.4", "Syntax: BDAT <size> [LAST]");
  out.size = *n;
  if (sp != std::string_view::npos) {
    if (!iequals(trimSpaces(args.substr(sp)), "LAST")) return syntax("501 5.5.4", "Syntax: BDAT <size> [LAST]");
    out.last = true;
  }
  return out;
}

}  // namespace mb::smtp
