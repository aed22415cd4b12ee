#include "proxy/telemetry/metrics.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/temp_dir.hpp"

namespace pullgate::proxy {
namespace {

// ---- A strict reader of the text exposition format 0.0.4, enough to check what
// render() writes: every line must be HELP, TYPE or a sample of the family last typed,
// and no series (name and label set) may appear twice: Prometheus keeps one of two
// such samples and drops the other.

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  std::vector<std::pair<std::string, std::string>> label_order;
  std::string value;
};

struct ParsedFamily {
  std::string name;
  std::string help;
  std::string type;
  std::vector<Sample> samples;
};

struct Exposition {
  std::vector<ParsedFamily> families;
  const ParsedFamily* find(const std::string& name) const {
    for (const auto& f : families)
      if (f.name == name) return &f;
    return nullptr;
  }
};

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >= 0xc2 && c <= 0xdf) ? 2 : (c >= 0xe0 && c <= 0xef) ? 3 : (c >= 0xf0 && c <= 0xf4) ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    i += n;
  }
  return true;
}

bool is_number(const std::string& v) {
  if (v == "NaN" || v == "+Inf" || v == "-Inf") return true;
  char* end = nullptr;
  std::strtod(v.c_str(), &end);
  return !v.empty() && end == v.c_str() + v.size();
}

double number(const std::string& v) {
  if (v == "+Inf") return INFINITY;
  return std::strtod(v.c_str(), nullptr);
}

// Throws std::runtime_error naming the line that breaks the format.
Exposition parse(const std::string& text) {
  if (!valid_utf8(text)) throw std::runtime_error("output is not valid UTF-8");
  if (!text.empty() && text.back() != '\n') throw std::runtime_error("output does not end in a newline");
  Exposition out;
  std::set<std::string> seen;
  std::set<std::pair<std::string, std::map<std::string, std::string>>> series;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto fail = [&](const std::string& why) { throw std::runtime_error(why + ": " + line); };
    if (line.rfind("# HELP ", 0) == 0) {
      auto rest = line.substr(7);
      auto sp = rest.find(' ');
      if (sp == std::string::npos) fail("HELP without text");
      auto name = rest.substr(0, sp);
      if (!seen.insert(name).second) fail("HELP twice for a family");
      out.families.push_back({name, rest.substr(sp + 1), "", {}});
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream words(line.substr(7));
      std::string name, type, extra;
      words >> name >> type;
      if (words >> extra) fail("TYPE has extra words");
      if (out.families.empty() || out.families.back().name != name) fail("TYPE not right after its HELP");
      if (!out.families.back().type.empty()) fail("TYPE twice");
      if (type != "counter" && type != "gauge" && type != "histogram") fail("unknown type");
      out.families.back().type = type;
      continue;
    }
    if (line.empty() || line[0] == '#') fail("unexpected line");
    if (out.families.empty() || out.families.back().type.empty()) fail("sample before HELP/TYPE");
    auto& fam = out.families.back();
    Sample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') s.name += line[i++];
    if (fam.type == "histogram") {
      if (s.name != fam.name + "_bucket" && s.name != fam.name + "_sum" && s.name != fam.name + "_count")
        fail("sample name outside its histogram family");
    } else if (s.name != fam.name) {
      fail("sample name outside its family");
    }
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (true) {
        std::string lname;
        while (i < line.size() && line[i] != '=') lname += line[i++];
        if (i + 1 >= line.size() || line[i + 1] != '"') fail("label without quoted value");
        i += 2;
        std::string value;
        while (true) {
          if (i >= line.size()) fail("unterminated label value");
          char c = line[i++];
          if (c == '"') break;
          if (c == '\\') {
            if (i >= line.size()) fail("dangling backslash");
            char e = line[i++];
            if (e == 'n') value += '\n';
            else if (e == '\\' || e == '"') value += e;
            else fail("unknown escape");
          } else {
            value += c;
          }
        }
        if (!s.labels.emplace(lname, value).second) fail("label twice");
        s.label_order.emplace_back(lname, value);
        if (i < line.size() && line[i] == ',') {
          ++i;
          continue;
        }
        if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        }
        fail("bad label separator");
      }
    }
    if (i >= line.size() || line[i] != ' ') fail("no space before value");
    s.value = line.substr(i + 1);
    if (!is_number(s.value)) fail("value is not a number");
    if (!series.emplace(s.name, s.labels).second) fail("series twice");
    fam.samples.push_back(std::move(s));
  }
  return out;
}

