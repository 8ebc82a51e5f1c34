// Response writer: every string is sent as an atom, quoted string or literal
// exactly when RFC 3501 4.3 / 9 allows it, so clients parse what we mean.
#include <gtest/gtest.h>

#include "protocols/imap/writer.h"

namespace mb::imap {
namespace {

using namespace std::string_literals;

TEST(ImapWriterTest, AstringFormsRfc3501Section9) {
  EXPECT_EQ(astringForm("INBOX", false), StringForm::Atom);
  EXPECT_EQ(astringForm("a]b", false), StringForm::Atom);  // ASTRING-CHAR includes ']'
  EXPECT_EQ(astringForm("", false), StringForm::Quoted);
  EXPECT_EQ(astringForm("two words", false), StringForm::Quoted);
  EXPECT_EQ(astringForm("NIL", false), StringForm::Quoted);
  EXPECT_EQ(astringForm("nil", false), StringForm::Quoted);
  EXPECT_EQ(astringForm("a%b", false), StringForm::Quoted);  // list-wildcards
  EXPECT_EQ(astringForm("a*", false), StringForm::Quoted);
  EXPECT_EQ(astringForm("a(b", false), StringForm::Quoted);
  EXPECT_EQ(astringForm("a{b", false), StringForm::Quoted);
  EXPECT_EQ(astringForm("say \"hi\"", false), StringForm::Quoted);
  EXPECT_EQ(astringForm("line\r\nbreak", false), StringForm::Literal);
  EXPECT_EQ(astringForm("caf\xC3\xA9", false), StringForm::Literal);
  EXPECT_EQ(astringForm("caf\xC3\xA9", true), StringForm::Quoted);  // RFC 6855 3
  EXPECT_EQ(astringForm("\xC3(", true), StringForm::Literal);        // not UTF-8
  EXPECT_EQ(astringForm("a\0b"s, false), StringForm::Literal8);      // RFC 3516
}

TEST(ImapWriterTest, QuotedEscapesQuoteAndBackslashRfc3501Section4_3) {
  ResponseWriter w;
  w.untagged().atom("LIST").atomList({"\\HasNoChildren"}).quoted("/").astring("say \"hi\" \\o/").end();
  EXPECT_EQ(w.take(), "* LIST (\\HasNoChildren) \"/\" \"say \\\"hi\\\" \\\\o/\"\r\n");
}

TEST(ImapWriterTest, StringWithCrLfOrEightBitBecomesLiteralRfc3501Section4_3) {
  ResponseWriter w;
  w.untagged().number(12).atom("FETCH").beginList().atom("BODY[]").string("a\r\nb").endList().end();
  EXPECT_EQ(w.take(), "* 12 FETCH (BODY[] {4}\r\na\r\nb)\r\n");
  w.untagged().atom("X").string("caf\xC3\xA9").end();
  EXPECT_EQ(w.take(), "* X {5}\r\ncaf\xC3\xA9\r\n");
  ResponseWriter u(true);
  u.untagged().atom("X").string("caf\xC3\xA9").end();
  EXPECT_EQ(u.take(), "* X \"caf\xC3\xA9\"\r\n");
  w.untagged().atom("X").string("a\0b"s).end();
  EXPECT_EQ(w.take(), "* X ~{3}\r\na\0b\r\n"s);
}

TEST(ImapWriterTest, NilAndNstringRfc3501Section4_5) {
  ResponseWriter w;
  w.untagged().atom("ID").beginList().string("name").nstring("x").string("vendor").nstring(std::nullopt).endList().end();
  EXPECT_EQ(w.take(), "* ID (\"name\" \"x\" \"vendor\" NIL)\r\n");
  w.untagged().atom("X").nstring("NIL").end();
  EXPECT_EQ(w.take(), "* X \"NIL\"\r\n");  // the string "NIL" is not nil
}

TEST(ImapWriterTest, NestedListsSpacingRfc3501Section9) {
  ResponseWriter w;
  w.untagged().atom("X").beginList().beginList().number(1).number(2).endList().beginList().endList().nil().endList().end();
  EXPECT_EQ(w.take(), "* X ((1 2) () NIL)\r\n");
}

TEST(ImapWriterTest, StatusLinesRfc3501Section7_1) {
  ResponseWriter w;
  w.tagged("a1", "OK", "READ-WRITE", "SELECT completed");
  w.tagged("a2", "BAD", "", "bad\r\nline");
  w.untaggedStatus("NO", "TOOBIG", "");
  w.continuation("Ready for literal data");
  EXPECT_EQ(w.take(),
            "a1 OK [READ-WRITE] SELECT completed\r\n"
            "a2 BAD bad  line\r\n"
            "* NO [TOOBIG] done\r\n"
            "+ Ready for literal data\r\n");
}

TEST(ImapWriterTest, LongStringsGoAsLiterals) {
  std::string s(2000, 'a');
  s[0] = ' ';
  EXPECT_EQ(stringForm(s, false), StringForm::Literal);
  EXPECT_EQ(stringForm("short text", false), StringForm::Quoted);
}

}  // namespace
}  // namespace mb::imap
