#!/usr/bin/env python3
"""pullgate benchmark: pullgate against CNCF Distribution (proxy mode) and nginx.

Started by bench/run.sh, which pins this script to the client core. See
bench/README.md for what is measured and how to read the table.
"""
import datetime
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402
import seed  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
LOOPBACK = "127.0.0.1"
SERVER_CPU = "0"
CLIENT_CPU = "1"
MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
MIB = 1 << 20


def env_int(name, default):
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
BLOB_MIB = env_int("BENCH_BLOB_MIB", 256 if QUICK else 1024)
RUNS = env_int("BENCH_RUNS", 1 if QUICK else 3)
# The gate's cost is a few percent, the machine's run-to-run noise about as much: its
# on/off pairs are many short runs, the cost the median of the pairs' costs.
GATE_PAIRS = env_int("BENCH_GATE_PAIRS", 3 if QUICK else 8)
GATE_SECONDS = env_int("BENCH_GATE_SECONDS", 4)
WRK_SECONDS = env_int("BENCH_WRK_SECONDS", 10)
WRK_CONNECTIONS = env_int("BENCH_WRK_CONNECTIONS", 32)
# The gate's latency cost is also measured at light load: one connection, so each
# request's latency is its own service time, not the queue behind 31 others.
LIGHT_CONNECTIONS = env_int("BENCH_LIGHT_CONNECTIONS", 1)
THROUGHPUT_GETS = env_int("BENCH_THROUGHPUT_GETS", 3 if QUICK else 5)
RSS_CLIENTS = env_int("BENCH_RSS_CLIENTS", 16)
COLD_CLIENTS = env_int("BENCH_COLD_CLIENTS", 8)
ACCESS_LOG = os.environ.get("BENCH_ACCESS_LOG", "") not in ("", "0")
STEP_TIMEOUT = env_int("BENCH_STEP_TIMEOUT", 600)
PULLGATE_BIN = os.environ.get("PULLGATE_BIN") or os.path.join(REPO_ROOT, "build", "pullgate")
ALL_SERVERS = ("pullgate", "distribution", "nginx", "nginx-cache")
SERVERS = [s.strip() for s in os.environ.get("BENCH_SERVERS", ",".join(ALL_SERVERS)).split(",") if s.strip()]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- processes

class Procs:
    """Every process the bench starts, each in its own process group, recorded in a
    pid file so run.sh's EXIT trap can end them by id if this script dies."""

    def __init__(self, work):
        self.work = work
        self.live = []
        self.pid_file = os.path.join(work, "pids")

    def start(self, name, argv, cpu, env=None, stdout=None):
        log_path = os.path.join(self.work, f"{name}.log")
        log_file = open(log_path, "ab")
        p = subprocess.Popen(["taskset", "-c", cpu] + argv, stdin=subprocess.DEVNULL,
                             stdout=stdout if stdout is not None else log_file, stderr=log_file,
                             env=env, start_new_session=True)
        log_file.close()
        p.bench_name = name
        p.bench_log = log_path
        self.live.append(p)
        with open(self.pid_file, "a") as f:
            f.write(f"{p.pid}\n")
        return p

    def stop(self, p, timeout=10):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)
        if p in self.live:
            self.live.remove(p)

    def stop_all(self):
        for p in list(reversed(self.live)):
            self.stop(p)


def free_port():
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def http_request(port, method, path, headers=None, timeout=30):
    """One request; returns (status, headers dict lower-cased, body bytes)."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def wait_ready(port, path, proc, timeout=30, headers=None):
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{proc.bench_name} exited with {proc.returncode}; see {tail(proc.bench_log)}")
        try:
            status, _, _ = http_request(port, "GET", path, headers, timeout=2)
            if status == 200:
                return
            last = f"HTTP {status}"
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    raise BenchError(f"{proc.bench_name} not ready on :{port}{path} after {timeout}s ({last}); {tail(proc.bench_log)}")


def tail(path, lines=15):
    try:
        with open(path, "rb") as f:
            data = f.read()[-4000:].decode("utf-8", "replace").splitlines()[-lines:]
        return f"log {path}:\n    " + "\n    ".join(data)
    except OSError:
        return f"log {path} unreadable"


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise BenchError(f"no VmHWM for pid {pid}")


def reset_hwm(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # 5 resets the peak RSS (VmHWM) to the current RSS


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(entry))
            except (OSError, ValueError):
                pass
    return kids


# ---------------------------------------------------------------- servers

def distribution_config(path, port, storage, remote=None):
    lines = [
        "version: 0.1",
        "log:",
        "  level: error",
        "  accesslog:",
        f"    disabled: {'false' if ACCESS_LOG else 'true'}",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {storage}",
        "  cache:",
        "    blobdescriptor: inmemory",
        "  maintenance:",
        "    uploadpurging:",
        "      enabled: false",
        "http:",
        f"  addr: {LOOPBACK}:{port}",
    ]
    if remote:
        lines += ["proxy:", f"  remoteurl: {remote}"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


class Server:
    """A server under test, pinned to the server core, restartable with a fresh cache."""
    name = "?"
    ready_path = "/v2/"
    is_mirror = True
    warm = True  # measured warm too (req/s, throughput, RSS), not only cold

    def __init__(self, procs, work):
        self.procs = procs
        self.dir = os.path.join(work, self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.proc = None

    def start(self, fresh):
        raise NotImplementedError

    def stop(self):
        if self.proc is not None:
            self.procs.stop(self.proc)
            self.proc = None

    def restart(self, fresh):
        self.stop()
        self.start(fresh)
        wait_ready(self.port, self.ready_path, self.proc)

    @staticmethod
    def cache_dir(path, fresh):
        """The server's cache directory, emptied first when the start is a fresh one."""
        if fresh:
            shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)
        return path

    def pids(self):
        return [self.proc.pid]

    def rss_pid(self):
        return self.proc.pid

    def blob_file(self, digest):
        """Where this server keeps the blob on disk."""
        raise NotImplementedError


