"""The systemd units shipped in deploy/: deploy/systemd/pullgate.service (with
pullgate.sysusers and the example config pullgate.json + policy.json) and
deploy/scanner/pullgate-scan-worker.service.

What is checked, and how:
- `systemd-analyze verify` on each unit prints nothing and exits 0. verify wants the
  ExecStart binary to exist, so each unit is checked as a copy in a temp dir whose
  /usr/local/bin/... paths are rewritten to the built binary ($PULLGATE_BIN) or to the
  worker script in the checkout; nothing else in the copy changes.
- `systemd-analyze security --offline=true` on the same copies: the overall exposure
  is parsed from its last line, printed, and both units must be in the "OK" band or
  better (systemd 252's bands: PERFECT 0.0, SAFE below 1.0, OK below 5.0, MEDIUM below
  7.5, EXPOSED below 9.0, UNSAFE, DANGEROUS at 10).
- The unit and the example config agree: data_dir is the StateDirectory, the audit log
  is in the LogsDirectory, the policy in the ConfigurationDirectory, the admin
  listener on loopback, TimeoutStopSec covers limits.shutdown_grace_s plus pullgate's
  10 s of cancelling, ExecReload sends SIGHUP, the user is the one pullgate.sysusers
  creates. `pullgate check-config` passes the example config and `pullgate policy
  check` its policy.
- A stand-in for running the service, since systemd cannot start services here (PID 1
  is not systemd, so neither `systemctl start` nor `systemd-run` work): the built
  pullgate runs the example config (paths moved under a temp root, ports found at
  runtime, two local CNCF Distributions as its upstreams: one named by host name, one
  over verified TLS; the mirror's own listener on TLS, its key root-owned, mode 0640,
  group the service's) as the unit would run it where that can be done without
  systemd: as an unprivileged user (nobody, when the test runs as root) with no
  capabilities and no_new_privs (setpriv), UMask 0077, LimitNOFILE (up to the hard
  limit the environment allows), working directory /. It serves a pull, answers the admin API, reloads its policy on
  SIGHUP (the unit's ExecReload) and exits 0 on SIGTERM within TimeoutStopSec; the
  token files and the audit log it creates are mode 0600. The run is traced with
  strace, and the trace is held against what the unit would enforce: every system
  call is in the unit's SystemCallFilter (expanded with `systemd-analyze
  syscall-filter`), every socket's family in RestrictAddressFamilies, every file
  written is under the StateDirectory or LogsDirectory (ProtectSystem=strict), and no
  non-process /proc file is opened (ProcSubset=pid).

Not tested here: the seccomp filter, namespaces and mounts themselves (ProtectSystem,
PrivateTmp, PrivateDevices, PrivateUsers, ProtectProc, ...) are applied only by systemd;
the trace shows what this run needed, not every code path. The scanner worker's unit
is only verified and scored (trivy is not installed here).
"""
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import harness as h

UNIT = h.deploy_path("systemd/pullgate.service")
SYSUSERS = h.deploy_path("systemd/pullgate.sysusers")
CONFIG = h.deploy_path("systemd/pullgate.json")
POLICY = h.deploy_path("systemd/policy.json")
WORKER_UNIT = h.deploy_path("scanner/pullgate-scan-worker.service")
WORKER = h.deploy_path("scanner/pullgate-scan-worker")
INSTALLED_BIN = "/usr/local/bin/pullgate"
INSTALLED_WORKER = "/usr/local/bin/pullgate-scan-worker"
# pullgate's serve: after limits.shutdown_grace_s it cancels what is left and waits up
# to 10 s more for it to end (proxy/main.cpp).
CANCEL_WAIT_S = 10
EXPOSURE = re.compile(r"Overall exposure level for (\S+): (\d+(?:\.\d+)?) (\w+)")


