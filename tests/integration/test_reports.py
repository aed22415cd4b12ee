"""Vulnerability reports deciding verdicts, with real components: a real upstream
(CNCF Distribution 2.8), pullgate with scopes that consult reports, skopeo and raw
HTTP pulls, reports made from the Trivy and Grype fixtures and imported through the
CLI (while the server runs) and the admin API. Covers: unscanned images denied and
queued as pending, a clean report flipping a pending digest to allowed (with a
MEDIUM warning), a CRITICAL finding blocking until a CVE exception lifts it and
again once the exception expires, a stale report counting as none, a held pull
released by a report or denied after hold_s, and bad imports refused cleanly."""
import copy
import datetime
import json
import os
import threading
import time
import unittest

import harness as h

FIXTURES = os.path.join(h.REPO_ROOT, "tests", "fixtures", "reports")
CRITICAL_ID = "GHSA-xqr8-7jwr-rhp7"  # the one Critical match in the Grype fixture
HOLD_S = 5


def rfc3339(delta=datetime.timedelta(0)):
    t = datetime.datetime.now(datetime.timezone.utc) + delta
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def load_fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return json.load(f)


def trivy_report(repo_ref, digest, scanned_at=None, keep=("MEDIUM", "LOW", "UNKNOWN")):
    """The Trivy fixture naming repo_ref@digest, scanned at scanned_at (default now),
    with only findings of the severities in keep."""
    doc = copy.deepcopy(load_fixture("trivy-image.json"))
    doc["CreatedAt"] = scanned_at or rfc3339()
    doc["Metadata"]["RepoDigests"] = ["%s@%s" % (repo_ref, digest)]
    for result in doc["Results"]:
        result["Vulnerabilities"] = [v for v in result.get("Vulnerabilities") or [] if v["Severity"] in keep]
    return doc


def grype_report(digest, keep=("Critical", "Medium", "Low", "Negligible")):
    """The Grype fixture for digest, scanned now, with only matches of the severities
    in keep (the default drops the High ones, so CRITICAL_ID alone blocks)."""
    doc = copy.deepcopy(load_fixture("grype-image.json"))
    doc["source"]["target"]["manifestDigest"] = digest
    doc["source"]["target"]["repoDigests"] = []
    doc["descriptor"]["timestamp"] = rfc3339()
    doc["matches"] = [m for m in doc["matches"] if m["vulnerability"]["severity"] in keep]
    return doc


