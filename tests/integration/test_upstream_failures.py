"""The mirror under upstream failure and in tiers: concurrent requests share the
first one's failure (one upstream request, every client the same 429 and
Retry-After); blob fills are per repository (one repository's 401 never answers
another's request); a parent pullgate's denial reaches the client of an edge
pullgate in front of it and stops what the edge cached before; and the pull side of
the OCI distribution spec's answers for content that does not exist."""
import http.server
import json
import threading
import time
import unittest

import harness as h

ACCEPT = [("Accept", a) for a in h.SKOPEO_ACCEPTS]


class ScriptedUpstream:
    """A registry whose answers a test sets per path: (status, headers, body, delay_s).
    Counts requests by (method, path)."""

    def __init__(self):
        self.routes = {}
        self.counts = {}
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.answer(head=True)

            def do_GET(self):
                self.answer(head=False)

            def answer(self, head):
                path = self.path.split("?", 1)[0]
                with fake.lock:
                    fake.counts[(self.command, path)] = fake.counts.get((self.command, path), 0) + 1
                    route = fake.routes.get(path)
                if path == "/v2/":
                    route = (200, [], b"{}", 0)
                if route is None:
                    route = (404, [("Content-Type", "application/json")],
                             json.dumps({"errors": [{"code": "NOT_FOUND", "message": "unknown"}]}).encode(), 0)
                status, headers, body, delay = route
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                self.end_headers()
                if not head:
                    self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = "127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def set(self, path, status, headers=(), body=b"", delay=0):
        with self.lock:
            self.routes[path] = (status, list(headers), body, delay)

    def count(self, method, path):
        with self.lock:
            return self.counts.get((method, path), 0)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def concurrently(n, fn):
    results = [None] * n
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        results[i] = fn()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


class FailuresAreShared(unittest.TestCase):
    def setUp(self):
        self.work = h.Workdir()
        self.addCleanup(self.work.close)
        self.fake = ScriptedUpstream()
        self.addCleanup(self.fake.close)
        self.pg = h.Pullgate(self.work.path, [{"name": self.fake.address, "url": "http://" + self.fake.address,
                                               "default": True}]).start()
        self.addCleanup(self.pg.close)

    def assert_all_429(self, results):
        for status, headers, body in results:
            self.assertEqual(status, 429, body[:300])
            self.assertEqual(h.header(headers, "Retry-After"), "7")
            self.assertEqual(h.oci_error(body)[0], "TOOMANYREQUESTS")

    def test_20_cold_pulls_by_tag_against_a_rate_limit_ask_once(self):
        limited = (429, [("Retry-After", "7"), ("Content-Type", "application/json")],
                   json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}).encode())
        self.fake.set("/v2/rl/app/manifests/v1", *limited, delay=0.5)
        results = concurrently(20, lambda: self.pg.request("GET", "/v2/rl/app/manifests/v1", headers=ACCEPT))
        self.assert_all_429(results)
        asked = self.fake.count("HEAD", "/v2/rl/app/manifests/v1") + self.fake.count("GET", "/v2/rl/app/manifests/v1")
        self.assertEqual(asked, 1, "20 concurrent pulls of one tag asked the rate-limiting upstream %d times" % asked)

    def test_20_cold_pulls_by_digest_against_a_rate_limit_ask_once(self):
        digest = h.sha256_digest(b"a manifest behind a rate limit")
        self.fake.set("/v2/rl/app/manifests/" + digest, 429, [("Retry-After", "7")], b"", delay=0.5)
        results = concurrently(20, lambda: self.pg.request("GET", "/v2/rl/app/manifests/" + digest, headers=ACCEPT))
        self.assert_all_429(results)
        self.assertEqual(self.fake.count("GET", "/v2/rl/app/manifests/" + digest), 1)

    def test_a_blob_fill_for_one_repository_never_answers_another(self):
        # The same blob: private/app needs credentials (401, slowly), public/app has it.
        data = b"a layer in two repositories " * 1000
        digest = h.sha256_digest(data)
        self.fake.set("/v2/private/app/blobs/" + digest, 401,
                      [("WWW-Authenticate", 'Basic realm="private"')], b"", delay=0.8)
        self.fake.set("/v2/public/app/blobs/" + digest, 200,
                      [("Content-Type", "application/octet-stream"), ("Docker-Content-Digest", digest)], data)
        first = {}
        t = threading.Thread(target=lambda: first.setdefault(
            "r", self.pg.request("GET", "/v2/private/app/blobs/" + digest)))
        t.start()
        h.wait_until(lambda: self.fake.count("GET", "/v2/private/app/blobs/" + digest) >= 1, 10,
                     "the private repository's fill under way")
        status, _, body = self.pg.request("GET", "/v2/public/app/blobs/" + digest)
        t.join(30)
        self.assertEqual(status, 200, "public/app got the private repository's answer: %r" % body[:300])
        self.assertEqual(body, data)
        self.assertEqual(first["r"][0], 404)  # the mirror lacks private/app's credentials


