#!/usr/bin/env python3
"""Fleet benchmark (issue 12): how fast a verdict written on one replica is enforced
by the others, and what the fleet store costs a warm request.

Started by bench/fleet.sh, which pins this script to the client core. See the
"Fleet" section of bench/README.md for what is measured and how to read it.
"""
import datetime
import json
import os
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import seed  # noqa: E402
from bench import LOOPBACK, MANIFEST_ACCEPT, SERVER_CPU, CLIENT_CPU, BenchError, log  # noqa: E402

HERE = bench.HERE
ETCD = "/usr/bin/etcd"
WRITES = bench.env_int("FLEET_WRITES", 100)
PAIRS = bench.env_int("FLEET_PAIRS", 8)
SECONDS = bench.env_int("FLEET_SECONDS", 5)
CONNECTIONS = bench.env_int("FLEET_CONNECTIONS", 32)
# Pause between writes, poll sockets idle: no write starts while the last is in flight.
GAP_S = bench.env_int("FLEET_GAP_MS", 50) / 1000
# A write not seen on a replica within this is a failure, not a slow sample.
WRITE_TIMEOUT_S = 10


# ---------------------------------------------------------------- etcd

class EtcdCluster:
    """Three members on loopback (Debian's etcd-server), as tests/integration/fleet_harness.py
    starts them (50 ms heartbeats, 500 ms elections), each in its own process group on
    the client core: etcd stands for the store elsewhere, off the replicas' core."""

    def __init__(self, procs, work, n=3):
        self.procs = procs
        self.dir = os.path.join(work, "etcd")
        os.makedirs(self.dir)
        self.members = []
        for i in range(n):
            client, peer = bench.free_port(), bench.free_port()
            self.members.append({"name": f"m{i}", "client_url": f"http://{LOOPBACK}:{client}",
                                 "peer_url": f"http://{LOOPBACK}:{peer}"})
        self.procs_ = []

    @property
    def endpoints(self):
        return [m["client_url"] for m in self.members]

    def start(self, timeout=30):
        initial = ",".join(f"{m['name']}={m['peer_url']}" for m in self.members)
        for m in self.members:
            argv = [ETCD, "--name", m["name"], "--data-dir", os.path.join(self.dir, m["name"]),
                    "--listen-client-urls", m["client_url"], "--advertise-client-urls", m["client_url"],
                    "--listen-peer-urls", m["peer_url"], "--initial-advertise-peer-urls", m["peer_url"],
                    "--initial-cluster", initial, "--initial-cluster-state", "new",
                    "--initial-cluster-token", "pullgate-fleet-bench",
                    "--heartbeat-interval", "50", "--election-timeout", "500"]
            self.procs_.append(self.procs.start("etcd-" + m["name"], argv, CLIENT_CPU))
        deadline = time.monotonic() + timeout
        while not all(self.healthy(m) for m in self.members):
            for p in self.procs_:
                if p.poll() is not None:
                    raise BenchError(f"{p.bench_name} exited; {bench.tail(p.bench_log)}")
            if time.monotonic() > deadline:
                raise BenchError("etcd cluster not healthy after %ds" % timeout)
            time.sleep(0.1)

    @staticmethod
    def healthy(m):
        try:
            port = int(m["client_url"].rsplit(":", 1)[1])
            status, _, body = bench.http_request(port, "GET", "/health", timeout=1)
            return status == 200 and json.loads(body).get("health") == "true"
        except (OSError, ValueError):
            return False


# ---------------------------------------------------------------- replicas

