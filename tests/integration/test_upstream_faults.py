"""An upstream that misbehaves in the ways test_resilience does not cover: a wrong
Content-Length (shorter and longer than the body, then close), a redirect loop, a TLS
handshake that fails (a certificate not trusted, a plain-TCP server behind https), a
token server that accepts and never answers, and a storm of 429s with Retry-After.
Each time the client gets a clear OCI error (never a hang, never bytes passed off as
complete), nothing wrong is cached (`pullgate cache verify` clean), and the mirror
keeps serving. The upstreams are small Python servers (fake_upstream.py) that
misbehave on demand."""
import os
import threading
import unittest

import fake_upstream as f
import harness as h
from test_cache_verify import verify
from test_resilience import read_body

ACCEPT = [("Accept", a) for a in h.SKOPEO_ACCEPTS]


def upstream_errors(pg, name):
    """pullgate_upstream_requests_total{upstream=name,status="error"}: answers never had."""
    try:
        return h.metric(pg, 'pullgate_upstream_requests_total{upstream="%s",status="error"}' % name)
    except LookupError:
        return 0


def one_layer_image(repo, seed, size):
    return h.build_image(repo, "v1", [h.big_layer(seed, size=size)], label=seed)


class Base(unittest.TestCase):
    def setUp(self):
        self.work = h.Workdir()
        self.addCleanup(self.work.close)

    def fake(self, images=(), tls=None):
        fake = f.FakeRegistry(images, tls=tls)
        self.addCleanup(fake.close)
        return fake

    def pullgate(self, fakes, extra=None, **entry):
        pg = f.plain_pullgate(self.work.path, fakes, extra=extra, **entry).start()
        self.addCleanup(pg.close)
        return pg

    def assert_verify_clean(self, pg):
        code, found, summary = verify(pg, "--grace", "0s")
        self.assertEqual((code, found, summary["errors"]), (0, [], 0), summary)

    def assert_clear_error(self, status, body, *texts):
        """A 5xx (or 4xx) with an OCI error body whose message holds texts."""
        self.assertGreaterEqual(status, 400, body[:300])
        code, message = h.oci_error(body)
        for text in texts:
            self.assertIn(text, message)
        return code, message


class WrongContentLength(Base):
    def setUp(self):
        super().setUp()
        self.image = one_layer_image("cl/app", "wrong-cl", 1024 * 1024)
        self.upstream = self.fake([self.image])
        self.pg = self.pullgate([self.upstream])
        status, _, body = self.pg.request("GET", "/v2/cl/app/manifests/v1", headers=ACCEPT)
        self.assertEqual((status, body), (200, self.image.manifest))
        self.layer = self.image.layers[0]
        self.path = "/v2/cl/app/blobs/" + self.layer.digest

    def script(self, delta):
        """The blob's true bytes under a Content-Length off by delta, then close."""
        return lambda handler, data, headers: f.raw_response(handler, 200, headers, data, declared=len(data) + delta)

    def check(self, delta):
        self.upstream.set(self.path, self.script(delta))
        before = self.upstream.count("GET", self.path)
        status, declared, got, complete = read_body(self.pg.host, self.pg.port, self.path)
        self.assertEqual(self.upstream.count("GET", self.path), before + 1)
        if status == 200:
            # Headers went out before the fault showed: the client must see a short read.
            self.assertFalse(complete, "a body with a wrong Content-Length reached the client complete "
                                       "(%d of %s bytes)" % (len(got), declared))
        else:
            self.assert_clear_error(status, got)
        self.assertFalse(os.path.exists(os.path.join(self.pg.data_dir, "blobs", "sha256",
                                                     self.layer.digest[7:9], self.layer.digest[7:])))
        self.assertTrue(self.pg.healthy())
        self.assert_verify_clean(self.pg)
        # Upstream fixed: the next pull is fetched again, whole and right.
        self.upstream.set(self.path, None)
        status, _, body = self.pg.request("GET", self.path)
        self.assertEqual((status, body), (200, self.layer.blob))
        self.assertEqual(self.upstream.count("GET", self.path), before + 2)

    def test_declared_longer_than_the_body(self):
        self.check(+4096)

    def test_declared_shorter_than_the_body(self):
        self.check(-4096)

    def test_manifest_declared_longer_than_its_body(self):
        other = h.build_image("cl/app", "v2", [h.small_layer("wrong-cl-2")], label="v2")
        self.upstream.images.append(other)
        path = "/v2/cl/app/manifests/" + other.digest
        self.upstream.set(path, self.script(+100))
        status, _, body = self.pg.request("GET", path, headers=ACCEPT)
        self.assert_clear_error(status, body, self.upstream.address)
        self.assertGreaterEqual(status, 500)
        self.assertTrue(self.pg.healthy())
        self.upstream.set(path, None)
        status, _, body = self.pg.request("GET", path, headers=ACCEPT)
        self.assertEqual((status, body), (200, other.manifest))


