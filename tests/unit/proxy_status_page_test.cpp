// The admin status page's parts: the renderer (a model in, HTML out; everything that
// came from outside escaped), the gate's ring of recent refusals, and the upstream
// health record.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "proxy/admin/status_page.hpp"
#include "proxy/gate/recent_decisions.hpp"
#include "proxy/telemetry/metrics.hpp"
#include "proxy/telemetry/upstream_health.hpp"

namespace pullgate::proxy {
namespace {

constexpr std::int64_t now_ms = 1'800'000'000'000;  // 2027-01-15T08:00:00Z
const std::string hostile = "<script>alert(1)</script>\"'<img src=x onerror=alert(2)>&amp;";
const std::string hostile_escaped =
    "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&lt;img src=x onerror=alert(2)&gt;&amp;amp;";

NotableDecision denial(std::string repository, std::string reason, std::int64_t at_ms) {
  NotableDecision d;
  d.at_ms = at_ms;
  d.client = "10.1.2.3:5555";
  d.kind = "manifest";
  d.method = "GET";
  d.upstream = "docker.io";
  d.repository = std::move(repository);
  d.tag = "v1";
  d.digest = "sha256:" + std::string(64, 'b');
  d.decision = "deny";
  d.mode = "enforce";
  d.source = "rule";
  d.reasons = {std::move(reason)};
  return d;
}

StatusPage model() {
  StatusPage page;
  page.now_ms = now_ms;
  page.version = "0.1.0";
  page.replica = "replica-a";
  page.policy = {"sha256:" + std::string(64, 'c'), "/etc/pullgate/policy.json", now_ms - 3'600'000};
  page.denials = {denial("team/bad", "CVE-2024-1 is critical", now_ms - 65'000)};
  page.notable_total = 1;
  page.pending = {{"sha256:" + std::string(64, 'e'), {"docker.io/team/new:v2"}, now_ms - 125'000, now_ms - 5'000, 3, ""}};
  page.pending_count = 1;
  page.traffic.cache_hits = 30;
  page.traffic.cache_misses = 10;
  page.traffic.allowed = 7;
  page.traffic.denied = 2;
  StatusPage::Cache cache;
  cache.bytes = 3 * 1024 * 1024;
  cache.max_bytes = 12 * 1024 * 1024;
  cache.image_count = 1;
  cache.biggest = {{"sha256:" + std::string(64, 'f'), {"docker.io/library/big:1"}, 2 * 1024 * 1024, 1024, now_ms, true}};
  page.cache = cache;
  UpstreamHealth::Entry up;
  up.upstream = "docker.io";
  up.requests = 12;
  up.troubles = 2;
  up.rate_limited = 1;
  up.last_ok_ms = now_ms - 10'000;
  up.last_trouble_ms = now_ms - 2'000;
  up.last_trouble_status = 429;
  up.last_trouble = "answered 429";
  page.upstreams = {up};
  page.readiness.status = "ok";
  return page;
}

TEST(StatusPage, EscapesTheFiveCharacters) {
  EXPECT_EQ(html_escape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&#39;f");
  EXPECT_EQ(html_escape(hostile), hostile_escaped);
  EXPECT_EQ(html_escape("plain/text:v1"), "plain/text:v1");
}

TEST(StatusPage, AgesReadAsAPersonWouldSayThem) {
  EXPECT_EQ(age_text(now_ms, now_ms), "0s");
  EXPECT_EQ(age_text(now_ms, now_ms + 5000), "0s");  // a clock ahead is no negative age
  EXPECT_EQ(age_text(now_ms, now_ms - 59'999), "59s");
  EXPECT_EQ(age_text(now_ms, now_ms - 125'000), "2m 5s");
  EXPECT_EQ(age_text(now_ms, now_ms - 3'600'000), "1h");
  EXPECT_EQ(age_text(now_ms, now_ms - 90'061'000), "1d 1h");
}

TEST(StatusPage, ShowsTheDenialPendingScanCacheUpstreamAndPolicy) {
  auto html = render_status_page(model());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("docker.io/team/bad:v1"), std::string::npos);
  EXPECT_NE(html.find("CVE-2024-1 is critical"), std::string::npos);
  EXPECT_NE(html.find("10.1.2.3:5555"), std::string::npos);
  EXPECT_NE(html.find("2027-01-15T07:58:55Z"), std::string::npos);  // the denial's time
  EXPECT_NE(html.find("sha256:" + std::string(64, 'e')), std::string::npos);
  EXPECT_NE(html.find("2m 5s"), std::string::npos);  // the pending digest's wait
  EXPECT_NE(html.find("75.0%"), std::string::npos);  // 30 hits of 40
  EXPECT_NE(html.find("3.0 MiB of 12.0 MiB"), std::string::npos);
  EXPECT_NE(html.find("docker.io/library/big:1"), std::string::npos);
  EXPECT_NE(html.find("answered 429"), std::string::npos);
  EXPECT_NE(html.find("sha256:" + std::string(64, 'c')), std::string::npos);
  EXPECT_NE(html.find("/etc/pullgate/policy.json"), std::string::npos);
  EXPECT_NE(html.find("replica-a"), std::string::npos);
  EXPECT_NE(html.find("off (this replica decides alone)"), std::string::npos);
  // Nothing to load or run.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("href="), std::string::npos);
}

TEST(StatusPage, WhatCameFromOutsideRendersAsText) {
  auto page = model();
  page.replica = hostile;
  page.denials = {denial(hostile, hostile, now_ms)};
  page.denials[0].client = hostile;
  page.denials[0].tag = hostile;
  page.bypass_alarms = page.denials;
  page.pending[0].references = {hostile};
  page.pending[0].claimed_by = hostile;
  page.cache->biggest[0].names = {hostile};
  page.upstreams[0].upstream = hostile;
  page.upstreams[0].last_trouble = hostile;
  page.policy.source = hostile;
  page.readiness.reason = hostile;
  page.readiness.fleet = StatusPage::Readiness::Fleet{false, false, 7, hostile, "fail_open", {{hostile, hostile}},
                                                       hostile, hostile};
  auto html = render_status_page(page);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_EQ(html.find("onerror=alert(2)>"), std::string::npos);
  EXPECT_EQ(html.find("'<"), std::string::npos);
  EXPECT_EQ(html.find("\"'"), std::string::npos);
  EXPECT_NE(html.find(hostile_escaped), std::string::npos);
}

TEST(StatusPage, SaysWhatIsEmpty) {
  StatusPage page;
  page.now_ms = now_ms;
  page.readiness.status = "ok";
  auto html = render_status_page(page);
  EXPECT_NE(html.find("No denial or warning since this replica started."), std::string::npos);
  EXPECT_NE(html.find("No digest awaits a scan."), std::string::npos);
  EXPECT_NE(html.find("The cache's contents are not known to this listener."), std::string::npos);
}

TEST(RecentDecisions, KeepsTheLastOnesNewestFirstAndAlarmsApart) {
  RecentDecisions recent(3);
  auto alarm = denial("team/bypass", "bypass suspected", 1);
  alarm.bypass_suspected = true;
  recent.add(alarm);
  for (int i = 2; i <= 6; ++i) recent.add(denial("team/" + std::to_string(i), "r", i));
  auto kept = recent.decisions();
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept[0].at_ms, 6);
  EXPECT_EQ(kept[2].at_ms, 4);
  EXPECT_EQ(recent.added(), 6u);
  // The alarm left the ring of decisions but stays in its own.
  auto alarms = recent.bypass_alarms();
  ASSERT_EQ(alarms.size(), 1u);
  EXPECT_EQ(alarms[0].repository, "team/bypass");
}

TEST(RecentDecisions, ManyThreadsAddingStayWithinTheBound) {
  RecentDecisions recent(50);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&recent, t] {
      for (int i = 0; i < 1000; ++i) {
        recent.add(denial("team/" + std::to_string(t), "r", i));
        if (i % 100 == 0) {
          EXPECT_LE(recent.decisions().size(), 50u);
        }
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(recent.decisions().size(), 50u);
  EXPECT_EQ(recent.added(), 4000u);
}

TEST(UpstreamHealth, KeepsTheLastTroubleAndCounts429s) {
  UpstreamHealth health;
  health.note("b.io", 200, "", 100);
  health.note("a.io", 200, "", 100);
  health.note("a.io", 404, "", 150);  // an answer, not trouble
  health.note("a.io", 429, "", 200);
  health.note("a.io", 0, "connect: Connection refused", 300);
  health.note("a.io", 503, "", 400);
  health.note("a.io", 200, "", 500);
  auto entries = health.entries();
  ASSERT_EQ(entries.size(), 2u);
  const auto& a = entries[0];
  EXPECT_EQ(a.upstream, "a.io");
  EXPECT_EQ(a.requests, 6u);
  EXPECT_EQ(a.troubles, 3u);
  EXPECT_EQ(a.rate_limited, 1u);
  EXPECT_EQ(a.last_ok_ms, 500);
  EXPECT_EQ(a.last_trouble_ms, 400);
  EXPECT_EQ(a.last_trouble_status, 503u);
  EXPECT_EQ(a.last_trouble, "answered 503");
  health.note("a.io", 0, "connect: Connection refused", 600);
  EXPECT_EQ(health.entries()[0].last_trouble, "no answer: connect: Connection refused");
  EXPECT_EQ(entries[1].upstream, "b.io");
  EXPECT_EQ(entries[1].troubles, 0u);
}

TEST(UpstreamHealth, TheMetricsCountAndRecordTogether) {
  PullgateMetrics metrics;
  metrics.count_upstream("a.io", 429);
  metrics.count_upstream("a.io", 0, "timed out");
  EXPECT_EQ(metrics.upstream_requests.with({"a.io", "429"}).value(), 1u);
  EXPECT_EQ(metrics.upstream_requests.with({"a.io", "error"}).value(), 1u);
  auto entries = metrics.upstream_health.entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].rate_limited, 1u);
  EXPECT_EQ(entries[0].last_trouble, "no answer: timed out");
  EXPECT_GT(entries[0].last_trouble_ms, 0);
}

}  // namespace
}  // namespace pullgate::proxy
