#include "proxy/telemetry/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <type_traits>

#include "proxy/telemetry/kinds.hpp"
#include "proxy/telemetry/utf8.hpp"

namespace pullgate::proxy {

namespace {

// Length of what the text format carries as it is at s[i]: a printable ASCII byte,
// tab or newline (escaped), or a valid UTF-8 sequence; 0 for a byte written as '?'.
// The format is line based, parsers reject invalid UTF-8, and label values can come
// from requests.
std::size_t carried(std::string_view s, std::size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return (c >= 0x20 && c != 0x7f) || c == '\t' || c == '\n' ? 1 : 0;
  return utf8_sequence(s, i);
}

bool is_clean(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    auto n = carried(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// s with each byte the format cannot carry made '?'.
std::string clean_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    if (auto n = carried(s, i)) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += '?';
      ++i;
    }
  }
  return out;
}

// Escapes for a label value (\\ \" \n) or HELP text (\\ \n), of the cleaned text.
void append_escaped(std::string& out, std::string_view s, bool quote) {
  for (char c : clean_text(s)) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '"' && quote) out += "\\\"";
    else out += c;
  }
}

void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_int(std::string& out, std::int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// Shortest text that reads back as the same double; the format's spellings for
// the non-finite values.
void append_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
  }
}

bool valid_metric_name(std::string_view s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool valid_label_name(std::string_view s) {
  if (s.empty() || s.starts_with("__")) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// `{a="x",b="y"` without the closing brace, so a histogram can append le; empty when
// there are no labels.
std::string label_prefix(const std::vector<std::string>& names, const std::vector<std::string>& values) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    out += i == 0 ? '{' : ',';
    out += names[i];
    out += "=\"";
    append_escaped(out, values[i], true);
    out += '"';
  }
  return out;
}

void append_labels(std::string& out, const std::string& prefix) {
  if (prefix.empty()) return;
  out += prefix;
  out += '}';
}

void render_child(std::string& out, const std::string& name, const std::string& labels, const Counter& c) {
  out += name;
  append_labels(out, labels);
  out += ' ';
  append_uint(out, c.value());
  out += '\n';
}

void render_child(std::string& out, const std::string& name, const std::string& labels, const Gauge& g) {
  out += name;
  append_labels(out, labels);
  out += ' ';
  append_int(out, g.value());
  out += '\n';
}

void render_child(std::string& out, const std::string& name, const std::string& labels, const Histogram& h) {
  auto snap = h.snapshot();
  const auto& bounds = h.bounds();
  auto bucket_open = [&] {
    out += name;
    out += "_bucket";
    out += labels.empty() ? "{" : labels + ",";
    out += "le=\"";
  };
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    bucket_open();
    append_double(out, bounds[i]);
    out += "\"} ";
    append_uint(out, snap.cumulative[i]);
    out += '\n';
  }
  bucket_open();
  out += "+Inf\"} ";
  append_uint(out, snap.count);
  out += '\n';
  out += name;
  out += "_sum";
  append_labels(out, labels);
  out += ' ';
  append_double(out, snap.sum);
  out += '\n';
  out += name;
  out += "_count";
  append_labels(out, labels);
  out += ' ';
  append_uint(out, snap.count);
  out += '\n';
}

template <class Metric>
constexpr std::string_view type_name() {
  if constexpr (std::is_same_v<Metric, Counter>) return "counter";
  else if constexpr (std::is_same_v<Metric, Gauge>) return "gauge";
  else return "histogram";
}

// Gauges whose value is read at scrape time.
class CallbackGaugeFamily final : public Family {
 public:
  CallbackGaugeFamily(std::string name, std::string help, std::vector<std::string> label_names,
                      std::function<std::vector<LabelledValue>()> read)
      : Family(std::move(name), std::move(help), std::move(label_names), "gauge"), read_(std::move(read)) {}

  void render(std::string& out) const override {
    render_header(out);
    for (const auto& sample : read_()) {
      if (sample.label_values.size() != label_names_.size()) continue;
      out += name_;
      append_labels(out, label_prefix(label_names_, sample.label_values));
      out += ' ';
      append_double(out, sample.value);
      out += '\n';
    }
  }

 private:
  std::function<std::vector<LabelledValue>()> read_;
};

}  // namespace

// ---- Histogram

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i])) throw std::invalid_argument("histogram bound is not finite");
    if (i > 0 && !(bounds_[i - 1] < bounds_[i]))
      throw std::invalid_argument("histogram bounds are not strictly increasing");
  }
  buckets_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
}

