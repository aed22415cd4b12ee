"""The policy document kept in etcd (fleet.policy "etcd"), with real components: an etcd
member on loopback (Debian's etcd-server), two pullgate replicas reading their policy
from it, a real upstream (CNCF Distribution), skopeo and raw HTTP.

Covers: before any policy is pushed a replica denies every image and says why;
`pullgate policy push` on one replica's config puts the policy in force on both
(decisions and pullgate_policy_info follow within a second; the time is printed); a
push that does not validate, or names a key file, is refused with one line per
mistake and changes nothing; SIGHUP does not replace etcd's policy; a replica
restarted while etcd is down starts with its kept copy (not the waiting policy);
a config naming both a policy file and fleet.policy "etcd" is refused."""
import json
import os
import re
import signal
import time
import unittest

import fleet_harness as fh
import harness as h

ACCEPT = [("Accept", h.ALL_MANIFEST_ACCEPT)]
FIRST = {
    "default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"},
    "scopes": [{"name": "blocked", "repository": "it/blocked/**",
                "rules": [{"action": "deny", "repository": "it/blocked/**", "reason": "blocked by the fleet policy"}]}],
}
SECOND = {
    "default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"},
    "scopes": [{"name": "app", "repository": "it/app",
                "rules": [{"action": "deny", "repository": "it/app", "reason": "the second fleet policy denies it/app"}]}],
}


