"""Shared pieces of pullgate's integration tests.

Everything here starts real processes on loopback ports found at runtime (bind port 0),
works in temp dirs and cleans up after itself: the upstream (Debian's docker-registry,
CNCF Distribution 2.8), pullgate, a private containerd, skopeo runs, and image seeding
through the registry push API. Readiness is polled with a deadline, never slept for.
"""
import contextlib
import gzip
import hashlib
import http.client
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.parse

REGISTRY_BIN = "/usr/bin/docker-registry"

MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"

# The six Accept lines skopeo sends (containers/image 5.23), one header each.
SKOPEO_ACCEPTS = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
]
ALL_MANIFEST_ACCEPT = ", ".join(SKOPEO_ACCEPTS)

BIG_LAYER_BYTES = 64 * 1024 * 1024


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, what, interval=0.05):
    """Polls predicate() until it returns a truthy value; raises after timeout."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except AssertionError:
            raise
        except Exception as e:  # the thing polled may not be up yet
            last_error = e
        time.sleep(interval)
    raise TimeoutError("timed out after %ss waiting for %s (last error: %r)" % (timeout, what, last_error))


def send_request(conn, method, path, headers, body, skip_host=False):
    """Writes one request on `conn`: the headers as given (pairs), Content-Length when
    there is a body (None: no body, no Content-Length), no Accept-Encoding added."""
    conn.putrequest(method, path, skip_host=skip_host, skip_accept_encoding=True)
    for name, value in (headers or []):
        conn.putheader(name, value)
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    if body:
        conn.send(body)


def _exchange(conn, method, path, headers, body):
    """One request on `conn`, closed after. Returns (status, headers as list of pairs, body)."""
    try:
        send_request(conn, method, path, headers, body)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.getheaders(), data
    finally:
        conn.close()


def http_request(host, port, method, path, headers=None, body=None, timeout=30):
    """One request on a fresh connection. Returns (status, headers as list of pairs, body)."""
    return _exchange(http.client.HTTPConnection(host, port, timeout=timeout), method, path, headers, body)


def header(headers, name):
    """First value of a header in a list of pairs (case-insensitive), or None."""
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


def _stop_process(proc, timeout=10):
    """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit code and
    whether it exited on SIGTERM within the timeout."""
    if proc.poll() is not None:
        return proc.returncode, True
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout), True
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(), False


# --------------------------------------------------------------------------------------
# Upstream: CNCF Distribution 2.8


class Registry:
    """A docker-registry on 127.0.0.1:port with filesystem storage in a temp dir.

    stop()/start() keep the port and the storage, for stale-if-error tests. Requests
    are counted from the registry's own log ("response completed" lines carry
    http.request.method and http.request.uri).
    """

    _URI = re.compile(r'http\.request\.uri=("(?:[^"\\]|\\.)*"|\S+)')
    _METHOD = re.compile(r"http\.request\.method=(\S+)")
    _UA = re.compile(r'http\.request\.useragent=("(?:[^"\\]|\\.)*"|\S+)')

    def __init__(self, workdir, auth=None):
        self.dir = tempfile.mkdtemp(prefix="registry-", dir=workdir)
        self.storage = os.path.join(self.dir, "storage")
        self.port = free_port()
        self.host = "127.0.0.1"
        self.address = "%s:%d" % (self.host, self.port)
        self.url = "http://" + self.address
        self.log_path = os.path.join(self.dir, "registry.log")
        self.config_path = os.path.join(self.dir, "config.yml")
        self.proc = None
        self._log = None
        self._marker = 0
        lines = [
            "version: 0.1",
            "log:",
            "  level: info",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            "    rootdirectory: %s" % self.storage,
            "  delete:",
            "    enabled: true",
            "http:",
            "  addr: %s" % self.address,
        ]
        if auth:
            lines += [
                "auth:",
                "  token:",
                "    realm: %s" % auth["realm"],
                "    service: %s" % auth["service"],
                "    issuer: %s" % auth["issuer"],
                "    rootcertbundle: %s" % auth["rootcertbundle"],
            ]
        self.auth = auth
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=20):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", self.config_path],
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("docker-registry exited with %s; log: %s" % (self.proc.returncode, self.log_path))
            status, _, _ = http_request(self.host, self.port, "GET", "/v2/", timeout=2)
            return status in (200, 401)
        wait_until(up, timeout, "docker-registry on " + self.address)
        return self

    def stop(self):
        if self.proc is not None:
            _stop_process(self.proc)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- request counting ------------------------------------------------------------

    def requests(self):
        """[(method, uri, user_agent)] of every request the registry completed so far."""
        out = []
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return out
        for line in text.splitlines():
            if "http.request.uri=" not in line or "http.request.method=" not in line:
                continue
            m = self._METHOD.search(line)
            u = self._URI.search(line)
            a = self._UA.search(line)
            uri = u.group(1)
            if uri.startswith('"'):
                uri = json.loads(uri)
            ua = a.group(1) if a else ""
            if ua.startswith('"'):
                ua = json.loads(ua)
            out.append((m.group(1), uri, ua))
        return out

    def sync_log(self, timeout=10):
        """Makes sure every request finished before now is in the log: the registry
        logs a request when it completes, so a fresh marker request showing up means
        earlier sequential requests are there too."""
        self._marker += 1
        path = "/v2/?pullgate-test-marker=%d" % self._marker
        http_request(self.host, self.port, "GET", path, timeout=5)
        wait_until(lambda: any(uri == path for _, uri, _ in self.requests()), timeout,
                   "registry log marker")

    def count(self, path, method=None, sync=True):
        """Requests served for exactly this path (query ignored), optionally one method."""
        if sync:
            self.sync_log()
        n = 0
        for m, uri, _ in self.requests():
            if urllib.parse.urlsplit(uri).path != path:
                continue
            if method is None or m == method:
                n += 1
        return n

    def count_prefix(self, prefix, method=None, sync=True):
        if sync:
            self.sync_log()
        return sum(1 for m, uri, _ in self.requests()
                   if uri.startswith(prefix) and "pullgate-test-marker" not in uri
                   and (method is None or m == method))

    # -- push API (seeding) ------------------------------------------------------------

    def _headers(self, extra=None):
        h = list(extra or [])
        if self.auth and self.auth.get("push_token"):
            h.append(("Authorization", "Bearer " + self.auth["push_token"](self)))
        return h

    def push_blob(self, repo, data):
        digest = sha256_digest(data)
        status, _, _ = http_request(self.host, self.port, "HEAD", "/v2/%s/blobs/%s" % (repo, digest),
                                    headers=self._headers())
        if status == 200:
            return digest
        status, headers, body = http_request(self.host, self.port, "POST", "/v2/%s/blobs/uploads/" % repo,
                                             headers=self._headers(), body=b"")
        if status != 202:
            raise RuntimeError("upload start for %s: %d %r" % (repo, status, body))
        location = header(headers, "Location")
        parts = urllib.parse.urlsplit(location)
        query = parts.query + ("&" if parts.query else "") + "digest=" + urllib.parse.quote(digest)
        target = parts.path + "?" + query
        status, _, body = http_request(self.host, self.port, "PUT", target,
                                       headers=self._headers([("Content-Type", "application/octet-stream")]),
                                       body=data, timeout=120)
        if status != 201:
            raise RuntimeError("blob PUT %s: %d %r" % (digest, status, body))
        return digest

    def push_manifest(self, repo, reference, data, media_type):
        status, headers, body = http_request(self.host, self.port, "PUT", "/v2/%s/manifests/%s" % (repo, reference),
                                             headers=self._headers([("Content-Type", media_type)]), body=data)
        if status != 201:
            raise RuntimeError("manifest PUT %s:%s: %d %r" % (repo, reference, status, body))
        return sha256_digest(data)


# --------------------------------------------------------------------------------------
# Image content


def _layer_cache_dir():
    d = os.path.join(tempfile.gettempdir(), "pullgate-it-layers-%d" % os.getuid())
    os.makedirs(d, exist_ok=True)
    return d


def _tar_of(files):
    """A deterministic tar of {name: bytes} (mtime 0, root owned)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Layer:
    def __init__(self, blob, diff_id, media_type):
        self.blob = blob            # bytes as stored in the registry
        self.digest = sha256_digest(blob)
        self.diff_id = diff_id      # sha256 of the uncompressed tar
        self.media_type = media_type
        self.size = len(blob)


