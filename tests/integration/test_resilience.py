"""Upstream trouble: stale-if-error, offline mode, and a misbehaving upstream (wrong
bytes, reset mid-blob, stall)."""
import hashlib
import http.client
import http.server
import json
import os
import socket
import struct
import threading
import unittest

import cosign as c
import harness as h


def read_body(host, port, path, timeout=30):
    """GET path; returns (status, declared Content-Length, bytes received, complete?).
    A short read or a closed/reset connection is reported, not raised."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
        except (ConnectionError, socket.timeout, TimeoutError, http.client.RemoteDisconnected):
            return None, None, b"", False
        declared = resp.getheader("Content-Length")
        declared = int(declared) if declared is not None else None
        got = bytearray()
        complete = False
        try:
            while True:
                chunk = resp.read(65536)
                if not chunk:
                    break
                got += chunk
            complete = declared is None or len(got) == declared
        except (http.client.IncompleteRead, ConnectionError, socket.timeout, TimeoutError):
            complete = False
        return resp.status, declared, bytes(got), complete
    finally:
        conn.close()


class FakeUpstream:
    """A registry that serves a valid manifest but misbehaves on chosen blobs."""

    def __init__(self):
        self.release_stall = threading.Event()
        self.counts = {}
        self.lock = threading.Lock()
        rng_layers = {name: h.small_layer("fake-" + name) for name in ("good", "wrong", "reset", "stall")}
        # Big enough that a reset or stall happens with most of the body unsent.
        rng_layers["reset"] = h.big_layer("fake-reset", size=4 * 1024 * 1024)
        rng_layers["stall"] = h.big_layer("fake-stall", size=4 * 1024 * 1024)
        self.layers = rng_layers
        image = h.build_image("fake/img", "v1", list(rng_layers.values()))
        self.image = image
        self.behaviour = {l.digest: name for name, l in rng_layers.items()}
        self.behaviour[image.config_digest] = "good"
        self.blobs = image.blobs()
        # A manifest requested by a digest that does not match the bytes served.
        self.lying_digest = "sha256:" + hashlib.sha256(b"not the manifest").hexdigest()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.handle_any(head=True)

            def do_GET(self):
                self.handle_any(head=False)

            def send(self, status, body, ctype, digest=None, head=False):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                if digest:
                    self.send_header("Docker-Content-Digest", digest)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def handle_any(self, head):
                path = self.path.split("?", 1)[0]
                with fake.lock:
                    fake.counts[(self.command, path)] = fake.counts.get((self.command, path), 0) + 1
                img = fake.image
                if path == "/v2/":
                    return self.send(200, b"{}", "application/json", head=head)
                if path in ("/v2/fake/img/manifests/v1", "/v2/fake/img/manifests/" + img.digest):
                    return self.send(200, img.manifest, img.manifest_type, img.digest, head)
                if path == "/v2/fake/img/manifests/" + fake.lying_digest:
                    return self.send(200, img.manifest, img.manifest_type, fake.lying_digest, head)
                prefix = "/v2/fake/img/blobs/"
                if path.startswith(prefix) and path[len(prefix):] in fake.blobs:
                    digest = path[len(prefix):]
                    data = fake.blobs[digest]
                    mode = fake.behaviour[digest]
                    if head or mode == "good":
                        return self.send(200, data, "application/octet-stream", digest, head)
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Docker-Content-Digest", digest)
                    self.end_headers()
                    if mode == "wrong":
                        self.wfile.write(bytes(b ^ 0x5A for b in data))
                    elif mode == "reset":
                        self.wfile.write(data[: len(data) // 4])
                        self.wfile.flush()
                        # RST instead of FIN: SO_LINGER with a zero timeout.
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        self.close_connection = True
                    elif mode == "stall":
                        self.wfile.write(data[: len(data) // 4])
                        self.wfile.flush()
                        fake.release_stall.wait(60)
                        self.close_connection = True
                    return
                body = json.dumps({"errors": [{"code": "NOT_FOUND", "message": "unknown"}]}).encode()
                self.send(404, body, "application/json", head=head)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.address = "127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self, method, path):
        with self.lock:
            return self.counts.get((method, path), 0)

    def close(self):
        self.release_stall.set()
        self.server.shutdown()
        self.server.server_close()


class StaleAndOffline(unittest.TestCase):
    def setUp(self):
        self.work = h.Workdir()
        self.addCleanup(self.work.close)
        self.registry = h.Registry(self.work.path).start()
        self.addCleanup(self.registry.close)
        self.image = h.seed_oci(self.registry, repo="it/stale", seed="stale")
        self.accept = [("Accept", a) for a in h.SKOPEO_ACCEPTS]

    def warm(self, pg):
        status, _, body = pg.request("GET", "/v2/it/stale/manifests/v1", headers=self.accept)
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(body, self.image.manifest)
        for digest, data in self.image.blobs().items():
            status, _, body = pg.request("GET", "/v2/it/stale/blobs/" + digest)
            self.assertEqual(status, 200)
            self.assertEqual(body, data)
        hexes = [d.split(":", 1)[1] for d in self.image.blobs()]
        h.wait_until(lambda: all(os.path.exists(os.path.join(pg.data_dir, "blobs", "sha256", x[:2], x))
                                 for x in hexes), 30, "blobs in the cache")

    def test_stale_if_error(self):
        pg = h.Pullgate(self.work.path, [h.upstream_entry(self.registry, tag_ttl_s=0)]).start()
        self.addCleanup(pg.close)
        self.warm(pg)
        tag_path = "/v2/it/stale/manifests/v1"
        # tag_ttl_s 0: every tag pull re-checks the upstream while it is up.
        before = self.registry.count(tag_path)
        status, _, _ = pg.request("GET", tag_path, headers=self.accept)
        self.assertEqual(status, 200)
        self.assertGreater(self.registry.count(tag_path), before, "tag_ttl_s 0 did not re-check the upstream")

        self.registry.stop()
        for method in ("GET", "HEAD"):
            status, headers, body = pg.request(method, tag_path, headers=self.accept)
            self.assertEqual(status, 200, "upstream down, %s by tag: %d %r" % (method, status, body[:300]))
            self.assertEqual(h.header(headers, "Docker-Content-Digest"), self.image.digest)
            if method == "GET":
                self.assertEqual(body, self.image.manifest)
        for digest, data in self.image.blobs().items():
            status, _, body = pg.request("GET", "/v2/it/stale/blobs/" + digest)
            self.assertEqual(status, 200)
            self.assertEqual(body, data)
        # A real client, upstream down and blocked: the mirror's cache serves it.
        conf = os.path.join(self.work.path, "registries.conf")
        h.write_registries_conf(conf, self.registry.address, pg.address, blocked=True)
        out = os.path.join(self.work.path, "skopeo-out")
        r = h.skopeo_copy(conf, self.registry.address + "/it/stale:v1", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        files = h.read_dir_output(out)
        self.assertEqual(files["manifest.json"], self.image.manifest)
        # Something never cached fails cleanly while the upstream is down.
        status, _, body = pg.request("GET", "/v2/it/stale/manifests/never", headers=self.accept)
        self.assertGreaterEqual(status, 400)
        json.loads(body)
        self.assertTrue(pg.healthy())

        # Upstream back on the same port and storage: tags are re-checked again.
        self.registry.start()
        before = self.registry.count(tag_path)
        status, _, body = pg.request("GET", tag_path, headers=self.accept)
        self.assertEqual(status, 200)
        self.assertEqual(body, self.image.manifest)
        self.assertGreater(self.registry.count(tag_path), before)

    def test_offline_never_contacts_upstream(self):
        pg = h.Pullgate(self.work.path, [h.upstream_entry(self.registry, tag_ttl_s=0)]).start()
        self.addCleanup(pg.close)
        self.warm(pg)
        code, in_time = pg.stop()
        self.assertTrue(in_time, "pullgate did not exit within 10 s of SIGTERM")
        self.assertEqual(code, 0)

        for how in ("flag", "config"):
            with self.subTest(how=how):
                if how == "flag":
                    pg.args = ["--offline"]
                else:
                    pg.args = []
                    pg.config["offline"] = True
                    pg.write_config()
                pg.start()
                self.registry.sync_log()
                before = len(self.registry.requests())
                status, headers, body = pg.request("GET", "/v2/it/stale/manifests/v1", headers=self.accept)
                self.assertEqual(status, 200, body[:300])
                self.assertEqual(body, self.image.manifest)
                status, _, _ = pg.request("HEAD", "/v2/it/stale/manifests/v1", headers=self.accept)
                self.assertEqual(status, 200)
                for digest, data in self.image.blobs().items():
                    status, _, body = pg.request("GET", "/v2/it/stale/blobs/" + digest)
                    self.assertEqual(status, 200)
                    self.assertEqual(body, data)
                # Uncached things fail instead of being fetched.
                for path in ("/v2/it/stale/manifests/other", "/v2/it/nothere/manifests/v1",
                             "/v2/it/stale/tags/list", "/v2/it/stale/blobs/sha256:" + "ab" * 32):
                    status, _, _ = pg.request("GET", path, headers=self.accept)
                    self.assertNotEqual(status, 200, path)
                # sync_log's own marker request is the only new line allowed.
                self.registry.sync_log()
                new = self.registry.requests()[before:]
                self.assertEqual([r for r in new if "pullgate-test-marker" not in r[1]], [],
                                 "offline pullgate contacted the upstream")
                code, in_time = pg.stop()
                self.assertTrue(in_time)


class ForwardedAnswersKept(unittest.TestCase):
    """What of tags/list and referrers answers is kept for offline use: the whole tag
    list and a digest's unfiltered referrers, never what a client can vary without
    bound (n, last, artifactType). Offline, a filtered referrers request is answered by
    filtering the kept index (OCI-Filters-Applied says so); a page is not cached."""

    def test_only_answers_clients_cannot_multiply_are_kept(self):
        work = h.Workdir()
        self.addCleanup(work.close)
        registry = h.Registry(work.path).start()
        self.addCleanup(registry.close)
        image = h.seed_oci(registry, repo="it/kept", seed="kept")
        front = c.ReferrersFront(registry).start()
        self.addCleanup(front.close)
        sbom = c.sbom_referrer(image).push(registry)
        other = c.Artifact(image.repo, b"{}", h.MT_OCI_MANIFEST, "application/vnd.example.other", [])
        front.set_referrers(image.repo, image.digest, [sbom, other])
        pg = h.Pullgate(work.path, [{"name": front.address, "url": front.url, "default": True}]).start()
        self.addCleanup(pg.close)
        tags = "/v2/it/kept/tags/list"
        referrers = "/v2/it/kept/referrers/" + image.digest

        status, _, body = pg.request("GET", tags)
        self.assertEqual((status, json.loads(body)["tags"]), (200, ["v1"]), body[:300])
        status, _, body = pg.request("GET", referrers)
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(len(json.loads(body)["manifests"]), 2)
        # A client looping over pages and filters of its choosing: each is forwarded.
        for i in range(40):
            status, _, body = pg.request("GET", "%s?n=%d&last=a%d" % (tags, i + 1, i))
            self.assertEqual(status, 200, body[:300])
            status, headers, body = pg.request("GET", "%s?artifactType=application/vnd.example.t%d" % (referrers, i))
            self.assertEqual(status, 200, body[:300])
            self.assertEqual(json.loads(body)["manifests"], [])
            self.assertEqual(h.header(headers, "OCI-Filters-Applied"), "artifactType")  # the front's own
        self.assertEqual(front.requests_for(image.repo, image.digest), 41)

        pg.stop()
        pg.config["offline"] = True
        pg.write_config()
        pg.start()
        status, _, body = pg.request("GET", tags)
        self.assertEqual((status, json.loads(body)["tags"]), (200, ["v1"]), body[:300])
        for query in ("?n=1&last=a0", "?n=5&last=a4", "?n=2"):
            with self.subTest(query=query):
                status, _, body = pg.request("GET", tags + query)
                self.assertEqual(status, 404, "a page was kept: %r" % body[:300])
                self.assertIn("whole tag lists", h.oci_error(body)[1])
        status, headers, body = pg.request("GET", referrers)
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(len(json.loads(body)["manifests"]), 2)
        self.assertIsNone(h.header(headers, "OCI-Filters-Applied"))
        # Filters answered from the kept index, including those asked for online.
        for artifact_type, expected in ((c.MT_SPDX_JSON, [sbom.digest]), ("application/vnd.example.t3", []),
                                        ("application/vnd.example.other", [other.digest])):
            with self.subTest(artifact_type=artifact_type):
                status, headers, body = pg.request("GET", "%s?artifactType=%s" % (referrers, artifact_type))
                self.assertEqual(status, 200, body[:300])
                self.assertEqual([m["digest"] for m in json.loads(body)["manifests"]], expected)
                self.assertEqual(h.header(headers, "OCI-Filters-Applied"), "artifactType")
        self.assertEqual(front.requests_for(image.repo, image.digest), 41, "the offline mirror asked the upstream")


def push_big_manifests(registry, repo, count):
    """count images whose manifests are near Distribution's 4 MiB limit, tags v0.."""
    layer = h.small_layer(repo + "-layer")
    images = []
    for i in range(count):
        base = h.build_image(repo, "v%d" % i, [layer], label="%s-%d" % (repo, i))
        doc = json.loads(base.manifest)
        doc["annotations"] = {"padding": "x" * (3_500_000 + i)}
        images.append(h.push_image(registry, h.Image(base.repo, base.tag, json.dumps(doc).encode(),
                                                     base.manifest_type, base.config, base.layers)))
    return images


