"""Real clients (skopeo, containerd) and raw HTTP pulling through pullgate from a real
upstream (CNCF Distribution 2.8)."""
import json
import os
import unittest
import urllib.parse

import harness as h


def strip_query(path):
    return path.split("?", 1)[0]


class PullThroughPullgate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = h.Workdir()
        cls.addClassCleanup(cls.work.close)
        cls.registry = h.Registry(cls.work.path).start()
        cls.addClassCleanup(cls.registry.close)
        cls.schema2 = h.seed_schema2(cls.registry)
        cls.oci = h.seed_oci(cls.registry)
        cls.index = h.seed_index(cls.registry)
        cls.tags_repo = "it/tags"
        for t in ("t1", "t2", "t3", "t4", "t5"):
            h.push_image(cls.registry, h.build_image(cls.tags_repo, t, [h.small_layer("tags")], label="tags"))
        cls.pullgate = h.Pullgate(cls.work.path, [h.upstream_entry(cls.registry, aliases=["upstream.test"])]).start()
        cls.addClassCleanup(cls.pullgate.close)

    def setUp(self):
        self.assertTrue(self.pullgate.alive(), "pullgate died before this test: " + self.pullgate.stderr())

    def tearDown(self):
        self.assertTrue(self.pullgate.alive(), "pullgate died in this test: " + self.pullgate.stderr())

    # ---------------------------------------------------------------- helpers

    def get(self, path, accept=None, method="GET", headers=None, body=None):
        hs = list(headers or [])
        if accept is not None:
            hs += [("Accept", a) for a in accept]
        return self.pullgate.request(method, path, headers=hs, body=body)

    def pullgate_requests_at_upstream(self):
        self.registry.sync_log()
        return [r for r in self.registry.requests() if r[2].startswith("pullgate/")]

    def assert_oci_error(self, status, body, expected_status, code=None):
        self.assertEqual(status, expected_status, body[:300])
        doc = json.loads(body)
        self.assertIsInstance(doc.get("errors"), list, body)
        self.assertTrue(doc["errors"], body)
        self.assertIn("code", doc["errors"][0])
        self.assertIn("message", doc["errors"][0])
        if code:
            self.assertEqual(doc["errors"][0]["code"], code, body)

    def log_entries(self, method, path, pg=None):
        return [e for e in (pg or self.pullgate).access_log()
                if e.get("method") == method and strip_query(e.get("path", "")) == path]

    def assert_logged_ok(self, method, path, pg=None):
        """The access-log line is written when the response is done, so poll for it."""
        h.wait_until(lambda: any(e.get("status") in (200, 206) for e in self.log_entries(method, path, pg)),
                     10, "a %s %s line with status 200 in pullgate's access log" % (method, path))

    # ---------------------------------------------------------------- skopeo

    def skopeo_pull(self, ref, all_images=False):
        conf = os.path.join(self.work.path, "registries-%s.conf" % ref.replace("/", "_").replace(":", "_"))
        h.write_registries_conf(conf, self.registry.address, self.pullgate.address, blocked=True)
        out = os.path.join(self.work.path, "skopeo-" + os.path.basename(conf))
        r = h.skopeo_copy(conf, "%s/%s" % (self.registry.address, ref), out, all_images=all_images)
        self.assertEqual(r.returncode, 0, "skopeo failed: %s\npullgate stderr: %s" % (r.stderr, self.pullgate.stderr()))
        return h.read_dir_output(out)

    def assert_dir_has_image(self, files, image, manifest_name="manifest.json"):
        self.assertEqual(files[manifest_name], image.manifest)
        for digest, data in image.blobs().items():
            name = digest.split(":", 1)[1]
            self.assertIn(name, files)
            self.assertEqual(files[name], data, "blob %s differs" % digest)

    def test_skopeo_schema2(self):
        files = self.skopeo_pull("it/schema2:v1")
        self.assert_dir_has_image(files, self.schema2)
        self.assert_logged_ok("GET", "/v2/it/schema2/manifests/v1")
        for digest in self.schema2.blobs():
            self.assert_logged_ok("GET", "/v2/it/schema2/blobs/" + digest)

    def test_skopeo_index_all(self):
        files = self.skopeo_pull("it/multi:v1", all_images=True)
        self.assertEqual(files["manifest.json"], self.index.manifest)
        for child in self.index.children.values():
            hexd = child.digest.split(":", 1)[1]
            self.assert_dir_has_image(files, child, manifest_name=hexd + ".manifest.json")
        self.assert_logged_ok("GET", "/v2/it/multi/manifests/v1")

    # ---------------------------------------------------------------- containerd

    def test_containerd_via_ns(self):
        """ctr with hosts.toml naming pullgate as mirror. pullgate's default upstream is
        a decoy, so the pull can only work if the ?ns= form routed it."""
        decoy = {"name": "decoy.invalid", "url": "http://127.0.0.1:%d" % h.free_port(), "default": True}
        real = h.upstream_entry(self.registry, default=False)
        pg = h.Pullgate(self.work.path, [decoy, real]).start()
        self.addCleanup(pg.close)
        ctrd = h.Containerd().start()
        self.addCleanup(ctrd.close)
        ctrd.write_hosts(self.registry.address, pg.address)

        ref = "%s/it/oci:v1" % self.registry.address
        r = ctrd.pull("oci", ref)
        self.assertEqual(r.returncode, 0, "ctr pull failed: %s\npullgate stderr: %s" % (r.stderr, pg.stderr()))
        self.assertEqual(ctrd.image_digest("oci", ref), self.oci.digest)
        self.assertEqual(ctrd.content("oci", self.oci.digest), self.oci.manifest)
        for digest, data in self.oci.blobs().items():
            self.assertEqual(ctrd.content("oci", digest), data, "content %s differs" % digest)

        ref_idx = "%s/it/multi:v1" % self.registry.address
        r = ctrd.pull("multi", ref_idx, platform="linux/amd64")
        self.assertEqual(r.returncode, 0, "ctr pull failed: %s\npullgate stderr: %s" % (r.stderr, pg.stderr()))
        self.assertEqual(ctrd.image_digest("multi", ref_idx), self.index.digest)
        self.assertEqual(ctrd.content("multi", self.index.digest), self.index.manifest)
        amd64 = self.index.children[("linux", "amd64")]
        self.assertEqual(ctrd.content("multi", amd64.digest), amd64.manifest)
        for digest, data in amd64.blobs().items():
            self.assertEqual(ctrd.content("multi", digest), data)

        # Everything came through pullgate: containerd itself never reached the upstream
        # (hosts.toml allows fallback, so this is what proves the mirror served it).
        self.registry.sync_log()
        direct = [r for r in self.registry.requests() if r[2].startswith("containerd")]
        self.assertEqual(direct, [], "containerd fell back to the upstream")
        for digest in amd64.blobs():
            self.assert_logged_ok("GET", "/v2/it/multi/blobs/" + digest, pg)
        for digest in self.oci.blobs():
            self.assert_logged_ok("GET", "/v2/it/oci/blobs/" + digest, pg)
        log = pg.access_log()
        for repo in ("it/oci", "it/multi"):
            hits = [e for e in log if strip_query(e.get("path", "")).startswith("/v2/%s/" % repo)]
            self.assertTrue(hits, "no access-log lines for " + repo)
            for e in hits:
                self.assertEqual(e.get("upstream"), self.registry.address, e)
                self.assertIn(e.get("status"), (200, 206), e)
                if "?" in e.get("path", ""):
                    query = urllib.parse.parse_qs(e["path"].split("?", 1)[1])
                    self.assertEqual(query.get("ns"), [self.registry.address], e)
        # The decoy was never the one answering.
        self.assertFalse([e for e in log if e.get("upstream") == "decoy.invalid"])

    # ---------------------------------------------------------------- raw HTTP

    def test_base(self):
        status, headers, body = self.get("/v2/")
        self.assertEqual(status, 200, body)
        self.assertEqual(h.header(headers, "Docker-Distribution-API-Version"), "registry/2.0")

    def check_manifest_response(self, status, headers, body, image, method):
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(h.header(headers, "Content-Type"), image.manifest_type)
        self.assertEqual(int(h.header(headers, "Content-Length")), len(image.manifest))
        self.assertEqual(h.header(headers, "Docker-Content-Digest"), image.digest)
        etag = h.header(headers, "ETag")
        self.assertIsNotNone(etag, "no ETag")
        self.assertIn(image.digest, etag)
        if method == "GET":
            self.assertEqual(body, image.manifest)
        else:
            self.assertEqual(body, b"")

    def test_manifest_by_tag_and_digest(self):
        for image in (self.schema2, self.oci):
            for ref in (image.tag, image.digest):
                for method in ("GET", "HEAD"):
                    path = "/v2/%s/manifests/%s" % (image.repo, ref)
                    with self.subTest(path=path, method=method):
                        status, headers, body = self.get(path, accept=h.SKOPEO_ACCEPTS, method=method)
                        self.check_manifest_response(status, headers, body, image, method)
        # One comma-joined Accept line, as containerd sends it.
        status, headers, body = self.get("/v2/it/oci/manifests/v1", accept=[h.ALL_MANIFEST_ACCEPT + ", */*"])
        self.check_manifest_response(status, headers, body, self.oci, "GET")

    def test_accept_negotiation_for_index(self):
        path = "/v2/it/multi/manifests/v1"
        # Cold: a client that accepts only schema2 must not get the index.
        status, headers, body = self.get(path, accept=[h.MT_DOCKER_MANIFEST])
        self.assertGreaterEqual(status, 400, body[:300])
        self.assertNotEqual(body, self.index.manifest)
        self.assertNotEqual(h.header(headers, "Content-Type"), h.MT_OCI_INDEX)
        json.loads(body)  # an error document, not the index
        # Six separate Accept lines: the index.
        status, headers, body = self.get(path, accept=h.SKOPEO_ACCEPTS)
        self.check_manifest_response(status, headers, body, self.index, "GET")
        # Warm: the cached index must still not go to a client that cannot read it.
        for method in ("GET", "HEAD"):
            status, headers, body = self.get(path, accept=[h.MT_DOCKER_MANIFEST], method=method)
            self.assertGreaterEqual(status, 400, "warm %s gave %d" % (method, status))
            self.assertNotEqual(h.header(headers, "Docker-Content-Digest"), self.index.digest)
            self.assertNotEqual(body, self.index.manifest)
        # Children by digest.
        for child in self.index.children.values():
            status, headers, body = self.get("/v2/it/multi/manifests/" + child.digest, accept=h.SKOPEO_ACCEPTS)
            self.check_manifest_response(status, headers, body, child, "GET")

    def test_blob_get_equals_upstream(self):
        self.get("/v2/it/oci/manifests/v1", accept=h.SKOPEO_ACCEPTS)
        for digest, data in self.oci.blobs().items():
            path = "/v2/it/oci/blobs/" + digest
            status, headers, body = self.get(path)
            up_status, _, up_body = h.http_request(self.registry.host, self.registry.port, "GET", path)
            self.assertEqual(up_status, 200)
            self.assertEqual(status, 200, body[:300])
            self.assertEqual(body, up_body)
            self.assertEqual(body, data)
            self.assertEqual(int(h.header(headers, "Content-Length")), len(data))
            self.assertEqual(h.header(headers, "Docker-Content-Digest"), digest)
            # HEAD after GET: no body, same length.
            status, headers, body = self.get(path, method="HEAD")
            self.assertEqual(status, 200)
            self.assertEqual(body, b"")
            self.assertEqual(int(h.header(headers, "Content-Length")), len(data))

    def test_tags_list(self):
        # Distribution 2.8.2 ignores n and last (and does not sort), so pullgate must
        # pass the upstream's answer through and forward n/last as asked.
        path = "/v2/%s/tags/list" % self.tags_repo
        for query in ("", "?n=2", "?n=2&last=t2", "?n=10&last=t5"):
            with self.subTest(query=query):
                up_status, _, up_body = h.http_request(self.registry.host, self.registry.port, "GET", path + query)
                status, headers, body = self.get(path + query)
                self.assertEqual(status, up_status, body[:300])
                self.assertEqual(json.loads(body), json.loads(up_body))
                self.assertTrue(set(json.loads(body)["tags"]) <= {"t1", "t2", "t3", "t4", "t5"})
        status, _, body = self.get(path)
        self.assertEqual(sorted(json.loads(body)["tags"]), ["t1", "t2", "t3", "t4", "t5"])
        self.registry.sync_log()
        forwarded = [urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
                     for m, uri, ua in self.registry.requests()
                     if ua.startswith("pullgate/") and urllib.parse.urlsplit(uri).path == path]
        self.assertIn({"n": ["2"], "last": ["t2"]}, forwarded, "n/last not forwarded to the upstream")
        # A decoded `&` or `#` in last stays inside last: it never adds to the upstream's query.
        status, _, body = self.get(path + "?last=a%26n%3D999%23frag&n=1")
        self.assertEqual(status, 200, body[:300])
        self.registry.sync_log()
        sneaky = [uri for m, uri, ua in self.registry.requests()
                  if ua.startswith("pullgate/") and urllib.parse.urlsplit(uri).path == path and "frag" in uri]
        self.assertTrue(sneaky, "the request with last=a&n=999#frag did not reach the upstream")
        for uri in sneaky:
            self.assertEqual(urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query),
                             {"n": ["1"], "last": ["a&n=999#frag"]}, uri)

    def test_referrers_passed_through(self):
        # Its own instance, so a crash here does not take the other tests with it.
        pg = h.Pullgate(self.work.path, [h.upstream_entry(self.registry)]).start()
        self.addCleanup(pg.close)
        path = "/v2/it/oci/referrers/" + self.oci.digest
        up_status, up_headers, up_body = h.http_request(self.registry.host, self.registry.port, "GET", path)
        status, headers, body = pg.request("GET", path)
        self.assertTrue(pg.healthy(), "pullgate died after GET %s: %s" % (path, pg.stderr()))
        self.assertEqual(status, up_status, "upstream said %d, pullgate %d: %r" % (up_status, status, body[:300]))
        if status == 200:
            doc = json.loads(body)
            self.assertEqual(doc.get("mediaType"), h.MT_OCI_INDEX)
            self.assertIsInstance(doc.get("manifests"), list)

    def test_push_and_delete_refused(self):
        before = len(self.pullgate_requests_at_upstream())
        attempts = [
            ("POST", "/v2/it/oci/blobs/uploads/", b""),
            ("PATCH", "/v2/it/oci/blobs/uploads/0a3c5e0b-0000-4000-8000-000000000000", b"abc"),
            ("PUT", "/v2/it/oci/blobs/uploads/0a3c5e0b-0000-4000-8000-000000000000?digest=" + self.oci.config_digest,
             self.oci.config),
            ("PUT", "/v2/it/oci/manifests/v2", self.oci.manifest),
            ("DELETE", "/v2/it/oci/manifests/" + self.oci.digest, None),
            ("DELETE", "/v2/it/oci/blobs/" + self.oci.config_digest, None),
        ]
        for method, path, body in attempts:
            with self.subTest(method=method, path=path):
                hs = [("Content-Type", h.MT_OCI_MANIFEST)] if "manifests" in path else []
                status, _, resp = self.get(path, method=method, headers=hs, body=body)
                self.assert_oci_error(status, resp, 405, "UNSUPPORTED")
        self.assertEqual(len(self.pullgate_requests_at_upstream()), before, "a write reached the upstream")
        status, _, _ = h.http_request(self.registry.host, self.registry.port, "GET", "/v2/it/oci/manifests/v1",
                                      headers=[("Accept", h.MT_OCI_MANIFEST)])
        self.assertEqual(status, 200)
        status, _, _ = h.http_request(self.registry.host, self.registry.port, "GET", "/v2/it/oci/manifests/v2",
                                      headers=[("Accept", h.MT_OCI_MANIFEST)])
        self.assertEqual(status, 404)

    def test_bad_requests_refused(self):
        before = len(self.pullgate_requests_at_upstream())
        bad = [
            "/v2/It/Oci/manifests/v1",                       # upper case name
            "/v2/it/oci/manifests/sha256:1234",               # short digest
            "/v2/it/oci/blobs/sha256:" + "g" * 64,            # not hex
            "/v2/it/oci/blobs/md5:0123456789abcdef",          # unknown algorithm
            "/v2/it/%2e%2e/oci/manifests/v1",                 # encoded dot segment
            "/v2/it/%2E%2E/%2E%2E/etc/manifests/v1",
            "/v2/it%2Foci/manifests/v1",                      # encoded slash
            "/v2/it/oci%2F..%2F..%2Fx/manifests/v1",
            "/v2/it/oci/blobs/sha256:%2e%2e%2f%2e%2e",
            "/v2/it/oci/manifests/v1%00",
        ]
        for path in bad:
            with self.subTest(path=path):
                status, headers, body = self.get(path, accept=h.SKOPEO_ACCEPTS)
                self.assert_oci_error(status, body, 400)
        # A tag outside the grammar names no manifest: 404 MANIFEST_UNKNOWN, as the
        # distribution spec's pull tests expect; never forwarded either.
        status, headers, body = self.get("/v2/it/oci/manifests/bad!tag", accept=h.SKOPEO_ACCEPTS)
        self.assert_oci_error(status, body, 404)
        self.assertEqual(h.oci_error(body)[0], "MANIFEST_UNKNOWN")
        self.assertEqual(len(self.pullgate_requests_at_upstream()), before,
                         "a bad request was forwarded to the upstream")
        self.assertTrue(self.pullgate.healthy())

    def test_routing_ns_and_prefix(self):
        # Known ns (the upstream's name, URL-encoded as containerd sends it) and an alias.
        for ns in (urllib.parse.quote(self.registry.address, safe=""), "upstream.test"):
            with self.subTest(ns=ns):
                status, headers, body = self.get("/v2/it/oci/manifests/v1?ns=" + ns, accept=h.SKOPEO_ACCEPTS)
                self.check_manifest_response(status, headers, body, self.oci, "GET")
        # Path prefix with the alias.
        status, headers, body = self.get("/v2/upstream.test/it/schema2/manifests/v1", accept=h.SKOPEO_ACCEPTS)
        self.check_manifest_response(status, headers, body, self.schema2, "GET")
        status, headers, body = self.get("/v2/upstream.test/it/schema2/blobs/" + self.schema2.config_digest)
        self.assertEqual(status, 200)
        self.assertEqual(body, self.schema2.config)

        # Unknown ns: refused, never dialled.
        before = len(self.pullgate_requests_at_upstream())
        for path in ("/v2/it/oci/manifests/v1?ns=unknown.example",
                     "/v2/it/oci/manifests/v1?ns=evil.example%3A443",
                     "/v2/it/fresh-never-seen/manifests/v9?ns=unknown.example",
                     "/v2/it/oci/blobs/%s?ns=unknown.example" % self.oci.config_digest):
            with self.subTest(path=path):
                status, headers, body = self.get(path, accept=h.SKOPEO_ACCEPTS)
                self.assert_oci_error(status, body, 404, "NAME_UNKNOWN")
        self.assertEqual(len(self.pullgate_requests_at_upstream()), before)

    def test_zz_sigterm_exits_cleanly(self):
        # Last (zz): a separate instance, so the shared one serves the other tests.
        pg = h.Pullgate(self.work.path, [h.upstream_entry(self.registry)]).start()
        self.addCleanup(pg.close)
        status, _, _ = pg.request("GET", "/v2/")
        self.assertEqual(status, 200)
        code, in_time = pg.stop()
        self.assertTrue(in_time, "pullgate did not exit within 10 s of SIGTERM")
        self.assertEqual(code, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