class RedirectLoop(Base):
    def test_a_blob_redirecting_to_itself_and_a_to_b_to_a(self):
        image = one_layer_image("loop/app", "loop", 64 * 1024)
        upstream = self.fake([image])
        pg = self.pullgate([upstream])
        status, _, body = pg.request("GET", "/v2/loop/app/manifests/v1", headers=ACCEPT)
        self.assertEqual((status, body), (200, image.manifest))
        path = "/v2/loop/app/blobs/" + image.layers[0].digest
        hop = "/hop/b"

        def to(location):
            return lambda handler, data, headers: f.raw_response(
                handler, 302, [("Location", location)], b"", close=False)
        for name, scripts in (("to itself", {path: to(path)}), ("a to b to a", {path: to(hop), hop: to(path)})):
            with self.subTest(name):
                for p, script in scripts.items():
                    upstream.set(p, script)
                before = upstream.count("GET", path) + upstream.count("GET", hop)
                errors = upstream_errors(pg, upstream.address)
                status, _, body = pg.request("GET", path)
                self.assertEqual(status, 502, body[:300])
                code, message = self.assert_clear_error(status, body, "redirect", upstream.address)
                self.assertEqual(code, "UNKNOWN")
                # Five redirects followed, then given up: the first request and five hops.
                self.assertEqual(upstream.count("GET", path) + upstream.count("GET", hop) - before, 6)
                self.assertEqual(upstream_errors(pg, upstream.address), errors + 1)
                for p in scripts:
                    upstream.set(p, None)
        self.assertTrue(pg.healthy())
        self.assert_verify_clean(pg)
        status, _, body = pg.request("GET", path)
        self.assertEqual((status, body), (200, image.layers[0].blob))