def small_layer(seed, oci=True, files=3):
    """A gzip-compressed tar layer with a few files, content determined by seed."""
    rng = random.Random(seed)
    content = [("seed-%s/file-%d.txt" % (seed, i), rng.randbytes(rng.randint(100, 40000)))
               for i in range(files)]
    tar = _tar_of(content)
    blob = gzip.compress(tar, compresslevel=6, mtime=0)
    return Layer(blob, sha256_digest(tar), MT_OCI_LAYER_GZIP if oci else MT_DOCKER_LAYER_GZIP)


def big_layer(seed, oci=True, size=BIG_LAYER_BYTES):
    """An uncompressed tar layer holding `size` incompressible bytes. Generated once per
    seed and kept on disk (the bytes depend only on the seed) so tests share it."""
    path = os.path.join(_layer_cache_dir(), "big-%s-%d.tar" % (seed, size))
    if not os.path.exists(path):
        data = random.Random("big-%s" % seed).randbytes(size)
        tar = _tar_of([("big-%s.bin" % seed, data)])
        tmp = path + ".%d.tmp" % os.getpid()
        with open(tmp, "wb") as f:
            f.write(tar)
        os.replace(tmp, path)
    with open(path, "rb") as f:
        tar = f.read()
    return Layer(tar, sha256_digest(tar), MT_OCI_LAYER_TAR if oci else MT_DOCKER_LAYER_TAR)


class Image:
    """One pushed single-platform image (manifest + config + layers)."""

    def __init__(self, repo, tag, manifest, manifest_type, config, layers):
        self.repo = repo
        self.tag = tag
        self.manifest = manifest
        self.manifest_type = manifest_type
        self.digest = sha256_digest(manifest)
        self.config = config
        self.config_digest = sha256_digest(config)
        self.layers = layers

    def blobs(self):
        """{digest: bytes} of config and layers."""
        out = {self.config_digest: self.config}
        for layer in self.layers:
            out[layer.digest] = layer.blob
        return out


class Index:
    def __init__(self, repo, tag, manifest, children):
        self.repo = repo
        self.tag = tag
        self.manifest = manifest
        self.manifest_type = MT_OCI_INDEX
        self.digest = sha256_digest(manifest)
        self.children = children  # {(os, arch): Image}


def _config_json(layers, arch="amd64", label="pullgate-test"):
    config = {
        "architecture": arch,
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/true"], "Labels": {"t": label}},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "pullgate test"} for _ in layers],
    }
    return json.dumps(config, indent=2, sort_keys=True).encode()


