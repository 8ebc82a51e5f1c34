// The MIME analysis must not change with its implementation: the stored
// serialization of every fixture and of a seeded set of generated messages
// (nested multiparts, boundaries that prefix each other, missing close
// boundaries, "--" lines that are no boundary, bare LF and mixed line ends,
// headers cut by a boundary, bodies across many KB, then random byte edits)
// is compared, by a 64-bit FNV-1a hash per case, with what the reference
// implementation produced (tests/fixtures/mime/golden/analyses.txt, written
// by the analyser as of commit "mime: golden analyses"). Both the analysis of
// the bytes as given and the store's form (line ends normalized) are pinned.
//
// Regenerate only when a change of result is intended:
//   MB_WRITE_GOLDEN=tests/fixtures/mime/golden/analyses.txt build/tests/unit/unit_mime
//     --gtest_filter=MimeGolden.*   (one command; it writes the file and fails, so it is never left on)
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "protocols/mime/analysis.h"
#include "protocols/mime/header.h"
#include "test_fixtures.h"

namespace mb::mime {
namespace {

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string hex(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// What the store keeps for these bytes: the stored bytes and their analysis.
std::string storedForm(std::string_view raw) {
  auto a = analyzeForStore(raw);
  if (!a) return "analysis failed";
  return hex(fnv1a(a->normalized ? std::string_view(*a->normalized) : raw)) + serializeAnalysis(a->analysis);
}

std::string asGiven(std::string_view raw) {
  auto a = analyzeMessage(raw);
  return a ? serializeAnalysis(*a) : "analysis failed";
}

// splitmix64: the same sequence on every platform and standard library.
struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
  bool chance(int percent) { return below(100) < static_cast<std::size_t>(percent); }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[below(v.size())];
  }
};

class Generator {
 public:
  explicit Generator(std::uint64_t seed) : rng_{seed}, eolMode_(rng_.below(5)) {}

  std::string message() {
    std::string out;
    header(out, "Return-Path", "<bounce@example.org>");
    header(out, "Received", "from mx.example.org (mx.example.org [192.0.2.1])" + eol() + "\tby mail.example; " + date());
    header(out, "Message-ID", "<" + std::to_string(rng_.next() % 100000) + "@gen.example>");
    header(out, "Date", date());
    header(out, "From", rng_.chance(30) ? "=?UTF-8?B?w4RyZ2Vy?= <a@example.com>" : "\"Ann Example\" <ann@example.com>");
    header(out, "To", "bob@example.net," + eol() + " \"Cy, Z\" <cy@example.org>, group: d@e.example;");
    if (rng_.chance(30)) header(out, "Cc", "=?ISO-8859-1?Q?J=F6rg?= <j@example.de>");
    header(out, "Subject", rng_.chance(30) ? "=?UTF-8?Q?caf=C3=A9?= and more" : "Plain subject " + word());
    header(out, "MIME-Version", "1.0");
    entity(out, 0, false);
    return mutate(std::move(out));
  }

 private:
  std::string eol() {
    switch (eolMode_) {
      case 0:
      case 1:
      case 2: return "\r\n";
      case 3: return "\n";
      default: return rng_.chance(70) ? "\r\n" : "\n";
    }
  }
  std::string date() { return rng_.chance(90) ? "Mon, 2 Jan 2023 10:00:0" + std::to_string(rng_.below(10)) + " +0100" : "garbage"; }
  std::string word() {
    static const std::vector<std::string> words = {"alpha", "beta", "--", "-", "gamma", "delta", "=_", "x", "Grüße"};
    return rng_.pick(words);
  }
  std::string boundary() {
    static const std::vector<std::string> bs = {"b", "b1", "b12", "=_part", "=_part_2", "xyz", "b-", "--b", "b b"};
    return rng_.pick(bs);
  }
  void header(std::string& out, std::string_view name, std::string_view value) {
    out += name;
    out += ": ";
    out += value;
    out += eol();
  }
  void textLines(std::string& out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      switch (rng_.below(12)) {
        case 0: out += "-- "; break;
        case 1: out += "--" + boundary(); break;  // maybe a boundary of this or another level
        case 2: break;                            // empty line
        case 3: out += "--"; break;
        default:
          for (std::size_t w = rng_.below(12); w > 0; --w) out += word() + " ";
      }
      out += eol();
    }
  }
  void bigBody(std::string& out) {
    // Base64-like lines over several KB, so counts cross any stride.
    std::size_t lines = 10 + rng_.below(300);
    for (std::size_t i = 0; i < lines; ++i) {
      for (int j = 0; j < 76; ++j) out += static_cast<char>('A' + (rng_.next() % 26));
      out += eol();
    }
  }

