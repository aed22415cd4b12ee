#include "proxy/cli/command.hpp"

#include <algorithm>
#include <iostream>

#include "proxy/cli/args.hpp"

namespace pullgate::proxy::cli {

namespace {

bool is_help(const std::string& arg) { return arg == "--help" || arg == "-h"; }

}  // namespace

std::string overview(std::span<const Command> table) {
  std::string text = "pullgate " PULLGATE_VERSION " - a pull-through OCI registry mirror\n\nUsage:\n";
  for (const auto& command : table) {
    std::string line = "  pullgate " + std::string(command.name);
    if (!command.synopsis.empty()) line.append(" ").append(command.synopsis);
    // The summaries start in one column, as long as the lines leave room.
    line.resize(std::max<std::size_t>(34, line.size() + 2), ' ');
    text.append(line).append(command.summary).append("\n");
  }
  text += "  pullgate --version | --help\n\nRun `pullgate COMMAND --help` for the options of a command.\n";
  return text;
}

int run_command_line(std::span<const Command> table, const std::vector<std::string>& args) {
  if (args.empty() || is_help(args[0]) || args[0] == "help") {
    std::cout << overview(table);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::cout << "pullgate " << PULLGATE_VERSION << "\n";
    return 0;
  }
  auto command = std::find_if(table.begin(), table.end(), [&](const Command& c) { return c.name == args[0]; });
  if (command == table.end()) return usage("unknown command " + args[0], "");
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (!rest.empty() && is_help(rest[0])) {
    std::cout << command->help;
    return 0;
  }
  if (rest.empty() && command->bare == Bare::shows_help) {
    std::cout << command->help;
    return 2;
  }
  return command->run(rest);
}

}  // namespace pullgate::proxy::cli
