// The progress line of long commands (proxy/telemetry/progress.hpp): drawn only when
// on, redrawn at most every 100 ms unless asked now, always erased to the end of the
// line, and cleared before results and at the end.
#include <gtest/gtest.h>

#include <sstream>

#include "proxy/telemetry/progress.hpp"

namespace pullgate::proxy {
namespace {

TEST(Progress, HumanBytes) {
  EXPECT_EQ(human_bytes(0), "0 B");
  EXPECT_EQ(human_bytes(512), "512 B");
  EXPECT_EQ(human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(human_bytes(40u << 20), "40.0 MiB");
  EXPECT_EQ(human_bytes(std::uint64_t(3) << 40), "3.0 TiB");
}

TEST(Progress, TextWithAndWithoutATotal) {
  EXPECT_EQ(progress_text("export", 1536, 0, 0.1), "export  1.5 KiB");
  EXPECT_EQ(progress_text("import", 512u << 20, 1024u << 20, 2.0), "import  512.0 MiB / 1.0 GiB   50%  256.0 MiB/s");
  // More done than the total announced (a file that grew) says 100%, never more.
  EXPECT_EQ(progress_text("verify", 2048, 1024, 0), "verify  2.0 KiB / 1.0 KiB  100%");
}

TEST(Progress, DrawnInPlaceAtMostTenTimesASecondAndCleared) {
  std::ostringstream out;
  TerminalProgress::Clock::time_point t{};
  {
    TerminalProgress progress(true, &out, [&] { return t; });
    progress.show("a");
    t += std::chrono::milliseconds(50);
    progress.show("b");  // too soon: not drawn
    progress.show("c", true);
    t += std::chrono::milliseconds(100);
    progress.show("d");
    progress.clear();
    progress.clear();  // nothing shown: nothing to clear
    EXPECT_DOUBLE_EQ(progress.seconds(), 0.15);
    progress.show("e", true);
  }  // the destructor clears the last line
  EXPECT_EQ(out.str(), "\r\033[Ka\r\033[Kc\r\033[Kd\r\033[K\r\033[Ke\r\033[K");
}

TEST(Progress, OffDrawsNothing) {
  std::ostringstream out;
  {
    TerminalProgress progress(false, &out);
    progress.show("a", true);
    progress.clear();
  }
  EXPECT_EQ(out.str(), "");
}

}  // namespace
}  // namespace pullgate::proxy
