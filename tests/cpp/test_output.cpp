// Output files (core/output.hpp): without a transaction a finished file is moved into place at
// once; inside one, only at commit(); a transaction that is not committed removes its temporaries
// and the directories it created, and leaves files that were there before alone.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "voxalign/core/error.hpp"
#include "voxalign/core/output.hpp"
#include "voxalign/transform/affine_io.hpp"

using namespace voxalign;
namespace fs = std::filesystem;

namespace {
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("vx_output_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
                                        "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
  size_t count() const { return size_t(std::distance(fs::directory_iterator(path), fs::directory_iterator())); }
};
} // namespace

TEST(Output, WithoutTransactionTheFileIsInPlaceAtOnce) {
  TempDir d;
  write_text_file(d / "a.txt", "hello\n");
  EXPECT_TRUE(fs::exists(d / "a.txt"));
  EXPECT_EQ(d.count(), 1u); // no temporary left
}

TEST(Output, TransactionRenamesOnlyAtCommit) {
  TempDir d;
  OutputTransaction tx;
  write_text_file(d / "a.txt", "a\n");
  create_output_directory(d / "rep/sub");
  write_text_file(d / "rep/sub/b.txt", "b\n");
  EXPECT_FALSE(fs::exists(d / "a.txt"));
  EXPECT_FALSE(fs::exists(d / "rep/sub/b.txt"));
  tx.commit();
  EXPECT_TRUE(fs::exists(d / "a.txt"));
  EXPECT_TRUE(fs::exists(d / "rep/sub/b.txt"));
  EXPECT_EQ(d.count(), 2u); // a.txt and rep: no temporary left
}

TEST(Output, UncommittedTransactionLeavesNothingNew) {
  TempDir d;
  write_text_file(d / "old.txt", "before\n");
  {
    OutputTransaction tx;
    write_text_file(d / "a.txt", "a\n");
    write_text_file(d / "old.txt", "after\n");
    create_output_directory(d / "rep/sub");
    write_text_file(d / "rep/sub/b.txt", "b\n");
  } // no commit: an exception went by
  EXPECT_EQ(d.count(), 1u);
  std::ifstream f(d / "old.txt");
  std::string line;
  std::getline(f, line);
  EXPECT_EQ(line, "before");
}

TEST(Output, CommitOntoADirectoryMovesNothing) {
  TempDir d;
  fs::create_directory(d / "taken.txt");
  OutputTransaction tx;
  write_text_file(d / "a.txt", "a\n");
  write_text_file(d / "taken.txt", "b\n");
  EXPECT_THROW(tx.commit(), IoError);
  EXPECT_FALSE(fs::exists(d / "a.txt"));
  EXPECT_EQ(d.count(), 1u); // only the directory that was there
}

TEST(Output, OneTransactionAtATime) {
  OutputTransaction tx;
  EXPECT_THROW(OutputTransaction second, Error);
  tx.commit();
}
