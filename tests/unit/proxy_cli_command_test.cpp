// The command table's dispatch (proxy/cli/command.hpp): `pullgate help` lists every
// row, `pullgate NAME --help` prints the row's help without running it, an unknown
// command is a one-line usage error with exit status 2.
#include <gtest/gtest.h>

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "proxy/cli/args.hpp"
#include "proxy/cli/command.hpp"

namespace pullgate::proxy::cli {
namespace {

std::vector<std::vector<std::string>> runs;  // what the fake commands were given

int run_fetch(const std::vector<std::string>& args) {
  runs.push_back(args);
  return 7;
}
int run_list(const std::vector<std::string>& args) {
  runs.push_back(args);
  return 0;
}

const Command table[] = {
    {"fetch", "set|get", "fetch things", "Usage: pullgate fetch set|get\n", run_fetch, Bare::shows_help},
    {"ls", "", "list things", "Usage: pullgate ls\n", run_list},
    {"a-rather-long-command", "WITH ARGUMENTS", "still readable", "Usage: long\n", run_list},
};

// std::cout and std::cerr while it lives.
struct Captured {
  std::ostringstream out, err;
  std::streambuf* old_out = std::cout.rdbuf(out.rdbuf());
  std::streambuf* old_err = std::cerr.rdbuf(err.rdbuf());
  ~Captured() {
    std::cout.rdbuf(old_out);
    std::cerr.rdbuf(old_err);
  }
};

struct Ran {
  int status;
  std::string out, err;
};

Ran run(const std::vector<std::string>& args) {
  Captured captured;
  int status = run_command_line(table, args);
  return {status, captured.out.str(), captured.err.str()};
}

class CommandTable : public ::testing::Test {
 protected:
  void SetUp() override { runs.clear(); }
};

TEST_F(CommandTable, HelpListsEveryRowInOrderWithSummariesInOneColumn) {
  for (const char* asked : {"help", "--help", "-h"}) {
    auto r = run({asked});
    EXPECT_EQ(r.status, 0) << asked;
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(r.out, overview(table));
  }
  EXPECT_EQ(overview(table), "pullgate " PULLGATE_VERSION " - a pull-through OCI registry mirror\n"
                             "\n"
                             "Usage:\n"
                             "  pullgate fetch set|get          fetch things\n"
                             "  pullgate ls                     list things\n"
                             "  pullgate a-rather-long-command WITH ARGUMENTS  still readable\n"
                             "  pullgate --version | --help\n"
                             "\n"
                             "Run `pullgate COMMAND --help` for the options of a command.\n");
  EXPECT_TRUE(runs.empty());
}

TEST_F(CommandTable, NoArgumentsPrintsTheOverviewAsAUsageError) {
  auto r = run({});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.out, overview(table));
}

TEST_F(CommandTable, Version) {
  auto r = run({"--version"});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "pullgate " PULLGATE_VERSION "\n");
}

TEST_F(CommandTable, UnknownCommandIsOneLineAndStatus2) {
  for (const char* unknown : {"frobnicate", "--no-such-flag", "Fetch", ""}) {
    auto r = run({unknown, "get"});
    EXPECT_EQ(r.status, 2) << unknown;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "pullgate: unknown command " + std::string(unknown) + " (see `pullgate --help`)\n");
  }
  EXPECT_TRUE(runs.empty());
}

TEST_F(CommandTable, CommandHelpIsTheRowsHelpAndRunsNothing) {
  for (const char* asked : {"--help", "-h"}) {
    auto r = run({"fetch", asked, "--whatever"});
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out, "Usage: pullgate fetch set|get\n");
    r = run({"ls", asked});
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out, "Usage: pullgate ls\n");
  }
  EXPECT_TRUE(runs.empty());
}

TEST_F(CommandTable, BareCommandShowsHelpOrRunsAsItsRowSays) {
  auto r = run({"fetch"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.out, "Usage: pullgate fetch set|get\n");
  EXPECT_TRUE(runs.empty());

  r = run({"ls"});
  EXPECT_EQ(r.status, 0);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_TRUE(runs[0].empty());
}

TEST_F(CommandTable, RunGetsTheArgumentsAfterTheNameAndItsStatusIsReturned) {
  auto r = run({"fetch", "get", "--help", "x"});  // a later --help is the command's own
  EXPECT_EQ(r.status, 7);
  EXPECT_EQ(r.out, "");
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0], (std::vector<std::string>{"get", "--help", "x"}));
}

TEST(CliUsage, NamesTheCommandsHelp) {
  Captured captured;
  EXPECT_EQ(usage("verdict ls takes no arguments", "verdict"), 2);
  EXPECT_EQ(usage("unknown command x", ""), 2);
  EXPECT_EQ(captured.err.str(),
            "pullgate: verdict ls takes no arguments (see `pullgate verdict --help`)\n"
            "pullgate: unknown command x (see `pullgate --help`)\n");
}

TEST(CliLimit, APositiveNumberOrTheDefault) {
  auto limit = [](std::vector<std::string> args) { return limit_option(parse_cli(args, 0, {"--limit"}), 1000); };
  EXPECT_EQ(limit({}), 1000u);
  EXPECT_EQ(limit({"--limit", "1"}), 1u);
  EXPECT_EQ(limit({"--limit", "250"}), 250u);
  for (const char* bad : {"0", "-1", "", "12x", "99999999999999999999999"})
    EXPECT_EQ(limit({"--limit", bad}), std::nullopt) << bad;
}

}  // namespace
}  // namespace pullgate::proxy::cli