def build_image(repo, tag, layers, oci=True, arch="amd64", label="pullgate-test"):
    config = _config_json(layers, arch, label)
    manifest_type = MT_OCI_MANIFEST if oci else MT_DOCKER_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": MT_OCI_CONFIG if oci else MT_DOCKER_CONFIG,
                   "size": len(config), "digest": sha256_digest(config)},
        "layers": [{"mediaType": l.media_type, "size": l.size, "digest": l.digest} for l in layers],
    }
    body = json.dumps(manifest, indent=3).encode()
    return Image(repo, tag, body, manifest_type, config, layers)


def push_image(registry, image, tag=True):
    for digest, data in image.blobs().items():
        got = registry.push_blob(image.repo, data)
        assert got == digest
    registry.push_manifest(image.repo, image.tag if tag else image.digest, image.manifest, image.manifest_type)
    return image


def seed_schema2(registry, repo="it/schema2", tag="v1", seed="s2", big=False):
    layers = [small_layer(seed + "-a", oci=False), small_layer(seed + "-b", oci=False)]
    if big:
        layers.append(big_layer(seed, oci=False))
    return push_image(registry, build_image(repo, tag, layers, oci=False, label=seed))


def seed_oci(registry, repo="it/oci", tag="v1", seed="oci", big=False):
    layers = [small_layer(seed + "-a"), small_layer(seed + "-b")]
    if big:
        layers.append(big_layer(seed))
    layers.append(small_layer(seed + "-c"))
    return push_image(registry, build_image(repo, tag, layers, oci=True, label=seed))


def seed_index(registry, repo="it/multi", tag="v1", seed="idx"):
    children = {}
    entries = []
    for arch in ("amd64", "arm64"):
        layers = [small_layer("%s-%s-a" % (seed, arch)), small_layer("%s-%s-b" % (seed, arch))]
        image = build_image(repo, tag, layers, oci=True, arch=arch, label="%s-%s" % (seed, arch))
        push_image(registry, image, tag=False)  # children first, by digest
        children[("linux", arch)] = image
        entries.append({"mediaType": MT_OCI_MANIFEST, "size": len(image.manifest), "digest": image.digest,
                        "platform": {"architecture": arch, "os": "linux"}})
    body = json.dumps({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": entries}, indent=2).encode()
    registry.push_manifest(repo, tag, body, MT_OCI_INDEX)
    return Index(repo, tag, body, children)


# --------------------------------------------------------------------------------------
# pullgate


class Pullgate:
    """$PULLGATE_BIN serve with a generated config; stdout (access log) and stderr go
    to files in its temp dir."""

    def __init__(self, workdir, upstreams, offline=False, extra=None, args=None, bin=None):
        self.bin = bin or os.environ.get("PULLGATE_BIN", "/work/main/build/pullgate")
        if not os.access(self.bin, os.X_OK):
            raise RuntimeError("PULLGATE_BIN %r is not an executable" % self.bin)
        self.dir = tempfile.mkdtemp(prefix="pullgate-", dir=workdir)
        self.data_dir = os.path.join(self.dir, "data")
        self.port = free_port()
        self.host = "127.0.0.1"
        self.address = "%s:%d" % (self.host, self.port)
        self.admin_port = free_port()
        self.admin_address = "%s:%d" % (self.host, self.admin_port)
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.config_path = os.path.join(self.dir, "pullgate.json")
        self.args = list(args or [])
        config = {
            "listen": self.address,
            "data_dir": self.data_dir,
            "threads": 2,
            "offline": offline,
            "access_log": "-",
            "admin": {"listen": self.admin_address},
            "upstreams": upstreams,
        }
        config.update(extra or {})
        self.config = config
        self.write_config()
        self.proc = None

    def write_config(self):
        with open(self.config_path, "w") as f:
            f.write("// generated by tests/integration/harness.py\n")
            json.dump(self.config, f, indent=2)

    def start(self, timeout=20):
        self._out = open(self.stdout_path, "ab")
        self._err = open(self.stderr_path, "ab")
        env = None
        if self.bin != pullgate_bin():
            # The sanitized build: use-after-free, overflows and undefined behaviour
            # are what it is run for; leak reports at exit are not checked yet.
            env = dict(os.environ)
            env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
        self.proc = subprocess.Popen([self.bin, "serve", "--config", self.config_path] + self.args,
                                     stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL, env=env)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("pullgate exited with %s; stderr: %s" % (self.proc.returncode, self.stderr()))
            status, _, _ = http_request(self.host, self.port, "GET", "/healthz", timeout=2)
            return status == 200
        wait_until(up, timeout, "pullgate /healthz on " + self.address)
        return self

    def stop(self):
        """SIGTERM; returns (exit code, exited within 10 s)."""
        result = (None, True)
        if self.proc is not None:
            result = _stop_process(self.proc, timeout=10)
            self.proc = None
            self._out.close()
            self._err.close()
        return result

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except FileNotFoundError:
            return ""

    def log_events(self):
        """Parsed log lines (JSON objects on stderr), the whole file."""
        return json_lines(self.stderr_path)

    def access_log(self):
        """Parsed access-log lines (JSON objects); lines that are not JSON are skipped."""
        return json_lines(self.stdout_path)

    def request(self, method, path, headers=None, body=None, timeout=30):
        return http_request(self.host, self.port, method, path, headers, body, timeout)

    def healthy(self):
        try:
            status, _, _ = self.request("GET", "/healthz", timeout=5)
            return status == 200
        except OSError:
            return False


def upstream_entry(registry, **kw):
    entry = {"name": registry.address, "url": registry.url, "default": True, "tag_ttl_s": 300}
    entry.update(kw)
    return entry


# --------------------------------------------------------------------------------------
# skopeo


def write_registries_conf(path, upstream, mirror, blocked=True):
    with open(path, "w") as f:
        f.write('unqualified-search-registries = []\n\n'
                '[[registry]]\nlocation = "%s"\ninsecure = true\nblocked = %s\n\n'
                '[[registry.mirror]]\nlocation = "%s"\ninsecure = true\n'
                % (upstream, "true" if blocked else "false", mirror))


def skopeo_copy(registries_conf, src, out_dir, all_images=False, timeout=300):
    cmd = ["skopeo", "--registries-conf", registries_conf, "--insecure-policy", "copy",
           "--src-tls-verify=false"]
    if all_images:
        cmd.append("--all")
    cmd += ["docker://" + src, "dir:" + out_dir]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, HOME=os.path.dirname(registries_conf)))


