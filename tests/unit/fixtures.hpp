#pragma once
// Reading files under tests/fixtures for unit tests.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace pullgate::testing_support {

// tests/fixtures/FOLDER/NAME from the checkout (PULLGATE_SOURCE_DIR), not __FILE__:
// ccache's base directory makes __FILE__ relative to the build folder, and the tests
// run from anywhere.
inline std::filesystem::path fixture_path(const std::string& folder, const std::string& name) {
  return std::filesystem::path(PULLGATE_SOURCE_DIR) / "tests" / "fixtures" / folder / name;
}

inline std::string fixture_text(const std::string& folder, const std::string& name) {
  const auto path = fixture_path(folder, name);
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) ADD_FAILURE() << "cannot read fixture " << path;
  return text.str();
}

}  // namespace pullgate::testing_support
