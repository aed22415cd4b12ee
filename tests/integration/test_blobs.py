"""Blob serving: ranges (cold and warm), cold HEAD, single upstream fetch under
concurrency, manifests by digest served from cache, and one upstream question per
manifest or tag when many clients ask at once."""
import hashlib
import http.client
import os
import threading
import unittest

import cosign
import harness as h


class Blobs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = h.Workdir()
        cls.addClassCleanup(cls.work.close)
        cls.registry = h.Registry(cls.work.path).start()
        cls.addClassCleanup(cls.registry.close)
        cls.image = h.seed_oci(cls.registry, repo="it/blobs", seed="blobs", big=True)
        cls.big = next(l for l in cls.image.layers if l.size >= h.BIG_LAYER_BYTES)
        cls.small = [l for l in cls.image.layers if l is not cls.big]
        cls.pullgate = h.Pullgate(cls.work.path, [h.upstream_entry(cls.registry)]).start()
        cls.addClassCleanup(cls.pullgate.close)
        # pullgate learns which blobs the image references from its manifest.
        status, _, body = cls.pullgate.request("GET", "/v2/it/blobs/manifests/v1",
                                               headers=[("Accept", a) for a in h.SKOPEO_ACCEPTS])
        if status != 200:
            raise RuntimeError("manifest through pullgate: %d %r" % (status, body[:300]))

    def setUp(self):
        self.assertTrue(self.pullgate.alive(), "pullgate died: " + self.pullgate.stderr())

    def blob_path(self, digest):
        return "/v2/it/blobs/blobs/" + digest

    def cache_file(self, digest):
        hexd = digest.split(":", 1)[1]
        return os.path.join(self.pullgate.data_dir, "blobs", "sha256", hexd[:2], hexd)

    def upstream_gets(self, digest):
        return self.registry.count(self.blob_path(digest), "GET")

    def wait_cached(self, digest):
        h.wait_until(lambda: os.path.exists(self.cache_file(digest)), 30, "blob %s in the cache" % digest)

    def check_range(self, layer, range_header, expected_start, expected_end):
        status, headers, body = self.pullgate.request("GET", self.blob_path(layer.digest),
                                                      headers=[("Range", range_header)])
        self.assertEqual(status, 206, "%s: %r" % (range_header, body[:200]))
        self.assertEqual(h.header(headers, "Content-Range"),
                         "bytes %d-%d/%d" % (expected_start, expected_end, layer.size))
        self.assertEqual(int(h.header(headers, "Content-Length")), expected_end - expected_start + 1)
        self.assertEqual(body, layer.blob[expected_start:expected_end + 1])

    def check_unsatisfiable(self, layer):
        for rng in ("bytes=%d-" % layer.size, "bytes=%d-%d" % (layer.size + 10, layer.size + 20)):
            status, headers, body = self.pullgate.request("GET", self.blob_path(layer.digest),
                                                          headers=[("Range", rng)])
            self.assertEqual(status, 416, rng)
            self.assertEqual(h.header(headers, "Content-Range"), "bytes */%d" % layer.size)

    def test_ranges_cold_then_warm(self):
        a, b, c = self.small
        size_a = a.size
        # Cold: each form on a blob pullgate has never fetched.
        self.assertFalse(os.path.exists(self.cache_file(a.digest)))
        self.check_range(a, "bytes=100-", 100, size_a - 1)
        self.assertFalse(os.path.exists(self.cache_file(b.digest)))
        self.check_range(b, "bytes=10-99", 10, 99)
        self.assertFalse(os.path.exists(self.cache_file(c.digest)))
        self.check_range(c, "bytes=-500", c.size - 500, c.size - 1)
        config = h.Layer(self.image.config, None, None)
        self.assertFalse(os.path.exists(self.cache_file(config.digest)))
        self.check_unsatisfiable(config)

        # Warm: a full GET caches each blob; ranges then come from the cache.
        for layer in (a, b, c, config):
            status, headers, body = self.pullgate.request("GET", self.blob_path(layer.digest))
            self.assertEqual(status, 200)
            self.assertEqual(body, layer.blob)
            self.wait_cached(layer.digest)
            status, headers, body = self.pullgate.request("GET", self.blob_path(layer.digest))
            self.assertEqual(status, 200)
            self.assertEqual(h.header(headers, "Accept-Ranges"), "bytes")
            self.assertEqual(body, layer.blob)
        upstream_before = {l.digest: self.upstream_gets(l.digest) for l in (a, b, c)}
        for layer in (a, b, c):
            with self.subTest(layer=layer.digest):
                self.check_range(layer, "bytes=0-", 0, layer.size - 1)
                self.check_range(layer, "bytes=7-", 7, layer.size - 1)
                self.check_range(layer, "bytes=3-3", 3, 3)
                self.check_range(layer, "bytes=20-%d" % (layer.size + 1000), 20, layer.size - 1)
                self.check_range(layer, "bytes=-1", layer.size - 1, layer.size - 1)
                self.check_range(layer, "bytes=-%d" % (layer.size * 2), 0, layer.size - 1)
                self.check_unsatisfiable(layer)
        for layer in (a, b, c):
            self.assertEqual(self.upstream_gets(layer.digest), upstream_before[layer.digest],
                             "a warm range went to the upstream")

    def test_cold_head_then_concurrent_gets(self):
        big = self.big
        path = self.blob_path(big.digest)
        # Cold HEAD: answered from an upstream HEAD, never a download.
        status, headers, body = self.pullgate.request("HEAD", path)
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")
        self.assertEqual(int(h.header(headers, "Content-Length")), big.size)
        self.assertEqual(h.header(headers, "Docker-Content-Digest"), big.digest)
        self.assertEqual(self.upstream_gets(big.digest), 0, "a cold HEAD downloaded the blob")
        self.assertFalse(os.path.exists(self.cache_file(big.digest)))

        # N concurrent cold GETs: one upstream GET, every client gets the right bytes.
        clients = 8
        barrier = threading.Barrier(clients)
        results = [None] * clients

        def pull(i):
            try:
                conn = http.client.HTTPConnection(self.pullgate.host, self.pullgate.port, timeout=120)
                barrier.wait(timeout=30)
                conn.request("GET", path)
                resp = conn.getresponse()
                digest = hashlib.sha256()
                n = 0
                while True:
                    chunk = resp.read(1 << 20)
                    if not chunk:
                        break
                    digest.update(chunk)
                    n += len(chunk)
                results[i] = (resp.status, int(resp.getheader("Content-Length", "-1")), n,
                              "sha256:" + digest.hexdigest())
                conn.close()
            except Exception as e:
                results[i] = e

        threads = [threading.Thread(target=pull, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        for i, r in enumerate(results):
            self.assertEqual(r, (200, big.size, big.size, big.digest), "client %d" % i)
        self.assertEqual(self.upstream_gets(big.digest), 1, "concurrent cold GETs were not coalesced")
        self.wait_cached(big.digest)
        # Warm range in the middle of the big blob, still one upstream GET.
        start, end = 40 * 1024 * 1024 + 13, 41 * 1024 * 1024
        self.check_range(big, "bytes=%d-%d" % (start, end), start, end)
        self.assertEqual(self.upstream_gets(big.digest), 1)

    def test_manifest_by_digest_from_cache(self):
        accept = [("Accept", a) for a in h.SKOPEO_ACCEPTS]
        prefix = "/v2/it/blobs/manifests/"
        before = self.registry.count_prefix(prefix)
        for method in ("GET", "HEAD", "GET"):
            status, headers, body = self.pullgate.request(method, prefix + self.image.digest, headers=accept)
            self.assertEqual(status, 200)
            self.assertEqual(h.header(headers, "Docker-Content-Digest"), self.image.digest)
            if method == "GET":
                self.assertEqual(body, self.image.manifest)
        self.assertEqual(self.registry.count_prefix(prefix), before,
                         "pull by digest of a cached manifest contacted the upstream")

        # A manifest never seen: the first fetch by digest goes upstream, later ones do not.
        other = h.push_image(self.registry, h.build_image("it/blobs", "other", [h.small_layer("other")]), tag=False)
        path = prefix + other.digest
        status, _, body = self.pullgate.request("GET", path, headers=accept)
        self.assertEqual(status, 200)
        self.assertEqual(body, other.manifest)
        first = self.registry.count(path)
        self.assertGreaterEqual(first, 1)
        for _ in range(3):
            status, _, body = self.pullgate.request("GET", path, headers=accept)
            self.assertEqual(body, other.manifest)
        self.assertEqual(self.registry.count(path), first)

    def slow_front(self, tag_ttl_s=300):
        """A front that holds every manifest GET and HEAD for half a second (so that
        concurrent requests overlap for certain), and a pullgate behind it."""
        front = cosign.ReferrersFront(self.registry).start()  # passes everything through to the registry
        self.addCleanup(front.close)
        front.manifest_delay = 0.5
        pg = h.Pullgate(self.work.path, [{"name": front.address, "url": front.url, "default": True,
                                          "tag_ttl_s": tag_ttl_s}]).start()
        self.addCleanup(pg.close)
        return front, pg

    @staticmethod
    def at_once(requests):
        """Runs the callables at the same moment; their results in order."""
        barrier = threading.Barrier(len(requests))
        results = [None] * len(requests)

        def run(i):
            barrier.wait()
            results[i] = requests[i]()
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return results

    def check_served(self, results, image, methods=None):
        """Every result is the image's manifest (no body for a HEAD; methods: of each
        request, GET when not given)."""
        for (status, headers, body), method in zip(results, methods or ["GET"] * len(results)):
            self.assertEqual(status, 200, body[:300])
            self.assertEqual(body, image.manifest if method == "GET" else b"")
            self.assertEqual(h.header(headers, "Docker-Content-Digest"), image.digest)
            self.assertEqual(int(h.header(headers, "Content-Length")), len(image.manifest))

    def test_concurrent_cold_manifest_pulls_ask_the_upstream_once(self):
        """Eight clients ask for a manifest nobody has pulled, at the same moment:
        pullgate asks the upstream once and all eight get the bytes."""
        front, pg = self.slow_front()
        image = h.push_image(self.registry, h.build_image("it/rollout", "v1", [h.small_layer("rollout")]), tag=False)
        path = "/v2/it/rollout/manifests/" + image.digest
        accept = [("Accept", a) for a in h.SKOPEO_ACCEPTS]
        results = self.at_once([lambda: pg.request("GET", path, headers=accept)] * 8)
        self.check_served(results, image)
        self.assertEqual(front.manifest_gets.count(path), 1, front.manifest_gets)

    def test_concurrent_pulls_of_a_tag_ask_the_upstream_once(self):
        """Eight clients resolve a tag nobody has pulled, at the same moment, four with
        HEAD (containerd) and four with GET (skopeo): one HEAD of the tag goes upstream
        and all eight get its digest."""
        front, pg = self.slow_front()
        image = h.push_image(self.registry, h.build_image("it/rollout-tag", "v1", [h.small_layer("rollout-tag")]))
        path = "/v2/it/rollout-tag/manifests/v1"
        accept = [("Accept", a) for a in h.SKOPEO_ACCEPTS]
        methods = ["HEAD", "GET"] * 4
        results = self.at_once([lambda m=m: pg.request(m, path, headers=accept) for m in methods])
        self.check_served(results, image, methods)
        self.assertEqual(front.manifest_heads.count(path), 1, front.manifest_heads)
        self.assertEqual(front.manifest_gets.count("/v2/it/rollout-tag/manifests/" + image.digest), 1,
                         front.manifest_gets)

    def test_concurrent_pulls_of_a_missing_tag_get_one_answer(self):
        """Eight clients ask for a tag the upstream does not have: one HEAD goes upstream
        and all eight get its answer, 404 MANIFEST_UNKNOWN."""
        front, pg = self.slow_front()
        path = "/v2/it/rollout-tag/manifests/no-such-tag"
        accept = [("Accept", a) for a in h.SKOPEO_ACCEPTS]
        results = self.at_once([lambda: pg.request("GET", path, headers=accept)] * 8)
        for status, _, body in results:
            self.assertEqual(status, 404, body[:300])
            self.assertEqual(h.oci_error(body)[0], "MANIFEST_UNKNOWN", body[:300])
        self.assertEqual(front.manifest_heads.count(path), 1, front.manifest_heads)

    def test_concurrent_rechecks_on_a_failing_upstream_serve_the_cached_tag(self):
        """A tag re-checked on every pull (tag_ttl_s 0) while the upstream fails its
        manifest requests (503): eight pulls at once ask the upstream once, and all
        eight get the digest pulled before, without waiting for a second failure."""
        front, pg = self.slow_front(tag_ttl_s=0)
        image = h.push_image(self.registry, h.build_image("it/rollout-stale", "v1", [h.small_layer("stale")]))
        path = "/v2/it/rollout-stale/manifests/v1"
        accept = [("Accept", a) for a in h.SKOPEO_ACCEPTS]
        status, _, body = pg.request("GET", path, headers=accept)
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(front.manifest_heads.count(path), 1)
        front.manifest_status = 503
        results = self.at_once([lambda: pg.request("GET", path, headers=accept)] * 8)
        self.check_served(results, image)
        self.assertEqual(front.manifest_heads.count(path), 2, front.manifest_heads)

    def test_a_manifest_cached_from_another_repository_is_confirmed_once(self):
        """An index pushed to two repositories, pulled with its children from the first,
        then from the second: its tag there vouches for the index and the index for its
        children, so the children come from the cache with no upstream request. An
        image asked for by digest in a second repository through an upstream that
        names no digest in its answers is confirmed by a GET whose bytes must hash to
        it, once."""
        front, pg = self.slow_front()
        front.manifest_delay = 0.0
        first = h.seed_index(self.registry, repo="it/xidx-a", seed="xidx")
        second = h.seed_index(self.registry, repo="it/xidx-b", seed="xidx")
        self.assertEqual(first.digest, second.digest)
        accept = [("Accept", a) for a in h.SKOPEO_ACCEPTS]
        for index in (first, second):
            status, _, body = pg.request("GET", "/v2/%s/manifests/v1" % index.repo, headers=accept)
            self.assertEqual((status, body), (200, index.manifest))
            for child in index.children.values():
                status, _, body = pg.request("GET", "/v2/%s/manifests/%s" % (index.repo, child.digest), headers=accept)
                self.assertEqual((status, body), (200, child.manifest))
        for child in second.children.values():
            path = "/v2/it/xidx-b/manifests/" + child.digest
            self.assertEqual(front.manifest_heads.count(path) + front.manifest_gets.count(path), 0,
                             (front.manifest_heads, front.manifest_gets))

        image = h.push_image(self.registry, h.build_image("it/xhide-a", "v1", [h.small_layer("xhide")], label="xh"))
        h.push_image(self.registry, h.build_image("it/xhide-b", "v1", [h.small_layer("xhide")], label="xh"))
        front.hide_digest = True
        self.addCleanup(setattr, front, "hide_digest", False)
        status, _, body = pg.request("GET", "/v2/it/xhide-a/manifests/v1", headers=accept)
        self.assertEqual((status, body), (200, image.manifest))
        path = "/v2/it/xhide-b/manifests/" + image.digest
        for _ in range(2):
            status, headers, body = pg.request("GET", path, headers=accept)
            self.assertEqual((status, body), (200, image.manifest))
            self.assertEqual(h.header(headers, "Docker-Content-Digest"), image.digest)
        self.assertEqual((front.manifest_heads.count(path), front.manifest_gets.count(path)), (1, 1))


if __name__ == "__main__":
    unittest.main(verbosity=2)
