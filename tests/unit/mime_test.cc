// MIME analysis behaviour not covered by the Dovecot comparison: empty and
// garbage input, offsets, section syntax, BINARY, SEARCH text, serialization.
#include <gmime/gmime.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "protocols/common/base64.h"
#include "protocols/mime/address.h"
#include "protocols/mime/analysis.h"
#include "protocols/mime/decode.h"
#include "protocols/mime/header.h"
#include "protocols/mime/imap_quote.h"
#include "protocols/mime/search.h"
#include "protocols/mime/section.h"
#include "tests/unit/test_fixtures.h"

namespace mb::mime {
namespace {

std::string loadRaw(const std::string& name) { return test::readFixture("mime/" + name); }

MessageAnalysis analyze(std::string_view raw) {
  auto a = analyzeMessage(raw);
  EXPECT_TRUE(a.has_value());
  return a ? *a : MessageAnalysis{};
}

std::string fetch(const std::string& raw, const MessageAnalysis& a, std::string_view section) {
  auto r = resolveSection(a.root, section);
  return r ? extractSection(raw, *r) : std::string("<notfound>");
}

// Dovecot refuses to store an empty message, so this one is by hand from
// RFC 3501 section 7.4.2: all-NIL envelope, one empty text/plain body.
TEST(MimeAnalysis, EmptyMessage) {
  auto a = analyze("");
  EXPECT_EQ(a.envelope, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
  EXPECT_EQ(a.bodyStructure, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)");
  EXPECT_EQ(a.body, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
  EXPECT_EQ(a.quick.size, 0u);
  EXPECT_EQ(fetch("", a, "HEADER"), "");
  EXPECT_EQ(fetch("", a, "1"), "");
}

TEST(MimeAnalysis, GarbageIsOneTextPart) {
  std::string raw = "\x01\x02 not a header at all\r\n\xff\xfe binary";
  auto a = analyze(raw);
  EXPECT_EQ(a.root.kind, PartKind::Leaf);
  EXPECT_EQ(a.root.mediaType, "text/plain");
  EXPECT_EQ(a.root.bodyEnd, raw.size());
  EXPECT_TRUE(a.bodyStructure.starts_with("(\"text\" \"plain\""));
}

// Offsets are of the bytes given: a bare-LF message sliced as stored.
TEST(MimeAnalysis, BareLfOffsetsAreOfTheStoredBytes) {
  std::string raw = loadRaw("bare_lf.eml");
  ASSERT_EQ(raw.find('\r'), std::string::npos);
  auto a = analyze(raw);
  ASSERT_EQ(a.root.kind, PartKind::Multipart);
  ASSERT_EQ(a.root.children.size(), 2u);
  EXPECT_EQ(fetch(raw, a, "1"), "line one\nline two");
  EXPECT_EQ(fetch(raw, a, "1.MIME"), "Content-Type: text/plain\n\n");
  EXPECT_EQ(fetch(raw, a, "2"), "AAECAwQF");
  EXPECT_NE(a.bodyStructure.find("\"7bit\" 17 1"), std::string::npos) << a.bodyStructure;
  // HEADER.FIELDS always answers CRLF lines.
  EXPECT_EQ(fetch(raw, a, "HEADER.FIELDS (subject)"), "Subject: Bare LF\r\n\r\n");
  EXPECT_EQ(normalizeLineEndings("a\nb\r\nc\n"), "a\r\nb\r\nc\r\n");
}

// The strided scans against their byte-at-a-time meaning, at every offset and
// length around the 16-byte stride, over bytes dense in CR, LF and '-'.
TEST(MimeLineScan, MatchesByteLoops) {
  std::string bytes;
  uint32_t x = 12345;
  for (int i = 0; i < 600; ++i) {
    x = x * 1103515245 + 12345;
    bytes += "\r\n-ab"[(x >> 16) % 5];
  }
  bytes[300] = '\n';  // a run long enough for the 255-block lane sums
  bytes.insert(100, 5000, 'x');
  for (int i = 0; i < 2500; ++i) {  // dense across LineScan's 1 KiB strides too
    x = x * 1103515245 + 12345;
    bytes += "\r\n-ab"[(x >> 16) % 5];
  }
  for (size_t off = 0; off < 40; ++off) {
    for (size_t len : {size_t{0}, size_t{1}, size_t{2}, size_t{15}, size_t{16}, size_t{17}, size_t{18}, size_t{33},
                       size_t{200}, bytes.size() - off}) {
      std::string_view s = std::string_view(bytes).substr(off, len);
      size_t lf = 0;
      bool bare = false;
      for (size_t i = 0; i < s.size(); ++i) {
        lf += s[i] == '\n';
        bare = bare || (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'));
      }
      EXPECT_EQ(countLf(s), lf) << off << " " << len;
      LineScan scan(s);
      EXPECT_EQ(scan.lfCount(), lf) << off << " " << len;
      EXPECT_EQ(scan.hasBareLf(), bare) << off << " " << len;
      for (size_t pos = 0; pos <= s.size(); pos += 7) {
        size_t before = 0;
        for (size_t i = 0; i < pos; ++i) before += s[i] == '\n';
        EXPECT_EQ(scan.lfBefore(pos), before) << off << " " << len << " " << pos;
      }
      for (size_t pos = 0; pos < s.size(); pos += 7) {
        size_t want = s.size();
        for (size_t i = pos; i + 2 < s.size(); ++i)
          if (s[i] == '\n' && s[i + 1] == '-' && s[i + 2] == '-') {
            want = i + 1;
            break;
          }
        EXPECT_EQ(scan.nextDashLine(pos), want) << off << " " << len << " " << pos;
      }
    }
  }
  EXPECT_EQ(countLf(std::string(100000, '\n')), 100000u);
  EXPECT_EQ(LineScan(std::string(100000, '\n')).lfCount(), 100000u);
  EXPECT_FALSE(LineScan(std::string(40, 'a') + "\r\n" + std::string(40, 'b')).hasBareLf());
  EXPECT_TRUE(LineScan(std::string(40, 'a') + "\n").hasBareLf());
  EXPECT_TRUE(LineScan(std::string(4000, 'a') + "\n" + std::string(4000, 'b')).hasBareLf());
}

// Every vector path the CPU has against the scalar one: same LF table, total,
// bare-LF flag and dash lines. The scalar one is checked against byte loops.
void expectPathsAgree(std::string_view s, const std::string& what) {
  LineScan ref(s, detail::ScanPath::Scalar);
  size_t lf = 0, next = 0;
  bool bare = false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\n') continue;
    ++lf;
    bare = bare || i == 0 || s[i - 1] != '\r';
    if (i + 2 < s.size() && s[i + 1] == '-' && s[i + 2] == '-') {
      ASSERT_EQ(ref.nextDashLine(next), i + 1) << what;
      next = i + 1;
    }
  }
  ASSERT_EQ(ref.nextDashLine(next), s.size()) << what;
  ASSERT_EQ(ref.lfCount(), lf) << what;
  ASSERT_EQ(ref.hasBareLf(), bare) << what;
  for (detail::ScanPath path : detail::lineScanPaths()) {
    LineScan scan(s, path);
    ASSERT_EQ(scan.lfCount(), lf) << what << " path " << static_cast<int>(path);
    ASSERT_EQ(scan.hasBareLf(), bare) << what << " path " << static_cast<int>(path);
    ASSERT_TRUE(scan == ref) << what << " path " << static_cast<int>(path);
  }
}

// An exact-size heap copy, so a read past either end is one ASan sees.
void expectPathsAgreeExact(std::string_view s, const std::string& what) {
  std::vector<char> exact(s.begin(), s.end());
  expectPathsAgree(std::string_view(exact.data(), exact.size()), what);
}

TEST(MimeLineScan, PathsMatchScalar) {
  auto paths = detail::lineScanPaths();
  ASSERT_FALSE(paths.empty());
  EXPECT_EQ(paths.front(), detail::ScanPath::Scalar);
  const size_t k = LineScan::kStride;
  std::string bytes;
  uint32_t x = 987654321;
  for (size_t i = 0; i < 4 * k; ++i) {
    x = x * 1103515245 + 12345;
    bytes += "\r\n\n---aaaa"[(x >> 16) % 10];
  }
  // Every length up to three strides and a block, each from its own offset.
  for (size_t len = 0; len <= 3 * k + 70; ++len) {
    std::string_view s = std::string_view(bytes).substr(len % 67, len);
    expectPathsAgreeExact(s, "random len " + std::to_string(len));
    if (HasFatalFailure()) return;
  }
  // The widest path is the default one.
  EXPECT_TRUE(LineScan(bytes) == LineScan(bytes, paths.back()));

  // One LF, CR or dash pattern at each block and stride edge, over a plain
  // or a CRLF background, in buffers that end on and just past those edges.
  std::vector<size_t> edges;
  for (size_t base : {size_t{0}, k, 2 * k})
    for (size_t w : {size_t{0}, size_t{16}, size_t{32}, size_t{48}, size_t{64}, size_t{128}, k - 64, k - 32, k - 16})
      for (int d = -3; d <= 3; ++d)
        if (base + w + d < 3 * k + 80) edges.push_back(base + w + d);
  for (size_t n : {size_t{1}, size_t{2}, size_t{3}, size_t{16}, size_t{17}, size_t{33}, size_t{64}, size_t{65},
                   size_t{66}, size_t{67}, size_t{129}, k - 1, k, k + 1, k + 2, k + 65, 2 * k + 3, 3 * k,
                   3 * k + 66}) {
    for (const char* background : {"a", "\r\n", "-"}) {
      std::string base;
      while (base.size() < n) base += background;
      base.resize(n);
      for (std::string_view pat : {"\n", "\r\n", "\n-", "\n--", "\r\n--", "-", "\r", "\n\n", "\n--\n--"}) {
        std::vector<size_t> at = edges;
        for (size_t back = 1; back <= pat.size() + 1 && back <= n; ++back) at.push_back(n - back);
        for (size_t pos : at) {
          if (pos >= n) continue;
          std::string s = base;
          s.replace(pos, std::min(pat.size(), n - pos), pat.substr(0, n - pos));
          expectPathsAgreeExact(s, "len " + std::to_string(n) + " bg " + background + " at " + std::to_string(pos));
          if (HasFatalFailure()) return;
        }
      }
    }
  }

  // Uniform buffers: all LF (every one bare, a count past any lane limit),
  // all CRLF, all "\n--" lines.
  for (size_t n : {size_t{1}, size_t{63}, size_t{64}, size_t{65}, k - 1, k, k + 1, 300 * k + 5}) {
    expectPathsAgreeExact(std::string(n, '\n'), "all LF " + std::to_string(n));
    std::string crlf, dashes;
    while (crlf.size() < n) crlf += "\r\n";
    while (dashes.size() < n) dashes += "\n--";
    crlf.resize(n);
    dashes.resize(n);
    expectPathsAgreeExact(crlf, "all CRLF " + std::to_string(n));
    expectPathsAgreeExact(dashes, "all dash lines " + std::to_string(n));
    if (HasFatalFailure()) return;
  }

  // A view inside a larger buffer, with an LF just before it and "\n--" just
  // after: a path that read outside the view would count them.
  for (size_t len : {size_t{0}, size_t{1}, size_t{64}, size_t{65}, k, 2 * k + 37}) {
    std::string outer = "\n" + bytes.substr(100, len) + "\n--\n";
    expectPathsAgree(std::string_view(outer).substr(1, len), "view len " + std::to_string(len));
    if (HasFatalFailure()) return;
  }
}

TEST(MimeAnalysis, NestedOffsets) {
  std::string raw = loadRaw("nested_rfc822.eml");
  auto a = analyze(raw);
  ASSERT_EQ(a.root.children.size(), 2u);
  const Part& msg = a.root.children[1];
  EXPECT_EQ(msg.kind, PartKind::Message);
  ASSERT_EQ(msg.children.size(), 1u);
  const Part& inner = msg.children[0];
  EXPECT_EQ(inner.headerBegin, msg.headerEnd);
  EXPECT_EQ(inner.bodyEnd, msg.bodyEnd);
  EXPECT_EQ(inner.kind, PartKind::Multipart);
  EXPECT_EQ(inner.children.size(), 2u);
  EXPECT_EQ(fetch(raw, a, "2.1"), "plain body");
  EXPECT_EQ(fetch(raw, a, "2.2.MIME"), "Content-Type: text/html\r\n\r\n");
  EXPECT_EQ(fetch(raw, a, "2.TEXT").substr(0, 8), "--inner\r");
  EXPECT_EQ(fetch(raw, a, "1.TEXT"), "<notfound>");
  EXPECT_EQ(fetch(raw, a, "3"), "<notfound>");
}

// RFC 3501 section 6.4.5: the subset keeps the blank line; we also end the
// last field with CRLF when the header had none (Dovecot does not).
TEST(MimeSection, HeaderFieldsWithoutBlankLine) {
  std::string raw = loadRaw("no_blank_line.eml");
  auto a = analyze(raw);
  EXPECT_EQ(fetch(raw, a, "HEADER.FIELDS.NOT (From Subject)"), "To: b@example.com\r\n\r\n");
  EXPECT_EQ(fetch(raw, a, "HEADER.FIELDS (\"TO\")"), "To: b@example.com\r\n\r\n");
}

TEST(MimeSection, FoldedFieldsKeepTheirContinuation) {
  std::string block = "Subject: a\r\n b\r\nX-A: 1\r\nsubject: c\r\n\r\n";
  std::vector<std::string> names{"SUBJECT"};
  EXPECT_EQ(filterHeaderFields(block, names, false), "Subject: a\r\n b\r\nsubject: c\r\n\r\n");
  EXPECT_EQ(filterHeaderFields(block, names, true), "X-A: 1\r\n\r\n");
}

TEST(MimeSection, SpecSyntax) {
  EXPECT_TRUE(parseSectionSpec(""));
  EXPECT_TRUE(parseSectionSpec("1.2.3.MIME"));
  EXPECT_TRUE(parseSectionSpec("header.fields (a b)"));
  auto s = parseSectionSpec("4.HEADER.FIELDS.NOT (X-A \"Y\")");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->path, (std::vector<std::uint32_t>{4}));
  EXPECT_EQ(s->text, SectionText::HeaderFieldsNot);
  EXPECT_EQ(s->fields, (std::vector<std::string>{"X-A", "Y"}));
  for (const char* bad : {"0", "1.", "1..2", "MIME", "HEADER.FIELDS", "HEADER.FIELDS ()", "TEXTX", "1.FOO",
                          "99999999999"}) {
    auto r = parseSectionSpec(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::Syntax) << bad;
  }
}

TEST(MimeBinary, DecodesTransferEncoding) {
  std::string raw = loadRaw("mixed_attachment.eml");
  auto a = analyze(raw);
  auto bin = extractBinary(raw, a.root, "2");
  ASSERT_TRUE(bin);
  ASSERT_EQ(bin->size(), 768u);
  for (std::size_t i = 0; i < bin->size(); ++i) ASSERT_EQ(static_cast<unsigned char>((*bin)[i]), i % 256);
  auto text = extractBinary(raw, a.root, "1");
  ASSERT_TRUE(text);
  EXPECT_EQ(*text, "Please find the invoice attached.");
  std::string qp = loadRaw("alternative.eml");
  auto b = analyze(qp);
  auto dec = extractBinary(qp, b.root, "1");
  ASSERT_TRUE(dec);
  EXPECT_EQ(*dec, "Caf\xc3\xa9 numbers are up \xe2\x80\x94 see the HTML version.\r\nSecond line.");
}

TEST(MimeBinary, UnknownEncodingIsUnknownCte) {
  std::string raw = "Content-Transfer-Encoding: x-rot13\r\n\r\nuryyb";
  auto a = analyze(raw);
  auto r = extractBinary(raw, a.root, "1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().respCode, "UNKNOWN-CTE");
}

TEST(MimeSearch, QuickFieldsAreDecoded) {
  std::string raw = loadRaw("encoded_headers.eml");
  auto a = analyze(raw);
  // Decoded text keeps the blanks between words as written (folding removed).
  EXPECT_EQ(a.quick.subject, "Gr\xc3\xbc\xc3\x9f" "e aus   K\xc3\xb6ln\t \"quoted\" and tab");
  EXPECT_NE(a.quick.from.find("J\xc3\xbcrgen M\xc3\xbcller"), std::string::npos) << a.quick.from;
  EXPECT_EQ(a.quick.messageId, "<enc-5@example.de>");
  ASSERT_TRUE(a.quick.sentAt.has_value());
  EXPECT_EQ(*a.quick.sentAt, 1704563100);  // 2024-01-06T17:45:00Z
  EXPECT_TRUE(containsIgnoreCase(a.quick.subject, "K\xc3\x96LN"));
  EXPECT_TRUE(containsIgnoreCase(a.quick.from, "J\xc3\x9cRGEN"));
  EXPECT_FALSE(containsIgnoreCase(a.quick.subject, "Berlin"));
  auto cc = headerValues(topHeader(raw, a.root), "CC");
  ASSERT_EQ(cc.size(), 1u);
  EXPECT_NE(cc[0].find("uni@example.com"), std::string::npos);
}

TEST(MimeSearch, BodyTextIsDecodedToUtf8) {
  std::string raw = loadRaw("encoded_headers.eml");
  auto a = analyze(raw);
  // ISO-8859-1 quoted-printable becomes UTF-8.
  EXPECT_EQ(bodyText(raw, a.root), "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln.\r\n");
  std::string alt = loadRaw("alternative.eml");
  auto b = analyze(alt);
  std::string text = bodyText(alt, b.root);
  EXPECT_NE(text.find("Caf\xc3\xa9 numbers"), std::string::npos);
  EXPECT_NE(text.find("<b>up</b>"), std::string::npos);
  EXPECT_TRUE(containsIgnoreCase(text, "CAF\xc3\x89"));
}

TEST(MimeSearch, AttachmentsAndDates) {
  EXPECT_TRUE(analyze(loadRaw("mixed_attachment.eml")).quick.hasAttachments);
  EXPECT_TRUE(analyze(loadRaw("signed.eml")).quick.hasAttachments);
  EXPECT_FALSE(analyze(loadRaw("alternative.eml")).quick.hasAttachments);
  EXPECT_FALSE(analyze(loadRaw("simple_text.eml")).quick.hasAttachments);
  EXPECT_EQ(parseDate("Mon, 7 Feb 1994 21:52:25 -0800 (PST)"), 760686745);  // 1994-02-08T05:52:25Z
  EXPECT_FALSE(parseDate("not a date").has_value());
}

constexpr const char* kSerializedFixtures[] = {"simple_text.eml", "nested_rfc822.eml", "signed.eml",
                                               "digest.eml",      "empty.eml",         "params_quirks.eml"};

TEST(MimeSerialize, RoundTripsEveryFixture) {
  for (const char* name : kSerializedFixtures) {
    std::string raw = loadRaw(name);
    auto a = analyze(raw);
    std::string blob = serializeAnalysis(a);
    auto back = deserializeAnalysis(blob);
    ASSERT_TRUE(back) << name;
    EXPECT_EQ(back->envelope, a.envelope);
    EXPECT_EQ(back->bodyStructure, a.bodyStructure);
    EXPECT_EQ(back->body, a.body);
    EXPECT_EQ(back->quick.sentAt, a.quick.sentAt);
    EXPECT_EQ(back->quick.subject, a.quick.subject);
    EXPECT_EQ(serializeAnalysis(*back), blob) << name;
    EXPECT_EQ(fetch(raw, *back, "1"), fetch(raw, a, "1"));
  }
}

AnalysisColumns columnsOf(const MessageAnalysis& a) {
  const QuickFields& q = a.quick;
  return {a.envelope, a.bodyStructure, q.messageId, q.subject, q.from, q.to, q.cc, q.bcc, q.sentAt};
}

// The store keeps the lean form beside its columns; stores written before it
// hold MBMA1 blobs. Both must give back the analysis they were made from.
TEST(MimeSerialize, StoredFormWithColumnsAndOldFormRestoreTheSameAnalysis) {
  for (const char* name : kSerializedFixtures) {
    std::string raw = loadRaw(name);
    auto a = analyze(raw);
    std::string full = serializeAnalysis(a);
    std::string lean = serializeStoredAnalysis(a);
    EXPECT_EQ(lean.rfind("5:MBMA2,", 0), 0u) << name;
    if (!a.envelope.empty()) {
      EXPECT_EQ(lean.find(a.envelope), std::string::npos) << name;
    }
    EXPECT_LT(lean.size(), full.size()) << name;
    auto back = restoreAnalysis(lean, columnsOf(a));
    ASSERT_TRUE(back) << name;
    EXPECT_EQ(serializeAnalysis(*back), full) << name;
    EXPECT_EQ(fetch(raw, *back, "1"), fetch(raw, a, "1"));
    // An MBMA1 blob has everything: the row's columns are not consulted.
    auto old = restoreAnalysis(full, {});
    ASSERT_TRUE(old) << name;
    EXPECT_EQ(serializeAnalysis(*old), full) << name;
  }
}

TEST(MimeSerialize, DamagedStoredFormIsCorrupt) {
  auto a = analyze(loadRaw("nested_rfc822.eml"));
  std::string lean = serializeStoredAnalysis(a);
  for (std::size_t cut = 0; cut < lean.size(); cut += 5) {
    auto r = restoreAnalysis(lean.substr(0, cut), columnsOf(a));
    ASSERT_FALSE(r) << cut;
    EXPECT_EQ(r.error().kind, ErrorKind::Corrupt);
  }
  EXPECT_FALSE(restoreAnalysis("5:MBMA9,", columnsOf(a)));
}

TEST(MimeSerialize, DamageIsCorruptNotACrash) {
  std::string blob = serializeAnalysis(analyze(loadRaw("nested_rfc822.eml")));
  for (std::size_t cut = 0; cut < blob.size(); cut += 7) {
    auto r = deserializeAnalysis(blob.substr(0, cut));
    ASSERT_FALSE(r) << cut;
    EXPECT_EQ(r.error().kind, ErrorKind::Corrupt);
  }
  std::string flipped = blob;
  flipped[flipped.size() / 2] ^= 0x5a;
  (void)deserializeAnalysis(flipped);  // may or may not parse, must not crash
  EXPECT_FALSE(deserializeAnalysis("garbage"));
}

TEST(MimeAddress, GroupsAndMissingParts) {
  auto list = [](std::initializer_list<std::string_view> values) {
    std::string out;
    AddressListWriter writer(out);
    for (std::string_view v : values) writer.add(v);
    writer.finish();
    return out;
  };
  EXPECT_EQ(list({"G: a@b;, \"x y\" <c@d>, e"}),
            "((NIL NIL \"G\" NIL)(NIL NIL \"a\" \"b\")(NIL NIL NIL NIL)(\"x y\" NIL \"c\" \"d\")"
            "(NIL NIL \"e\" \"MISSING_DOMAIN\"))");
  EXPECT_EQ(list({""}), "NIL");
  EXPECT_EQ(list({}), "NIL");
  // Every occurrence of a field adds to one list.
  EXPECT_EQ(list({"a@b", "", "d@e (c)"}), "((NIL NIL \"a\" \"b\")(\"c\" NIL \"d\" \"e\"))");
}

// Address fields add up over repeats; Sender and Reply-To fall back to From
// only when they give no address at all (an empty Sender does, a lone ";"
// gives a MISSING entry and does not).
TEST(MimeEnvelope, RepeatsAndDefaults) {
  EXPECT_EQ(analyze("From: a@b\r\nSender:\r\nTo: c@d\r\nTo: \"E F\" <e@f>\r\nReply-To: g@h (Gee)\r\n"
                    "Subject:  two  spaces\t\r\n\r\nbody")
                .envelope,
            "(NIL {10}\r\ntwo spaces ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) ((\"Gee\" NIL \"g\" \"h\")) "
            "((NIL NIL \"c\" \"d\")(\"E F\" NIL \"e\" \"f\")) NIL NIL NIL NIL)");
  EXPECT_EQ(analyze("From: x@y\r\nSender: s@t\r\nReply-To: ;\r\nCc: G: ;\r\n\r\n").envelope,
            "(NIL NIL ((NIL NIL \"x\" \"y\")) ((NIL NIL \"s\" \"t\")) "
            "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) NIL ((NIL NIL \"G\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL)");
  // A folded value is unfolded before it is parsed; the SEARCH column keeps
  // the text (encoded words decoded).
  auto folded = analyze("From :\r\n (c) <m@n>\r\nSubject: =?UTF-8?B?Sm9zw6k=?=\r\n\r\n");
  EXPECT_EQ(folded.envelope,
            "(NIL \"=?UTF-8?B?Sm9zw6k=?=\" ((NIL NIL \"m\" \"n\")) ((NIL NIL \"m\" \"n\")) ((NIL NIL \"m\" \"n\")) "
            "NIL NIL NIL NIL NIL)");
  EXPECT_EQ(folded.quick.from, " (c) <m@n>");
  EXPECT_EQ(folded.quick.subject, "Jos\xc3\xa9");
}

// A field's name is on its first line: a colon on a continuation line does
// not make a field of a line without one.
TEST(MimeHeader, ColonOnTheFirstLineOnly) {
  HeaderReader r("X-No-Colon\r\n cont: x\r\nA: b\r\n c\r\nNoColonAtAll\r\n\r\nBody: no\r\n");
  HeaderField f;
  ASSERT_TRUE(r.next(f));
  EXPECT_FALSE(f.hasColon);
  EXPECT_EQ(f.name, "X-No-Colon");
  EXPECT_EQ(f.lines, "X-No-Colon\r\n cont: x\r\n");
  ASSERT_TRUE(r.next(f));
  EXPECT_TRUE(f.hasColon);
  EXPECT_EQ(f.name, "A");
  EXPECT_EQ(f.value, "b\r\n c");
  ASSERT_TRUE(r.next(f));
  EXPECT_FALSE(f.hasColon);
  EXPECT_EQ(f.name, "NoColonAtAll");
  EXPECT_FALSE(r.next(f));
}

TEST(MimeQuote, OneRuleForStrings) {
  std::string out;
  appendImapString(out, "a\"b\\c");
  EXPECT_EQ(out, "\"a\\\"b\\\\c\"");
  out.clear();
  appendImapString(out, "caf\xc3\xa9");
  EXPECT_EQ(out, "{5}\r\ncaf\xc3\xa9");
  out.clear();
  appendImapHumanString(out, "  a \t b  ");
  EXPECT_EQ(out, "{3}\r\na b");
  out.clear();
  appendImapHumanString(out, "plain");
  EXPECT_EQ(out, "\"plain\"");
  // Dovecot's choices: anything collapsed, trimmed or unsafe in a quoted
  // string makes a literal; nothing left is "".
  auto human = [](std::string_view v) {
    std::string o;
    appendImapHumanString(o, v);
    return o;
  };
  EXPECT_EQ(human(""), "\"\"");
  EXPECT_EQ(human(" \t\t"), "\"\"");
  EXPECT_EQ(human("x y z"), "\"x y z\"");
  EXPECT_EQ(human(" a"), "{1}\r\na");
  EXPECT_EQ(human("a "), "{1}\r\na");
  EXPECT_EQ(human("a  b"), "{3}\r\na b");
  EXPECT_EQ(human("a\tb"), "{3}\r\na b");
  EXPECT_EQ(human("a\r\n b"), "{3}\r\na b");
  EXPECT_EQ(human(std::string("a\0b", 3)), "{3}\r\na\x80" "b");
  EXPECT_EQ(human("q\"x"), "{3}\r\nq\"x");
  EXPECT_EQ(human("back\\"), "{5}\r\nback\\");
  EXPECT_EQ(human("caf\xc3\xa9"), "{5}\r\ncaf\xc3\xa9");
  EXPECT_EQ(human("  lead and trail  "), "{14}\r\nlead and trail");
}

// Header text without encoded words or 8-bit bytes is not given to GMime;
// what decodeHeaderText answers must still be what GMime would, byte for byte.
TEST(MimeDecode, PlainHeaderTextAsGMime) {
  ensureGMime();
  std::string alphabet = "\t\r\n   ==??";
  for (int c = 0x20; c < 0x7f; ++c) alphabet += static_cast<char>(c);
  uint32_t x = 2024;
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    x = x * 1103515245 + 12345;
    for (uint32_t len = (x >> 16) % 60; len > 0; --len) {
      x = x * 1103515245 + 12345;
      s += alphabet[(x >> 16) % alphabet.size()];
    }
    std::string unfolded = unfold(s);
    char* ref = g_mime_utils_header_decode_text(nullptr, unfolded.c_str());
    ASSERT_EQ(decodeHeaderText(s), std::string(ref)) << "[" << s << "]";
    g_free(ref);
  }
  EXPECT_EQ(decodeHeaderText("=?UTF-8?Q?caf=C3=A9?= x"), "caf\xc3\xa9 x");
  EXPECT_EQ(decodeHeaderText("a =\r\n ?b"), "a = ?b");
}

// Text with UTF-8 encoded words is decoded without GMime when every word is
// well formed and stands alone; over random mixes of good and broken words,
// charsets, encodings, separators and payloads (split characters, padding
// inside a run, NUL, bad hex, 8-bit bytes) the answer must still be what
// GMime gives, and enough of them must take the fast path to mean something.
TEST(MimeDecode, EncodedWordsAsGMime) {
  ensureGMime();
  uint32_t x = 4242;
  auto rnd = [&](uint32_t n) {
    x = x * 1103515245 + 12345;
    return (x >> 16) % n;
  };
  const std::string texts[] = {"a", "Jos\xc3\xa9", "\xce\xa0\xce\xb1", "\xe5\xb1\xb1\xe7\x94\xb0", "x y",
                               "_=?", std::string("n\0ul", 4), "\xc3", "\xa9", "\xff", "\r\n", "\t", "\x01",
                               "\xf0\x9f\x98\x80", "Ol\xc3\xa1 "};
  const char* charsets[] = {"UTF-8", "utf-8", "Utf-8", "UTF8", "ISO-8859-1", "UTF-8*en", "", "us-ascii"};
  const char* plains[] = {"plain", "<a@b.example>", ",", "\"q\"", "(c)", "a=b", "x?=", "=?", "=?UTF-8?B?",
                          "?=", "\xc3\xa9", "\x01", "<", "\"=?UTF-8?B?YQ==?=\""};
  const char* seps[] = {" ", " ", "  ", "\t", "\r\n ", "\r\n\t", "", ", ", " , "};
  auto encoded = [&]() {
    std::string bytes;
    for (uint32_t k = rnd(3) + 1; k > 0; --k) bytes += texts[rnd(4) ? rnd(5) : rnd(std::size(texts))];
    std::string word = "=?";
    word += charsets[rnd(6) == 0 ? rnd(std::size(charsets)) : rnd(3)];
    char enc = "BbQqX"[rnd(8) == 0 ? rnd(5) : rnd(4)];
    word += '?';
    word += enc;
    word += '?';
    if (enc == 'B' || enc == 'b') {
      std::string b64 = base64Encode(bytes);
      switch (rnd(24)) {
        case 0: b64 = b64.substr(0, b64.find('=')); break;       // padding dropped
        case 1: b64 = b64.substr(0, b64.size() - 1); break;      // truncated
        case 2: b64.insert(rnd(static_cast<uint32_t>(b64.size()) + 1), "!"); break;
        case 3: if (!b64.empty()) b64.back() = "ARQg"[rnd(4)]; break;  // other trailing bits
        case 4: b64.clear(); break;
        default: break;
      }
      word += b64;
    } else {
      static const char hex[] = "0123456789ABCDEFabcdef";
      for (unsigned char c : bytes) {
        if (c == ' ' && rnd(2)) word += '_';
        else if (c > 0x20 && c < 0x7f && c != '=' && c != '?' && c != '_' && rnd(4)) word += static_cast<char>(c);
        else {
          word += '=';
          word += hex[rnd(3) ? (c >> 4) : (c >> 4) + ((c >> 4) >= 10 ? 6 : 0)];
          word += hex[rnd(3) ? (c & 15) : (c & 15) + ((c & 15) >= 10 ? 6 : 0)];
        }
      }
      if (rnd(15) == 0) word += '=';
      if (rnd(15) == 0) word += "=4";
      if (rnd(20) == 0) word += "?x";
    }
    word += rnd(30) ? "?=" : "?";
    return word;
  };
  int fast = 0, tried = 0;
  for (int i = 0; i < 30000; ++i) {
    std::string s;
    if (rnd(3) == 0) s += seps[rnd(std::size(seps))];
    for (uint32_t k = rnd(5) + 1; k > 0; --k) {
      if (k != 0 && !s.empty()) s += seps[rnd(std::size(seps))];
      s += rnd(3) ? encoded() : plains[rnd(std::size(plains))];
    }
    if (rnd(4) == 0) s += seps[rnd(std::size(seps))];
    std::string unfolded = unfold(s);
    for (char& c : unfolded)
      if (c == '\0') c = ' ';
    char* ref = g_mime_utils_header_decode_text(nullptr, unfolded.c_str());
    std::string want = ref;
    g_free(ref);
    if (!g_utf8_validate(want.data(), static_cast<gssize>(want.size()), nullptr)) want = toUtf8(want, "");
    ASSERT_EQ(decodeHeaderText(s), want) << "[" << s << "]";
    std::string mine;
    ++tried;
    if (detail::decodeUtf8Words(unfold(s), mine)) {
      ++fast;
      ASSERT_EQ(mine, want) << "[" << s << "]";
    }
  }
  EXPECT_GT(fast, tried / 10);
  std::string out;
  EXPECT_TRUE(detail::decodeUtf8Words("=?UTF-8?B?Sm9zw6k=?= <j@x>, =?utf-8?q?a_=C3=A9?=  =?UTF-8?B?YQ==?=", out));
  EXPECT_EQ(out, "Jos\xc3\xa9 <j@x>, a \xc3\xa9" "a");
  // A padded base64 word followed by another: GMime reads the run as one
  // stream (and drops the second word), so it is left to GMime.
  EXPECT_FALSE(detail::decodeUtf8Words("=?UTF-8?B?YQ==?= =?UTF-8?B?Yg==?=", out));
}

// parseDate reads the strict RFC 5322 form itself and leaves the rest to
// GMime: over every month, leap days, zones and the edges of each field
// (some valid, some not) its answer must be GMime's.
TEST(MimeDecode, CanonicalDatesAsGMime) {
  ensureGMime();
  const char* days[] = {"", "Mon, ", "Tue, ", "Wed, ", "Thu, ", "Fri, ", "Sat, ", "Sun, ", "Xyz, "};
  const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "jan"};
  const char* zones[] = {"+0000", "-0000", "+0100", "-0800", "+0530", "+2359", "-2300", "+1400", "+2400",
                         "+0060", "+9999", "-1259", "GMT", "+0000 (UTC)", "+000"};
  uint32_t x = 77;
  auto rnd = [&](uint32_t n) {
    x = x * 1103515245 + 12345;
    return (x >> 16) % n;
  };
  int fast = 0;
  for (int i = 0; i < 20000; ++i) {
    unsigned year = (i % 5 == 0) ? 1960 + rnd(90) : 1999 + rnd(40);
    if (i % 97 == 0) year = 9999;
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s%s%u %s %04u %02u:%02u:%02u %s", days[rnd(9)], rnd(2) ? "0" : "",
                  1 + rnd(32), months[rnd(13)], year, rnd(25), rnd(61), rnd(61), zones[rnd(15)]);
    std::string s = buf;
    GDateTime* dt = g_mime_utils_header_decode_date(s.c_str());
    std::optional<int64_t> want;
    if (dt) {
      want = g_date_time_to_unix(dt);
      g_date_time_unref(dt);
    }
    ASSERT_EQ(parseDate(s), want) << s;
    fast += want.has_value();
  }
  EXPECT_GT(fast, 5000);
  EXPECT_EQ(parseDate("Sun, 01 Jan 2023 00:36:23 +0000"), 1672533383);
  EXPECT_EQ(parseDate("29 Feb 2024 23:59:59 -0130"), 1709256599);  // 2024-03-01T01:29:59Z
}

// Deep nesting must not recurse without bound.
TEST(MimeAnalysis, DeepNestingIsBounded) {
  std::string raw;
  for (int i = 0; i < 5000; ++i) raw += "Content-Type: message/rfc822\r\n\r\n";
  raw += "body";
  auto a = analyze(raw);
  EXPECT_FALSE(a.bodyStructure.empty());
  std::string mp;
  for (int i = 0; i < 3000; ++i) mp += "Content-Type: multipart/mixed; boundary=b" + std::to_string(i) + "\r\n\r\n--b" + std::to_string(i) + "\r\n";
  auto b = analyze(mp);
  EXPECT_TRUE(deserializeAnalysis(serializeAnalysis(b)).has_value());
}

}  // namespace
}  // namespace mb::mime