// Per histogram child (labels other than le): buckets are cumulative, end with
// +Inf, and +Inf equals _count.
void expect_histogram_consistent(const ParsedFamily& fam) {
  ASSERT_EQ(fam.type, "histogram");
  struct Child {
    std::vector<std::pair<double, double>> buckets;
    std::optional<double> count;
    bool has_sum = false;
  };
  std::map<std::map<std::string, std::string>, Child> children;
  for (const auto& s : fam.samples) {
    auto labels = s.labels;
    if (s.name == fam.name + "_bucket") {
      ASSERT_TRUE(labels.count("le")) << s.name;
      ASSERT_EQ(s.label_order.back().first, "le");
      double le = number(labels["le"]);
      labels.erase("le");
      children[labels].buckets.emplace_back(le, number(s.value));
    } else if (s.name == fam.name + "_count") {
      children[labels].count = number(s.value);
    } else {
      children[labels].has_sum = true;
    }
  }
  ASSERT_FALSE(children.empty());
  for (const auto& [labels, child] : children) {
    ASSERT_FALSE(child.buckets.empty());
    for (std::size_t i = 1; i < child.buckets.size(); ++i) {
      EXPECT_LT(child.buckets[i - 1].first, child.buckets[i].first) << fam.name;
      EXPECT_LE(child.buckets[i - 1].second, child.buckets[i].second) << fam.name << " buckets not cumulative";
    }
    EXPECT_TRUE(std::isinf(child.buckets.back().first)) << "last bucket is not +Inf";
    ASSERT_TRUE(child.count.has_value());
    EXPECT_EQ(child.buckets.back().second, *child.count);
    EXPECT_TRUE(child.has_sum);
  }
}

// ---- Metric types

TEST(Metrics, CounterAndGauge) {
  Counter c;
  c.inc();
  c.inc(41);
  EXPECT_EQ(c.value(), 42u);
  Gauge g;
  g.set(10);
  g.add(-15);
  EXPECT_EQ(g.value(), -5);
}

TEST(Metrics, HistogramBucketsAreLessOrEqual) {
  Histogram h({1, 2, 5});
  h.observe(0.5);
  h.observe(1);    // on a bound: that bucket
  h.observe(1.5);
  h.observe(5);
  h.observe(100);  // +Inf only
  h.observe(-3);   // below everything: first bucket
  h.observe(NAN);  // dropped
  auto s = h.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{3, 4, 5, 6}));
  EXPECT_EQ(s.count, 6u);
  EXPECT_DOUBLE_EQ(s.sum, 0.5 + 1 + 1.5 + 5 + 100 - 3);
}

TEST(Metrics, HistogramRejectsBadBounds) {
  EXPECT_THROW(Histogram({1, 1}), std::invalid_argument);
  EXPECT_THROW(Histogram({2, 1}), std::invalid_argument);
  EXPECT_THROW(Histogram({1, INFINITY}), std::invalid_argument);
  EXPECT_THROW(Histogram({NAN}), std::invalid_argument);
  Histogram only_inf({});
  only_inf.observe(3);
  EXPECT_EQ(only_inf.snapshot().cumulative, (std::vector<std::uint64_t>{1}));
}

// ---- Registration