class Replica(bench.Pullgate):
    """bench.Pullgate's server and config (one I/O thread, its own admin listener, the
    bench policy), plus a `fleet` section when `etcd` endpoints are given; nothing else
    differs between a fleet replica and its fleet-off twin."""

    def __init__(self, procs, work, upstream_url, name, etcd_endpoints=None):
        self.name = name
        super().__init__(procs, work, upstream_url, gate=True)
        self.etcd_endpoints = etcd_endpoints

    def start(self, fresh):
        data = self.cache_dir(self.data, fresh)
        policy = os.path.join(self.dir, "policy.json")
        with open(policy, "w") as f:
            json.dump(bench.bench_policy(), f, indent=2)
        token_file = os.path.join(self.dir, "admin.token")
        with open(os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(self.admin_token + "\n")
        config = {
            "listen": f"{LOOPBACK}:{self.port}", "data_dir": data, "threads": 1, "access_log": "",
            "upstreams": [{"name": self.upstream_url.split("//", 1)[1], "url": self.upstream_url, "default": True}],
            "gate": {"enabled": True, "policy_file": policy},
            "admin": {"listen": f"{LOOPBACK}:{self.admin_port}", "token_file": token_file},
        }
        if self.etcd_endpoints:
            config["fleet"] = {"replica_id": self.name, "etcd": {"endpoints": self.etcd_endpoints}}
        self.config_path = os.path.join(self.dir, "pullgate.json")
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=2)
        self.proc = self.procs.start(self.name, [bench.PULLGATE_BIN, "serve", "--config", self.config_path],
                                     SERVER_CPU)

    def readiness(self):
        status, _, body = bench.http_request(self.port, "GET", "/readyz", timeout=5)
        return json.loads(body) if status == 200 else {}

    def wait_in_step(self, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            r = self.readiness()
            if r.get("status") == "ok" and (not self.etcd_endpoints or r.get("fleet", {}).get("in_step")):
                return r
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"{self.name} not in step with etcd: {r}; {bench.tail(self.proc.bench_log)}")
            time.sleep(0.05)


# ---------------------------------------------------------------- raw HTTP/1.1

