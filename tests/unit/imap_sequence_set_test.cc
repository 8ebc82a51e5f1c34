// Sequence sets (RFC 3501 9 sequence-set, RFC 5182 "$"): parsing,
// membership with '*', canonical resolution.
#include <gtest/gtest.h>

#include "protocols/imap/sequence_set.h"

namespace mb::imap {
namespace {

TEST(ImapSequenceSetTest, ParsesRangesAndStarRfc3501Section9) {
  auto s = SequenceSet::parse("2,4:7,9,12:*");
  ASSERT_TRUE(s);
  ASSERT_EQ(s->ranges().size(), 4u);
  EXPECT_EQ(s->ranges()[1], (SeqRange{4, 7}));
  EXPECT_EQ(s->ranges()[3].last, SeqRange::kStar);
  EXPECT_TRUE(s->usesStar());
  EXPECT_EQ(s->toString(), "2,4:7,9,12:*");
  EXPECT_TRUE(SequenceSet::parse("4294967295"));  // the largest nz-number
}

TEST(ImapSequenceSetTest, RejectsMalformedRfc3501Section9) {
  for (const char* bad : {"", "0", "1:0", "01", "1,", ",1", "1::2", "a", "1:2:3", "4294967296", "$,1", "**", "1 2"}) {
    EXPECT_FALSE(SequenceSet::parse(bad)) << bad;
  }
}

TEST(ImapSequenceSetTest, MembershipResolvesStarAgainstMaxRfc3501Section9) {
  auto s = *SequenceSet::parse("2,4:7,9,12:*");
  EXPECT_FALSE(s.contains(1, 15));
  EXPECT_TRUE(s.contains(2, 15));
  EXPECT_TRUE(s.contains(5, 15));
  EXPECT_FALSE(s.contains(8, 15));
  EXPECT_TRUE(s.contains(15, 15));
  EXPECT_FALSE(s.contains(11, 15));
  // "*:4" is the same as "4:*" (RFC 3501 9: seq-range order is free).
  auto r = *SequenceSet::parse("*:4");
  EXPECT_TRUE(r.contains(10, 10));
  EXPECT_TRUE(r.contains(4, 10));
  EXPECT_FALSE(r.contains(3, 10));
  // With max below the range start, "12:*" still covers max (6.4.8 note).
  EXPECT_TRUE(s.contains(10, 10));
}

TEST(ImapSequenceSetTest, ResolveSortsMergesAndClipsRfc3501Section9) {
  auto s = *SequenceSet::parse("9,1:3,2:5,7,20:*,100");
  EXPECT_EQ(s.resolve(50), (std::vector<SeqRange>{{1, 5}, {7, 7}, {9, 9}, {20, 50}}));
  EXPECT_EQ(SequenceSet::parse("5:*")->resolve(3), (std::vector<SeqRange>{{3, 3}}));
  EXPECT_TRUE(SequenceSet::parse("1:*")->resolve(0).empty());
  EXPECT_EQ(SequenceSet::parse("4294967295,1")->resolve(4294967295u),
            (std::vector<SeqRange>{{1, 1}, {4294967295u, 4294967295u}}));
}

TEST(ImapSequenceSetTest, SavedResultDollarRfc5182Section2_1) {
  auto s = SequenceSet::parse("$");
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->isSaved());
  EXPECT_FALSE(s->contains(1, 10));
  EXPECT_EQ(s->toString(), "$");
}

}  // namespace
}  // namespace mb::imap
