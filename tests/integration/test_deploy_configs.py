"""The client configurations shipped in deploy/, proven against a real upstream that
stays reachable the whole time (CNCF Distribution 2.8 on loopback) and a policy that
denies one image: with the shipped files the denied image cannot be pulled and the
clients never talk to the upstream; with the usual fallback configuration the same
clients pull it from the upstream (the hole the shipped files close), which pullgate
notices as a suspected bypass."""
import json
import os
import unittest

import harness as h

BAD_REASON = "deploy-config test: it/bad carries CVE-2099-0002"
HINT = "Ask #platform-security for an exception"
# A second name for the upstream, usable as a path component (a host:port is not).
ALIAS = "upstream.test"


class ShippedClientConfigs(h.PullgateAlive, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        reg = cls.registry
        cls.bad = h.push_image(reg, h.build_image("it/bad", "v1", [h.small_layer("deploy-bad-a"),
                                                                   h.small_layer("deploy-bad-b")], label="bad"))
        cls.good = h.push_image(reg, h.build_image("it/good", "v1", [h.small_layer("deploy-good-a"),
                                                                     h.small_layer("deploy-good-b")], label="good"))
        policy = {
            "default": {
                "mode": "enforce", "unknown": "evaluate", "fallback": "allow",
                "rules": [{"action": "deny", "repository": "it/bad", "reason": BAD_REASON}],
            },
        }
        cls.pg = h.GatedPullgate(cls.work.path, [h.upstream_entry(reg, aliases=[ALIAS])], policy, denial_hint=HINT).start()
        cls.addClassCleanup(cls.pg.close)

    # ---------------------------------------------------------------- helpers

    def containerd(self):
        ctrd = h.Containerd().start()
        self.addCleanup(ctrd.close)
        return ctrd

    def skopeo(self, conf_text, ref, tag):
        conf = os.path.join(self.work.path, "registries-%s.conf" % tag)
        with open(conf, "w") as f:
            f.write(conf_text)
        out = os.path.join(self.work.path, "skopeo-" + tag)
        return h.skopeo_copy(conf, "%s/%s" % (self.registry.address, ref), out, timeout=120), out

    def audit_since(self, count_before, **fields):
        return [a for a in self.pg.audit_records()[count_before:]
                if all(a.get(k) == v for k, v in fields.items())]

    def pullgate_requests_since(self, count_before):
        return [(e.get("method"), e.get("target") or e.get("path"), e.get("status"))
                for e in self.pg.access_log()[count_before:]]

    # ---------------------------------------------------------------- 1. containerd, shipped

    def test_1_containerd_shipped_hosts_toml(self):
        ctrd = self.containerd()
        text = h.install_shipped_hosts_toml(ctrd, self.registry.address, self.pg.address)
        self.assertIn('server = "http://%s"' % self.pg.address, text)
        mark = h.RequestLogMark(self.registry)

        r = ctrd.pull("shipped-bad", "%s/it/bad:v1" % self.registry.address)
        output = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, "ctr pulled a denied image with the shipped hosts.toml: " + output)
        self.assertIn(BAD_REASON, output, "ctr output does not carry the denial reason")
        self.assertIsNone(ctrd.image_digest("shipped-bad", "%s/it/bad:v1" % self.registry.address))

        r = ctrd.pull("shipped-good", "%s/it/good:v1" % self.registry.address)
        self.assertEqual(r.returncode, 0, "allowed image failed: %s\n%s\npullgate stderr: %s"
                         % (r.stdout, r.stderr, self.pg.stderr()))
        self.assertEqual(ctrd.image_digest("shipped-good", "%s/it/good:v1" % self.registry.address),
                         self.good.digest)
        for digest, data in self.good.blobs().items():
            self.assertEqual(ctrd.content("shipped-good", digest), data, "blob %s differs" % digest)

        direct = [x for x in mark.from_clients()]
        self.assertEqual(direct, [], "containerd contacted the upstream directly")

    # ---------------------------------------------------------------- 2. skopeo, shipped

    def test_2_skopeo_shipped_registries_conf_upstream_alias(self):
        """The shipped file as written for Docker Hub: the upstream's name in the mirror's
        path prefix is a plain DNS-style name (here pullgate's alias for the upstream),
        which is a valid path component, unlike a host:port."""
        conf = h.render_shipped_registries_conf(self.registry.address, self.pg.address)
        conf = conf.replace('location = "%s/%s"' % (self.pg.address, self.registry.address),
                            'location = "%s/%s"' % (self.pg.address, ALIAS))
        self.assertIn('location = "%s/%s"' % (self.pg.address, ALIAS), conf)
        mark = h.RequestLogMark(self.registry)

        access_before = len(self.pg.access_log())
        r, _ = self.skopeo(conf, "it/bad:v1", "alias-bad")
        exchange = "skopeo stderr: %s\npullgate answered: %r" % (r.stderr, self.pullgate_requests_since(access_before))
        self.assertNotEqual(r.returncode, 0, "skopeo pulled a denied image with the shipped registries.conf")
        self.assertIn(BAD_REASON, r.stderr, exchange)
        self.assertIn(HINT, r.stderr, exchange)

        access_before = len(self.pg.access_log())
        r, out = self.skopeo(conf, "it/good:v1", "alias-good")
        exchange = "skopeo stderr: %s\npullgate answered: %r" % (r.stderr, self.pullgate_requests_since(access_before))
        self.assertEqual(r.returncode, 0, "allowed image failed through the path-prefix mirror\n" + exchange)
        h.assert_dir_output(self, out, self.good)
        prefixed = [x for x in self.pullgate_requests_since(access_before)
                    if x[1] and x[1].startswith("/v2/%s/it/good/" % ALIAS)]
        self.assertTrue(prefixed, "skopeo did not use the /v2/<upstream>/ path prefix: " + exchange)

        self.assertEqual(mark.from_clients(), [], "skopeo contacted the upstream directly")

    # ---------------------------------------------------------------- 3. the usual setup

    def test_3_usual_fallback_configs_pull_denied_image_from_upstream(self):
        ref = "%s/it/bad:v1" % self.registry.address
        upstream_manifest_paths = ("/v2/it/bad/manifests/v1", "/v2/it/bad/manifests/" + self.bad.digest)

        # containerd: server = upstream, the mirror as [host].
        ctrd = self.containerd()
        ctrd.write_hosts(self.registry.address, self.pg.address)
        mark = h.RequestLogMark(self.registry)
        audit_before = len(self.pg.audit_records())
        r = ctrd.pull("usual-bad", ref)
        self.assertEqual(r.returncode, 0, "containerd did not fall back: %s\n%s" % (r.stdout, r.stderr))
        self.assertEqual(ctrd.image_digest("usual-bad", ref), self.bad.digest)
        for digest, data in self.bad.blobs().items():
            self.assertEqual(ctrd.content("usual-bad", digest), data)
        direct = [x for x in mark.from_clients() if x[2].startswith("containerd")]
        self.assertTrue(any(urlpath(x[1]) in upstream_manifest_paths for x in direct),
                        "the upstream did not serve containerd the manifest: %r" % direct)
        for digest in self.bad.blobs():
            self.assertIn("/v2/it/bad/blobs/" + digest, [urlpath(x[1]) for x in direct],
                          "the upstream did not serve containerd blob " + digest)

        denied = self.audit_since(audit_before, kind="manifest", digest=self.bad.digest, decision="deny",
                                  served=False)
        self.assertTrue(denied, "no audit record of the refused manifest: %r" % self.audit_since(audit_before))
        bypass = self.audit_since(audit_before, kind="blob", bypass_suspected=True)
        self.assertTrue(bypass, "no blob audit record with bypass_suspected: %r" % self.audit_since(audit_before))
        for rec in bypass:
            self.assertIn(rec["digest"], self.bad.blobs())
            self.assertTrue(rec["client"].startswith("127.0.0.1:"), rec)
            self.assertFalse(rec["served"], rec)
            self.assertTrue(any("bypass suspected" in x for x in rec["reasons"]), rec)

        # skopeo: registries.conf without blocked.
        conf = os.path.join(self.work.path, "registries-usual.conf")
        h.write_registries_conf(conf, self.registry.address, self.pg.address, blocked=False)
        with open(conf) as f:
            conf_text = f.read()
        mark = h.RequestLogMark(self.registry)
        audit_before = len(self.pg.audit_records())
        r, out = self.skopeo(conf_text, "it/bad:v1", "usual-bad")
        self.assertEqual(r.returncode, 0, "skopeo did not fall back: " + r.stderr)
        h.assert_dir_output(self, out, self.bad)
        direct = [x for x in mark.from_clients()]
        self.assertIn("/v2/it/bad/manifests/v1", [urlpath(x[1]) for x in direct],
                      "the upstream did not serve skopeo the manifest: %r" % direct)
        self.assertTrue(self.audit_since(audit_before, kind="manifest", digest=self.bad.digest, decision="deny",
                                         served=False), "pullgate did not refuse skopeo the manifest first")

    # ---------------------------------------------------------------- 4. docker

    def test_4_docker_daemon_json(self):
        with open(h.deploy_path("docker/daemon.json"), encoding="utf-8") as f:
            doc = json.load(f)
        self.assertIsInstance(doc, dict)
        mirrors = doc.get("registry-mirrors")
        self.assertIsInstance(mirrors, list)
        self.assertTrue(mirrors, "registry-mirrors is empty")
        for m in mirrors:
            self.assertIsInstance(m, str)
            self.assertRegex(m, r"^https?://[^/\s]+/?$")


def urlpath(uri):
    return uri.split("?", 1)[0]


if __name__ == "__main__":
    unittest.main(verbosity=2)