class TlsHandshakeFailure(Base):
    def check(self, upstream, pg, *texts):
        errors = upstream_errors(pg, upstream.address)
        status, _, body = pg.request("GET", "/v2/tls/app/manifests/v1", headers=ACCEPT)
        self.assertEqual(status, 502, body[:300])
        code, message = self.assert_clear_error(status, body, upstream.address, *texts)
        self.assertEqual(code, "UNKNOWN")
        self.assertEqual(upstream_errors(pg, upstream.address), errors + 1)
        self.assertTrue(pg.healthy())
        return message

    def test_a_certificate_not_in_the_ca_bundle(self):
        cert, key = h.make_self_signed_cert(self.work.path)
        upstream = self.fake([one_layer_image("tls/app", "tls", 4096)], tls=(cert, key))
        pg = self.pullgate([upstream])
        message = self.check(upstream, pg, "certificate verify failed")
        self.assertEqual(upstream.count("GET", "/v2/tls/app/manifests/v1"), 0, message)

    def test_a_plain_tcp_server_behind_an_https_url(self):
        plain = f.SilentServer(reply=b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        self.addCleanup(plain.close)
        plain.url = "https://" + plain.address
        pg = self.pullgate([plain])
        self.check(plain, pg, "TLS")
        self.assertGreaterEqual(plain.accepted, 1)


class HangingTokenServer(Base):
    def test_the_pull_fails_within_the_timeout_and_other_upstreams_keep_working(self):
        silent = f.SilentServer()
        self.addCleanup(silent.close)
        challenge = 'Bearer realm="http://%s/token",service="hang"' % silent.address
        private = self.fake()
        private.set("/v2/priv/app/manifests/v1",
                    f.status_script(401, [("WWW-Authenticate", challenge), ("Content-Type", "application/json")],
                                    b'{"errors":[{"code":"UNAUTHORIZED","message":"log in"}]}'))
        other_image = one_layer_image("pub/app", "hang-other", 4096)
        other = self.fake([other_image])
        pg = f.plain_pullgate(self.work.path, [private, other], response_timeout_s=2).start()
        self.addCleanup(pg.close)

        result = {}
        hung = threading.Thread(target=lambda: result.setdefault(
            "r", pg.request("GET", "/v2/priv/app/manifests/v1", headers=ACCEPT, timeout=60)))
        hung.start()
        h.wait_until(lambda: silent.accepted >= 1, 30, "the token request at the silent server")
        # While the token fetch hangs, the other upstream is served.
        status, _, body = pg.request("GET", "/v2/pub/app/manifests/v1?ns=" + other.address, headers=ACCEPT)
        self.assertEqual((status, body), (200, other_image.manifest))
        status, _, body = pg.request("GET", "/v2/pub/app/blobs/%s?ns=%s" % (other_image.layers[0].digest,
                                                                            other.address))
        self.assertEqual((status, body), (200, other_image.layers[0].blob))
        hung.join(60)
        self.assertFalse(hung.is_alive(), "the pull behind a hanging token server never ended")
        status, _, body = result["r"]
        self.assertEqual(status, 502, body[:300])
        code, message = self.assert_clear_error(status, body, private.address, "within the response timeout")
        self.assertIn(silent.address, message)
        self.assertTrue(pg.healthy())


class RateLimitStorm(Base):
    def test_retry_after_is_honoured_and_cached_content_served_meanwhile(self):
        image = one_layer_image("rl/app", "storm", 64 * 1024)
        uncached = h.build_image("rl/app", "v2", [h.small_layer("storm-2")], label="v2")
        upstream = self.fake([image, uncached])
        # tag_ttl_s 0: every pull by tag asks the upstream while it answers.
        pg = self.pullgate([upstream], tag_ttl_s=0)
        tag = "/v2/rl/app/manifests/v1"
        for path, data in [(tag, image.manifest)] + [("/v2/rl/app/blobs/" + d, b) for d, b in image.blobs().items()]:
            status, _, body = pg.request("GET", path, headers=ACCEPT)
            self.assertEqual((status, body), (200, data))

        def asked(path):
            return upstream.count("GET", path) + upstream.count("HEAD", path)
        limited = f.status_script(429, [("Retry-After", "3600"), ("Content-Type", "application/json")],
                                  b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}')
        for path in (tag, "/v2/rl/app/manifests/v2", "/v2/rl/app/manifests/" + uncached.digest):
            upstream.set(path, limited)
        before = asked(tag)
        for _ in range(20):
            status, _, body = pg.request("GET", tag, headers=ACCEPT)
            self.assertEqual((status, body), (200, image.manifest), "stale-if-error during the 429s")
        self.assertEqual(asked(tag) - before, 1, "pullgate asked a rate-limiting upstream again before its "
                                                 "Retry-After (%d requests)" % (asked(tag) - before))
        # Uncached content: the 429 is passed on with the time left, upstream not asked.
        for path in ("/v2/rl/app/manifests/v2", "/v2/rl/app/manifests/" + uncached.digest):
            status, headers, body = pg.request("GET", path, headers=ACCEPT)
            self.assertEqual(status, 429, body[:300])
            self.assertEqual(h.oci_error(body)[0], "TOOMANYREQUESTS")
            self.assertLessEqual(int(h.header(headers, "Retry-After")), 3600)
            self.assertGreater(int(h.header(headers, "Retry-After")), 3000)
            self.assertEqual(asked(path), 0, path)
        self.assert_verify_clean(pg)


class RateLimitEnds(Base):
    def test_the_upstream_is_asked_again_once_retry_after_passed(self):
        image = one_layer_image("rl/end", "storm-end", 4096)
        upstream = self.fake([image])
        pg = self.pullgate([upstream], tag_ttl_s=0)
        tag = "/v2/rl/end/manifests/v1"
        status, _, body = pg.request("GET", tag, headers=ACCEPT)
        self.assertEqual((status, body), (200, image.manifest))
        upstream.set(tag, f.status_script(429, [("Retry-After", "1")]))
        before = upstream.count("GET", tag) + upstream.count("HEAD", tag)
        status, _, body = pg.request("GET", tag, headers=ACCEPT)
        self.assertEqual((status, body), (200, image.manifest))
        upstream.set(tag, None)

        def asked_again():
            status, _, body = pg.request("GET", tag, headers=ACCEPT)
            self.assertEqual((status, body), (200, image.manifest))
            return upstream.count("GET", tag) + upstream.count("HEAD", tag) > before + 1
        h.wait_until(asked_again, 30, "the upstream asked again after Retry-After", interval=0.2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
