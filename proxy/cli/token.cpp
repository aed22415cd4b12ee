// `pullgate token new|rm|ls`: the tokens file of client authentication
// (clients.tokens_file): one line per identity with the SHA-256 of its token.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "policy/access.hpp"
#include "proxy/access/tokens.hpp"
#include "proxy/cli/args.hpp"
#include "proxy/cli/commands.hpp"

namespace pullgate::proxy::cli {

const char token_help[] = R"(Usage: pullgate token new NAME (--file FILE | --config CONFIG)
       pullgate token rm NAME (--file FILE | --config CONFIG)
       pullgate token ls (--file FILE | --config CONFIG)

Client tokens for the registry listener (clients.tokens_file; README, "Who may pull").
The file holds one line per identity, NAME sha256:<hex of the token's SHA-256>;
tokens themselves are stored nowhere. With a CONFIG that says fleet.tokens "etcd",
the tokens are the fleet's: one etcd key per NAME (<prefix>tokens/NAME) holding the
hash, which every replica's watch brings; the command then needs the config's data
directory, as `pullgate policy push` does.

  new NAME   makes a random 256-bit token for NAME, appends its hash to the file
             (created with mode 0600 when missing) and prints the token once, on
             stdout. Clients send it as the password of NAME (skopeo --creds
             NAME:TOKEN, docker login) or as "Authorization: Bearer TOKEN".
  rm NAME    removes NAME's line.
  ls         the names in the file.

A running server reads the file again on SIGHUP (or POST /v1/policy/reload); the
fleet's tokens are in force on every replica as soon as its watch brings them.
NAME: 1 to 128 letters, digits, '.', '_', '-' or '@'; not "anonymous".
)";

namespace {

std::optional<std::string> read_text(const std::string& path, bool missing_ok) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (missing_ok && !std::filesystem::exists(path)) return std::string();
    std::cerr << "pullgate: cannot read " << path << "\n";
    return std::nullopt;
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<access::TokenFile> parse(const std::string& path, const std::string& text) {
  auto parsed = access::parse_token_file(text);
  if (auto* error = std::get_if<std::string>(&parsed)) {
    std::cerr << "pullgate: tokens file " << path << ": " << *error << "\n";
    return std::nullopt;
  }
  return std::get<access::TokenFile>(std::move(parsed));
}

int add(const std::string& path, const std::string& name) {
  auto text = read_text(path, true);
  if (!text) return 1;
  auto file = parse(path, *text);
  if (!file) return 1;
  if (file->has(name)) {
    std::cerr << "pullgate: " << path << " already has a token for " << name << " (pullgate token rm " << name
              << " first)\n";
    return 1;
  }
  const auto token = access::new_token();
  std::string line = access::token_line(name, token);
  if (!text->empty() && text->back() != '\n') line.insert(0, "\n");
  // One write(2) with O_APPEND: a server reading the file meanwhile sees the line
  // whole or not at all.
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::cerr << "pullgate: cannot write " << path << ": " << std::strerror(errno) << "\n";
    return 1;
  }
  const auto written = ::write(fd, line.data(), line.size());
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (written != static_cast<ssize_t>(line.size()) || !synced) {
    std::cerr << "pullgate: cannot write " << path << "\n";
    return 1;
  }
  std::cout << token << "\n";
  std::cerr << "token for " << name << " added to " << path
            << "; it is shown only now. A running server takes it on SIGHUP.\n";
  return 0;
}

int remove(const std::string& path, const std::string& name) {
  auto text = read_text(path, false);
  if (!text) return 1;
  auto file = parse(path, *text);
  if (!file) return 1;
  if (!file->has(name)) {
    std::cerr << "pullgate: " << path << " has no token for " << name << "\n";
    return 1;
  }
  std::string kept;
  std::istringstream lines(*text);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string first;
    fields >> first;
    if (first != name) kept += line + "\n";
  }
  // Written beside it and renamed over it: the server never reads half a file.
  const std::string temp = path + ".tmp";
  struct stat st {};
  const mode_t mode = ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0600;
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0 || ::write(fd, kept.data(), kept.size()) != static_cast<ssize_t>(kept.size()) || ::fsync(fd) != 0 ||
      ::close(fd) != 0 || ::rename(temp.c_str(), path.c_str()) != 0) {
    std::cerr << "pullgate: cannot write " << path << ": " << std::strerror(errno) << "\n";
    if (fd >= 0) ::unlink(temp.c_str());
    return 1;
  }
  std::cerr << "token for " << name << " removed from " << path << "\n";
  return 0;
}

