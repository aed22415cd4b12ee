#!/usr/bin/env python3
"""Targets and the side-by-side table for the pullgate bench.

    report.py RESULTS.json     # prints the table again from a saved run
"""
import json
import statistics
import sys

MIB = 1 << 20
SERVERS = ("pullgate", "distribution", "nginx", "nginx-cache")
# The column each server's figures and pullgate's ratio to them are shown under.
COLUMN = {"pullgate": "pullgate", "distribution": "distribution", "nginx": "nginx",
          "nginx-cache": "nginx cache"}
RATIO = {"nginx": "pg/nginx", "distribution": "pg/dist", "nginx-cache": "pg/cache"}
# The rows (by how their label starts) of a server measured on some only: nginx cache
# runs the cold rounds with 1 and N clients (its warm path is the static nginx's).
MEASURED = {"nginx-cache": ("1 client", "N clients")}
RPS_TARGET = 30000
THROUGHPUT_SHARE = 0.90
CPU_FACTOR = 1.5
SPREAD_MS = 100
RSS_MIB = 64
HEAD_BYTES_LIMIT = MIB  # a HEAD's answer is headers; anything near a blob's size is a download
GATE_COST_PCT = 5.0  # issue 3: the gate costs under 5% of throughput ...
GATE_P99_US = 50.0  # ... and under 50 us at p99
GATE_CASES = (("manifest_tag", "manifest by tag"), ("manifest_digest", "manifest by digest"),
              ("blob_head", "blob HEAD"))