class FullMetadataStore(unittest.TestCase):
    def test_a_full_lmdb_map_fails_requests_with_an_error_and_keeps_serving(self):
        """The smallest LMDB map (16 MiB) and manifests near Distribution's 4 MiB limit:
        once the map is full, a new manifest gets 500 with an OCI error that says so
        (not a dropped connection), and what is cached is still served."""
        work = h.Workdir()
        self.addCleanup(work.close)
        registry = h.Registry(work.path).start()
        self.addCleanup(registry.close)
        pg = h.Pullgate(work.path, [h.upstream_entry(registry)],
                        extra={"cache": {"lmdb_map_size_mb": 16, "lmdb_max_map_size_mb": 16}}).start()
        self.addCleanup(pg.close)
        accept = [("Accept", a) for a in h.SKOPEO_ACCEPTS]
        served, failed = [], []
        for i, image in enumerate(push_big_manifests(registry, "it/full", 8)):
            status, headers, body = pg.request("GET", "/v2/it/full/manifests/v%d" % i, headers=accept)
            if status == 200:
                self.assertEqual(body, image.manifest)
                served.append(image)
                continue
            self.assertEqual(status, 500, body[:300])
            code, message = h.oci_error(body)
            self.assertEqual(code, "UNKNOWN")
            self.assertIn("metadata store is full", message)
            self.assertEqual(h.header(headers, "Connection"), "close")
            failed.append(image)
        self.assertTrue(served, "nothing fit in the map")
        self.assertTrue(failed, "the map never filled")
        self.assertTrue(pg.alive(), pg.stderr())
        status, _, body = pg.request("GET", "/v2/it/full/manifests/" + served[0].digest, headers=accept)
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(body, served[0].manifest)
        self.assertIn("metadata store is full", pg.stderr())
        warnings = [l for l in pg.log_events() if "at its maximum" in l.get("msg", "")]
        self.assertEqual(len(warnings), 1, pg.stderr()[-2000:])
        self.assertIn("cache.lmdb_max_map_size_mb", warnings[0]["fix"])

    def test_the_map_grows_instead_of_filling(self):
        """The same manifests with room to grow (the default maximum is 1 TiB): every
        one is served, the log says the map grew, the metrics show it."""
        work = h.Workdir()
        self.addCleanup(work.close)
        registry = h.Registry(work.path).start()
        self.addCleanup(registry.close)
        pg = h.Pullgate(work.path, [h.upstream_entry(registry)], extra={"cache": {"lmdb_map_size_mb": 16}}).start()
        self.addCleanup(pg.close)
        accept = [("Accept", a) for a in h.SKOPEO_ACCEPTS]
        images = push_big_manifests(registry, "it/grow", 8)
        for i, image in enumerate(images):
            status, _, body = pg.request("GET", "/v2/it/grow/manifests/v%d" % i, headers=accept)
            self.assertEqual(status, 200, body[:300])
            self.assertEqual(body, image.manifest)
        grown = [l for l in pg.log_events() if l.get("msg") == "LMDB map grown"]
        self.assertTrue(grown, pg.stderr()[-2000:])
        self.assertGreater(grown[-1]["new_map_mb"], 16)
        self.assertGreater(h.metric(pg, "pullgate_lmdb_map_bytes "), 16 << 20)
        self.assertEqual(h.metric(pg, "pullgate_lmdb_map_max_bytes "), 1 << 40)
        for i, image in enumerate(images):  # still there after growing
            status, _, body = pg.request("GET", "/v2/it/grow/manifests/" + image.digest, headers=accept)
            self.assertEqual(status, 200, body[:300])


