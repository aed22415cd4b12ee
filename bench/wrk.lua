-- wrk script for the pullgate bench: method and Accept header from the
-- environment, and one machine-readable result line at the end.
wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.headers["Accept"] = os.getenv("BENCH_ACCEPT") or "*/*"
wrk.headers["User-Agent"] = "pullgate-bench"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
