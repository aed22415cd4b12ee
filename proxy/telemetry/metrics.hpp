#pragma once
// Metrics for /metrics: counters, gauges and histograms kept in relaxed atomics, so
// the request path pays one atomic add per update, and rendered on scrape in the
// Prometheus text exposition format 0.0.4.
//
// Hot paths cache the reference that with() returns (it stays valid for the life of
// the Registry): with() takes the family's mutex, inc()/observe() do not.
//
// Hand-written rather than prometheus-cpp (Debian prometheus-cpp-dev 1.0.1) because
// of measured cost (bench/metrics_bench.cpp, CPU ns per operation, here / there): the
// gate's recording of one decision 24-28 / 44-51 (its Histogram::Observe takes a
// mutex), with() of an existing child 36-57 / 148-276 (its Family::Add copies a
// std::map of labels and allocates a metric each call; a request does three). Numbers
// and what the library lacks that /metrics relies on: bench/README.md ("Metrics registry").
//
// Registry-gate SLIs derive from PullgateMetrics as follows (PromQL):
//   pass rate      = sum(rate(pullgate_gate_decisions_total{kind="manifest",decision="allow"}[5m]))
//                  / sum(rate(pullgate_gate_decisions_total{kind="manifest"}[5m]))
//   blocks         = sum(rate(pullgate_gate_denials_total[5m]))   (by kind, upstream)
//   unknown status = sum(pullgate_gate_decisions_total{source="unknown"})
//                    (digests with no stored verdict, decided by the scope's "unknown" setting)
//   cache hit ratio= sum(rate(pullgate_cache_requests_total{result="hit"}[5m]))
//                  / sum(rate(pullgate_cache_requests_total{result=~"hit|miss"}[5m]))
//                    (per kind by adding "by (kind)"; stale serves are counted apart)
//   gate latency   = histogram_quantile(0.99, rate(pullgate_gate_decision_seconds_bucket[5m]))
//   bypass alarm   = increase(pullgate_gate_bypass_suspected_total[1h]) > 0
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/telemetry/upstream_health.hpp"