  void entity(std::string& out, int depth, bool digestMember) {
    std::size_t kind = depth >= 4 ? 0 : rng_.below(10);
    std::string b = boundary();
    if (kind >= 6) {
      static const std::vector<std::string> subs = {"mixed", "alternative", "digest", "related", "MIXED"};
      std::string sub = rng_.pick(subs);
      std::string quoted = rng_.chance(50) ? "\"" + b + "\"" : b;
      header(out, "Content-Type", "multipart/" + sub + ";" + eol() + " boundary=" + quoted);
      if (rng_.chance(20)) header(out, "Content-Disposition", "inline");
      if (!rng_.chance(10)) out += eol();
      if (rng_.chance(50)) textLines(out, rng_.below(4));  // preamble
      std::size_t n = rng_.below(4);
      for (std::size_t i = 0; i < n; ++i) {
        out += "--" + b + (rng_.chance(10) ? "  trailing" : "") + eol();
        entity(out, depth + 1, sub == "digest");
      }
      if (rng_.chance(80)) {
        out += "--" + b + "--" + eol();
        if (rng_.chance(50)) textLines(out, rng_.below(3));  // epilogue
      }
      return;
    }
    if (kind == 5) {
      if (!digestMember || rng_.chance(50)) header(out, "Content-Type", "message/rfc822");
      if (!rng_.chance(10)) out += eol();
      header(out, "From", "inner@example.com");
      header(out, "Subject", "inner " + word());
      entity(out, depth + 1, false);
      return;
    }
    bool attachment = kind == 4;
    if (attachment) {
      header(out, "Content-Type", "application/octet-stream; name=\"f" + std::to_string(rng_.below(9)) + ".bin\"");
      header(out, "Content-Transfer-Encoding", "base64");
      header(out, "Content-Disposition", "attachment;" + eol() + " filename*=UTF-8''%C3%A4.bin");
    } else if (kind == 3) {
      header(out, "Content-Type", "text/html; charset=\"utf-8\"");
      header(out, "Content-ID", "<c" + std::to_string(rng_.below(9)) + "@x>");
      header(out, "Content-Description", "desc");
    } else if (kind >= 1 || !digestMember) {
      if (rng_.chance(70)) header(out, "Content-Type", "text/plain; charset=iso-8859-1; format=flowed");
      if (rng_.chance(30)) header(out, "Content-Transfer-Encoding", "quoted-printable");
      if (rng_.chance(10)) header(out, "Content-Language", "en, de");
      if (rng_.chance(10)) header(out, "Content-Location", "http://example.com/x");
    }
    if (rng_.chance(5)) return;  // header only, cut by the next boundary
    out += eol();
    if (attachment || rng_.chance(10)) bigBody(out);
    else textLines(out, rng_.below(20));
  }

  std::string mutate(std::string s) {
    if (!rng_.chance(30) || s.empty()) return s;
    static const std::string bytes = "\r\n-\r\n- x";
    for (std::size_t n = 1 + rng_.below(6); n > 0 && !s.empty(); --n) {
      std::size_t at = rng_.below(s.size());
      switch (rng_.below(4)) {
        case 0: s.erase(at, 1); break;
        case 1: s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), bytes[rng_.below(bytes.size())]); break;
        case 2: s[at] = bytes[rng_.below(bytes.size())]; break;
        default: s.resize(at); break;
      }
    }
    return s;
  }

  Rng rng_;
  std::size_t eolMode_;
};

constexpr int kGenerated = 400;

std::map<std::string, std::string> cases() {
  std::map<std::string, std::string> out;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(std::string(MB_FIXTURE_DIR) + "/mime"))
    if (e.path().extension() == ".eml") files.push_back(e.path());
  for (const auto& f : files) out["fixture-" + f.filename().string()] = test::readFixture("mime/" + f.filename().string());
  for (int i = 0; i < kGenerated; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "gen-%03d", i);
    out[name] = Generator(static_cast<std::uint64_t>(i) * 7919 + 1).message();
  }
  return out;
}

TEST(MimeGolden, AnalysesUnchanged) {
  auto all = cases();
  ASSERT_GE(all.size(), static_cast<std::size_t>(kGenerated + 20));
  std::ostringstream current;
  for (const auto& [name, raw] : all)
    current << name << ' ' << raw.size() << ' ' << hex(fnv1a(asGiven(raw))) << ' ' << hex(fnv1a(storedForm(raw)))
            << '\n';
  if (const char* path = std::getenv("MB_WRITE_GOLDEN")) {
    std::ofstream(path, std::ios::binary) << current.str();
    FAIL() << "wrote " << path << "; nothing was compared";
  }
  std::istringstream want(test::readFixture("mime/golden/analyses.txt"));
  std::istringstream got(current.str());
  std::string w, g;
  int lines = 0;
  while (std::getline(want, w)) {
    ASSERT_TRUE(std::getline(got, g)) << "missing case for golden line " << w;
    ++lines;
    if (w == g) continue;
    std::string name = w.substr(0, w.find(' '));
    auto it = all.find(name);
    ADD_FAILURE() << "golden: " << w << "\n   now: " << g << "\nas given: "
                  << (it == all.end() ? "?" : asGiven(it->second));
  }
  EXPECT_FALSE(std::getline(got, g)) << "case not in the golden file: " << g;
  EXPECT_EQ(lines, static_cast<int>(all.size()));
}

// The generator really produces what the golden cases claim to cover.
TEST(MimeGolden, GeneratedSetCoversTheHardCases) {
  int bare = 0, crlf = 0, nested = 0, big = 0, message = 0;
  for (int i = 0; i < kGenerated; ++i) {
    std::string raw = Generator(static_cast<std::uint64_t>(i) * 7919 + 1).message();
    if (LineScan(raw).hasBareLf()) ++bare;
    else ++crlf;
    if (raw.size() > 8192) ++big;
    auto a = analyzeMessage(raw);
    ASSERT_TRUE(a);
    if (a->root.kind == PartKind::Multipart &&
        std::any_of(a->root.children.begin(), a->root.children.end(),
                    [](const Part& p) { return !p.children.empty(); }))
      ++nested;
    if (a->bodyStructure.find("\"message\" \"rfc822\"") != std::string::npos) ++message;
  }
  EXPECT_GT(bare, 40);
  EXPECT_GT(crlf, 150);
  EXPECT_GT(nested, 20);
  EXPECT_GT(big, 20);
  EXPECT_GT(message, 20);
}

}  // namespace
}  // namespace mb::mime