def skopeo_via_mirror(workdir, registry, pg, ref, all_images=False, timeout=120):
    """skopeo copy of <registry>/<ref> into a fresh dir: under workdir, with a
    registries.conf that blocks the upstream and names pg as its mirror. Returns
    (completed process, the output dir)."""
    name = "%s-%d" % (ref.replace("/", "_").replace(":", "_"), pg.port)
    conf = os.path.join(workdir, "registries-%s.conf" % name)
    write_registries_conf(conf, registry.address, pg.address, blocked=True)
    out = os.path.join(workdir, "skopeo-%s-%d" % (name, len(os.listdir(workdir))))
    return skopeo_copy(conf, "%s/%s" % (registry.address, ref), out, all_images=all_images, timeout=timeout), out


# --------------------------------------------------------------------------------------
# containerd


class Containerd:
    """A private containerd with short root/state/socket paths under /tmp (unix socket
    paths are limited to 108 bytes), CRI disabled."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pgc", dir="/tmp")
        self.root = os.path.join(self.dir, "r")
        self.state = os.path.join(self.dir, "s")
        self.sock = os.path.join(self.dir, "c.sock")
        self.config = os.path.join(self.dir, "c.toml")
        self.log_path = os.path.join(self.dir, "containerd.log")
        self.hosts_dir = os.path.join(self.dir, "hosts")
        os.makedirs(self.hosts_dir)
        with open(self.config, "w") as f:
            f.write('version = 2\nroot = "%s"\nstate = "%s"\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n\n'
                    '[grpc]\n  address = "%s"\n\n[ttrpc]\n  address = "%s"\n'
                    % (self.root, self.state, self.sock, self.sock + ".t"))
        self.proc = None

    def start(self, timeout=30):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["containerd", "--root", self.root, "--state", self.state,
                                      "--address", self.sock, "--config", self.config],
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("containerd exited with %s; log %s" % (self.proc.returncode, self.log_path))
            r = subprocess.run(["ctr", "-a", self.sock, "version"], capture_output=True, timeout=5)
            return r.returncode == 0
        wait_until(up, timeout, "containerd on " + self.sock, interval=0.1)
        return self

    def write_hosts(self, upstream, mirror):
        d = os.path.join(self.hosts_dir, upstream)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "hosts.toml"), "w") as f:
            f.write('server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n'
                    % (upstream, mirror))

    def ctr(self, namespace, *args, timeout=300, binary=False):
        return subprocess.run(["ctr", "-a", self.sock, "-n", namespace] + list(args),
                              capture_output=True, timeout=timeout, text=not binary)

    def pull(self, namespace, ref, platform=None, snapshotter=None):
        args = ["images", "pull", "--hosts-dir", self.hosts_dir, "--plain-http"]
        if platform:
            args += ["--platform", platform]
        if snapshotter:
            args += ["--snapshotter", snapshotter]
        return self.ctr(namespace, *(args + [ref]))

    def image_digest(self, namespace, ref):
        """The target digest `ctr images ls` shows for ref, or None."""
        r = self.ctr(namespace, "images", "ls")
        for line in r.stdout.splitlines()[1:]:
            cols = line.split()
            if cols and cols[0] == ref:
                for c in cols:
                    if c.startswith("sha256:"):
                        return c
        return None

    def content(self, namespace, digest):
        r = self.ctr(namespace, "content", "get", digest, binary=True)
        if r.returncode != 0:
            return None
        return r.stdout

    def close(self):
        if self.proc is not None:
            _stop_process(self.proc, timeout=15)
            self.proc = None
            self._log.close()
        # Snapshot mounts (overlay) must go before the directory can be removed.
        with contextlib.suppress(OSError):
            with open("/proc/self/mountinfo") as f:
                points = [line.split()[4] for line in f]
            for point in sorted((p for p in points if p.startswith(self.dir + "/")), key=len, reverse=True):
                subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------


class Workdir:
    """A temp dir for one test script, removed at exit."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="pg-it-")

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)


def read_dir_output(out_dir):
    """{name: bytes} of a skopeo dir: output."""
    out = {}
    for name in os.listdir(out_dir):
        with open(os.path.join(out_dir, name), "rb") as f:
            out[name] = f.read()
    return out


def assert_dir_output(test, out_dir, image):
    """Asserts on `test` that a skopeo dir: output holds image's manifest and every one
    of its blobs, byte for byte."""
    files = read_dir_output(out_dir)
    test.assertEqual(files.get("manifest.json"), image.manifest, "manifest differs in " + out_dir)
    for digest, data in image.blobs().items():
        test.assertEqual(files.get(digest.split(":", 1)[1]), data, "blob %s differs" % digest)


