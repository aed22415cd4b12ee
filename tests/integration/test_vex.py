"""VEX documents setting vulnerability findings aside, with real components: a real
upstream (CNCF Distribution), pullgate with a scope that believes imported VEX and one
that does not, the Grype fixture's one Critical finding blocking both images, and an
OpenVEX document imported through the CLI (while the server runs) and the admin API.
Covers: not_affected lifts the block in the believing scope only (raw HTTP and
skopeo), explain and the audit line say why, a later affected statement blocks again
(affected never loosens), removal, and bad imports refused with one line."""
import copy
import datetime
import json
import os
import unittest

import harness as h

FIXTURES = os.path.join(h.REPO_ROOT, "tests", "fixtures", "reports")
CRITICAL_ID = "GHSA-xqr8-7jwr-rhp7"  # the Grype fixture's one Critical match, in requests 2.25.0


def rfc3339(delta=datetime.timedelta(0)):
    t = datetime.datetime.now(datetime.timezone.utc) + delta
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def grype_critical(digest):
    with open(os.path.join(FIXTURES, "grype-image.json"), encoding="utf-8") as f:
        doc = json.load(f)
    doc["source"]["target"]["manifestDigest"] = digest
    doc["source"]["target"]["repoDigests"] = []
    doc["descriptor"]["timestamp"] = rfc3339()
    doc["matches"] = [m for m in doc["matches"] if m["vulnerability"]["severity"] == "Critical"]
    return doc


def openvex(digests, status, when, doc_id="https://acme.example/vex/app-1"):
    """An OpenVEX v0.2.0 document as vexctl writes it: one statement about CRITICAL_ID
    in requests, for the images with these digests."""
    statement = {
        "vulnerability": {"name": CRITICAL_ID, "aliases": ["CVE-2023-32681"]},
        "products": [{"@id": "pkg:oci/app@" + d.replace(":", "%3A"),
                      "subcomponents": [{"@id": "pkg:pypi/requests@2.25.0"}]} for d in digests],
        "status": status,
        "timestamp": when,
    }
    if status == "not_affected":
        statement["justification"] = "vulnerable_code_not_in_execute_path"
        statement["impact_statement"] = "the proxy code path of requests is never called"
    if status == "affected":
        statement["action_statement"] = "upgrade requests to 2.31.0"
    return {"@context": "https://openvex.dev/ns/v0.2.0", "@id": doc_id, "author": "Acme PSIRT",
            "timestamp": when, "version": 1, "statements": [statement]}


