"""The OCI images deploy/image/build.sh makes (localhost/pullgate and
localhost/pullgate-scanner), checked without a container runtime, which cannot start
containers here: the unpacked root is the honest stand-in.

What is checked, and how:
- Reproducible: two builds into different directories (the same binary, checkout and
  SOURCE_DATE_EPOCH from the last commit) give the same manifest digests, and skopeo
  reads each layout under the tag build.sh prints with --print-refs.
- The config: a non-root user (65532), the entrypoint and command, the ports and the
  volume; the root has no setuid or setgid file and no shell, and the data directory
  belongs to the image's user.
- Nothing the binary needs is missing: the pullgate image, unpacked with umoci, runs
  its own /usr/bin/pullgate inside that root (chroot, as uid 65532, loopback shared
  with the test) with its own libraries, and a pull through it from a TLS upstream
  works with skopeo from outside, byte for byte. The upstream's certificate is trusted
  only by being appended to the image's /etc/ssl/certs/ca-certificates.crt (no
  ca_file, no insecure), and a manifest request before that is refused, so the pull
  also shows that pullgate finds the image's trust store through OpenSSL's default
  paths.
- The scanner image's Python runs the worker in its own root: `--help` (every module
  it imports loads) and one `--once` round against the chrooted pullgate's admin API
  with the scanner token (nothing pending: trivy is not run; there is none here).

Not tested here: trivy inside the scanner image (Debian does not package it; build.sh
--trivy copies one in), a real container runtime's start of either image.
"""
import json
import os
import re
import shutil
import stat
import subprocess
import types
import unittest

import harness as h

BUILD = os.path.join(h.REPO_ROOT, "deploy", "image", "build.sh")
UID = 65532
BUILD_DEADLINE_S = 600


def project_version():
    with open(os.path.join(h.REPO_ROOT, "CMakeLists.txt")) as f:
        return re.search(r"^project\(pullgate VERSION ([0-9.]+)", f.read(), re.M).group(1)


def layout_manifest(layout):
    """(manifest digest, manifest, config) of the one image in an OCI layout."""
    with open(os.path.join(layout, "index.json")) as f:
        entry = json.load(f)["manifests"][0]

    def blob(digest):
        with open(os.path.join(layout, "blobs", *digest.split(":", 1)), "rb") as f:
            return json.loads(f.read())
    manifest = blob(entry["digest"])
    return entry["digest"], manifest, blob(manifest["config"]["digest"])


def in_root(root, *argv, **kw):
    """argv run inside root as the image's user; loopback is the test's own."""
    return subprocess.run(["chroot", "--userspec=%d:%d" % (UID, UID), root] + list(argv),
                          capture_output=True, text=True, **kw)