void Histogram::observe(double v) noexcept {
  if (std::isnan(v)) return;
  // First bound >= v: buckets are "less than or equal" (le).
  auto i = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.cumulative.resize(bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

// ---- Family

Family::Family(std::string name, std::string help, std::vector<std::string> label_names, std::string_view type)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)), type_(type) {
  if (!valid_metric_name(name_)) throw std::invalid_argument("invalid metric name: " + name_);
  for (std::size_t i = 0; i < label_names_.size(); ++i) {
    const auto& l = label_names_[i];
    if (!valid_label_name(l)) throw std::invalid_argument("metric " + name_ + ": invalid label name: " + l);
    if (type_ == "histogram" && l == "le") throw std::invalid_argument("metric " + name_ + ": label le is reserved");
    if (std::find(label_names_.begin(), label_names_.begin() + i, l) != label_names_.begin() + i)
      throw std::invalid_argument("metric " + name_ + ": duplicate label name: " + l);
  }
}

void Family::render_header(std::string& out) const {
  out += "# HELP ";
  out += name_;
  out += ' ';
  append_escaped(out, help_, false);
  out += "\n# TYPE ";
  out += name_;
  out += ' ';
  out += type_;
  out += '\n';
}

template <class Metric>
MetricFamily<Metric>::MetricFamily(std::string name, std::string help, std::vector<std::string> label_names,
                                   std::vector<double> bounds)
    : Family(std::move(name), std::move(help), std::move(label_names), type_name<Metric>()),
      bounds_(std::move(bounds)) {
  // Validate the bounds now rather than at the first with().
  if constexpr (std::is_same_v<Metric, Histogram>) Histogram check(bounds_);
  else if (!bounds_.empty()) throw std::invalid_argument("metric " + name_ + ": bounds on a non-histogram");
}

template <class Metric>
Metric& MetricFamily<Metric>::with(std::span<const std::string_view> label_values) {
  if (label_values.size() != label_names_.size())
    throw std::invalid_argument("metric " + name_ + " takes " + std::to_string(label_names_.size()) +
                                " label values, got " + std::to_string(label_values.size()));
  // Children are keyed by their values as rendered: two values that render alike are
  // one series, never two samples of one series (Prometheus would drop one).
  if (!std::all_of(label_values.begin(), label_values.end(), is_clean)) {
    std::vector<std::string> cleaned;
    for (auto v : label_values) cleaned.push_back(clean_text(v));
    std::vector<std::string_view> views(cleaned.begin(), cleaned.end());
    return with(std::span<const std::string_view>(views));
  }
  std::lock_guard lock(mutex_);
  if (auto it = children_.find(label_values); it != children_.end()) return it->second;
  std::vector<std::string> key;
  key.reserve(label_values.size());
  if (children_.size() + 1 >= kMaxChildren) {
    // The last slot is kept for the overflow child.
    key.assign(label_values.size(), std::string(kOverflowLabel));
  } else {
    for (auto v : label_values) key.emplace_back(v);
  }
  if constexpr (std::is_same_v<Metric, Histogram>) return children_.try_emplace(std::move(key), bounds_).first->second;
  else return children_.try_emplace(std::move(key)).first->second;
}

template <class Metric>
void MetricFamily<Metric>::render(std::string& out) const {
  render_header(out);
  std::lock_guard lock(mutex_);
  for (const auto& [values, metric] : children_) render_child(out, name_, label_prefix(label_names_, values), metric);
}

template class MetricFamily<Counter>;
template class MetricFamily<Gauge>;
template class MetricFamily<Histogram>;

// ---- Registry

template <class F>
F& Registry::add(std::unique_ptr<F> family) {
  std::lock_guard lock(mutex_);
  for (const auto& f : families_)
    if (f->name() == family->name()) throw std::invalid_argument("metric registered twice: " + family->name());
  F& ref = *family;
  families_.push_back(std::move(family));
  return ref;
}

CounterFamily& Registry::counter_family(std::string name, std::string help, std::vector<std::string> label_names) {
  return add(std::make_unique<CounterFamily>(std::move(name), std::move(help), std::move(label_names)));
}

GaugeFamily& Registry::gauge_family(std::string name, std::string help, std::vector<std::string> label_names) {
  return add(std::make_unique<GaugeFamily>(std::move(name), std::move(help), std::move(label_names)));
}