class MisbehavingUpstream(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = h.Workdir()
        cls.addClassCleanup(cls.work.close)
        cls.fake = FakeUpstream()
        cls.addClassCleanup(cls.fake.close)
        cls.pullgate = h.Pullgate(cls.work.path, [{"name": cls.fake.address, "url": "http://" + cls.fake.address,
                                                   "default": True, "tag_ttl_s": 300}]).start()
        cls.addClassCleanup(cls.pullgate.close)
        status, _, body = cls.pullgate.request("GET", "/v2/fake/img/manifests/v1",
                                               headers=[("Accept", a) for a in h.SKOPEO_ACCEPTS])
        if status != 200 or body != cls.fake.image.manifest:
            raise RuntimeError("manifest through pullgate from the fake: %d %r" % (status, body[:300]))

    def setUp(self):
        self.assertTrue(self.pullgate.alive(), "pullgate died: " + self.pullgate.stderr())

    def blob_path(self, name):
        return "/v2/fake/img/blobs/" + self.fake.layers[name].digest

    def cached(self, name):
        hexd = self.fake.layers[name].digest.split(":", 1)[1]
        return os.path.exists(os.path.join(self.pullgate.data_dir, "blobs", "sha256", hexd[:2], hexd))

    def assert_never_complete_and_wrong(self, name, result):
        status, declared, got, complete = result
        layer = self.fake.layers[name]
        if status == 200 and complete:
            self.fail("a broken upstream body reached the client complete (%d bytes, %s, expected %s)"
                      % (len(got), h.sha256_digest(got), layer.digest))
        if status == 200:
            self.assertEqual(declared, layer.size)
            self.assertLess(len(got), layer.size)

    def upstream_requests(self):
        """pullgate_upstream_requests_total for the fake, all statuses and "error"."""
        status, _, body = h.admin_request(self.pullgate, h.read_token(self.pullgate), "GET", "/metrics")
        self.assertEqual(status, 200)
        label = 'upstream="%s"' % self.fake.address
        return sum(float(line.rsplit(None, 1)[1]) for line in body.decode().splitlines()
                   if line.startswith("pullgate_upstream_requests_total{") and label in line)

    def check_bad_blob(self, name):
        path = self.blob_path(name)
        counted = self.upstream_requests()
        before = self.fake.count("GET", path)
        result = read_body(self.pullgate.host, self.pullgate.port, path)
        self.assert_never_complete_and_wrong(name, result)
        self.assertEqual(self.fake.count("GET", path), before + 1)
        self.assertTrue(self.pullgate.healthy())
        self.assertFalse(self.cached(name))
        # Nothing was cached: the next request goes upstream again, and fails the same way.
        result = read_body(self.pullgate.host, self.pullgate.port, path)
        self.assert_never_complete_and_wrong(name, result)
        h.wait_until(lambda: self.fake.count("GET", path) == before + 2, 10, "a second upstream GET")
        self.assertFalse(self.cached(name))
        self.assertTrue(self.pullgate.healthy())
        # Failed downloads are counted like any other upstream request.
        h.wait_until(lambda: self.upstream_requests() == counted + 2, 10, "two more upstream requests in /metrics")

    def test_good_blob(self):
        status, declared, got, complete = read_body(self.pullgate.host, self.pullgate.port, self.blob_path("good"))
        self.assertEqual((status, complete), (200, True))
        self.assertEqual(got, self.fake.layers["good"].blob)

    def test_wrong_bytes(self):
        self.check_bad_blob("wrong")

    def test_reset_mid_blob(self):
        self.check_bad_blob("reset")

    def test_stall(self):
        path = self.blob_path("stall")
        before = self.fake.count("GET", path)
        # The client gives up first (the contract offers no upstream timeout setting).
        result = read_body(self.pullgate.host, self.pullgate.port, path, timeout=3)
        self.assert_never_complete_and_wrong("stall", result)
        # Still stalled upstream: the mirror keeps answering others.
        self.assertTrue(self.pullgate.healthy())
        status, _, body = self.pullgate.request("GET", self.blob_path("good"))
        self.assertEqual(status, 200)
        self.assertEqual(body, self.fake.layers["good"].blob)
        # Let the upstream end its response short; nothing may be cached.
        self.fake.release_stall.set()
        h.wait_until(lambda: self.pullgate.healthy(), 10, "pullgate healthy")
        # A request may still join the dying fetch; keep asking until one goes upstream.
        def fresh_get():
            result = read_body(self.pullgate.host, self.pullgate.port, path, timeout=30)
            self.assert_never_complete_and_wrong("stall", result)
            return self.fake.count("GET", path) >= before + 2
        h.wait_until(fresh_get, 60, "a fresh upstream GET after the stall", interval=0.2)
        self.assertFalse(self.cached("stall"))
        self.assertTrue(self.pullgate.healthy())

    def test_manifest_digest_mismatch_refused(self):
        path = "/v2/fake/img/manifests/" + self.fake.lying_digest
        status, headers, body = self.pullgate.request("GET", path, headers=[("Accept", a) for a in h.SKOPEO_ACCEPTS])
        self.assertNotEqual(status, 200, "pullgate served bytes that do not match the requested digest")
        self.assertNotEqual(body, self.fake.image.manifest)
        self.assertTrue(self.pullgate.healthy())


if __name__ == "__main__":
    unittest.main(verbosity=2)
