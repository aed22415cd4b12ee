"""Scanners sharing a fleet's pending queue, with real components: a 3-member etcd
cluster on loopback (Debian's etcd-server), three pullgate replicas sharing it, a real
upstream (CNCF Distribution), two scanner workers (deploy/scanner/pullgate-scan-worker)
each talking to another replica's admin listener, and tests/integration/fake_trivy.py
standing in for trivy (it really pulls the image through the scanner pull API).

Covers: images queued on different replicas are in every replica's queue; two
workers running at once scan every pending digest exactly once (claims are etcd
leases, taken in the transaction that checks the digest is still queued) and every
replica then serves the images; a worker killed (SIGKILL) mid-scan leaves its claim,
which the other worker respects until the lease expires and then scans the digest
itself; the claim API's refusals (not pending, a claim that is not yours, bad fields)."""
import collections
import json
import os
import signal
import subprocess
import time
import unittest

import fleet_harness as fh
import harness as h

WORKER = os.path.join(h.REPO_ROOT, "deploy", "scanner", "pullgate-scan-worker")
FAKE_TRIVY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_trivy.py")
ACCEPT = [("Accept", h.ALL_MANIFEST_ACCEPT)]
POLICY = {
    "default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"},
    "scopes": [{"name": "scanned", "repository": "it/**", "vulnerabilities": {"unscanned": "deny"}}],
}
CLAIM_TTL_S = 5  # the shortest a worker takes: how long a dead worker's digest waits


