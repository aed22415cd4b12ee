"""The kustomize trees in deploy/kubernetes, rendered and held against a real pullgate.

No cluster runs here, so what breaks in real clusters is checked on the rendered
objects and with the real programs:
- `kubectl kustomize` (the one on PATH: run this once with kubectl 1.32 / kustomize
  v5 and once with Debian 12's 1.20 / v2.0.3) renders every tree without error.
- For each tree with a pullgate workload (regional, node-local, node-local-tiered)
  the pod is materialised in a temp root as the kubelet would lay it out: each
  volumeMount's mountPath under the root, ConfigMaps and Secrets written there from
  the rendered objects (the kubelet's `..data` links, the Secret's defaultMode,
  group fsGroup), emptyDirs and generic ephemeral volumes empty and writable by
  fsGroup. The config is read from the path the container's args name; every
  absolute path in it must lie under a mount and exist there (so the Secrets are
  mounted where the config reads them), and is moved under the root; the listeners
  move to free loopback ports. `pullgate check-config` and `pullgate policy check`
  must accept the rendered config and policy.
- pullgate is started with that config as the pod runs it: uid and gid 65532 (the
  securityContext), no capabilities, no_new_privs (setpriv). With the shipped
  placeholder secrets it must refuse to start, naming a placeholder file; with the
  placeholders replaced (random tokens, a fresh CA certificate) the probes of the
  rendered workload, on the listener their port names, answer 200 as the kubelet
  asks them (no token).
- regional: the ServiceMonitor's port reaches the admin listener through the Service
  it selects, and /metrics answers 200 with the Secret it names (401 without); the
  scan worker, run with the rendered args and its own materialised pod (token mount,
  --admin through the pullgate-admin Service), finishes a round against it.
- node-local trees: the init container's command, run with its mounts moved under
  the root, writes each hosts.toml where the node's /etc/containerd/certs.d is
  mounted; each is deploy/containerd/hosts.toml (the one test_deploy_configs.py
  proves closes the fallback) with the mirror's loopback address, for an upstream the
  config names. node-local-tiered's upstreams are the regional tree's Service.
- Image references equal `deploy/image/build.sh --print-refs`; cache volumes hold
  cache.max_size plus its headroom; every container runs non-root as 65532 with a
  read-only root, no capabilities and RuntimeDefault seccomp (the one exception: the
  init container that writes the node's certs.d runs as root, still without
  capabilities); the NetworkPolicies select the pods and ports the workloads have.

Not checked here: scheduling, PodDisruptionBudget and affinity behaviour, the
Prometheus Operator reading the ServiceMonitor, a CNI enforcing the NetworkPolicies,
containerd reading the written hosts.toml (test_deploy_configs.py does that for the
shipped file).
"""
import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import tomllib
import unittest
import urllib.parse

import yaml

import harness as h

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KUBE = os.path.join(ROOT, "deploy", "kubernetes")
TREES = ["common", "regional", "node-local", "node-local-tiered", "network-policy", "network-policy/workloads"]
POD_UID = 65532
PLACEHOLDER = b"REPLACE-ME"
# The config's fields that name files or directories (proxy/config.hpp), wherever they are.
PATH_KEYS = {"data_dir", "cert_file", "key_file", "ca_file", "password_file", "policy_file", "audit_log",
             "token_file", "scanner_token_file", "metrics_token_file", "trusted_keys"}


def kustomize(tree):
    r = subprocess.run(["kubectl", "kustomize", os.path.join(KUBE, tree)], capture_output=True, text=True,
                       timeout=120)
    if r.returncode != 0:
        raise AssertionError("kubectl kustomize %s failed:\n%s" % (tree, r.stderr))
    return [doc for doc in yaml.safe_load_all(r.stdout) if doc]


def strip_comments(text):
    """JSON with // line comments, as the trees' config.json and policy.json are written."""
    return "\n".join(re.sub(r"^\s*//.*$", "", line) for line in text.splitlines())


def find(objects, kind, name=None):
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    if len(found) != 1:
        raise AssertionError("expected one %s %s, found %d" % (kind, name or "", len(found)))
    return found[0]


def quantity_bytes(text):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    m = re.fullmatch(r"(\d+)([KMGT]i?)?", str(text))
    if not m:
        raise AssertionError("not a storage quantity: %r" % text)
    return int(m.group(1)) * units.get(m.group(2), 1)


