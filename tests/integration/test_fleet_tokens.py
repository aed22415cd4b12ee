"""Client tokens kept in the fleet store (fleet.tokens "etcd", issue 14), with real
components: an etcd member on loopback (Debian's etcd-server), two pullgate replicas
authenticating from it, a real upstream (CNCF Distribution), skopeo and raw HTTP.

Covers: with no token in etcd every client is refused (401 with the challenge);
`pullgate token new` on one replica's config lets the token in on both (the time
it takes is printed), as Bearer, as Basic and through skopeo --src-creds, while the
replicas' copies hold its hash and never the token; a name has one token;
`token ls` and `token rm` (the removal refuses the token on both); a key written
by hand that is not a hash is refused alone, the others staying in force; a replica
restarted while etcd is down authenticates from its copy."""
import base64
import os
import subprocess
import time
import unittest

import fleet_harness as fh
import harness as h

ACCEPT = [("Accept", h.ALL_MANIFEST_ACCEPT)]


class FleetTokens(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not fh.have_etcd():  # a missing service fails the suite, never skips it
            raise RuntimeError("needs etcd-server: deploy/install-deps.sh --test")
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        cls.app = h.seed_oci(cls.registry, repo="it/app", seed="fleet-tokens-app")
        cls.etcd = fh.EtcdCluster(cls.work.path, 1).start()
        cls.addClassCleanup(cls.etcd.close)
        cls.replicas = []
        for name in ("a", "b"):
            fleet = {"replica_id": "replica-" + name, "tokens": "etcd", "on_store_down": "serve_cached",
                     "etcd": {"endpoints": cls.etcd.endpoints, "request_timeout_s": 2}}
            pg = h.Pullgate(cls.work.path, [h.upstream_entry(cls.registry)], extra={"fleet": fleet}).start()
            cls.addClassCleanup(pg.close)
            cls.replicas.append(pg)
        cls.a, cls.b = cls.replicas

    def setUp(self):
        for pg in self.replicas:
            self.assertTrue(pg.alive(), "pullgate died before this test: " + pg.stderr())

    def token(self, command, *args, pg=None):
        return h.pullgate_cli("token", command, *args, "--config", (pg or self.a).config_path)

    def status(self, pg, *credentials):
        headers = list(ACCEPT) + list(credentials)
        status, response_headers, body = pg.request("GET", "/v2/%s/manifests/%s" % (self.app.repo, self.app.digest),
                                                    headers=headers)
        return status, response_headers, body

    @staticmethod
    def basic(user, token):
        return ("Authorization", "Basic " + base64.b64encode(("%s:%s" % (user, token)).encode()).decode())

    @staticmethod
    def bearer(token):
        return ("Authorization", "Bearer " + token)

    def everywhere(self, credentials, status, timeout=15):
        for pg in self.replicas:
            h.wait_until(lambda pg=pg: self.status(pg, credentials)[0] == status, timeout,
                         "%s answering %d" % (pg.config["fleet"]["replica_id"], status), interval=0.01)

    def etcd_put(self, key, value):
        b64 = lambda s: base64.b64encode(s.encode()).decode()
        fh._post_json(self.etcd.endpoints[0] + "/v3/kv/put", {"key": b64("/pullgate/" + key), "value": b64(value)})

    def test_1_a_token_made_on_one_replica_lets_its_holder_in_on_both_until_removed(self):
        for pg in self.replicas:
            status, headers, body = self.status(pg)
            self.assertEqual(status, 401, body[:300])
            self.assertEqual(dict((k.lower(), v) for k, v in headers).get("www-authenticate"),
                             'Basic realm="pullgate"')
            self.assertEqual(self.status(pg, self.bearer("pgt_not-a-token"))[0], 401)
        r = self.token("new", "ci")
        made = time.monotonic()
        self.assertEqual(r.returncode, 0, r.stderr)
        token = r.stdout.strip()
        self.assertTrue(token.startswith("pgt_"), r.stdout)
        self.assertIn("added to the fleet store (etcd)", r.stderr)
        self.everywhere(self.bearer(token), 200)
        print("\n  token made with replica-a's config -> accepted on both replicas in %.3f s"
              % (time.monotonic() - made))
        self.assertEqual(self.status(self.b, self.basic("ci", token))[0], 200)
        self.assertEqual(self.status(self.b, self.basic("ops", token))[0], 401, "the token is ci's, not ops'")
        out = os.path.join(self.work.path, "skopeo-out")
        r = subprocess.run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--src-creds",
                            "ci:" + token, "docker://%s/it/app:v1" % self.b.address, "dir:" + out],
                           capture_output=True, text=True, timeout=120, env=dict(os.environ, HOME=self.work.path))
        self.assertEqual(r.returncode, 0, r.stderr + self.b.stderr())
        h.assert_dir_output(self, out, self.app)
        for pg in self.replicas:
            with open(os.path.join(pg.data_dir, "fleet-tokens")) as f:
                copy = f.read()
            self.assertIn("\nci sha256:", copy)
            self.assertNotIn(token, copy, "the copy holds hashes, never tokens")
            self.assertEqual(os.stat(os.path.join(pg.data_dir, "fleet-tokens")).st_mode & 0o777, 0o600)

        again = self.token("new", "ci", pg=self.b)
        self.assertEqual(again.returncode, 1)
        self.assertEqual(again.stdout, "")
        self.assertIn("the fleet store (etcd) already has a token for ci", again.stderr)
        self.assertEqual(self.status(self.a, self.bearer(token))[0], 200, "the first token stays")
        r = self.token("ls", pg=self.b)
        self.assertEqual((r.returncode, r.stdout), (0, "ci\n"), r.stderr)

        r = self.token("rm", "ci", pg=self.b)
        removed = time.monotonic()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.everywhere(self.bearer(token), 401)
        print("  token removed with replica-b's config -> refused on both replicas in %.3f s"
              % (time.monotonic() - removed))
        r = self.token("rm", "ci")
        self.assertEqual(r.returncode, 1)
        self.assertIn("the fleet store (etcd) has no token for ci", r.stderr)

    def test_2_a_bad_key_is_refused_alone(self):
        r = self.token("new", "release-bot")
        self.assertEqual(r.returncode, 0, r.stderr)
        token = r.stdout.strip()
        self.everywhere(self.bearer(token), 200)
        self.etcd_put("tokens/eve", "pgt_the-token-itself-not-its-hash")
        for pg in self.replicas:
            h.wait_until(lambda pg=pg: any(e.get("error", "").startswith(
                "tokens/eve: the hash must be sha256:<64 lowercase hex digits>") for e in pg.log_events()),
                15, "the refusal of tokens/eve in the log")
            self.assertEqual(self.status(pg, self.bearer(token))[0], 200, "the good token stays in force")
            self.assertEqual(self.status(pg, self.basic("eve", "pgt_the-token-itself-not-its-hash"))[0], 401)

    def test_3_a_replica_restarted_without_etcd_authenticates_from_its_copy(self):
        r = self.token("new", "node-7")
        self.assertEqual(r.returncode, 0, r.stderr)
        token = r.stdout.strip()
        self.everywhere(self.bearer(token), 200)
        self.b.stop()
        self.etcd.stop_all()
        before = len(self.b.log_events())
        try:
            self.b.start()
            self.assertEqual(self.status(self.b, self.basic("node-7", token))[0], 200)
            self.assertEqual(self.status(self.b, self.bearer("pgt_not-a-token"))[0], 401)
            started = [e for e in self.b.log_events()[before:] if e.get("msg") == "client authentication"]
            self.assertEqual([(e["tokens_from"], e["tokens"]) for e in started], [("etcd", 2)])
        finally:
            self.etcd.start()
        h.wait_until(lambda: any(e.get("msg") == "client tokens from the fleet store (etcd) in force"
                                 for e in self.b.log_events()[before:]), 30,
                     "replica-b reading the fleet's tokens again")


if __name__ == "__main__":
    unittest.main()
