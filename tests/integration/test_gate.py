"""The gate with real components: a policy file denying images, warn mode, manual
verdicts set with the CLI while the server runs, SIGHUP reloads, exceptions, many
concurrent first pulls of a denied digest, and `policy check` — seen through skopeo,
containerd (ctr) and raw HTTP against a real upstream (CNCF Distribution 2.8)."""
import datetime
import json
import os
import re
import subprocess
import threading
import unittest

import harness as h

BAD_REASON = "CVE-2099-0001 in the base layer"
MULTI_REASON = "v1 of multi-bad ships a debug build"
BURST_REASON = "burst repository is quarantined"
EXC_REASON = "exc repository is blocked pending review"
WARN_REASON = "legacy image, migrate before March"
HINT = "Ask #platform-security for an exception"


def rfc3339(delta):
    t = datetime.datetime.now(datetime.timezone.utc) + delta
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class Gate(h.PullgateAlive, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        reg = cls.registry

        # it/bad and it/good share their first layer.
        cls.shared_layer = h.small_layer("gate-shared")
        cls.bad = h.push_image(reg, h.build_image("it/bad", "v1", [cls.shared_layer, h.small_layer("gate-bad")],
                                                  label="bad"))
        cls.good = h.push_image(reg, h.build_image("it/good", "v1", [cls.shared_layer, h.small_layer("gate-good")],
                                                   label="good"))
        cls.multi_bad = h.seed_index(reg, repo="it/multi-bad", tag="v1", seed="gate-idx")
        cls.warned = h.seed_oci(reg, repo="it/warned", seed="gate-warn")
        cls.manual = h.seed_oci(reg, repo="it/manual", seed="gate-manual")
        cls.burst = h.seed_oci(reg, repo="it/burst", seed="gate-burst")
        cls.reload_img = h.seed_oci(reg, repo="it/reload", seed="gate-reload")
        cls.exc_future = h.push_image(reg, h.build_image("it/exc", "v1", [h.small_layer("gate-exc-1")], label="exc1"))
        cls.exc_past = h.push_image(reg, h.build_image("it/exc", "v2", [h.small_layer("gate-exc-2")], label="exc2"))
        # A blob in the upstream that no manifest references.
        cls.lone_blob = b"a blob no manifest references " * 100
        cls.lone_digest = reg.push_blob("it/good", cls.lone_blob)

        cls.policy = {
            "default": {
                "mode": "enforce", "unknown": "evaluate", "fallback": "allow",
                "rules": [
                    {"action": "deny", "repository": "it/bad", "reason": BAD_REASON},
                    {"action": "deny", "repository": "it/multi-bad", "tag": "v1", "reason": MULTI_REASON},
                    {"action": "deny", "repository": "it/burst", "reason": BURST_REASON},
                    {"action": "deny", "repository": "it/exc", "reason": EXC_REASON},
                ],
            },
            "scopes": [
                {"name": "lenient", "repository": "it/warned", "mode": "warn",
                 "rules": [{"action": "deny", "reason": WARN_REASON}]},
            ],
            "exceptions": [
                {"id": "exc-future-1", "digest": cls.exc_future.digest, "reason": "needed for the release",
                 "who": "alice", "expires": rfc3339(datetime.timedelta(hours=2))},
                {"id": "exc-past-1", "digest": cls.exc_past.digest, "reason": "was needed last week",
                 "who": "bob", "expires": rfc3339(-datetime.timedelta(hours=2))},
            ],
        }
        cls.pg = h.GatedPullgate(cls.work.path, [h.upstream_entry(reg)], cls.policy, denial_hint=HINT).start()
        cls.addClassCleanup(cls.pg.close)

    # ---------------------------------------------------------------- helpers

    def get(self, path, method="GET", headers=None, pg=None, accept=True):
        hs = [("Accept", a) for a in h.SKOPEO_ACCEPTS] if accept else []
        return (pg or self.pg).request(method, path, headers=hs + list(headers or []))

    def assert_denied(self, status, body, what, *texts):
        """403 with code DENIED and every text in the message; returns the message."""
        return h.assert_oci_denied(self, status, body, what, *texts)

    def assert_blob_denied(self, repo, digest, pg=None):
        """GET, HEAD (no body on the wire) and a Range GET of a blob: all 403 DENIED."""
        pg = pg or self.pg
        path = "/v2/%s/blobs/%s" % (repo, digest)
        status, _, body = pg.request("GET", path)
        self.assert_denied(status, body, "GET " + path)
        status, _, rest = h.raw_head(pg.host, pg.port, path)
        self.assertEqual(status, 403, "HEAD " + path)
        self.assertEqual(rest, b"", "HEAD %s sent a body" % path)
        status, _, body = pg.request("GET", path, headers=[("Range", "bytes=0-9")])
        self.assert_denied(status, body, "Range GET " + path)

    def skopeo(self, ref, pg=None, all_images=False):
        return h.skopeo_via_mirror(self.work.path, self.registry, pg or self.pg, ref, all_images=all_images)

    def audit_for(self, digest, pg=None, **fields):
        return [a for a in (pg or self.pg).audit_records()
                if a.get("digest") == digest and all(a.get(k) == v for k, v in fields.items())]

    def wait_audit(self, digest, pg=None, **fields):
        return h.wait_until(lambda: self.audit_for(digest, pg, **fields), 10,
                            "an audit record for %s with %r" % (digest, fields))

    # ---------------------------------------------------------------- 1. skopeo denied

    def test_01_skopeo_denied_by_repository_rule(self):
        r, _ = self.skopeo("it/bad:v1")
        self.assertNotEqual(r.returncode, 0, "skopeo pulled a denied image: " + r.stdout)
        self.assertIn("denied", r.stderr)
        self.assertIn(BAD_REASON, r.stderr)
        self.assertIn(HINT, r.stderr)
        # No fallback: nothing but pullgate asked the upstream for it/bad.
        self.registry.sync_log()
        # (Seeding used the push API with no User-Agent; skopeo sends one.)
        direct = [x for x in self.registry.requests()
                  if "/it/bad/" in x[1] and x[2] and not x[2].startswith("pullgate/")]
        self.assertEqual(direct, [])
        rec = self.wait_audit(self.bad.digest, kind="manifest", decision="deny")[0]
        self.assertFalse(rec["served"], rec)
        self.assertEqual(rec["repository"], "it/bad")
        self.assertEqual(rec["tag"], "v1")
        self.assertEqual(rec["source"], "rule")
        self.assertTrue(any(BAD_REASON in x for x in rec["reasons"]), rec)
        for field in ("client", "method", "upstream", "mode", "policy_version", "request_id"):
            self.assertIn(field, rec)

    # ---------------------------------------------------------------- 2. ctr denied

    def test_02_ctr_denied_shows_reason(self):
        ctrd = h.Containerd().start()
        self.addCleanup(ctrd.close)
        h.write_hosts_no_fallback(ctrd, self.registry.address, self.pg.address)
        r = ctrd.pull("gate-bad", "%s/it/bad:v1" % self.registry.address)
        output = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, "ctr pulled a denied image: " + output)
        self.assertIn(BAD_REASON, output, "ctr output does not carry the reason")
        self.assertIn("pullgate denied", output)
        # The HEAD that resolved the tag was answered 200 and audited as a deny.
        head = self.wait_audit(self.bad.digest, method="HEAD", decision="deny")
        self.assertEqual(head[0].get("tag"), "v1")
        self.registry.sync_log()
        self.assertEqual([x for x in self.registry.requests() if x[2].startswith("containerd")], [])

    # ---------------------------------------------------------------- 3. raw HTTP

    def test_03_blobs_of_denied_image_refused(self):
        status, headers, body = self.get("/v2/it/bad/manifests/v1")
        message = self.assert_denied(status, body, "GET manifest it/bad:v1", BAD_REASON, HINT, self.bad.digest)
        self.assertTrue(message.startswith("pullgate denied %s/it/bad:v1@%s: " % (self.registry.address,
                                                                                  self.bad.digest)), message)
        self.assertIn("(request id ", message)
        # HEAD of the denied manifest answers 200 (containerd resolves with it).
        status, _, _ = self.get("/v2/it/bad/manifests/v1", method="HEAD")
        self.assertEqual(status, 200)
        status, _, body = self.get("/v2/it/bad/manifests/" + self.bad.digest)
        self.assert_denied(status, body, "GET manifest by digest", BAD_REASON)
        for digest in self.bad.blobs():
            with self.subTest(blob=digest):
                self.assert_blob_denied("it/bad", digest)
        # A blob that exists upstream but belongs to no manifest the mirror has seen:
        # refused (the upstream is asked whether it exists, never for its bytes); one
        # that exists nowhere: 404, as content that does not exist always is.
        before = self.registry.count("/v2/it/good/blobs/" + self.lone_digest, "GET")
        self.assert_blob_denied("it/good", self.lone_digest)
        self.assertEqual(self.registry.count("/v2/it/good/blobs/" + self.lone_digest, "GET"), before,
                         "pullgate fetched a blob of no known manifest from the upstream")
        for method in ("GET", "HEAD"):
            status, _, body = self.get("/v2/it/good/blobs/" + h.sha256_digest(b"nothing has this digest"),
                                       method=method)
            self.assertEqual(status, 404, "%s of a blob that exists nowhere: %r" % (method, body[:300]))
            if method == "GET":
                self.assertEqual(h.oci_error(body)[0], "BLOB_UNKNOWN")

    # ---------------------------------------------------------------- 4. shared layer

    def test_04_allowed_image_sharing_a_layer(self):
        # Make sure the mirror has seen the denied manifest that also lists the layer.
        status, _, body = self.get("/v2/it/bad/manifests/v1")
        self.assert_denied(status, body, "GET it/bad:v1")
        r, out = self.skopeo("it/good:v1")
        self.assertEqual(r.returncode, 0, "skopeo failed: %s\npullgate stderr: %s" % (r.stderr, self.pg.stderr()))
        h.assert_dir_output(self, out, self.good)
        shared = self.shared_layer.digest
        status, _, body = self.pg.request("GET", "/v2/it/good/blobs/" + shared)
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(body, self.shared_layer.blob)
        served = self.audit_for(shared, kind="blob", repository="it/good", served=True)
        self.assertTrue(served, "no served audit record for the shared layer")
        # Under the denied repository the same layer stays refused.
        self.assert_blob_denied("it/bad", shared)

    # ---------------------------------------------------------------- 5. multi-arch

    def test_05_denied_index_denies_children_and_their_layers(self):
        status, _, body = self.get("/v2/it/multi-bad/manifests/v1")
        self.assert_denied(status, body, "GET index it/multi-bad:v1", MULTI_REASON)
        status, _, body = self.get("/v2/it/multi-bad/manifests/" + self.multi_bad.digest)
        self.assert_denied(status, body, "GET index by digest", MULTI_REASON)
        for (os_name, arch), child in self.multi_bad.children.items():
            with self.subTest(child=arch):
                path = "/v2/it/multi-bad/manifests/" + child.digest
                status, _, body = self.get(path)
                self.assert_denied(status, body, "GET child " + arch, MULTI_REASON)
                for digest in child.blobs():
                    self.assert_blob_denied("it/multi-bad", digest)
        r, _ = self.skopeo("it/multi-bad:v1", all_images=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(MULTI_REASON, r.stderr)

    # ---------------------------------------------------------------- 6. warn mode

    def test_06_warn_mode_serves_with_warning_and_audits(self):
        r, out = self.skopeo("it/warned:v1")
        self.assertEqual(r.returncode, 0, "skopeo failed in warn mode: %s" % r.stderr)
        h.assert_dir_output(self, out, self.warned)
        for method in ("GET", "HEAD"):
            status, headers, body = self.get("/v2/it/warned/manifests/v1", method=method)
            self.assertEqual(status, 200, body[:300])
            warning = h.header(headers, "Warning")
            self.assertIsNotNone(warning, "%s in warn mode has no Warning header" % method)
            self.assertTrue(warning.startswith('299 pullgate "'), warning)
            self.assertIn(WARN_REASON, warning)
        recs = self.wait_audit(self.warned.digest, kind="manifest", decision="deny", served=True)
        self.assertEqual(recs[0]["mode"], "warn")
        self.assertEqual(recs[0]["repository"], "it/warned")

    # ---------------------------------------------------------------- 7. manual verdict

    def test_07_manual_verdict_via_cli_while_running(self):
        path = "/v2/it/manual/manifests/" + self.manual.digest
        status, _, body = self.get(path)
        self.assertEqual(status, 200, body[:300])
        reason = "pulled by mistake into prod, ticket SEC-42"
        r = self.pg.cli("verdict", "set", self.manual.digest, "deny", "--reason", reason, "--by", "carol")
        self.assertEqual(r.returncode, 0, r.stderr)
        status, _, body = self.get(path)
        self.assert_denied(status, body, "GET after verdict set deny", reason)
        status, _, body = self.get("/v2/it/manual/manifests/v1")
        self.assert_denied(status, body, "GET by tag after verdict set deny", reason)
        for digest in self.manual.blobs():
            self.assert_blob_denied("it/manual", digest)
        r = self.pg.cli("verdict", "get", self.manual.digest)
        self.assertEqual(r.returncode, 0, r.stderr)
        v = json.loads(r.stdout)
        self.assertEqual((v["decision"], v["source"], v.get("set_by")), ("deny", "manual", "carol"), v)
        r = self.pg.cli("verdict", "ls", "--decision", "deny")
        self.assertEqual(r.returncode, 0, r.stderr)
        listed = [json.loads(line)["digest"] for line in r.stdout.splitlines() if line.strip()]
        self.assertIn(self.manual.digest, listed)

        r = self.pg.cli("verdict", "rm", self.manual.digest)
        self.assertEqual(r.returncode, 0, r.stderr)
        status, _, body = self.get(path)
        self.assertEqual(status, 200, "after verdict rm: %r" % body[:300])
        self.assertEqual(body, self.manual.manifest)
        status, _, body = self.pg.request("GET", "/v2/it/manual/blobs/" + self.manual.config_digest)
        self.assertEqual(status, 200, body[:300])

    # ---------------------------------------------------------------- 8. reload

    def test_08_sighup_reload_and_refused_reload(self):
        allow_all = {"default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"}}
        pg = h.GatedPullgate(self.work.path, [h.upstream_entry(self.registry)], allow_all).start()
        self.addCleanup(pg.close)
        status, _, body = self.get("/v2/it/reload/manifests/v1", pg=pg)
        self.assertEqual(status, 200, body[:300])

        reason = "reload test: it/reload withdrawn"
        deny = {"default": {"rules": [{"action": "deny", "repository": "it/reload", "reason": reason}]}}
        deny_bytes = pg.write_policy(deny)
        deny_version = h.sha256_digest(deny_bytes)
        pg.reload()

        def refused():
            status, _, body = self.get("/v2/it/reload/manifests/v1", pg=pg)
            return status == 403 and reason in body.decode()
        h.wait_until(refused, 10, "the reloaded policy to refuse it/reload", interval=0.1)
        r, _ = self.skopeo("it/reload:v1", pg=pg)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(reason, r.stderr)

        pg.write_policy('{"default": {"mode": "strict", "rules": [{"action": "deny"')  # broken twice over
        pg.reload()
        h.wait_until(lambda: "policy reload refused" in pg.stderr(), 10, "the refusal on stderr")
        self.assertTrue(pg.alive(), pg.stderr())
        status, _, body = self.get("/v2/it/reload/manifests/v1", pg=pg)
        self.assert_denied(status, body, "it/reload after a refused reload", reason)
        status, _, body = self.get("/v2/it/good/manifests/v1", pg=pg)
        self.assertEqual(status, 200, body[:300])
        recs = self.audit_for(self.reload_img.digest, pg=pg, decision="deny")
        self.assertTrue(recs)
        self.assertEqual(recs[-1]["policy_version"], deny_version, "the refused policy was taken")

    # ---------------------------------------------------------------- 9. exceptions

    def test_09_exceptions(self):
        status, _, body = self.get("/v2/it/exc/manifests/v1")
        self.assertEqual(status, 200, "unexpired exception did not allow: %r" % body[:300])
        self.assertEqual(body, self.exc_future.manifest)
        rec = self.wait_audit(self.exc_future.digest, kind="manifest")[-1]
        self.assertEqual(rec["decision"], "allow", rec)
        self.assertTrue(rec["served"], rec)
        self.assertEqual(rec.get("exception"), "exc-future-1", rec)
        self.assertTrue(any("exc-future-1" in x for x in rec["reasons"]), rec)
        for digest, data in self.exc_future.blobs().items():
            status, _, body = self.pg.request("GET", "/v2/it/exc/blobs/" + digest)
            self.assertEqual(status, 200, body[:300])
            self.assertEqual(body, data)

        status, _, body = self.get("/v2/it/exc/manifests/v2")
        self.assert_denied(status, body, "expired exception", EXC_REASON)
        rec = self.wait_audit(self.exc_past.digest, kind="manifest")[-1]
        self.assertEqual(rec["decision"], "deny", rec)
        self.assertNotIn("exception", rec)

    # ---------------------------------------------------------------- 10. concurrency

    def evaluations(self):
        """pullgate_gate_evaluations_total from the admin listener's /metrics."""
        status, _, body = h.admin_request(self.pg, h.read_token(self.pg), "GET", "/metrics")
        self.assertEqual(status, 200, body)
        for line in body.decode().splitlines():
            if line.startswith("pullgate_gate_evaluations_total "):
                return float(line.split()[1])
        self.fail("no pullgate_gate_evaluations_total in /metrics")

    def test_10_concurrent_first_pulls_of_denied_digest(self):
        path = "/v2/it/burst/manifests/" + self.burst.digest
        n = 50
        evaluations_before = self.evaluations()
        barrier = threading.Barrier(n)
        results = [None] * n

        def one(i):
            try:
                barrier.wait(timeout=30)
                results[i] = self.get(path)
            except Exception as e:  # reported below, per thread
                results[i] = e
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        errors = [r for r in results if not isinstance(r, tuple)]
        self.assertEqual(errors, [], "requests failed")
        messages = set()
        for status, _, body in results:
            messages.add(h.without_request_id(self.assert_denied(status, body, "concurrent GET", BURST_REASON)))
        self.assertEqual(len(messages), 1, "different denials: %r" % messages)
        # One evaluation for the 50 first pulls: the others found its stored verdict.
        self.assertEqual(self.evaluations() - evaluations_before, 1)

        r = self.pg.cli("verdict", "get", self.burst.digest)
        self.assertEqual(r.returncode, 0, r.stderr)
        v = json.loads(r.stdout)
        self.assertEqual((v["digest"], v["decision"], v["source"]), (self.burst.digest, "deny", "rule"), v)
        r = self.pg.cli("verdict", "ls")
        self.assertEqual(r.returncode, 0, r.stderr)
        listed = [json.loads(line)["digest"] for line in r.stdout.splitlines() if line.strip()]
        self.assertEqual(listed.count(self.burst.digest), 1, r.stdout)
        h.wait_until(lambda: len(self.audit_for(self.burst.digest, kind="manifest")) >= n, 10, "50 audit records")
        recs = self.audit_for(self.burst.digest, kind="manifest")
        self.assertEqual(len(recs), n)
        self.assertEqual(len({r["request_id"] for r in recs}), n)
        self.assertTrue(all(r["decision"] == "deny" and not r["served"] for r in recs))

    # ---------------------------------------------------------------- 11. policy check

    def test_10b_another_repository_name_gets_nothing_out_of_the_cache(self):
        """Manifests and blobs are cached by digest. Naming a repository the policy allows
        must not get a refused image's bytes out: not after a reload made its stored
        verdict stale, not for its blobs, not when it was pulled while still allowed.
        A digest the allowed repository really has is served once the upstream confirms."""
        reason = "cross-repository test: it/xbad is refused"
        allow_all = {"default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"}}
        deny_bad = {"default": {"unknown": "evaluate", "fallback": "allow",
                                "rules": [{"action": "deny", "repository": "it/xbad", "reason": reason}]}}
        bad = h.push_image(self.registry, h.build_image("it/xbad", "v1", [h.small_layer("xrepo-bad")], label="xb"))
        both = h.push_image(self.registry, h.build_image("it/xboth-a", "v1", [h.small_layer("xrepo-both")],
                                                         label="xboth"))
        h.push_image(self.registry, h.build_image("it/xboth-b", "v1", [h.small_layer("xrepo-both")], label="xboth"))
        pg = h.GatedPullgate(self.work.path, [h.upstream_entry(self.registry)], allow_all).start()
        self.addCleanup(pg.close)
        # Pulled while allowed: manifest, config and layer in the cache.
        self.assertEqual(self.skopeo("it/xbad:v1", pg=pg)[0].returncode, 0)
        pg.write_policy(deny_bad)
        pg.reload()
        h.wait_until(lambda: self.get("/v2/it/xbad/manifests/v1", pg=pg)[0] == 403, 10, "the reload")
        # A second reload: the stored deny is from an older policy version now.
        reloads = pg.stderr().count("policy reloaded")
        deny_bad["default"]["rules"].append({"action": "deny", "repository": "it/xnever", "reason": "unrelated"})
        pg.write_policy(deny_bad)
        pg.reload()
        h.wait_until(lambda: pg.stderr().count("policy reloaded") > reloads, 10, "the second reload")
        for repo in ("it/good", "it/none-such"):
            with self.subTest(repo=repo):
                status, _, body = self.get("/v2/%s/manifests/%s" % (repo, bad.digest), pg=pg)
                self.assertEqual(status, 404, body[:300])
                self.assertEqual(h.oci_error(body)[0], "MANIFEST_UNKNOWN")
                self.assertNotIn(bad.manifest, body)
                for blob in bad.blobs():
                    self.assert_blob_denied(repo, blob, pg=pg)
        status, _, body = self.get("/v2/it/xbad/manifests/%s" % bad.digest, pg=pg)
        self.assert_denied(status, body, "it/xbad by digest", reason)

        # One image pushed to two repositories: pulled from one, then asked for by digest
        # in the other. The upstream confirms once with a HEAD; the bytes come from the cache.
        self.assertEqual(self.get("/v2/it/xboth-a/manifests/v1", pg=pg)[0], 200)
        path_b = "/v2/it/xboth-b/manifests/%s" % both.digest
        before = self.registry.count(path_b, "HEAD"), self.registry.count(path_b, "GET")
        for _ in range(2):
            status, _, body = self.get(path_b, pg=pg)
            self.assertEqual(status, 200, body[:300])
            self.assertEqual(body, both.manifest)
        self.assertEqual(self.registry.count(path_b, "HEAD") - before[0], 1)
        self.assertEqual(self.registry.count(path_b, "GET") - before[1], 0)
        for blob, data in both.blobs().items():
            status, _, body = pg.request("GET", "/v2/it/xboth-b/blobs/" + blob)
            self.assertEqual(status, 200)
            self.assertEqual(body, data)

    def test_10c_a_verdict_from_a_lenient_scope_does_not_decide_a_strict_one(self):
        """One image in dev/** (allowed) and prod/** (unknown: deny): pulling it from dev
        first must not let prod reuse dev's stored allow."""
        policy = {"scopes": [{"name": "dev", "repository": "it/dev/**", "unknown": "evaluate", "fallback": "allow"},
                             {"name": "prod", "repository": "it/prod/**", "unknown": "deny"}]}
        layers = [h.small_layer("scope-promoted")]
        dev = h.push_image(self.registry, h.build_image("it/dev/app", "v1", layers, label="promoted"))
        prod = h.push_image(self.registry, h.build_image("it/prod/app", "v1", layers, label="promoted"))
        self.assertEqual(dev.digest, prod.digest)
        pg = h.GatedPullgate(self.work.path, [h.upstream_entry(self.registry)], policy).start()
        self.addCleanup(pg.close)
        self.assertEqual(self.get("/v2/it/dev/app/manifests/v1", pg=pg)[0], 200)
        status, _, body = self.get("/v2/it/prod/app/manifests/v1", pg=pg)
        self.assert_denied(status, body, "it/prod/app after it/dev/app")
        for blob in prod.blobs():
            self.assert_blob_denied("it/prod/app", blob, pg=pg)
        self.assertEqual(self.get("/v2/it/dev/app/manifests/v1", pg=pg)[0], 200)

    def test_11_policy_check(self):
        good = os.path.join(self.work.path, "good-policy.json")
        with open(good, "w") as f:
            f.write("// a comment is fine\n" + json.dumps(self.policy, indent=2))
        r = h.pullgate_cli("policy", "check", good)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok", r.stdout)
        with open(good, "rb") as f:
            self.assertIn(h.sha256_digest(f.read()), r.stdout)

        broken = os.path.join(self.work.path, "broken-policy.json")
        with open(broken, "w") as f:
            json.dump({
                "default": {"mode": "strict"},
                "scopes": [{"name": "s", "rules": [{"action": "block", "digest": "sha256:1234"}]}],
                "exceptions": [{"id": "e", "digest": "sha256:" + "a" * 64, "expires": "next tuesday"}],
                "bogus": 1,
            }, f)
        r = h.pullgate_cli("policy", "check", broken)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        lines = [line for line in r.stderr.splitlines() if line.strip() and "warning:" not in line]
        for where in ("default.mode", "scopes[0].rules[0].action", "scopes[0].rules[0].digest",
                      "exceptions[0].expires", "bogus"):
            self.assertEqual(len([line for line in lines if where in line]), 1,
                             "expected one line about %s in:\n%s" % (where, r.stderr))
        self.assertEqual(len(lines), 5, r.stderr)

        not_json = os.path.join(self.work.path, "not-json-policy.json")
        with open(not_json, "w") as f:
            f.write('{"default": {"mode": "enforce"')
        r = h.pullgate_cli("policy", "check", not_json)
        self.assertEqual(r.returncode, 1)
        self.assertIn("invalid JSON", r.stderr)

    def test_11b_policy_check_reads_key_files(self):
        keys = os.path.join(self.work.path, "keys")
        os.makedirs(keys, exist_ok=True)
        private = os.path.join(keys, "release.key")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-out", private], check=True, capture_output=True)
        public = os.path.join(keys, "release.pub")
        subprocess.run(["openssl", "pkey", "-in", private, "-pubout", "-out", public], check=True, capture_output=True)
        policy = os.path.join(keys, "policy.json")

        def check(key_entry):
            with open(policy, "w") as f:
                json.dump({"keys": {"release": key_entry},
                           "default": {"signatures": {"keys": ["release"]}}}, f)
            return h.pullgate_cli("policy", "check", policy)

        r = check({"pem_file": "release.pub"})  # relative to the policy file
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(policy + ": ok, version sha256:"), r.stdout)
        for entry, text in (({"pem_file": "missing.pub"}, "cannot read"),
                            ({"pem_file": "release.key"}, "public key"),
                            ({"pem_file": "policy.json"}, "keys.release.pem_file")):
            with self.subTest(entry=entry):
                r = check(entry)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                lines = [line for line in r.stderr.splitlines() if line.strip()]
                self.assertEqual(len(lines), 1, r.stderr)
                self.assertIn("keys.release.pem_file", lines[0])
                self.assertIn(text, lines[0])


