#pragma once
// Real etcd members for tests: Debian's /usr/bin/etcd on free loopback ports, each
// with its data directory under a temp directory, killed when the test ends.
// etcdctl runs against them for what the client itself does not do (status,
// compaction, users).
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/unit/temp_dir.hpp"

namespace pullgate::testing_support {

inline constexpr const char* kEtcdBinary = "/usr/bin/etcd";
inline constexpr const char* kEtcdctlBinary = "/usr/bin/etcdctl";

inline bool etcd_installed() {
  return std::filesystem::exists(kEtcdBinary) && std::filesystem::exists(kEtcdctlBinary);
}

// A loopback port nobody listens on now (the kernel's pick for port 0).
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

// Runs a command through the shell; returns its standard output, throws when it fails.
inline std::string run_command(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run " + command);
  std::array<char, 4096> buffer;
  while (std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  int status = ::pclose(pipe);
  if (status != 0) throw std::runtime_error(command + " failed: " + output);
  return output;
}

struct EtcdMember {
  std::string name;
  std::string client_url;  // http(s)://127.0.0.1:<port>
  std::string peer_url;
  pid_t pid = -1;
};

// One cluster of `size` members on loopback, started at construction. TLS: when
// `tls_flags` is given (etcd's --cert-file etc.), the client URLs are https.
class EtcdCluster {
 public:
  explicit EtcdCluster(int size, std::vector<std::string> tls_flags = {})
      : dir_(make_temp_dir("pullgate-etcd")), tls_flags_(std::move(tls_flags)) {
    std::string scheme = tls_flags_.empty() ? "http" : "https";
    for (int i = 0; i < size; ++i) {
      members_.push_back(EtcdMember{"m" + std::to_string(i),
                                    scheme + "://127.0.0.1:" + std::to_string(free_port()),
                                    "http://127.0.0.1:" + std::to_string(free_port())});
    }
    for (const auto& member : members_) {
      if (!initial_cluster_.empty()) initial_cluster_ += ",";
      initial_cluster_ += member.name + "=" + member.peer_url;
    }
    for (std::size_t i = 0; i < members_.size(); ++i) start(i);
  }
  ~EtcdCluster() {
    for (std::size_t i = 0; i < members_.size(); ++i) stop(i);
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  const std::vector<EtcdMember>& members() const { return members_; }
  const std::filesystem::path& dir() const { return dir_; }
  std::vector<std::string> client_urls() const {
    std::vector<std::string> urls;
    for (const auto& member : members_) urls.push_back(member.client_url);
    return urls;
  }
  // "--endpoints=a,b,c" for etcdctl.
  std::string endpoints_flag() const {
    std::string flag = "--endpoints=";
    for (std::size_t i = 0; i < members_.size(); ++i) flag += (i ? "," : "") + members_[i].client_url;
    return flag;
  }

  void stop(std::size_t index) {
    auto& member = members_[index];
    if (member.pid <= 0) return;
    ::kill(member.pid, SIGKILL);
    ::waitpid(member.pid, nullptr, 0);
    member.pid = -1;
  }

 private:
  void start(std::size_t index) {
    auto& member = members_[index];
    std::vector<std::string> args{kEtcdBinary,
                                  "--name=" + member.name,
                                  "--data-dir=" + (dir_ / member.name).string(),
                                  "--listen-client-urls=" + member.client_url,
                                  "--advertise-client-urls=" + member.client_url,
                                  "--listen-peer-urls=" + member.peer_url,
                                  "--initial-advertise-peer-urls=" + member.peer_url,
                                  "--initial-cluster=" + initial_cluster_,
                                  "--initial-cluster-state=new",
                                  "--initial-cluster-token=pullgate-test"};
    args.insert(args.end(), tls_flags_.begin(), tls_flags_.end());
    auto log = (dir_ / (member.name + ".log")).string();
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      std::FILE* out = std::freopen(log.c_str(), "w", stdout);
      if (out) ::dup2(::fileno(stdout), STDERR_FILENO);
      std::vector<char*> argv;
      for (auto& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      ::execv(kEtcdBinary, argv.data());
      ::_exit(127);
    }
    member.pid = pid;
  }

  std::filesystem::path dir_;
  std::vector<std::string> tls_flags_;
  std::vector<EtcdMember> members_;
  std::string initial_cluster_;
};

}  // namespace pullgate::testing_support
