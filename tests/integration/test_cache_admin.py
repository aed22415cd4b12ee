"""The cache seen and trimmed by hand: GET /v1/cache, `pullgate cache ls`, POST
/v1/cache/evict and `pullgate cache evict`. Two images pulled with skopeo from a real
upstream share a base layer; the listing names both with their tags and sizes, the
CLI agrees with the API, evicting one through the running server removes its own
blobs and keeps the shared one, counts the eviction as manual, and the image pulls
again byte for byte. Under a running server `pullgate cache evict` asks it through the
admin API; with no server it evicts from the data directory itself."""
import json
import os
import subprocess
import unittest

import harness as h
from test_lifecycle import blob_file

LAYER_BYTES = 256 * 1024


class CacheAdmin(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        base = h.big_layer("cache-admin-base", size=LAYER_BYTES)
        cls.images = {}
        for name in ("a", "b"):
            own = h.big_layer("cache-admin-" + name, size=LAYER_BYTES)
            cls.images[name] = h.push_image(cls.registry, h.build_image("it/" + name, "v1", [base, own], label=name))
        cls.base = base

    def setUp(self):
        self.pg = h.Pullgate(self.work.path, [h.upstream_entry(self.registry)]).start()
        self.addCleanup(self.pg.close)
        self.token = h.read_token(self.pg)

    def pull(self, name):
        done, out = h.skopeo_via_mirror(self.work.path, self.registry, self.pg, "it/%s:v1" % name)
        self.assertEqual(done.returncode, 0, done.stderr)
        h.assert_dir_output(self, out, self.images[name])

    def api(self, method, path, body=None):
        status, _, text = h.admin_request(self.pg, self.token, method, path,
                                          body=None if body is None else json.dumps(body).encode())
        return status, json.loads(text)

    def cli(self, *args):
        return subprocess.run([self.pg.bin, "cache"] + list(args) + ["--config", self.pg.config_path],
                              capture_output=True, text=True, timeout=60)

    def test_list_evict_and_pull_again(self):
        self.pull("a")
        self.pull("b")
        upstream = self.registry.address
        # A blob's record is written on the blocking pool a moment after its last byte
        # went out: wait for all six.
        h.wait_until(lambda: sum(i["blobs"] for i in self.api("GET", "/v1/cache")[1]["images"]) == 6, 30,
                     "both images' blobs recorded")
        status, listing = self.api("GET", "/v1/cache")
        self.assertEqual(status, 200, listing)
        self.assertEqual(listing["image_count"], 2)
        by_digest = {image["digest"]: image for image in listing["images"]}
        for name in ("a", "b"):
            image = by_digest[self.images[name].digest]
            self.assertEqual(image["names"], [{"upstream": upstream, "repository": "it/" + name, "tags": ["v1"]}])
            self.assertEqual(image["manifests"], 1)
            self.assertEqual(image["blobs"], 3)  # config, base, own layer
            self.assertGreater(image["bytes_alone"], LAYER_BYTES)  # its own layer at least
            self.assertGreaterEqual(image["bytes_shared"], LAYER_BYTES)  # the base layer
            self.assertFalse(image["pinned"])
        du = json.loads(self.cli("du").stdout)
        self.assertEqual(listing["totals"], du)
        self.assertIsNone(listing["limits"]["max_size"])

        # The CLI lists the same images, from the data directory, while the server runs.
        done = self.cli("ls", "--json", "--sort", "pulled")
        self.assertEqual(done.returncode, 0, done.stderr)
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        self.assertEqual({l["digest"]: (l["bytes"], l["bytes_alone"], l["names"]) for l in lines},
                         {d: (i["bytes"], i["bytes_alone"], i["names"]) for d, i in by_digest.items()})

        # Bad parameters are refused with a JSON error.
        for query in ("sort=name", "limit=0", "limit=x", "colour=red"):
            status, body = self.api("GET", "/v1/cache?" + query)
            self.assertEqual(status, 400, query)
            self.assertIn("error", body)
        status, body = self.api("POST", "/v1/cache/evict", {"images": ["%s/it/nope:v1" % upstream]})
        self.assertEqual(status, 404, body)

        # Under a running server the CLI asks it: the server's refusal comes back in one line.
        done = self.cli("evict", "%s/it/nope:v1" % upstream)
        self.assertEqual(done.returncode, 1)
        self.assertIn("it/nope", done.stderr)
        self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)

        # Evict a through the server, from the CLI.
        a = self.images["a"]
        done = self.cli("evict", "--by", "test", "%s/it/a:v1" % upstream)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(done.stdout)["evicted"], [a.digest])
        self.assertFalse(os.path.exists(blob_file(self.pg, a.layers[1].digest)))
        self.assertFalse(os.path.exists(blob_file(self.pg, a.config_digest)))
        self.assertTrue(os.path.exists(blob_file(self.pg, self.base.digest)))  # b holds it
        self.assertTrue(os.path.exists(blob_file(self.pg, self.images["b"].layers[1].digest)))
        self.assertEqual(h.metric(self.pg, 'pullgate_evictions_total{what="image",reason="manual"}'), 1)
        self.assertIn('"msg":"manual eviction"', self.pg.stderr())
        self.assertIn('"by":"test"', self.pg.stderr())
        status, listing = self.api("GET", "/v1/cache")
        self.assertEqual([i["digest"] for i in listing["images"]], [self.images["b"].digest])
        self.assertTrue(listing["last_eviction"]["manual"])

        # a comes back from the upstream, byte for byte.
        gets = self.registry.count("/v2/it/a/blobs/" + a.layers[1].digest, "GET")
        self.pull("a")
        self.assertGreater(self.registry.count("/v2/it/a/blobs/" + a.layers[1].digest, "GET"), gets)

    def test_under_a_server_without_an_admin_listener_the_cli_says_so(self):
        self.pull("a")
        self.pg.config["admin"] = {"listen": ""}  # the config the CLI reads; the server keeps its own
        self.pg.write_config()
        done = self.cli("evict", "%s/it/a:v1" % self.registry.address)
        self.assertEqual(done.returncode, 1)
        self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
        self.assertIn("admin.listen", done.stderr)
        self.assertTrue(os.path.exists(blob_file(self.pg, self.images["a"].layers[1].digest)))

    def test_the_cli_evicts_when_no_server_runs_and_refuses_a_pin(self):
        self.pull("a")
        self.pull("b")
        self.pg.stop()
        upstream = self.registry.address
        self.pg.config["cache"] = {"pin": ["%s/it/b:v1" % upstream]}
        self.pg.write_config()
        done = self.cli("evict", "%s/it/b:v1" % upstream)
        self.assertEqual(done.returncode, 1)
        self.assertIn("pinned", done.stderr)
        self.assertTrue(os.path.exists(blob_file(self.pg, self.images["b"].layers[1].digest)))
        done = self.cli("evict", "%s/it/a@%s" % (upstream, self.images["a"].digest))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(done.stdout)["evicted"], [self.images["a"].digest])
        self.assertFalse(os.path.exists(blob_file(self.pg, self.images["a"].layers[1].digest)))
        self.assertTrue(os.path.exists(blob_file(self.pg, self.base.digest)))
        done = self.cli("ls")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("it/b:v1", done.stdout)
        self.assertNotIn("it/a", done.stdout)


if __name__ == "__main__":
    unittest.main()
