// Per-operation cost of pullgate's metrics (proxy/metrics.hpp) next to the same
// operation done directly on prometheus-cpp, for the operations the request path
// does: an increment of a cached child, a histogram observation, a with() lookup of
// an existing child, the gate's per-decision recording, and a render of 200 series.
// Threads(2): both threads update the same child, as the server's threads do.
//   cmake --build build --target metrics_bench && build/metrics_bench
// Results and how they were read: bench/README.md ("Metrics registry").
#include <benchmark/benchmark.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <string>
#include <vector>

#include "proxy/telemetry/metrics.hpp"

namespace {

namespace pg = pullgate::proxy;

// pullgate_gate_decision_seconds's bounds.
const std::vector<double> kBounds = {5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2};
// Observed values cycle through these: a few buckets, as decisions of varying cost.
constexpr double kSeconds[] = {3e-6, 8e-6, 2e-5, 4e-5, 7e-6, 1.2e-5, 3e-5, 6e-6};

struct Ours {
  pg::Registry registry;
  pg::CounterFamily& decisions = registry.counter_family("decisions_total", "h", {"kind", "decision", "mode", "source"});
  pg::CounterFamily& denials = registry.counter_family("denials_total", "h", {"kind", "upstream"});
  pg::CounterFamily& requests = registry.counter_family("requests_total", "h", {"method", "status"});
  pg::Histogram& seconds = registry.histogram("decision_seconds", "h", kBounds);
  pg::CounterFamily& series = registry.counter_family("series_total", "h", {"upstream", "status"});
  Ours() {
    for (int i = 0; i < 200; ++i) series.with({"upstream-" + std::to_string(i % 20), std::to_string(200 + i)}).inc(i);
  }
};

struct Theirs {
  prometheus::Registry registry;
  prometheus::Family<prometheus::Counter>& decisions =
      prometheus::BuildCounter().Name("decisions_total").Help("h").Register(registry);
  prometheus::Family<prometheus::Counter>& denials =
      prometheus::BuildCounter().Name("denials_total").Help("h").Register(registry);
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter().Name("requests_total").Help("h").Register(registry);
  prometheus::Histogram& seconds =
      prometheus::BuildHistogram().Name("decision_seconds").Help("h").Register(registry).Add({}, kBounds);
  prometheus::Family<prometheus::Counter>& series =
      prometheus::BuildCounter().Name("series_total").Help("h").Register(registry);
  Theirs() {
    for (int i = 0; i < 200; ++i)
      series.Add({{"upstream", "upstream-" + std::to_string(i % 20)}, {"status", std::to_string(200 + i)}})
          .Increment(i);
  }
};

Ours& ours() {
  static Ours o;
  return o;
}
Theirs& theirs() {
  static Theirs t;
  return t;
}

// ---- an increment of a cached child

void counter_inc_pullgate(benchmark::State& state) {
  auto&& c = ours().decisions.with({"manifest", "allow", "enforce", "rule"});
  for (auto _ : state) c.inc();
}
void counter_inc_prometheus_cpp(benchmark::State& state) {
  auto& c = theirs().decisions.Add({{"kind", "manifest"}, {"decision", "allow"}, {"mode", "enforce"}, {"source", "rule"}});
  for (auto _ : state) c.Increment();
}

// ---- a histogram observation

void histogram_observe_pullgate(benchmark::State& state) {
  auto& h = ours().seconds;
  std::size_t i = 0;
  for (auto _ : state) h.observe(kSeconds[i++ & 7]);
}
void histogram_observe_prometheus_cpp(benchmark::State& state) {
  auto& h = theirs().seconds;
  std::size_t i = 0;
  for (auto _ : state) h.Observe(kSeconds[i++ & 7]);
}

// ---- the gate's recording of one decision: decisions and denials children cached in
// its memo, one observation

void gate_decision_pullgate(benchmark::State& state) {
  auto&& decisions = ours().decisions.with({"manifest", "deny", "enforce", "rule"});
  auto&& denials = ours().denials.with({"manifest", "docker.io"});
  auto& seconds = ours().seconds;
  std::size_t i = 0;
  for (auto _ : state) {
    decisions.inc();
    denials.inc();
    seconds.observe(kSeconds[i++ & 7]);
  }
}
void gate_decision_prometheus_cpp(benchmark::State& state) {
  auto& decisions =
      theirs().decisions.Add({{"kind", "manifest"}, {"decision", "deny"}, {"mode", "enforce"}, {"source", "rule"}});
  auto& denials = theirs().denials.Add({{"kind", "manifest"}, {"upstream", "docker.io"}});
  auto& seconds = theirs().seconds;
  std::size_t i = 0;
  for (auto _ : state) {
    decisions.Increment();
    denials.Increment();
    seconds.Observe(kSeconds[i++ & 7]);
  }
}

// ---- with() of an existing child and an increment, as mirror.cpp counts a request
// (the status is formatted per request there too)

void with_existing_pullgate(benchmark::State& state) {
  auto& requests = ours().requests;
  requests.with({"GET", "200"});
  std::string method = "GET";
  for (auto _ : state) requests.with({method, std::to_string(200)}).inc();
}
void with_existing_prometheus_cpp(benchmark::State& state) {
  auto& requests = theirs().requests;
  std::string method = "GET";
  for (auto _ : state) requests.Add({{"method", method}, {"status", std::to_string(200)}}).Increment();
}

// ---- a scrape of 200 series

void render_200_pullgate(benchmark::State& state) {
  pg::Registry registry;
  auto& series = registry.counter_family("series_total", "h", {"upstream", "status"});
  for (int i = 0; i < 200; ++i) series.with({"upstream-" + std::to_string(i % 20), std::to_string(200 + i)}).inc(i);
  for (auto _ : state) benchmark::DoNotOptimize(registry.render());
}
void render_200_prometheus_cpp(benchmark::State& state) {
  prometheus::Registry registry;
  auto& series = prometheus::BuildCounter().Name("series_total").Help("h").Register(registry);
  for (int i = 0; i < 200; ++i)
    series.Add({{"upstream", "upstream-" + std::to_string(i % 20)}, {"status", std::to_string(200 + i)}}).Increment(i);
  prometheus::TextSerializer serializer;
  for (auto _ : state) benchmark::DoNotOptimize(serializer.Serialize(registry.Collect()));
}

}  // namespace

BENCHMARK(counter_inc_pullgate)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(counter_inc_prometheus_cpp)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(histogram_observe_pullgate)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(histogram_observe_prometheus_cpp)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(gate_decision_pullgate)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(gate_decision_prometheus_cpp)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(with_existing_pullgate)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(with_existing_prometheus_cpp)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(render_200_pullgate);
BENCHMARK(render_200_prometheus_cpp);

BENCHMARK_MAIN();