class FleetScanners(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not (fh.have_etcd()):  # a missing service fails the suite, never skips it
            raise RuntimeError("needs etcd-server and nginx-light: deploy/install-deps.sh --test")
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        reg = cls.registry
        cls.shared = [h.seed_oci(reg, repo="it/shared%d" % i, seed="fleet-scan-%d" % i) for i in range(6)]
        cls.killed = h.seed_oci(reg, repo="it/killed", seed="fleet-scan-killed")
        cls.etcd = fh.EtcdCluster(cls.work.path, 3).start()
        cls.addClassCleanup(cls.etcd.close)
        cls.replicas = []
        for name in ("a", "b", "c"):
            fleet = {"replica_id": "replica-" + name, "etcd": {"endpoints": cls.etcd.endpoints}}
            pg = h.GatedPullgate(cls.work.path, [h.upstream_entry(reg)], POLICY, extra={"fleet": fleet}).start()
            cls.addClassCleanup(pg.close)
            pg.token = h.read_token(pg)
            pg.scanner_token_path = os.path.join(pg.data_dir, "scanner.token")
            pg.scanner_token = h.read_token(pg, "scanner.token")
            cls.replicas.append(pg)
        cls.a, cls.b, cls.c = cls.replicas
        for pg in cls.replicas:
            h.wait_until(lambda pg=pg: cls.ready(pg).get("status") == "ok", 20, "replica in step with etcd")
        cls.runs = 0

    @staticmethod
    def ready(pg):
        status, _, body = pg.request("GET", "/readyz", timeout=5)
        return json.loads(body) if status == 200 else {}

    def manifest_status(self, pg, image, ref=None):
        status, _, body = pg.request("GET", "/v2/%s/manifests/%s" % (image.repo, ref or image.digest), headers=ACCEPT)
        return status, body

    def pending(self, pg):
        status, _, body = h.admin_request(pg, pg.token, "GET", "/v1/pending")
        self.assertEqual(status, 200, body[:300])
        return {e["digest"]: e for e in json.loads(body)["pending"]}

    def queue(self, image, through):
        """A pull through `through` (refused: unscanned) queues the digest; every replica
        then has it in its queue."""
        status, body = self.manifest_status(through, image, image.tag)
        self.assertEqual(status, 403, body[:300])
        self.assertIn("awaiting a scan", h.oci_error(body)[1])
        for pg in self.replicas:
            h.wait_until(lambda pg=pg: image.digest in self.pending(pg), 10,
                         "%s queued on %s" % (image.repo, pg.config["fleet"]["replica_id"]))

    def worker(self, pg, holder, fake_log, *extra, **fake_env):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_TRIVY_", "TRIVY_"))}
        env["FAKE_TRIVY_LOG"] = fake_log
        env["FAKE_TRIVY_KEEP"] = "MEDIUM,LOW"  # a clean report: the image is served after it
        env.update(fake_env)
        argv = [WORKER, "--admin", "http://" + pg.admin_address, "--token-file", pg.scanner_token_path,
                "--trivy", FAKE_TRIVY, "--once", "--holder", holder, "--claim-ttl", str(CLAIM_TTL_S)] + list(extra)
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env, start_new_session=True)

    def finish(self, proc, timeout=120):
        out, err = proc.communicate(timeout=timeout)
        lines = []
        for line in err.splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                self.fail("the worker logged a line that is not JSON: %r\n%s" % (line, err))
        return proc.returncode, lines

    def fake_log(self):
        type(self).runs += 1
        return os.path.join(self.work.path, "fake-trivy-fleet-%d.log" % self.runs)

    @staticmethod
    def scans(path):
        """digest -> number of fake trivy runs that pulled it."""
        counts = collections.Counter()
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    record = json.loads(line)
                    if record.get("pulled"):
                        counts[record["argv"][-1].rsplit("@", 1)[1]] += 1
        return counts

    def test_1_two_workers_scan_every_pending_digest_once(self):
        for i, image in enumerate(self.shared):
            self.queue(image, self.replicas[i % 3])
        log = self.fake_log()
        one = self.worker(self.a, "worker-1", log, "--limit", "20")
        two = self.worker(self.b, "worker-2", log, "--limit", "20")
        rc_one, lines_one = self.finish(one)
        rc_two, lines_two = self.finish(two)
        self.assertEqual((rc_one, rc_two), (0, 0), (lines_one, lines_two))
        counts = self.scans(log)
        for image in self.shared:
            self.assertEqual(counts[image.digest], 1, "%s scanned %d times: %r" % (image.repo, counts[image.digest],
                                                                                  (lines_one, lines_two)))
        by_one = {l["digest"] for l in lines_one if l.get("msg") == "scanned"}
        by_two = {l["digest"] for l in lines_two if l.get("msg") == "scanned"}
        self.assertFalse(by_one & by_two)
        self.assertEqual(by_one | by_two, {i.digest for i in self.shared})
        print("\n  two workers, six pending digests: worker-1 scanned %d, worker-2 scanned %d, none twice"
              % (len(by_one), len(by_two)))
        for pg in self.replicas:
            for image in self.shared:
                h.wait_until(lambda pg=pg, image=image: self.manifest_status(pg, image)[0] == 200, 10,
                             "%s served by %s after its report" % (image.repo, pg.config["fleet"]["replica_id"]))
            pending = self.pending(pg)
            self.assertFalse(any(i.digest in pending for i in self.shared), pending)

    def test_2_a_worker_killed_mid_scan_leaves_the_digest_to_the_other_after_its_lease(self):
        image = self.killed
        self.queue(image, self.c)
        hung = self.worker(self.a, "worker-hung", self.fake_log(), "--timeout", "300", FAKE_TRIVY_FAIL="hang")
        try:
            h.wait_until(lambda: self.pending(self.c).get(image.digest, {}).get("claimed_by") == "worker-hung", 30,
                         "the hanging worker's claim seen on replica-c")
        finally:
            os.killpg(hung.pid, signal.SIGKILL)  # the worker and its trivy, no goodbye
            hung.communicate()
        killed_at = time.monotonic()

        log = self.fake_log()
        rc, lines = self.finish(self.worker(self.b, "worker-2", log))
        self.assertEqual(rc, 0, lines)
        self.assertEqual(self.scans(log)[image.digest], 0, lines)
        self.assertTrue(any(l.get("digest") == image.digest and l.get("msg") == "left to another worker"
                            for l in lines), lines)
        self.assertEqual(self.manifest_status(self.b, image)[0], 403)

        h.wait_until(lambda: "claimed_by" not in self.pending(self.b).get(image.digest, {}), CLAIM_TTL_S + 15,
                     "the dead worker's claim expiring")
        expired_after = time.monotonic() - killed_at
        rc, lines = self.finish(self.worker(self.b, "worker-2", log))
        self.assertEqual(rc, 0, lines)
        self.assertEqual(self.scans(log)[image.digest], 1, lines)
        print("\n  worker killed mid-scan: its claim expired %.1f s later (TTL %d s); the other worker scanned it"
              % (expired_after, CLAIM_TTL_S))
        for pg in self.replicas:
            h.wait_until(lambda pg=pg: self.manifest_status(pg, image)[0] == 200, 10, "served after the report")

    def test_3_the_claim_api_refuses_what_is_not_a_claim(self):
        def call(method, path, body=None, pg=None):
            pg = pg or self.a
            data = json.dumps(body).encode() if body is not None else None
            status, _, answer = h.admin_request(pg, pg.scanner_token, method, path, body=data)
            return status, json.loads(answer)

        never = "sha256:" + "e" * 64
        status, answer = call("POST", "/v1/pending/claims", {"digest": never, "holder": "w"})
        self.assertEqual(status, 404, answer)
        self.assertIn("not pending", answer["error"])
        for body, text in (({"digest": "sha256:1", "holder": "w"}, "digest"),
                           ({"digest": never, "holder": ""}, "holder"),
                           ({"digest": never, "holder": "w", "ttl_s": 2}, "ttl_s"),
                           ({"digest": never, "holder": "w", "ttl_s": "60"}, "ttl_s")):
            status, answer = call("POST", "/v1/pending/claims", body)
            self.assertEqual(status, 400, (body, answer))
            self.assertIn(text, answer["error"])

        image = h.seed_oci(self.registry, repo="it/claims", seed="fleet-scan-claims")
        self.queue(image, self.a)
        status, mine = call("POST", "/v1/pending/claims", {"digest": image.digest, "holder": "w-1", "ttl_s": 30})
        self.assertEqual(status, 201, mine)
        status, answer = call("POST", "/v1/pending/claims", {"digest": image.digest, "holder": "w-2"}, pg=self.c)
        self.assertEqual(status, 409, answer)
        self.assertEqual(answer["claimed_by"], "w-1")
        path = "/v1/pending/claims/" + image.digest
        status, answer = call("POST", path + "/renew", {"claim": "999"}, pg=self.b)
        self.assertEqual(status, 404, answer)
        status, answer = call("POST", path + "/renew", {"claim": mine["claim"]}, pg=self.b)  # any replica
        self.assertEqual(status, 200, answer)
        self.assertGreater(answer["ttl_s"], 0)
        status, answer = call("DELETE", path)
        self.assertEqual(status, 400, answer)
        status, answer = call("DELETE", path + "?claim=" + mine["claim"], pg=self.c)
        self.assertEqual(status, 200, answer)
        status, answer = call("DELETE", path + "?claim=" + mine["claim"])
        self.assertEqual(status, 404, answer)
        status, answer = call("POST", "/v1/pending/claims", {"digest": image.digest, "holder": "w-2"}, pg=self.c)
        self.assertEqual(status, 201, answer)


if __name__ == "__main__":
    unittest.main()