class AuditQueueFull(unittest.TestCase):
    """The audit log on a FIFO whose pipe is full and that nobody reads stands for a
    disk that stopped. Once gate.audit_queue_max_mb of lines wait, pulls are answered
    503 UNAVAILABLE with Retry-After (nothing is served unaudited) and counted; when the
    disk is back, pulls are served and audited again."""

    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        cls.image = h.seed_oci(cls.registry, repo="it/audited", seed="gate-audit-full")

    def test_a_stalled_audit_log_refuses_pulls_until_it_is_back(self):
        fifo = os.path.join(self.work.path, "audit.fifo")
        os.mkfifo(fifo)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        filler = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        prefilled = 0
        try:
            while True:
                prefilled += os.write(filler, b"#" * 4096)
        except BlockingIOError:
            pass
        os.close(filler)
        pg = h.GatedPullgate(self.work.path, [h.upstream_entry(self.registry)],
                             {"default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"}})
        pg.config["gate"].update({"audit_log": fifo, "audit_queue_max_mb": 1})
        pg.write_config()
        self.addCleanup(pg.close)
        pg.start()
        token = h.read_token(pg)
        accept = [("Accept", a) for a in h.SKOPEO_ACCEPTS]
        path = "/v2/%s/manifests/%s" % (self.image.repo, self.image.digest)

        # A decision line is a few hundred bytes: 1 MiB of them in some thousands of pulls.
        for _ in range(20000):
            status, headers, body = pg.request("GET", path, headers=accept)
            if status != 200:
                break
            self.assertEqual(body, self.image.manifest)
        self.assertEqual(status, 503, body[:300])
        code, message = h.oci_error(body)
        self.assertEqual(code, "UNAVAILABLE", body)
        self.assertIn("audit log is behind", message)
        self.assertEqual(h.header(headers, "Retry-After"), "1")
        # HEAD and blobs too: no decision leaves unaudited.
        self.assertEqual(pg.request("HEAD", path, headers=accept)[0], 503)
        config_path = "/v2/%s/blobs/%s" % (self.image.repo, self.image.config_digest)
        self.assertEqual(pg.request("GET", config_path)[0], 503)
        _, _, metrics = h.admin_request(pg, token, "GET", "/metrics")
        refused = re.search(rb"^pullgate_audit_refused_total (\d+)$", metrics, re.M)
        self.assertTrue(refused and int(refused.group(1)) >= 3, metrics[-2000:])
        queued = re.search(rb"^pullgate_audit_queue_bytes (\S+)$", metrics, re.M)
        self.assertTrue(queued and float(queued.group(1)) >= 1 << 20, metrics[-2000:])

        # The disk is back: the writer catches up and pulls are served again.
        os.set_blocking(reader, True)
        received = []

        def drain():
            while True:
                chunk = os.read(reader, 1 << 16)
                if not chunk:
                    return
                received.append(chunk)
        drainer = threading.Thread(target=drain, daemon=True)
        drainer.start()
        h.wait_until(lambda: pg.request("GET", config_path)[0] == 200, 60, "pulls served again")
        pg.stop()
        drainer.join(30)
        lines = b"".join(received)[prefilled:].decode().splitlines()
        records = [json.loads(line) for line in lines]
        self.assertTrue(records, "nothing was audited")
        self.assertEqual({r["digest"] for r in records}, {self.image.digest, self.image.config_digest})
        self.assertEqual(records[-1]["kind"], "blob")


if __name__ == "__main__":
    unittest.main(verbosity=2)