class Vex(h.PullgateAlive, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        cls.app = h.seed_oci(cls.registry, repo="it/app", seed="vex-app")
        cls.plain = h.seed_oci(cls.registry, repo="plain/app", seed="vex-plain")
        policy = {
            "default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"},
            "scopes": [
                {"name": "vexed", "repository": "it/**",
                 "vulnerabilities": {"unscanned": "deny", "vex": {"imported": True}}},
                {"name": "plain", "repository": "plain/**", "vulnerabilities": {"unscanned": "deny"}},
            ],
        }
        cls.pg = h.GatedPullgate(cls.work.path, [h.upstream_entry(cls.registry)], policy).start()
        cls.addClassCleanup(cls.pg.close)
        cls.token = h.read_token(cls.pg)

    def get(self, path):
        return self.pg.request("GET", path, headers=[("Accept", a) for a in h.SKOPEO_ACCEPTS], timeout=30)

    def admin(self, method, path, body=None):
        return h.admin_request(self.pg, self.token, method, path, body=body)

    def write(self, doc, name):
        path = os.path.join(self.work.path, name)
        with open(path, "w") as f:
            json.dump(doc, f)
        return path

    def test_01_not_affected_sets_the_finding_aside_where_the_scope_believes_vex(self):
        for image in (self.app, self.plain):
            r = self.pg.cli("report", "import", self.write(grype_critical(image.digest), "grype.json"))
            self.assertEqual(r.returncode, 0, r.stderr)
        status, _, body = self.get("/v2/it/app/manifests/v1")
        h.assert_oci_denied(self, status, body, "it/app with a Critical finding", CRITICAL_ID)

        doc = openvex([self.app.digest, self.plain.digest], "not_affected", rfc3339(-datetime.timedelta(hours=1)))
        r = self.pg.cli("vex", "import", self.write(doc, "vex.json"), "--by", "psirt@acme.example")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(sorted(out["digests"]), sorted([self.app.digest, self.plain.digest]), out)
        self.assertEqual(out["name"], "https://acme.example/vex/app-1")
        self.assertEqual(out["statuses"], "1 not_affected")
        self.assertTrue(out["verdict_reset"], out)

        status, _, body = self.get("/v2/it/app/manifests/v1")
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(body, self.app.manifest)
        r, _ = h.skopeo_via_mirror(self.work.path, self.registry, self.pg, "it/app:v1", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        # The scope that does not believe VEX still refuses its image.
        status, _, body = self.get("/v2/plain/app/manifests/v1")
        h.assert_oci_denied(self, status, body, "plain/app: its scope has no vex", CRITICAL_ID)

        # Anyone can see why it was let through: explain and the audit line.
        r = self.pg.cli("explain", self.app.digest, "--repository", "it/app")
        self.assertEqual(r.returncode, 0, r.stderr)
        explained = json.loads(r.stdout)
        self.assertEqual(explained["decision"], "allow", explained)
        aside = [x for x in explained["reasons"] if x.startswith("set aside: " + CRITICAL_ID)]
        self.assertEqual(len(aside), 1, explained["reasons"])
        for text in ("not_affected per VEX from \"Acme PSIRT\"", "vulnerable_code_not_in_execute_path",
                     "imported by psirt@acme.example", "the proxy code path of requests is never called"):
            self.assertIn(text, aside[0])
        audit = self.pg.audit_records()
        line = next(e for e in reversed(audit) if e.get("digest") == self.app.digest and e.get("kind") == "manifest")
        self.assertEqual(line["decision"], "allow", line)
        self.assertTrue(any("not_affected per VEX" in reason for reason in line["reasons"]), line)

        r = self.pg.cli("vex", "get", self.app.digest)
        self.assertEqual(r.returncode, 0, r.stderr)
        filed = json.loads(r.stdout)
        self.assertEqual(filed["documents"][0]["statements"][0]["status"], "not_affected", filed)
        self.assertEqual(filed["documents"][0]["by"], "psirt@acme.example")

    def test_02_a_later_affected_statement_blocks_again_and_removal_too(self):
        for image in (self.app, self.plain):
            r = self.pg.cli("report", "import", self.write(grype_critical(image.digest), "grype.json"))
            self.assertEqual(r.returncode, 0, r.stderr)
        earlier = openvex([self.app.digest], "not_affected", rfc3339(-datetime.timedelta(hours=1)))
        r = self.pg.cli("vex", "import", self.write(earlier, "vex.json"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.get("/v2/it/app/manifests/v1")[0], 200)
        later = openvex([self.app.digest], "affected", rfc3339(), doc_id="https://acme.example/vex/app-2")
        status, _, body = self.admin("POST", "/v1/vex", body=json.dumps(later).encode())
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(json.loads(body)["digests"], [self.app.digest])
        status, _, body = self.get("/v2/it/app/manifests/v1")
        h.assert_oci_denied(self, status, body, "it/app after an affected statement", CRITICAL_ID)

        # Back to not_affected only, then nothing: the finding blocks again.
        status, _, body = self.admin("DELETE", "/v1/vex/%s?name=https://acme.example/vex/app-2" % self.app.digest)
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(self.get("/v2/it/app/manifests/v1")[0], 200)
        r = self.pg.cli("vex", "rm", self.app.digest)
        self.assertEqual(r.returncode, 0, r.stderr)
        status, _, body = self.get("/v2/it/app/manifests/v1")
        h.assert_oci_denied(self, status, body, "it/app with its VEX removed", CRITICAL_ID)
        status, _, body = self.admin("GET", "/v1/vex/%s" % self.app.digest)
        self.assertEqual(status, 404, body[:300])

    def test_03_bad_imports_are_refused_with_one_line(self):
        cases = [
            ("not-json.json", "{\"@context\": ", "not JSON"),
            ("no-digest.json", json.dumps(dict(openvex([], "not_affected", rfc3339()), statements=[
                dict(openvex([self.app.digest], "not_affected", rfc3339())["statements"][0],
                     products=[{"@id": "pkg:oci/app?repository_url=example.com/app"}])])),
             "no statement names an image by digest"),
            ("no-reason.json", json.dumps(openvex([self.app.digest], "not_affected", rfc3339())).replace(
                "\"justification\"", "\"note\"").replace("\"impact_statement\"", "\"other\""), "statements[0]"),
        ]
        for name, text, expected in cases:
            path = os.path.join(self.work.path, name)
            with open(path, "w") as f:
                f.write(text)
            r = self.pg.cli("vex", "import", path)
            self.assertEqual(r.returncode, 1, (name, r.stdout))
            self.assertIn(expected, r.stderr, name)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        r = self.pg.cli("vex", "import", self.write(openvex([self.app.digest], "not_affected", rfc3339()), "x.json"),
                        "--digest", self.plain.digest)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("no statement names " + self.plain.digest, r.stderr)
        status, _, body = self.admin("POST", "/v1/vex", body=b"[]")
        self.assertEqual(status, 400, body[:300])


if __name__ == "__main__":
    unittest.main()
