#include "proxy/server/waiting_sessions.hpp"

#include <vector>

#include <gtest/gtest.h>

namespace pullgate::proxy {
namespace {

struct Closed {
  std::vector<WaitingSessions::Ticket> tickets;
  WaitingSessions::Close close() {
    return [this](WaitingSessions::Ticket t) { tickets.push_back(t); };
  }
};

TEST(WaitingSessions, ShedsTheOldestWaitsFirstAndCountsThemByKind) {
  WaitingSessions waiting;
  Closed closed;
  auto first = waiting.add(Wait::header, closed.close());
  auto second = waiting.add(Wait::idle, closed.close());
  auto third = waiting.add(Wait::header, closed.close());
  auto shed = waiting.shed_oldest(2);
  EXPECT_EQ(shed.header, 1u);
  EXPECT_EQ(shed.idle, 1u);
  EXPECT_EQ(closed.tickets, (std::vector{first, second}));
  EXPECT_EQ(waiting.size(), 1u);
  // Fewer waiting than asked: all of them, then nothing.
  EXPECT_EQ(waiting.shed_oldest(5).total(), 1u);
  EXPECT_EQ(closed.tickets.back(), third);
  EXPECT_EQ(waiting.shed_oldest(5).total(), 0u);
}

TEST(WaitingSessions, AWaitThatEndedIsNotShedAndAWaitThatBeganAgainIsTheNewest) {
  WaitingSessions waiting;
  Closed closed;
  auto a = waiting.add(Wait::header, closed.close());
  auto b = waiting.add(Wait::header, closed.close());
  waiting.remove(a);  // its request came in
  auto a_again = waiting.add(Wait::idle, closed.close());  // and it went idle after it
  waiting.remove(12345);  // unknown (already shed): ignored
  auto shed = waiting.shed_oldest(1);
  EXPECT_EQ(shed.header, 1u);
  EXPECT_EQ(closed.tickets, (std::vector{b}));
  waiting.close_all();
  EXPECT_EQ(closed.tickets, (std::vector{b, a_again}));
  EXPECT_EQ(waiting.size(), 0u);
}

TEST(WaitingSessions, NamesItsReasonsAsTheMetricDoes) {
  EXPECT_EQ(to_string(Wait::header), "header");
  EXPECT_EQ(to_string(Wait::idle), "idle");
}

}  // namespace
}  // namespace pullgate::proxy
