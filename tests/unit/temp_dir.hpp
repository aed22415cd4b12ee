#pragma once
// A fresh directory under the system temp directory for one test, named
// <prefix>-<pid>-<random>; created here, removed by the test's TearDown.
#include <unistd.h>

#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>

namespace pullgate::testing_support {

inline std::filesystem::path make_temp_dir(std::string_view prefix) {
  std::random_device random;
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto dir = std::filesystem::temp_directory_path() /
               (std::string(prefix) + "-" + std::to_string(::getpid()) + "-" + std::to_string(random()));
    if (std::filesystem::create_directory(dir)) return dir;  // false: it existed, try another name
  }
  throw std::runtime_error("cannot create a temp directory for " + std::string(prefix));
}

}  // namespace pullgate::testing_support