def read_unit(path):
    """{key: [values]} of a unit file's [Service] and other sections together (systemd
    allows a key more than once; an empty value resets the list, kept as "")."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;[" or "=" not in line:
                continue
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def strip_comments(text):
    """A JSON-with-comments document as pullgate reads it (// line comments only here)."""
    return "\n".join(re.sub(r"^\s*//.*$", "", line) for line in text.splitlines())


def read_config():
    with open(CONFIG) as f:
        return json.loads(strip_comments(f.read()))


def render(path, directory, replacements):
    """A copy of the unit at `path` in `directory` with each (old, new) replaced."""
    with open(path) as f:
        text = f.read()
    for old, new in replacements:
        text = text.replace(old, new)
    out = os.path.join(directory, os.path.basename(path))
    with open(out, "w") as f:
        f.write(text)
    return out


def expand_syscall_group(name, seen=None):
    """The system calls of a SystemCallFilter= item (a group is expanded, recursively,
    with `systemd-analyze syscall-filter`)."""
    if not name.startswith("@"):
        return {name}
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    r = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True, check=True)
    calls = set()
    for line in r.stdout.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        calls |= expand_syscall_group(item, seen)
    return calls


def allowed_syscalls(unit):
    """What the unit's SystemCallFilter= lines allow: the first is an allow list, a
    later `~` line takes its items away."""
    allowed = set()
    for value in unit["SystemCallFilter"]:
        deny = value.startswith("~")
        items = value.lstrip("~").split()
        calls = set().union(*(expand_syscall_group(i) for i in items))
        allowed = allowed - calls if deny else allowed | calls
    return allowed