def byte_size(text):
    """cache.max_size as pullgate reads it ("80GiB", "500MiB", bytes)."""
    m = re.fullmatch(r"(\d+)(KiB|MiB|GiB|TiB|B)?", str(text))
    if not m:
        raise AssertionError("not a byte size: %r" % text)
    return int(m.group(1)) * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}.get(m.group(2), 1)


def print_refs():
    r = subprocess.run([os.path.join(ROOT, "deploy", "image", "build.sh"), "--print-refs"], capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("deploy/image/build.sh --print-refs failed: %s" % r.stderr)
    refs = r.stdout.split()
    if len(refs) != 2:
        raise AssertionError("build.sh --print-refs printed %r, not two references" % r.stdout)
    return refs


def pullgate_workload(objects):
    """(workload, pod spec, pullgate container) of the tree's Deployment or DaemonSet running `serve`."""
    for o in objects:
        if o["kind"] in ("Deployment", "DaemonSet"):
            spec = o["spec"]["template"]["spec"]
            for c in spec["containers"]:
                if c.get("args", [])[:1] == ["serve"]:
                    return o, spec, c
    raise AssertionError("no Deployment or DaemonSet runs `pullgate serve`")


def drop_privileges():
    return ["setpriv", "--reuid=%d" % POD_UID, "--regid=%d" % POD_UID, "--clear-groups", "--no-new-privs",
            "--inh-caps=-all", "--bounding-set=-all", "--"]


class Pod:
    """A pod spec's volumes laid out under a temp root as the kubelet mounts them."""

    def __init__(self, objects, spec, root):
        self.objects = objects
        self.spec = spec
        self.root = root
        self.fs_group = spec.get("securityContext", {}).get("fsGroup")
        self.volumes = {v["name"]: v for v in spec.get("volumes", [])}
        self.mounts = {}  # mountPath -> (volume, readOnly)
        self.secret_files = {}  # (secret name, key) -> where the container sees it, under the root
        for c in spec.get("initContainers", []) + spec["containers"]:
            for m in c.get("volumeMounts", []):
                volume = self.volumes[m["name"]]
                if m["mountPath"] not in self.mounts:
                    self.mounts[m["mountPath"]] = (volume, m.get("readOnly", False))
                    self._materialise(m["mountPath"], volume)

    def path(self, container_path):
        """Where a path of the container is under the root; it must lie under a mount."""
        for mount in sorted(self.mounts, key=len, reverse=True):
            if container_path == mount or container_path.startswith(mount.rstrip("/") + "/"):
                return self.root + container_path
        raise AssertionError("%s is under no volume mount of the pod (mounts: %s)"
                             % (container_path, ", ".join(sorted(self.mounts))))

    def volume_at(self, container_path):
        for mount in sorted(self.mounts, key=len, reverse=True):
            if container_path == mount or container_path.startswith(mount.rstrip("/") + "/"):
                return self.mounts[mount]
        raise AssertionError("%s is under no volume mount" % container_path)

    def _dir(self, mount_path, mode):
        d = self.root + mount_path
        os.makedirs(d, exist_ok=True)
        # Every parent traversable by the pod's user.
        p = d
        while p != self.root:
            os.chmod(p, 0o755)
            p = os.path.dirname(p)
        os.chmod(d, mode)
        return d

    def _materialise(self, mount_path, volume):
        for source in ("configMap", "secret"):
            if "items" in volume.get(source, {}):
                raise AssertionError("volume %s: `items` not laid out by this test" % volume["name"])
        if "configMap" in volume:
            cm = find(self.objects, "ConfigMap", volume["configMap"]["name"])
            files = {k: v.encode() for k, v in cm.get("data", {}).items()}
            self._atomic_writer(mount_path, files, volume["configMap"].get("defaultMode", 0o644), None)
        elif "secret" in volume:
            name = volume["secret"]["secretName"]
            secret = find(self.objects, "Secret", name)
            files = {k: base64.b64decode(v) for k, v in secret.get("data", {}).items()}
            paths = self._atomic_writer(mount_path, files, volume["secret"].get("defaultMode", 0o644), self.fs_group)
            for key, path in paths.items():
                self.secret_files[(name, key)] = path
        elif "emptyDir" in volume or "ephemeral" in volume:
            # fsGroup: the kubelet gives the volume to the group, setgid, group-writable.
            d = self._dir(mount_path, 0o2775)
            os.chown(d, 0, self.fs_group if self.fs_group is not None else 0)
        elif "hostPath" in volume:
            self._dir(mount_path, 0o755)  # the node's directory, root's
        else:
            raise AssertionError("volume %s: kind not known to this test" % volume["name"])

    def _atomic_writer(self, mount_path, files, mode, group):
        """The kubelet's layout: the files in a timestamped dir, `..data` linking to it,
        each key a link through `..data`. Secret files are root's, group fsGroup."""
        d = self._dir(mount_path, 0o755)
        stamp = os.path.join(d, "..2026_01_01_00_00_00.000000000")
        os.mkdir(stamp, 0o755)
        out = {}
        for key, data in files.items():
            path = os.path.join(stamp, key)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, mode)
            if group is not None:
                os.chown(path, 0, group)
            os.symlink(os.path.join("..data", key), os.path.join(d, key))
            out[key] = os.path.join(d, key)
        os.symlink(os.path.basename(stamp), os.path.join(d, "..data"))
        return out


