"""One gate for a fleet, with real components: a 3-member etcd cluster on loopback
(Debian's etcd-server), three pullgate replicas sharing it, nginx balancing clients
across them, a real upstream (CNCF Distribution), skopeo and containerd pulling
through nginx, and raw HTTP to each replica.

Covers: a verdict set with the CLI of one replica denies on all three (the time from
the CLI's return to the last replica's refusal is printed); an exception added
through the admin API of another allows on all; a report imported on a third
decides on all; with the etcd leader stopped writes still succeed; with all of etcd
stopped pulls of decided images go on, /readyz says degraded, writes fail with one
clear line and nothing lands, and a digest no replica has decided follows
fleet.on_store_down (refused by fail_closed replicas, served by a serve_cached one);
with etcd started again the replicas catch up without a restart."""
import json
import os
import time
import unittest

import fleet_harness as fh
import harness as h

ACCEPT = [("Accept", h.ALL_MANIFEST_ACCEPT)]
POLICY = {
    "default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"},
    "scopes": [
        {"name": "blocked", "repository": "it/blocked/**",
         "rules": [{"action": "deny", "repository": "it/blocked/**", "reason": "not vetted yet"}]},
        {"name": "scanned", "repository": "it/scanned/**", "vulnerabilities": {"unscanned": "deny"}},
    ],
}
FIXTURES = os.path.join(h.REPO_ROOT, "tests", "fixtures", "reports")