def workdir_and_upstream(test_class):
    """For setUpClass: a Workdir and a started Registry in it, both closed with the
    class. Returns (workdir, registry)."""
    work = Workdir()
    test_class.addClassCleanup(work.close)
    registry = Registry(work.path).start()
    test_class.addClassCleanup(registry.close)
    return work, registry


class ThreeImages:
    """unittest.TestCase mixin: images it/a, it/b and it/c (one layer of layer_bytes
    each, made from layer_seed) pushed to a real registry in setUpClass (push_one adds
    more); pull(pg, name) pulls one through pullgate with skopeo and checks every byte."""
    layer_seed = "three-images"
    layer_bytes = 1024 * 1024

    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = workdir_and_upstream(cls)
        cls.images, cls.references = {}, {}
        for name in ("a", "b", "c"):
            cls.push_one(name)

    @classmethod
    def push_one(cls, name, repository="it/"):
        layer = big_layer(cls.layer_seed + "-" + name, size=cls.layer_bytes)
        cls.images[name] = push_image(cls.registry, build_image(repository + name, "v1", [layer], label=name))
        cls.references[name] = "%s%s:v1" % (repository, name)

    def start_pullgate(self, cache):
        pg = Pullgate(self.work.path, [upstream_entry(self.registry)], extra={"cache": cache}).start()
        self.addCleanup(pg.close)
        return pg

    def pull(self, pg, name):
        done, out = skopeo_via_mirror(self.work.path, self.registry, pg, self.references[name])
        self.assertEqual(done.returncode, 0, done.stderr)
        assert_dir_output(self, out, self.images[name])


class PullgateAlive:
    """unittest.TestCase mixin: every test starts and ends with the class's pullgate
    (self.pg) running, so a crash is blamed on the test that caused it."""

    def setUp(self):
        super().setUp()
        self.assertTrue(self.pg.alive(), "pullgate died before this test: " + self.pg.stderr())

    def tearDown(self):
        self.assertTrue(self.pg.alive(), "pullgate died in this test: " + self.pg.stderr())
        super().tearDown()


# --------------------------------------------------------------------------------------
# TLS: a self-signed certificate for 127.0.0.1, HTTPS requests, an HTTPS upstream and
# a pullgate serving HTTPS. The certificate is its own CA.


def sanitized_bin():
    """The pullgate built with AddressSanitizer and UBSan (tests/run.sh builds it
    with tests/sanitize.sh --unit), or the normal one where there is none (a build by
    hand)."""
    path = os.environ.get("PULLGATE_SANITIZED_BIN", "")
    return path if path and os.access(path, os.X_OK) else pullgate_bin()


def env_without_leak_checks():
    """The environment for a pullgate where LeakSanitizer cannot work: under ptrace (it
    stops the threads through ptrace itself) or in a root without /proc. AddressSanitizer
    and UBSan still check everything else; in a plain run this is os.environ."""
    env = dict(os.environ)
    if "ASAN_OPTIONS" in env:
        options = [o for o in env["ASAN_OPTIONS"].split(":") if o and not o.startswith("detect_leaks=")]
        env["ASAN_OPTIONS"] = ":".join(options + ["detect_leaks=0"])
    return env


def assert_no_sanitizer_report(test, pg):
    with open(pg.stderr_path, "rb") as f:
        err = f.read().decode("utf-8", "replace")
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        test.assertNotIn(marker, err, "sanitizer report in pullgate's stderr:\n" + err[-6000:])


def pullgate_bin():
    return os.environ.get("PULLGATE_BIN", "/work/main/build/pullgate")


def workdir_for_cli(test_class):
    """For setUpClass of a test of CLI commands alone: checks that PULLGATE_BIN runs,
    and returns a Workdir closed with the class."""
    if not os.access(pullgate_bin(), os.X_OK):
        raise RuntimeError("PULLGATE_BIN %r is not an executable" % pullgate_bin())
    work = Workdir()
    test_class.addClassCleanup(work.close)
    return work


def one_line(test, text):
    """The only line of `text`, which must be exactly one line."""
    test.assertTrue(text.endswith("\n") and text.count("\n") == 1, repr(text))
    return text[:-1]


class GatedPulls:
    """Pulls through a gated pullgate by raw HTTP, for a TestCase whose class holds
    `pg` (a GatedPullgate) and `token` (its admin token): the manifest as skopeo asks
    for it, served byte for byte with its blobs, or refused with DENIED; the audit
    lines of a digest; a policy reload that must take."""

    def get(self, path, timeout=30):
        return self.pg.request("GET", path, headers=[("Accept", a) for a in SKOPEO_ACCEPTS], timeout=timeout)

    def assert_pulled(self, image, what=""):
        path = "/v2/%s/manifests/%s" % (image.repo, image.tag)
        status, _, body = self.get(path)
        self.assertEqual(status, 200, "%s GET %s: %d %r" % (what, path, status, body[:600]))
        self.assertEqual(body, image.manifest, what)
        for digest, data in image.blobs().items():
            status, _, got = self.pg.request("GET", "/v2/%s/blobs/%s" % (image.repo, digest))
            self.assertEqual(status, 200, "%s blob %s: %d" % (what, digest, status))
            self.assertEqual(got, data, what)

    def assert_denied(self, image, *texts, what=""):
        path = "/v2/%s/manifests/%s" % (image.repo, image.tag)
        status, _, body = self.get(path)
        return assert_oci_denied(self, status, body, "%s GET %s" % (what, path), *texts)

    def audit_for(self, digest, **fields):
        return [a for a in self.pg.audit_records()
                if a.get("digest") == digest and all(a.get(k) == v for k, v in fields.items())]

    def reload(self):
        status, _, body = admin_request(self.pg, self.token, "POST", "/v1/policy/reload")
        self.assertEqual(status, 200, body)
        doc = json.loads(body)
        self.assertTrue(doc["reloaded"], doc)
        return doc