class FleetPolicy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not (fh.have_etcd()):  # a missing service fails the suite, never skips it
            raise RuntimeError("needs etcd-server and nginx-light: deploy/install-deps.sh --test")
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        reg = cls.registry
        cls.app = h.seed_oci(reg, repo="it/app", seed="fleet-policy-app")
        cls.blocked = h.seed_oci(reg, repo="it/blocked/app", seed="fleet-policy-blocked")
        cls.etcd = fh.EtcdCluster(cls.work.path, 1).start()
        cls.addClassCleanup(cls.etcd.close)
        cls.replicas = []
        for name in ("a", "b"):
            fleet = {"replica_id": "replica-" + name, "policy": "etcd", "on_store_down": "serve_cached",
                     "etcd": {"endpoints": cls.etcd.endpoints, "request_timeout_s": 2}}
            pg = h.Pullgate(cls.work.path, [h.upstream_entry(reg)], extra={"fleet": fleet}).start()
            cls.addClassCleanup(pg.close)
            pg.token = h.read_token(pg)
            cls.replicas.append(pg)
        cls.a, cls.b = cls.replicas

    def status(self, pg, image):
        status, _, body = pg.request("GET", "/v2/%s/manifests/%s" % (image.repo, image.digest), headers=ACCEPT)
        return status, body

    def policy_version(self, pg):
        status, _, body = h.admin_request(pg, pg.token, "GET", "/metrics")
        self.assertEqual(status, 200)
        match = re.search(r'pullgate_policy_info\{version="([^"]+)"\}', body.decode())
        return match.group(1) if match else None

    def write(self, name, doc):
        path = os.path.join(self.work.path, name)
        with open(path, "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
        return path

    def push(self, path, pg=None):
        return h.pullgate_cli("policy", "push", path, "--config", (pg or self.a).config_path)

    def everywhere(self, image, status, timeout=10):
        for pg in self.replicas:
            h.wait_until(lambda pg=pg: self.status(pg, image)[0] == status, timeout,
                         "%s answering %d for %s" % (pg.config["fleet"]["replica_id"], status, image.repo),
                         interval=0.01)

    def test_1_nothing_is_served_before_the_first_push_then_everything_follows_it(self):
        for pg in self.replicas:
            status, body = self.status(pg, self.app)
            self.assertEqual(status, 403, body[:300])
            self.assertIn("has not received its policy from the fleet store", h.oci_error(body)[1])
        first = self.write("first.json", FIRST)
        r = self.push(first)
        pushed = time.monotonic()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("pushed, version", r.stdout)
        version = r.stdout.split("version ")[1].split()[0]
        self.everywhere(self.app, 200)
        self.everywhere(self.blocked, 403)
        print("\n  policy pushed with replica-a's config -> in force on both replicas in %.3f s"
              % (time.monotonic() - pushed))
        status, body = self.status(self.b, self.blocked)
        self.assertIn("blocked by the fleet policy", h.oci_error(body)[1])
        for pg in self.replicas:
            self.assertEqual(self.policy_version(pg), version)
            with open(os.path.join(pg.data_dir, "fleet-policy.json")) as f:
                self.assertEqual(json.load(f), FIRST)
        r, _ = h.skopeo_via_mirror(self.work.path, self.registry, self.b, "it/app:v1")
        self.assertEqual(r.returncode, 0, r.stderr)
        # The command line on a replica's data directory decides under the fleet's
        # policy that replica runs, not the built-in allow-all one.
        r = h.pullgate_cli("explain", "%s/%s@%s" % (self.registry.address, self.blocked.repo, self.blocked.digest),
                           "--data", self.b.data_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        answer = json.loads(r.stdout)
        self.assertEqual(answer["decision"], "deny")
        self.assertEqual((answer["policy"]["decided_under"], answer["policy"]["version"]), ("server", version))
        self.assertEqual(answer["policy"]["server"]["source"], "etcd")
        self.assertEqual(r.stderr, "")

    def test_2_a_push_that_does_not_validate_changes_nothing(self):
        before = self.policy_version(self.a)
        broken = self.write("broken.json", {"default": {"mode": "sideways"}, "scopes": "none"})
        r = self.push(broken, self.b)
        self.assertEqual(r.returncode, 1)
        lines = [l for l in r.stderr.splitlines() if l]
        self.assertGreaterEqual(len(lines), 2, r.stderr)
        self.assertTrue(all(l.startswith(broken + ": ") for l in lines), r.stderr)
        keyed = self.write("keyed.json", {"keys": {"release": {"pem_file": "release.pub"}}})
        r = self.push(keyed)
        self.assertEqual(r.returncode, 1)
        self.assertIn("keys.release.pem_file: a policy kept in etcd carries its keys inline", r.stderr)
        time.sleep(0.5)
        for pg in self.replicas:
            self.assertEqual(self.policy_version(pg), before)
        # SIGHUP reloads a policy file; etcd's stays in force.
        self.a.proc.send_signal(signal.SIGHUP)
        h.wait_until(lambda: "the policy is the fleet's" in self.a.stderr(), 10, "the reload's log line")
        self.assertEqual(self.policy_version(self.a), before)

    def test_3_a_replica_restarted_without_etcd_starts_with_its_kept_copy(self):
        second = self.write("second.json", SECOND)
        r = self.push(second)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.everywhere(self.app, 403)
        self.everywhere(self.blocked, 200)
        version = self.policy_version(self.b)
        self.b.stop()
        self.etcd.stop_all()
        try:
            self.b.start()
            self.assertEqual(self.policy_version(self.b), version)
            status, body = self.status(self.b, self.app)
            self.assertEqual(status, 403)
            self.assertIn("the second fleet policy denies it/app", h.oci_error(body)[1])
            self.assertEqual(self.status(self.b, self.blocked)[0], 200)
        finally:
            self.etcd.start()
        h.wait_until(lambda: json.loads(self.b.request("GET", "/readyz")[2]).get("status") == "ok", 30,
                     "replica-b in step again")

    def test_4_a_policy_file_and_the_fleets_policy_exclude_each_other(self):
        config = dict(self.a.config)
        config["gate"] = {"policy_file": self.write("file-policy.json", FIRST)}
        path = self.write("both.json", config)
        r = h.pullgate_cli("check-config", path)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('gate.policy_file: not with fleet.policy "etcd"', r.stderr + r.stdout)


if __name__ == "__main__":
    unittest.main()
