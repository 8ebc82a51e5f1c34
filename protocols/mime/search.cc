// SEARCH helpers: decoded header values, decoded body text, folding.
#include "protocols/mime/search.h"

#include <glib.h>

#include "protocols/mime/decode.h"
#include "protocols/mime/header.h"

namespace mb::mime {

namespace {

void collectText(std::string_view raw, const Part& p, std::string& out) {
  if (p.kind != PartKind::Leaf) {
    for (const auto& c : p.children) collectText(raw, c, out);
    return;
  }
  if (!p.mediaType.starts_with("text/") || p.bodyEnd > raw.size()) return;
  std::string_view body = raw.substr(p.headerEnd, p.bodyEnd - p.headerEnd);
  auto decoded = decodeTransfer(body, p.encoding);
  if (!out.empty()) out += '\n';
  out += toUtf8(decoded ? *decoded : std::string(body), p.charset);
}

}  // namespace

std::vector<std::string> headerValues(std::string_view headerBlock, std::string_view name) {
  std::vector<std::string> out;
  HeaderReader reader(headerBlock);
  HeaderField f;
  while (reader.next(f)) {
    if (f.hasColon && iequals(f.name, name)) out.push_back(decodeHeaderText(f.value));
  }
  return out;
}

std::string headerText(std::string_view headerBlock) {
  std::string out;
  HeaderReader reader(headerBlock);
  HeaderField f;
  while (reader.next(f)) {
    out.append(f.name);
    if (f.hasColon) out += ": " + decodeHeaderText(f.value);
    out += '\n';
  }
  return out;
}

std::string_view topHeader(std::string_view raw, const Part& root) {
  if (root.headerEnd > raw.size()) return {};
  return raw.substr(root.headerBegin, root.headerEnd - root.headerBegin);
}

std::string bodyText(std::string_view raw, const Part& root) {
  std::string out;
  collectText(raw, root, out);
  return out;
}

std::string foldForSearch(std::string_view text) {
  if (g_utf8_validate(text.data(), static_cast<gssize>(text.size()), nullptr)) {
    char* folded = g_utf8_casefold(text.data(), static_cast<gssize>(text.size()));
    std::string out(folded ? folded : "");
    g_free(folded);
    return out;
  }
  return ascii::toLower(text);
}

bool containsFolded(std::string_view haystack, std::string_view foldedNeedle) {
  if (foldedNeedle.empty()) return true;
  return foldForSearch(haystack).find(foldedNeedle) != std::string::npos;
}

std::string packFoldedValues(std::string_view headerBlock, std::string_view name) {
  std::string out;
  HeaderReader reader(headerBlock);
  HeaderField f;
  while (reader.next(f)) {
    if (!f.hasColon || !iequals(f.name, name)) continue;
    out += foldForSearch(decodeHeaderText(f.value));
    out += '\0';
  }
  return out;
}

bool packedContains(std::string_view packed, std::string_view foldedNeedle) {
  if (packed.empty()) return false;  // no value at all
  if (foldedNeedle.find('\0') == std::string_view::npos) return packed.find(foldedNeedle) != std::string_view::npos;
  while (!packed.empty()) {
    size_t end = packed.find('\0');  // every value ends in one
    if (packed.substr(0, end).find(foldedNeedle) != std::string_view::npos) return true;
    packed.remove_prefix(end + 1);
  }
  return false;
}

bool containsIgnoreCase(std::string_view haystack, std::string_view needle) {
  return containsFolded(haystack, foldForSearch(needle));
}

}  // namespace mb::mime
