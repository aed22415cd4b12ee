#!/usr/bin/env python3
"""Soak (issue 14, "Load"): mixed traffic from 1,000 concurrent keep-alive connections
for 10 minutes (--minutes), with the policy reloaded every 30 s and one image's
verdict flipped every second, against a real upstream that gets new images pushed
during the run. Every answer is checked (status and bytes); pullgate's RSS and
descriptors are sampled throughout.

    python3 bench/soak.py [--minutes 10] [--connections 1000] [--rate 500]
    bash bench/soak.sh --minutes 2          (pinned, bounded, cleaned up as run.sh is)

Exit 0 when every request got the answer it should (no 5xx, no wrong bytes, no
wrong status, no broken connection), 1 otherwise, 2 when the setup failed. What is
measured and how to read it: bench/README.md, "Soak".
"""
import argparse
import asyncio
import datetime
import hashlib
import http.client
import json
import os
import random
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import seed  # noqa: E402
from bench import LOOPBACK, MANIFEST_ACCEPT, BenchError, log  # noqa: E402
from fleet import percentile  # noqa: E402

HERE = bench.HERE
ANY_CPU = "0,1"
KIB = 1 << 10
MIB = 1 << 20
REQUEST_TIMEOUT_S = 30
# Request kinds the connections choose from, and their weights. "cold" is taken only
# when a freshly pushed image is waiting; otherwise the draw is made again.
WEIGHTS = {"manifest_tag": 20, "manifest_digest": 20, "blob_range": 30, "denied": 10, "flip": 10, "cold": 10}
WARM_LAYERS = (64 * KIB, 1 * MIB, 4 * MIB)
FLIP_LAYERS = (64 * KIB, 1 * MIB)
DENIED_LAYERS = (16 * KIB, 64 * KIB)
COLD_LAYERS = (32 * KIB, 256 * KIB)
MAX_RANGE = 256 * KIB


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="length of the load (default 10)")
    p.add_argument("--connections", type=int, default=1000, help="concurrent keep-alive connections (default 1000)")
    p.add_argument("--rate", type=float, default=500.0,
                   help="target requests per second over all connections (default 500); each connection "
                        "waits a random (exponential) pause between its requests")
    p.add_argument("--cold-every", type=float, default=1.0, help="seconds between new images pushed upstream")
    p.add_argument("--reload-every", type=float, default=30.0, help="seconds between policy reloads")
    p.add_argument("--flip-every", type=float, default=1.0, help="seconds between verdict changes")
    p.add_argument("--sample-every", type=float, default=2.0, help="seconds between RSS and descriptor samples")
    p.add_argument("--threads", type=int, default=2, help="pullgate I/O threads (default 2)")
    p.add_argument("--memory-mb", type=int, default=None,
                   help="pullgate's cache.memory_mb (its in-memory manifest and tag front; default: pullgate's, 32)")
    p.add_argument("--max-unpulled", default=None, metavar="AGE",
                   help="pullgate's cache.max_unpulled (e.g. 10m): cold images age out, so the store levels off "
                        "(default: none, the store grows by every new image)")
    p.add_argument("--eviction-interval", type=int, default=None, metavar="S",
                   help="pullgate's cache.eviction_interval_s (default: pullgate's, 300)")
    p.add_argument("--out", default=os.path.join(HERE, "results"),
                   help="directory for soak-<date>.json and .txt (default bench/results)")
    p.add_argument("--dump-grown", metavar="DIR", default=None,
                   help="at the end, copy the bytes of the anonymous mappings that grew most since minute 1 "
                        "into DIR (<start>.bin, read from /proc/<pid>/mem: needs root), to tell what they hold")
    p.add_argument("--note", default="", help="free text kept in the result (e.g. what else ran on the machine)")
    p.add_argument("--pullgate", default=os.environ.get("PULLGATE_BIN") or os.path.join(bench.REPO_ROOT, "build",
                                                                                        "pullgate"))
    extra = shlex.split(os.environ.get("SOAK_ARGS", ""))  # soak.sh passes its arguments here
    return p.parse_args(extra + argv)


# ---------------------------------------------------------------- images

def make_image(out_dir, repo, tag, layer_sizes):
    """An OCI image of random layers, written under out_dir for seed.push_image; the
    description also keeps every blob's bytes, for checking what is served."""
    os.makedirs(out_dir, exist_ok=True)
    blobs = []
    for i, size in enumerate(layer_sizes):
        data = os.urandom(size)
        path = os.path.join(out_dir, f"layer{i}")
        blobs.append({"path": path, "size": size, "digest": seed.write_bytes_blob(path, data), "data": data})
    config_bytes = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]},
                               "rootfs": {"type": "layers", "diff_ids": [b["digest"] for b in blobs]}},
                              sort_keys=True).encode()
    config_path = os.path.join(out_dir, "config")
    config = {"path": config_path, "size": len(config_bytes), "digest": seed.write_bytes_blob(config_path, config_bytes),
              "data": config_bytes}
    manifest_bytes = json.dumps({
        "schemaVersion": 2, "mediaType": seed.MANIFEST_TYPE,
        "config": {"mediaType": seed.CONFIG_TYPE, "digest": config["digest"], "size": config["size"]},
        "layers": [{"mediaType": seed.LAYER_TYPE, "digest": b["digest"], "size": b["size"]} for b in blobs],
    }, sort_keys=True).encode()
    manifest_path = os.path.join(out_dir, "manifest")
    manifest = {"path": manifest_path, "size": len(manifest_bytes),
                "digest": seed.write_bytes_blob(manifest_path, manifest_bytes), "data": manifest_bytes}
    return {"repo": repo, "tag": tag, "manifest_type": seed.MANIFEST_TYPE, "manifest": manifest,
            "blobs": [config] + blobs, "layers": blobs}


def soak_policy(generation):
    """soak/** is allowed by a rule, soak/blocked by a deny rule before it; anything
    else falls to `fallback: deny`. The reason carries the generation, so every
    reload brings a new policy version (and with it a re-evaluation of stored
    computed verdicts), not a reload of the same bytes."""
    return {"scopes": [{"name": "soak", "repository": "soak/**", "mode": "enforce", "unknown": "evaluate",
                        "fallback": "deny",
                        "rules": [{"action": "deny", "repository": "soak/blocked", "reason": f"blocked, gen {generation}"},
                                  {"action": "allow", "repository": "soak/**", "reason": f"soak gen {generation}"}]}]}


