"""The scanner worker (deploy/scanner/pullgate-scan-worker) end to end, with real
components: a real upstream (CNCF Distribution 2.8), pullgate with a scope that denies
unscanned images, skopeo and raw HTTP pulls through the mirror, and tests/integration/
fake_trivy.py standing in for trivy. The stand-in really pulls the image (manifest,
config, layers) from the admin listener's scanner pull API with the scanner token
(GET /v2/ -> 401 Basic challenge -> Basic credentials) before it prints a report.

Covers: an unscanned image denied and queued as pending; one worker round (--once)
scanning it, filing the report and releasing the image (clean findings) or keeping it
denied with the finding named (a CRITICAL one); a failing, garbage-printing or hanging
trivy leaving the digest pending with exit status 1 and the reason logged; the token
only in trivy's environment, never on a command line nor in a log; the scanner pull API
refusing requests without the token (401, Basic challenge) and the scanner token
refused on the other admin endpoints (403)."""
import base64
import json
import os
import subprocess
import time
import unittest

import harness as h

WORKER = os.path.join(h.REPO_ROOT, "deploy", "scanner", "pullgate-scan-worker")
FAKE_TRIVY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_trivy.py")
CRITICAL_ID = "CVE-2023-38545"  # the one CRITICAL finding in the Trivy fixture
WORKER_DEADLINE_S = 120