class Pullgate(Server):
    """pullgate with its gate on (the default, a small policy whose allow rule matches
    the bench repository) or off (`gate.enabled: false`): same binary, same config
    otherwise. Each has its own admin listener on a free port, for /metrics."""
    name = "pullgate"
    ready_path = "/healthz"

    def __init__(self, procs, work, upstream_url, gate=True):
        if not gate:
            self.name = "pullgate-gate-off"
        super().__init__(procs, work)
        self.upstream_url = upstream_url
        self.gate = gate
        self.admin_port = free_port()
        self.admin_token = "bench-" + os.urandom(16).hex()
        self.data = os.path.join(self.dir, "data")

    def start(self, fresh):
        data = self.cache_dir(self.data, fresh)
        policy = os.path.join(self.dir, "policy.json")
        with open(policy, "w") as f:
            json.dump(bench_policy(), f, indent=2)
        token_file = os.path.join(self.dir, "admin.token")
        with open(os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(self.admin_token + "\n")
        config = os.path.join(self.dir, "pullgate.json")
        upstream = {"name": self.upstream_url.split("//", 1)[1], "url": self.upstream_url, "default": True}
        with open(config, "w") as f:
            json.dump({
                "listen": f"{LOOPBACK}:{self.port}", "data_dir": data, "threads": 1,
                "access_log": os.path.join(self.dir, "access.log") if ACCESS_LOG else "",
                "upstreams": [upstream],
                "gate": {"enabled": self.gate, "policy_file": policy},
                # A free port, never the default 5001 another pullgate on the machine may hold.
                "admin": {"listen": f"{LOOPBACK}:{self.admin_port}", "token_file": token_file},
            }, f, indent=2)
        argv = [PULLGATE_BIN, "serve", "--config", config, "--listen", f"{LOOPBACK}:{self.port}",
                "--data", data, "--upstream", self.upstream_url, "--threads", "1"]
        self.proc = self.procs.start(self.name, argv, SERVER_CPU)

    def metric(self, name):
        """A counter from the admin /metrics (sum over its label sets), None if absent."""
        status, _, body = http_request(self.admin_port, "GET", "/metrics",
                                       {"Authorization": f"Bearer {self.admin_token}"}, timeout=10)
        if status != 200:
            raise BenchError(f"{self.name}: admin /metrics gave HTTP {status}")
        total = None
        for line in body.decode("utf-8", "replace").splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total = (total or 0) + float(line.rsplit(None, 1)[1])
        return total

    def blob_file(self, digest):
        hex_ = digest.split(":", 1)[1]
        return os.path.join(self.data, "blobs", "sha256", hex_[:2], hex_)

    def audit_bytes(self):
        names = [n for n in os.listdir(self.data) if n.startswith("audit.log")] if os.path.isdir(self.data) else []
        return sum(os.path.getsize(os.path.join(self.data, n)) for n in names)


def start_upstream_registry(procs, work, cpus, env=None):
    """CNCF Distribution as the upstream, storage under work/upstream, on a free port;
    returns (port, process) once /v2/ answers."""
    port = free_port()
    upstream_dir = os.path.join(work, "upstream")
    os.makedirs(os.path.join(upstream_dir, "storage"))
    distribution_config(os.path.join(upstream_dir, "config.yml"), port, os.path.join(upstream_dir, "storage"))
    upstream = procs.start("upstream", ["/usr/bin/docker-registry", "serve", os.path.join(upstream_dir, "config.yml")],
                           cpus, env=env)
    wait_ready(port, "/v2/", upstream)
    return port, upstream


def bench_policy():
    """A scope for the bench repository with an allow rule, so a first pull runs the
    real evaluation (scope choice, rule match) and stores its verdict."""
    top = seed.REPO.split("/", 1)[0]
    return {"scopes": [{"name": "bench", "repository": f"{top}/**", "mode": "enforce", "unknown": "evaluate",
                        "fallback": "deny",
                        "rules": [{"action": "allow", "repository": f"{top}/**", "reason": "bench image"}]}]}


class Distribution(Server):
    name = "distribution"

    def __init__(self, procs, work, upstream_url):
        super().__init__(procs, work)
        self.upstream_url = upstream_url

    def start(self, fresh):
        storage = self.cache_dir(os.path.join(self.dir, "storage"), fresh)
        config = os.path.join(self.dir, "config.yml")
        distribution_config(config, self.port, storage, remote=self.upstream_url)
        env = dict(os.environ, GOMAXPROCS="1")
        self.proc = self.procs.start("distribution", ["/usr/bin/docker-registry", "serve", config],
                                     SERVER_CPU, env=env)

    def blob_file(self, digest):
        hex_ = digest.split(":", 1)[1]
        return os.path.join(self.dir, "storage", "docker", "registry", "v2", "blobs", "sha256", hex_[:2], hex_, "data")


class NginxServer(Server):
    """nginx with one worker, pinned like the others; a subclass gives its `http` block's
    own directives and server block."""
    name = "nginx"

    def http_block(self):
        raise NotImplementedError

    def start(self, fresh):
        d = self.dir
        access = f"access_log {d}/access.log;" if ACCESS_LOG else "access_log off;"
        temps = "\n".join(f"  {k}_temp_path {d}/{k}_temp;" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = f"""worker_processes 1;
daemon off;
master_process on;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log error;
events {{ worker_connections 1024; }}
http {{
  {access}
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 10000;
  keepalive_timeout 60s;
  server_tokens off;
{temps}
{self.http_block()}
}}
"""
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proc = self.procs.start(self.name, ["/usr/sbin/nginx", "-p", d, "-c", path, "-e", f"{d}/error.log"],
                                     SERVER_CPU)

    def pids(self):
        return [self.proc.pid] + children_of(self.proc.pid)

    def rss_pid(self):
        # Beside the worker, nginx cache's has a cache manager and (for a minute) a cache loader.
        workers = [pid for pid in children_of(self.proc.pid) if b"worker process" in read_cmdline(pid)]
        if len(workers) != 1:
            raise BenchError(f"nginx has {len(workers)} workers, expected 1")
        return workers[0]


class Nginx(NginxServer):
    is_mirror = False

    def __init__(self, procs, work, image, docroot):
        super().__init__(procs, work)
        self.image = image
        self.docroot = docroot

    def http_block(self):
        return f"""  types {{ }}
  default_type application/octet-stream;
  server {{
    listen {LOOPBACK}:{self.port} backlog=512;
    root {self.docroot};
    location = /v2/ {{ default_type application/json; return 200 '{{}}'; }}
    location ~ ^/v2/.+/manifests/ {{
      default_type {self.image['manifest_type']};
      add_header Docker-Content-Digest {self.image['manifest']['digest']};
    }}
    location ~ "^/v2/.+/blobs/(sha256:[0-9a-f]{{64}})$" {{
      add_header Docker-Content-Digest $1;
    }}
  }}"""

    def blob_file(self, digest):
        return os.path.realpath(os.path.join(self.docroot, "v2", *self.image["repo"].split("/"), "blobs", digest))


class NginxCache(NginxServer):
    """nginx as a caching reverse proxy of the relay (`proxy_cache` with
    `proxy_cache_lock on`): the usual way to put a cache in front of a registry with
    a stock web server. Measured on the cold rounds only (its warm path is nginx's
    static-file path, measured above): one client, and N clients at once, where the
    lock lets one request fill the cache while the others wait for the cached file."""
    name = "nginx-cache"
    warm = False

    def __init__(self, procs, work, upstream_port):
        super().__init__(procs, work)
        self.upstream_port = upstream_port

    def start(self, fresh):
        self.cache_dir(os.path.join(self.dir, "cache"), fresh)
        super().start(fresh)

    def http_block(self):
        # The lock is held for as long as a fill can take (nginx's default, 5 s, would
        # send the waiters to the upstream uncached partway through a large blob).
        return f"""  proxy_cache_path {os.path.join(self.dir, "cache")} levels=1:2 keys_zone=blobs:10m max_size=64g inactive=1d use_temp_path=off;
  upstream registry {{ server {LOOPBACK}:{self.upstream_port}; keepalive 16; }}
  server {{
    listen {LOOPBACK}:{self.port} backlog=512;
    location /v2/ {{
      proxy_pass http://registry;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache blobs;
      proxy_cache_key $uri;
      proxy_cache_valid 200 1d;
      proxy_cache_lock on;
      proxy_cache_lock_timeout {STEP_TIMEOUT}s;
      proxy_cache_lock_age {STEP_TIMEOUT}s;
      proxy_read_timeout {STEP_TIMEOUT}s;
    }}
  }}"""


def read_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


# ---------------------------------------------------------------- upstream and relay

class Relay:
    def __init__(self, procs, upstream_port):
        self.port = free_port()
        self.stats_port = free_port()
        self.proc = procs.start("relay", [sys.executable, os.path.join(HERE, "relay.py"), str(self.port),
                                          str(upstream_port), str(self.stats_port)], CLIENT_CPU)
        deadline = time.monotonic() + 15
        while True:
            try:
                self.stats()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"relay did not start; {tail(self.proc.bench_log)}")
                time.sleep(0.05)

    def stats(self):
        with socket.create_connection((LOOPBACK, self.stats_port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return json.loads(data.split(b"\r\n\r\n", 1)[1])


def relay_delta(before, after, blob_digest):
    requests = {}
    for key, n in after["requests"].items():
        d = n - before["requests"].get(key, 0)
        if d:
            requests[key] = d
    blob_gets = sum(n for k, n in requests.items() if k.startswith("GET ") and f"/blobs/{blob_digest}" in k)
    blob_heads = sum(n for k, n in requests.items() if k.startswith("HEAD ") and f"/blobs/{blob_digest}" in k)
    return {"bytes_down": after["down"] - before["down"], "bytes_up": after["up"] - before["up"],
            "connections": after["connections"] - before["connections"],
            "blob_gets": blob_gets, "blob_heads": blob_heads, "requests": requests}


# ---------------------------------------------------------------- measurements

def run_wrk(port, path, method, accept, connections=None, seconds=None):
    env = dict(os.environ, BENCH_METHOD=method, BENCH_ACCEPT=accept)
    seconds = seconds or WRK_SECONDS
    argv = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{connections or WRK_CONNECTIONS}", f"-d{seconds}s",
            "--latency", "--timeout", "5s", "-s", os.path.join(HERE, "wrk.lua"), f"http://{LOOPBACK}:{port}{path}"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            r = json.loads(line[len("BENCH_JSON "):])
            r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
            return r
    raise BenchError(f"wrk gave no result (exit {out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}")


HEADLOAD = None  # path of the compiled headload helper, set in main()


def build_headload(work):
    global HEADLOAD
    path = os.path.join(work, "headload")
    out = subprocess.run(["cc", "-O2", "-o", path, os.path.join(HERE, "headload.c")],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise BenchError(f"compiling bench/headload.c failed: {out.stderr[-800:]}")
    HEADLOAD = path


def run_headload(port, path, method, accept, connections=None, seconds=None):
    """wrk 4.1 hangs on HEAD responses with a Content-Length; headload measures them."""
    seconds = seconds or WRK_SECONDS
    argv = ["taskset", "-c", CLIENT_CPU, HEADLOAD, str(port), path, method, accept,
            str(connections or WRK_CONNECTIONS), str(seconds)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            r = json.loads(line[len("BENCH_JSON "):])
            r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
            return r
    raise BenchError(f"headload gave no result (exit {out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}")


def warm_cases(image):
    repo = image["repo"]
    return {
        "manifest_tag": (f"/v2/{repo}/manifests/{image['tag']}", "GET", MANIFEST_ACCEPT),
        "manifest_digest": (f"/v2/{repo}/manifests/{image['manifest']['digest']}", "GET", MANIFEST_ACCEPT),
        "blob_head": (f"/v2/{repo}/blobs/{image['large']['digest']}", "HEAD", "*/*"),
    }


def load_run(server, case, path, method, accept, label, connections=None, seconds=None):
    load = run_headload if method == "HEAD" else run_wrk
    cpu0 = cpu_seconds(server.pids())
    r = load(server.port, path, method, accept, connections, seconds)
    # Below ~90% the server core was not saturated: the client or the upstream limited it.
    r["server_cpu_busy"] = (cpu_seconds(server.pids()) - cpu0) / (r["duration_us"] / 1e6)
    log(f"  {server.name} {case} {label}: {r['rps']:.0f} req/s p50 {r['p50_us']}us "
        f"p99 {r['p99_us']}us non-2xx {r['errors']['status']} server core busy {r['server_cpu_busy']:.0%}")
    return r


def summarize_runs(runs):
    bad = sum(r["errors"]["status"] + r["errors"]["connect"] + r["errors"]["read"] + r["errors"]["timeout"]
              for r in runs)
    total = sum(r["requests"] for r in runs)
    return {
        "rps": statistics.median(r["rps"] for r in runs),
        "p50_ms": statistics.median(r["p50_us"] for r in runs) / 1000,
        "p99_ms": statistics.median(r["p99_us"] for r in runs) / 1000,
        "errors": bad, "requests": total,
        "server_cpu_busy": statistics.median(r["server_cpu_busy"] for r in runs),
        # A server that answers fast with errors has not served the request.
        "valid": total > 0 and bad <= total * 0.001,
        "runs": runs,
    }


def warm_rps(server, image):
    results = {}
    for case, (path, method, accept) in warm_cases(image).items():
        runs = [load_run(server, case, path, method, accept, f"run {i + 1}/{RUNS}") for i in range(RUNS)]
        results[case] = summarize_runs(runs)
    return results


def warm_rps_ab(on, off, image):
    """The gate's cost: the same load on pullgate with the gate on and with it off,
    both warm, GATE_PAIRS pairs of GATE_SECONDS runs alternating (on/off, then
    off/on) so that drift on the machine falls on both alike. Returns (gate-on
    results, gate-off results); run i of one pairs with run i of the other."""
    results_on, results_off = {}, {}
    for case, (path, method, accept) in warm_cases(image).items():
        for suffix, connections in (("", None), ("_light", LIGHT_CONNECTIONS)):
            runs_on, runs_off = [], []
            for i in range(GATE_PAIRS):
                order = [(on, runs_on), (off, runs_off)]
                if i % 2:
                    order.reverse()
                for server, runs in order:
                    label = f"pair {i + 1}/{GATE_PAIRS}" + (f", {connections} connection(s)" if connections else "")
                    runs.append(load_run(server, case, path, method, accept, label, connections, GATE_SECONDS))
            results_on[case + suffix] = summarize_runs(runs_on)
            results_off[case + suffix] = summarize_runs(runs_off)
    return results_on, results_off


def curl_get(port, path, timeout):
    argv = ["taskset", "-c", CLIENT_CPU, "curl", "-s", "-o", "/dev/null", "--max-time", str(timeout),
            "-w", "%{http_code} %{size_download} %{time_starttransfer} %{time_total}",
            f"http://{LOOPBACK}:{port}{path}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 10)
    fields = out.stdout.split()
    if len(fields) != 4:
        raise BenchError(f"curl gave {out.stdout!r} {out.stderr!r}")
    return {"status": int(fields[0]), "bytes": int(fields[1]), "ttfb_s": float(fields[2]), "total_s": float(fields[3])}


def dirty_kib():
    """Dirty and under-writeback page cache, KiB (/proc/meminfo)."""
    total = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(("Dirty:", "Writeback:")):
                total += int(line.split()[1])
    return total


def settle(what):
    """Writes the dirty page cache out before a measurement, so that no server pays for
    the disk writes of the one measured before it (pullgate's audit log of the warm
    runs, a cold fill): the kernel's writeback runs on the cores the next one uses."""
    os.sync()
    deadline = time.monotonic() + 60
    while dirty_kib() > 64 * 1024 and time.monotonic() < deadline:
        time.sleep(0.2)
    log(f"  settled before {what}: {dirty_kib() / 1024:.0f} MiB dirty")


def drop_from_page_cache(path):
    """Writes the file's dirty pages and drops all its pages from the page cache."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise BenchError(f"cannot open the blob file {path}: {e}")
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm_throughput(server, image):
    settle(f"{server.name} warm throughput")
    large = image["large"]
    path = f"/v2/{image['repo']}/blobs/{large['digest']}"
    # One GET first, not counted, with the blob's pages dropped from the page cache
    # (reported on its own row: serving from disk, every server's file alike). Without
    # the drop that GET would measure how much of each file this machine's DAMON
    # (which reclaims page cache left unused for a few minutes) happened to leave in
    # memory. The counted GETs measure serving a blob that is in the page cache.
    drop_from_page_cache(server.blob_file(large["digest"]))
    first = curl_get(server.port, path, STEP_TIMEOUT)
    if first["status"] != 200 or first["bytes"] != large["size"]:
        raise BenchError(f"{server.name} warm GET gave HTTP {first['status']} with {first['bytes']} bytes")
    pids = server.pids()
    cpu0 = cpu_seconds(pids)
    gets = []
    for _ in range(THROUGHPUT_GETS):
        r = curl_get(server.port, path, STEP_TIMEOUT)
        if r["status"] != 200 or r["bytes"] != large["size"]:
            raise BenchError(f"{server.name} warm GET gave HTTP {r['status']} with {r['bytes']} bytes")
        gets.append(r)
    cpu = cpu_seconds(pids) - cpu0
    total_bytes = sum(g["bytes"] for g in gets)
    total_s = sum(g["total_s"] for g in gets)
    gb = total_bytes / 1e9
    return {"gb_per_s": gb / total_s, "cpu_s_per_gb": cpu / gb, "cpu_s": cpu, "bytes": total_bytes,
            "seconds": total_s, "gets": gets,
            "first_get_gb_per_s": first["bytes"] / 1e9 / first["total_s"] if first["total_s"] else None}


def run_clients(port, path, n, method="GET"):
    argv = ["taskset", "-c", CLIENT_CPU, sys.executable, os.path.join(HERE, "coldclient.py"),
            f"http://{LOOPBACK}:{port}{path}", str(n), method, str(STEP_TIMEOUT)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=STEP_TIMEOUT + 60)
    if out.returncode != 0:
        raise BenchError(f"coldclient failed: {out.stderr[-800:]}")
    return json.loads(out.stdout)["clients"]


def summarize_clients(clients, expected_size, method="GET"):
    ok = [c for c in clients if c["error"] is None and c["status"] == 200
          and (method == "HEAD" or c["bytes"] == expected_size)]
    first_body = [c["t_first_body"] for c in ok if c["t_first_body"] is not None]
    return {
        "clients": len(clients), "ok": len(ok),
        "errors": [c["error"] or f"HTTP {c['status']} {c['bytes']} bytes" for c in clients if c not in ok],
        "first_byte_ms": min((c["t_first_byte"] for c in ok if c["t_first_byte"] is not None), default=None),
        "first_body_ms_min": min(first_body, default=None),
        "first_body_ms_max": max(first_body, default=None),
        "first_body_spread_ms": (max(first_body) - min(first_body)) if first_body else None,
        "total_s_max": max((c["t_end"] for c in ok if c["t_end"] is not None), default=None),
        "content_length": ok[0]["content_length"] if ok else None,
    }


def ms(summary):
    for key in ("first_byte_ms", "first_body_ms_min", "first_body_ms_max", "first_body_spread_ms"):
        if summary[key] is not None:
            summary[key] = round(summary[key] * 1000, 3)
    return summary


def prime_manifest(server, image):
    status, headers, body = http_request(server.port, "GET", f"/v2/{image['repo']}/manifests/{image['tag']}",
                                         {"Accept": MANIFEST_ACCEPT}, timeout=60)
    if status != 200:
        raise BenchError(f"{server.name}: manifest by tag gave HTTP {status}: {body[:300]!r}")
    return body


def settled_stats(relay, quiet_s=1.0, limit_s=60.0):
    """Relay counters once upstream traffic has stopped: a mirror may go on fetching
    after its clients are served (Distribution stores a blob with a second fetch)."""
    deadline = time.monotonic() + limit_s
    last = relay.stats()
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = relay.stats()
        if now["down"] != last["down"] or now["up"] != last["up"]:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return now
        last = now
    return last


def cold_round(server, image, relay, clients, method="GET"):
    """Fresh cache, the manifest pulled first (a real client does, and pullgate's
    blob gate needs it), then the clients; upstream traffic counted for the clients alone."""
    server.restart(fresh=True)
    prime_manifest(server, image)
    time.sleep(0.2)
    before = relay.stats()
    reset_hwm(server.rss_pid())
    raw = run_clients(server.port, f"/v2/{image['repo']}/blobs/{image['large']['digest']}", clients, method)
    delta = relay_delta(before, settled_stats(relay), image["large"]["digest"])
    summary = ms(summarize_clients(raw, image["large"]["size"], method))
    summary["upstream"] = delta
    summary["peak_rss_mib"] = vm_hwm_kib(server.rss_pid()) / 1024
    return summary


def check_serving(server, image):
    """The server must serve the image correctly before its numbers mean anything."""
    body = prime_manifest(server, image)
    with open(image["manifest"]["path"], "rb") as f:
        if body != f.read():
            raise BenchError(f"{server.name}: manifest by tag differs from the pushed one")
    status, _, body = http_request(server.port, "GET", f"/v2/{image['repo']}/manifests/{image['manifest']['digest']}",
                                   {"Accept": MANIFEST_ACCEPT})
    if status != 200:
        raise BenchError(f"{server.name}: manifest by digest gave HTTP {status}")
    for blob in image["blobs"]:
        path = f"/v2/{image['repo']}/blobs/{blob['digest']}"
        r = curl_get(server.port, path, STEP_TIMEOUT)
        if r["status"] != 200 or r["bytes"] != blob["size"]:
            raise BenchError(f"{server.name}: GET {blob['digest']} gave HTTP {r['status']}, {r['bytes']} bytes")
        status, headers, _ = http_request(server.port, "HEAD", path)
        if status != 200 or headers.get("content-length") != str(blob["size"]):
            raise BenchError(f"{server.name}: HEAD {blob['digest']} gave HTTP {status}, "
                             f"Content-Length {headers.get('content-length')}")


def bench_server(server, image, relay, twin=None):
    """twin: the same server with its gate off, measured against this one (issue 3)."""
    result = {"errors": []}
    large = image["large"]
    if server.is_mirror:
        try:
            log(f"{server.name}: cold, 1 client")
            result["cold_1"] = cold_round(server, image, relay, 1)
            log(f"  {short(result['cold_1'])}")
            log(f"{server.name}: cold, {COLD_CLIENTS} clients")
            result["cold_n"] = cold_round(server, image, relay, COLD_CLIENTS)
            log(f"  {short(result['cold_n'])}")
            if server.warm:
                log(f"{server.name}: cold HEAD")
                result["cold_head"] = cold_round(server, image, relay, 1, "HEAD")
                log(f"  {short(result['cold_head'])}")
                log(f"{server.name}: cold, {RSS_CLIENTS} clients (peak RSS)")
                result["cold_rss"] = cold_round(server, image, relay, RSS_CLIENTS)
                log(f"  {short(result['cold_rss'])}")
        except (BenchError, OSError, subprocess.TimeoutExpired) as e:
            result["errors"].append(f"cold: {e}")
            log(f"{server.name}: cold tests failed: {e}")
    if not server.warm:
        server.stop()
        return result
    try:
        server.restart(fresh=True)
        check_serving(server, image)  # also warms the cache (and the page cache)
        gate_ab = start_twin(twin, image, result) if twin else None
        settle(f"{server.name} warm requests")
        time.sleep(1)
        before = relay.stats() if relay else None
        if gate_ab is not None:
            log(f"{server.name}: warm requests/s, gate on and off ({twin.name}) alternating")
            gate_ab.update(gate_counters(server, twin, "before"))
            result["warm"], gate_ab["gate_off"] = warm_rps_ab(server, twin, image)
            gate_ab.update(gate_counters(server, twin, "after"))
            gate_ab["gate_off_peak_rss_mib"] = vm_hwm_kib(twin.rss_pid()) / 1024
            twin.stop()
            result["gate_ab"] = gate_ab
            log(f"  gate on: {gate_ab['evaluations_after'] - gate_ab['evaluations_before']:.0f} evaluations, "
                f"{gate_ab['decisions_after'] - gate_ab['decisions_before']:.0f} decisions during the load "
                f"(0 evaluations: every request hit the stored verdict); audit log files grew "
                f"{(gate_ab['audit_bytes_after'] - gate_ab['audit_bytes_before']) / MIB:.0f} MiB (after rotation)")
        else:
            log(f"{server.name}: warm requests/s")
            result["warm"] = warm_rps(server, image)
        log(f"{server.name}: warm blob throughput")
        result["throughput"] = warm_throughput(server, image)
        log(f"  {result['throughput']['gb_per_s']:.2f} GB/s, {result['throughput']['cpu_s_per_gb']:.3f} CPU s/GB")
        log(f"{server.name}: warm, {RSS_CLIENTS} clients (peak RSS)")
        reset_hwm(server.rss_pid())
        raw = run_clients(server.port, f"/v2/{image['repo']}/blobs/{large['digest']}", RSS_CLIENTS)
        warm_rss = ms(summarize_clients(raw, large["size"]))
        warm_rss["peak_rss_mib"] = vm_hwm_kib(server.rss_pid()) / 1024
        result["warm_rss"] = warm_rss
        log(f"  {short(warm_rss)}")
        if relay and server.is_mirror:
            result["warm_upstream"] = relay_delta(before, relay.stats(), large["digest"])
    except (BenchError, OSError, subprocess.TimeoutExpired) as e:
        result["errors"].append(f"warm: {e}")
        log(f"{server.name}: warm tests failed: {e}")
    finally:
        server.stop()
        if twin is not None:
            twin.stop()
    return result


def start_twin(twin, image, result):
    """The gate-off twin, warm and checked; None (and an error noted) if it is not usable."""
    try:
        twin.restart(fresh=True)
        check_serving(twin, image)
        return {}
    except (BenchError, OSError, subprocess.TimeoutExpired) as e:
        result["errors"].append(f"gate off ({twin.name}): {e}")
        log(f"{twin.name}: failed: {e}")
        twin.stop()
        return None


def gate_counters(on, off, when):
    """Gate counters from the admin /metrics. The warm pulls (check_serving) stored the
    digest's verdict; evaluations not moving during the load shows every measured
    request was decided from that stored verdict."""
    return {
        f"evaluations_{when}": on.metric("pullgate_gate_evaluations_total") or 0,
        f"decisions_{when}": on.metric("pullgate_gate_decisions_total") or 0,
        f"gate_off_decisions_{when}": off.metric("pullgate_gate_decisions_total") or 0,
        f"audit_bytes_{when}": on.audit_bytes(),
    }


def short(s):
    up = s.get("upstream", {})
    return (f"ok {s['ok']}/{s['clients']}, first body {s['first_body_ms_min']}..{s['first_body_ms_max']} ms, "
            f"total {s['total_s_max']} s, upstream {up.get('bytes_down')} B, blob GETs {up.get('blob_gets')}, "
            f"peak RSS {s['peak_rss_mib']:.1f} MiB" + (f", errors {s['errors'][:2]}" if s["errors"] else ""))


def versions():
    out = {}
    for name, argv in {"nginx": ["/usr/sbin/nginx", "-v"], "distribution": ["/usr/bin/docker-registry", "--version"],
                       "wrk": ["wrk", "-v"], "curl": ["curl", "--version"]}.items():
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            out[name] = ((p.stdout or "") + (p.stderr or "")).strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            out[name] = "unknown"
    if "pullgate" in SERVERS:
        try:
            p = subprocess.run([PULLGATE_BIN, "--version"], capture_output=True, text=True, timeout=10)
            out["pullgate"] = (p.stdout or p.stderr).strip()
        except (OSError, subprocess.TimeoutExpired):
            out["pullgate"] = "unknown"
    return out


def output_path():
    stamp = datetime.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    out = os.environ.get("BENCH_OUT", "")
    if out.endswith(".json"):
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        return out
    directory = out or tempfile.mkdtemp(prefix="pullgate-bench-results.")
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, f"{stamp}.json")


def main():
    global PULLGATE_BIN
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    unknown = [s for s in SERVERS if s not in ALL_SERVERS]
    if unknown:
        sys.exit(f"unknown server(s) in BENCH_SERVERS: {unknown}")
    if "pullgate" in SERVERS and not os.access(PULLGATE_BIN, os.X_OK):
        sys.exit(f"pullgate binary {PULLGATE_BIN} not found or not executable; build it, set PULLGATE_BIN, "
                 "or set BENCH_SERVERS=distribution,nginx to run the baselines alone")
    work = os.environ.get("BENCH_WORK") or tempfile.mkdtemp(prefix="pullgate-bench.")
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)
    procs = Procs(work)
    started = time.monotonic()
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "quick": QUICK,
            "blob_bytes": BLOB_MIB * MIB, "runs": RUNS, "gate_pairs": GATE_PAIRS, "gate_seconds": GATE_SECONDS,
            "wrk": f"-t1 -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s",
            "throughput_gets": THROUGHPUT_GETS, "cold_clients": COLD_CLIENTS, "rss_clients": RSS_CLIENTS,
            "access_log": ACCESS_LOG, "server_cpu": SERVER_CPU, "client_cpu": CLIENT_CPU,
            "pullgate_bin": PULLGATE_BIN, "servers": SERVERS, "versions": versions(),
            "loadavg_start": os.getloadavg()[0]}
    try:
        build_headload(work)
        if "pullgate" in SERVERS:
            # Every restart execs the binary again: a copy keeps one build for the whole
            # run even if someone rebuilds build/pullgate meanwhile.
            copy = os.path.join(work, "pullgate-under-test")
            shutil.copy2(PULLGATE_BIN, copy)
            meta["pullgate_sha256"] = seed.file_sha256(copy)
            PULLGATE_BIN = copy
        log(f"work dir {work}; making the image ({BLOB_MIB} MiB large blob)")
        image = seed.make_image(os.path.join(work, "image"), BLOB_MIB * MIB)
        docroot = os.path.join(work, "docroot")
        seed.make_static_tree(docroot, image)

        upstream_port, upstream = start_upstream_registry(procs, work, CLIENT_CPU, env=dict(os.environ, GOMAXPROCS="1"))
        log(f"upstream on :{upstream_port}; pushing the image")
        seed.push_image(upstream_port, image)
        relay = Relay(procs, upstream_port)
        relay_url = f"http://{LOOPBACK}:{relay.port}"
        log(f"relay on :{relay.port} -> :{upstream_port}")

        results = {}
        for name in SERVERS:
            twin = None
            if name == "pullgate":
                server = Pullgate(procs, work, relay_url)
                twin = Pullgate(procs, work, relay_url, gate=False)
            elif name == "distribution":
                server = Distribution(procs, work, relay_url)
            elif name == "nginx-cache":
                server = NginxCache(procs, work, relay.port)
            else:
                server = Nginx(procs, work, image, docroot)
            results[name] = bench_server(server, image, relay, twin)
        meta["seconds"] = round(time.monotonic() - started, 1)
        meta["loadavg_end"] = os.getloadavg()[0]
        doc = {"meta": meta, "image": {"manifest": image["manifest"]["digest"], "large": image["large"]["digest"],
                                       "large_bytes": image["large"]["size"]},
               "results": results}
        doc["targets"] = report.evaluate(doc)
        path = output_path()
        with open(path, "w") as f:
            json.dump(doc, f, indent=2)
        print(report.table(doc))
        print(f"\nJSON: {path}")
        failed = [t for t in doc["targets"] if t["verdict"] != "PASS"]
        if failed and os.environ.get("BENCH_STRICT", "") not in ("", "0"):
            return 1
        return 0
    except BenchError as e:
        log(f"error: {e}")
        return 2
    finally:
        procs.stop_all()
        # A work dir given in BENCH_WORK belongs to the caller (run.sh removes its own).
        if not os.environ.get("BENCH_WORK"):
            if os.environ.get("BENCH_KEEP", "") in ("", "0"):
                shutil.rmtree(work, ignore_errors=True)
            else:
                log(f"kept work dir {work}")


if __name__ == "__main__":
    sys.exit(main())