TEST(Metrics, RegistrationValidatesNames) {
  Registry r;
  EXPECT_THROW(r.counter("1abc", "h"), std::invalid_argument);
  EXPECT_THROW(r.counter("a-b", "h"), std::invalid_argument);
  EXPECT_THROW(r.counter("", "h"), std::invalid_argument);
  EXPECT_THROW(r.counter_family("x_total", "h", {"bad-label"}), std::invalid_argument);
  EXPECT_THROW(r.counter_family("x_total", "h", {"__reserved"}), std::invalid_argument);
  EXPECT_THROW(r.counter_family("x_total", "h", {"a", "a"}), std::invalid_argument);
  EXPECT_THROW(r.histogram_family("x_seconds", "h", {"le"}, {1}), std::invalid_argument);
  EXPECT_THROW(r.histogram_family("x_seconds", "h", {}, {2, 1}), std::invalid_argument);
  r.counter("ns:x_total", "h");
  EXPECT_THROW(r.gauge("ns:x_total", "h"), std::invalid_argument);
  EXPECT_THROW(r.gauge_callback("cb", "h", std::function<double()>()), std::invalid_argument);
  // Failed registrations left nothing behind.
  auto parsed = parse(r.render());
  ASSERT_EQ(parsed.families.size(), 1u);
  EXPECT_EQ(parsed.families[0].name, "ns:x_total");
}

TEST(Metrics, WithChecksLabelCount) {
  Registry r;
  auto& f = r.counter_family("f_total", "h", {"a", "b"});
  EXPECT_THROW(f.with({"x"}), std::invalid_argument);
  EXPECT_THROW(f.with({"x", "y", "z"}), std::invalid_argument);
  f.with({"x", "y"}).inc();
  EXPECT_EQ(f.with({"x", "y"}).value(), 1u);
}

// ---- Rendering

