"""The admin API with real components (CNCF Distribution 2.8 upstream, real pullgate),
spoken to with raw HTTP: bearer-token checks on every endpoint, verdicts set, listed
and removed over the API and seen by the mirror, expiring verdicts (API and CLI),
policy reload with a good and a broken file, /metrics, audit-log rotation under load,
and `serve --policy`."""
import http.client
import json
import os
import re
import socket
import subprocess
import time
import unittest

import harness as h

DENIED_REASON = "it/denied carries a vulnerable openssl"
FLAG_REASON = "denied by the policy given with --policy"
RELOAD_REASON = "it/reload withdrawn by the reloaded policy"
API_REASON = "quarantined over the admin API, ticket SEC-7"

ADMIN_ENDPOINTS = [
    ("GET", "/healthz", None),
    ("GET", "/metrics", None),
    ("GET", "/v1/verdicts", None),
    ("GET", "/v1/verdicts?decision=deny", None),
    ("GET", "/v1/verdicts/" + h.sha256_digest(b"auth-probe"), None),
    ("PUT", "/v1/verdicts/" + h.sha256_digest(b"auth-probe"), json.dumps({"decision": "deny"}).encode()),
    ("DELETE", "/v1/verdicts/" + h.sha256_digest(b"auth-probe"), None),
    ("GET", "/v1/exceptions", None),
    ("POST", "/v1/exceptions", json.dumps({"id": "auth-probe", "digest": h.sha256_digest(b"auth-probe"),
                                           "reason": "r", "who": "w", "expires_in_s": 600}).encode()),
    ("DELETE", "/v1/exceptions/auth-probe", None),
    ("GET", "/v1/explain?digest=" + h.sha256_digest(b"auth-probe"), None),
    ("POST", "/v1/policy/reload", b""),
    ("GET", "/v1/no-such-endpoint", None),
]


class Admin:
    """Requests to one pullgate's admin listener, with its token unless told otherwise."""

    def __init__(self, pg):
        self.pg = pg
        self.token = h.read_token(pg)
        h.wait_until(lambda: self.request("GET", "/healthz")[0] == 200, 10, "the admin listener")

    def request(self, method, path, body=None, token=True, authorization=None, headers=None, timeout=30):
        """authorization: the exact Authorization value to send instead of the token;
        token=False: no Authorization at all."""
        hs = list(headers or [])
        if authorization is not None:
            hs.append(("Authorization", authorization))
        bearer = self.token if token and authorization is None else None
        return h.admin_request(self.pg, bearer, method, path, body=body, headers=hs, timeout=timeout)

    def json(self, method, path, doc=None):
        """(status, parsed JSON body) with the token."""
        body = None if doc is None else json.dumps(doc).encode()
        status, _, data = self.request(method, path, body=body)
        return status, json.loads(data)


# Prometheus text format 0.0.4: `# HELP name text`, `# TYPE name type`, samples.
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_labels(text):
    labels = {}
    pos = 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if not m:
            raise ValueError("bad label set {%s} at %d" % (text, pos))
        labels[m.group(1)] = re.sub(r'\\(.)', lambda e: {"n": "\n"}.get(e.group(1), e.group(1)), m.group(2))
        pos = m.end()
    return labels


def parse_metrics(text):
    """{"types": {name: type}, "help": {name: text}, "samples": [(name, labels, value)]};
    raises ValueError on any line that is not in the text format."""
    types, helps, samples = {}, {}, []
    for number, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] == "HELP":
                helps[parts[2]] = parts[3] if len(parts) > 3 else ""
            elif len(parts) == 4 and parts[1] == "TYPE":
                if parts[3] not in _TYPES:
                    raise ValueError("line %d: unknown type %r" % (number, line))
                if parts[2] in types:
                    raise ValueError("line %d: second TYPE for %s" % (number, parts[2]))
                types[parts[2]] = parts[3]
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError("line %d is not a sample: %r" % (number, line))
        value = float(m.group(3))  # accepts NaN, +Inf
        samples.append((m.group(1), parse_labels(m.group(2) or ""), value))
    return {"types": types, "help": helps, "samples": samples}