class VerifyCommandAssertions:
    """unittest.TestCase mixin for the offline verify commands (verify-bundle,
    verify-notation): a refusal is exit 1, nothing on stdout and one stderr line
    "pullgate: not verified: ..."; a usage mistake is exit 2 and one line pointing at
    `pullgate <command> --help`. `command` names the command."""

    command = None

    def assert_refused(self, r, words):
        self.assertEqual(r.returncode, 1, "stdout %r stderr %r" % (r.stdout, r.stderr))
        self.assertEqual(r.stdout, "")
        err = one_line(self, r.stderr)
        self.assertTrue(err.startswith("pullgate: not verified: "), err)
        self.assertIn(words, err)

    def assert_usage_error(self, r, words):
        self.assertEqual(r.returncode, 2, "stdout %r stderr %r" % (r.stdout, r.stderr))
        err = one_line(self, r.stderr)
        self.assertTrue(err.startswith("pullgate: "), err)
        self.assertIn(words, err)
        self.assertIn("pullgate %s --help" % self.command, err)

    def assert_help(self, option):
        """`--help` prints the usage, which names `option`, and exits 0; no argument
        prints it and exits 2; `pullgate help` lists the command."""
        r = pullgate_cli(self.command, "--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(option, r.stdout)
        r = pullgate_cli(self.command)
        self.assertEqual(r.returncode, 2)
        self.assertIn("Usage:", r.stdout)
        r = pullgate_cli("help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("pullgate %s " % self.command, r.stdout)


def make_self_signed_cert(directory, ip="127.0.0.1"):
    """(cert_path, key_path) of a fresh self-signed RSA certificate with
    subjectAltName IP:<ip>, made with the openssl CLI."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                        "-days", "2", "-subj", "/CN=%s" % ip, "-addext", "subjectAltName=IP:%s" % ip,
                        "-keyout", key, "-out", cert],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl req failed: %s" % r.stderr)
    return cert, key


def https_context(cafile):
    """A verifying client context that trusts cafile."""
    import ssl
    return ssl.create_default_context(cafile=cafile)


def https_request(host, port, method, path, headers=None, body=None, timeout=30, context=None):
    """http_request over TLS. Returns (status, headers as list of pairs, body)."""
    return _exchange(http.client.HTTPSConnection(host, port, timeout=timeout, context=context),
                     method, path, headers, body)


class TlsRegistry(Registry):
    """A docker-registry serving HTTPS (http.tls) with the given certificate; seeding
    and log markers go over HTTPS too."""

    def __init__(self, workdir, cert_file, key_file):
        super().__init__(workdir)
        self.url = "https://" + self.address
        self.cert_file = cert_file
        self.context = https_context(cert_file)
        # Without auth the http: section is the last one in the generated config.
        with open(self.config_path, "a") as f:
            f.write("  tls:\n    certificate: %s\n    key: %s\n" % (cert_file, key_file))

    def request(self, method, path, headers=None, body=None, timeout=30):
        return https_request(self.host, self.port, method, path, headers, body, timeout, self.context)

    def start(self, timeout=20):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", self.config_path],
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("docker-registry exited with %s; log: %s" % (self.proc.returncode, self.log_path))
            status, _, _ = self.request("GET", "/v2/", timeout=2)
            return status == 200
        wait_until(up, timeout, "docker-registry (TLS) on " + self.address)
        return self

    def sync_log(self, timeout=10):
        self._marker += 1
        path = "/v2/?pullgate-test-marker=%d" % self._marker
        self.request("GET", path, timeout=5)
        wait_until(lambda: any(uri == path for _, uri, _ in self.requests()), timeout,
                   "registry log marker")

    def push_blob(self, repo, data):
        digest = sha256_digest(data)
        status, _, _ = self.request("HEAD", "/v2/%s/blobs/%s" % (repo, digest))
        if status == 200:
            return digest
        status, headers, body = self.request("POST", "/v2/%s/blobs/uploads/" % repo, body=b"")
        if status != 202:
            raise RuntimeError("upload start for %s: %d %r" % (repo, status, body))
        parts = urllib.parse.urlsplit(header(headers, "Location"))
        query = parts.query + ("&" if parts.query else "") + "digest=" + urllib.parse.quote(digest)
        status, _, body = self.request("PUT", parts.path + "?" + query,
                                       headers=[("Content-Type", "application/octet-stream")],
                                       body=data, timeout=120)
        if status != 201:
            raise RuntimeError("blob PUT %s: %d %r" % (digest, status, body))
        return digest

    def push_manifest(self, repo, reference, data, media_type):
        status, _, body = self.request("PUT", "/v2/%s/manifests/%s" % (repo, reference),
                                       headers=[("Content-Type", media_type)], body=data)
        if status != 201:
            raise RuntimeError("manifest PUT %s:%s: %d %r" % (repo, reference, status, body))
        return sha256_digest(data)


class TlsPullgate(Pullgate):
    """pullgate serving HTTPS with tls.cert_file/key_file; requests verify against the
    certificate."""

    def __init__(self, workdir, upstreams, cert_file, key_file, extra=None, **kw):
        extra = dict(extra or {})
        extra["tls"] = {"cert_file": cert_file, "key_file": key_file}
        super().__init__(workdir, upstreams, extra=extra, **kw)
        self.context = https_context(cert_file)

    def start(self, timeout=20):
        self._out = open(self.stdout_path, "ab")
        self._err = open(self.stderr_path, "ab")
        env = None
        if self.bin != pullgate_bin():
            # The sanitized build: use-after-free, overflows and undefined behaviour
            # are what it is run for; leak reports at exit are not checked yet.
            env = dict(os.environ)
            env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
        self.proc = subprocess.Popen([self.bin, "serve", "--config", self.config_path] + self.args,
                                     stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL, env=env)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("pullgate exited with %s; stderr: %s" % (self.proc.returncode, self.stderr()))
            status, _, _ = self.request("GET", "/healthz", timeout=2)
            return status == 200
        wait_until(up, timeout, "pullgate (TLS) /healthz on " + self.address)
        return self

    def request(self, method, path, headers=None, body=None, timeout=30):
        return https_request(self.host, self.port, method, path, headers, body, timeout, self.context)


# --------------------------------------------------------------------------------------
# The gate: a pullgate with a policy file and its own audit log, the pullgate CLI,
# OCI error bodies, containerd without fallback, and raw HEAD.


class GatedPullgate(Pullgate):
    """A Pullgate whose config names a policy file (written before start) and an audit
    log in its own dir. write_policy() + reload() change the policy of a running one."""

    def __init__(self, workdir, upstreams, policy_doc, denial_hint=None, extra=None, **kw):
        super().__init__(workdir, upstreams, extra=extra, **kw)
        self.policy_path = os.path.join(self.dir, "policy.json")
        self.audit_path = os.path.join(self.dir, "audit.log")
        self.write_policy(policy_doc)
        gate = {"policy_file": self.policy_path, "audit_log": self.audit_path}
        if denial_hint is not None:
            gate["denial_hint"] = denial_hint
        self.config["gate"] = gate
        self.write_config()

    def write_policy(self, doc):
        """doc: a dict (written as JSON under a comment line) or the exact text. Returns
        the bytes written; the policy's version is their sha256."""
        if isinstance(doc, str):
            data = doc.encode()
        else:
            data = ("// generated by tests/integration/harness.py\n" + json.dumps(doc, indent=2) + "\n").encode()
        tmp = self.policy_path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, self.policy_path)
        return data

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def audit_records(self):
        """Parsed audit-log lines; a partly written last line is skipped."""
        out = []
        try:
            with open(self.audit_path, "rb") as f:
                for line in f.read().decode("utf-8", "replace").splitlines():
                    with contextlib.suppress(ValueError):
                        out.append(json.loads(line))
        except FileNotFoundError:
            pass
        return out

    def cli(self, *args, timeout=60):
        """`pullgate ARGS --data <this data dir>` (verdict commands)."""
        return pullgate_cli(*(list(args) + ["--data", self.data_dir]), timeout=timeout)


def files_under(directory):
    """The relative paths of the files under directory (for "nothing was published")."""
    out = set()
    for root, _, files in os.walk(directory):
        for name in files:
            out.add(os.path.relpath(os.path.join(root, name), directory))
    return out


def pullgate_cli(*args, timeout=60):
    return subprocess.run([pullgate_bin()] + list(args), capture_output=True, text=True, timeout=timeout)


def pullgate_cli_on_terminal(*args, timeout=60):
    """Runs the CLI with stderr on a pseudo-terminal, as a person at a shell would (the
    progress line of long commands is drawn there only). Returns (exit code, stdout,
    what the terminal received on stderr)."""
    import pty
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([pullgate_bin()] + list(args), stdout=subprocess.PIPE, stderr=slave,
                                env=dict(os.environ, TERM="xterm"))
    finally:
        os.close(slave)
    received = bytearray()
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal's last descriptor
                break
            if not chunk:
                break
            received += chunk
        out = proc.stdout.read().decode()
        code = proc.wait(timeout=timeout)
    finally:
        os.close(master)
        proc.stdout.close()
    return code, out, received.decode("utf-8", "replace")


def oci_error(body):
    """(code, message) of the first error in an OCI error body."""
    doc = json.loads(body)
    first = doc["errors"][0]
    return first["code"], first["message"]


def assert_oci_denied(test, status, body, what, *texts):
    """Asserts on `test` (a TestCase) a 403 whose OCI error code is DENIED and whose
    message holds every one of texts; returns the message."""
    test.assertEqual(status, 403, "%s: expected 403 DENIED, got %d %r" % (what, status, body[:300]))
    code, message = oci_error(body)
    test.assertEqual(code, "DENIED", "%s: %r" % (what, body[:300]))
    for text in texts:
        test.assertIn(text, message, "%s: %r" % (what, message))
    return message


def read_token(pg, name="admin.token", timeout=10):
    """The token pullgate keeps in its data dir (first line of `name`), waited for:
    pullgate writes it while it starts."""
    path = os.path.join(pg.data_dir, name)

    def read():
        with open(path) as f:
            token = f.readline().strip()
        return token if len(token) >= 16 else None
    return wait_until(read, timeout, "the token in " + path)


def json_lines(path):
    """The JSON objects among a file's lines (others skipped; no file: none)."""
    out = []
    try:
        with open(path, "rb") as f:
            for line in f.read().decode("utf-8", "replace").splitlines():
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    except FileNotFoundError:
        pass
    return out


def metric(pg, line_start):
    """The value of the first /metrics line of pg that starts with line_start."""
    status, _, body = admin_request(pg, read_token(pg), "GET", "/metrics")
    assert status == 200, body
    for line in body.decode().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise LookupError("no metric " + line_start)


def admin_request(pg, token, method, path, body=None, headers=None, timeout=30):
    """One request to pg's admin listener with `Authorization: Bearer <token>` (token
    None: no Authorization added) and a JSON Content-Type when there is a body.
    Returns (status, headers as list of pairs, body)."""
    hs = list(headers or [])
    if token is not None:
        hs.insert(0, ("Authorization", "Bearer " + token))
    if body is not None:
        hs.append(("Content-Type", "application/json"))
    return http_request(pg.host, pg.admin_port, method, path, headers=hs, body=body, timeout=timeout)


def without_request_id(message):
    """A denial message minus its per-request part, for comparing two denials."""
    return re.sub(r"\(request id [^)]*\)", "(request id)", message)


def raw_head(host, port, path, headers=None, timeout=10):
    """HEAD on a raw socket with Connection: close; returns (status, headers as pairs,
    every byte after the header block) so a body sent after HEAD shows up."""
    lines = ["HEAD %s HTTP/1.1" % path, "Host: %s:%d" % (host, port), "Connection: close"]
    lines += ["%s: %s" % (k, v) for k, v in (headers or [])]
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    pairs = [tuple(part.strip() for part in line.split(":", 1)) for line in header_lines if ":" in line]
    return int(status_line.split()[1]), pairs, rest


def write_hosts_no_fallback(containerd, upstream, mirror):
    """hosts.toml for upstream whose server is the mirror itself: containerd has no
    other host to fall back to."""
    d = os.path.join(containerd.hosts_dir, upstream)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "hosts.toml"), "w") as f:
        f.write('server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n'
                % (mirror, mirror))