class ScannerWorker(h.PullgateAlive, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        reg = cls.registry
        cls.clean = h.seed_oci(reg, repo="it/clean", seed="scanw-clean")
        cls.crit = h.seed_oci(reg, repo="it/crit", seed="scanw-crit")
        cls.broken = h.seed_oci(reg, repo="it/broken", seed="scanw-broken")
        policy = {
            "default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"},
            "scopes": [{"name": "scanned", "repository": "it/**", "vulnerabilities": {"unscanned": "deny"}}],
        }
        cls.pg = h.GatedPullgate(cls.work.path, [h.upstream_entry(reg)], policy).start()
        cls.addClassCleanup(cls.pg.close)
        cls.admin_token = h.read_token(cls.pg, "admin.token")
        cls.scanner_token_path = os.path.join(cls.pg.data_dir, "scanner.token")
        cls.scanner_token = h.read_token(cls.pg, "scanner.token")
        cls.runs = 0

    # ---------------------------------------------------------------- helpers

    def get(self, path):
        return self.pg.request("GET", path, headers=[("Accept", a) for a in h.SKOPEO_ACCEPTS])

    def admin(self, method, path, token=None, body=None, headers=None):
        return h.admin_request(self.pg, token or self.admin_token, method, path, body=body, headers=headers)

    def pending(self):
        status, _, body = self.admin("GET", "/v1/pending")
        self.assertEqual(status, 200, body[:300])
        return {e["digest"]: e for e in json.loads(body)["pending"]}

    def assert_denied(self, status, body, what, *texts):
        return h.assert_oci_denied(self, status, body, what, *texts)

    def skopeo(self, ref):
        return h.skopeo_via_mirror(self.work.path, self.registry, self.pg, ref, timeout=60)

    def make_pending(self, image):
        """Pulls image through the mirror (refused: unscanned) and checks that its digest
        is queued with a scan_reference naming it on the default upstream. (A digest an
        earlier failed test left queued is scanned along; assertions name their digest.)"""
        ref = "%s:%s" % (image.repo, image.tag)
        r, _ = self.skopeo(ref)
        self.assertNotEqual(r.returncode, 0, "skopeo pulled the unscanned %s: %s" % (ref, r.stdout))
        self.assertIn("awaiting a scan", r.stderr)
        status, _, body = self.get("/v2/%s/manifests/%s" % (image.repo, image.tag))
        self.assert_denied(status, body, "GET %s unscanned" % ref, "awaiting a scan")
        pending = self.pending()
        self.assertIn(image.digest, pending, "the unscanned %s is not queued: %r" % (ref, pending))
        self.assertEqual(pending[image.digest].get("scan_reference"), "%s@%s" % (image.repo, image.digest),
                         pending[image.digest])

    def run_worker(self, timeout_s=60, **fake_env):
        """One worker round (--once) with fake trivy; returns (completed process, the
        worker's log lines parsed, fake trivy's log records)."""
        type(self).runs += 1
        fake_log = os.path.join(self.work.path, "fake-trivy-%d.log" % self.runs)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_TRIVY_", "TRIVY_"))}
        env["FAKE_TRIVY_LOG"] = fake_log
        env.update(fake_env)
        r = subprocess.run([WORKER, "--admin", "http://" + self.pg.admin_address,
                            "--token-file", self.scanner_token_path, "--trivy", FAKE_TRIVY,
                            "--once", "--timeout", str(timeout_s)],
                           capture_output=True, text=True, timeout=WORKER_DEADLINE_S, env=env,
                           stdin=subprocess.DEVNULL)
        lines = []
        for line in r.stderr.splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                self.fail("the worker logged a line that is not JSON: %r\nall of stderr:\n%s" % (line, r.stderr))
        records = []
        if os.path.exists(fake_log):
            with open(fake_log) as f:
                text = f.read()
            self.assertNotIn(self.scanner_token, text, "fake trivy's log holds the token")
            records = [json.loads(line) for line in text.splitlines()]
        self.assertNotIn(self.scanner_token, r.stderr + r.stdout, "the worker logged the token")
        for record in records:
            self.assertFalse(any(self.scanner_token in arg for arg in record["argv"]),
                             "the token is on trivy's command line: %r" % record["argv"])
        return r, lines, records

    def assert_pulled_with_credentials(self, records, image):
        reference = "%s/%s@%s" % (self.pg.admin_address, image.repo, image.digest)
        mine = [r for r in records if r["argv"][-1:] == [reference]]
        self.assertEqual(len(mine), 1, "fake trivy should have run once for %s: %r" % (reference, records))
        record = mine[0]
        self.assertEqual(record["argv"][1:], ["image", "--format", "json", "--quiet", reference])
        self.assertTrue(record["username_present"] and record["password_present"], record)
        self.assertEqual(record["insecure"], "true", record)
        self.assertTrue((record["challenge"] or "").startswith("Basic "), record)
        self.assertTrue(record["authenticated"], record)
        self.assertTrue(record["pulled"], record)
        self.assertEqual(record["config_digest"], image.config_digest, record)
        fetched = {path for method, path, status, with_auth in record["requests"] if status == 200 and with_auth}
        for digest in image.blobs():
            self.assertIn("/v2/%s/blobs/%s" % (image.repo, digest), fetched, record["requests"])

    def worker_line(self, lines, digest):
        line = next((l for l in lines if l.get("digest") == digest), None)
        self.assertIsNotNone(line, "the worker logged nothing for %s: %r" % (digest, lines))
        return line

    def report_counts(self, digest):
        status, _, body = self.admin("GET", "/v1/reports/" + digest)
        self.assertEqual(status, 200, "no report filed for %s: %r" % (digest, body[:300]))
        doc = json.loads(body)
        self.assertEqual(doc["scanner"].lower(), "trivy", doc)
        return {k.upper(): v for k, v in doc["counts"].items()}

    def scan_round(self, image, keep):
        """One worker round with `image` pending and trivy reporting the `keep`
        severities: the worker pulled it with the scanner credentials, logged it as
        scanned, and filed a report that took it off the pending list. Returns the
        report's counts by severity."""
        self.make_pending(image)
        r, lines, records = self.run_worker(FAKE_TRIVY_KEEP=keep)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_pulled_with_credentials(records, image)
        self.assertEqual(self.worker_line(lines, image.digest)["msg"], "scanned", lines)
        counts = self.report_counts(image.digest)
        self.assertNotIn(image.digest, self.pending(), "still pending after the worker's report")
        return counts

    # ---------------------------------------------------------------- tests

    def test_00_nothing_pending_is_a_clean_round(self):
        self.assertEqual(self.pending(), {})
        r, lines, records = self.run_worker()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(records, [], "trivy ran with nothing pending")

    def test_01_clean_report_releases_the_image(self):
        counts = self.scan_round(self.clean, "MEDIUM,LOW")
        self.assertEqual(counts.get("MEDIUM"), 2, counts)
        self.assertEqual(counts.get("LOW"), 1, counts)
        self.assertEqual(counts.get("HIGH", 0) + counts.get("CRITICAL", 0), 0, counts)
        # The audit log is written by its own thread: give it a moment.
        h.wait_until(lambda: any(a.get("digest") == self.clean.digest and a.get("source") == "scanner"
                                 for a in self.pg.audit_records()),
                     10, "an audit line for the scanner's pull of %s with source scanner" % self.clean.digest)

        status, _, body = self.get("/v2/it/clean/manifests/v1")
        self.assertEqual(status, 200, "GET it/clean:v1 after the worker's clean report: %r" % body[:300])
        self.assertEqual(body, self.clean.manifest)
        r, out_dir = self.skopeo("it/clean:v1")
        self.assertEqual(r.returncode, 0, r.stderr)
        h.assert_dir_output(self, out_dir, self.clean)

    def test_02_critical_finding_keeps_the_image_denied(self):
        self.assertEqual(self.scan_round(self.crit, "CRITICAL,MEDIUM,LOW").get("CRITICAL"), 1)

        status, _, body = self.get("/v2/it/crit/manifests/v1")
        message = self.assert_denied(status, body, "GET it/crit:v1 with a CRITICAL finding", CRITICAL_ID)
        self.assertNotIn("awaiting a scan", message)
        r, _ = self.skopeo("it/crit:v1")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn(CRITICAL_ID, r.stderr)

    def test_03_scanner_pull_api_needs_the_token_and_the_token_nothing_more(self):
        status, headers, body = h.http_request(self.pg.host, self.pg.admin_port, "GET", "/v2/")
        self.assertEqual(status, 401, body[:300])
        challenge = h.header(headers, "WWW-Authenticate") or ""
        self.assertTrue(challenge.startswith("Basic "), challenge)
        self.assertIn('realm="pullgate-scanner"', challenge)
        self.assertEqual(h.oci_error(body)[0], "UNAUTHORIZED", body[:300])

        wrong = base64.b64encode(b"scanner:not-the-token").decode()
        status, _, _ = h.http_request(self.pg.host, self.pg.admin_port, "GET", "/v2/",
                                      headers=[("Authorization", "Basic " + wrong)])
        self.assertEqual(status, 401)
        right = base64.b64encode(("anyone:" + self.scanner_token).encode()).decode()
        status, _, body = h.http_request(self.pg.host, self.pg.admin_port, "GET", "/v2/",
                                         headers=[("Authorization", "Basic " + right)])
        self.assertEqual(status, 200, body[:300])

        verdict = json.dumps({"decision": "allow", "reason": "scanner says so", "by": "scanner"}).encode()
        status, _, body = self.admin("PUT", "/v1/verdicts/" + self.broken.digest, token=self.scanner_token,
                                     body=verdict)
        self.assertEqual(status, 403, "the scanner token set a verdict: %r" % body[:300])
        status, _, body = self.admin("GET", "/v1/verdicts/" + self.broken.digest)
        if status == 200:
            self.assertNotEqual(json.loads(body).get("source"), "manual", body)
        else:
            self.assertEqual(status, 404, body[:300])
        status, _, body = self.admin("GET", "/v1/pending", token=self.scanner_token)
        self.assertEqual(status, 200, "the scanner token cannot list the pending queue: %r" % body[:300])

    def test_04_failing_trivy_leaves_the_digest_pending(self):
        self.make_pending(self.broken)
        cases = [({"FAKE_TRIVY_FAIL": "exit"}, 60, "trivy exited with 1"),
                 ({"FAKE_TRIVY_FAIL": "garbage"}, 60, "no JSON report"),
                 ({"FAKE_TRIVY_FAIL": "hang"}, 3, "did not finish within 3s")]
        for env, timeout_s, reason in cases:
            with self.subTest(env=env):
                started = time.monotonic()
                r, lines, records = self.run_worker(timeout_s=timeout_s, **env)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertLess(time.monotonic() - started, timeout_s + 30)
                line = self.worker_line(lines, self.broken.digest)
                self.assertEqual(line["msg"], "failed", line)
                self.assertIn(reason, line["reason"], line)
                # trivy did get the image: the failure is the scan's, not the pull's
                self.assert_pulled_with_credentials(records, self.broken)
                self.assertIn(self.broken.digest, self.pending(), "a failed scan took the digest off the queue")
                status, _, body = self.admin("GET", "/v1/reports/" + self.broken.digest)
                self.assertEqual(status, 404, "a failed scan filed a report: %r" % body[:300])
                status, _, body = self.get("/v2/it/broken/manifests/v1")
                self.assert_denied(status, body, "GET it/broken:v1 after a failed scan", "awaiting a scan")


if __name__ == "__main__":
    unittest.main(verbosity=2)