class RawConnection:
    """One keep-alive HTTP/1.1 connection on a non-blocking socket, for the poll loop:
    send a request, feed it readable data, get (status, receive time) back. Answers
    must carry Content-Length (pullgate's manifests and errors do)."""

    def __init__(self, port, name):
        self.port, self.name = port, name
        self.sock = None
        self.buf = b""
        self.pending_since = None  # monotonic time the outstanding request was sent
        self.requests = 0
        self.reconnects = 0

    def connect(self):
        if self.sock is not None:
            self.sock.close()
            self.reconnects += 1
        self.sock = socket.create_connection((LOOPBACK, self.port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buf = b""

    def send(self, data):
        if self.sock is None:
            self.connect()
        self.sock.setblocking(True)
        self.sock.sendall(data)
        self.sock.setblocking(False)
        self.pending_since = time.monotonic()
        self.requests += 1

    def on_readable(self):
        """Returns (status, monotonic time the answer was complete) or None (not yet)."""
        try:
            chunk = self.sock.recv(65536)
        except BlockingIOError:
            return None
        if not chunk:
            raise BenchError(f"{self.name}: connection closed with a request outstanding")
        self.buf += chunk
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buf[:end].decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if "content-length" not in headers:
            raise BenchError(f"{self.name}: answer without Content-Length: {head}")
        total = end + 4 + int(headers["content-length"])
        if len(self.buf) < total:
            return None
        done_at = time.monotonic()
        if len(self.buf) > total:
            raise BenchError(f"{self.name}: bytes after the answer")
        self.buf = b""
        self.pending_since = None
        if headers.get("connection", "").lower() == "close":
            self.connect()  # pullgate closes after limits.max_requests_per_connection
        return status, done_at

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def get_request(path):
    return (f"GET {path} HTTP/1.1\r\nHost: {LOOPBACK}\r\nAccept: {MANIFEST_ACCEPT}\r\n"
            "User-Agent: pullgate-fleet-bench\r\n\r\n").encode()


def put_verdict_request(digest, decision, token, n):
    body = json.dumps({"decision": decision, "reason": f"fleet bench write {n}", "by": "fleet-bench"}).encode()
    return (f"PUT /v1/verdicts/{digest} HTTP/1.1\r\nHost: {LOOPBACK}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


# ---------------------------------------------------------------- 1: revocation latency

def revocation_latency(a, others, image):
    """WRITES manual verdicts on `a` through the admin API, alternately deny and allow;
    after each, the time from a's answer to the first manifest GET on each of `others`
    whose status shows it (403 deny, 200 allow). The GETs run back to back on one
    keep-alive socket per replica, each sent as soon as the last answered, from the
    moment the write is sent until every replica shows it."""
    digest = image["manifest"]["digest"]
    path = f"/v2/{image['repo']}/manifests/{digest}"
    get = get_request(path)
    writer = RawConnection(a.admin_port, a.name + " admin")
    pollers = {r.name: RawConnection(r.port, r.name) for r in others}
    for c in [writer] + list(pollers.values()):
        c.connect()
    sel = selectors.DefaultSelector()
    sel.register(writer.sock, selectors.EVENT_READ, writer)
    for c in pollers.values():
        sel.register(c.sock, selectors.EVENT_READ, c)

    def reregister(c, old_sock):
        if c.sock is not old_sock:
            sel.unregister(old_sock)
            sel.register(c.sock, selectors.EVENT_READ, c)

    writes = []
    intervals = {name: [] for name in pollers}  # time between one GET's send and the next's
    for n in range(WRITES):
        decision = "deny" if n % 2 == 0 else "allow"
        want = 403 if decision == "deny" else 200
        started = time.monotonic()
        writer.send(put_verdict_request(digest, decision, a.admin_token, n))
        ack = None
        seen = {name: None for name in pollers}
        polls = {name: 0 for name in pollers}
        last_send = {}
        for name, c in pollers.items():
            c.send(get)
            last_send[name] = c.pending_since
            polls[name] += 1
        while ack is None or any(v is None for v in seen.values()):
            if time.monotonic() - started > WRITE_TIMEOUT_S:
                raise BenchError(f"write {n} ({decision}) not acknowledged and seen everywhere within "
                                 f"{WRITE_TIMEOUT_S}s: ack {ack}, seen {seen}")
            for key, _ in sel.select(timeout=1.0):
                c = key.data
                old = c.sock
                got = c.on_readable()
                if got is None:
                    continue
                status, at = got
                reregister(c, old)
                if c is writer:
                    if status != 200:
                        raise BenchError(f"write {n}: admin PUT on {a.name} gave HTTP {status}")
                    ack = at
                    continue
                if status not in (200, 403):
                    raise BenchError(f"{c.name}: manifest GET gave HTTP {status}")
                if status == want and seen[c.name] is None:
                    seen[c.name] = at
                if seen[c.name] is None:
                    now = time.monotonic()
                    intervals[c.name].append(now - last_send[c.name])
                    last_send[c.name] = now
                    c.send(get)
                    polls[c.name] += 1
        # Answers still outstanding (a replica seen before the ack was polled on) are drained.
        for c in pollers.values():
            while c.pending_since is not None:
                old = c.sock
                sel.select(timeout=1.0)
                if c.on_readable() is not None:
                    reregister(c, old)
        writes.append({"n": n, "decision": decision, "ack_ms": (ack - started) * 1000,
                       "seen_ms": {name: (t - ack) * 1000 for name, t in seen.items()},
                       "polls": polls})
        time.sleep(GAP_S)
    for c in [writer] + list(pollers.values()):
        c.close()
    sel.close()
    return writes, intervals


def percentile(values, p):
    """Nearest-rank percentile: p99 of 100 values is the 99th smallest."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))
    return s[int(k)]


def stats_ms(values):
    return {"n": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99), "max": max(values),
            "min": min(values), "mean": statistics.fmean(values)}


def summarize_latency(writes, intervals):
    names = list(writes[0]["seen_ms"])
    out = {name: stats_ms([w["seen_ms"][name] for w in writes]) for name in names}
    # The write is enforced by the whole fleet when the last replica shows it.
    out["all"] = stats_ms([max(w["seen_ms"].values()) for w in writes])
    for decision in ("deny", "allow"):
        out["all_" + decision] = stats_ms([max(w["seen_ms"].values()) for w in writes if w["decision"] == decision])
    out["ack"] = stats_ms([w["ack_ms"] for w in writes])
    out["seen_before_ack"] = sum(1 for w in writes for v in w["seen_ms"].values() if v <= 0)
    out["over_100ms"] = sum(1 for w in writes for v in w["seen_ms"].values() if v > 100)
    all_intervals = [i * 1000 for v in intervals.values() for i in v]
    out["poll_interval"] = stats_ms(all_intervals) if all_intervals else None
    return out


# ---------------------------------------------------------------- 2: throughput on/off

def throughput_on_off(on, off, image):
    """wrk on one replica with the fleet store on and on its twin without it, alternated
    off, on, off, on ... PAIRS times per case; the ratio is on/off of the medians."""
    repo, digest = image["repo"], image["manifest"]["digest"]
    cases = {"manifest_digest": f"/v2/{repo}/manifests/{digest}",
             "manifest_tag": f"/v2/{repo}/manifests/{image['tag']}"}
    results = {}
    for case, path in cases.items():
        runs = {"off": [], "on": []}
        for i in range(PAIRS):
            for variant, server in (("off", off), ("on", on)):
                batches0 = on.metric("pullgate_fleet_batches_applied")
                r = bench.load_run(server, case, path, "GET", MANIFEST_ACCEPT, f"fleet {variant} {i + 1}/{PAIRS}",
                                   CONNECTIONS, SECONDS)
                r["fleet_batches_applied_on_replica"] = on.metric("pullgate_fleet_batches_applied") - batches0
                runs[variant].append(r)
        on_s, off_s = bench.summarize_runs(runs["on"]), bench.summarize_runs(runs["off"])
        pair_ratios = [a["rps"] / b["rps"] for a, b in zip(runs["on"], runs["off"])]
        results[case] = {"on": on_s, "off": off_s, "ratio": on_s["rps"] / off_s["rps"],
                         "pair_ratios": pair_ratios, "pair_ratio_median": statistics.median(pair_ratios)}
        log(f"{case}: fleet on {on_s['rps']:.0f} req/s, off {off_s['rps']:.0f} req/s, "
            f"on/off {results[case]['ratio']:.4f} (median of pairs {results[case]['pair_ratio_median']:.4f})")
    return results


# ---------------------------------------------------------------- report

def table(doc):
    m, lat, tp = doc["meta"], doc["latency"], doc["throughput"]
    lines = [f"pullgate fleet bench, {m['date']}, {m['pullgate_version']} (sha256 {m['pullgate_sha256'][:12]}), "
             f"{m['etcd_version']}",
             f"1-minute load average: {m['loadavg_start']:.2f} at start, {m['loadavg_between']:.2f} between the parts, "
             f"{m['loadavg_end']:.2f} at end ({m['cpus']} CPUs)"
             + ("  ! the machine was not idle: figures scatter more" if max(m["loadavg_start"], m["loadavg_end"]) > 1.5
                else ""),
             "",
             f"1. Revocation latency: {m['writes']} manual verdicts PUT on replica-a's admin API, alternately deny "
             "and allow;",
             "   from replica-a's answer to the first manifest GET by digest on each replica showing the write",
             "   (403 for deny, 200 for allow). 3-member etcd and replicas on loopback.",
             "",
             f"   {'':<30} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} {'min ms':>9}"]
    rows = [("replica-b", lat["replica-b"]), ("replica-c", lat["replica-c"]),
            ("all (later of b, c per write)", lat["all"]), ("  deny writes", lat["all_deny"]),
            ("  allow writes", lat["all_allow"]), ("admin PUT on a (send -> answer)", lat["ack"])]
    for name, s in rows:
        lines.append(f"   {name:<30} {s['p50']:>9.2f} {s['p99']:>9.2f} {s['max']:>9.2f} {s['min']:>9.2f}")
    pi = lat["poll_interval"]
    target = "PASS" if lat["all"]["p99"] < 1000 else "FAIL"
    lines += ["",
              f"   target p99 < 1 s: {target} ({lat['all']['p99']:.2f} ms)",
              f"   poll interval (one GET's send to the next's, per replica): p50 {pi['p50'] * 1000:.0f} us, "
              f"p99 {pi['p99'] * 1000:.0f} us, max {pi['max'] * 1000:.0f} us",
              f"   writes a replica served before replica-a's answer arrived (negative figures): "
              f"{lat['seen_before_ack']} of {2 * m['writes']}; later than 100 ms: {lat['over_100ms']} of {2 * m['writes']}",
              "",
              f"2. Warm manifest GET, fleet store on (watching an idle etcd) vs off, same binary and config otherwise;",
              f"   wrk -t1 -c{m['connections']} -d{m['seconds']}s, {m['pairs']} runs each, alternated off, on, off, on ...;"
              f" server on CPU {SERVER_CPU}, wrk on CPU {CLIENT_CPU}",
              "",
              f"   {'case':<18} {'off req/s':>10} {'on req/s':>10} {'on/off':>8} {'pairs':>8} "
              f"{'off busy':>9} {'on busy':>8}  target: cost < 2%"]
    for case, r in tp.items():
        # The target is a cost: on at most 2% below off. A larger gap either way is noise.
        verdict = "PASS" if r["ratio"] >= 0.98 else "FAIL"
        lines.append(f"   {case:<18} {r['off']['rps']:>10.0f} {r['on']['rps']:>10.0f} {r['ratio']:>8.4f} "
                     f"{r['pair_ratio_median']:>8.4f} {r['off']['server_cpu_busy']:>9.0%} "
                     f"{r['on']['server_cpu_busy']:>8.0%}  {verdict}")
    if any(min(r["on"]["server_cpu_busy"], r["off"]["server_cpu_busy"]) < 0.9 for r in tp.values()):
        lines.append("   ! server core busy below 90%: the client core (wrk, etcd, the upstream) or other work on the"
                     " machine set the pace, not the server")
    lines += ["",
              "   on/off: ratio of the medians; pairs: median of each pair's on/off ratio; busy: server core busy.",
              "   per run (off / on req/s):"]
    for case, r in tp.items():
        pairs = ", ".join(f"{a['rps']:.0f}/{b['rps']:.0f}" for a, b in zip(r["off"]["runs"], r["on"]["runs"]))
        lines.append(f"   {case}: {pairs}")
        if not (r["on"]["valid"] and r["off"]["valid"]):
            lines.append(f"   ! {case}: errors on {r['on']['errors']}, off {r['off']['errors']}")
    c = doc["counters"]
    lines += ["", f"   gate evaluations during the load: on {c['on_gate_evaluations']:.0f}, "
                  f"off {c['off_gate_evaluations']:.0f} (0: every request hit the stored verdict); "
                  f"fleet batches applied by the on replica: {c['on_fleet_batches']:.0f}; "
                  f"in step after: {c['on_in_step_after']}"]
    return "\n".join(lines)


def output_paths():
    out = os.environ.get("FLEET_OUT") or os.path.join(HERE, "results")
    os.makedirs(out, exist_ok=True)
    base = os.path.join(out, datetime.date.today().isoformat() + "-fleet")
    path, i = base, 1
    while os.path.exists(path + ".json") or os.path.exists(path + ".txt"):
        i += 1
        path = f"{base}-{i}"
    return path + ".json", path + ".txt"


def version_of(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return ((p.stdout or "") + (p.stderr or "")).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unknown"


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    binary = os.environ.get("PULLGATE_BIN") or os.path.join(bench.REPO_ROOT, "build", "pullgate")
    if not os.access(binary, os.X_OK):
        sys.exit(f"pullgate binary {binary} not found or not executable; build it or set PULLGATE_BIN")
    work = os.environ.get("BENCH_WORK") or tempfile.mkdtemp(prefix="pullgate-fleet-bench.")
    os.makedirs(work, exist_ok=True)
    procs = bench.Procs(work)
    started = time.monotonic()
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
            "writes": WRITES, "pairs": PAIRS, "seconds": SECONDS, "connections": CONNECTIONS, "gap_ms": GAP_S * 1000,
            "server_cpu": SERVER_CPU, "client_cpu": CLIENT_CPU, "pullgate_bin": binary,
            "pullgate_version": version_of([binary, "--version"]), "etcd_version": version_of([ETCD, "--version"]),
            "wrk": version_of(["wrk", "-v"]), "loadavg_start": os.getloadavg()[0]}
    try:
        # Every start execs the binary: a copy keeps one build for the whole run.
        copy = os.path.join(work, "pullgate-under-test")
        shutil.copy2(binary, copy)
        meta["pullgate_sha256"] = seed.file_sha256(copy)
        bench.PULLGATE_BIN = copy
        image = seed.make_image(os.path.join(work, "image"), 1 << 20)
        upstream_port, upstream = bench.start_upstream_registry(procs, work, CLIENT_CPU,
                                                                env=dict(os.environ, GOMAXPROCS="1"))
        seed.push_image(upstream_port, image)
        upstream_url = f"http://{LOOPBACK}:{upstream_port}"
        log(f"upstream on :{upstream_port} with {image['repo']}@{image['manifest']['digest']}")

        etcd = EtcdCluster(procs, work)
        etcd.start()
        log(f"etcd: {' '.join(etcd.endpoints)}")

        # 1. Three replicas, warm on every one, then the writes.
        replicas = [Replica(procs, work, upstream_url, f"replica-{x}", etcd.endpoints) for x in "abc"]
        for r in replicas:
            r.start(fresh=True)
        for r in replicas:
            bench.wait_ready(r.port, r.ready_path, r.proc)
            r.wait_in_step()
            bench.check_serving(r, image)
        a, b, c = replicas
        log(f"{WRITES} verdict writes on {a.name}, polling {b.name} and {c.name}")
        writes, intervals = revocation_latency(a, [b, c], image)
        latency = summarize_latency(writes, intervals)
        log(f"latency to all: p50 {latency['all']['p50']:.2f} ms p99 {latency['all']['p99']:.2f} ms "
            f"max {latency['all']['max']:.2f} ms; poll interval p50 {latency['poll_interval']['p50'] * 1000:.0f} us")
        # The store keeps no verdict for the digest: part 2's replicas decide it by the policy alike.
        status, _, body = bench.http_request(a.admin_port, "DELETE", f"/v1/verdicts/{image['manifest']['digest']}",
                                             {"Authorization": f"Bearer {a.admin_token}"})
        if status != 200:
            raise BenchError(f"removing the bench verdict gave HTTP {status}: {body[:200]!r}")
        for r in replicas:
            r.stop()
        meta["loadavg_between"] = os.getloadavg()[0]

        # 2. One replica with the fleet store, its twin without, both warm, etcd idle.
        on = Replica(procs, work, upstream_url, "fleet-on", etcd.endpoints)
        off = Replica(procs, work, upstream_url, "fleet-off")
        for r in (on, off):
            r.start(fresh=True)
            bench.wait_ready(r.port, r.ready_path, r.proc)
            r.wait_in_step()
            bench.check_serving(r, image)
            bench.http_request(r.port, "GET", f"/v2/{image['repo']}/manifests/{image['tag']}",
                               {"Accept": MANIFEST_ACCEPT})
        bench.settle("the fleet throughput runs")
        evals0 = {r.name: r.metric("pullgate_gate_evaluations_total") for r in (on, off)}
        batches0 = on.metric("pullgate_fleet_batches_applied")
        throughput = throughput_on_off(on, off, image)
        counters = {"on_gate_evaluations": on.metric("pullgate_gate_evaluations_total") - evals0[on.name],
                    "off_gate_evaluations": off.metric("pullgate_gate_evaluations_total") - evals0[off.name],
                    "on_fleet_batches": on.metric("pullgate_fleet_batches_applied") - batches0,
                    "on_in_step_after": bool(on.readiness().get("fleet", {}).get("in_step"))}
        meta["loadavg_end"] = os.getloadavg()[0]
        meta["total_seconds"] = round(time.monotonic() - started, 1)
        doc = {"meta": meta, "image": {"repo": image["repo"], "manifest": image["manifest"]["digest"]},
               "latency": latency, "writes": writes, "throughput": throughput, "counters": counters}
        json_path, txt_path = output_paths()
        text = table(doc)
        with open(json_path, "w") as f:
            json.dump(doc, f, indent=2)
        with open(txt_path, "w") as f:
            f.write(text + "\n")
        print(text)
        print(f"\nJSON: {json_path}\ntable: {txt_path}")
        return 0
    except BenchError as e:
        log(f"error: {e}")
        return 2
    finally:
        procs.stop_all()
        if not os.environ.get("BENCH_WORK"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