# --------------------------------------------------------------------------------------
# The client configurations shipped in deploy/, rendered for a test: the example host
# and upstream names are replaced, nothing else is changed.

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEPLOY_EXAMPLE_MIRROR = "pullgate.example.internal:5000"


def deploy_path(relative):
    return os.path.join(REPO_ROOT, "deploy", relative)


def read_deploy_file(relative):
    with open(deploy_path(relative), encoding="utf-8") as f:
        return f.read()


def render_shipped_hosts_toml(mirror):
    """deploy/containerd/hosts.toml with the example mirror host replaced by mirror."""
    text = read_deploy_file("containerd/hosts.toml")
    if DEPLOY_EXAMPLE_MIRROR not in text:
        raise RuntimeError("deploy/containerd/hosts.toml no longer names %s" % DEPLOY_EXAMPLE_MIRROR)
    return text.replace(DEPLOY_EXAMPLE_MIRROR, mirror)


def install_shipped_hosts_toml(containerd, upstream, mirror):
    """Installs the rendered shipped hosts.toml as <hosts-dir>/<upstream>/hosts.toml;
    returns its text."""
    text = render_shipped_hosts_toml(mirror)
    d = os.path.join(containerd.hosts_dir, upstream)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "hosts.toml"), "w") as f:
        f.write(text)
    return text