TEST(Metrics, RenderIsWellFormedInRegistrationAndLabelOrder) {
  Registry r;
  auto& requests = r.counter_family("req_total", "Requests.", {"method", "status"});
  auto& temp = r.gauge("temperature", "A gauge.");
  auto& lat = r.histogram_family("lat_seconds", "Latency.", {"route"}, {0.001, 0.01, 0.1});
  auto& plain = r.histogram("plain_seconds", "No labels.", {1, 2});
  r.gauge_callback("in_flight", "Callback.", [] { return 7.0; });
  auto& empty = r.counter_family("never_total", "Has no children yet.", {"x"});
  (void)empty;

  requests.with({"GET", "200"}).inc(3);
  requests.with({"DELETE", "404"}).inc();
  requests.with({"GET", "500"}).inc();
  temp.set(-4);
  lat.with({"/v2/"}).observe(0.005);
  lat.with({"/v2/"}).observe(0.5);
  lat.with({"/a"}).observe(0.001);
  plain.observe(1.5);

  auto text = r.render();
  auto parsed = parse(text);
  std::vector<std::string> names;
  for (const auto& f : parsed.families) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"req_total", "temperature", "lat_seconds", "plain_seconds", "in_flight",
                                             "never_total"}));

  const auto* req = parsed.find("req_total");
  EXPECT_EQ(req->type, "counter");
  EXPECT_EQ(req->help, "Requests.");
  ASSERT_EQ(req->samples.size(), 3u);
  EXPECT_EQ(req->samples[0].labels.at("method"), "DELETE");
  EXPECT_EQ(req->samples[1].labels.at("status"), "200");
  EXPECT_EQ(req->samples[1].value, "3");
  EXPECT_EQ(req->samples[2].labels.at("status"), "500");
  EXPECT_EQ(req->samples[0].label_order.front().first, "method");  // declared label order

  EXPECT_NE(text.find("\ntemperature -4\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nin_flight 7\n"), std::string::npos) << text;
  EXPECT_EQ(parsed.find("never_total")->samples.size(), 0u);
  EXPECT_EQ(parsed.find("temperature")->type, "gauge");
  EXPECT_EQ(parsed.find("in_flight")->type, "gauge");

  expect_histogram_consistent(*parsed.find("lat_seconds"));
  expect_histogram_consistent(*parsed.find("plain_seconds"));
  EXPECT_NE(text.find("lat_seconds_bucket{route=\"/v2/\",le=\"0.01\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{route=\"/v2/\",le=\"+Inf\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_count{route=\"/v2/\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{route=\"/a\",le=\"0.001\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("plain_seconds_bucket{le=\"1\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("plain_seconds_bucket{le=\"2\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("plain_seconds_sum 1.5\n"), std::string::npos) << text;
  EXPECT_NE(text.find("plain_seconds_count 1\n"), std::string::npos) << text;
}

TEST(Metrics, LabelValuesAreEscaped) {
  Registry r;
  auto& f = r.counter_family("esc_total", "Help with a \\ and a\nnewline.", {"v"});
  const std::string tricky = "a\\b\"c\nd";
  f.with({tricky}).inc();
  auto text = r.render();
  EXPECT_NE(text.find("esc_total{v=\"a\\\\b\\\"c\\nd\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# HELP esc_total Help with a \\\\ and a\\nnewline.\n"), std::string::npos) << text;
  auto parsed = parse(text);
  ASSERT_EQ(parsed.families[0].samples.size(), 1u);
  EXPECT_EQ(parsed.families[0].samples[0].labels.at("v"), tricky);  // round trip
}

TEST(Metrics, InvalidUtf8AndControlBytesCannotBreakTheOutput) {
  Registry r;
  auto& f = r.counter_family("utf_total", "h", {"v"});
  f.with({"caf\xc3\xa9"}).inc();                      // valid: kept
  f.with({"x\xff" "y"}).inc();                        // stray byte
  f.with({"\xc3"}).inc();                             // truncated sequence
  f.with({"\xe0\x80\xaf"}).inc();                     // overlong
  f.with({"\xed\xa0\x80"}).inc();                     // surrogate
  f.with({std::string_view("n\0l\r", 4)}).inc();      // NUL and CR
  auto text = r.render();
  auto parsed = parse(text);  // throws on invalid UTF-8 or a broken line
  std::set<std::string> values;
  for (const auto& s : parsed.families[0].samples) values.insert(s.labels.at("v"));
  EXPECT_EQ(values, (std::set<std::string>{"caf\xc3\xa9", "x?y", "?", "???", "n?l?"}));
  // The overlong and the surrogate sequences both read "???": one series, counted twice.
  ASSERT_EQ(parsed.families[0].samples.size(), 5u);
  EXPECT_EQ(f.with({"\xed\xa0\x80"}).value(), 2u);
  EXPECT_EQ(&f.with({"\xe0\x80\xaf"}), &f.with({"???"}));
}

TEST(Metrics, DoublesUseTheFormatSpellings) {
  Registry r;
  double v = 0;
  r.gauge_callback("g", "h", [&] { return v; });
  v = INFINITY;
  EXPECT_NE(r.render().find("\ng +Inf\n"), std::string::npos);
  v = -INFINITY;
  EXPECT_NE(r.render().find("\ng -Inf\n"), std::string::npos);
  v = NAN;
  EXPECT_NE(r.render().find("\ng NaN\n"), std::string::npos);
  v = 0.1;
  EXPECT_NE(r.render().find("\ng 0.1\n"), std::string::npos);
  v = 5e-6;
  auto parsed = parse(r.render());
  EXPECT_EQ(number(parsed.families[0].samples[0].value), 5e-6);
}

// ---- Callback gauges

TEST(Metrics, CallbackGaugesAreReadAtScrapeTime) {
  Registry r;
  int calls = 0;
  double in_flight = 2;
  r.gauge_callback("in_flight", "h", [&] {
    ++calls;
    return in_flight;
  });
  std::string version = "v1";
  r.gauge_callback("info", "h", {"version"}, [&] {
    return std::vector<LabelledValue>{{{version}, 1.0}, {{"too", "many"}, 9.0}};
  });
  EXPECT_EQ(calls, 0);
  auto first = r.render();
  EXPECT_EQ(calls, 1);
  EXPECT_NE(first.find("\nin_flight 2\n"), std::string::npos) << first;
  EXPECT_NE(first.find("\ninfo{version=\"v1\"} 1\n"), std::string::npos) << first;
  EXPECT_EQ(first.find("9"), std::string::npos) << "a sample with the wrong label count was rendered";
  in_flight = 5;
  version = "v2";
  auto second = r.render();
  EXPECT_EQ(calls, 2);
  EXPECT_NE(second.find("\nin_flight 5\n"), std::string::npos) << second;
  EXPECT_NE(second.find("\ninfo{version=\"v2\"} 1\n"), std::string::npos) << second;
  EXPECT_EQ(second.find("v1"), std::string::npos);
  parse(second);
}

TEST(Metrics, CallbackMayUseTheRegistry) {
  // Callbacks run without registry locks, so one that touches metrics cannot deadlock.
  Registry r;
  auto& c = r.counter("scrapes_total", "h");
  r.gauge_callback("scrapes_seen", "h", [&] {
    c.inc();
    return static_cast<double>(c.value());
  });
  r.render();
  auto text = r.render();
  EXPECT_NE(text.find("\nscrapes_seen 2\n"), std::string::npos) << text;
}

// ---- References and concurrency

TEST(Metrics, ReferencesStayValidAsChildrenAreAdded) {
  Registry r;
  auto& f = r.counter_family("stable_total", "h", {"k"});
  auto& h = r.histogram_family("stable_seconds", "h", {"k"}, {1});
  Counter& first = f.with({"m"});
  Histogram& first_h = h.with({"m"});
  first.inc(5);
  first_h.observe(0.5);
  for (int i = 0; i < 1500; ++i) {
    f.with({std::to_string(i)}).inc();
    h.with({std::to_string(i)}).observe(2);
  }
  EXPECT_EQ(&f.with({"m"}), &first);
  EXPECT_EQ(&h.with({"m"}), &first_h);
  EXPECT_EQ(first.value(), 5u);
  first.inc();
  EXPECT_EQ(f.with({"m"}).value(), 6u);
  EXPECT_EQ(first_h.snapshot().cumulative[0], 1u);
}

TEST(Metrics, ChildrenBeyondTheCapShareAnOverflowChild) {
  Registry r;
  auto& f = r.counter_family("many_total", "h", {"a", "b"});
  constexpr auto cap = CounterFamily::kMaxChildren;
  for (std::size_t i = 0; i < cap + 500; ++i) f.with({std::to_string(i), "x"}).inc();
  auto parsed = parse(r.render());
  const auto& samples = parsed.families[0].samples;
  ASSERT_EQ(samples.size(), cap);
  std::string overflow(CounterFamily::kOverflowLabel);
  std::uint64_t total = 0;
  std::uint64_t in_overflow = 0;
  for (const auto& s : samples) {
    total += std::stoull(s.value);
    if (s.labels.at("a") == overflow) {
      EXPECT_EQ(s.labels.at("b"), overflow);
      in_overflow = std::stoull(s.value);
    }
  }
  EXPECT_EQ(total, cap + 500);  // nothing was lost
  EXPECT_EQ(in_overflow, 501u);
  // Children created before the cap keep their own series.
  EXPECT_EQ(f.with({"0", "x"}).value(), 1u);
}

TEST(Metrics, ConcurrentIncrementsAreExact) {
  Registry r;
  auto& f = r.counter_family("conc_total", "h", {"k"});
  auto& h = r.histogram("conc_seconds", "h", {0.5});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100000;
  std::vector<std::thread> threads;
  std::atomic<bool> done{false};
  // A scraper renders while the writers run: render must not block them for long or tear the format.
  std::thread scraper([&] {
    while (!done.load()) parse(r.render());
  });
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Counter& shared = f.with({"shared"});  // every thread looks up the same child
      Counter& own = f.with({"t" + std::to_string(t)});
      for (int i = 0; i < kPerThread; ++i) {
        shared.inc();
        own.inc(2);
        h.observe(i % 2 == 0 ? 0.25 : 1.0);
      }
    });
  }
  for (auto& th : threads) th.join();
  done = true;
  scraper.join();
  EXPECT_EQ(f.with({"shared"}).value(), std::uint64_t{kThreads} * kPerThread);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(f.with({"t" + std::to_string(t)}).value(), 2u * kPerThread);
  auto s = h.snapshot();
  EXPECT_EQ(s.count, std::uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(s.cumulative[0], std::uint64_t{kThreads} * kPerThread / 2);
  EXPECT_DOUBLE_EQ(s.sum, kThreads * (kPerThread / 2) * 1.25);
}

TEST(Metrics, ConcurrentFirstUseGivesOneChild) {
  Registry r;
  auto& f = r.counter_family("race_total", "h", {"k"});
  std::vector<Counter*> seen(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) f.with({std::to_string(i)}).inc();
      seen[t] = &f.with({"999"});
    });
  for (auto& th : threads) th.join();
  for (auto* p : seen) EXPECT_EQ(p, seen[0]);
  EXPECT_EQ(seen[0]->value(), 4u);
  EXPECT_EQ(parse(r.render()).families[0].samples.size(), 1000u);
}