class SpecAnswers(unittest.TestCase):
    """The distribution spec's pull answers for content that does not exist, and for a
    blob asked for before any manifest (a registry serves it)."""

    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        cls.blob = b"a blob pushed on its own, as the conformance tests do " * 50
        cls.digest = cls.registry.push_blob("spec/repo", cls.blob)
        cls.missing = h.sha256_digest(b"no registry has this blob")

    def start(self, policy=None):
        if policy is None:
            pg = h.Pullgate(self.work.path, [h.upstream_entry(self.registry)]).start()
        else:
            pg = h.GatedPullgate(self.work.path, [h.upstream_entry(self.registry)], policy).start()
        self.addCleanup(pg.close)
        return pg

    def test_without_a_policy(self):
        pg = self.start()
        for method in ("GET", "HEAD"):
            status, headers, body = pg.request(method, "/v2/spec/repo/blobs/" + self.digest)
            self.assertEqual(status, 200, "%s of a pushed blob before any manifest: %r" % (method, body[:300]))
            self.assertEqual(int(h.header(headers, "Content-Length")), len(self.blob))
            if method == "GET":
                self.assertEqual(body, self.blob)
            status, _, body = pg.request(method, "/v2/spec/repo/blobs/" + self.missing)
            self.assertEqual(status, 404, "%s of a blob that does not exist" % method)
            if method == "GET":
                self.assertEqual(h.oci_error(body)[0], "BLOB_UNKNOWN")
        for reference in (".INVALID_MANIFEST_NAME", "nonexistent"):
            status, _, body = pg.request("GET", "/v2/spec/repo/manifests/" + reference, headers=ACCEPT)
            self.assertEqual(status, 404, reference)
            self.assertEqual(h.oci_error(body)[0], "MANIFEST_UNKNOWN", reference)

    def test_under_an_enforcing_policy(self):
        # A scope that can refuse: a blob no manifest here lists stays refused, but
        # content that does not exist is still 404.
        pg = self.start({"default": {"mode": "enforce", "unknown": "evaluate", "fallback": "deny"}})
        before = self.registry.count("/v2/spec/repo/blobs/" + self.digest, "GET")
        status, _, body = pg.request("GET", "/v2/spec/repo/blobs/" + self.digest)
        h.assert_oci_denied(self, status, body, "a blob of no manifest seen here", "belongs to no manifest")
        self.assertEqual(self.registry.count("/v2/spec/repo/blobs/" + self.digest, "GET"), before,
                         "the refused blob's bytes were fetched")
        status, _, body = pg.request("GET", "/v2/spec/repo/blobs/" + self.missing)
        self.assertEqual(status, 404, body[:300])
        self.assertEqual(h.oci_error(body)[0], "BLOB_UNKNOWN")

    def test_a_scope_that_only_warns_serves_it(self):
        pg = self.start({"default": {"mode": "warn", "unknown": "deny"}})
        status, _, body = pg.request("GET", "/v2/spec/repo/blobs/" + self.digest)
        self.assertEqual((status, body), (200, self.blob))


