"""The example policy `bash deploy/run.sh` starts with (deploy/example-policy.json),
against a real upstream (CNCF Distribution 2.8 on loopback) standing in for Docker Hub
under the name docker.io: an Ubuntu release before 20.04 is refused by tag and its
layers too, with the example's reason; a current release is served; `pullgate
explain` on the data directory alone says why, under the policy the server runs."""
import json
import os
import unittest

import harness as h

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLE = os.path.join(REPO_ROOT, "deploy", "example-policy.json")


class ExamplePolicy(h.PullgateAlive, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        reg = cls.registry
        cls.old = h.push_image(reg, h.build_image("library/ubuntu", "18.04", [h.small_layer("example-old")],
                                                  label="old"))
        cls.new = h.push_image(reg, h.build_image("library/ubuntu", "24.04", [h.small_layer("example-new")],
                                                  label="new"))
        with open(EXAMPLE) as f:
            text = f.read()
        cls.pg = h.GatedPullgate(cls.work.path, [h.upstream_entry(reg, name="docker.io")], text).start()
        cls.addClassCleanup(cls.pg.close)

    def test_the_example_refuses_an_old_release_and_serves_a_current_one(self):
        accept = [("Accept", h.ALL_MANIFEST_ACCEPT)]
        status, _, body = self.pg.request("GET", "/v2/library/ubuntu/manifests/18.04", headers=accept)
        h.assert_oci_denied(self, status, body, "ubuntu:18.04",
                            "Ubuntu releases before 20.04 are past their standard support")
        status, _, _ = self.pg.request("GET", "/v2/library/ubuntu/blobs/" + self.old.layers[0].digest)
        self.assertEqual(status, 403)
        status, _, body = self.pg.request("GET", "/v2/library/ubuntu/manifests/24.04", headers=accept)
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(h.sha256_digest(body), self.new.digest)

        r = h.pullgate_cli("explain", "docker.io/library/ubuntu:18.04", "--data", self.pg.data_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        answer = json.loads(r.stdout)
        self.assertEqual((answer["decision"], answer["scope"]), ("deny", "hub-official-images"))
        self.assertEqual(answer["policy"]["decided_under"], "server")
        self.assertEqual(r.stderr, "")


if __name__ == "__main__":
    unittest.main()