class Trees(unittest.TestCase):
    def test_every_tree_renders(self):
        r = subprocess.run(["kubectl", "version", "--client"], capture_output=True, text=True, timeout=60)
        print("\n    kubectl: " + " ".join(r.stdout.split()[:8]))
        for tree in TREES:
            with self.subTest(tree=tree):
                objects = kustomize(tree)
                self.assertTrue(objects, "%s rendered nothing" % tree)

    def test_network_policies_select_the_workloads(self):
        regional = kustomize("regional")
        _, spec, container = pullgate_workload(regional)
        mirror = find(regional, "Deployment", "pullgate")
        labels = mirror["spec"]["template"]["metadata"]["labels"]
        namespace = mirror["metadata"]["namespace"]
        registry_port = {p["name"]: p["containerPort"] for p in container["ports"]}["registry"]
        scanner = find(regional, "Deployment", "pullgate-scan-worker")
        scanner_labels = scanner["spec"]["template"]["metadata"]["labels"]

        def selects(selector, pod_labels):
            return all(pod_labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())

        workloads = find(kustomize("network-policy/workloads"), "NetworkPolicy")
        self.assertNotIn("namespace", workloads["metadata"], "applied per application namespace with -n")
        self.assertEqual(workloads["spec"]["policyTypes"], ["Egress"])
        to_mirror = [rule for rule in workloads["spec"]["egress"]
                     if any(p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                            == namespace and selects(p.get("podSelector", {}), labels) for p in rule.get("to", []))]
        self.assertTrue(to_mirror, "no egress rule reaches the mirror's pods")
        self.assertIn(registry_port, [p["port"] for r in to_mirror for p in r["ports"]])
        # Nothing outside the cluster: no ipBlock, no rule without a destination.
        for rule in workloads["spec"]["egress"]:
            self.assertIn("to", rule, "an egress rule without `to` opens every address")
            for peer in rule["to"]:
                self.assertNotIn("ipBlock", peer)

        policies = kustomize("network-policy")
        mirror_policy = find(policies, "NetworkPolicy", "pullgate-mirror")
        self.assertEqual(mirror_policy["metadata"]["namespace"], namespace)
        self.assertTrue(selects(mirror_policy["spec"]["podSelector"], labels))
        admin_port = {p["name"]: p["containerPort"] for p in container["ports"]}["admin"]
        admin_rules = [r for r in mirror_policy["spec"]["ingress"] if admin_port in [p["port"] for p in r["ports"]]]
        self.assertEqual(len(admin_rules), 1)
        self.assertTrue(any(selects(p.get("podSelector", {}), scanner_labels) for p in admin_rules[0]["from"]
                            if "podSelector" in p), "the scan worker cannot reach the admin port")
        scanner_policy = find(policies, "NetworkPolicy", "pullgate-scan-worker")
        self.assertTrue(selects(scanner_policy["spec"]["podSelector"], scanner_labels))