def containerd_through_mirror(test, upstream, mirror):
    """A private containerd whose shipped hosts.toml sends `upstream` to pullgate at
    `mirror`; closed when the test ends."""
    ctrd = Containerd().start()
    test.addCleanup(ctrd.close)
    install_shipped_hosts_toml(ctrd, upstream, mirror)
    return ctrd


def assert_ctr_pulls(test, ctrd, namespace, upstream, image, what):
    """`ctr pull` of upstream/image (repo and tag) through the mirror succeeds."""
    r = ctrd.pull(namespace, "%s/%s:%s" % (upstream, image.repo, image.tag))
    test.assertEqual(r.returncode, 0, "ctr pull of %s failed: %s" % (what, r.stderr))


def assert_ctr_refused(test, ctrd, namespace, upstream, image, what, words=None):
    """`ctr pull` of upstream/image fails, its output naming `words` when given."""
    r = ctrd.pull(namespace, "%s/%s:%s" % (upstream, image.repo, image.tag))
    test.assertNotEqual(r.returncode, 0, "ctr pulled %s: %s" % (what, r.stdout))
    if words is not None:
        test.assertIn(words, r.stderr + r.stdout)


def render_shipped_registries_conf(upstream, mirror):
    """deploy/crio-podman/registries.conf with Docker Hub's names replaced by upstream
    (registry-1.docker.io first: it contains docker.io) and the example mirror host by
    mirror. The mirror keeps its path-prefix form <mirror>/<upstream>."""
    text = read_deploy_file("crio-podman/registries.conf")
    for needle in (DEPLOY_EXAMPLE_MIRROR, "registry-1.docker.io", "docker.io"):
        if needle not in text:
            raise RuntimeError("deploy/crio-podman/registries.conf no longer names %s" % needle)
    return (text.replace(DEPLOY_EXAMPLE_MIRROR, mirror)
                .replace("registry-1.docker.io", upstream)
                .replace("docker.io", upstream))


class RequestLogMark:
    """The upstream's request log from a point on: requests() after mark() only."""

    def __init__(self, registry):
        self.registry = registry
        registry.sync_log()
        self.start = len(registry.requests())

    def requests(self):
        self.registry.sync_log()
        return [r for r in self.registry.requests()[self.start:] if "pullgate-test-marker" not in r[1]]

    def from_clients(self):
        """Requests that did not come from pullgate (nor from the test's own seeding,
        which sends no User-Agent)."""
        return [r for r in self.requests() if r[2] and not r[2].startswith("pullgate/")]