class Reports(h.PullgateAlive, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        reg = cls.registry
        cls.scan = h.seed_oci(reg, repo="it/scan", seed="rep-scan")
        cls.crit = h.seed_oci(reg, repo="it/crit", seed="rep-crit")
        cls.garbage_target = h.seed_oci(reg, repo="it/other", seed="rep-other")
        cls.old = h.seed_oci(reg, repo="aged/app", seed="rep-old")
        cls.hold_ok = h.seed_oci(reg, repo="hold/ok", seed="rep-hold-ok")
        cls.hold_none = h.seed_oci(reg, repo="hold/none", seed="rep-hold-none")

        cls.policy = cls.policy_with([])
        cls.pg = h.GatedPullgate(cls.work.path, [h.upstream_entry(reg)], cls.policy).start()
        cls.addClassCleanup(cls.pg.close)
        cls.token = h.read_token(cls.pg)

    @classmethod
    def policy_with(cls, cve_exceptions):
        return {
            "default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"},
            "scopes": [
                {"name": "scanned", "repository": "it/**", "vulnerabilities": {"unscanned": "deny"}},
                {"name": "aged", "repository": "aged/**",
                 "vulnerabilities": {"unscanned": "deny", "max_report_age": "1d"}},
                {"name": "held", "repository": "hold/**",
                 "vulnerabilities": {"unscanned": "hold", "hold_s": HOLD_S}},
            ],
            "cve_exceptions": cve_exceptions,
        }

    # ---------------------------------------------------------------- helpers

    def get(self, path, timeout=30):
        return self.pg.request("GET", path, headers=[("Accept", a) for a in h.SKOPEO_ACCEPTS], timeout=timeout)

    def admin(self, method, path, body=None):
        return h.admin_request(self.pg, self.token, method, path, body=body)

    def assert_denied(self, status, body, what, *texts):
        return h.assert_oci_denied(self, status, body, what, *texts)

    def skopeo(self, ref):
        return h.skopeo_via_mirror(self.work.path, self.registry, self.pg, ref, timeout=60)

    def write_report(self, doc, name):
        path = os.path.join(self.work.path, name)
        with open(path, "w") as f:
            json.dump(doc, f)
        return path

    def pending_cli(self):
        r = self.pg.cli("pending", "ls")
        self.assertEqual(r.returncode, 0, r.stderr)
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def pending_api(self):
        status, _, body = self.admin("GET", "/v1/pending")
        self.assertEqual(status, 200, body[:300])
        return json.loads(body)["pending"]

    @staticmethod
    def entry_for(entries, digest):
        return next((e for e in entries if e["digest"] == digest), None)

    # ---------------------------------------------------------------- 1 + 2. pending, then a clean report

    def test_01_unscanned_denied_then_clean_report_allows(self):
        ref = "%s/it/scan:v1" % self.registry.address
        r, _ = self.skopeo("it/scan:v1")
        self.assertNotEqual(r.returncode, 0, "skopeo pulled an unscanned image: " + r.stdout)
        self.assertIn("awaiting a scan", r.stderr)
        status, _, body = self.get("/v2/it/scan/manifests/v1")
        self.assert_denied(status, body, "GET it/scan:v1 unscanned", "awaiting a scan")

        cli_entry = self.entry_for(self.pending_cli(), self.scan.digest)
        self.assertIsNotNone(cli_entry, "pending ls does not list %s" % self.scan.digest)
        self.assertIn(ref, cli_entry["references"], cli_entry)
        api_entry = self.entry_for(self.pending_api(), self.scan.digest)
        self.assertIsNotNone(api_entry, "GET /v1/pending does not list %s" % self.scan.digest)
        self.assertIn(ref, api_entry["references"], api_entry)

        doc = trivy_report("%s/it/scan" % self.registry.address, self.scan.digest)
        severities = {v["Severity"] for res in doc["Results"] for v in res["Vulnerabilities"]}
        self.assertIn("MEDIUM", severities)
        self.assertFalse(severities & {"HIGH", "CRITICAL"})
        r = self.pg.cli("report", "import", self.write_report(doc, "trivy-scan.json"))
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["digest"], self.scan.digest, out)
        self.assertEqual(out["scanner"].lower(), "trivy", out)

        self.assertIsNone(self.entry_for(self.pending_cli(), self.scan.digest), "still pending after import")
        self.assertIsNone(self.entry_for(self.pending_api(), self.scan.digest), "still pending after import")
        r = self.pg.cli("report", "get", self.scan.digest)
        self.assertEqual(r.returncode, 0, r.stderr)
        counts = {k.upper(): v for k, v in json.loads(r.stdout)["counts"].items()}
        self.assertEqual(counts.get("MEDIUM"), 2, r.stdout)
        self.assertEqual(counts.get("HIGH", 0) + counts.get("CRITICAL", 0), 0, r.stdout)

        status, headers, body = self.get("/v2/it/scan/manifests/v1")
        self.assertEqual(status, 200, "GET it/scan:v1 after a clean report: %r" % body[:300])
        self.assertEqual(body, self.scan.manifest)
        warning = h.header(headers, "Warning")
        self.assertIsNotNone(warning, "no Warning header for a MEDIUM finding: %r" % headers)
        self.assertIn("MEDIUM", warning)

        r, out_dir = self.skopeo("it/scan:v1")
        self.assertEqual(r.returncode, 0, r.stderr)
        h.assert_dir_output(self, out_dir, self.scan)

    # ---------------------------------------------------------------- 3. CRITICAL, exceptions

    def test_02_critical_blocks_until_excepted_and_again_when_expired(self):
        doc = grype_report(self.crit.digest)
        self.assertTrue(any(m["vulnerability"]["severity"] == "Critical" for m in doc["matches"]))
        status, _, body = self.admin("POST", "/v1/reports", json.dumps(doc).encode())
        self.assertEqual(status, 200, body[:300])
        out = json.loads(body)
        self.assertEqual(out["digest"], self.crit.digest, out)

        status, _, body = self.get("/v2/it/crit/manifests/v1")
        self.assert_denied(status, body, "GET it/crit:v1 with a CRITICAL finding", CRITICAL_ID)
        r, _ = self.skopeo("it/crit:v1")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn(CRITICAL_ID, r.stderr)

        exception = {"id": CRITICAL_ID, "reason": "not reachable in this service", "who": "test@example.com"}
        self.addCleanup(self.restore_policy)
        self.pg.write_policy(self.policy_with([dict(exception, expires=rfc3339(datetime.timedelta(hours=2)))]))
        self.pg.reload()
        h.wait_until(lambda: self.get("/v2/it/crit/manifests/v1")[0] == 200, 10,
                     "the CVE exception to allow it/crit:v1", interval=0.1)
        status, _, body = self.get("/v2/it/crit/manifests/v1")
        self.assertEqual(body, self.crit.manifest)

        self.pg.write_policy(self.policy_with([dict(exception, expires=rfc3339(-datetime.timedelta(hours=2)))]))
        self.pg.reload()
        h.wait_until(lambda: self.get("/v2/it/crit/manifests/v1")[0] == 403, 10,
                     "the expired CVE exception to deny it/crit:v1 again", interval=0.1)
        status, _, body = self.get("/v2/it/crit/manifests/v1")
        self.assert_denied(status, body, "GET it/crit:v1 with an expired exception", CRITICAL_ID)

    def restore_policy(self):
        self.pg.write_policy(self.policy)
        self.pg.reload()

    # ---------------------------------------------------------------- 4. stale report

    def test_03_report_older_than_max_report_age_counts_as_unscanned(self):
        doc = trivy_report("%s/aged/app" % self.registry.address, self.old.digest,
                           scanned_at=rfc3339(-datetime.timedelta(days=2)))
        r = self.pg.cli("report", "import", self.write_report(doc, "trivy-old.json"))
        self.assertEqual(r.returncode, 0, r.stderr)
        status, _, body = self.get("/v2/aged/app/manifests/v1")
        message = self.assert_denied(status, body, "GET aged/app:v1 with a 2-day-old report", "unscanned")
        entry = self.entry_for(self.pending_api(), self.old.digest)
        self.assertIsNotNone(entry, "a digest with only a stale report is not queued for scanners")
        self.assertIn("%s/aged/app:v1" % self.registry.address, entry["references"], entry)
        self.assertIn("awaiting a scan", message,
                      "a stale report counts as no report, whose denial says the image awaits a scan")

    # ---------------------------------------------------------------- 5. hold

    def test_04_hold_released_by_a_report_or_denied_after_hold_s(self):
        results = {}

        def pull(name, path):
            started = time.monotonic()
            status, _, body = self.get(path, timeout=HOLD_S + 30)
            results[name] = (status, body, time.monotonic() - started)

        released = threading.Thread(target=pull, args=("ok", "/v2/hold/ok/manifests/v1"))
        timed_out = threading.Thread(target=pull, args=("none", "/v2/hold/none/manifests/v1"))
        released.start()
        timed_out.start()
        # The held GET has queued its digest: it is waiting in the gate now.
        h.wait_until(lambda: self.entry_for(self.pending_api(), self.hold_ok.digest), HOLD_S - 1,
                     "the held pull of hold/ok to queue its digest", interval=0.1)
        self.assertTrue(released.is_alive(), "the held GET returned before a report: %r" % (results.get("ok"),))
        doc = trivy_report("%s/hold/ok" % self.registry.address, self.hold_ok.digest)
        r = self.pg.cli("report", "import", self.write_report(doc, "trivy-hold.json"))
        self.assertEqual(r.returncode, 0, r.stderr)
        released.join(HOLD_S + 35)
        timed_out.join(HOLD_S + 35)

        status, body, _ = results["ok"]
        self.assertEqual(status, 200, "held GET after a report arrived: %r" % body[:300])
        self.assertEqual(body, self.hold_ok.manifest)

        status, body, took = results["none"]
        self.assert_denied(status, body, "held GET without a report", "awaiting a scan")
        self.assertGreaterEqual(took, HOLD_S - 1, "denied before the hold ran out")
        self.assertLessEqual(took, HOLD_S + 5, "held far longer than hold_s")

    # ---------------------------------------------------------------- 6. bad imports

    def test_05_bad_imports_refused(self):
        doc = trivy_report("%s/it/other" % self.registry.address, self.garbage_target.digest)
        path = self.write_report(doc, "trivy-mismatch.json")
        r = self.pg.cli("report", "import", path, "--digest", self.scan.digest)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertTrue(r.stderr.strip(), "no error message")
        self.assertEqual(r.stdout, "")
        r = self.pg.cli("report", "get", self.garbage_target.digest)
        self.assertNotEqual(r.returncode, 0, "a refused import stored a report: " + r.stdout)

        garbage = os.path.join(self.work.path, "garbage.json")
        with open(garbage, "wb") as f:
            f.write(b"\x00{\"SchemaVersion\": 2, \"Results\": [ not json at all")
        r = self.pg.cli("report", "import", garbage, "--digest", self.garbage_target.digest)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertEqual(r.stdout, "")

        status, headers, body = self.admin("POST", "/v1/reports?digest=" + self.garbage_target.digest,
                                           b"{\"matches\": [1, 2, {\"vulnerability\": ")
        self.assertEqual(status, 400, body[:300])
        self.assertIn("json", (h.header(headers, "Content-Type") or "").lower())
        error = json.loads(body)["error"]
        self.assertTrue(error, body)
        self.assertNotIn("\n", error)
        status, _, body = self.admin("GET", "/v1/reports/" + self.garbage_target.digest)
        self.assertEqual(status, 404, "a refused import stored a report: %r" % body[:300])

        # A report dated a day ahead would never grow too old for max_report_age.
        doc = trivy_report("%s/it/other" % self.registry.address, self.garbage_target.digest,
                           scanned_at=rfc3339(datetime.timedelta(days=1)))
        status, _, body = self.admin("POST", "/v1/reports", json.dumps(doc).encode())
        self.assertEqual(status, 400, body[:300])
        self.assertIn("ahead of this mirror's clock", json.loads(body)["error"])
        status, _, body = self.admin("GET", "/v1/reports/" + self.garbage_target.digest)
        self.assertEqual(status, 404, "a report from the future was stored: %r" % body[:300])


if __name__ == "__main__":
    unittest.main(verbosity=2)