// ---- pullgate's own metrics

// One update of every family that is not read at scrape time.
void record_one_of_each(PullgateMetrics& m) {
  m.gate_decisions.with({"manifest", "allow", "enforce", "rule"}).inc();
  m.gate_denials.with({"blob", "docker.io"}).inc();
  m.gate_decision_seconds.observe(3e-5);
  m.gate_evaluations.inc();
  m.gate_bypass_suspected.with({"ghcr.io"}).inc();
  m.cache_requests.with({"blob", "hit"}).inc();
  m.upstream_requests.with({"docker.io", "error"}).inc();
  m.http_requests.with({"GET", "200"}).inc();
  m.http_request_seconds.observe(0.02);
  m.bytes_served.inc(1024);
  m.bytes_fetched.inc(2048);
  m.policy_reloads.with({"refused"}).inc();
  m.audit_write_failures.inc();
  m.signal_checks.with({"signature", "valid"}).inc();
}

TEST(PullgateMetrics, RendersEveryFamilyWithHelp) {
  PullgateMetrics m;
  record_one_of_each(m);
  std::atomic<int> in_flight{3};
  m.track_blob_fetches_in_flight([&] { return static_cast<double>(in_flight.load()); });
  m.track_verdicts_stored([] { return 12.0; });
  m.track_policy_version([] { return std::string("2024-06-01.3"); });
  EXPECT_THROW(m.track_verdicts_stored([] { return 1.0; }), std::invalid_argument);

  auto text = m.render();
  auto parsed = parse(text);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"pullgate_gate_decisions_total", "counter"},   {"pullgate_gate_denials_total", "counter"},
      {"pullgate_gate_decision_seconds", "histogram"}, {"pullgate_gate_evaluations_total", "counter"},
      {"pullgate_gate_memo_entries", "gauge"},
      {"pullgate_gate_bypass_suspected_total", "counter"}, {"pullgate_cache_requests_total", "counter"},
      {"pullgate_upstream_requests_total", "counter"}, {"pullgate_http_requests_total", "counter"},
      {"pullgate_http_request_seconds", "histogram"}, {"pullgate_bytes_served_total", "counter"},
      {"pullgate_bytes_fetched_total", "counter"},    {"pullgate_policy_reloads_total", "counter"},
      {"pullgate_audit_write_failures_total", "counter"}, {"pullgate_audit_refused_total", "counter"},
      {"pullgate_audit_lines_dropped_total", "counter"}, {"pullgate_signal_checks_total", "counter"},
      {"pullgate_cache_bytes", "gauge"},              {"pullgate_cache_blob_files", "gauge"},
      {"pullgate_cache_pinned_bytes", "gauge"},
      {"pullgate_evictions_total", "counter"},        {"pullgate_evicted_bytes_total", "counter"},
      {"pullgate_cache_garbage_removed_total", "counter"},
      {"pullgate_connections_shed_total", "counter"},
      {"pullgate_eviction_last_run_seconds", "gauge"},
      {"pullgate_blob_fetches_in_flight", "gauge"},
      {"pullgate_verdicts_stored", "gauge"},          {"pullgate_policy_info", "gauge"},
  };
  ASSERT_EQ(parsed.families.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(parsed.families[i].name, expected[i].first);
    EXPECT_EQ(parsed.families[i].type, expected[i].second) << expected[i].first;
    EXPECT_GT(parsed.families[i].help.size(), 10u) << expected[i].first;
  }
  expect_histogram_consistent(*parsed.find("pullgate_gate_decision_seconds"));
  expect_histogram_consistent(*parsed.find("pullgate_http_request_seconds"));

  auto has = [&](const std::string& line) { EXPECT_NE(text.find("\n" + line + "\n"), std::string::npos) << line; };
  has("pullgate_gate_decisions_total{kind=\"manifest\",decision=\"allow\",mode=\"enforce\",source=\"rule\"} 1");
  has("pullgate_gate_denials_total{kind=\"blob\",upstream=\"docker.io\"} 1");
  has("pullgate_gate_decision_seconds_bucket{le=\"2.5e-05\"} 0");
  has("pullgate_gate_decision_seconds_bucket{le=\"5e-05\"} 1");
  has("pullgate_gate_decision_seconds_count 1");
  has("pullgate_upstream_requests_total{upstream=\"docker.io\",status=\"error\"} 1");
  has("pullgate_http_request_seconds_bucket{le=\"0.025\"} 1");
  has("pullgate_http_request_seconds_bucket{le=\"10\"} 1");
  has("pullgate_bytes_served_total 1024");
  has("pullgate_policy_reloads_total{result=\"ok\"} 0");  // known label sets start at zero
  has("pullgate_policy_reloads_total{result=\"refused\"} 1");
  has("pullgate_cache_requests_total{kind=\"tag\",result=\"stale\"} 0");
  has("pullgate_cache_requests_total{kind=\"blob\",result=\"hit\"} 1");
  has("pullgate_blob_fetches_in_flight 3");
  has("pullgate_verdicts_stored 12");
  has("pullgate_policy_info{version=\"2024-06-01.3\"} 1");
  EXPECT_EQ(parsed.find("pullgate_cache_requests_total")->samples.size(), 12u);
}

