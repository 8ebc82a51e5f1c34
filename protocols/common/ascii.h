// ASCII case rules for protocol text (IMAP keywords, SMTP verbs, MIME field
// and parameter names): locale-free on purpose, the same answer whatever the
// process locale says. One definition for the IMAP, SMTP and MIME code.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace mb::ascii {

namespace detail {
inline constexpr auto kLower = [] {
  std::array<char, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return t;
}();
}  // namespace detail

constexpr char lower(char c) { return detail::kLower[static_cast<unsigned char>(c)]; }
constexpr char upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

// Case-insensitive equality (inline: most calls compare names of other
// lengths and end at the size check).
constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

constexpr bool startsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

// Appended to `out` (no string of its own).
inline void appendLower(std::string& out, std::string_view s) {
  std::size_t from = out.size();
  out += s;
  for (std::size_t i = from; i < out.size(); ++i) out[i] = lower(out[i]);
}

inline std::string toLower(std::string_view s) {
  std::string out;
  appendLower(out, s);
  return out;
}

inline std::string toUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = upper(c);
  return out;
}

}  // namespace mb::ascii
