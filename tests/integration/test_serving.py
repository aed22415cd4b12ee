"""The serving side: HTTPS towards clients, HTTPS upstreams (CA file, verification,
insecure), Docker Hub naming, request limits and timeouts, a client leaving a cold
blob early, skopeo with its upstream blocked, and graceful shutdown mid-download."""
import hashlib
import http.client
import http.server
import json
import os
import signal
import socket
import ssl
import threading
import time
import unittest

import harness as h

ACCEPT = [("Accept", a) for a in h.SKOPEO_ACCEPTS]
CLOSED_ERRORS = (ConnectionError, http.client.HTTPException, socket.timeout, TimeoutError, ssl.SSLError)


def setUpModule():
    global WORK, CERT, KEY
    WORK = h.Workdir()
    unittest.addModuleCleanup(WORK.close)
    CERT, KEY = h.make_self_signed_cert(WORK.path)


def assert_oci_error(test, status, body, expected_status):
    test.assertEqual(status, expected_status, body[:300])
    doc = json.loads(body)
    test.assertIsInstance(doc.get("errors"), list, body)
    test.assertTrue(doc["errors"], body)
    test.assertIn("code", doc["errors"][0])
    test.assertIn("message", doc["errors"][0])
    return doc


def wait_closed(sock, timeout):
    """Reads until the peer closes (EOF or reset); returns the bytes read before that.
    Raises socket.timeout if the peer keeps the connection open past timeout."""
    sock.settimeout(timeout)
    got = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return got
        if not chunk:
            return got
        got += chunk


def raw_get(sock, path, with_connection=False):
    """One GET on an open socket; returns the response (status, body), and its
    Connection header too when asked."""
    sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    result = (resp.status, resp.read())
    return result + (resp.getheader("Connection"),) if with_connection else result


# ======================================================================================


class TlsServing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.registry = h.Registry(WORK.path).start()
        cls.addClassCleanup(cls.registry.close)
        cls.image = h.seed_oci(cls.registry, repo="it/tls", seed="tls-serve")
        cls.pullgate = h.TlsPullgate(WORK.path, [h.upstream_entry(cls.registry)], CERT, KEY).start()
        cls.addClassCleanup(cls.pullgate.close)

    def test_pull_over_https(self):
        pg = self.pullgate
        status, headers, _ = pg.request("GET", "/v2/")
        self.assertEqual(status, 200)
        self.assertEqual(h.header(headers, "Docker-Distribution-API-Version"), "registry/2.0")
        status, headers, body = pg.request("GET", "/v2/it/tls/manifests/v1", headers=ACCEPT)
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(body, self.image.manifest)
        self.assertEqual(h.header(headers, "Docker-Content-Digest"), self.image.digest)
        for digest, data in self.image.blobs().items():
            status, _, body = pg.request("GET", "/v2/it/tls/blobs/" + digest)
            self.assertEqual(status, 200, body[:300])
            self.assertEqual(body, data, "blob %s differs over HTTPS" % digest)
        # Warm, from the cache (sendfile does not apply to TLS: the bytes must still match).
        for digest, data in self.image.blobs().items():
            h.wait_until(lambda: os.path.exists(os.path.join(pg.data_dir, "blobs", "sha256", digest[7:9], digest[7:])),
                         20, "blob %s cached" % digest)
            status, _, body = pg.request("GET", "/v2/it/tls/blobs/" + digest)
            self.assertEqual((status, body), (200, data), "warm blob %s differs over HTTPS" % digest)

    def test_certificate_is_the_one_configured(self):
        # A client that does not trust the test CA refuses the handshake.
        with self.assertRaises(ssl.SSLCertVerificationError):
            h.https_request(self.pullgate.host, self.pullgate.port, "GET", "/v2/", timeout=10,
                            context=ssl.create_default_context())
        self.assertTrue(self.pullgate.healthy())

    def test_plain_http_to_tls_port_fails(self):
        try:
            status, _, body = h.http_request(self.pullgate.host, self.pullgate.port, "GET", "/v2/", timeout=20)
        except CLOSED_ERRORS:
            status = None
        self.assertNotEqual(status, 200, "plain HTTP was served on the TLS port")
        self.assertTrue(self.pullgate.alive(), "pullgate died: " + self.pullgate.stderr())
        self.assertTrue(self.pullgate.healthy())
        status, _, body = self.pullgate.request("GET", "/v2/it/tls/manifests/v1", headers=ACCEPT)
        self.assertEqual((status, body), (200, self.image.manifest))


