// `pullgate pin add|ls|rm` (proxy/cli/pin.cpp) against a real LMDB environment: usage
// mistakes and bad pins are one line each, adding twice changes nothing, removing an
// absent pin or a config pin is refused with one line, ls shows both sources.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cache/meta_store.hpp"
#include "proxy/cli/commands.hpp"
#include "tests/unit/temp_dir.hpp"

namespace pullgate::proxy::cli {
namespace {

namespace fs = std::filesystem;

struct Ran {
  int status;
  std::string out, err;
};

class PinCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::make_temp_dir("pullgate-pin-cli");
    cache::MetaStore::open(dir_ / "lmdb", 16 << 20);
    std::ofstream(dir_ / "config.json") << R"({"cache": {"pin": ["docker.io/library/debian:stable"]}})";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // `pullgate pin ARGS --data DIR --config FILE` (ARGS alone without `on_store`), its
  // output captured.
  Ran pin(std::vector<std::string> args, bool on_store = true) {
    if (on_store) args.insert(args.end(), {"--data", dir_.string(), "--config", (dir_ / "config.json").string()});
    std::ostringstream out, err;
    auto* old_out = std::cout.rdbuf(out.rdbuf());
    auto* old_err = std::cerr.rdbuf(err.rdbuf());
    int status = run_pin(args);
    std::cout.rdbuf(old_out);
    std::cerr.rdbuf(old_err);
    return {status, out.str(), err.str()};
  }

  static bool one_line(const std::string& text) {
    return !text.empty() && text.back() == '\n' && text.find('\n') == text.size() - 1;
  }

  fs::path dir_;
};

TEST_F(PinCli, UsageMistakesAreOneLineAndStatus2) {
  const std::vector<std::vector<std::string>> mistakes = {
      {"add"}, {"rm"}, {"ls", "docker.io/x:y"}, {"frob"}, {"add", "--by"}, {"rm", "--note", "n", "up/a:b"},
      {"add", "--by", "", "up/a:b"}, {"ls", "--by", "me"}};
  for (const auto& args : mistakes) {
    auto ran = pin(args, /*on_store=*/false);
    EXPECT_EQ(ran.status, 2) << args[0] << " " << ran.err;
    EXPECT_TRUE(one_line(ran.err)) << ran.err;
    EXPECT_NE(ran.err.find("pullgate pin --help"), std::string::npos) << ran.err;
    EXPECT_EQ(ran.out, "");
  }
}

TEST_F(PinCli, ABadPinIsRefusedWithItsReasonAndNothingIsStored) {
  auto ran = pin({"add", "docker.io/ok:v1", "debian:stable"});
  EXPECT_EQ(ran.status, 1);
  EXPECT_EQ(ran.err,
            "pullgate: not a pin (UPSTREAM/REPOSITORY:TAG or UPSTREAM/REPOSITORY@DIGEST): \"debian:stable\": names no "
            "UPSTREAM/ before the repository\n");
  ran = pin({"add", "up/app:x\ny"});
  EXPECT_EQ(ran.status, 1);
  EXPECT_TRUE(one_line(ran.err)) << ran.err;
  EXPECT_NE(ran.err.find("the tag is not a valid tag"), std::string::npos) << ran.err;
  ran = pin({"rm", "up/Repo:x"});
  EXPECT_EQ(ran.status, 1);
  EXPECT_NE(ran.err.find("the repository is not a valid repository name"), std::string::npos) << ran.err;
  EXPECT_EQ(cache::MetaStore::open(dir_ / "lmdb", 0)->list_pins().size(), 0u);  // not even the good one
}

TEST_F(PinCli, AddIsIdempotentRmRefusesAbsentAndConfigPinsAndLsShowsBothSources) {
  auto ran = pin({"add", "--by", "alice", "--note", "release 4.2", "docker.io/team/app:v1"});
  EXPECT_EQ(ran.status, 0) << ran.err;
  EXPECT_EQ(ran.out, "pinned docker.io/team/app:v1\n");
  ran = pin({"add", "--by", "bob", "docker.io/team/app:v1", "docker.io/library/debian:stable"});
  EXPECT_EQ(ran.status, 0) << ran.err;
  EXPECT_NE(ran.out.find("docker.io/team/app:v1 is pinned already (by alice at "), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("docker.io/library/debian:stable is pinned by the config (cache.pin) already; unchanged\n"),
            std::string::npos)
      << ran.out;

  ran = pin({"ls", "--json"});
  EXPECT_EQ(ran.status, 0) << ran.err;
  std::istringstream lines(ran.out);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(lines, line);) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 2u) << ran.out;
  EXPECT_EQ(rows[0]["pin"], "docker.io/library/debian:stable");
  EXPECT_EQ(rows[0]["source"], "config");
  EXPECT_EQ(rows[0]["keeps"], nlohmann::json::array());  // nothing cached under that tag
  EXPECT_EQ(rows[1]["pin"], "docker.io/team/app:v1");
  EXPECT_EQ(rows[1]["source"], "store");
  EXPECT_EQ(rows[1]["by"], "alice");
  EXPECT_EQ(rows[1]["note"], "release 4.2");

  ran = pin({"rm", "docker.io/library/debian:stable"});
  EXPECT_EQ(ran.status, 1);
  EXPECT_EQ(ran.err,
            "pullgate: docker.io/library/debian:stable is pinned by the config (cache.pin): edit the config to unpin "
            "it\n");
  ran = pin({"rm", "docker.io/team/app:v1"});
  EXPECT_EQ(ran.status, 0) << ran.err;
  EXPECT_EQ(ran.out, "unpinned docker.io/team/app:v1\n");
  ran = pin({"rm", "docker.io/team/app:v1"});
  EXPECT_EQ(ran.status, 1);
  EXPECT_EQ(ran.err, "pullgate: docker.io/team/app:v1 is not pinned\n");
}

}  // namespace
}  // namespace pullgate::proxy::cli
