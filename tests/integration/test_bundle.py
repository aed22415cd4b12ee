"""Air-gap bundles end to end: an online pullgate pulls images from a real upstream
(CNCF Distribution) through skopeo, `pullgate bundle export` writes them with their
evidence, the upstream stops, and an --offline pullgate that imported the bundle
serves them by tag and by digest, byte for byte; a manual deny stays a deny; a
corrupted or truncated bundle changes nothing; a skopeo-made oci-archive imports
with --upstream; containerd (ctr) pulls through the offline mirror too."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import cosign as c
import harness as h

DENY_REASON = "bundle test: not for the air-gapped site"


def cli(*args):
    return h.pullgate_cli(*args, timeout=300)


class Bundle(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        cls.up = cls.registry.address
        cls.app = h.seed_oci(cls.registry, repo="it/app", seed="bundle-app")
        cls.bad = h.seed_oci(cls.registry, repo="it/bad", seed="bundle-bad")
        cls.plain = h.seed_oci(cls.registry, repo="it/plain", seed="bundle-plain")

        online = h.Pullgate(cls.work.path, [h.upstream_entry(cls.registry)], args=["--admin-listen", ""]).start()
        cls.addClassCleanup(online.close)
        for ref in ("it/app:v1", "it/bad:v1"):
            r, _ = h.skopeo_via_mirror(online.dir, cls.registry, online, ref)
            if r.returncode != 0:
                raise RuntimeError("skopeo pull of %s failed: %s" % (ref, r.stderr))
        r = cli("verdict", "set", cls.bad.digest, "deny", "--reason", DENY_REASON, "--data", online.data_dir)
        if r.returncode != 0:
            raise RuntimeError("verdict set failed: " + r.stderr)

        cls.bundle = os.path.join(cls.work.path, "site.tar")
        r = cli("bundle", "export", "%s/it/app:v1" % cls.up, "%s/it/bad:v1" % cls.up, "-o", cls.bundle,
                "--data", online.data_dir)
        if r.returncode != 0:
            raise RuntimeError("bundle export failed: " + r.stderr)
        cls.export_summary = json.loads(r.stdout)
        cls.export_stderr = r.stderr
        cls.online_data = online.data_dir

        # Signed with a key openssl makes here; another key for a site that does not trust it.
        cls.keys = {}
        for name in ("site", "other"):
            private = os.path.join(cls.work.path, name + ".pem")
            subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-out", private], check=True, capture_output=True)
            subprocess.run(["openssl", "pkey", "-in", private, "-pubout", "-out", private + ".pub"],
                           check=True, capture_output=True)
            cls.keys[name] = private
        cls.signed = os.path.join(cls.work.path, "signed.tar")
        r = cli("bundle", "export", "%s/it/app:v1" % cls.up, "-o", cls.signed, "--sign-key", cls.keys["site"],
                "--data", online.data_dir)
        if r.returncode != 0:
            raise RuntimeError("signed bundle export failed: " + r.stderr)

        # What skopeo itself writes, straight from the upstream (no pullgate annotations).
        cls.plain_archive = os.path.join(cls.work.path, "plain.tar")
        r = subprocess.run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
                            "docker://%s/it/plain:v1" % cls.up, "oci-archive:%s:it/plain:v1" % cls.plain_archive],
                           capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, HOME=cls.work.path))
        if r.returncode != 0:
            raise RuntimeError("skopeo oci-archive copy failed: " + r.stderr)

        online.stop()
        cls.registry.stop()

        cls.pg = h.Pullgate(cls.work.path, [h.upstream_entry(cls.registry)], offline=True,
                            args=["--admin-listen", ""]).start()
        cls.addClassCleanup(cls.pg.close)
        r = cli("bundle", "import", cls.bundle, "--data", cls.pg.data_dir)
        if r.returncode != 0:
            raise RuntimeError("bundle import failed: " + r.stderr)
        cls.import_summary = json.loads(r.stdout)

    def setUp(self):
        self.assertTrue(self.pg.alive(), "pullgate died before this test: " + self.pg.stderr())

    def pull(self, ref):
        r, out = h.skopeo_via_mirror(self.pg.dir, self.registry, self.pg, ref)
        self.assertEqual(r.returncode, 0, r.stderr)
        return out

    def test_export_and_import_count_what_they_carry(self):
        self.assertEqual(self.export_summary["images"], 2)
        self.assertEqual(self.import_summary["images"], 2)
        self.assertEqual(self.import_summary["blobs"], len(self.app.blobs()) + len(self.bad.blobs()))
        self.assertGreater(self.import_summary["records_written"], 0)

    def test_export_and_import_show_progress_on_a_terminal_only(self):
        # In a pipe (above, and in every CI log): no progress line.
        self.assertNotIn("\r", self.export_stderr)
        again = os.path.join(self.work.path, "again.tar")
        code, out, terminal = h.pullgate_cli_on_terminal("bundle", "export", "%s/it/app:v1" % self.up, "-o", again,
                                                         "--data", self.online_data)
        self.assertEqual(code, 0, terminal)
        self.assertEqual(json.loads(out)["images"], 1)
        self.assertIn("\r\x1b[Kexport %s  " % again, terminal)
        self.assertTrue(terminal.endswith("\r\x1b[K"), repr(terminal[-200:]))  # cleared at the end
        # Read back with the file's size known: a total and a percentage.
        code, out, terminal = h.pullgate_cli_on_terminal("bundle", "verify", again, "--data", self.pg.data_dir)
        self.assertEqual(code, 0, terminal)
        self.assertEqual(json.loads(out)["images"], 1)
        lines = [part for part in terminal.split("\r\x1b[K") if part]
        self.assertTrue(lines, repr(terminal))
        for line in lines:
            self.assertRegex(line, r"^verify %s  [0-9.]+ [KM]?i?B / [0-9.]+ [KM]?i?B +[0-9]+%%" % re.escape(again))

    def test_skopeo_reads_the_bundle_as_an_oci_archive(self):
        out = os.path.join(self.work.path, "from-archive")
        r = subprocess.run(["skopeo", "--insecure-policy", "copy",
                            "oci-archive:%s:%s/it/app:v1" % (self.bundle, self.up), "dir:" + out],
                           capture_output=True, text=True, timeout=300, env=dict(os.environ, HOME=self.work.path))
        self.assertEqual(r.returncode, 0, r.stderr)
        h.assert_dir_output(self, out, self.app)

    def test_the_offline_mirror_serves_the_image_by_tag(self):
        h.assert_dir_output(self, self.pull("it/app:v1"), self.app)

    def test_the_offline_mirror_serves_the_image_by_digest(self):
        h.assert_dir_output(self, self.pull("it/app@" + self.app.digest), self.app)

    def test_containerd_pulls_through_the_offline_mirror(self):
        # The upstream is stopped: only the mirror can have answered.
        ctrd = h.Containerd().start()
        self.addCleanup(ctrd.close)
        ctrd.write_hosts(self.up, self.pg.address)
        ref = "%s/it/app:v1" % self.up
        r = ctrd.pull("bundle", ref)
        self.assertEqual(r.returncode, 0, "ctr pull failed: %s\npullgate stderr: %s" % (r.stderr, self.pg.stderr()))
        self.assertEqual(ctrd.image_digest("bundle", ref), self.app.digest)
        self.assertEqual(ctrd.content("bundle", self.app.digest), self.app.manifest)
        for digest, data in self.app.blobs().items():
            self.assertEqual(ctrd.content("bundle", digest), data, digest)

    def test_podman_pulls_through_the_offline_mirror_by_tag_and_digest(self):
        # podman as CLIENTS.md runs it: its own storage (vfs) under a short path, and a
        # registries.conf that blocks the (stopped) upstream and names the mirror.
        conf = os.path.join(self.work.path, "podman-registries.conf")
        h.write_registries_conf(conf, self.up, self.pg.address, blocked=True)
        root = tempfile.mkdtemp(prefix="pgp", dir="/tmp")
        self.addCleanup(shutil.rmtree, root, True)
        podman = ["podman", "--root", os.path.join(root, "r"), "--runroot", os.path.join(root, "s"),
                  "--storage-driver", "vfs", "--events-backend", "none", "--cgroup-manager", "cgroupfs"]
        env = dict(os.environ, CONTAINERS_REGISTRIES_CONF=conf, HOME=root)
        by_tag, by_digest = "%s/it/app:v1" % self.up, "%s/it/app@%s" % (self.up, self.app.digest)
        for ref in (by_tag, by_digest):
            r = subprocess.run(podman + ["pull", "--tls-verify=false", ref], capture_output=True, text=True,
                               timeout=300, env=env)
            self.assertEqual(r.returncode, 0, "podman pull %s: %s\npullgate: %s" % (ref, r.stderr, self.pg.stderr()))
        r = subprocess.run(podman + ["image", "inspect", "--format", "{{.Digest}}", by_tag], capture_output=True,
                           text=True, timeout=60, env=env)
        self.assertEqual(r.stdout.strip(), self.app.digest, r.stderr)

    def test_a_manual_deny_stays_denied_with_its_reason(self):
        status, _, body = self.pg.request("GET", "/v2/it/bad/manifests/v1", headers=[("Accept", h.ALL_MANIFEST_ACCEPT)])
        self.assertEqual(status, 403)
        self.assertIn(DENY_REASON, body.decode())
        r = cli("verdict", "get", self.bad.digest, "--data", self.pg.data_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["decision"], "deny")

    def site_config(self, key, data_dir):
        path = os.path.join(self.work.path, "trust-%s.json" % key)
        with open(path, "w") as f:
            json.dump({"data_dir": data_dir, "bundle": {"trusted_keys": [self.keys[key] + ".pub"]}}, f)
        return path

    def test_a_signed_bundle_imports_only_where_its_key_is_trusted(self):
        fresh = os.path.join(self.work.path, "fresh-data")
        r = cli("bundle", "import", self.signed, "--config", self.site_config("other", fresh))
        self.assertEqual(r.returncode, 1)
        self.assertIn("which is not among the trusted bundle keys", r.stderr)
        self.assertEqual(h.files_under(os.path.join(fresh, "blobs")), set())
        # Keys listed: an unsigned bundle is refused.
        r = cli("bundle", "import", self.bundle, "--config", self.site_config("site", fresh))
        self.assertEqual(r.returncode, 1)
        self.assertIn("the bundle is not signed", r.stderr)
        r = cli("bundle", "verify", self.signed, "--config", self.site_config("site", fresh))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(h.files_under(os.path.join(fresh, "blobs")), set())
        r = cli("bundle", "import", self.signed, "--config", self.site_config("site", fresh))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(json.loads(r.stdout)["signed_by"].startswith(self.keys["site"] + ".pub (sha256:"))
        self.assertGreater(json.loads(r.stdout)["records_written"], 0)
        self.assertNotEqual(h.files_under(os.path.join(fresh, "blobs")), set())

    def test_importing_twice_changes_nothing(self):
        before = h.files_under(os.path.join(self.pg.data_dir, "blobs"))
        r = cli("bundle", "import", self.bundle, "--data", self.pg.data_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["records_written"], 0)
        self.assertEqual(h.files_under(os.path.join(self.pg.data_dir, "blobs")), before)

    def refused(self, data, expected):
        damaged = os.path.join(self.work.path, "damaged.tar")
        with open(damaged, "wb") as f:
            f.write(data)
        blobs_before = h.files_under(os.path.join(self.pg.data_dir, "blobs"))
        verdicts_before = cli("verdict", "ls", "--data", self.pg.data_dir).stdout
        r = cli("bundle", "import", damaged, "--data", self.pg.data_dir)
        self.assertEqual(r.returncode, 1)
        self.assertIn(expected, r.stderr)
        self.assertIn("nothing was imported", r.stderr)
        self.assertEqual(h.files_under(os.path.join(self.pg.data_dir, "blobs")), blobs_before)
        self.assertEqual(h.files_under(os.path.join(self.pg.data_dir, "tmp")), set())
        self.assertEqual(cli("verdict", "ls", "--data", self.pg.data_dir).stdout, verdicts_before)

    def test_a_flipped_byte_is_refused_naming_the_entry(self):
        with open(self.bundle, "rb") as f:
            data = bytearray(f.read())
        layer = self.app.layers[0]
        at = data.find(layer.blob[:4096])
        self.assertGreater(at, 0)
        data[at + 100] ^= 0x01
        self.refused(bytes(data), "blobs/sha256/%s): content does not match its digest" % layer.digest.split(":")[1])

    def test_a_truncated_bundle_is_refused(self):
        with open(self.bundle, "rb") as f:
            data = f.read()
        self.refused(data[:len(data) // 2], "the archive is truncated")

    def test_a_skopeo_archive_imports_under_the_upstream_given(self):
        r = cli("bundle", "import", self.plain_archive, "--data", self.pg.data_dir)
        self.assertEqual(r.returncode, 1)
        self.assertIn("give --upstream NAME", r.stderr)
        r = cli("bundle", "import", self.plain_archive, "--upstream", self.up, "--data", self.pg.data_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        h.assert_dir_output(self, self.pull("it/plain:v1"), self.plain)


class SignedBundle(unittest.TestCase):
    """A signature travels with its image: the offline mirror's policy requires a
    signature by the release key, and the upstream (with the signature) is gone."""

    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        key = c.KeyPair(cls.work.path, "release", "ecdsa")
        cls.signed = h.seed_oci(cls.registry, repo="signed/app", seed="bundle-signed")
        c.push_legacy_signature(cls.registry, cls.signed, key)
        cls.policy = {"keys": {"release": {"pem": key.public_pem}},
                      "default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"},
                      "scopes": [{"name": "signed", "repository": "signed/**", "signatures": {"keys": ["release"]}}]}
        online = h.GatedPullgate(cls.work.path, [h.upstream_entry(cls.registry)], cls.policy,
                                 args=["--admin-listen", ""]).start()
        cls.addClassCleanup(online.close)
        r, _ = h.skopeo_via_mirror(online.dir, cls.registry, online, "signed/app:v1")
        if r.returncode != 0:
            raise RuntimeError("skopeo pull of signed/app:v1 failed: " + r.stderr)
        cls.bundle = os.path.join(cls.work.path, "signed.tar")
        r = cli("bundle", "export", "%s/signed/app:v1" % cls.registry.address, "-o", cls.bundle,
                "--data", online.data_dir)
        if r.returncode != 0:
            raise RuntimeError("bundle export failed: " + r.stderr)
        cls.export_summary = json.loads(r.stdout)
        online.stop()
        cls.registry.stop()

    def offline_mirror(self):
        pg = h.GatedPullgate(self.work.path, [h.upstream_entry(self.registry)], self.policy, offline=True,
                             args=["--admin-listen", ""]).start()
        self.addCleanup(pg.close)
        return pg

    def test_the_signature_is_exported_as_an_artifact(self):
        self.assertEqual(self.export_summary["artifacts"], 1)

    def test_a_signature_scope_passes_offline_with_the_imported_signature(self):
        pg = self.offline_mirror()
        r = cli("bundle", "import", self.bundle, "--data", pg.data_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        r, out = h.skopeo_via_mirror(pg.dir, self.registry, pg, "signed/app:v1")
        self.assertEqual(r.returncode, 0, r.stderr + pg.stderr())
        h.assert_dir_output(self, out, self.signed)

    def test_without_the_signature_the_same_mirror_refuses_it(self):
        # The bundle's signature, not anything else, is what lets it through: the
        # image and its blobs alone (a plain archive of them) are refused.
        pg = self.offline_mirror()
        plain = os.path.join(self.work.path, "unsigned-copy.tar")
        r = subprocess.run(["skopeo", "--insecure-policy", "copy",
                            "oci-archive:%s:%s/signed/app:v1" % (self.bundle, self.registry.address),
                            "oci-archive:%s:signed/app:v1" % plain],
                           capture_output=True, text=True, timeout=300, env=dict(os.environ, HOME=self.work.path))
        self.assertEqual(r.returncode, 0, r.stderr)
        r = cli("bundle", "import", plain, "--upstream", self.registry.address, "--data", pg.data_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        status, _, body = pg.request("GET", "/v2/signed/app/manifests/v1", headers=[("Accept", h.ALL_MANIFEST_ACCEPT)])
        self.assertEqual(status, 403, body[:400])


if __name__ == "__main__":
    unittest.main()
