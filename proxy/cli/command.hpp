#pragma once
// A command of `pullgate COMMAND ...` as one row of main's table, which both runs
// the command named and lists them all for `pullgate help`.
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pullgate::proxy::cli {

// What a command does when named alone, without arguments.
enum class Bare { runs, shows_help };

struct Command {
  std::string_view name;
  std::string_view synopsis;  // what `pullgate help` shows after the name: "set|get|ls|rm"
  std::string_view summary;   // the rest of its line there
  const char* help;           // `pullgate NAME --help`
  int (*run)(const std::vector<std::string>& args);  // the arguments after the name; the exit status
  Bare bare = Bare::runs;     // shows_help: the help, exit status 2
};

// `pullgate help`: every command of the table, one line each.
std::string overview(std::span<const Command> table);

// `pullgate ARGS`: help and --version, else the command named by args[0]: its help
// when args[1] is --help or -h, else what it returns. An unknown command is a usage
// error (2).
int run_command_line(std::span<const Command> table, const std::vector<std::string>& args);

}  // namespace pullgate::proxy::cli
