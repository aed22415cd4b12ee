#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "proxy/admin/admin.hpp"
#include "temp_dir.hpp"

namespace pullgate::proxy {
namespace {

class TokenFile : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing_support::make_temp_dir("pullgate-token"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static unsigned mode_of(const std::filesystem::path& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }
  static std::string first_line(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
  }
  void write_file(const std::filesystem::path& path, const std::string& text, mode_t mode) {
    std::ofstream(path) << text;
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
  }

  std::filesystem::path dir_;
};

TEST_F(TokenFile, CreatedPrivateWhateverTheUmask) {
  auto old = ::umask(0);
  std::string token;
  try {
    token = load_or_create_token(dir_ / "sub" / "admin.token");
  } catch (...) {
    ::umask(old);
    throw;
  }
  ::umask(old);
  EXPECT_EQ(token.size(), 64u);
  EXPECT_EQ(mode_of(dir_ / "sub" / "admin.token"), 0600u);
  EXPECT_EQ(first_line(dir_ / "sub" / "admin.token"), token);
  EXPECT_EQ(load_or_create_token(dir_ / "sub" / "admin.token"), token);
  // Only the token file is left: the temporary it was written under is gone.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_ / "sub"), {}), 1);
}

TEST_F(TokenFile, ExistingTokenIsReadTrimmed) {
  write_file(dir_ / "admin.token", "0123456789abcdef-given \r\nsecond line\n", 0600);
  EXPECT_EQ(load_or_create_token(dir_ / "admin.token"), "0123456789abcdef-given");
  write_file(dir_ / "short.token", "short\n", 0600);
  EXPECT_THROW(load_or_create_token(dir_ / "short.token"), std::runtime_error);
}

TEST_F(TokenFile, OursReadableByOthersIsRefused) {
  for (mode_t mode : {0644, 0640, 0604, 0620}) {
    write_file(dir_ / "admin.token", "0123456789abcdef0123\n", mode);
    try {
      load_or_create_token(dir_ / "admin.token");
      ADD_FAILURE() << "mode " << std::oct << mode << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("chmod 600"), std::string::npos) << e.what();
    }
  }
  write_file(dir_ / "admin.token", "0123456789abcdef0123\n", 0400);
  EXPECT_EQ(load_or_create_token(dir_ / "admin.token"), "0123456789abcdef0123");
}

// O_EXCL never follows a link: a planted symlink cannot make us write the token
// wherever it points.
TEST_F(TokenFile, NeverWrittenThroughASymlink) {
  ASSERT_EQ(::symlink((dir_ / "elsewhere").c_str(), (dir_ / "admin.token").c_str()), 0);
  EXPECT_THROW(load_or_create_token(dir_ / "admin.token"), std::runtime_error);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "elsewhere"));
}

TEST_F(TokenFile, NotARegularFileIsRefused) {
  std::filesystem::create_directory(dir_ / "admin.token");
  EXPECT_THROW(load_or_create_token(dir_ / "admin.token"), std::runtime_error);
}

// Processes creating the file at the same moment all end up with the one token
// the file holds.
TEST_F(TokenFile, ConcurrentCreatorsAgreeOnOneToken) {
  constexpr int creators = 8;
  int start[2];
  ASSERT_EQ(::pipe(start), 0);
  std::vector<pid_t> children;
  std::vector<int> results;
  for (int i = 0; i < creators; ++i) {
    int result[2];
    ASSERT_EQ(::pipe(result), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(start[1]);
      ::close(result[0]);
      char go;
      if (::read(start[0], &go, 1) != 0) ::_exit(2);  // returns 0 when the parent closes: all start at once
      try {
        std::string token = load_or_create_token(dir_ / "admin.token");
        ::_exit(::write(result[1], token.data(), token.size()) == static_cast<ssize_t>(token.size()) ? 0 : 3);
      } catch (...) {
        ::_exit(4);
      }
    }
    ::close(result[1]);
    children.push_back(pid);
    results.push_back(result[0]);
  }
  ::close(start[0]);
  ::close(start[1]);
  std::set<std::string> tokens;
  for (int i = 0; i < creators; ++i) {
    std::string token;
    char buffer[128];
    for (ssize_t n; (n = ::read(results[i], buffer, sizeof buffer)) > 0;) token.append(buffer, n);
    ::close(results[i]);
    int status = 0;
    ASSERT_EQ(::waitpid(children[i], &status, 0), children[i]);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "creator " << i << " status " << status;
    tokens.insert(token);
  }
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_EQ(*tokens.begin(), first_line(dir_ / "admin.token"));
  EXPECT_EQ(mode_of(dir_ / "admin.token"), 0600u);
}

}  // namespace
}  // namespace pullgate::proxy