HistogramFamily& Registry::histogram_family(std::string name, std::string help, std::vector<std::string> label_names,
                                            std::vector<double> bounds) {
  return add(std::make_unique<HistogramFamily>(std::move(name), std::move(help), std::move(label_names),
                                               std::move(bounds)));
}

Counter& Registry::counter(std::string name, std::string help) {
  return counter_family(std::move(name), std::move(help), {}).with(std::span<const std::string_view>());
}

Gauge& Registry::gauge(std::string name, std::string help) {
  return gauge_family(std::move(name), std::move(help), {}).with(std::span<const std::string_view>());
}

Histogram& Registry::histogram(std::string name, std::string help, std::vector<double> bounds) {
  return histogram_family(std::move(name), std::move(help), {}, std::move(bounds))
      .with(std::span<const std::string_view>());
}

void Registry::gauge_callback(std::string name, std::string help, std::function<double()> read) {
  if (!read) throw std::invalid_argument("metric " + name + ": empty callback");
  add(std::make_unique<CallbackGaugeFamily>(
      std::move(name), std::move(help), std::vector<std::string>{},
      [read = std::move(read)] { return std::vector<LabelledValue>{{{}, read()}}; }));
}

void Registry::gauge_callback(std::string name, std::string help, std::vector<std::string> label_names,
                              std::function<std::vector<LabelledValue>()> read) {
  if (!read) throw std::invalid_argument("metric " + name + ": empty callback");
  add(std::make_unique<CallbackGaugeFamily>(std::move(name), std::move(help), std::move(label_names),
                                            std::move(read)));
}

std::string Registry::render() const {
  // Families are never removed, so the pointers stay valid after the lock is
  // released; callbacks then run without the registry lock.
  std::vector<const Family*> families;
  {
    std::lock_guard lock(mutex_);
    families.reserve(families_.size());
    for (const auto& f : families_) families.push_back(f.get());
  }
  std::string out;
  out.reserve(16 * 1024);
  for (const auto* f : families) f->render(out);
  return out;
}

// ---- PullgateMetrics

namespace {

const std::vector<double> kGateDecisionBounds = {5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4,
                                                 5e-4, 1e-3, 5e-3,   1e-2, 5e-2};
const std::vector<double> kHttpRequestBounds = {1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2,
                                                5e-2, 0.1,    0.25, 0.5,  1,      2.5,  5,    10};

}  // namespace

