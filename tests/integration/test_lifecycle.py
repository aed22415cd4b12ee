"""Cache lifecycle: eviction by last pull. A real upstream registry with a few images
of about 1 MiB each; pullgate with a cache limit that holds two of them and an eviction
run every second. Pulls (skopeo, which verifies every digest) that exceed the limit
evict the least recently pulled image; an evicted image pulls again, byte for byte;
the cache stays under its limit; a pinned image (exact, or matched by a glob pin)
stays however long ago it was pulled, also when pinned by `pullgate pin add` while
the server runs, until `pullgate pin rm`. Content not pulled for cache.max_unpulled
goes whatever the size. And skopeo and containerd pulling all three at once, over and
over, while runs evict under them, get every byte of every pull."""
import json
import os
import subprocess
import threading
import unittest

import harness as h

LAYER_BYTES = 1024 * 1024


def cached_blob_bytes(pg):
    total = 0
    for root, _, files in os.walk(os.path.join(pg.data_dir, "blobs")):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def cache_du(pg):
    """`pullgate cache du` on pg's data dir, while pg runs."""
    done = subprocess.run([pg.bin, "cache", "du", "--data", pg.data_dir], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def pin_cli(pg, *args):
    """`pullgate pin ARGS` on pg's data dir, while pg runs."""
    return h.pullgate_cli(*(["pin"] + list(args) + ["--data", pg.data_dir]))


def blob_file(pg, digest):
    hexd = digest.split(":", 1)[1]
    return os.path.join(pg.data_dir, "blobs", "sha256", hexd[:2], hexd)


class Eviction(h.ThreeImages, unittest.TestCase):
    layer_seed = "lifecycle"
    layer_bytes = LAYER_BYTES

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Two images under keep/, for a glob pin.
        for name in ("x", "y"):
            cls.push_one(name, "keep/")

    def start_pullgate(self, cache):
        return super().start_pullgate(dict({"eviction_interval_s": 1}, **cache))

    def layer(self, name):
        return self.images[name].layers[0]

    def test_the_least_recently_pulled_image_is_evicted_and_pulls_again(self):
        # 3000 KiB: two images (about 2 MiB) stay under the high watermark (2700 KiB);
        # a third goes over it, and one eviction brings the cache under the low one.
        limit = 3000 * 1024
        pg = self.start_pullgate({"max_size": "3000KiB"})
        self.pull(pg, "a")
        self.pull(pg, "b")
        self.pull(pg, "a")  # a is now pulled more recently than b
        self.pull(pg, "c")
        h.wait_until(lambda: not os.path.exists(blob_file(pg, self.layer("b").digest)), 60,
                     "b's layer evicted")
        self.assertTrue(os.path.exists(blob_file(pg, self.layer("a").digest)))
        self.assertTrue(os.path.exists(blob_file(pg, self.layer("c").digest)))
        self.assertLessEqual(cached_blob_bytes(pg), limit)
        # The run logs (after its counters) once the files are gone.
        h.wait_until(lambda: '"reason":"size"' in pg.stderr(), 30, "the eviction's log line")
        self.assertIn('"msg":"evicted"', pg.stderr())
        self.assertGreaterEqual(h.metric(pg, 'pullgate_evictions_total{what="image",reason="size"}'), 1)
        self.assertGreaterEqual(h.metric(pg, 'pullgate_evicted_bytes_total{reason="size"}'), LAYER_BYTES)
        h.wait_until(lambda: 0 < h.metric(pg, "pullgate_cache_bytes ") <= limit, 30, "the cache size gauge set")
        du = cache_du(pg)  # a and c: two blob files each (layer and config), two manifests
        self.assertEqual((du["blob_files"], du["manifests"]), (4, 2))
        self.assertEqual(du["blob_bytes"], cached_blob_bytes(pg))
        self.assertLessEqual(du["bytes"], limit)

        # b comes back from the upstream, byte for byte (skopeo checks the digests).
        gets = self.registry.count("/v2/it/b/blobs/" + self.layer("b").digest, "GET")
        self.pull(pg, "b")
        self.assertGreater(self.registry.count("/v2/it/b/blobs/" + self.layer("b").digest, "GET"), gets)
        # ... which makes a the least recently pulled: it goes next.
        h.wait_until(lambda: not os.path.exists(blob_file(pg, self.layer("a").digest)), 60,
                     "a's layer evicted")
        self.assertLessEqual(cached_blob_bytes(pg), limit)

    def test_clients_pulling_while_runs_evict_get_every_byte(self):
        # Room for two of the three images: each pull of the third evicts one, so the
        # runs (every second) remove what other pulls are fetching or about to fetch.
        pg = self.start_pullgate({"max_size": "2500KiB"})
        failures = []

        def skopeo_pulls(name):
            for _ in range(4):
                try:
                    self.pull(pg, name)  # skopeo checks every digest; pull checks every byte
                except AssertionError as e:
                    failures.append("skopeo %s: %s" % (name, e))

        def containerd_pulls():
            for round in range(2):  # a fresh containerd each round: nothing is reused
                ctrd = h.Containerd().start()
                try:
                    ctrd.write_hosts(self.registry.address, pg.address)
                    for name in ("a", "b", "c"):
                        ref = "%s/%s" % (self.registry.address, self.references[name])
                        r = ctrd.pull("evict", ref)
                        if r.returncode != 0:
                            failures.append("ctr %s round %d: %s" % (name, round, r.stderr))
                            continue
                        for digest, data in self.images[name].blobs().items():
                            if ctrd.content("evict", digest) != data:
                                failures.append("ctr %s round %d: %s differs" % (name, round, digest))
                finally:
                    ctrd.close()

        threads = [threading.Thread(target=skopeo_pulls, args=(name,)) for name in ("a", "b", "c")]
        threads.append(threading.Thread(target=containerd_pulls))
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        self.assertFalse(any(t.is_alive() for t in threads), "a client hung")
        self.assertEqual(failures, [], pg.stderr()[-4000:])
        self.assertGreaterEqual(h.metric(pg, 'pullgate_evictions_total{what="image",reason="size"}'), 1)
        # What is left checks out: verify finds no blob whose bytes differ from its name.
        done = subprocess.run([pg.bin, "cache", "verify", "--data", pg.data_dir], capture_output=True, text=True,
                              timeout=120)
        summary = json.loads(done.stdout.splitlines()[-1])
        self.assertEqual(summary["mismatched"], 0, done.stdout)

    def test_a_pinned_image_stays_while_the_others_are_evicted(self):
        # a is pinned by its tag and is the least recently pulled: b goes instead.
        pg = self.start_pullgate({"max_size": "3000KiB", "pin": ["%s/it/a:v1" % self.registry.address]})
        self.pull(pg, "a")
        self.pull(pg, "b")
        self.pull(pg, "c")
        h.wait_until(lambda: not os.path.exists(blob_file(pg, self.layer("b").digest)), 60,
                     "b's layer evicted")
        self.assertTrue(os.path.exists(blob_file(pg, self.layer("a").digest)))
        h.wait_until(lambda: '"bytes_pinned"' in pg.stderr(), 30, "the eviction's log line")
        h.wait_until(lambda: h.metric(pg, "pullgate_cache_pinned_bytes ") >= LAYER_BYTES, 30,
                     "the pinned bytes gauge set")

    def test_a_glob_pin_keeps_every_image_it_matches(self):
        # keep/** matches x and y (about 2 MiB, pulled first, so the least recently
        # pulled); a and b push the cache over its limit and go instead.
        pg = self.start_pullgate({"max_size": "3000KiB", "pin": ["%s/keep/**:v?" % self.registry.address]})
        for name in ("x", "y", "a", "b"):
            self.pull(pg, name)
        h.wait_until(lambda: not os.path.exists(blob_file(pg, self.layer("a").digest)), 60,
                     "a's layer evicted")
        self.assertTrue(os.path.exists(blob_file(pg, self.layer("x").digest)))
        self.assertTrue(os.path.exists(blob_file(pg, self.layer("y").digest)))
        h.wait_until(lambda: h.metric(pg, "pullgate_cache_pinned_bytes ") >= 2 * LAYER_BYTES, 30,
                     "both pinned images counted")
        self.pull(pg, "x")  # still served, from the cache

    def test_a_pin_added_while_the_server_runs_keeps_its_image_until_removed(self):
        # `pullgate pin add` writes to the LMDB environment the server reads at each
        # eviction run: a, pinned that way and the least recently pulled, stays while
        # b goes; after `pullgate pin rm` it is evicted like any other image.
        pg = self.start_pullgate({"max_size": "3000KiB"})
        self.pull(pg, "a")
        pin = "%s/it/a:v1" % self.registry.address
        done = pin_cli(pg, "add", "--by", "ops", "--note", "release 4.2", pin)
        self.assertEqual((done.returncode, done.stdout, done.stderr), (0, "pinned %s\n" % pin, ""))
        again = pin_cli(pg, "add", pin)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("is pinned already (by ops at ", again.stdout)
        self.pull(pg, "b")
        self.pull(pg, "c")
        h.wait_until(lambda: not os.path.exists(blob_file(pg, self.layer("b").digest)), 60,
                     "b's layer evicted")
        self.assertTrue(os.path.exists(blob_file(pg, self.layer("a").digest)))
        h.wait_until(lambda: h.metric(pg, "pullgate_cache_pinned_bytes ") >= LAYER_BYTES, 30,
                     "the pinned bytes gauge set")

        listed = pin_cli(pg, "ls", "--json")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        rows = [json.loads(line) for line in listed.stdout.splitlines()]
        self.assertEqual(rows, [{"pin": pin, "source": "store", "by": "ops", "since": rows[0]["since"],
                                 "note": "release 4.2", "keeps": [self.images["a"].digest]}])
        # The admin API lists the same pins.
        status, _, body = h.admin_request(pg, h.read_token(pg), "GET", "/v1/pins")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body), {"pins": rows})
        table = pin_cli(pg, "ls")
        self.assertIn(pin, table.stdout)
        self.assertIn(self.images["a"].digest[:19], table.stdout)

        bad = pin_cli(pg, "add", "it/a")
        self.assertEqual(bad.returncode, 1)
        self.assertEqual(bad.stderr.count("\n"), 1, bad.stderr)
        self.assertIn("names neither :TAG nor @DIGEST", bad.stderr)

        removed = pin_cli(pg, "rm", pin)
        self.assertEqual((removed.returncode, removed.stdout), (0, "unpinned %s\n" % pin), removed.stderr)
        absent = pin_cli(pg, "rm", pin)
        self.assertEqual((absent.returncode, absent.stderr), (1, "pullgate: %s is not pinned\n" % pin))
        # b again makes a the least recently pulled, with nothing keeping it now.
        self.pull(pg, "b")
        h.wait_until(lambda: not os.path.exists(blob_file(pg, self.layer("a").digest)), 60,
                     "a's layer evicted once unpinned")
        self.assertTrue(os.path.exists(blob_file(pg, self.layer("c").digest)))

    def test_content_not_pulled_for_max_unpulled_goes(self):
        pg = self.start_pullgate({"max_unpulled": "2s"})
        self.pull(pg, "c")
        h.wait_until(lambda: not os.path.exists(blob_file(pg, self.layer("c").digest)), 60,
                     "c's layer evicted as unpulled")
        h.wait_until(lambda: '"reason":"unpulled"' in pg.stderr(), 30, "the eviction's log line")
        self.assertEqual(cache_du(pg)["blob_files"], 0)
        self.assertEqual(cache_du(pg)["manifests"], 0)
        self.pull(pg, "c")


if __name__ == "__main__":
    unittest.main()