class Image(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in ("umoci", "skopeo", "chroot", "strip"):
            if not shutil.which(tool):
                raise RuntimeError("%s is missing: deploy/install-deps.sh --test installs it" % tool)
        cls.version = project_version()
        cls.work = h.Workdir()
        cls.addClassCleanup(cls.work.close)
        cls.builds = []
        for name in ("a", "b"):
            out = os.path.join(cls.work.path, "oci-" + name)
            r = subprocess.run(["bash", BUILD, "--binary", h.pullgate_bin(), "--out", out],
                               capture_output=True, text=True, timeout=BUILD_DEADLINE_S)
            if r.returncode != 0:
                raise RuntimeError("build.sh failed (%d):\n%s\n%s" % (r.returncode, r.stdout, r.stderr))
            cls.builds.append((out, r))
        cls.out = cls.builds[0][0]
        cls.roots = {}
        for name in ("pullgate", "pullgate-scanner"):
            bundle = os.path.join(cls.work.path, "bundle-" + name)
            r = subprocess.run(["umoci", "unpack", "--image", "%s/%s:%s" % (cls.out, name, cls.version), bundle],
                               capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise RuntimeError("umoci unpack %s: %s" % (name, r.stderr))
            cls.roots[name] = os.path.join(bundle, "rootfs")

    def test_print_refs_names_both_images_at_the_project_version(self):
        r = subprocess.run(["bash", BUILD, "--print-refs"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "localhost/pullgate:%s\nlocalhost/pullgate-scanner:%s\n"
                         % (self.version, self.version))

    def test_same_inputs_same_digests(self):
        for name in ("pullgate", "pullgate-scanner"):
            first, second = (layout_manifest(os.path.join(out, name))[0] for out, _ in self.builds)
            self.assertEqual(first, second, "%s: two builds of the same inputs differ" % name)
            # The digest and sizes are reported, and the missing trivy is said plainly.
            self.assertIn("localhost/%s:%s  %s  compressed" % (name, self.version, first), self.builds[0][1].stdout)
        self.assertIn("pullgate-scanner has NO trivy", self.builds[0][1].stderr)

    def test_skopeo_reads_each_layout_by_its_tag(self):
        for name in ("pullgate", "pullgate-scanner"):
            layout = os.path.join(self.out, name)
            r = subprocess.run(["skopeo", "inspect", "oci:%s:%s" % (layout, self.version)],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(json.loads(r.stdout)["Digest"], layout_manifest(layout)[0])

    def test_config_runs_as_a_non_root_user(self):
        _, manifest, config = layout_manifest(os.path.join(self.out, "pullgate"))
        self.assertEqual(len(manifest["layers"]), 1)
        c = config["config"]
        self.assertEqual(c["User"], "%d:%d" % (UID, UID))
        self.assertEqual(c["Entrypoint"], ["/usr/bin/pullgate"])
        self.assertEqual(c["Cmd"], ["serve", "--config", "/etc/pullgate/pullgate.json"])
        self.assertEqual(sorted(c["ExposedPorts"]), ["5000/tcp", "5001/tcp"])
        self.assertEqual(list(c["Volumes"]), ["/var/lib/pullgate"])
        _, _, scanner = layout_manifest(os.path.join(self.out, "pullgate-scanner"))
        self.assertEqual(scanner["config"]["User"], "%d:%d" % (UID, UID))
        self.assertEqual(scanner["config"]["Entrypoint"], ["/usr/bin/python3", "/usr/bin/pullgate-scan-worker"])

    def test_no_setuid_files_no_shell_data_dir_owned_by_the_user(self):
        for name, root in self.roots.items():
            for d, dirs, files in os.walk(root):
                for entry in dirs + files:
                    st = os.lstat(os.path.join(d, entry))
                    self.assertFalse(st.st_mode & (stat.S_ISUID | stat.S_ISGID),
                                     "%s: setuid/setgid %s" % (name, os.path.join(d, entry)))
            for shell in ("usr/bin/sh", "usr/bin/bash", "usr/bin/dash"):
                self.assertFalse(os.path.lexists(os.path.join(root, shell)), "%s has a shell: %s" % (name, shell))
        st = os.stat(os.path.join(self.roots["pullgate"], "var/lib/pullgate"))
        self.assertEqual((st.st_uid, st.st_gid), (UID, UID))
        # The Public Suffix List libpsl reads, as Debian ships it.
        with open("/usr/share/publicsuffix/public_suffix_list.dafsa", "rb") as f, \
                open(os.path.join(self.roots["pullgate"], "usr/share/publicsuffix/public_suffix_list.dafsa"),
                     "rb") as g:
            self.assertEqual(f.read(), g.read())

    @unittest.skipIf(os.environ.get("PULLGATE_SANITIZED_RUN"),
                     "a sanitized pullgate in a root without /proc cannot read its ASAN_OPTIONS (the sanitizers "
                     "read them from /proc/self/environ), so LeakSanitizer runs at exit and fails there; the "
                     "plain suite runs it")
    def test_version_inside_the_root(self):
        r = in_root(self.roots["pullgate"], "/usr/bin/pullgate", "--version", timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(self.version, r.stdout)

    def test_pull_through_the_unpacked_image_and_a_scanner_round(self):
        root = self.roots["pullgate"]
        cert, key = h.make_self_signed_cert(self.work.path)
        registry = h.TlsRegistry(self.work.path, cert, key).start()
        self.addCleanup(registry.close)
        image = h.seed_oci(registry, repo="it/image", seed="image-test")
        port, admin_port = h.free_port(), h.free_port()
        mirror = types.SimpleNamespace(host="127.0.0.1", port=port, address="127.0.0.1:%d" % port)
        config = {
            "listen": mirror.address,
            "data_dir": "/var/lib/pullgate",
            "access_log": "",
            "upstreams": [{"name": registry.address, "url": registry.url, "default": True}],
            "gate": {"policy_file": "/etc/pullgate/policy.json"},
            "admin": {"listen": "127.0.0.1:%d" % admin_port},
        }
        with open(os.path.join(root, "etc/pullgate/test.json"), "w") as f:
            json.dump(config, f)
        err_path = os.path.join(self.work.path, "pullgate-in-root.err")

        def start():
            with open(err_path, "ab") as err:
                proc = subprocess.Popen(["chroot", "--userspec=%d:%d" % (UID, UID), root, "/usr/bin/pullgate",
                                         "serve", "--config", "/etc/pullgate/test.json"],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
            self.addCleanup(h._stop_process, proc)

            def up():
                if proc.poll() is not None:
                    with open(err_path) as f:
                        raise RuntimeError("pullgate in the root exited %s: %s" % (proc.returncode, f.read()[-3000:]))
                try:
                    return h.http_request(mirror.host, mirror.port, "GET", "/healthz", timeout=2)[0] == 200
                except OSError:
                    return False
            h.wait_until(up, 30, "pullgate in the unpacked root")
            return proc

        # The image's bundle does not hold the test CA yet: the upstream is refused.
        proc = start()
        status, _, body = h.http_request(mirror.host, mirror.port, "GET", "/v2/it/image/manifests/v1",
                                         headers=[("Accept", h.ALL_MANIFEST_ACCEPT)])
        self.assertNotEqual(status, 200, "the upstream was trusted without its CA: %r" % body[:300])
        manifest_path = "/v2/it/image/manifests/v1"
        self.assertEqual(registry.count(manifest_path, "GET") + registry.count(manifest_path, "HEAD"), 0,
                         "a manifest request reached the upstream past an untrusted certificate")
        h._stop_process(proc)
        # The upstream's CA joins the image's trust store, as a derived image would add
        # a private CA; the config names no ca_file.
        with open(cert) as f, open(os.path.join(root, "etc/ssl/certs/ca-certificates.crt"), "a") as bundle:
            bundle.write(f.read())
        start()

        r, out = h.skopeo_via_mirror(self.work.path, registry, mirror, "it/image:v1")
        with open(err_path) as f:
            self.assertEqual(r.returncode, 0, "skopeo: %s\npullgate: %s" % (r.stderr, f.read()[-3000:]))
        h.assert_dir_output(self, out, image)
        blobs = os.path.join(root, "var/lib/pullgate/blobs")
        self.assertTrue(os.path.isdir(blobs) and os.stat(blobs).st_uid == UID, "no blob store owned by 65532")

        # The worker in the scanner image: its Python and modules load, and a round
        # against the admin API with the scanner token finds nothing pending.
        scanner = self.roots["pullgate-scanner"]
        r = in_root(scanner, "/usr/bin/python3", "/usr/bin/pullgate-scan-worker", "--help", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--token-file", r.stdout)
        shutil.copy(os.path.join(root, "var/lib/pullgate/scanner.token"), os.path.join(scanner, "tmp/scanner.token"))
        os.chown(os.path.join(scanner, "tmp/scanner.token"), UID, UID)
        r = in_root(scanner, "/usr/bin/python3", "/usr/bin/pullgate-scan-worker", "--once",
                    "--admin", "http://127.0.0.1:%d" % admin_port, "--token-file", "/tmp/scanner.token", timeout=60)
        self.assertEqual(r.returncode, 0, "worker round: %s" % r.stderr)


if __name__ == "__main__":
    unittest.main()