namespace pullgate::proxy {

// Content-Type of render()'s output.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

class Counter {
 public:
  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Gauge {
 public:
  void set(std::int64_t v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void add(std::int64_t d) noexcept { value_.fetch_add(d, std::memory_order_relaxed); }
  std::int64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

class Histogram {
 public:
  // Upper bounds, finite and strictly increasing (std::invalid_argument otherwise);
  // the +Inf bucket is implicit.
  explicit Histogram(std::vector<double> bounds);

  // NaN is dropped: it would poison _sum for the life of the process.
  void observe(double v) noexcept;

  struct Snapshot {
    std::vector<std::uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;  // equals cumulative.back()
  };
  // Counts are read bucket by bucket, so under concurrent observe() the snapshot is
  // a sum of recent states; count is derived from the buckets so +Inf == count always.
  Snapshot snapshot() const;
  const std::vector<double>& bounds() const noexcept { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // non-cumulative, bounds_.size() + 1
  std::atomic<double> sum_{0};
};

// Comparison of label-value tuples, transparent so with() finds a child without
// building a key.
struct LabelValuesLess {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    auto ai = a.begin();
    auto bi = b.begin();
    for (; ai != a.end() && bi != b.end(); ++ai, ++bi) {
      int c = std::string_view(*ai).compare(std::string_view(*bi));
      if (c != 0) return c < 0;
    }
    return ai == a.end() && bi != b.end();
  }
};

// One metric name: HELP, TYPE and its samples.
class Family {
 public:
  virtual ~Family() = default;
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;

  const std::string& name() const noexcept { return name_; }
  const std::vector<std::string>& label_names() const noexcept { return label_names_; }
  // Appends "# HELP", "# TYPE" and the sample lines.
  virtual void render(std::string& out) const = 0;

 protected:
  Family(std::string name, std::string help, std::vector<std::string> label_names, std::string_view type);
  void render_header(std::string& out) const;

  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  std::string_view type_;
};

// A family with fixed label names whose children are created on first use.
template <class Metric>
class MetricFamily final : public Family {
 public:
  // Children beyond this many share one child whose label values are all
  // kOverflowLabel, so label values taken from requests cannot grow memory without bound.
  static constexpr std::size_t kMaxChildren = 2000;
  static constexpr std::string_view kOverflowLabel = "__overflow__";

  // bounds is used by histogram families only.
  MetricFamily(std::string name, std::string help, std::vector<std::string> label_names,
               std::vector<double> bounds = {});

  // The child for these label values (one per label name, in order; a count that
  // does not match throws std::invalid_argument). The reference stays valid.
  Metric& with(std::initializer_list<std::string_view> label_values) {
    return with(std::span<const std::string_view>(label_values.begin(), label_values.size()));
  }
  Metric& with(std::span<const std::string_view> label_values);

  void render(std::string& out) const override;

  // Calls f(label_values, metric) for each child, under the family's lock (f must be
  // quick): the admin status page's reading of counters.
  template <class F>
  void for_each(F&& f) const {
    std::lock_guard lock(mutex_);
    for (const auto& [labels, metric] : children_) f(labels, metric);
  }

 private:
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  // std::map: nodes never move, so references handed out stay valid.
  std::map<std::vector<std::string>, Metric, LabelValuesLess> children_;
};

using CounterFamily = MetricFamily<Counter>;
using GaugeFamily = MetricFamily<Gauge>;
using HistogramFamily = MetricFamily<Histogram>;
extern template class MetricFamily<Counter>;
extern template class MetricFamily<Gauge>;
extern template class MetricFamily<Histogram>;

struct LabelledValue {
  std::vector<std::string> label_values;
  double value = 0;
};

// Families in registration order. Registration validates names (Prometheus metric
// and label name syntax, no duplicates) and throws std::invalid_argument; it is done
// at startup by code, never from request data.
class Registry {
 public:
  CounterFamily& counter_family(std::string name, std::string help, std::vector<std::string> label_names);
  GaugeFamily& gauge_family(std::string name, std::string help, std::vector<std::string> label_names);
  HistogramFamily& histogram_family(std::string name, std::string help, std::vector<std::string> label_names,
                                    std::vector<double> bounds);
  // Unlabelled metrics.
  Counter& counter(std::string name, std::string help);
  Gauge& gauge(std::string name, std::string help);
  Histogram& histogram(std::string name, std::string help, std::vector<double> bounds);

  // Gauges read at scrape time. The callback runs on the scraping thread, without
  // registry locks held, so it may take its own locks; whatever it captures must
  // outlive every render(). Exceptions it throws propagate out of render().
  void gauge_callback(std::string name, std::string help, std::function<double()> read);
  // Labelled: each sample carries one value per label name; a sample with another
  // count is not rendered.
  void gauge_callback(std::string name, std::string help, std::vector<std::string> label_names,
                      std::function<std::vector<LabelledValue>()> read);

  // Prometheus text format 0.0.4 (serve with kMetricsContentType).
  std::string render() const;

 private:
  template <class F>
  F& add(std::unique_ptr<F> family);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Family>> families_;
};

// pullgate's metrics, constructed once and passed by reference. Names carry the
// "pullgate_" prefix; label value sets are listed where they are fixed.
struct PullgateMetrics {
  PullgateMetrics();
  PullgateMetrics(const PullgateMetrics&) = delete;
  PullgateMetrics& operator=(const PullgateMetrics&) = delete;

  Registry registry;  // declared first: the references below point into it

  CounterFamily& gate_decisions;         // {kind=manifest|blob, decision, mode, source}
  CounterFamily& gate_denials;           // {kind, upstream}
  Histogram& gate_decision_seconds;
  Counter& gate_evaluations;
  Gauge& gate_memo_entries;              // decisions remembered for reuse, over all threads
  CounterFamily& gate_bypass_suspected;  // {upstream}
  CounterFamily& cache_requests;         // {kind=manifest|tag|blob|response, result=hit|miss|stale}
  CounterFamily& upstream_requests;      // {upstream, status=<HTTP code>|error}
  CounterFamily& http_requests;          // {method, status}
  Histogram& http_request_seconds;
  Counter& bytes_served;
  Counter& bytes_fetched;
  CounterFamily& policy_reloads;         // {result=ok|refused}
  Counter& audit_write_failures;
  Counter& audit_refused;         // decisions answered 503: the audit queue was full (audit_on_full "refuse")
  Counter& audit_lines_dropped;   // decisions served without their line (audit_on_full "serve")
  CounterFamily& signal_checks;          // {kind=signature|sbom, result=valid|invalid|missing|found|artifact}
  // Cache lifecycle (docs/cache.md), set by each eviction run.
  Gauge& cache_bytes;                    // blobs, manifests and cached answers
  Gauge& cache_blob_files;
  Gauge& cache_pinned_bytes;             // what pinned images hold
  CounterFamily& evictions;              // {what=image|response|blob, reason=size|unpulled|manual}
  CounterFamily& evicted_bytes;          // {reason}
  CounterFamily& garbage_removed;        // {what=orphan_file|missing_file|stale_temp|seen|signals|verdicts}
  CounterFamily& connections_shed;       // {reason=header|idle}: closed near the descriptor limit
  std::atomic<double> eviction_last_run_seconds{0};  // pullgate_eviction_last_run_seconds
  UpstreamHealth upstream_health;  // the status page's; fed with upstream_requests

  // One upstream request's end: upstream_requests{upstream, status|"error"} and
  // upstream_health. status 0: no answer, `error` says why.
  void count_upstream(std::string_view upstream, unsigned status, std::string_view error = {});

  // Scrape-time gauges the server owns the data for; each may be registered once.
  void track_blob_fetches_in_flight(std::function<double()> read);  // pullgate_blob_fetches_in_flight
  void track_verdicts_stored(std::function<double()> read);         // pullgate_verdicts_stored
  void track_policy_version(std::function<std::string()> read);     // pullgate_policy_info{version} 1

  std::string render() const { return registry.render(); }
};

}  // namespace pullgate::proxy