// The same three commands on the fleet's tokens (fleet.tokens "etcd").
int in_fleet(const std::string& command, const Config& config, const std::string& name) {
  auto meta = open_existing_store(config);
  if (!meta) return 1;
  auto writes = cli_writes(config, *meta);
  if (!writes) return 1;
  auto& fleet = *writes->fleet;
  if (command == "ls") {
    for (const auto& entry : fleet.tokens()) std::cout << entry.first << "\n";
    return 0;
  }
  if (command == "rm") {
    if (!fleet.remove_token(name)) {
      std::cerr << "pullgate: the fleet store (etcd) has no token for " << name << "\n";
      return 1;
    }
    std::cerr << "token for " << name << " removed from the fleet store (etcd); replicas refuse it as their watch "
                 "brings the removal\n";
    return 0;
  }
  const auto token = access::new_token();
  if (!fleet.add_token(name, access::token_hash_text(access::hash_token(token)))) {
    std::cerr << "pullgate: the fleet store (etcd) already has a token for " << name << " (pullgate token rm " << name
              << " first)\n";
    return 1;
  }
  std::cout << token << "\n";
  std::cerr << "token for " << name << " added to the fleet store (etcd); it is shown only now. Replicas take it as "
               "their watch brings it.\n";
  return 0;
}

}  // namespace

int run_token(const std::vector<std::string>& args) {
  const std::string command = args[0];
  if (command != "new" && command != "rm" && command != "ls") return usage("unknown token command " + command, "token");
  auto cli = parse_cli(args, 1, {"--file", "--config"});
  if (cli.help) {
    std::cout << token_help;
    return 0;
  }
  if (!cli.error.empty()) return usage(cli.error, "token");
  if (command == "ls" ? !cli.positional.empty() : cli.positional.size() != 1)
    return usage(command == "ls" ? "token ls takes no NAME" : "token " + command + " takes one NAME", "token");
  const auto* file = cli.get("--file");
  const auto* config_file = cli.get("--config");
  if (!file == !config_file) return usage("name the tokens file with --file FILE or --config CONFIG", "token");
  if (command != "ls" && !policy::is_identity_name(cli.positional[0]))
    return usage("\"" + cli.positional[0] + "\" is not an identity name (1 to 128 letters, digits, '.', '_', '-' or "
                 "'@'; not \"anonymous\")", "token");
  std::string path;
  if (file) {
    path = *file;
  } else {
    auto config = cli_config(cli);
    if (!config) return 1;
    if (config->fleet.tokens_in_etcd()) {
      try {
        return in_fleet(command, *config, command == "ls" ? std::string() : cli.positional[0]);
      } catch (const std::exception& e) {
        std::cerr << "pullgate: " << e.what() << "\n";
        return 1;
      }
    }
    if (config->clients.tokens_file.empty()) {
      std::cerr << "pullgate: " << *config_file << " names no clients.tokens_file and no fleet.tokens \"etcd\"\n";
      return 1;
    }
    path = config->clients.tokens_file;
  }
  try {
    if (command == "ls") {
      auto text = read_text(path, false);
      if (!text) return 1;
      auto parsed = parse(path, *text);
      if (!parsed) return 1;
      for (const auto& entry : parsed->entries()) std::cout << entry.name << "\n";
      return 0;
    }
    const auto& name = cli.positional[0];
    return command == "new" ? add(path, name) : remove(path, name);
  } catch (const std::exception& e) {
    std::cerr << "pullgate: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace pullgate::proxy::cli