// ---- Prometheus's own reader: promtool (Debian package prometheus, installed by
// deploy/install-deps.sh --test) parses and lints what render() writes.

// promtool check metrics on `text`: its exit status and what it printed.
std::pair<int, std::string> promtool_check_metrics(const std::string& text) {
  auto dir = testing_support::make_temp_dir("pullgate-metrics-test");
  auto file = dir / "metrics.txt";
  std::ofstream(file) << text;
  std::string printed;
  FILE* p = ::popen(("promtool check metrics < '" + file.string() + "' 2>&1").c_str(), "r");
  if (!p) throw std::runtime_error("cannot run promtool");
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) printed.append(buf, n);
  int status = ::pclose(p);
  std::filesystem::remove_all(dir);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, printed};
}

TEST(PullgateMetrics, PromtoolAcceptsTheOutput) {
  ASSERT_EQ(std::system("command -v promtool >/dev/null 2>&1"), 0)
      << "promtool not found: Debian package prometheus (deploy/install-deps.sh --test)";
  PullgateMetrics m;
  record_one_of_each(m);
  // What requests, upstream names and policy files can put into label values.
  m.http_requests.with({"a\\b\"c\nd", "200"}).inc();
  m.upstream_requests.with({"x\xff\xc3 caf\xc3\xa9\r", "error"}).inc();
  m.track_blob_fetches_in_flight([] { return NAN; });
  m.track_verdicts_stored([] { return INFINITY; });
  m.track_policy_version([] { return std::string("v\"1\"\n\\\x01"); });
  auto [status, printed] = promtool_check_metrics(m.render());
  EXPECT_EQ(status, 0) << printed << "\n" << m.render();

  Registry r;
  r.counter_family("unused_total", "Has no children yet.", {"x"});
  r.gauge("temperature_celsius", "A gauge.").set(-4);
  auto& many = r.counter_family("many_total", "More children than the cap.", {"n"});
  for (std::size_t i = 0; i < CounterFamily::kMaxChildren + 10; ++i) many.with({std::to_string(i)}).inc();
  auto& latency = r.histogram_family("latency_seconds", "Labelled histogram.", {"route"}, {0.001, 0.5});
  latency.with({"/v2/"}).observe(0.2);
  latency.with({"/v2/"}).observe(1e9);
  std::tie(status, printed) = promtool_check_metrics(r.render());
  EXPECT_EQ(status, 0) << printed;
}

}  // namespace
}  // namespace pullgate::proxy