def dig(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def rps(case):
    def get(r):
        if dig(r, "warm", case, "valid") is False:
            return None
        return dig(r, "warm", case, "rps")
    return get


def warm_ms(case, key):
    def get(r):
        if dig(r, "warm", case, "valid") is False:
            return None
        return dig(r, "warm", case, key)
    return get


def cold(key, *path):
    def get(r):
        return dig(r, key, *path)
    return get


def cold_mib(key):
    def get(r):
        b = dig(r, key, "upstream", "bytes_down")
        return None if b is None else b / MIB
    return get


def cold_ok(key, *path):
    """A cold figure only counts if every client got the whole blob."""
    def get(r):
        s = r.get(key)
        if not s or s.get("ok") != s.get("clients"):
            return None
        return dig(s, *path)
    return get


def fill_mb_s(key):
    """The blob's size over the slowest client's time: how fast the cold path moved it
    from the upstream to the clients (MB = 10^6 bytes)."""
    def get(r):
        size, total = cold_ok(key, "content_length")(r), cold_ok(key, "total_s_max")(r)
        return size / 1e6 / total if size and total else None
    return get


def peak_rss(r):
    values = [dig(r, k, "peak_rss_mib") for k in ("warm_rss", "cold_rss")]
    values = [v for v in values if v is not None]
    return max(values) if values else None


# label, getter, format, target id, higher_is_better (None: no ratio column)
ROWS = [
    ("section", "warm (cached)"),
    ("manifest by tag, req/s", rps("manifest_tag"), "{:,.0f}", "manifest_tag_rps", True),
    ("  p50 / p99 ms", (warm_ms("manifest_tag", "p50_ms"), warm_ms("manifest_tag", "p99_ms")), "{:.2f}", None, None),
    ("  server core busy", warm_ms("manifest_tag", "server_cpu_busy"), "{:.0%}", None, None),
    ("manifest by digest, req/s", rps("manifest_digest"), "{:,.0f}", "manifest_digest_rps", True),
    ("  p50 / p99 ms", (warm_ms("manifest_digest", "p50_ms"), warm_ms("manifest_digest", "p99_ms")), "{:.2f}", None, None),
    ("  server core busy", warm_ms("manifest_digest", "server_cpu_busy"), "{:.0%}", None, None),
    ("blob HEAD, req/s", rps("blob_head"), "{:,.0f}", "blob_head_rps", True),
    ("  p50 / p99 ms", (warm_ms("blob_head", "p50_ms"), warm_ms("blob_head", "p99_ms")), "{:.2f}", None, None),
    ("  server core busy", warm_ms("blob_head", "server_cpu_busy"), "{:.0%}", None, None),
    ("blob GET throughput, GB/s", cold("throughput", "gb_per_s"), "{:.2f}", "throughput", True),
    ("  from disk (page cache dropped), GB/s", cold("throughput", "first_get_gb_per_s"), "{:.2f}", None, False),
    ("server CPU s per GB", cold("throughput", "cpu_s_per_gb"), "{:.3f}", "cpu_per_gb", False),
    ("peak RSS MiB, 16 warm clients", cold("warm_rss", "peak_rss_mib"), "{:.1f}", None, False),
    ("section", "cold (empty cache)"),
    ("1 client: first body byte ms", cold_ok("cold_1", "first_body_ms_min"), "{:.1f}", None, False),
    ("1 client: total s", cold_ok("cold_1", "total_s_max"), "{:.2f}", "cold_1_total", False),
    ("1 client: fill throughput MB/s", fill_mb_s("cold_1"), "{:,.0f}", None, True),
    ("1 client: upstream MiB", cold_mib("cold_1"), "{:.1f}", None, False),
    ("N clients: blob GETs upstream", cold("cold_n", "upstream", "blob_gets"), "{:d}", "cold_single_fetch", False),
    ("N clients: upstream MiB", cold_mib("cold_n"), "{:.1f}", None, False),
    ("N clients: first body ms (first)", cold_ok("cold_n", "first_body_ms_min"), "{:.1f}", None, False),
    ("N clients: first body spread ms", cold_ok("cold_n", "first_body_spread_ms"), "{:.1f}", "cold_first_byte", False),
    ("N clients: slowest total s", cold_ok("cold_n", "total_s_max"), "{:.2f}", "cold_n_total", False),
    ("HEAD: upstream bytes", cold("cold_head", "upstream", "bytes_down"), "{:,d}", "cold_head", False),
    ("HEAD: blob GETs upstream", cold("cold_head", "upstream", "blob_gets"), "{:d}", None, False),
    ("peak RSS MiB, 16 cold clients", cold("cold_rss", "peak_rss_mib"), "{:.1f}", None, False),
    ("peak RSS MiB, 16 clients (max)", peak_rss, "{:.1f}", "peak_rss", False),
]


def gate_ab(r):
    """pullgate's gate-on vs gate-off comparison, or None when it was not measured."""
    return dig(r, "gate_ab")


def gate_verdict_hit(ab):
    """True when no policy evaluation ran during the load: every request hit the stored verdict."""
    if not ab or "evaluations_after" not in ab:
        return None
    return ab["evaluations_after"] == ab["evaluations_before"] and ab["evaluations_before"] >= 1


def pair_costs(on, off):
    """The cost of each on/off run pair, in %."""
    return [(b["rps"] - a["rps"]) / b["rps"] * 100 for a, b in zip(on.get("runs", []), off.get("runs", [])) if b["rps"]]


def pair_cost(on, off):
    """The gate's throughput cost: the median of the run pairs' costs (each pair ran back
    to back, so the machine's drift cancels within a pair); results without runs (old
    JSON): the cost of the medians."""
    costs = pair_costs(on, off)
    if costs:
        return statistics.median(costs)
    return (off["rps"] - on["rps"]) / off["rps"] * 100 if off["rps"] else None


def gate_figures(r, case):
    """(on rps, off rps, cost %, on p99 us, off p99 us, p99 diff us, p99 diff us at saturation); None where
    not valid. The p99 figures are from the light-load runs (one connection: a request's own latency); at
    saturation a p99 is mostly the queue behind the other connections, so its difference restates the
    throughput cost, and is shown for information."""
    ab = gate_ab(r)
    if not ab:
        return (None,) * 7
    on, off = dig(r, "warm", case), dig(ab, "gate_off", case)
    if not on or not off or not on.get("valid") or not off.get("valid") or not gate_verdict_hit(ab):
        return (None,) * 7
    cost = pair_cost(on, off)
    saturated_diff = (on["p99_ms"] - off["p99_ms"]) * 1000
    light_on, light_off = dig(r, "warm", case + "_light"), dig(ab, "gate_off", case + "_light")
    if not light_on or not light_off or not light_on.get("valid") or not light_off.get("valid"):
        return on["rps"], off["rps"], cost, None, None, None, saturated_diff
    on_p99, off_p99 = light_on["p99_ms"] * 1000, light_off["p99_ms"] * 1000
    return on["rps"], off["rps"], cost, on_p99, off_p99, on_p99 - off_p99, saturated_diff


def evaluate(doc):
    res = doc["results"]
    pg = res.get("pullgate")
    nginx = res.get("nginx") or {}
    nginx_cache = res.get("nginx-cache") or {}
    blob_mib = doc["meta"]["blob_bytes"] // MIB
    n = doc["meta"]["cold_clients"]
    targets = []

    def add(tid, text, value, ok, needs_nginx=False, needs_nginx_cache=False):
        if not have_pg or (needs_nginx and not nginx) or (needs_nginx_cache and not nginx_cache):
            verdict = "n/a"  # pullgate, or the baseline the target is relative to, was not run
        elif value is None:
            verdict = "FAIL"  # no figure: it broke or did not serve correctly
        else:
            verdict = "PASS" if ok else "FAIL"
        targets.append({"id": tid, "text": text, "value": value, "verdict": verdict})

    have_pg = pg is not None
    pg = pg or {}
    for case, tid in (("manifest_tag", "manifest_tag_rps"), ("manifest_digest", "manifest_digest_rps"),
                      ("blob_head", "blob_head_rps")):
        v = rps(case)(pg)
        add(tid, f">= {RPS_TARGET:,} req/s", v, v is not None and v >= RPS_TARGET)
    v, base = cold("throughput", "gb_per_s")(pg), cold("throughput", "gb_per_s")(nginx)
    add("throughput", f">= {THROUGHPUT_SHARE:.0%} of nginx", v,
        v is not None and base is not None and v >= THROUGHPUT_SHARE * base, needs_nginx=True)
    v, base = cold("throughput", "cpu_s_per_gb")(pg), cold("throughput", "cpu_s_per_gb")(nginx)
    add("cpu_per_gb", f"<= {CPU_FACTOR}x nginx", v, v is not None and base is not None and v <= CPU_FACTOR * base,
        needs_nginx=True)
    # The cold path against nginx proxy_cache (issue 10): one client at least as fast,
    # N clients' wall time below it.
    v, base = cold_ok("cold_1", "total_s_max")(pg), cold_ok("cold_1", "total_s_max")(nginx_cache)
    add("cold_1_total", "<= nginx proxy_cache", v, v is not None and base is not None and v <= base,
        needs_nginx_cache=True)
    v, base = cold_ok("cold_n", "total_s_max")(pg), cold_ok("cold_n", "total_s_max")(nginx_cache)
    add("cold_n_total", "< nginx proxy_cache", v, v is not None and base is not None and v < base,
        needs_nginx_cache=True)
    s = pg.get("cold_n") or {}
    gets = dig(s, "upstream", "blob_gets")
    all_ok = bool(s) and s.get("ok") == s.get("clients")
    add("cold_single_fetch", f"== 1 with {n} clients, all served", gets if all_ok else None, gets == 1)
    v = cold_ok("cold_n", "first_body_spread_ms")(pg)
    add("cold_first_byte", f"<= {SPREAD_MS} ms after the first", v, v is not None and v <= SPREAD_MS)
    h = pg.get("cold_head") or {}
    head_bytes = dig(h, "upstream", "bytes_down")
    head_ok = h.get("ok") == 1 and h.get("content_length") == doc["image"]["large_bytes"]
    add("cold_head", f"no blob download (< {HEAD_BYTES_LIMIT // 1024} KiB, 0 GETs)",
        head_bytes if head_ok else None,
        head_bytes is not None and head_bytes < HEAD_BYTES_LIMIT and dig(h, "upstream", "blob_gets") == 0)
    v = peak_rss(pg)
    add("peak_rss", f"< {RSS_MIB} MiB ({blob_mib} MiB blob)", v, v is not None and v < RSS_MIB)
    for case, _ in GATE_CASES:
        _, _, cost, _, _, diff, _ = gate_figures(pg, case)
        add(f"gate_cost_{case}", f"< {GATE_COST_PCT:g}% of req/s", cost, cost is not None and cost < GATE_COST_PCT)
        add(f"gate_p99_{case}", f"< {GATE_P99_US:g} us at p99 (light load)", diff,
            diff is not None and diff < GATE_P99_US)
    return targets


def gate_table(doc, targets):
    """The gate's cost (issue 3): pullgate with the gate on (stored verdict hit) vs off."""
    pg = doc["results"].get("pullgate")
    if pg is None:
        return []
    cols = ["gate on vs off", "on req/s", "off req/s", "cost", "target", "verdict",
            "on p99 us", "off p99 us", "p99 diff us", "target", "verdict", "p99 diff us saturated"]
    rows = []
    for case, label in GATE_CASES:
        on, off, cost, on_p99, off_p99, diff, saturated = gate_figures(pg, case)
        tc, tp = targets.get(f"gate_cost_{case}", {}), targets.get(f"gate_p99_{case}", {})
        rows.append([label, fmt(on, "{:,.0f}"), fmt(off, "{:,.0f}"), fmt(cost, "{:+.1f}%"),
                     tc.get("text", ""), tc.get("verdict", ""), fmt(on_p99, "{:,.0f}"), fmt(off_p99, "{:,.0f}"),
                     fmt(diff, "{:+,.0f}"), tp.get("text", ""), tp.get("verdict", ""), fmt(saturated, "{:+,.0f}")])
    widths = [max(len(r[i]) for r in [cols] + rows) for i in range(len(cols))]
    text_cols = (0, 4, 5, 9, 10)
    lines = ["", "[gate: pullgate with the gate on (stored verdict hit) vs off, same run, runs alternating; "
                 "cost = median over the run pairs of (off - on) / off req/s at saturation; p99 at light load (one connection), on - off; "
                 "last column: the p99 difference at saturation, mostly queueing, for information]",
             "  ".join(c.ljust(w) for c, w in zip(cols, widths)),
             "  ".join("-" * w for w in widths)]
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i in text_cols else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    ab = gate_ab(pg)
    if ab and "evaluations_after" in ab:
        evals = ab["evaluations_after"] - ab["evaluations_before"]
        decisions = ab["decisions_after"] - ab["decisions_before"]
        lines.append(f"  gate on during the load: {decisions:,.0f} gate decisions, {evals:,.0f} policy evaluations "
                     f"({ab['evaluations_before']:.0f} before it, from the warm-up pulls); gate off: "
                     f"{ab['gate_off_decisions_after'] - ab['gate_off_decisions_before']:,.0f} decisions; "
                     f"audit log files on disk grew {(ab['audit_bytes_after'] - ab['audit_bytes_before']) / MIB:,.0f} MiB "
                     "(after rotation dropped the oldest; one line per decision)")
        if not gate_verdict_hit(ab):
            lines.append("! gate: policy evaluations ran during the load (or no verdict was stored first): "
                         "the requests did not all hit a stored verdict; gate figures not counted")
        for case, label in [c for base in GATE_CASES for c in (base, (base[0] + "_light", base[1] + ", light load"))]:
            on, off = dig(pg, "warm", case, "runs"), dig(ab, "gate_off", case, "runs")
            if on and off:
                costs = pair_costs({"runs": on}, {"runs": off})
                diffs = [a["p99_us"] - b["p99_us"] for a, b in zip(on, off)]
                lines.append(f"  {label} per run pair: cost " + ", ".join(f"{c:+.1f}%" for c in costs) +
                             "; p99 diff " + ", ".join(f"{d:+,d} us" for d in diffs))
            w = dig(ab, "gate_off", case)
            if w and not w.get("valid", True):
                lines.append(f"! pullgate gate off: {case}: {w['errors']} of {w['requests']} requests failed: "
                             "figure not counted")
    elif "pullgate" in doc["results"]:
        lines.append("! gate: no gate-on vs gate-off figures (see the errors above)")
    return lines


def fmt(value, pattern):
    if value is None:
        return "-"
    try:
        return pattern.format(value)
    except (ValueError, TypeError):
        return str(value)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def table(doc):
    res = doc["results"]
    targets = {t["id"]: t for t in doc.get("targets", [])}
    meta = doc["meta"]
    cols = ["metric"] + [COLUMN[n] for n in SERVERS] + list(RATIO.values()) + ["target", "verdict"]
    rows = []
    for spec in ROWS:
        if spec[0] == "section":
            rows.append(("section", spec[1]))
            continue
        label, getter, pattern, tid, direction = spec
        show_ratio = direction is not None and not isinstance(getter, tuple)
        cells = [label]
        values = {}
        for name in SERVERS:
            r = res.get(name)
            if r is None or (name in MEASURED and not label.startswith(MEASURED[name])):
                cells.append("")
                continue
            if isinstance(getter, tuple):
                a, b = (g(r) for g in getter)
                cells.append(f"{fmt(a, pattern)} / {fmt(b, pattern)}")
            else:
                values[name] = getter(r)
                cells.append(fmt(values[name], pattern))
        pg = values.get("pullgate")
        for name in RATIO:
            cells.append(ratio(pg, values.get(name)) if show_ratio else "")
        t = targets.get(tid)
        cells.append(t["text"] if t else "")
        cells.append(t["verdict"] if t else "")
        rows.append(cells)
    widths = [max(len(c[i]) for c in [cols] + [r for r in rows if r[0] != "section"]) for i in range(len(cols))]
    lines = [
        f"pullgate bench {meta['date']}  {'QUICK' if meta['quick'] else 'FULL'}: large blob "
        f"{meta['blob_bytes'] // MIB} MiB, wrk {meta['wrk']} x{meta['runs']} (median), "
        f"{meta['throughput_gets']} GETs for throughput, N = {meta['cold_clients']} cold clients; "
        f"servers on CPU {meta['server_cpu']}, clients on CPU {meta['client_cpu']}",
        "  ".join(c.ljust(w) for c, w in zip(cols, widths)),
        "  ".join("-" * w for w in widths),
    ]
    for r in rows:
        if r[0] == "section":
            lines.append(f"[{r[1]}]")
        else:
            lines.append("  ".join(c.ljust(w) if i == 0 or i >= len(cols) - 2 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    for name in SERVERS:
        for e in (res.get(name) or {}).get("errors", []):
            lines.append(f"! {name}: {e}")
        for case, w in ((res.get(name) or {}).get("warm") or {}).items():
            if not w.get("valid", True):
                lines.append(f"! {name}: {case}: {w['errors']} of {w['requests']} requests failed "
                             f"(non-2xx/3xx, connect, read or timeout): figure not counted")
    lines += gate_table(doc, targets)
    load = meta.get("loadavg_start")
    if load is not None:
        lines.append(f"machine load average (1 min) at start {load:.2f}, at end {meta.get('loadavg_end', 0):.2f}")
    if load is not None and load > 1.0:
        lines.append(f"! the machine was busy (load average {load:.2f} at start, {meta.get('loadavg_end', 0):.2f} at end): "
                     "other processes shared the cores, so the figures are low and noisy")
    verdicts = [t["verdict"] for t in doc.get("targets", [])]
    lines.append(f"targets: {verdicts.count('PASS')} PASS, {verdicts.count('FAIL')} FAIL, "
                 f"{verdicts.count('n/a')} n/a")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: report.py RESULTS.json")
    with open(sys.argv[1]) as f:
        saved = json.load(f)
    saved["targets"] = evaluate(saved)  # with this version's targets
    print(table(saved))