class ServedTree:
    """Checks shared by the trees that run pullgate; TREE names the tree."""

    TREE = None

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise RuntimeError("this test lays out Secret files as root:fsGroup and runs pullgate as uid %d "
                               "(setpriv): run it as root" % POD_UID)
        cls.objects = kustomize(cls.TREE)
        cls.workload, cls.spec, cls.container = pullgate_workload(cls.objects)
        cls.work = tempfile.mkdtemp(prefix="pg-kube-")
        os.chmod(cls.work, 0o755)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def setUp(self):
        self.root = tempfile.mkdtemp(dir=self.work)
        os.chmod(self.root, 0o755)
        self.pod = Pod(self.objects, self.spec, self.root)
        args = self.container["args"]
        self.config_path = self.pod.path(args[args.index("--config") + 1])
        with open(self.config_path) as f:
            self.config = json.loads(strip_comments(f.read()))
        self.ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}

    # --- the config, moved under the root -------------------------------------------

    def listeners(self):
        """{original port: (host, role)} of the config's listeners."""
        out = {}
        for role, value in (("registry", self.config.get("listen", "0.0.0.0:5000")),
                            ("admin", self.config.get("admin", {}).get("listen", "127.0.0.1:5001"))):
            if value:
                host, port = value.rsplit(":", 1)
                out[int(port)] = (host, role)
        return out

    def moved_config(self):
        """The config with every absolute path moved under the root (each must lie under a
        mount and exist there) and the listeners on free loopback ports. Returns
        (config file, {original port: new port})."""
        def move(value, where, is_path=False):
            if isinstance(value, dict):
                return {k: move(v, where + "." + k, k in PATH_KEYS) for k, v in value.items()}
            if isinstance(value, list):
                return [move(v, "%s[%d]" % (where, i), is_path) for i, v in enumerate(value)]
            if is_path:
                self.assertTrue(value.startswith("/"), "%s: %s is relative to / (read-only)" % (where, value))
                moved = self.pod.path(value)
                self.assertTrue(os.path.exists(moved), "%s: %s is not in the volume mounted there" % (where, value))
                return moved
            return value
        config = move(self.config, "config")
        self.assertFalse(self.pod.volume_at(self.config["data_dir"])[1], "data_dir is on a read-only mount")
        if getattr(self, "etcd_endpoints", None):
            config["fleet"]["etcd"]["endpoints"] = self.etcd_endpoints
        new_ports = {}
        for key in ("listen", "admin"):
            value = config.get(key) if key == "listen" else config.get("admin", {}).get("listen")
            if not value:
                continue
            old = int(value.rsplit(":", 1)[1])
            new_ports[old] = h.free_port()
            if key == "listen":
                config["listen"] = "127.0.0.1:%d" % new_ports[old]
            else:
                config["admin"]["listen"] = "127.0.0.1:%d" % new_ports[old]
        path = os.path.join(self.root, "moved-config.json")
        with open(path, "w") as f:
            json.dump(config, f)
        os.chmod(path, 0o644)
        return path, new_ports

    def replace_placeholders(self, given=None):
        """What the operator does before applying: every placeholder secret file gets a
        real value, `given` ({file the config names: bytes}) or a fresh one. Returns
        {(secret, key): value}."""
        given = {self.pod.path(k): v for k, v in (given or {}).items()}
        values = {}
        for (name, key), path in self.pod.secret_files.items():
            with open(path, "rb") as f:
                data = f.read()
            if not data.startswith(PLACEHOLDER):
                continue
            if path in given:
                value = given[path]
            elif key.endswith(".pem"):
                cert, _ = h.make_self_signed_cert(tempfile.mkdtemp(dir=self.work))
                with open(cert, "rb") as f:
                    value = f.read()
            else:
                value = (secrets.token_hex(32) + "\n").encode()
            st = os.stat(path)
            with open(path, "wb") as f:
                f.write(value)
            os.chmod(path, st.st_mode & 0o7777)
            os.chown(path, st.st_uid, st.st_gid)
            values[(name, key)] = value.decode().strip()
        return values

    def start(self, config_path):
        err_path = os.path.join(self.root, "stderr.txt")
        err = open(err_path, "wb")
        self.addCleanup(err.close)
        proc = subprocess.Popen(drop_privileges() + [h.pullgate_bin(), "serve", "--config", config_path],
                                cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)

        def stop():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.addCleanup(stop)

        def stderr():
            with open(err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        return proc, stderr

    # --- the checks -----------------------------------------------------------------

    def test_check_config_and_policy_check_accept_the_rendered_files(self):
        config_path, _ = self.moved_config()
        r = subprocess.run([h.pullgate_bin(), "check-config", config_path], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        policy = self.config.get("gate", {}).get("policy_file")
        if policy:
            r = subprocess.run([h.pullgate_bin(), "policy", "check", self.pod.path(policy)], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        else:
            self.assertEqual(self.TREE, "node-local-tiered", "only the tiered node mirror runs without a policy")

    def test_placeholder_secrets_keep_pullgate_from_starting(self):
        config_path, _ = self.moved_config()
        proc, stderr = self.start(config_path)
        code = proc.wait(timeout=60)
        self.assertNotEqual(code, 0, "pullgate started with the placeholder secrets")
        placeholders = []
        for path in self.pod.secret_files.values():
            with open(path, "rb") as f:
                if f.read().startswith(PLACEHOLDER):
                    placeholders.append(path)
        self.assertTrue(any(p in stderr() for p in placeholders),
                        "the refusal names no placeholder file:\n" + stderr()[-2000:])
        print("\n    " + stderr().strip().splitlines()[-1][:300], end="")

    def probe_ports(self, new_ports):
        """(probe kind, path, new port) of each probe, after checking the listener its port
        names is reachable by the kubelet there."""
        listeners = self.listeners()
        out = []
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            probe = self.container.get(kind)
            if probe is None:
                self.assertNotEqual(kind, "readinessProbe")
                self.assertNotEqual(kind, "livenessProbe")
                continue
            get = probe["httpGet"]
            self.assertEqual(get.get("httpHeaders"), None, "a probe must not need the admin token")
            port = get["port"] if isinstance(get["port"], int) else self.ports[get["port"]]
            self.assertIn(port, listeners, "%s port %s is no listener of the config" % (kind, port))
            host, _ = listeners[port]
            if "host" in get:
                self.assertTrue(self.spec.get("hostNetwork"), "a probe host only makes sense on the host network")
                self.assertIn(host, (get["host"], "0.0.0.0", "[::]"))
            else:
                # The kubelet asks the pod's address: a loopback listener is out of its reach.
                self.assertIn(host, ("0.0.0.0", "[::]"), "%s: the listener on %s is not on the pod's address"
                              % (kind, host))
            out.append((kind, get["path"], new_ports[port]))
        return out

    def fleet_store(self):
        """{file the config names: value} for the fleet store's credentials, with the
        config pointed at a real etcd; nothing without a fleet store."""
        return {}

    def running(self):
        """pullgate started from the rendered pod with the placeholders replaced."""
        self.values = self.replace_placeholders(self.fleet_store())
        config_path, self.new_ports = self.moved_config()
        proc, stderr = self.start(config_path)
        registry_port = self.new_ports[int(self.config["listen"].rsplit(":", 1)[1])]

        def up():
            if proc.poll() is not None:
                raise AssertionError("pullgate exited with %s:\n%s" % (proc.returncode, stderr()[-3000:]))
            return h.http_request("127.0.0.1", registry_port, "GET", "/v2/", timeout=2)[0] == 200
        h.wait_until(up, 60, "pullgate from the rendered %s pod" % self.TREE)
        return proc, stderr

    def test_probes_answer_on_their_ports(self):
        self.running()
        for kind, path, port in self.probe_ports(self.new_ports):
            status, _, body = h.http_request("127.0.0.1", port, "GET", path, timeout=10)
            print("\n    %s %s: %d %s" % (kind, path, status, body.decode()[:160]), end="")
            self.assertEqual(status, 200, "%s %s answered %d: %s" % (kind, path, status, body[:300]))

    def test_images_are_what_build_sh_produces(self):
        pullgate_ref, scanner_ref = print_refs()
        self.assertEqual(self.container["image"], pullgate_ref)
        for o in self.objects:
            if o["kind"] in ("Deployment", "DaemonSet"):
                spec = o["spec"]["template"]["spec"]
                for c in spec.get("initContainers", []) + spec["containers"]:
                    self.assertIn(c["image"], (pullgate_ref, scanner_ref), "%s/%s" % (o["metadata"]["name"], c["name"]))

    def test_cache_volume_holds_max_size_and_headroom(self):
        volume, read_only = self.pod.volume_at(self.config["data_dir"])
        self.assertFalse(read_only)
        if "ephemeral" in volume:
            size = volume["ephemeral"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"]
        else:
            size = volume["emptyDir"]["sizeLimit"]
        cache = self.config.get("cache", {})
        gate = self.config.get("gate", {})
        self.assertIn("max_size", cache, "no cache.max_size: the cache would fill the volume")
        need = (byte_size(cache["max_size"]) + cache.get("min_free_mb", 1024) * 2**20
                + gate.get("audit_max_mb", 100) * 2**20 * (gate.get("audit_keep", 5) + 1))
        print("\n    volume %s for max_size %s (needs at least %.1f GiB)" % (size, cache["max_size"], need / 2**30),
              end="")
        self.assertGreaterEqual(quantity_bytes(size), need)

    def test_containers_run_non_root_read_only_without_capabilities(self):
        for o in self.objects:
            if o["kind"] not in ("Deployment", "DaemonSet"):
                continue
            spec = o["spec"]["template"]["spec"]
            pod_sc = spec.get("securityContext", {})
            self.assertFalse(spec.get("automountServiceAccountToken", True), "no API token in %s" % o["metadata"]["name"])
            for init, c in [(True, c) for c in spec.get("initContainers", [])] + [(False, c) for c in spec["containers"]]:
                where = "%s/%s" % (o["metadata"]["name"], c["name"])
                sc = dict(pod_sc, **c.get("securityContext", {}))
                self.assertEqual(sc.get("seccompProfile", {}).get("type"), "RuntimeDefault", where)
                self.assertIs(sc.get("allowPrivilegeEscalation"), False, where)
                self.assertIs(sc.get("readOnlyRootFilesystem"), True, where)
                self.assertEqual(c["securityContext"]["capabilities"]["drop"], ["ALL"], where)
                self.assertNotIn("add", c["securityContext"]["capabilities"], where)
                self.assertNotIn("privileged", sc, where)
                if sc.get("runAsUser") == 0:
                    # Only the step that writes the node's containerd certs.d, and only there.
                    self.assertTrue(init, "%s runs as root" % where)
                    writable = [m for m in c["volumeMounts"] if not m.get("readOnly")]
                    self.assertEqual([self.pod.volumes[m["name"]].get("hostPath", {}).get("path") for m in writable],
                                     ["/etc/containerd/certs.d"], where)
                else:
                    self.assertIs(sc.get("runAsNonRoot"), True, where)
                    self.assertEqual(sc.get("runAsUser"), POD_UID, where)


class RegionalTest(ServedTree, unittest.TestCase):
    TREE = "regional"

    def fleet_store(self):
        """A real etcd as the config's fleet.etcd describes it: HTTPS with a private CA,
        user/password authentication; its CA and this client's password are what the
        operator puts in the etcd credentials Secret."""
        etcd = self.config["fleet"]["etcd"]
        self.assertTrue(etcd["endpoints"][0].startswith("https://"))
        d = tempfile.mkdtemp(dir=self.work)
        cert, key = h.make_self_signed_cert(d)
        port, peer = h.free_port(), h.free_port()
        url = "https://127.0.0.1:%d" % port
        log = open(os.path.join(d, "etcd.log"), "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen(["/usr/bin/etcd", "--name", "m0", "--data-dir", os.path.join(d, "data"),
                                 "--listen-client-urls", url, "--advertise-client-urls", url,
                                 "--listen-peer-urls", "http://127.0.0.1:%d" % peer,
                                 "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % peer,
                                 "--initial-cluster", "m0=http://127.0.0.1:%d" % peer,
                                 "--cert-file", cert, "--key-file", key],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.addCleanup(h._stop_process, proc)
        password = secrets.token_hex(16)

        def etcdctl(*args):
            r = subprocess.run(["etcdctl", "--endpoints", url, "--cacert", cert] + list(args),
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                raise RuntimeError("etcdctl %s: %s" % (" ".join(args), r.stderr))
            return True
        h.wait_until(lambda: etcdctl("endpoint", "health"), 30, "etcd over TLS")
        root_password = secrets.token_hex(16)
        etcdctl("user", "add", "root:" + root_password, "--interactive=false")
        etcdctl("user", "add", "%s:%s" % (etcd["username"], password), "--interactive=false")
        etcdctl("role", "add", "pullgate")
        etcdctl("role", "grant-permission", "pullgate", "--prefix=true", "readwrite", etcd.get("prefix", "/pullgate/"))
        etcdctl("user", "grant-role", etcd["username"], "pullgate")
        etcdctl("auth", "enable")
        self.etcd_endpoints = [url]
        with open(cert, "rb") as f:
            return {etcd["ca_file"]: f.read(), etcd["password_file"]: (password + "\n").encode()}

    def test_three_replicas_spread_and_a_disruption_budget(self):
        self.assertEqual(self.workload["kind"], "Deployment")
        self.assertEqual(self.workload["spec"]["replicas"], 3)
        labels = self.workload["spec"]["template"]["metadata"]["labels"]
        anti = self.spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        self.assertEqual(anti[0]["topologyKey"], "kubernetes.io/hostname")
        self.assertEqual(anti[0]["labelSelector"]["matchLabels"], labels)
        pdb = find(self.objects, "PodDisruptionBudget")
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"], labels)
        # Several replicas need one truth: the fleet store, and a client kept on one replica.
        self.assertTrue(self.config["fleet"]["etcd"]["endpoints"])
        self.assertEqual(find(self.objects, "Service", "pullgate")["spec"]["sessionAffinity"], "ClientIP")

    def test_fleet_store_comes_in_step_with_the_mounted_credentials(self):
        self.running()
        port = self.new_ports[int(self.config["listen"].rsplit(":", 1)[1])]

        def in_step():
            status, _, body = h.http_request("127.0.0.1", port, "GET", "/readyz", timeout=5)
            self.assertEqual(status, 200)
            doc = json.loads(body)
            return doc if doc["status"] == "ok" and doc["fleet"]["in_step"] else None
        doc = h.wait_until(in_step, 60, "the replica in step with etcd (TLS, password from the Secret)")
        print("\n    /readyz: %s" % json.dumps(doc)[:200], end="")

    def service_port(self, service, port):
        """The container port a Service port (by number or name) leads to."""
        spec = service["spec"]
        labels = self.workload["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(all(labels.get(k) == v for k, v in spec["selector"].items()),
                        "Service %s does not select the pullgate pods" % service["metadata"]["name"])
        [entry] = [p for p in spec["ports"] if port in (p["port"], p.get("name"))]
        target = entry.get("targetPort", entry["port"])
        return target if isinstance(target, int) else self.ports[target]

    def test_servicemonitor_scrapes_metrics_with_the_metrics_token(self):
        self.running()
        monitor = find(self.objects, "ServiceMonitor")
        [endpoint] = monitor["spec"]["endpoints"]
        [service] = [s for s in self.objects if s["kind"] == "Service" and
                     all(s["metadata"].get("labels", {}).get(k) == v
                         for k, v in monitor["spec"]["selector"]["matchLabels"].items())]
        # The job label the shipped alert rules select (PullgateDown: up{job="pullgate"}).
        job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
        with open(os.path.join(ROOT, "deploy", "monitoring", "pullgate.rules.yml")) as f:
            self.assertIn('job="%s"' % job, f.read())
        port = self.service_port(service, endpoint["port"])
        self.assertEqual(self.listeners()[port][1], "admin", "/metrics is served on the admin listener")
        secret = endpoint["bearerTokenSecret"]
        token = self.values[(secret["name"], secret["key"])]
        status, _, body = h.http_request("127.0.0.1", self.new_ports[port], "GET", endpoint["path"],
                                         headers=[("Authorization", "Bearer " + token)])
        self.assertEqual(status, 200, body[:300])
        self.assertIn(b"pullgate_http_requests_total", body)
        status, _, _ = h.http_request("127.0.0.1", self.new_ports[port], "GET", endpoint["path"])
        self.assertEqual(status, 401, "/metrics without the token")
        # Prometheus' credential does not administer the gate.
        status, _, body = h.http_request("127.0.0.1", self.new_ports[port], "GET", "/v1/verdicts",
                                         headers=[("Authorization", "Bearer " + token)])
        self.assertEqual(status, 403, body[:300])

    def test_scan_worker_completes_a_round_with_its_rendered_args(self):
        self.running()
        worker = find(self.objects, "Deployment", "pullgate-scan-worker")
        spec = worker["spec"]["template"]["spec"]
        [c] = spec["containers"]
        self.assertEqual(c["command"], ["/usr/bin/pullgate-scan-worker"])
        args = list(c["args"])
        # The worker's own pod, its token Secret holding the value pullgate's has.
        pod = Pod(self.objects, spec, tempfile.mkdtemp(dir=self.work))
        os.chmod(pod.root, 0o755)
        for (name, key), path in pod.secret_files.items():
            if (name, key) in self.values:
                with open(path, "w") as f:
                    f.write(self.values[(name, key)] + "\n")
        token_file = args[args.index("--token-file") + 1]
        args[args.index("--token-file") + 1] = pod.path(token_file)
        admin = urllib.parse.urlsplit(args[args.index("--admin") + 1])
        service = find(self.objects, "Service", admin.hostname)
        port = self.service_port(service, admin.port)
        self.assertEqual(self.listeners()[port][1], "admin")
        args[args.index("--admin") + 1] = "http://127.0.0.1:%d" % self.new_ports[port]
        r = subprocess.run(drop_privileges() + ["python3", os.path.join(ROOT, "deploy", "scanner",
                                                                         "pullgate-scan-worker")] + args + ["--once"],
                           capture_output=True, text=True, timeout=120, cwd="/")
        self.assertEqual(r.returncode, 0, r.stderr)


class NodeLocal(ServedTree):
    def test_init_step_writes_the_shipped_hosts_toml_onto_the_node(self):
        self.assertEqual(self.workload["kind"], "DaemonSet")
        self.assertTrue(self.spec["hostNetwork"])
        [init] = self.spec["initContainers"]
        command = list(init["command"]) + list(init.get("args", []))
        # Its mounts moved under the root, as everything else here.
        for mount in sorted((m["mountPath"] for m in init["volumeMounts"]), key=len, reverse=True):
            command = [part.replace('"%s"' % mount, '"%s"' % self.pod.path(mount)) for part in command]
        self.assertEqual(command[0], "/usr/bin/python3")
        r = subprocess.run(["python3"] + command[1:], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        [certs_d] = [m for m in init["volumeMounts"]
                     if self.pod.volumes[m["name"]].get("hostPath", {}).get("path") == "/etc/containerd/certs.d"]
        written_dir = self.pod.path(certs_d["mountPath"])
        [source] = [m for m in init["volumeMounts"] if "configMap" in self.pod.volumes[m["name"]]]
        hosts = find(self.objects, "ConfigMap", self.pod.volumes[source["name"]]["configMap"]["name"])["data"]
        self.assertEqual(sorted(os.listdir(written_dir)), sorted(hosts))

        with open(os.path.join(ROOT, "deploy", "containerd", "hosts.toml"), "rb") as f:
            shipped = tomllib.load(f)
        mirror = "http://" + self.config["listen"]
        expected = json.loads(json.dumps(shipped).replace(shipped["server"], mirror))
        names = set()
        for up in self.config["upstreams"]:
            names.add(up.get("name") or urllib.parse.urlsplit(up["url"]).netloc)
            names.update(up.get("aliases", []))
        for upstream, text in hosts.items():
            path = os.path.join(written_dir, upstream, "hosts.toml")
            with open(path) as f:
                self.assertEqual(f.read(), text)
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o644)
            self.assertEqual(tomllib.loads(text), expected, "%s is not deploy/containerd/hosts.toml" % upstream)
            self.assertIn(upstream, names, "containerd sends ?ns=%s, an upstream the config does not name" % upstream)
        print("\n    wrote %s" % ", ".join(sorted(hosts)), end="")


class NodeLocalTest(NodeLocal, unittest.TestCase):
    TREE = "node-local"


class NodeLocalTieredTest(NodeLocal, unittest.TestCase):
    TREE = "node-local-tiered"

    def test_upstreams_are_the_regional_service(self):
        regional = kustomize("regional")
        config_map = [o for o in regional if o["kind"] == "ConfigMap" and "config.json" in o.get("data", {})]
        regional_config = json.loads(strip_comments(config_map[0]["data"]["config.json"]))
        regional_names = {u.get("name") for u in regional_config["upstreams"]}
        _, _, container = pullgate_workload(regional)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for up in self.config["upstreams"]:
            url = urllib.parse.urlsplit(up["url"])
            service, namespace, rest = url.hostname.split(".", 2)
            self.assertEqual(rest, "svc.cluster.local")
            svc = find(regional, "Service", service)
            self.assertEqual(svc["metadata"]["namespace"], namespace)
            [entry] = [p for p in svc["spec"]["ports"] if p["port"] == url.port]
            self.assertEqual(ports[entry["targetPort"]], int(regional_config["listen"].rsplit(":", 1)[1]))
            self.assertIn(up["parent_upstream"], regional_names)
        self.assertEqual(self.spec["dnsPolicy"], "ClusterFirstWithHostNet", "the Service's name from the host network")


if __name__ == "__main__":
    unittest.main()