def clean_trivy_report(repo_ref, digest):
    """The Trivy fixture naming repo_ref@digest, scanned now, with no HIGH or CRITICAL."""
    with open(os.path.join(FIXTURES, "trivy-image.json"), encoding="utf-8") as f:
        doc = json.load(f)
    doc["CreatedAt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    doc["Metadata"]["RepoDigests"] = ["%s@%s" % (repo_ref, digest)]
    for result in doc["Results"]:
        result["Vulnerabilities"] = [v for v in result.get("Vulnerabilities") or []
                                     if v["Severity"] in ("MEDIUM", "LOW")]
    return doc


class Fleet(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not (fh.have_etcd() and fh.have_nginx()):  # a missing service fails the suite, never skips it
            raise RuntimeError("needs etcd-server and nginx-light: deploy/install-deps.sh --test")
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        reg = cls.registry
        cls.app = h.seed_oci(reg, repo="it/app", seed="fleet-app")
        cls.ok = h.seed_oci(reg, repo="it/ok", seed="fleet-ok")
        cls.blocked = h.seed_oci(reg, repo="it/blocked/app", seed="fleet-blocked")
        cls.scanned = h.seed_oci(reg, repo="it/scanned/app", seed="fleet-scanned")
        cls.leader_img = h.seed_oci(reg, repo="it/leader", seed="fleet-leader")
        cls.fresh = h.seed_oci(reg, repo="it/fresh", seed="fleet-fresh")

        cls.etcd = fh.EtcdCluster(cls.work.path, 3).start()
        cls.addClassCleanup(cls.etcd.close)
        cls.replicas = []
        for name, on_down in (("a", "fail_closed"), ("b", "fail_closed"), ("c", "serve_cached")):
            fleet = {"replica_id": "replica-" + name, "on_store_down": on_down,
                     "etcd": {"endpoints": cls.etcd.endpoints, "request_timeout_s": 2}}
            pg = h.GatedPullgate(cls.work.path, [h.upstream_entry(reg)], POLICY, extra={"fleet": fleet}).start()
            cls.addClassCleanup(pg.close)
            pg.token = h.read_token(pg)
            cls.replicas.append(pg)
        cls.a, cls.b, cls.c = cls.replicas
        for pg in cls.replicas:
            h.wait_until(lambda pg=pg: cls.ready(pg).get("status") == "ok", 20, "replica in step with etcd")
        cls.lb = fh.Nginx(cls.work.path, [pg.address for pg in cls.replicas]).start()
        cls.addClassCleanup(cls.lb.close)

    @staticmethod
    def ready(pg):
        status, _, body = pg.request("GET", "/readyz", timeout=5)
        return json.loads(body) if status == 200 else {}

    @staticmethod
    def manifest_status(pg, image):
        status, _, body = pg.request("GET", "/v2/%s/manifests/%s" % (image.repo, image.digest), headers=ACCEPT)
        return status, body

    def everywhere(self, image, status, timeout=10):
        """Waits until every replica answers `status` for image's manifest by digest;
        returns the seconds it took."""
        started = time.monotonic()
        for pg in self.replicas:
            h.wait_until(lambda pg=pg: self.manifest_status(pg, image)[0] == status, timeout,
                         "%s answering %d for %s" % (pg.config["fleet"]["replica_id"], status, image.repo),
                         interval=0.01)
        return time.monotonic() - started

    def test_1_clients_pull_through_the_balancer_and_a_verdict_set_on_one_replica_denies_on_all(self):
        r, out = h.skopeo_via_mirror(self.work.path, self.registry, self.lb, "it/app:v1")
        self.assertEqual(r.returncode, 0, r.stderr)
        h.assert_dir_output(self, out, self.app)
        ctr = h.Containerd().start()
        self.addCleanup(ctr.close)
        ctr.write_hosts(self.registry.address, self.lb.address)
        pulled = ctr.pull("fleet", "%s/it/ok:v1" % self.registry.address)
        self.assertEqual(pulled.returncode, 0, pulled.stderr)
        self.assertEqual(ctr.image_digest("fleet", "%s/it/ok:v1" % self.registry.address), self.ok.digest)
        for pg in self.replicas:  # every replica has decided both (and serves them)
            self.assertEqual(self.manifest_status(pg, self.app)[0], 200)
            self.assertEqual(self.manifest_status(pg, self.ok)[0], 200)

        set_ = self.a.cli("verdict", "set", self.app.digest, "deny", "--reason", "CVE-2026-0001 in the base image",
                          "--by", "secops", "--config", self.a.config_path)
        acked = time.monotonic()
        self.assertEqual(set_.returncode, 0, set_.stderr)
        took = self.everywhere(self.app, 403)
        print("\n  verdict set on replica-a -> denied on all three replicas in %.3f s" % (time.monotonic() - acked))
        self.assertLess(took, 10)
        status, body = self.manifest_status(self.c, self.app)
        self.assertIn("CVE-2026-0001 in the base image", h.oci_error(body)[1])
        r, _ = h.skopeo_via_mirror(self.work.path, self.registry, self.lb, "it/app:v1")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("CVE-2026-0001", r.stderr)
        # Every replica's audit line carries its id.
        for pg in self.replicas:
            lines = [l for l in pg.audit_records() if l.get("digest") == self.app.digest]
            self.assertTrue(lines)
            self.assertEqual({l["replica"] for l in lines}, {pg.config["fleet"]["replica_id"]})

    def test_2_an_exception_added_through_another_replicas_admin_api_allows_on_all(self):
        self.everywhere(self.blocked, 403)
        body = json.dumps({"id": "vetted-blocked-app", "digest": self.blocked.digest, "reason": "reviewed by secops",
                           "who": "alice", "expires_in_s": 3600}).encode()
        status, _, answer = h.admin_request(self.b, self.b.token, "POST", "/v1/exceptions", body=body)
        self.assertEqual(status, 201, answer)
        self.everywhere(self.blocked, 200)
        status, _, answer = h.admin_request(self.c, self.c.token, "POST", "/v1/exceptions", body=body)
        self.assertEqual(status, 409, answer)  # the id is the fleet's, taken
        status, _, answer = h.admin_request(self.a, self.a.token, "GET", "/v1/exceptions")
        self.assertIn("vetted-blocked-app", answer.decode())

    def test_3_a_report_imported_on_a_third_replica_decides_on_all(self):
        self.everywhere(self.scanned, 403)  # unscanned: denied, and queued
        status, _, answer = h.admin_request(self.a, self.a.token, "GET", "/v1/pending")
        self.assertIn(self.scanned.digest, answer.decode())
        report = os.path.join(self.work.path, "clean-report.json")
        with open(report, "w") as f:
            json.dump(clean_trivy_report("%s/it/scanned/app" % self.registry.address, self.scanned.digest), f)
        imported = self.c.cli("report", "import", report, "--config", self.c.config_path)
        self.assertEqual(imported.returncode, 0, imported.stderr)
        self.everywhere(self.scanned, 200)
        for pg in self.replicas:  # the fleet's queue no longer holds it
            h.wait_until(lambda pg=pg: self.scanned.digest not in h.admin_request(
                pg, pg.token, "GET", "/v1/pending")[2].decode(), 10, "the pending entry gone")
        # Imported VEX is not shared through etcd yet: refused on a replica, by the CLI
        # and the admin API alike, rather than decided on by that replica alone.
        vex = os.path.join(self.work.path, "vex.json")
        with open(vex, "w") as f:
            json.dump({"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://acme.example/vex/fleet",
                       "author": "Acme", "timestamp": "2026-12-01T00:00:00Z", "version": 1,
                       "statements": [{"vulnerability": {"name": "CVE-2026-0001"},
                                       "products": [{"@id": self.scanned.digest}], "status": "not_affected",
                                       "justification": "component_not_present"}]}, f)
        refused = self.c.cli("vex", "import", vex, "--config", self.c.config_path)
        self.assertEqual(refused.returncode, 1, refused.stdout)
        self.assertIn("not shared through the fleet store yet", refused.stderr)
        with open(vex, "rb") as f:
            status, _, answer = h.admin_request(self.a, self.a.token, "POST", "/v1/vex", body=f.read())
        self.assertEqual(status, 400, answer[:300])
        self.assertIn(b"not shared through the fleet store yet", answer)

    def test_4_with_the_etcd_leader_stopped_writes_still_succeed(self):
        self.everywhere(self.leader_img, 200)
        leader = self.etcd.leader()
        leader.stop()
        try:
            set_ = self.b.cli("verdict", "set", self.leader_img.digest, "deny", "--reason", "leader test",
                              "--config", self.b.config_path, timeout=60)
            self.assertEqual(set_.returncode, 0, set_.stderr)
            self.everywhere(self.leader_img, 403, timeout=20)
        finally:
            leader.start(self.etcd.initial_cluster, "existing")
            h.wait_until(leader.healthy, 30, "the old leader back")
        for pg in self.replicas:
            h.wait_until(lambda pg=pg: self.ready(pg).get("status") == "ok", 20, "replica in step again")

    def test_5_with_all_of_etcd_stopped_decided_images_are_served_writes_fail_and_unknown_digests_follow_the_config(self):
        self.etcd.stop_all()
        try:
            for pg in self.replicas:
                state = h.wait_until(lambda pg=pg: (lambda r: r if r.get("status") == "degraded" else None)(
                    self.ready(pg)), 20, "readyz degraded")
                self.assertFalse(state["fleet"]["in_step"])
                self.assertIn("fleet.on_store_down", state["reason"])
                # Decisions made before go on.
                self.assertEqual(self.manifest_status(pg, self.ok)[0], 200)
                self.assertEqual(self.manifest_status(pg, self.app)[0], 403)
                status, _, metrics = h.admin_request(pg, pg.token, "GET", "/metrics")
                self.assertIn("pullgate_fleet_in_step 0", metrics.decode())
            # Writes fail with one line, and land nowhere.
            set_ = self.a.cli("verdict", "set", self.ok.digest, "deny", "--config", self.a.config_path, timeout=60)
            self.assertEqual(set_.returncode, 1)
            self.assertIn("the fleet store (etcd) did not take the verdict", set_.stderr)
            self.assertIn("nothing was written", set_.stderr)
            self.assertEqual(len(set_.stderr.strip().splitlines()), 1, set_.stderr)
            self.assertEqual(self.manifest_status(self.a, self.ok)[0], 200)
            body = json.dumps({"decision": "deny", "reason": "x", "by": "y"}).encode()
            status, _, answer = h.admin_request(self.b, self.b.token, "PUT", "/v1/verdicts/" + self.ok.digest,
                                                body=body, timeout=60)
            self.assertEqual(status, 503, answer)
            self.assertIn("fleet store", answer.decode())
            # A digest no replica has decided: fail_closed refuses, serve_cached decides.
            status, body = self.manifest_status(self.a, self.fresh)
            self.assertEqual(status, 403)
            self.assertIn("fleet.on_store_down: fail_closed", h.oci_error(body)[1])
            self.assertEqual(self.manifest_status(self.c, self.fresh)[0], 200)
            self.assertTrue(any("fleet: etcd out of reach" in str(e.get("msg", "")) for e in self.a.log_events()),
                            self.a.stderr())
        finally:
            self.etcd.start()
        # Back: every replica catches up without a restart, and writes reach all again.
        for pg in self.replicas:
            h.wait_until(lambda pg=pg: self.ready(pg).get("status") == "ok", 30, "replica in step again")
        self.everywhere(self.fresh, 200)
        set_ = self.c.cli("verdict", "set", self.fresh.digest, "deny", "--config", self.c.config_path)
        self.assertEqual(set_.returncode, 0, set_.stderr)
        self.everywhere(self.fresh, 403)
        for pg in self.replicas:
            self.assertTrue(pg.alive())


if __name__ == "__main__":
    unittest.main()