# ======================================================================================


class HttpsUpstream(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.registry = h.TlsRegistry(WORK.path, CERT, KEY).start()
        cls.addClassCleanup(cls.registry.close)
        cls.images = {name: h.seed_oci(cls.registry, repo="it/" + name, seed="https-" + name)
                      for name in ("withca", "noca", "insecure")}
        url = cls.registry.url
        cls.pullgate = h.Pullgate(WORK.path, [
            {"name": "withca.test", "url": url, "ca_file": CERT, "default": True},
            {"name": "noca.test", "url": url, "insecure": False},
            {"name": "insecure.test", "url": url, "insecure": True},
        ]).start()
        cls.addClassCleanup(cls.pullgate.close)

    def tearDown(self):
        self.assertTrue(self.pullgate.alive(), "pullgate died: " + self.pullgate.stderr())

    def check_pull(self, prefix, image):
        status, headers, body = self.pullgate.request("GET", "/v2/%s%s/manifests/v1" % (prefix, image.repo),
                                                      headers=ACCEPT)
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(body, image.manifest)
        self.assertEqual(h.header(headers, "Docker-Content-Digest"), image.digest)
        for digest, data in image.blobs().items():
            status, _, body = self.pullgate.request("GET", "/v2/%s%s/blobs/%s" % (prefix, image.repo, digest))
            self.assertEqual(status, 200, body[:300])
            self.assertEqual(body, data)
        self.registry.sync_log()
        seen = [uri for m, uri, ua in self.registry.requests()
                if ua.startswith("pullgate/") and uri.startswith("/v2/%s/" % image.repo)]
        self.assertTrue(seen, "the pull did not reach the HTTPS upstream")

    def test_with_ca_file(self):
        self.check_pull("", self.images["withca"])

    def test_without_ca_file_fails_cleanly(self):
        image = self.images["noca"]
        path = "/v2/noca.test/%s/manifests/v1" % image.repo
        status, _, body = self.pullgate.request("GET", path, headers=ACCEPT)
        doc = assert_oci_error(self, status, body, 502)
        self.assertIn("noca.test", doc["errors"][0]["message"], "the error does not name the upstream")
        self.assertTrue(self.pullgate.healthy())
        # Nothing about that image was cached on the way: still failing, still up.
        status, _, body = self.pullgate.request("GET", path, headers=ACCEPT)
        assert_oci_error(self, status, body, 502)
        status, _, body = self.pullgate.request("GET", "/v2/noca.test/%s/blobs/%s" % (image.repo, image.config_digest))
        self.assertNotEqual(status, 200)
        self.assertNotEqual(body, image.config)
        self.assertTrue(self.pullgate.healthy())

    def test_insecure(self):
        self.check_pull("insecure.test/", self.images["insecure"])


# ======================================================================================


class DockerHubNaming(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.registry = h.Registry(WORK.path).start()
        cls.addClassCleanup(cls.registry.close)
        cls.plain = h.seed_schema2(cls.registry, repo="library/busybox", tag="v1", seed="hub-plain")
        cls.via_ns = h.seed_schema2(cls.registry, repo="library/busybox", tag="ns", seed="hub-ns")
        cls.skopeo = h.seed_schema2(cls.registry, repo="library/busybox", tag="skopeo", seed="hub-skopeo")
        cls.pullgate = h.Pullgate(WORK.path, [{"name": "docker.io", "url": cls.registry.url,
                                                "default": True}]).start()
        cls.addClassCleanup(cls.pullgate.close)

    def tearDown(self):
        self.assertTrue(self.pullgate.alive(), "pullgate died: " + self.pullgate.stderr())

    def upstream_paths(self):
        self.registry.sync_log()
        return [uri.split("?", 1)[0] for m, uri, ua in self.registry.requests() if ua.startswith("pullgate/")]

    def check(self, image, suffix):
        status, headers, body = self.pullgate.request("GET", "/v2/busybox/manifests/%s%s" % (image.tag, suffix),
                                                      headers=ACCEPT)
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(body, image.manifest)
        self.assertEqual(h.header(headers, "Docker-Content-Digest"), image.digest)
        status, _, body = self.pullgate.request("GET", "/v2/busybox/blobs/%s%s" % (image.config_digest, suffix))
        self.assertEqual((status, body), (200, image.config))
        paths = self.upstream_paths()
        self.assertIn("/v2/library/busybox/manifests/" + image.tag, paths)
        self.assertIn("/v2/library/busybox/blobs/" + image.config_digest, paths)
        self.assertFalse([p for p in paths if p.startswith("/v2/busybox/")],
                         "a one-segment name reached the Docker Hub upstream without library/")

    def test_one_segment_name_gets_library(self):
        self.check(self.plain, "")

    def test_one_segment_name_with_ns(self):
        self.check(self.via_ns, "?ns=docker.io")

    def test_skopeo_with_upstream_blocked(self):
        """registries.conf blocks docker.io and names pullgate as its mirror: the only way
        to the image is through pullgate."""
        conf = os.path.join(WORK.path, "registries-hub.conf")
        h.write_registries_conf(conf, "docker.io", self.pullgate.address, blocked=True)
        out = os.path.join(WORK.path, "skopeo-hub")
        r = h.skopeo_copy(conf, "docker.io/busybox:skopeo", out)
        self.assertEqual(r.returncode, 0, "skopeo failed: %s\npullgate stderr: %s" % (r.stderr, self.pullgate.stderr()))
        files = h.read_dir_output(out)
        self.assertEqual(files["manifest.json"], self.skopeo.manifest)
        for digest, data in self.skopeo.blobs().items():
            self.assertEqual(files.get(digest.split(":", 1)[1]), data, "blob %s differs" % digest)
        # Every piece came through pullgate (the access line is written when a response ends).
        wanted = ["/v2/library/busybox/manifests/skopeo"] + ["/v2/library/busybox/blobs/" + d
                                                              for d in self.skopeo.blobs()]
        for path in wanted:
            h.wait_until(lambda: any(e.get("path", "").split("?", 1)[0] == path and e.get("status") == 200
                                     for e in self.pullgate.access_log()),
                         10, "GET %s with status 200 in pullgate's access log" % path)


# ======================================================================================


class RequestLimits(unittest.TestCase):
    MAX_REQUESTS = 4

    @classmethod
    def setUpClass(cls):
        # No upstream is contacted: only /healthz and /readyz are asked.
        upstream = {"name": "unused.test", "url": "http://127.0.0.1:%d" % h.free_port(), "default": True}
        cls.pullgate = h.Pullgate(WORK.path, [upstream], extra={"limits": {
            "max_header_bytes": 4096, "max_requests_per_connection": cls.MAX_REQUESTS,
            "header_timeout_s": 1, "idle_timeout_s": 2}}).start()
        cls.addClassCleanup(cls.pullgate.close)

    def tearDown(self):
        self.assertTrue(self.pullgate.alive(), "pullgate died: " + self.pullgate.stderr())
        self.assertTrue(self.pullgate.healthy())

    def connect(self):
        sock = socket.create_connection((self.pullgate.host, self.pullgate.port), timeout=10)
        self.addCleanup(sock.close)
        return sock

    def test_header_too_large(self):
        big = [("X-Padding", "a" * 8000)]
        try:
            status, _, body = self.pullgate.request("GET", "/healthz", headers=big, timeout=20)
        except CLOSED_ERRORS:
            status = None  # closing the connection is allowed too
        self.assertIn(status, (431, None))
        # Just under the limit is fine.
        status, _, _ = self.pullgate.request("GET", "/healthz", headers=[("X-Padding", "a" * 2000)])
        self.assertEqual(status, 200)

    def test_keep_alive_serves_several_requests(self):
        conn = http.client.HTTPConnection(self.pullgate.host, self.pullgate.port, timeout=10)
        self.addCleanup(conn.close)
        conn.connect()
        sock = conn.sock
        local = sock.getsockname()
        for i, path in enumerate(["/healthz", "/readyz", "/healthz"]):
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(resp.status, 200, path)
            self.assertIs(conn.sock, sock, "request %d needed a new connection" % (i + 1))
            self.assertEqual(conn.sock.getsockname(), local)

    def test_max_requests_per_connection(self):
        sock = self.connect()
        for i in range(self.MAX_REQUESTS):
            status, _, connection = raw_get(sock, "/healthz", with_connection=True)
            self.assertEqual(status, 200, "request %d" % (i + 1))
            # The last allowed response says the connection ends, so a client does not
            # send another request into a closing socket.
            last = i + 1 == self.MAX_REQUESTS
            self.assertEqual((connection or "").lower() == "close", last, "request %d: Connection: %r" % (i + 1, connection))
        # The limit is reached: the server closes, the next request gets no answer.
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.assertEqual(wait_closed(sock, 20), b"", "a request past max_requests_per_connection was served")

    def test_silent_client_closed_after_header_timeout(self):
        sock = self.connect()
        start = time.monotonic()
        try:
            got = wait_closed(sock, 20)
        except socket.timeout:
            self.fail("a client that sent nothing was still connected after 20 s (header_timeout_s is 1)")
        self.assertEqual(got, b"")
        self.assertGreater(time.monotonic() - start, 0.5, "closed before the header timeout")

    def test_partial_header_closed_after_header_timeout(self):
        sock = self.connect()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        try:
            got = wait_closed(sock, 20)
        except socket.timeout:
            self.fail("a client with an unfinished header was still connected after 20 s")
        self.assertNotIn(b"200 OK", got)

    def test_idle_keep_alive_closed(self):
        sock = self.connect()
        status, _ = raw_get(sock, "/healthz")
        self.assertEqual(status, 200)
        try:
            got = wait_closed(sock, 30)
        except socket.timeout:
            self.fail("an idle keep-alive connection was still open after 30 s (idle_timeout_s is 2)")
        self.assertEqual(got, b"")


# ======================================================================================


class TrickleUpstream:
    """A registry serving one image whose big layer is sent in two parts: the first
    quarter at once, the rest only after `release` is set. GETs are counted per path.
    chunked: blobs are sent without Content-Length, in chunks."""

    def __init__(self, layer, chunked=False, drip=False):
        self.release = threading.Event()
        self.drip = drip  # after the first quarter, 64 KiB every 0.1 s until released
        self.layer = layer
        self.chunked = chunked
        self.image = h.build_image("slow/img", "v1", [self.layer])
        self.blobs = self.image.blobs()
        self.gets = {}
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.handle_any(head=True)

            def do_GET(self):
                self.handle_any(head=False)

            def headers_for(self, status, length, ctype, digest=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                if length is None:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(length))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                if digest:
                    self.send_header("Docker-Content-Digest", digest)
                self.end_headers()

            def handle_any(self, head):
                path = self.path.split("?", 1)[0]
                if not head:
                    with fake.lock:
                        fake.gets[path] = fake.gets.get(path, 0) + 1
                img = fake.image
                if path == "/v2/":
                    self.headers_for(200, 2, "application/json")
                    return None if head else self.wfile.write(b"{}")
                if path in ("/v2/slow/img/manifests/v1", "/v2/slow/img/manifests/" + img.digest):
                    self.headers_for(200, len(img.manifest), img.manifest_type, img.digest)
                    return None if head else self.wfile.write(img.manifest)
                prefix = "/v2/slow/img/blobs/"
                digest = path[len(prefix):] if path.startswith(prefix) else None
                if digest in fake.blobs:
                    data = fake.blobs[digest]
                    self.headers_for(200, None if fake.chunked and not head else len(data),
                                     "application/octet-stream", digest)
                    if head:
                        return None
                    if digest != fake.layer.digest:
                        return self.write_body([data])
                    quarter = len(data) // 4
                    rest = data[quarter:]
                    if fake.drip:
                        # After the first quarter, 64 KiB every 0.1 s.
                        self.write_body([data[:quarter]] + [rest[at:at + 65536] for at in range(0, len(rest), 65536)])
                    else:
                        self.write_body([data[:quarter], rest])
                    return None
                body = json.dumps({"errors": [{"code": "NOT_FOUND", "message": "unknown"}]}).encode()
                self.headers_for(404, len(body), "application/json")
                return None if head else self.wfile.write(body)

            def write_body(self, parts):
                """Each part in turn, waiting for `release` before every part after the first."""
                try:
                    for i, part in enumerate(parts):
                        if i:
                            self.wfile.flush()
                            fake.release.wait(0.1 if fake.drip else 60)
                        if not fake.chunked:
                            self.wfile.write(part)
                            continue
                        for at in range(0, len(part), 65536):
                            piece = part[at:at + 65536]
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    if fake.chunked:
                        self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the mirror has gone (shut down, or refused the rest)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = "127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count_gets(self, path):
        with self.lock:
            return self.gets.get(path, 0)

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class EarlyDisconnect(unittest.TestCase):
    def test_client_leaving_does_not_abort_the_fill(self):
        """The upstream holds back three quarters of the 64 MiB layer until the client
        has gone, so the fill is certainly in progress when it leaves."""
        fake = TrickleUpstream(h.big_layer("early"))
        self.addCleanup(fake.close)
        big = fake.layer
        pg = h.Pullgate(WORK.path, [{"name": fake.address, "url": "http://" + fake.address,
                                     "default": True}]).start()
        self.addCleanup(pg.close)
        status, _, _ = pg.request("GET", "/v2/slow/img/manifests/v1", headers=ACCEPT)
        self.assertEqual(status, 200)
        path = "/v2/slow/img/blobs/" + big.digest

        conn = http.client.HTTPConnection(pg.host, pg.port, timeout=30)
        conn.request("GET", path)
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        first = resp.read(8192)
        self.assertEqual(first, big.blob[:len(first)])
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        cache_file = os.path.join(pg.data_dir, "blobs", "sha256", big.digest[7:9], big.digest[7:])
        self.assertFalse(os.path.exists(cache_file))
        fake.release.set()

        h.wait_until(lambda: os.path.exists(cache_file), 90, "the abandoned fill to finish and be cached",
                     interval=0.2)
        self.assertTrue(pg.alive(), pg.stderr())

        def served_as_hit():
            status, headers, body = pg.request("GET", path, timeout=60)
            self.assertEqual(status, 200)
            self.assertEqual(hashlib.sha256(body).hexdigest(), big.digest[7:])
            return h.wait_until(lambda: [e for e in pg.access_log() if e.get("path") == path
                                         and e.get("status") == 200 and e.get("cache") == "hit"],
                                10, "an access-log line for the GET")
        h.wait_until(served_as_hit, 60, "the blob served as a cache hit", interval=0.2)
        self.assertEqual(fake.count_gets(path), 1, "the blob was downloaded from the upstream more than once")


class BlobSizeLimit(unittest.TestCase):
    def test_a_chunked_blob_past_max_blob_mb_fails_and_leaves_nothing(self):
        """An upstream that does not say a blob's size can still not fill the disk: past
        cache.max_blob_mb the fill fails, its temp file goes, nothing is published."""
        fake = TrickleUpstream(h.big_layer("chunked-cap", size=3 * 1024 * 1024), chunked=True)
        fake.release.set()
        self.addCleanup(fake.close)
        pg = h.Pullgate(WORK.path, [{"name": fake.address, "url": "http://" + fake.address, "default": True}],
                        extra={"cache": {"max_blob_mb": 1}}).start()
        self.addCleanup(pg.close)
        status, _, body = pg.request("GET", "/v2/slow/img/manifests/v1", headers=ACCEPT)
        self.assertEqual((status, body), (200, fake.image.manifest))
        # The config, chunked too and under the limit, is served and kept.
        status, _, body = pg.request("GET", "/v2/slow/img/blobs/" + fake.image.config_digest)
        self.assertEqual((status, body), (200, fake.image.config))
        path = "/v2/slow/img/blobs/" + fake.layer.digest
        status, _, body = pg.request("GET", path, timeout=60)
        doc = assert_oci_error(self, status, body, 502)
        self.assertIn("than the 1048576 bytes a blob may have on this mirror", doc["errors"][0]["message"])
        # The config's publish (rename after the last byte went out) and the failed
        # layer's temp removal finish on the blocking pool, after the answers: wait for
        # both rather than read the directories at once.
        config_path = os.path.join(pg.data_dir, "blobs", "sha256", fake.image.config_digest[7:9],
                                   fake.image.config_digest[7:])
        h.wait_until(lambda: os.path.exists(config_path), 30, "the config blob published")
        h.wait_until(lambda: os.listdir(os.path.join(pg.data_dir, "tmp")) == [], 30, "no temp file left")
        digest_hex = fake.layer.digest[7:]
        self.assertFalse(os.path.exists(os.path.join(pg.data_dir, "blobs", "sha256", digest_hex[:2], digest_hex)))
        self.assertTrue(pg.alive(), pg.stderr())


class GracefulShutdown(unittest.TestCase):
    def start_download(self, grace_s=None, drip=False):
        """pullgate (the sanitized build when there is one) mirroring a TrickleUpstream,
        with a client 64 KiB into the slow layer. Returns (fake, pullgate, response,
        bytes received)."""
        # A first quarter of 2 MiB: more than the megabyte the fill may hold back
        # while the upstream stalls, so part of it reaches the client at once.
        fake = TrickleUpstream(h.big_layer("trickle", size=8 * 1024 * 1024), drip=drip)
        self.addCleanup(fake.close)
        extra = {"limits": {"shutdown_grace_s": grace_s}} if grace_s is not None else None
        pg = h.Pullgate(WORK.path, [{"name": fake.address, "url": "http://" + fake.address,
                                     "default": True}], extra=extra, bin=h.sanitized_bin()).start()
        self.addCleanup(pg.close)
        status, _, body = pg.request("GET", "/v2/slow/img/manifests/v1", headers=ACCEPT)
        self.assertEqual((status, body), (200, fake.image.manifest))
        conn = http.client.HTTPConnection(pg.host, pg.port, timeout=60)
        self.addCleanup(conn.close)
        self.conn = conn
        conn.request("GET", "/v2/slow/img/blobs/" + fake.layer.digest)
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        received = bytearray(resp.read(64 * 1024))  # the download is under way
        self.assertEqual(bytes(received), fake.layer.blob[:len(received)])
        return fake, pg, resp, received

    def sigterm_and_check_refused(self, pg):
        sigterm_at = time.monotonic()
        pg.proc.send_signal(signal.SIGTERM)

        def refused():
            try:
                with socket.create_connection((pg.host, pg.port), timeout=2):
                    return False  # accepted in the moment before the listener closed
            except ConnectionRefusedError:
                return True
        h.wait_until(refused, 10, "new connections to be refused after SIGTERM")
        self.assertIsNone(pg.proc.poll(), "pullgate exited with a response still in progress")
        return sigterm_at

    def read_rest(self, resp, received, layer):
        """Reads to the end; the response may complete or be cut, never carry wrong bytes."""
        try:
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                received += chunk
        except CLOSED_ERRORS:
            pass
        self.assertEqual(bytes(received), layer.blob[:len(received)], "the response carried wrong bytes")
        return len(received) == layer.size

    def wait_exit(self, pg, sigterm_at, bound):
        try:
            code = pg.proc.wait(timeout=max(bound - (time.monotonic() - sigterm_at), 1))
        except Exception:
            self.fail("pullgate still running %d s after SIGTERM (its bound is 30 s)" % bound)
        self.assertEqual(code, 0, pg.stderr())
        self.assertIn('"stopping"', pg.stderr())
        h.assert_no_sanitizer_report(self, pg)

    def test_sigterm_mid_download_completes(self):
        fake, pg, resp, received = self.start_download()
        sigterm_at = self.sigterm_and_check_refused(pg)
        fake.release.set()  # the upstream finishes within the grace period
        self.assertTrue(self.read_rest(resp, received, fake.layer),
                        "a response that could finish within the grace period was cut")
        self.wait_exit(pg, sigterm_at, 35)

    def test_sigterm_with_a_download_running_on_after_its_client_left(self):
        # The client goes; the download goes on (the cache wants the blob) and is
        # still stuck when SIGTERM comes: it is cancelled after the grace period while
        # everything it uses is alive (before, AddressSanitizer saw it call into a
        # freed upstream client), the audit log is flushed, and the exit status is 0.
        fake, pg, resp, received = self.start_download(grace_s=1, drip=True)
        resp.close()
        self.conn.close()
        # The session ends when its next write finds the client gone (the upstream
        # drips on); the download does not end with it.
        h.wait_until(lambda: any("/v2/slow/img/blobs/" in r.get("path", "") for r in pg.access_log()), 20,
                     "the client's request to end")
        sigterm_at = self.sigterm_and_check_refused(pg)
        self.wait_exit(pg, sigterm_at, 15)
        self.assertIn('"downloads":1', pg.stderr().replace(" ", ""), "the download was not waited for")
        audit = os.path.join(pg.data_dir, "audit.log")
        with open(audit) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        self.assertTrue(any(r.get("kind") == "blob" and r.get("digest") == fake.layer.digest for r in lines),
                        "the blob's decision is not in the audit log after the exit")
        self.assertEqual(os.listdir(os.path.join(pg.data_dir, "tmp")), [], "the cancelled fill left a temp file")

    def test_sigterm_with_a_response_in_progress_past_the_grace_period(self):
        # A client still reading when the grace period ends: its session is cancelled.
        fake, pg, resp, received = self.start_download(grace_s=1)
        sigterm_at = self.sigterm_and_check_refused(pg)
        self.wait_exit(pg, sigterm_at, 15)
        self.assertFalse(self.read_rest(resp, received, fake.layer), "a stuck download reached the client whole")

    def test_sigterm_with_stuck_download_exits_within_bound(self):
        # The upstream never finishes: the grace period (30 s) ends it.
        fake, pg, resp, received = self.start_download()
        sigterm_at = self.sigterm_and_check_refused(pg)
        self.wait_exit(pg, sigterm_at, 40)
        self.assertFalse(self.read_rest(resp, received, fake.layer), "a stuck download reached the client whole")

if __name__ == "__main__":
    unittest.main(verbosity=2)