def metric_sum(parsed, name, **labels):
    return sum(v for n, l, v in parsed["samples"]
               if n == name and all(l.get(k) == val for k, val in labels.items()))


class AdminApi(h.PullgateAlive, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        reg = cls.registry
        img = lambda repo, tag="v1": h.push_image(reg, h.build_image(repo, tag, [h.small_layer("adm-" + repo)],
                                                                   label=repo))
        cls.api_img = img("it/api")
        cls.expiry_img = img("it/expiry")
        cls.cli_img = img("it/cli-expiry")
        cls.denied = img("it/denied")
        cls.allowed = img("it/allowed")
        cls.reload_img = img("it/reload")
        cls.flag_img = img("it/flag")
        cls.rot_img = img("it/rot")
        cls.policy = {"default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow",
                                  "rules": [{"action": "deny", "repository": "it/denied",
                                             "reason": DENIED_REASON}]}}
        cls.pg = h.GatedPullgate(cls.work.path, [h.upstream_entry(reg)], cls.policy).start()
        cls.addClassCleanup(cls.pg.close)
        cls.admin = Admin(cls.pg)

    # ---------------------------------------------------------------- helpers

    def get(self, path, pg=None, method="GET"):
        hs = [("Accept", a) for a in h.SKOPEO_ACCEPTS]
        return (pg or self.pg).request(method, path, headers=hs)

    def manifest_path(self, image):
        return "/v2/%s/manifests/%s" % (image.repo, image.digest)

    def assert_served(self, image, pg=None, what=""):
        status, _, body = self.get(self.manifest_path(image), pg)
        self.assertEqual(status, 200, "%s GET %s: expected 200, got %d %r"
                         % (what, self.manifest_path(image), status, body[:300]))
        self.assertEqual(body, image.manifest)

    def assert_denied(self, image, *texts, pg=None, what=""):
        path = self.manifest_path(image)
        status, _, body = self.get(path, pg)
        return h.assert_oci_denied(self, status, body, "%s GET %s" % (what, path), *texts)

    def status_of(self, image, pg=None):
        return self.get(self.manifest_path(image), pg)[0]

    def assert_json_error(self, status, body, expected, what):
        self.assertEqual(status, expected, "%s: expected %d, got %d %r" % (what, expected, status, body[:300]))
        doc = json.loads(body)
        self.assertIsInstance(doc.get("error"), str, "%s: no JSON error in %r" % (what, body[:300]))
        self.assertTrue(doc["error"], what)

    def metrics(self, admin=None):
        status, headers, body = (admin or self.admin).request("GET", "/metrics")
        self.assertEqual(status, 200, body[:300])
        return h.header(headers, "Content-Type"), parse_metrics(body.decode())

    def assert_promtool_accepts_metrics(self):
        """Prometheus's own parser and linter (promtool, Debian package prometheus)
        on the /metrics body as served."""
        status, _, body = self.admin.request("GET", "/metrics")
        self.assertEqual(status, 200, body[:300])
        try:
            run = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60)
        except FileNotFoundError:
            self.fail("promtool not found: Debian package prometheus (deploy/install-deps.sh --test)")
        self.assertEqual(run.returncode, 0, "promtool check metrics: %s%s" % (run.stdout.decode(), run.stderr.decode()))

    # ---------------------------------------------------------------- 1. authentication

    def test_01_every_endpoint_needs_the_token(self):
        token = self.admin.token
        bad = [
            ("no header", None),
            ("wrong token", "Bearer " + "0" * len(token)),
            ("token with a suffix", "Bearer " + token + "x"),
            ("token prefix only", "Bearer " + token[:-1]),
            ("Bearer and no token", "Bearer"),
            ("Bearer and a space", "Bearer "),
            ("Basic scheme", "Basic " + token),
            ("Token scheme", "Token " + token),
            ("token alone", token),
        ]
        for method, path, body in ADMIN_ENDPOINTS:
            for what, authorization in bad:
                with self.subTest(endpoint="%s %s" % (method, path), auth=what):
                    status, headers, data = self.admin.request(method, path, body=body, token=False,
                                                               authorization=authorization)
                    self.assertEqual(status, 401, "%s %s with %s: got %d %r" % (method, path, what, status, data[:200]))
                    challenge = h.header(headers, "WWW-Authenticate")
                    self.assertIsNotNone(challenge, "401 without WWW-Authenticate")
                    self.assertTrue(challenge.startswith("Bearer"), challenge)
                    self.assertIn("error", json.loads(data))
        # The unauthorized PUTs and POSTs stored nothing.
        status, _, data = self.admin.request("GET", "/v1/verdicts/" + h.sha256_digest(b"auth-probe"))
        self.assertEqual(status, 404, data[:300])
        status, doc = self.admin.json("GET", "/v1/exceptions")
        self.assertEqual(status, 200, doc)
        self.assertNotIn("auth-probe", json.dumps(doc))
        status, doc = self.admin.json("GET", "/healthz")
        self.assertEqual((status, doc.get("status")), (200, "ok"))

    def test_01b_the_metrics_token_opens_metrics_and_healthz_only(self):
        # What Prometheus holds: a scraper's credential must not change what the gate
        # decides, read what it decided, open the status page or pull past the gate.
        metrics = h.read_token(self.pg, "metrics.token")
        self.assertNotEqual(metrics, self.admin.token)
        status, headers, data = self.admin.request("GET", "/metrics", authorization="Bearer " + metrics)
        self.assertEqual(status, 200, data[:200])
        self.assertIn(b"pullgate_gate_decisions_total", data)
        self.assertEqual(self.admin.request("GET", "/healthz", authorization="Bearer " + metrics)[0], 200)
        for method, path, body in ADMIN_ENDPOINTS:
            if path in ("/metrics", "/healthz"):
                continue
            with self.subTest(endpoint="%s %s" % (method, path)):
                status, _, data = self.admin.request(method, path, body=body, authorization="Bearer " + metrics)
                self.assertEqual(status, 403, data[:200])
                self.assertEqual(json.loads(data)["error"], "the metrics token allows only GET /metrics and /healthz")
        status, _, _ = self.admin.request("GET", "/", authorization="Bearer " + metrics)
        self.assertEqual(status, 403)
        # The scanner pull API past the gate: as without a token, the registry challenge.
        status, headers, _ = self.admin.request("GET", "/v2/", authorization="Bearer " + metrics)
        self.assertEqual(status, 401)
        self.assertTrue(h.header(headers, "WWW-Authenticate").startswith("Basic"))
        # Nothing the refused requests sent was stored.
        status, _, data = self.admin.request("GET", "/v1/verdicts/" + h.sha256_digest(b"auth-probe"))
        self.assertEqual(status, 404, data[:300])

    # ---------------------------------------------------------------- 2. verdicts over the API

    def test_02_verdict_put_get_list_delete(self):
        image = self.api_img
        self.assert_served(image, what="before any verdict:")
        path = "/v1/verdicts/" + image.digest
        status, doc = self.admin.json("PUT", path, {"decision": "deny", "reason": API_REASON, "by": "dave"})
        self.assertEqual(status, 200, doc)
        self.assertEqual((doc["digest"], doc["decision"], doc["source"], doc["set_by"]),
                         (image.digest, "deny", "manual", "dave"), doc)
        self.assertIsNone(doc["expires_at_ms"])

        self.assert_denied(image, API_REASON, what="after PUT deny:")
        status, _, body = self.get("/v2/%s/blobs/%s" % (image.repo, image.config_digest))
        self.assertEqual(status, 403, "config blob of a denied image: %d %r" % (status, body[:200]))

        status, doc = self.admin.json("GET", path)
        self.assertEqual(status, 200, doc)
        self.assertEqual((doc["decision"], doc["source"], doc["set_by"]), ("deny", "manual", "dave"), doc)
        self.assertIn(API_REASON, doc["reasons"])

        status, doc = self.admin.json("GET", "/v1/verdicts?decision=deny")
        self.assertEqual(status, 200, doc)
        listed = {v["digest"]: v for v in doc["verdicts"]}
        self.assertIn(image.digest, listed)
        self.assertTrue(all(v["decision"] == "deny" for v in doc["verdicts"]), doc)
        status, doc = self.admin.json("GET", "/v1/verdicts?decision=allow&source=manual")
        self.assertEqual(status, 200, doc)
        self.assertNotIn(image.digest, [v["digest"] for v in doc["verdicts"]])
        status, doc = self.admin.json("GET", "/v1/verdicts?source=manual&limit=1")
        self.assertEqual(status, 200, doc)
        self.assertLessEqual(len(doc["verdicts"]), 1)

        status, doc = self.admin.json("DELETE", path)
        self.assertEqual((status, doc.get("removed")), (200, image.digest), doc)
        status, _, body = self.admin.request("GET", path)
        self.assert_json_error(status, body, 404, "GET verdict after DELETE")
        status, _, body = self.admin.request("DELETE", path)
        self.assert_json_error(status, body, 404, "second DELETE")
        self.assert_served(image, what="after DELETE:")
        status, _, body = self.get("/v2/%s/blobs/%s" % (image.repo, image.config_digest))
        self.assertEqual(status, 200, body[:200])
        self.assertEqual(body, image.config)

    def test_02b_bad_requests(self):
        digest = h.sha256_digest(b"never stored by the bad-request test")
        path = "/v1/verdicts/" + digest
        bodies = [
            ("not JSON", b"decision=deny"),
            ("truncated JSON", b'{"decision": "deny"'),
            ("an array", b'["deny"]'),
            ("a string", b'"deny"'),
            ("decision a number", b'{"decision": 1}'),
            ("reason a number", b'{"decision": "deny", "reason": 5}'),
            ("by an object", b'{"decision": "deny", "by": {}}'),
            ("unknown decision", b'{"decision": "block"}'),
            ("missing decision", b'{"reason": "x"}'),
            ("expires_in_s 0", b'{"decision": "deny", "expires_in_s": 0}'),
            ("expires_in_s negative", b'{"decision": "deny", "expires_in_s": -5}'),
            ("expires_in_s fractional", b'{"decision": "deny", "expires_in_s": 1.5}'),
            ("expires_in_s a string", b'{"decision": "deny", "expires_in_s": "60"}'),
            # Past 2262 a time wraps around: such a verdict would read as long expired.
            ("expires_in_s beyond 100 years", b'{"decision": "deny", "expires_in_s": 8640000000}'),
            ("expires_in_s overflowing", b'{"decision": "deny", "expires_in_s": 9223372036854775807}'),
            ("empty body", b""),
        ]
        for what, body in bodies:
            with self.subTest(body=what):
                status, _, data = self.admin.request("PUT", path, body=body)
                self.assert_json_error(status, data, 400, "PUT with " + what)
        status, _, data = self.admin.request("GET", path)
        self.assert_json_error(status, data, 404, "GET after refused PUTs")

        for bad in ("notadigest", "sha256:abc", "sha256:" + "A" * 64, "md5:" + "a" * 32,
                    "sha256:" + "a" * 63 + "g", "sha256%3A" + "a" * 64 + "%zz"):
            for method, body in (("GET", None), ("PUT", b'{"decision": "deny"}'), ("DELETE", None)):
                with self.subTest(digest=bad, method=method):
                    status, _, data = self.admin.request(method, "/v1/verdicts/" + bad, body=body)
                    self.assert_json_error(status, data, 400, "%s /v1/verdicts/%s" % (method, bad))

        for method, target in (("GET", "/v1/nothing"), ("GET", "/v3/"), ("GET", "/index.html"), ("PUT", "/v1/verdict")):
            with self.subTest(unknown=target):
                status, _, data = self.admin.request(method, target, body=b"{}" if method == "PUT" else None)
                self.assert_json_error(status, data, 404, "%s %s" % (method, target))

        for method, target in (("POST", "/v1/verdicts"), ("DELETE", "/v1/verdicts"), ("PUT", "/v1/verdicts"),
                               ("POST", path), ("PATCH", path), ("GET", "/v1/policy/reload"),
                               ("PUT", "/v1/policy/reload"), ("POST", "/metrics")):
            with self.subTest(method=method, target=target):
                body = b"{}" if method in ("POST", "PUT", "PATCH") else None
                status, _, data = self.admin.request(method, target, body=body)
                self.assert_json_error(status, data, 405, "%s %s" % (method, target))

        status, _, data = self.admin.request("GET", "/v1/verdicts?limit=0")
        self.assert_json_error(status, data, 400, "limit=0")
        status, _, data = self.admin.request("GET", "/v1/verdicts?decision=%zz")
        self.assert_json_error(status, data, 400, "malformed query")

    def send_big_put(self, digest, chunked):
        """PUT of a JSON body just over the admin API's 64 MiB limit (scanner reports
        are large) on a raw socket (Content-Length or chunked); returns (status, body)
        of the answer."""
        doc = b'{"decision": "deny", "reason": "' + b"x" * (64 * 1024 * 1024) + b'"}'
        head = ["PUT /v1/verdicts/%s HTTP/1.1" % digest, "Host: %s" % self.pg.admin_address,
                "Authorization: Bearer " + self.admin.token, "Content-Type: application/json"]
        head.append("Transfer-Encoding: chunked" if chunked else "Content-Length: %d" % len(doc))
        with socket.create_connection((self.pg.host, self.pg.admin_port), timeout=30) as s:
            s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            try:
                if chunked:
                    for i in range(0, len(doc), 65536):
                        piece = doc[i:i + 65536]
                        s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                    s.sendall(b"0\r\n\r\n")
                else:
                    s.sendall(doc)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer and close before reading it all
            resp = http.client.HTTPResponse(s, method="PUT")
            resp.begin()
            return resp.status, resp.read()

    def test_02c_body_over_the_limit(self):
        digest = h.sha256_digest(b"big body")
        for chunked in (False, True):
            with self.subTest(chunked=chunked):
                status, data = self.send_big_put(digest, chunked)
                self.assertEqual(status, 413, "PUT /v1/verdicts/D with a body of 64 MiB + 34 bytes (%s): "
                                 "expected 413, got %d %r" % ("chunked" if chunked else "Content-Length",
                                                              status, data[:300]))
                json.loads(data)
                status, _, data = self.admin.request("GET", "/v1/verdicts/" + digest)
                self.assert_json_error(status, data, 404, "GET after the refused big PUT")
                # Still serving, on both listeners.
                status, doc = self.admin.json("GET", "/healthz")
                self.assertEqual(status, 200, doc)
                status, doc = self.admin.json("PUT", "/v1/verdicts/" + digest, {"decision": "allow", "reason": "small"})
                self.assertEqual(status, 200, doc)
                status, _, _ = self.admin.request("DELETE", "/v1/verdicts/" + digest)
                self.assertEqual(status, 200)
                self.assertTrue(self.pg.healthy())

    # ---------------------------------------------------------------- 3. expiring verdict

    def test_03_verdict_expires(self):
        image = self.expiry_img
        self.assert_served(image, what="before the verdict:")
        set_at = time.time()
        status, doc = self.admin.json("PUT", "/v1/verdicts/" + image.digest,
                                      {"decision": "deny", "reason": "for one second", "expires_in_s": 1})
        self.assertEqual(status, 200, doc)
        self.assertAlmostEqual(doc["expires_at_ms"] / 1000.0, set_at + 1, delta=2)
        status = self.status_of(image)
        if time.time() - set_at < 0.9:  # still inside the second: must be refused
            self.assertEqual(status, 403, "a fresh 1 s deny verdict did not refuse")
        h.wait_until(lambda: self.status_of(image) == 200, 10, "the 1 s verdict to lapse", interval=0.1)
        self.assertGreaterEqual(time.time() - set_at, 0.9, "the verdict lapsed before its second was over")
        self.assert_served(image, what="after expiry:")

    # ---------------------------------------------------------------- 4. policy reload

    def test_04_policy_reload_over_the_api(self):
        allow_all = {"default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"}}
        pg = h.GatedPullgate(self.work.path, [h.upstream_entry(self.registry)], allow_all).start()
        self.addCleanup(pg.close)
        admin = Admin(pg)
        with open(pg.policy_path, "rb") as f:
            first_version = h.sha256_digest(f.read())
        self.assert_served(self.reload_img, pg, "under allow-all:")

        deny = {"default": {"rules": [{"action": "deny", "repository": "it/reload", "reason": RELOAD_REASON}]}}
        new_version = h.sha256_digest(pg.write_policy(deny))
        self.assertNotEqual(new_version, first_version)
        status, doc = admin.json("POST", "/v1/policy/reload")
        self.assertEqual(status, 200, doc)
        self.assertEqual((doc["reloaded"], doc["policy_version"]), (True, new_version), doc)
        self.assert_denied(self.reload_img, RELOAD_REASON, pg=pg, what="after the reload:")
        self.assert_served(self.allowed, pg, "other repository after the reload:")

        for what, text in (("broken JSON", '{"default": {"rules": [{"action": "deny"'),
                           ("unknown field", json.dumps({"default": {"mode": "strict"}, "bogus": 1})),
                           ("bad glob", json.dumps({"default": {"rules": [{"action": "deny",
                                                                            "repository": "IT/[a-z]"}]}}))):
            with self.subTest(policy=what):
                pg.write_policy(text)
                status, _, body = admin.request("POST", "/v1/policy/reload")
                self.assertEqual(status, 422, "%s: %d %r" % (what, status, body[:300]))
                doc = json.loads(body)
                self.assertEqual((doc["reloaded"], doc["policy_version"]), (False, new_version), doc)
                self.assertTrue(doc["message"], doc)
                self.assert_denied(self.reload_img, RELOAD_REASON, pg=pg, what="after a refused reload (%s):" % what)
                self.assert_served(self.allowed, pg, "other repository after a refused reload:")
        self.assertTrue(pg.alive(), pg.stderr())

        # Back to allow-all: the earlier deny lifts.
        back = h.sha256_digest(pg.write_policy(allow_all))
        status, doc = admin.json("POST", "/v1/policy/reload")
        self.assertEqual((status, doc["policy_version"]), (200, back), doc)
        self.assert_served(self.reload_img, pg, "after reloading allow-all:")

    # ---------------------------------------------------------------- 5. metrics

    def test_05_metrics(self):
        admin = self.admin
        content_type, before = self.metrics()
        self.assertTrue(content_type and content_type.startswith("text/plain"), content_type)
        self.assertTrue(before["samples"], "/metrics has no samples")
        for name, kind in (("pullgate_gate_decisions_total", "counter"),
                           ("pullgate_cache_requests_total", "counter"),
                           ("pullgate_gate_bypass_suspected_total", "counter")):
            self.assertEqual(before["types"].get(name), kind, "TYPE of %s" % name)
            self.assertIn(name, before["help"], "HELP of %s" % name)
        for name, _, _ in before["samples"]:
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            self.assertTrue(name in before["types"] or family in before["types"], "sample %s has no TYPE" % name)

        status, _, body = self.get("/v2/it/denied/manifests/v1")
        self.assertEqual(status, 403, body[:300])
        self.assert_served(self.allowed, what="first pull:")
        self.assert_served(self.allowed, what="warm pull:")
        # A request is counted once its response is sent, so the last one may land a
        # moment after the client has it: wait (bounded) for all three.
        after = None

        def delta(name, **labels):
            return metric_sum(after, name, **labels) - metric_sum(before, name, **labels)

        def counted():
            nonlocal after
            _, after = self.metrics(admin)
            return delta("pullgate_http_requests_total", method="GET") >= 3
        h.wait_until(counted, 10, "the three manifest GETs counted in /metrics")
        # Exactly one deny (by rule) and two allows for the three manifest GETs.
        self.assertEqual(delta("pullgate_gate_decisions_total", kind="manifest", decision="deny"), 1)
        self.assertEqual(delta("pullgate_gate_decisions_total", kind="manifest", decision="deny", source="rule",
                               mode="enforce"), 1)
        self.assertEqual(delta("pullgate_gate_decisions_total", kind="manifest", decision="allow"), 2)
        self.assertEqual(delta("pullgate_gate_denials_total", kind="manifest"), 1)
        self.assertGreaterEqual(delta("pullgate_cache_requests_total", kind="manifest", result="hit"), 1,
                                "no manifest cache hit counted for the warm pull")
        self.assertGreaterEqual(delta("pullgate_cache_requests_total", result="miss"), 1)
        for name, labels, value in after["samples"]:
            if name.endswith("_total"):
                self.assertGreaterEqual(value, 0, name)
                self.assertGreaterEqual(value, metric_sum(before, name, **labels), "counter %s went down" % name)
        self.assert_promtool_accepts_metrics()

    # ---------------------------------------------------------------- 6. audit rotation

    def test_06_audit_log_rotation(self):
        pg = h.GatedPullgate(self.work.path, [h.upstream_entry(self.registry)], self.policy)
        pg.config["gate"]["audit_max_mb"] = 1
        pg.config["gate"]["audit_keep"] = 2
        pg.write_config()
        pg.start()
        self.addCleanup(pg.close)
        path = self.manifest_path(self.rot_img)
        self.assert_served(self.rot_img, pg, "first pull:")
        rotated = [pg.audit_path + ".%d" % i for i in (1, 2, 3)]

        def all_lines():
            lines = []
            for p in reversed([pg.audit_path] + rotated):
                if os.path.exists(p):
                    with open(p, "rb") as f:
                        data = f.read()
                    if data:
                        self.assertTrue(data.endswith(b"\n"), "%s ends inside a line" % p)
                    lines += data.split(b"\n")[:-1] if data else []
            return lines

        def heads(n):
            """n HEADs on one keep-alive connection (fewer than the server's 10000 per
            connection)."""
            conn = http.client.HTTPConnection(pg.host, pg.port, timeout=30)
            self.addCleanup(conn.close)
            for _ in range(n):
                conn.request("HEAD", path, headers={"Accept": h.ALL_MANIFEST_ACCEPT})
                resp = conn.getresponse()
                resp.read()
                self.assertEqual(resp.status, 200)

        # Records are ~570 bytes: 2500 HEADs pass 1 MiB once (and not twice).
        made = 1 + 2500
        heads(2500)
        # Audit lines are written by their own thread a moment after the response:
        # wait (bounded) until the last one is on disk.
        def all_written():
            try:
                return len(all_lines()) >= made
            except AssertionError:  # read while a batch was being written: look again
                return False
        h.wait_until(all_written, 10, "%d audit records on disk" % made)
        self.assertTrue(os.path.exists(rotated[0]), "no audit.log.1 after %d records" % made)
        self.assertFalse(os.path.exists(rotated[2]))
        lines = all_lines()
        records = [json.loads(line) for line in lines]  # a cut line fails to parse
        self.assertEqual(len(records), made, "records lost or duplicated across the rotation")
        self.assertEqual(len({r["request_id"] for r in records}), made, "request ids repeat")
        self.assertTrue(all(r["digest"] == self.rot_img.digest for r in records))
        self.assertLessEqual(os.path.getsize(rotated[0]), 1024 * 1024 + 4096)

        # About four more rotations: only .1 and .2 are kept, the oldest files go.
        for _ in range(8):
            heads(1000)
            made += 1000
            self.assertFalse(os.path.exists(rotated[2]), "audit.log.3 appeared with audit_keep 2")
        self.assertTrue(os.path.exists(rotated[1]), "no audit.log.2 after several rotations")
        records = [json.loads(line) for line in all_lines()]
        self.assertEqual(len({r["request_id"] for r in records}), len(records), "request ids repeat")
        self.assertLess(len(records), made, "nothing was dropped: fewer rotations than expected")
        self.assertGreater(len(records), 2 * 1024 * 1024 // 1000)
        times = [r["time"] for r in records]
        self.assertEqual(times, sorted(times), "the kept files are not the newest, in order")
        self.assertTrue(pg.alive(), pg.stderr())

    def test_06b_audit_lines_survive_a_kill(self):
        # The writer thread hands what gathered to the kernel every 16 ms: a process
        # killed outright loses at most its last moments' lines, never those of
        # decisions made well before.
        pg = h.GatedPullgate(self.work.path, [h.upstream_entry(self.registry)], self.policy)
        pg.start()
        self.addCleanup(pg.close)
        path = self.manifest_path(self.rot_img)
        conn = http.client.HTTPConnection(pg.host, pg.port, timeout=30)
        self.addCleanup(conn.close)
        made = 300
        for _ in range(made):
            conn.request("HEAD", path, headers={"Accept": h.ALL_MANIFEST_ACCEPT})
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(resp.status, 200)
        time.sleep(0.5)  # far longer than the writer's 16 ms
        pg.proc.kill()
        pg.proc.wait()
        with open(pg.audit_path, "rb") as f:
            data = f.read()
        self.assertTrue(data.endswith(b"\n"), "the file ends inside a line")
        heads = [r for r in pg.audit_records() if r.get("method") == "HEAD" and r.get("digest") == self.rot_img.digest]
        self.assertEqual(len(heads), made, "decisions made 0.5 s before the kill are missing from the audit log")

    # ---------------------------------------------------------------- 7. serve --policy

    def test_07_serve_policy_flag(self):
        policy_path = os.path.join(self.work.path, "flag-policy.json")
        data = json.dumps({"default": {"rules": [{"action": "deny", "repository": "it/flag",
                                                  "reason": FLAG_REASON}]}}).encode()
        with open(policy_path, "wb") as f:
            f.write(data)
        pg = h.Pullgate(self.work.path, [h.upstream_entry(self.registry)], args=["--policy", policy_path]).start()
        self.addCleanup(pg.close)
        self.assertNotIn("gate", pg.config)
        self.assert_denied(self.flag_img, FLAG_REASON, pg=pg, what="serve --policy:")
        self.assert_served(self.allowed, pg, "serve --policy, another repository:")
        # The admin reload reads the file the flag named.
        admin = Admin(pg)
        with open(policy_path, "wb") as f:
            f.write(b"{}")
        status, doc = admin.json("POST", "/v1/policy/reload")
        self.assertEqual((status, doc["policy_version"]), (200, h.sha256_digest(b"{}")), doc)
        self.assert_served(self.flag_img, pg, "after reloading {} given with --policy:")

    # ---------------------------------------------------------------- 8. CLI expiring verdict

    def test_08_cli_verdict_expires_while_running(self):
        image = self.cli_img
        self.assert_served(image, what="before the CLI verdict:")
        started = time.time()
        r = self.pg.cli("verdict", "set", image.digest, "deny", "--expires-in", "1s", "--reason", "one second",
                        "--by", "erin")
        self.assertEqual(r.returncode, 0, r.stderr)
        status = self.status_of(image)
        vstatus, doc = self.admin.json("GET", "/v1/verdicts/" + image.digest)
        elapsed = time.time() - started
        if elapsed < 0.9:  # the CLI, the GET and the admin GET fit inside the second
            self.assertEqual(status, 403, "CLI verdict set deny --expires-in 1s did not refuse")
            self.assertEqual(vstatus, 200, doc)
            self.assertEqual((doc["decision"], doc["source"], doc["set_by"]), ("deny", "manual", "erin"), doc)
            self.assertIsNotNone(doc["expires_at_ms"])
        h.wait_until(lambda: self.status_of(image) == 200, 10, "the CLI's 1 s verdict to lapse", interval=0.1)
        self.assertGreaterEqual(time.time() - started, 0.9)
        self.assert_served(image, what="after the CLI verdict lapsed:")
        # Durations the CLI refuses with one line: none, and more than 100 years (past
        # 2262 a time wraps around, and the verdict would read as long expired).
        for duration in ("0s", "36600d", "99999999999d"):
            r = self.pg.cli("verdict", "set", image.digest, "deny", "--expires-in", duration)
            self.assertEqual(r.returncode, 2, "%s: %s" % (duration, r.stderr))
            self.assertIn("at most 100 years", r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assert_served(image, what="after refused CLI verdicts:")


if __name__ == "__main__":
    unittest.main(verbosity=2)