class SoakPullgate(bench.Pullgate):
    """bench.Pullgate's admin listener, token and metric reader, with the soak's config:
    several I/O threads (a soak should run the concurrent paths), a short tag TTL (so
    warm tags are re-checked upstream during the run) and a policy that is rewritten
    and reloaded."""
    name = "pullgate-soak"

    def __init__(self, procs, work, upstream_url, threads, cache=None):
        super().__init__(procs, work, upstream_url, gate=True)
        self.threads = threads
        self.cache = cache or {}  # pullgate's "cache" section; empty: its defaults
        self.policy_path = os.path.join(self.dir, "policy.json")
        self.generation = 0

    def write_policy(self):
        tmp = self.policy_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(soak_policy(self.generation), f, indent=2)
        os.replace(tmp, self.policy_path)

    def start(self, fresh):
        data = self.cache_dir(self.data, fresh)
        self.write_policy()
        token_file = os.path.join(self.dir, "admin.token")
        with open(os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(self.admin_token + "\n")
        config = {
            "listen": f"{LOOPBACK}:{self.port}", "data_dir": data, "threads": self.threads, "access_log": "",
            "upstreams": [{"name": self.upstream_url.split("//", 1)[1], "url": self.upstream_url, "default": True,
                           "tag_ttl_s": 30}],
            "gate": {"enabled": True, "policy_file": self.policy_path},
            "admin": {"listen": f"{LOOPBACK}:{self.admin_port}", "token_file": token_file},
        }
        if self.cache:
            config["cache"] = self.cache
        path = os.path.join(self.dir, "pullgate.json")
        with open(path, "w") as f:
            json.dump(config, f, indent=2)
        self.proc = self.procs.start(self.name, [bench.PULLGATE_BIN, "serve", "--config", path], ANY_CPU)


# ---------------------------------------------------------------- HTTP/1.1 over asyncio streams

class Transport(Exception):
    """The connection broke, timed out or sent something that is not HTTP."""


class Conn:
    """One keep-alive HTTP/1.1 connection. A request answered with Connection: close
    (pullgate's limits.max_requests_per_connection) opens a new one for the next."""

    def __init__(self, port):
        self.port = port
        self.reader = self.writer = None
        self.connects = 0
        self.requests = 0

    @property
    def open(self):
        return self.writer is not None

    async def connect(self):
        self.reader, self.writer = await asyncio.open_connection(LOOPBACK, self.port)
        self.connects += 1

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = self.reader = None

    async def request(self, method, path, headers=None, body=b""):
        try:
            return await asyncio.wait_for(self._request(method, path, headers or {}, body), REQUEST_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.close()
            raise Transport(f"no complete answer within {REQUEST_TIMEOUT_S} s")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as e:
            self.close()
            raise Transport(f"{type(e).__name__}: {e}")

    async def _request(self, method, path, headers, body):
        if self.writer is None:
            await self.connect()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {LOOPBACK}:{self.port}", "User-Agent: pullgate-soak"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method in ("PUT", "POST"):
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        self.requests += 1
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        got = {}
        for line in header_lines:
            k, _, v = line.partition(":")
            got[k.strip().lower()] = v.strip()
        if method == "HEAD" or status in (204, 304):
            data = b""
        elif got.get("transfer-encoding", "").lower() == "chunked":
            data = await self._chunked()
        elif "content-length" in got:
            data = await self.reader.readexactly(int(got["content-length"]))
        else:
            data = await self.reader.read()
            got["connection"] = "close"
        if got.get("connection", "").lower() == "close":
            self.close()
        return status, got, data

    async def _chunked(self):
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


# ---------------------------------------------------------------- checking answers

def is_denial(status, body):
    """403 with the registry error body, code DENIED: the gate's refusal."""
    if status != 403:
        return False
    try:
        return json.loads(body)["errors"][0]["code"] == "DENIED"
    except (ValueError, KeyError, IndexError, TypeError):
        return False


def check_manifest(status, headers, body, manifest):
    """None if the answer is the manifest, else (category, text)."""
    if status != 200:
        return status_problem(status, body)
    if body != manifest["data"]:
        return "wrong_bytes", f"manifest body of {len(body)} bytes is not {manifest['digest']}"
    got = headers.get("docker-content-digest")
    if got is not None and got != manifest["digest"]:
        return "wrong_bytes", f"Docker-Content-Digest {got}, expected {manifest['digest']}"
    return None


def check_range(status, headers, body, blob, first, last):
    if status != 206:
        if status == 200 and body == blob["data"]:
            return "wrong_status", "200 with the whole blob for a range request"
        if status == 200:
            return "wrong_bytes", f"200 with {len(body)} bytes that are not the blob"
        return status_problem(status, body)
    if body != blob["data"][first:last + 1]:
        return "wrong_bytes", f"bytes {first}-{last} of {blob['digest']} differ ({len(body)} bytes came)"
    want = f"bytes {first}-{last}/{blob['size']}"
    if headers.get("content-range") != want:
        return "wrong_bytes", f"Content-Range {headers.get('content-range')!r}, expected {want!r}"
    return None


def check_blob(status, headers, body, digest):
    if status != 200:
        return status_problem(status, body)
    if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
        return "wrong_bytes", f"{len(body)} bytes that do not hash to {digest}"
    return None


def status_problem(status, body):
    category = "status_5xx" if status >= 500 else "wrong_status"
    return category, f"HTTP {status}: {body[:160]!r}"


# ---------------------------------------------------------------- the load

class Stats:
    """Per request kind: latencies (s), answers by status, problems by category (with
    the first few texts)."""

    def __init__(self):
        self.latency = {}
        self.statuses = {}
        self.problems = {}
        self.samples = {}
        self.notes = {}

    def record(self, kind, seconds, status, problem=None):
        self.latency.setdefault(kind, []).append(seconds)
        key = str(status) if status is not None else "none"
        counts = self.statuses.setdefault(kind, {})
        counts[key] = counts.get(key, 0) + 1
        if problem is not None:
            category, text = problem
            per_kind = self.problems.setdefault(kind, {})
            per_kind[category] = per_kind.get(category, 0) + 1
            samples = self.samples.setdefault(kind, [])
            if len(samples) < 10:
                samples.append(f"{category}: {text}")
                log(f"  {kind}: {category}: {text}")

    def note(self, kind, what):
        per_kind = self.notes.setdefault(kind, {})
        per_kind[what] = per_kind.get(what, 0) + 1

    def summary(self):
        out = {}
        for kind, values in sorted(self.latency.items()):
            out[kind] = {"requests": len(values), "p50_ms": percentile(values, 50) * 1000,
                         "p99_ms": percentile(values, 99) * 1000, "max_ms": max(values) * 1000,
                         "statuses": self.statuses.get(kind, {}), "errors": self.problems.get(kind, {}),
                         "error_samples": self.samples.get(kind, [])}
            if kind in self.notes:
                out[kind]["answers"] = self.notes[kind]
        return out


class Soak:
    def __init__(self, args, server, upstream_port, images, work):
        self.args = args
        self.server = server
        self.upstream_port = upstream_port
        self.warm = images["warm"]
        self.denied = images["denied"]
        self.flip = images["flip"]
        self.work = work
        self.stats = Stats()
        self.cold_ready = []          # images pushed upstream, not pulled yet
        self.cold_pushed = 0
        self.cold_push_errors = []
        self.conns = []
        self.samples = []
        self.smaps_minute_1 = None  # anonymous memory per mapping near minute 1 and at the end
        self.smaps_end = None
        self.dumped = []  # files written by --dump-grown
        self.loop_lag = []
        self.reloads = []
        self.flips = 0
        self.admin_headers = {"Authorization": f"Bearer {server.admin_token}"}
        self.stop = None
        self.t0 = None

    # -------- one connection's loop

    async def client(self, conn, rng):
        mean_pause = self.args.connections / self.args.rate
        kinds = list(WEIGHTS)
        weights = [WEIGHTS[k] for k in kinds]
        while not self.stop.is_set():
            try:
                await asyncio.wait_for(self.stop.wait(), rng.expovariate(1 / mean_pause))
                return
            except asyncio.TimeoutError:
                pass
            kind = rng.choices(kinds, weights)[0]
            if kind == "cold":
                if not self.cold_ready:
                    kind = rng.choices(kinds[:-1], weights[:-1])[0]
                else:
                    await self.cold_pull(conn, self.cold_ready.pop(0))
                    continue
            await getattr(self, "do_" + kind)(conn, rng)

    async def timed(self, kind, conn, method, path, headers, check):
        """One request; check(status, headers, body) gives None or a problem. Returns
        (status, body) or None when the connection broke."""
        started = time.monotonic()
        try:
            status, got, body = await conn.request(method, path, headers)
        except Transport as e:
            self.stats.record(kind, time.monotonic() - started, None, ("transport", str(e)))
            return None
        self.stats.record(kind, time.monotonic() - started, status, check(status, got, body))
        return status, body

    async def do_manifest_tag(self, conn, rng):
        image = rng.choice(self.warm)
        await self.timed("manifest_tag", conn, "GET", f"/v2/{image['repo']}/manifests/{image['tag']}",
                         {"Accept": MANIFEST_ACCEPT}, lambda s, h, b: check_manifest(s, h, b, image["manifest"]))

    async def do_manifest_digest(self, conn, rng):
        image = rng.choice(self.warm)
        await self.timed("manifest_digest", conn, "GET", f"/v2/{image['repo']}/manifests/{image['manifest']['digest']}",
                         {"Accept": MANIFEST_ACCEPT}, lambda s, h, b: check_manifest(s, h, b, image["manifest"]))

    async def do_blob_range(self, conn, rng):
        image = rng.choice(self.warm)
        await self.range_request("blob_range", conn, rng, image, lambda p: p)

    async def range_request(self, kind, conn, rng, image, wrap):
        blob = rng.choice(image["layers"])
        first = rng.randrange(blob["size"])
        last = min(blob["size"] - 1, first + rng.randrange(MAX_RANGE))
        return await self.timed(kind, conn, "GET", f"/v2/{image['repo']}/blobs/{blob['digest']}",
                                {"Range": f"bytes={first}-{last}"},
                                wrap(lambda s, h, b: check_range(s, h, b, blob, first, last)))

    async def do_denied(self, conn, rng):
        """A denied image (manual deny verdict or the policy's deny rule), by tag, by
        digest or a blob of it: 403 DENIED is the right answer."""
        image = rng.choice(self.denied)
        target = rng.choice(["tag", "digest", "blob"])
        if target == "blob":
            path = f"/v2/{image['repo']}/blobs/{rng.choice(image['layers'])['digest']}"
        else:
            path = f"/v2/{image['repo']}/manifests/{image['tag'] if target == 'tag' else image['manifest']['digest']}"

        def check(status, headers, body):
            if is_denial(status, body):
                return None
            if 200 <= status < 300:
                return "wrong_status", f"{status} for a denied image ({path})"
            return status_problem(status, body)
        await self.timed("denied", conn, "GET", path, {"Accept": MANIFEST_ACCEPT}, check)

    async def do_flip(self, conn, rng):
        """The image whose verdict flips every second: 403 DENIED or the right bytes,
        by tag, by digest or a range of a blob."""
        image = self.flip
        target = rng.choice(["tag", "digest", "range"])

        def either(check_served):
            def check(status, headers, body):
                if is_denial(status, body):
                    self.stats.note("flip", "denied")
                    return None
                problem = check_served(status, headers, body)
                if problem is None:
                    self.stats.note("flip", "served")
                return problem
            return check
        if target == "range":
            await self.range_request("flip", conn, rng, image, either)
            return
        ref = image["tag"] if target == "tag" else image["manifest"]["digest"]
        await self.timed("flip", conn, "GET", f"/v2/{image['repo']}/manifests/{ref}", {"Accept": MANIFEST_ACCEPT},
                         either(lambda s, h, b: check_manifest(s, h, b, image["manifest"])))

    async def cold_pull(self, conn, image):
        """An image pushed upstream during the run, pulled as a client does: manifest by
        tag (the mirror resolves and fetches it), then every blob (each a fill)."""
        r = await self.timed("cold_manifest", conn, "GET", f"/v2/{image['repo']}/manifests/{image['tag']}",
                             {"Accept": MANIFEST_ACCEPT}, lambda s, h, b: check_manifest(s, h, b, image["manifest"]))
        if r is None or r[0] != 200:
            return
        for blob in image["blobs"]:
            await self.timed("cold_blob", conn, "GET", f"/v2/{image['repo']}/blobs/{blob['digest']}", {},
                             lambda s, h, b, d=blob["digest"]: check_blob(s, h, b, d))

    # -------- background activity

    def pusher(self, loop):
        """A thread: a new image upstream every --cold-every seconds, then handed to the
        connections (through the event loop) for its first pull."""
        n = 0
        while not self.stop_thread.wait(self.args.cold_every):
            image = make_image(os.path.join(self.work, "cold", str(n)), "soak/cold", f"c{n}", COLD_LAYERS)
            n += 1
            try:
                seed.push_image(self.upstream_port, image)
            except (OSError, RuntimeError) as e:
                self.cold_push_errors.append(str(e))
                continue
            for blob in image["blobs"]:
                blob.pop("data", None)  # checked by hash; the warm images keep their bytes
            loop.call_soon_threadsafe(self.cold_ready.append, image)
            self.cold_pushed += 1

    async def admin(self, conn, kind, method, path, body=b"", want=200):
        headers = dict(self.admin_headers)
        if body:
            headers["Content-Type"] = "application/json"
        started = time.monotonic()
        try:
            status, _, data = await conn.request(method, path, headers, body)
        except Transport as e:
            self.stats.record(kind, time.monotonic() - started, None, ("transport", str(e)))
            return None
        problem = None if status == want else status_problem(status, data)
        self.stats.record(kind, time.monotonic() - started, status, problem)
        return data if problem is None else None

    async def flipper(self):
        """Every --flip-every seconds the flip image's verdict changes: a manual deny,
        then cleared (the policy's allow rule decides again)."""
        conn = Conn(self.server.admin_port)
        digest = self.flip["manifest"]["digest"]
        deny = json.dumps({"decision": "deny", "reason": "soak flip", "by": "soak"}).encode()
        next_at = time.monotonic()
        while not self.stop.is_set():
            if self.flips % 2 == 0:
                await self.admin(conn, "admin_verdict", "PUT", f"/v1/verdicts/{digest}", deny)
            else:
                await self.admin(conn, "admin_verdict", "DELETE", f"/v1/verdicts/{digest}")
            self.flips += 1
            # On a fixed clock: the change's own time does not stretch the interval.
            next_at += self.args.flip_every
            await self.pause(max(0.0, next_at - time.monotonic()))
        conn.close()

    async def reloader(self):
        """Every --reload-every seconds a new policy generation is written and loaded,
        alternately by POST /v1/policy/reload and by SIGHUP (then waited for in
        pullgate_policy_reloads_total)."""
        conn = Conn(self.server.admin_port)
        n = 0
        next_at = time.monotonic() + self.args.reload_every
        while not await self.pause(max(0.0, next_at - time.monotonic())):
            next_at += self.args.reload_every
            self.server.generation += 1
            self.server.write_policy()
            started = time.monotonic()
            if n % 2 == 0:
                data = await self.admin(conn, "admin_reload", "POST", "/v1/policy/reload")
                ok = data is not None and json.loads(data).get("reloaded") is True
                how = "admin API"
            else:
                ok = await self.sighup_reload(conn)
                how = "SIGHUP"
                if not ok:
                    self.stats.record("admin_reload", time.monotonic() - started, None,
                                      ("wrong_status", "SIGHUP: reload not counted in 10 s"))
                else:
                    self.stats.record("admin_reload", time.monotonic() - started, 200)
            self.reloads.append({"t_s": round(time.monotonic() - self.t0, 1), "how": how, "ok": ok,
                                 "generation": self.server.generation})
            n += 1
        conn.close()

    async def reload_count(self, conn):
        data = await self.admin(conn, "admin_metrics", "GET", "/metrics")
        if data is None:
            return None
        for line in data.decode("utf-8", "replace").splitlines():
            if line.startswith("pullgate_policy_reloads_total{") and 'result="ok"' in line:
                return float(line.rsplit(None, 1)[1])
        return 0.0

    async def sighup_reload(self, conn):
        before = await self.reload_count(conn)
        os.kill(self.server.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = await self.reload_count(conn)
            if before is not None and now is not None and now > before:
                return True
            await asyncio.sleep(0.05)
        return False

    async def pause(self, seconds):
        """Sleeps; True when the run ended meanwhile."""
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    async def sampler(self):
        """pullgate's RSS (and its anonymous and file-backed parts), open descriptors and
        the generator's open connections every --sample-every seconds."""
        pid = self.server.proc.pid
        while True:
            status = {}
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads"):
                        status[k] = int(v.split()[0])
            self.samples.append({"t_s": round(time.monotonic() - self.t0, 2), "rss_kib": status["VmRSS"],
                                 "anon_kib": status["RssAnon"], "file_kib": status["RssFile"],
                                 "threads": status["Threads"], "fds": len(os.listdir(f"/proc/{pid}/fd")),
                                 "client_conns_open": sum(c.open for c in self.conns),
                                 "cpu_s": bench.cpu_seconds([pid]),
                                 "memory_cache_kib": (self.server.metric("pullgate_memory_cache_bytes") or 0) / 1024,
                                 "cache_kib": (self.server.metric("pullgate_cache_bytes") or 0) / 1024,
                                 "lmdb_used_kib": (self.server.metric("pullgate_lmdb_used_bytes") or 0) / 1024})
            if self.smaps_minute_1 is None and self.samples[-1]["t_s"] >= 60:
                self.smaps_minute_1 = anonymous_by_mapping(pid)
            if await self.pause(self.args.sample_every):
                self.smaps_end = anonymous_by_mapping(pid)
                if self.args.dump_grown and self.smaps_minute_1:
                    self.dumped = dump_grown(pid, self.smaps_minute_1, self.smaps_end, self.args.dump_grown)
                return

    async def lag_monitor(self):
        """How late the generator's event loop wakes (its own queueing, part of every
        latency it measures)."""
        while True:
            started = time.monotonic()
            if await self.pause(0.1):
                return
            self.loop_lag.append(time.monotonic() - started - 0.1)

    # -------- the run

    async def run(self):
        loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        self.stop_thread = threading.Event()
        self.conns = [Conn(self.server.port) for _ in range(self.args.connections)]
        # Opened in batches: a thousand SYNs at once would overflow the listen backlog.
        for i in range(0, len(self.conns), 100):
            await asyncio.gather(*(c.connect() for c in self.conns[i:i + 100]))
        log(f"{len(self.conns)} connections open; load for {self.args.minutes} min at ~{self.args.rate:.0f} req/s")
        self.t0 = time.monotonic()
        pusher = threading.Thread(target=self.pusher, args=(loop,), daemon=True)
        pusher.start()
        background = [asyncio.create_task(t) for t in (self.sampler(), self.lag_monitor(), self.flipper(),
                                                       self.reloader())]
        clients = [asyncio.create_task(self.client(c, random.Random(i))) for i, c in enumerate(self.conns)]
        progress = asyncio.create_task(self.progress())
        await asyncio.sleep(self.args.minutes * 60)
        self.stop.set()
        self.stop_thread.set()
        await asyncio.gather(*clients)
        await asyncio.gather(*background)
        progress.cancel()
        self.duration_s = time.monotonic() - self.t0
        pusher.join(30)
        for c in self.conns:
            c.close()

    async def progress(self):
        while True:
            await asyncio.sleep(30)
            total = sum(len(v) for v in self.stats.latency.values())
            bad = sum(n for kinds in self.stats.problems.values() for n in kinds.values())
            s = self.samples[-1] if self.samples else {}
            log(f"  t={time.monotonic() - self.t0:.0f}s requests {total} problems {bad} "
                f"RSS {s.get('rss_kib', 0) / 1024:.1f} MiB fds {s.get('fds')} conns open {s.get('client_conns_open')} "
                f"cold pushed {self.cold_pushed} waiting {len(self.cold_ready)}")


# ---------------------------------------------------------------- set-up and report

def warm_up(server, images, admin_headers):
    """Before the load: the warm and flip images pulled in full and checked, the denied
    ones given their manual deny verdicts (and refused), the blocked one refused."""
    def get(path, headers=None):
        return bench.http_request(server.port, "GET", path, {"Accept": MANIFEST_ACCEPT, **(headers or {})}, timeout=60)
    for image in images["warm"] + [images["flip"]]:
        for ref in (image["tag"], image["manifest"]["digest"]):
            status, headers, body = get(f"/v2/{image['repo']}/manifests/{ref}")
            if check_manifest(status, headers, body, image["manifest"]) is not None:
                raise BenchError(f"warm-up: {image['repo']}:{ref} gave HTTP {status}")
        for blob in image["blobs"]:
            status, headers, body = get(f"/v2/{image['repo']}/blobs/{blob['digest']}")
            if check_blob(status, headers, body, blob["digest"]) is not None:
                raise BenchError(f"warm-up: blob {blob['digest']} gave HTTP {status}, {len(body)} bytes")
    for image in images["denied"]:
        if image["repo"] != "soak/blocked":
            body = json.dumps({"decision": "deny", "reason": "soak: denied image", "by": "soak"}).encode()
            conn_status, _, data = admin_put(server.admin_port, f"/v1/verdicts/{image['manifest']['digest']}",
                                             admin_headers, body)
            if conn_status != 200:
                raise BenchError(f"setting a deny verdict gave HTTP {conn_status}: {data[:200]!r}")
        status, _, body = get(f"/v2/{image['repo']}/manifests/{image['tag']}")
        if not is_denial(status, body):
            raise BenchError(f"warm-up: denied image {image['repo']}:{image['tag']} gave HTTP {status}: {body[:200]!r}")


def admin_put(port, path, headers, body):
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    try:
        conn.request("PUT", path, body=body, headers={**headers, "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def anonymous_by_mapping(pid):
    """pullgate's anonymous memory per mapping, from /proc/<pid>/smaps:
    {"<start>-<name>": {"kind", "size_kib", "anon_kib"}}. The kind says what a mapping
    is: the brk heap, a thread stack (anonymous, a multiple of 4 KiB after a guard
    page), another anonymous mapping (malloc's mmap'd chunks and arenas, LMDB's), or a
    file (named)."""
    out, key = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if not fields:
                continue
            if "-" in fields[0] and not fields[0].endswith(":"):
                start, end = (int(x, 16) for x in fields[0].split("-"))
                name = fields[5] if len(fields) > 5 else ""
                kind = name if name.startswith("[") else ("file " + os.path.basename(name) if name else "anonymous")
                key = f"{start:x}-{name or 'anon'}"
                out[key] = {"kind": kind, "size_kib": (end - start) // 1024, "anon_kib": 0}
            elif fields[0] == "Anonymous:" and key:
                out[key]["anon_kib"] = int(fields[1])
    return out


def dump_grown(pid, before, after, out_dir, count=4):
    """Copies the `count` anonymous mappings that grew most between two snapshots
    into out_dir/<start>.bin, so their contents can say what they are (a table of
    pointers, text, zeroes). Returns [{"mapping", "file", "grew_kib"}]."""
    grown = [(m["anon_kib"] - before.get(key, {}).get("anon_kib", 0), key, m) for key, m in after.items()
             if m["kind"] == "anonymous"]
    grown.sort(key=lambda g: -g[0])
    os.makedirs(out_dir, exist_ok=True)
    written = []
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for grew, key, m in grown[:count]:
            if grew <= 0:
                break
            start = int(key.split("-")[0], 16)
            path = os.path.join(out_dir, f"{start:x}.bin")
            try:
                mem.seek(start)
                data = mem.read(m["size_kib"] * 1024)
            except OSError as e:
                written.append({"mapping": key, "error": str(e), "grew_kib": grew})
                continue
            with open(path, "wb") as f:
                f.write(data)
            written.append({"mapping": key, "file": path, "grew_kib": grew})
    return written


def anonymous_growth(before, after, top=12):
    """Where anonymous memory grew between two snapshots: by kind (the brk heap,
    anonymous mappings, files, stacks) and the largest single mappings."""
    by_kind, rows = {}, []
    for key, m in after.items():
        grew = m["anon_kib"] - before.get(key, {}).get("anon_kib", 0)
        kind = m["kind"] if m["kind"] == "anonymous" or m["kind"].startswith("[") else "files"
        entry = by_kind.setdefault(kind, {"grew_kib": 0, "mappings_new": 0})
        entry["grew_kib"] += grew
        entry["mappings_new"] += key not in before
        if grew:
            rows.append({"mapping": key, "kind": m["kind"], "size_kib": m["size_kib"], "anon_kib": m["anon_kib"],
                         "grew_kib": grew, "new": key not in before})
    for key, m in before.items():
        if key not in after:
            kind = m["kind"] if m["kind"] == "anonymous" or m["kind"].startswith("[") else "files"
            entry = by_kind.setdefault(kind, {"grew_kib": 0, "mappings_new": 0})
            entry["grew_kib"] -= m["anon_kib"]
            entry.setdefault("mappings_gone", 0)
            entry["mappings_gone"] += 1
    rows.sort(key=lambda r: -abs(r["grew_kib"]))
    return {"by_kind": by_kind, "largest": rows[:top]}


def at_minute_one(samples):
    """The sample nearest to 60 s into the load, or None if the run was shorter."""
    later = [s for s in samples if s["t_s"] >= 55]
    if not later:
        return None
    return min(later, key=lambda s: abs(s["t_s"] - 60))


def cache_section(args):
    """pullgate's "cache" config section from the soak's flags; empty: its defaults."""
    cache = {}
    if args.memory_mb is not None:
        cache["memory_mb"] = args.memory_mb
    if args.max_unpulled is not None:
        cache["max_unpulled"] = args.max_unpulled
    if args.eviction_interval is not None:
        cache["eviction_interval_s"] = args.eviction_interval
    return cache


def memory_summary(samples):
    first_min = at_minute_one(samples)
    out = {"samples": len(samples),
           "rss_mib_start": samples[0]["rss_kib"] / 1024 if samples else None,
           "rss_mib_max": max(s["rss_kib"] for s in samples) / 1024 if samples else None,
           "fds_start": samples[0]["fds"] if samples else None,
           "fds_max": max(s["fds"] for s in samples) if samples else None,
           "client_conns_open_min": min(s["client_conns_open"] for s in samples) if samples else None}
    if first_min is None:
        out["note"] = "the load ran under a minute: no minute-1 reference"
        return out
    rest = [s for s in samples if s["t_s"] >= first_min["t_s"]]
    for key, name in (("rss_kib", "rss"), ("anon_kib", "anon"), ("file_kib", "file"), ("fds", "fds")):
        ref, top = first_min[key], max(s[key] for s in rest)
        out[f"{name}_at_minute_1"] = ref / 1024 if key != "fds" else ref
        out[f"{name}_max_after_minute_1"] = top / 1024 if key != "fds" else top
        out[f"{name}_ratio"] = top / ref if ref else None
    out["minute_1_sample_t_s"] = first_min["t_s"]
    # Levelling off: the highest value in the second half of the load against the
    # highest in the first half (after minute 1). Growth that stops, as a front or a
    # store reaching its cap, gives a ratio near 1 where minute 1's ratio cannot.
    half = (first_min["t_s"] + rest[-1]["t_s"]) / 2
    early, late = [s for s in rest if s["t_s"] < half], [s for s in rest if s["t_s"] >= half]
    if early and late:
        out["half_t_s"] = half
        for key, name in (("rss_kib", "rss"), ("anon_kib", "anon"), ("file_kib", "file"), ("fds", "fds")):
            a, b = max(s[key] for s in early), max(s[key] for s in late)
            out[f"{name}_second_half_ratio"] = b / a if a else None
    # The in-memory manifest and tag front grows with every new image until it is full
    # (cache.memory_mb): its own count, to hold up against the anonymous growth.
    out["memory_cache_mib_at_minute_1"] = first_min.get("memory_cache_kib", 0) / 1024
    out["memory_cache_mib_end"] = samples[-1].get("memory_cache_kib", 0) / 1024
    out["cache_mib_end"] = samples[-1].get("cache_kib", 0) / 1024
    out["lmdb_used_mib_end"] = samples[-1].get("lmdb_used_kib", 0) / 1024
    return out


def server_counters(server):
    """pullgate's own count of the answers it sent, by status (admin /metrics)."""
    status, _, body = bench.http_request(server.admin_port, "GET", "/metrics",
                                         {"Authorization": f"Bearer {server.admin_token}"}, timeout=30)
    if status != 200:
        return {"error": f"/metrics gave HTTP {status}"}
    by_status, reloads, buckets = {}, {}, {}
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("pullgate_http_request_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = float(line.rsplit(None, 1)[1])
        elif line.startswith("pullgate_http_requests_total{"):
            code = line.split('status="', 1)[1].split('"', 1)[0]
            by_status[code] = by_status.get(code, 0) + float(line.rsplit(None, 1)[1])
        elif line.startswith("pullgate_policy_reloads_total{"):
            result = line.split('result="', 1)[1].split('"', 1)[0]
            reloads[result] = float(line.rsplit(None, 1)[1])
    return {"http_requests_by_status": by_status,
            "http_5xx": sum(n for code, n in by_status.items() if code.startswith("5")),
            "policy_reloads": reloads, "latency_buckets": buckets,
            "gate_evaluations": server.metric("pullgate_gate_evaluations_total"),
            "gate_memo_entries": server.metric("pullgate_gate_memo_entries"),
            "evicted_bytes": server.metric("pullgate_evicted_bytes_total")}


def server_quantiles(before, after):
    """p50 and p99 of pullgate's own request times during the load (all kinds), from
    the histogram's cumulative buckets: the upper bound of the bucket the quantile
    falls in. The server's side of the latency, free of the generator's queueing."""
    delta = {le: n - before.get(le, 0) for le, n in after.items()}
    bounds = sorted(delta, key=lambda le: float("inf") if le == "+Inf" else float(le))
    count = delta.get("+Inf", 0)
    out = {"requests": count}
    for q in (50, 99, 99.9):
        le = next((b for b in bounds if delta[b] >= count * q / 100), None) if count else None
        out[f"p{q}_le_ms"] = None if le in (None, "+Inf") else float(le) * 1000
    return out


def human(doc):
    m, r = doc["meta"], doc["result"]
    lines = [f"pullgate soak, {m['date']}: {m['connections']} connections, {m['load_seconds']:.0f} s of load "
             f"(target {m['rate']:.0f} req/s; {m['requests_per_s']:.0f} req/s done), pullgate {m['threads']} threads",
             f"load average {m['loadavg_start']:.2f} at start, {m['loadavg_end']:.2f} at end; {m['note']}".rstrip("; "),
             "",
             f"{'kind':<16}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  errors"]
    for kind, k in r["kinds"].items():
        errors = ", ".join(f"{c} {n}" for c, n in k["errors"].items()) or "0"
        extra = f"  ({', '.join(f'{a} {n}' for a, n in k['answers'].items())})" if "answers" in k else ""
        lines.append(f"{kind:<16}{k['requests']:>9}{k['p50_ms']:>9.1f}{k['p99_ms']:>9.1f}{k['max_ms']:>9.1f}  "
                     f"{errors}{extra}")
    mem = r["memory"]
    lines.append("")
    if "rss_ratio" in mem:
        lines.append(f"RSS: {mem['rss_at_minute_1']:.1f} MiB at minute 1 (t={mem['minute_1_sample_t_s']:.0f} s), "
                     f"max after it {mem['rss_max_after_minute_1']:.1f} MiB: ratio {mem['rss_ratio']:.3f} "
                     f"(anonymous {mem['anon_ratio']:.3f}, file-backed {mem['file_ratio']:.3f})")
        lines.append(f"in-memory manifest and tag cache (pullgate_memory_cache_bytes): "
                     f"{mem['memory_cache_mib_at_minute_1']:.1f} MiB at minute 1, {mem['memory_cache_mib_end']:.1f} MiB "
                     f"at the end (cache.memory_mb {m.get('memory_mb') or 'default, 32'})")
        lines.append(f"descriptors: {mem['fds_at_minute_1']} at minute 1, max after it {mem['fds_max_after_minute_1']}: "
                     f"ratio {mem['fds_ratio']:.3f}")
        if "rss_second_half_ratio" in mem:
            lines.append(f"levelling off, max of the second half (from t={mem['half_t_s']:.0f} s) over max of the first: "
                         f"RSS {mem['rss_second_half_ratio']:.3f}, anonymous {mem['anon_second_half_ratio']:.3f}, "
                         f"file-backed {mem['file_second_half_ratio']:.3f}, descriptors {mem['fds_second_half_ratio']:.3f}")
        lines.append(f"the store at the end: {mem['cache_mib_end']:.1f} MiB of cache (pullgate_cache_bytes), "
                     f"{mem['lmdb_used_mib_end']:.1f} MiB of LMDB used, {(r['server'].get('evicted_bytes') or 0) / 2**20:.1f} MiB "
                     f"evicted (cache: {m.get('cache') or 'defaults'})")
    else:
        lines.append(f"RSS: {mem.get('note')}; start {mem['rss_mib_start']:.1f} MiB, max {mem['rss_mib_max']:.1f} MiB")
    growth = r.get("anonymous_growth_after_minute_1")
    if growth:
        kinds = ", ".join(f"{k} {v['grew_kib']:+d} KiB" + (f" ({v['mappings_new']} new mappings)" if v["mappings_new"] else "")
                          for k, v in sorted(growth["by_kind"].items(), key=lambda kv: -abs(kv[1]["grew_kib"])))
        lines.append(f"anonymous memory from minute 1 to the end, by mapping kind: {kinds}")
        lines.append("  largest: " + "; ".join(f"{g['kind']} {g['size_kib']} KiB mapping {g['grew_kib']:+d} KiB"
                                               + (" (new)" if g["new"] else "") for g in growth["largest"][:6]))
    by_minute = [max((s for s in r["samples"] if s["t_s"] <= 60 * i), key=lambda s: s["t_s"], default=None)
                 for i in range(1, int(m["load_seconds"] // 60) + 1)]
    if by_minute and all(by_minute):
        lines.append("RSS at the end of each minute, MiB: " + ", ".join(f"{s['rss_kib'] / 1024:.1f}" for s in by_minute)
                     + "; descriptors: " + ", ".join(str(s["fds"]) for s in by_minute))
        lines.append("anonymous at the end of each minute, MiB: "
                     + ", ".join(f"{s['anon_kib'] / 1024:.1f}" for s in by_minute))
        if any("cache_kib" in s for s in by_minute):
            lines.append("cache at the end of each minute, MiB: "
                         + ", ".join(f"{s.get('cache_kib', 0) / 1024:.1f}" for s in by_minute))
    lines.append(f"client connections open: min {mem['client_conns_open_min']} of {m['connections']} over "
                 f"{mem['samples']} samples; requests per connection min {r['per_connection']['min']}, "
                 f"median {r['per_connection']['median']}, reconnects {r['per_connection']['reconnects']}")
    lines.append(f"cold images pushed {r['cold']['pushed']}, pulled {r['cold']['pulled']}, push errors "
                 f"{r['cold']['push_errors']}; policy reloads {r['reloads']['ok']}/{r['reloads']['done']} "
                 f"(server counted {r['server'].get('policy_reloads')}); verdict changes {r['verdict_changes']}; "
                 f"gate evaluations during the load {r['gate_evaluations_during_load']:.0f}; decisions the gate "
                 f"remembers at the end {r['server'].get('gate_memo_entries')}")
    lag = r["generator_loop_lag_ms"]
    lines.append(f"generator event-loop lag: p50 {lag['p50']:.1f} ms, p99 {lag['p99']:.1f} ms, max {lag['max']:.1f} ms "
                 f"(part of every latency above); generator CPU {m['generator_cpu_busy']:.0%} of one core")
    sl = r["server_latency"]
    lines.append(f"server-side: {r['server'].get('http_5xx')} 5xx answers in pullgate_http_requests_total; "
                 f"pullgate_http_request_seconds over the load ({sl['requests']:.0f} requests): p50 <= "
                 f"{sl['p50_le_ms']} ms, p99 <= {sl['p99_le_ms']} ms, p99.9 <= {sl['p99.9_le_ms']} ms (bucket bounds)")
    lines.append("")
    lines.append(f"5xx {r['totals']['status_5xx']}, wrong bytes {r['totals']['wrong_bytes']}, wrong status "
                 f"{r['totals']['wrong_status']}, transport {r['totals']['transport']}: "
                 f"{'PASS' if r['pass'] else 'FAIL'}")
    return "\n".join(lines)


def collect(soak, server, counters_before, meta):
    """The result of a finished load: per-kind figures, memory, counters, PASS."""
    meta["loadavg_end"] = os.getloadavg()[0]
    meta["load_seconds"] = soak.duration_s
    kinds = soak.stats.summary()
    total_requests = sum(k["requests"] for name, k in kinds.items() if not name.startswith("admin"))
    meta["requests_per_s"] = total_requests / soak.duration_s
    totals = {c: sum(k["errors"].get(c, 0) for k in kinds.values())
              for c in ("status_5xx", "wrong_bytes", "wrong_status", "transport")}
    per_conn = sorted(c.requests for c in soak.conns)
    counters = server_counters(server)
    result = {
        "kinds": kinds, "totals": totals,
        "memory": memory_summary(soak.samples), "samples": soak.samples,
        "anonymous_growth_after_minute_1": (anonymous_growth(soak.smaps_minute_1, soak.smaps_end)
                                            if soak.smaps_minute_1 and soak.smaps_end else None),
        "dumped_mappings": soak.dumped,
        "per_connection": {"min": per_conn[0], "median": statistics.median(per_conn), "max": per_conn[-1],
                           "reconnects": sum(c.connects - 1 for c in soak.conns)},
        "cold": {"pushed": soak.cold_pushed, "pulled": kinds.get("cold_manifest", {}).get("requests", 0),
                 "left_unpulled": len(soak.cold_ready), "push_errors": len(soak.cold_push_errors),
                 "push_error_samples": soak.cold_push_errors[:5]},
        "reloads": {"done": len(soak.reloads), "ok": sum(r["ok"] for r in soak.reloads), "each": soak.reloads},
        "verdict_changes": soak.flips,
        "generator_loop_lag_ms": {"p50": percentile(soak.loop_lag, 50) * 1000,
                                  "p99": percentile(soak.loop_lag, 99) * 1000,
                                  "max": max(soak.loop_lag) * 1000},
        "server": counters,
        "gate_evaluations_during_load": (counters.get("gate_evaluations") or 0)
        - (counters_before.get("gate_evaluations") or 0),
        "server_latency": server_quantiles(counters_before.get("latency_buckets", {}),
                                           counters.get("latency_buckets", {})),
    }
    # The client's checks decide; the server's own 5xx count is a second witness.
    result["pass"] = (not any(totals.values()) and not counters.get("http_5xx")
                      and result["reloads"]["ok"] == result["reloads"]["done"]
                      and not soak.cold_push_errors)
    return result


def output_paths(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, "soak-" + datetime.date.today().isoformat())
    path, i = base, 1
    while os.path.exists(path + ".json"):
        i += 1
        path = f"{base}-{i}"
    return path + ".json", path + ".txt"


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def main():
    args = parse_args(sys.argv[1:])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    if not os.access(args.pullgate, os.X_OK):
        sys.exit(f"pullgate binary {args.pullgate} not found or not executable; build it or pass --pullgate")
    nofile = raise_nofile()
    if nofile[0] < args.connections + 200:
        sys.exit(f"RLIMIT_NOFILE is {nofile[0]} (hard {nofile[1]}): too low for {args.connections} connections")
    work = os.environ.get("BENCH_WORK") or tempfile.mkdtemp(prefix="pullgate-soak.")
    os.makedirs(work, exist_ok=True)
    procs = bench.Procs(work)
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
            "minutes": args.minutes, "connections": args.connections, "rate": args.rate,
            "cold_every_s": args.cold_every, "reload_every_s": args.reload_every, "flip_every_s": args.flip_every,
            "threads": args.threads, "memory_mb": args.memory_mb, "cache": cache_section(args), "weights": WEIGHTS, "note": args.note, "generator_nofile": nofile,
            "pullgate_bin": args.pullgate, "loadavg_start": os.getloadavg()[0]}
    try:
        copy = os.path.join(work, "pullgate-under-test")
        shutil.copy2(args.pullgate, copy)
        meta["pullgate_sha256"] = seed.file_sha256(copy)
        meta["pullgate_version"] = subprocess.run([copy, "--version"], capture_output=True, text=True,
                                                  timeout=10).stdout.strip()
        bench.PULLGATE_BIN = copy

        images = {"warm": [make_image(os.path.join(work, "img", f"w{i}"), "soak/warm", f"w{i}", WARM_LAYERS)
                           for i in range(4)],
                  "denied": [make_image(os.path.join(work, "img", f"d{i}"), "soak/denied", f"d{i}", DENIED_LAYERS)
                             for i in range(2)]
                  + [make_image(os.path.join(work, "img", "b0"), "soak/blocked", "b0", DENIED_LAYERS)],
                  "flip": make_image(os.path.join(work, "img", "f0"), "soak/flip", "f0", FLIP_LAYERS)}
        upstream_port, upstream = bench.start_upstream_registry(procs, work, ANY_CPU)
        for image in images["warm"] + images["denied"] + [images["flip"]]:
            seed.push_image(upstream_port, image)
        log(f"upstream on :{upstream_port} with {len(images['warm']) + len(images['denied']) + 1} images")

        server = SoakPullgate(procs, work, f"http://{LOOPBACK}:{upstream_port}", args.threads, cache_section(args))
        server.restart(fresh=True)
        admin_headers = {"Authorization": f"Bearer {server.admin_token}"}
        warm_up(server, images, admin_headers)
        with open(f"/proc/{server.proc.pid}/limits") as f:
            meta["pullgate_nofile"] = next((l.split()[3:5] for l in f if l.startswith("Max open files")), None)
        log(f"pullgate on :{server.port} (admin :{server.admin_port}), warm; pid {server.proc.pid}")

        soak = Soak(args, server, upstream_port, images, work)
        counters_before = server_counters(server)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        asyncio.run(soak.run())
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        # Near 100%: the generator's core was the limit, and its queueing is in the latencies.
        meta["generator_cpu_busy"] = ((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)) / soak.duration_s
        if server.proc.poll() is not None:
            raise BenchError(f"pullgate exited with {server.proc.returncode} during the load; {bench.tail(server.proc.bench_log)}")
        doc = {"meta": meta, "result": collect(soak, server, counters_before, meta)}
        text = human(doc)
        json_path, txt_path = output_paths(args.out)
        with open(json_path, "w") as f:
            json.dump(doc, f, indent=1)
        with open(txt_path, "w") as f:
            f.write(text + "\n")
        print(f"{text}\n\nJSON: {json_path}\nsummary: {txt_path}")
        return 0 if doc["result"]["pass"] else 1
    except BenchError as e:
        log(f"error: {e}")
        return 2
    finally:
        procs.stop_all()
        # A work dir given in BENCH_WORK is soak.sh's (pinned.sh removes it).
        if "BENCH_WORK" not in os.environ:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