class ShippedUnits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if shutil.which("systemd-analyze") is None:
            raise unittest.SkipTest("systemd-analyze is not installed (deploy/install-deps.sh --test installs systemd)")
        cls.bin = h.pullgate_bin()
        cls.tmp = tempfile.mkdtemp(prefix="pg-systemd-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.unit_copy = render(UNIT, cls.tmp, [(INSTALLED_BIN, cls.bin)])
        cls.worker_copy = render(WORKER_UNIT, cls.tmp, [(INSTALLED_WORKER, WORKER)])
        cls.unit = read_unit(UNIT)
        cls.config = read_config()

    def analyze(self, *args):
        return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=120, cwd=self.tmp)

    def test_verify_is_clean(self):
        for unit in (self.unit_copy, self.worker_copy):
            with self.subTest(unit=os.path.basename(unit)):
                r = self.analyze("verify", unit)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stderr.strip(), "", "systemd-analyze verify warns")
                self.assertEqual(r.stdout.strip(), "")

    def test_exposure_is_ok(self):
        for unit in (self.unit_copy, self.worker_copy):
            with self.subTest(unit=os.path.basename(unit)):
                r = self.analyze("security", "--offline=true", "--no-pager", unit)
                self.assertEqual(r.returncode, 0, r.stderr)
                m = EXPOSURE.search(r.stdout)
                self.assertIsNotNone(m, r.stdout[-2000:])
                print("\nsystemd-analyze security: %s exposure %s %s" % m.groups(), flush=True)
                self.assertIn(m.group(3), ("OK", "SAFE", "PERFECT"), r.stdout)
                self.assertLess(float(m.group(2)), 5.0)

    def test_unit_and_example_config_agree(self):
        u, c = self.unit, self.config
        self.assertEqual(u["ExecStart"], [INSTALLED_BIN + " serve --config /etc/pullgate/pullgate.json"])
        self.assertEqual(u["ExecReload"], ["/bin/kill -HUP $MAINPID"])
        self.assertEqual(u["Restart"], ["on-failure"])
        self.assertGreaterEqual(int(u["LimitNOFILE"][0]), 65536)
        self.assertGreaterEqual(int(u["TimeoutStopSec"][0]), c["limits"]["shutdown_grace_s"] + CANCEL_WAIT_S)
        self.assertEqual(u["CapabilityBoundingSet"], [""])
        self.assertEqual(u["AmbientCapabilities"], [""])
        self.assertEqual(u["UMask"], ["0077"])
        self.assertEqual(u["ProtectSystem"], ["strict"])
        self.assertNotIn("DynamicUser", u)
        with open(SYSUSERS) as f:
            users = [l.split()[1] for l in f if l.strip() and not l.startswith("#") and l.split()[0] == "u"]
        self.assertEqual(users, u["User"])
        state, logs, conf = (u[k][0] for k in ("StateDirectory", "LogsDirectory", "ConfigurationDirectory"))
        self.assertEqual(c["data_dir"], "/var/lib/" + state)
        self.assertEqual(os.path.dirname(c["gate"]["audit_log"]), "/var/log/" + logs)
        self.assertEqual(os.path.dirname(c["gate"]["policy_file"]), "/etc/" + conf)
        self.assertTrue(c["admin"]["listen"].startswith("127.0.0.1:"), c["admin"])
        # The worker's unit reads the scanner token where this layout keeps it.
        with open(WORKER_UNIT) as f:
            self.assertIn("LoadCredential=scanner.token:%s/scanner.token" % c["data_dir"], f.read())

    def test_example_config_and_policy_pass_checks(self):
        r = subprocess.run([self.bin, "check-config", CONFIG], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok", r.stdout)
        r = subprocess.run([self.bin, "policy", "check", POLICY], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)


class RunsLikeTheUnit(unittest.TestCase):
    """The stand-in for a real start (see the module's docstring)."""

    @classmethod
    def setUpClass(cls):
        if shutil.which("strace") is None or shutil.which("setpriv") is None:
            raise unittest.SkipTest("needs strace and setpriv")
        if shutil.which("systemd-analyze") is None:
            raise unittest.SkipTest("systemd-analyze is not installed")
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        cls.image = h.push_image(cls.registry, h.build_image("it/app", "v1", [h.small_layer("systemd-a"),
                                                                              h.small_layer("systemd-b")]))
        # A second upstream over verified TLS, as Docker Hub is reached.
        cls.cert, cls.key = h.make_self_signed_cert(cls.work.path)
        cls.tls_registry = h.TlsRegistry(cls.work.path, cls.cert, cls.key).start()
        cls.addClassCleanup(cls.tls_registry.close)
        cls.tls_image = h.push_image(cls.tls_registry, h.build_image("it/tls", "v1", [h.small_layer("systemd-t")]))
        cls.unit = read_unit(UNIT)

    def setUp(self):
        # A root the unprivileged user can reach: etc/pullgate, var/lib/pullgate,
        # var/log/pullgate, as systemd would create them (mode and owner).
        self.root = tempfile.mkdtemp(prefix="pg-systemd-root-")
        self.addCleanup(shutil.rmtree, self.root, True)
        os.chmod(self.root, 0o755)
        as_root = os.geteuid() == 0
        self.uid, self.gid = (65534, 65534) if as_root else (os.geteuid(), os.getegid())
        u = self.unit
        self.etc = self.make_dir("etc/" + u["ConfigurationDirectory"][0], 0o755, owned=False)
        self.state = self.make_dir("var/lib/" + u["StateDirectory"][0], int(u["StateDirectoryMode"][0], 8))
        self.logs = self.make_dir("var/log/" + u["LogsDirectory"][0], int(u["LogsDirectoryMode"][0], 8))
        config = read_config()
        self.port, self.admin_port = h.free_port(), h.free_port()
        config["listen"] = "127.0.0.1:%d" % self.port
        config["admin"]["listen"] = "127.0.0.1:%d" % self.admin_port
        config["data_dir"] = self.state
        config["gate"]["audit_log"] = os.path.join(self.logs, os.path.basename(config["gate"]["audit_log"]))
        config["gate"]["policy_file"] = os.path.join(self.etc, "policy.json")
        # By name, so the run resolves a host name as it would resolve Docker Hub's
        # (from /etc/hosts here: no DNS server is asked).
        config["upstreams"] = [h.upstream_entry(self.registry, url="http://localhost:%d" % self.registry.port),
                               {"name": "tls.test", "url": self.tls_registry.url,
                                "ca_file": os.path.join(self.etc, "upstream-ca.pem")}]
        # The mirror serves TLS too, its key root:<the user's group> 0640 in the config
        # dir as README.md says (the same certificate: it names 127.0.0.1).
        config["tls"] = {"cert_file": os.path.join(self.etc, "tls.pem"), "key_file": os.path.join(self.etc, "tls.key")}
        for src, dst, mode in ((self.cert, "upstream-ca.pem", 0o644), (self.cert, "tls.pem", 0o644),
                               (self.key, "tls.key", 0o640)):
            shutil.copy(src, os.path.join(self.etc, dst))
            os.chmod(os.path.join(self.etc, dst), mode)
            if os.geteuid() == 0:
                os.chown(os.path.join(self.etc, dst), 0, self.gid)
        config["access_log"] = ""
        shutil.copy(POLICY, config["gate"]["policy_file"])
        self.config_path = os.path.join(self.etc, "pullgate.json")
        with open(self.config_path, "w") as f:
            json.dump(config, f)
        for p in (self.config_path, config["gate"]["policy_file"]):
            os.chmod(p, 0o644)
        self.config = config
        self.trace = os.path.join(self.root, "strace.txt")

    def make_dir(self, relative, mode, owned=True):
        path = os.path.join(self.root, relative)
        os.makedirs(path)
        for d in (os.path.dirname(os.path.dirname(path)), os.path.dirname(path)):
            os.chmod(d, 0o755)
        os.chmod(path, mode)
        if owned and os.geteuid() == 0:
            os.chown(path, self.uid, self.gid)
        return path

    def start(self):
        # LimitNOFILE, as far as this environment's hard limit allows.
        nofile = min(int(self.unit["LimitNOFILE"][0]), resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        drop = ["setpriv", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all"]
        if os.geteuid() == 0:
            drop += ["--reuid=%d" % self.uid, "--regid=%d" % self.gid, "--clear-groups"]
        # setpriv drops the privileges, then strace (a child of that user may trace
        # its own child) traces pullgate from its execve on.
        cmd = drop + ["--", "strace", "-f", "-qq", "-y", "-o", self.trace, "--",
                      h.pullgate_bin(), "serve", "--config", self.config_path]
        self.stderr_path = os.path.join(self.root, "stderr.txt")
        os.chmod(self.root, 0o777)  # strace writes its trace here as that user
        err = open(self.stderr_path, "wb")
        self.addCleanup(err.close)
        proc = subprocess.Popen(cmd, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                umask=int(self.unit["UMask"][0], 8), env=h.env_without_leak_checks(),
                                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)))

        self.pid = None

        def cleanup():
            # pullgate first: strace killed detaches from it, and it would live on.
            if self.pid is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self.addCleanup(cleanup)

        def up():
            if proc.poll() is not None:
                raise RuntimeError("pullgate exited with %s: %s" % (proc.returncode, self.stderr()[-3000:]))
            return self.mirror("GET", "/v2/", timeout=2)[0] == 200
        h.wait_until(up, 60, "pullgate under strace on port %d" % self.port)
        # Signals go to pullgate, strace's child (strace itself would detach on them);
        # strace exits with pullgate's status.
        with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as f:
            self.pid = int(f.read().split()[0])
        return proc

    def mirror(self, method, path, headers=None, timeout=30):
        return h.https_request("127.0.0.1", self.port, method, path, headers=headers, timeout=timeout,
                               context=h.https_context(self.cert))

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def test_serves_reloads_stops_within_the_units_limits(self):
        proc = self.start()
        # A pull from each upstream: the manifest by tag (gated, audited), then every blob.
        for prefix, image in (("", self.image), ("tls.test/", self.tls_image)):
            repo = "/v2/" + prefix + image.repo
            status, headers, body = self.mirror("GET", repo + "/manifests/v1",
                                                headers=[("Accept", image.manifest_type)])
            self.assertEqual((status, body), (200, image.manifest), repo)
            for digest, data in image.blobs().items():
                status, _, body = self.mirror("GET", repo + "/blobs/" + digest)
                self.assertEqual((status, body), (200, data), digest)
        # The admin API with the token pullgate created in the StateDirectory.
        token_path = os.path.join(self.state, "admin.token")
        def read_token():
            with open(token_path) as f:
                return f.readline().strip()
        token = h.wait_until(read_token, 10, token_path)
        status, _, body = h.http_request("127.0.0.1", self.admin_port, "GET", "/metrics",
                                         headers=[("Authorization", "Bearer " + token)])
        self.assertEqual(status, 200, body)
        # ExecReload: SIGHUP reloads the policy.
        def reloads():
            status, _, body = h.http_request("127.0.0.1", self.admin_port, "GET", "/metrics",
                                             headers=[("Authorization", "Bearer " + token)])
            self.assertEqual(status, 200, body)
            line = 'pullgate_policy_reloads_total{result="ok"} '
            return next(float(l[len(line):]) for l in body.decode().splitlines() if l.startswith(line))
        before = reloads()
        os.kill(self.pid, signal.SIGHUP)
        h.wait_until(lambda: reloads() == before + 1, 20, "the policy reloaded on SIGHUP")
        # systemctl stop: SIGTERM, exit 0 well within TimeoutStopSec.
        started = time.monotonic()
        os.kill(self.pid, signal.SIGTERM)
        code = proc.wait(timeout=int(self.unit["TimeoutStopSec"][0]))
        print("\nstopped on SIGTERM in %.1f s (TimeoutStopSec=%s)" % (time.monotonic() - started,
                                                                       self.unit["TimeoutStopSec"][0]), flush=True)
        self.assertEqual(code, 0, self.stderr()[-3000:])

        # What it created: owned by the service's user, open to nobody else (UMask=0077).
        for path in (token_path, os.path.join(self.state, "scanner.token"), self.config["gate"]["audit_log"]):
            st = os.stat(path)
            self.assertEqual((st.st_uid, st.st_mode & 0o777), (self.uid, 0o600), path)
        self.assertGreater(os.path.getsize(self.config["gate"]["audit_log"]), 0)

        self.check_trace()

    def check_trace(self):
        with open(self.trace, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
        self.assertTrue(lines, "empty trace")
        calls, families, written, proc_files = set(), set(), set(), set()
        call = re.compile(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]")
        # strace -y prints a directory descriptor with its path: AT_FDCWD</>, 5</var/lib/x>.
        dirfd = r"(?:AT_FDCWD|\d+)(?:<([^>]*)>)?"
        open_call = re.compile(r'^\d+\s+openat\(%s, "([^"]*)", ([A-Z_|]+)' % dirfd)
        path_call = re.compile(r'^\d+\s+(mkdir|mkdirat|renameat2?|rename|linkat|unlinkat|unlink|rmdir|'
                               r'symlinkat)\((?:%s, )?"([^"]*)"' % dirfd)
        for line in lines:
            m = call.match(line)
            if m:
                calls.add(m.group(1))
            m = re.match(r"^\d+\s+socket\((AF_[A-Z0-9]+)", line)
            if m:
                families.add(m.group(1))
            m = open_call.match(line)
            if m:
                base, path, flags = m.group(1) or "/", m.group(2), m.group(3)
                full = os.path.normpath(os.path.join(base, path))
                if re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC", flags):
                    written.add(full)
                if full.startswith("/proc/") and not re.match(r"/proc/(\d+|self|thread-self)(/|$)", full):
                    proc_files.add(full)
            m = path_call.match(line)
            if m and "= -1" not in line:
                written.add(os.path.normpath(os.path.join(m.group(2) or "/", m.group(3))))
        calls.discard("exited")  # "+++ exited with 0 +++" is not a call
        allowed = allowed_syscalls(self.unit)
        print("trace: %d system calls used, %d allowed by the unit's filter; socket families %s; %d paths written"
              % (len(calls), len(allowed), sorted(families), len(written)), flush=True)
        # The parser found what it looks for at all.
        self.assertIn("epoll_wait", calls)
        self.assertIn(self.config["gate"]["audit_log"], written)
        self.assertEqual(sorted(calls - allowed), [], "system calls outside SystemCallFilter")
        self.assertEqual(sorted(families - set(self.unit["RestrictAddressFamilies"][0].split())), [],
                         "socket families outside RestrictAddressFamilies")
        writable = (self.state, self.logs, "/dev/null")
        outside = sorted(p for p in written if not any(p == w or p.startswith(w + "/") for w in writable))
        self.assertEqual(outside, [], "written outside StateDirectory/LogsDirectory (ProtectSystem=strict)")
        self.assertEqual(sorted(proc_files), [], "non-process /proc files opened (ProcSubset=pid)")


if __name__ == "__main__":
    unittest.main()