class ParentDenial(unittest.TestCase):
    """edge pullgate -> parent pullgate -> registry."""

    REASON = "quarantined by the regional security team"

    def setUp(self):
        self.work, self.registry = h.Workdir(), None
        self.addCleanup(self.work.close)
        self.registry = h.Registry(self.work.path).start()
        self.addCleanup(self.registry.close)
        self.image = h.seed_oci(self.registry, repo="tier/app", seed="tier-app")
        self.parent = h.GatedPullgate(self.work.path, [h.upstream_entry(self.registry)],
                                      {"default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"}}).start()
        self.addCleanup(self.parent.close)
        self.edge = h.GatedPullgate(self.work.path, [{"name": self.parent.address, "url": "http://" + self.parent.address,
                                                      "default": True, "tag_ttl_s": 0}],
                                    {"default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"}}).start()
        self.addCleanup(self.edge.close)
        self.token = h.read_token(self.parent)

    def parent_verdict(self, decision):
        path = "/v1/verdicts/" + self.image.digest
        if decision is None:
            status, _, body = h.admin_request(self.parent, self.token, "DELETE", path)
        else:
            status, _, body = h.admin_request(self.parent, self.token, "PUT", path,
                                              json.dumps({"decision": decision, "reason": self.REASON}).encode())
        self.assertIn(status, (200, 204), body[:300])

    def assert_passed_on(self, status, headers, body, what):
        message = h.assert_oci_denied(self, status, body, what, self.REASON, "upstream " + self.parent.address)
        self.assertEqual(h.header(headers, "Pullgate-Decision"), "deny", what)
        return message

    def pull_all(self):
        status, _, body = self.edge.request("GET", "/v2/tier/app/manifests/v1", headers=ACCEPT)
        self.assertEqual((status, body), (200, self.image.manifest))
        for digest, data in self.image.blobs().items():
            status, _, body = self.edge.request("GET", "/v2/tier/app/blobs/" + digest)
            self.assertEqual((status, body), (200, data))

    def test_a_fresh_edge_passes_the_parents_denial_on(self):
        self.parent_verdict("deny")
        for path in ("/v2/tier/app/manifests/v1", "/v2/tier/app/manifests/" + self.image.digest):
            status, headers, body = self.edge.request("GET", path, headers=ACCEPT)
            self.assert_passed_on(status, headers, body, "GET " + path)
        # The edge's own audit says so.
        h.wait_until(lambda: any(r.get("decision") == "deny" and r.get("source") == "upstream"
                                 for r in self.edge.audit_records()), 10, "the edge's audit line")

    def test_an_edge_that_cached_the_image_stops_serving_it(self):
        self.pull_all()
        self.parent_verdict("deny")
        for path in ("/v2/tier/app/manifests/v1", "/v2/tier/app/manifests/" + self.image.digest):
            status, headers, body = self.edge.request("GET", path, headers=ACCEPT)
            self.assert_passed_on(status, headers, body, "GET " + path + " after the parent's denial")
        for digest in self.image.blobs():
            status, _, body = self.edge.request("GET", "/v2/tier/app/blobs/" + digest)
            h.assert_oci_denied(self, status, body, "blob " + digest, self.REASON)
        # The parent gone: its denial still stands on the edge (no stale copy).
        self.parent.stop()
        status, headers, body = self.edge.request("GET", "/v2/tier/app/manifests/" + self.image.digest, headers=ACCEPT)
        h.assert_oci_denied(self, status, body, "by digest, parent down", self.REASON)
        # The parent lifts it: the edge serves again.
        self.parent.start()
        self.parent_verdict(None)
        self.pull_all()
        status, _, body = self.edge.request("GET", "/v2/tier/app/manifests/" + self.image.digest, headers=ACCEPT)
        self.assertEqual((status, body), (200, self.image.manifest))


if __name__ == "__main__":
    unittest.main(verbosity=2)