PullgateMetrics::PullgateMetrics()
    : gate_decisions(registry.counter_family(
          "pullgate_gate_decisions_total",
          "Gate decisions made, by artifact kind, decision, policy mode and verdict source.",
          {"kind", "decision", "mode", "source"})),
      gate_denials(registry.counter_family("pullgate_gate_denials_total",
                                           "Requests the gate refused, by artifact kind and upstream.",
                                           {"kind", "upstream"})),
      gate_decision_seconds(registry.histogram("pullgate_gate_decision_seconds",
                                               "Time spent computing one gate decision, in seconds.",
                                               kGateDecisionBounds)),
      gate_evaluations(registry.counter("pullgate_gate_evaluations_total",
                                        "Policy evaluations run by the gate; decisions served from a stored verdict are not counted.")),
      gate_memo_entries(registry.gauge(
          "pullgate_gate_memo_entries",
          "Decisions the gate remembers for reuse (each for at most a second), over all threads.")),
      gate_bypass_suspected(registry.counter_family(
          "pullgate_gate_bypass_suspected_total",
          "Content that reached a client without a gate decision for it, by upstream.", {"upstream"})),
      cache_requests(registry.counter_family("pullgate_cache_requests_total",
                                             "Cache lookups, by kind (manifest, tag, blob, response) and result.",
                                             {"kind", "result"})),
      upstream_requests(registry.counter_family(
          "pullgate_upstream_requests_total",
          "Requests sent to upstream registries, by upstream and HTTP status (or \"error\" when none came back).",
          {"upstream", "status"})),
      http_requests(registry.counter_family("pullgate_http_requests_total",
                                            "Client HTTP requests answered, by method and status.",
                                            {"method", "status"})),
      http_request_seconds(registry.histogram("pullgate_http_request_seconds",
                                              "Time from request read to response written, in seconds.",
                                              kHttpRequestBounds)),
      bytes_served(registry.counter("pullgate_bytes_served_total", "Body bytes sent to clients.")),
      bytes_fetched(registry.counter("pullgate_bytes_fetched_total", "Body bytes received from upstreams.")),
      policy_reloads(registry.counter_family("pullgate_policy_reloads_total",
                                             "Policy reloads, by result (ok, or refused when the new policy is invalid).",
                                             {"result"})),
      audit_write_failures(registry.counter("pullgate_audit_write_failures_total",
                                            "Audit records that could not be written.")),
      audit_refused(registry.counter("pullgate_audit_refused_total",
                                     "Requests answered 503 because the audit queue was full (the disk is behind).")),
      audit_lines_dropped(registry.counter(
          "pullgate_audit_lines_dropped_total",
          "Decisions served without an audit record because the audit queue was full (gate.audit_on_full serve).")),
      signal_checks(registry.counter_family(
          "pullgate_signal_checks_total",
          "Looks at a digest's signatures, SBOMs and provenance in its registry, by kind (signature, sbom, "
          "provenance) and what was found.",
          {"kind", "result"})),
      cache_bytes(registry.gauge("pullgate_cache_bytes",
                                 "Bytes cached (blob files, manifests, cached answers), as of the last eviction run.")),
      cache_blob_files(registry.gauge("pullgate_cache_blob_files", "Blob files cached, as of the last eviction run.")),
      cache_pinned_bytes(registry.gauge("pullgate_cache_pinned_bytes",
                                        "Bytes pinned images hold (never evicted), as of the last eviction run.")),
      evictions(registry.counter_family("pullgate_evictions_total",
                                        "Cache units evicted, by what (image, response, blob) and reason (size, unpulled, manual).",
                                        {"what", "reason"})),
      evicted_bytes(registry.counter_family("pullgate_evicted_bytes_total", "Bytes freed by eviction, by reason.",
                                            {"reason"})),
      garbage_removed(registry.counter_family(
          "pullgate_cache_garbage_removed_total",
          "Garbage removed by eviction runs, by what: blob files without a record, records without a file, stale "
          "temp files, seen entries and signal findings of manifests gone, verdicts of scopes gone.",
          {"what"})),
      connections_shed(registry.counter_family(
          "pullgate_connections_shed_total",
          "Client connections closed near the file descriptor limit while they only waited on their client, by "
          "reason: header (no complete request yet: slow or stalled headers, a TLS handshake), idle (keep-alive "
          "between requests).",
          {"reason"})) {
  // Known label sets start at zero, so rate() and ratios are defined from the first scrape.
  for (auto lookup : {Lookup::manifest, Lookup::tag, Lookup::blob, Lookup::response})
    for (auto result : {CacheResult::hit, CacheResult::miss, CacheResult::stale})
      cache_requests.with({to_string(lookup), to_string(result)});
  for (auto result : {"ok", "refused"}) policy_reloads.with({result});
  registry.gauge_callback("pullgate_eviction_last_run_seconds", "How long the last eviction run took, in seconds.",
                          [this] { return eviction_last_run_seconds.load(std::memory_order_relaxed); });
  for (auto what : {"orphan_file", "missing_file", "stale_temp", "seen", "signals", "verdicts"})
    garbage_removed.with({what});
  for (auto reason : {"header", "idle"}) connections_shed.with({reason});
  for (auto reason : {"size", "unpulled", "manual"}) {
    evicted_bytes.with({reason});
    for (auto what : {"image", "response", "blob"}) evictions.with({what, reason});
  }
}

void PullgateMetrics::track_blob_fetches_in_flight(std::function<double()> read) {
  registry.gauge_callback("pullgate_blob_fetches_in_flight", "Upstream blob fetches currently running.",
                          std::move(read));
}

void PullgateMetrics::track_verdicts_stored(std::function<double()> read) {
  registry.gauge_callback("pullgate_verdicts_stored", "Verdicts held in the verdict store.", std::move(read));
}

void PullgateMetrics::count_upstream(std::string_view upstream, unsigned status, std::string_view error) {
  const std::string label = status ? std::to_string(status) : "error";
  upstream_requests.with({upstream, label}).inc();
  upstream_health.note(upstream, status, error,
                       std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count());
}

void PullgateMetrics::track_policy_version(std::function<std::string()> read) {
  if (!read) throw std::invalid_argument("pullgate_policy_info: empty callback");
  registry.gauge_callback("pullgate_policy_info", "The loaded policy's version, as a label; the value is always 1.",
                          {"version"}, [read = std::move(read)] {
                            return std::vector<LabelledValue>{{{read()}, 1.0}};
                          });
}

}  // namespace pullgate::proxy
