// Modified UTF-7 (RFC 3501 5.1.3): UTF-16 in base64 with ',' for '/', shifted
// by '&' ... '-'; printable ASCII other than '&' always stands for itself.
#include "protocols/imap/mutf7.h"

#include <cstdint>
#include <vector>

#include "protocols/common/ascii.h"

namespace mb::imap {
namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

int b64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == ',') return 63;
  return -1;
}

// Decodes one code point at s[i]; returns false on malformed input.
bool nextCodePoint(std::string_view s, size_t& i, uint32_t& cp) {
  auto b = static_cast<unsigned char>(s[i]);
  int len;
  if (b < 0x80) {
    cp = b;
    len = 1;
  } else if ((b & 0xE0) == 0xC0) {
    cp = b & 0x1F;
    len = 2;
  } else if ((b & 0xF0) == 0xE0) {
    cp = b & 0x0F;
    len = 3;
  } else if ((b & 0xF8) == 0xF0) {
    cp = b & 0x07;
    len = 4;
  } else {
    return false;
  }
  if (i + len > s.size()) return false;
  for (int k = 1; k < len; ++k) {
    auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xC0) != 0x80) return false;
    cp = (cp << 6) | (c & 0x3F);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
  i += len;
  return true;
}

void appendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

void flushShift(std::string& out, std::vector<uint16_t>& units) {
  if (units.empty()) return;
  out += '&';
  uint32_t bits = 0;
  int nbits = 0;
  for (uint16_t u : units) {
    bits = (bits << 16) | u;
    nbits += 16;
    while (nbits >= 6) {
      nbits -= 6;
      out += kB64[(bits >> nbits) & 0x3F];
    }
  }
  if (nbits > 0) out += kB64[(bits << (6 - nbits)) & 0x3F];
  out += '-';
  units.clear();
}

}  // namespace

bool isValidUtf8(std::string_view s) {
  size_t i = 0;
  uint32_t cp;
  while (i < s.size()) {
    if (!nextCodePoint(s, i, cp)) return false;
  }
  return true;
}

Result<std::string> mutf7Encode(std::string_view utf8) {
  std::string out;
  std::vector<uint16_t> units;
  size_t i = 0;
  while (i < utf8.size()) {
    uint32_t cp;
    if (!nextCodePoint(utf8, i, cp)) return fail(ErrorKind::Syntax, "Mailbox name is not valid UTF-8");
    if (cp >= 0x20 && cp <= 0x7E) {
      flushShift(out, units);
      out += static_cast<char>(cp);
      if (cp == '&') out += '-';
    } else if (cp < 0x10000) {
      units.push_back(static_cast<uint16_t>(cp));
    } else {
      cp -= 0x10000;
      units.push_back(static_cast<uint16_t>(0xD800 | (cp >> 10)));
      units.push_back(static_cast<uint16_t>(0xDC00 | (cp & 0x3FF)));
    }
  }
  flushShift(out, units);
  return out;
}

Result<std::string> mutf7Decode(std::string_view in) {
  std::string out;
  size_t i = 0;
  bool prevWasShift = false;
  while (i < in.size()) {
    auto c = static_cast<unsigned char>(in[i]);
    if (c < 0x20 || c > 0x7E) return fail(ErrorKind::Syntax, "Mailbox name is not valid modified UTF-7: 8-bit or control octet");
    if (c != '&') {
      out += static_cast<char>(c);
      ++i;
      prevWasShift = false;
      continue;
    }
    size_t end = in.find('-', i + 1);
    if (end == std::string_view::npos) return fail(ErrorKind::Syntax, "Mailbox name is not valid modified UTF-7: unterminated '&'");
    if (end == i + 1) {
      out += '&';
      i = end + 1;
      prevWasShift = false;
      continue;
    }
    // Two shifts in a row would have been one when encoded: reject so the
    // name has a single wire form.
    if (prevWasShift) return fail(ErrorKind::Syntax, "Mailbox name is not valid modified UTF-7: adjacent shift sequences");
    uint32_t bits = 0;
    int nbits = 0;
    uint32_t highSurrogate = 0;
    for (size_t k = i + 1; k < end; ++k) {
      int v = b64Value(in[k]);
      if (v < 0) return fail(ErrorKind::Syntax, "Mailbox name is not valid modified UTF-7: bad base64 character");
      bits = (bits << 6) | static_cast<uint32_t>(v);
      nbits += 6;
      if (nbits < 16) continue;
      nbits -= 16;
      uint32_t unit = (bits >> nbits) & 0xFFFF;
      bits &= (1u << nbits) - 1;
      if (highSurrogate) {
        if (unit < 0xDC00 || unit > 0xDFFF) return fail(ErrorKind::Syntax, "Mailbox name is not valid modified UTF-7: lone surrogate");
        appendUtf8(out, 0x10000 + ((highSurrogate - 0xD800) << 10) + (unit - 0xDC00));
        highSurrogate = 0;
      } else if (unit >= 0xD800 && unit <= 0xDBFF) {
        highSurrogate = unit;
      } else if (unit >= 0xDC00 && unit <= 0xDFFF) {
        return fail(ErrorKind::Syntax, "Mailbox name is not valid modified UTF-7: lone surrogate");
      } else if (unit >= 0x20 && unit <= 0x7E) {
        return fail(ErrorKind::Syntax, "Mailbox name is not valid modified UTF-7: printable ASCII must not be encoded");
      } else {
        appendUtf8(out, unit);
      }
    }
    if (highSurrogate) return fail(ErrorKind::Syntax, "Mailbox name is not valid modified UTF-7: lone surrogate");
    if (nbits >= 6 || bits != 0) return fail(ErrorKind::Syntax, "Mailbox name is not valid modified UTF-7: bad padding bits");
    i = end + 1;
    prevWasShift = true;
  }
  return out;
}

bool isInbox(std::string_view name) {
  static constexpr std::string_view kInbox = "inbox";
  if (name.size() != kInbox.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (ascii::lower(name[i]) != kInbox[i]) return false;
  }
  return true;
}

std::string normalizeInbox(std::string_view name, char separator) {
  if (isInbox(name)) return "INBOX";
  if (separator != '\0' && name.size() > 5 && name[5] == separator && isInbox(name.substr(0, 5))) {
    return "INBOX" + std::string(name.substr(5));
  }
  return std::string(name);
}

Result<std::string> mailboxFromWire(std::string_view wire, bool utf8Accept) {
  if (utf8Accept) {
    if (!isValidUtf8(wire)) return fail(ErrorKind::Syntax, "Mailbox name is not valid UTF-8");
    return std::string(wire);
  }
  return mutf7Decode(wire);
}

Result<std::string> mailboxToWire(std::string_view utf8, bool utf8Accept) {
  if (utf8Accept) {
    if (!isValidUtf8(utf8)) return fail(ErrorKind::Syntax, "Mailbox name is not valid UTF-8");
    return std::string(utf8);
  }
  return mutf7Encode(utf8);
}

}  // namespace mb::imap
