"""An upstream behind bearer-token auth (Distribution 2.8 `auth: token`) with a token
server of our own; pullgate holds the credentials."""
import base64
import http.server
import json
import os
import subprocess
import threading
import time
import unittest
import urllib.parse
import uuid

import harness as h

USERNAME = "mirror-bot"
PASSWORD = "s3cret-pass"
SERVICE = "pullgate-test-registry"
ISSUER = "pullgate-test-issuer"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues RS256 JWTs signed with the openssl CLI; the header carries the signing
    certificate in x5c, and the registry trusts that certificate (rootcertbundle)."""

    def __init__(self, workdir):
        self.dir = workdir
        self.key = os.path.join(workdir, "token-key.pem")
        self.cert = os.path.join(workdir, "token-cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key,
                        "-out", self.cert, "-days", "2", "-subj", "/CN=" + ISSUER],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.requests = []  # (authorization header, query dict)
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                parts = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(parts.query)
                auth = self.headers.get("Authorization", "")
                with server.lock:
                    server.requests.append((auth, query))
                good = "Basic " + base64.b64encode(("%s:%s" % (USERNAME, PASSWORD)).encode()).decode()
                if parts.path != "/token" or auth != good or query.get("service") != [SERVICE]:
                    body = b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}'
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                access = []
                for scope in query.get("scope", []):
                    for one in scope.split(" "):
                        fields = one.split(":")
                        if len(fields) == 3 and fields[0] == "repository":
                            access.append({"type": "repository", "name": fields[1],
                                           "actions": [a for a in fields[2].split(",") if a in ("pull",)]})
                token = server.sign(USERNAME, access)
                body = json.dumps({"token": token, "access_token": token, "expires_in": 300,
                                   "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.realm = "http://127.0.0.1:%d/token" % self.port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def sign(self, subject, access):
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": str(uuid.uuid4()), "access": access}
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key], input=signing_input.encode(),
                             check=True, capture_output=True).stdout
        return signing_input + "." + b64url(sig)

    def count(self):
        with self.lock:
            return len(self.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class TokenAuth(unittest.TestCase):
    def request(self, pg, method, path, headers=None):
        """pg.request, but a dropped connection fails the test with pullgate's state."""
        try:
            return pg.request(method, path, headers=headers)
        except OSError as e:
            self.fail("%s %s: connection dropped (%r); pullgate alive=%s; token requests so far=%d; stderr:\n%s"
                      % (method, path, e, pg.alive(), self.tokens.count(), pg.stderr()))

    @classmethod
    def setUpClass(cls):
        cls.work = h.Workdir()
        cls.addClassCleanup(cls.work.close)
        cls.tokens = TokenServer(cls.work.path)
        cls.addClassCleanup(cls.tokens.close)
        repos = ["it/auth", "it/auth2"]
        auth = {"realm": cls.tokens.realm, "service": SERVICE, "issuer": ISSUER,
                "rootcertbundle": cls.tokens.cert,
                "push_token": lambda reg: cls.tokens.sign("seeder", [
                    {"type": "repository", "name": r, "actions": ["pull", "push"]} for r in repos])}
        cls.registry = h.Registry(cls.work.path, auth=auth).start()
        cls.addClassCleanup(cls.registry.close)
        cls.image = h.seed_oci(cls.registry, repo="it/auth", seed="auth")
        cls.image2 = h.seed_schema2(cls.registry, repo="it/auth2", seed="auth2")
        cls.accept = [("Accept", a) for a in h.SKOPEO_ACCEPTS]

    def test_upstream_requires_token(self):
        # The setup is real: anonymous pulls from the upstream are refused.
        status, headers, _ = h.http_request(self.registry.host, self.registry.port, "GET",
                                            "/v2/it/auth/manifests/v1", headers=self.accept)
        self.assertEqual(status, 401)
        self.assertIn("Bearer", h.header(headers, "WWW-Authenticate"))

    def test_pull_with_credentials_reuses_token(self):
        pg = h.Pullgate(self.work.path, [h.upstream_entry(self.registry, tag_ttl_s=0,
                                                           username=USERNAME, password=PASSWORD)]).start()
        self.addCleanup(pg.close)
        before = self.tokens.count()
        tag_path = "/v2/it/auth/manifests/v1"
        status, _, body = self.request(pg, "GET", tag_path, headers=self.accept)
        self.assertEqual(status, 200, "%r\n%s" % (body[:300], pg.stderr()))
        self.assertEqual(body, self.image.manifest)
        config_path = "/v2/it/auth/blobs/" + self.image.config_digest
        status, _, body = self.request(pg, "GET", config_path)
        self.assertEqual(status, 200)
        self.assertEqual(body, self.image.config)
        asked = self.tokens.count() - before
        self.assertGreaterEqual(asked, 1, "the token server was never asked")
        with self.tokens.lock:
            for auth, query in self.tokens.requests[before:]:
                self.assertTrue(auth.startswith("Basic "), "token request without credentials")
                self.assertIn("repository:it/auth:pull", " ".join(query.get("scope", [])))

        # Second pull: tag re-checked upstream (tag_ttl_s 0) and cold layers fetched,
        # all with the token already held.
        up_before = self.registry.count(tag_path)
        status, _, body = self.request(pg, "GET", tag_path, headers=self.accept)
        self.assertEqual(status, 200)
        self.assertEqual(body, self.image.manifest)
        for layer in self.image.layers:
            status, _, body = self.request(pg, "GET", "/v2/it/auth/blobs/" + layer.digest)
            self.assertEqual(status, 200)
            self.assertEqual(body, layer.blob)
        self.assertGreater(self.registry.count(tag_path), up_before, "second pull never reached the upstream")
        self.assertEqual(self.tokens.count() - before, asked, "the token was not reused")

    def test_skopeo_through_pullgate_with_password_file(self):
        pwfile = os.path.join(self.work.path, "upstream-password")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(pwfile, 0o600)
        pg = h.Pullgate(self.work.path, [h.upstream_entry(self.registry, username=USERNAME,
                                                           password_file=pwfile)]).start()
        self.addCleanup(pg.close)
        conf = os.path.join(self.work.path, "registries.conf")
        h.write_registries_conf(conf, self.registry.address, pg.address, blocked=True)
        out = os.path.join(self.work.path, "skopeo-auth2")
        r = h.skopeo_copy(conf, self.registry.address + "/it/auth2:v1", out)
        self.assertEqual(r.returncode, 0, "%s\n%s" % (r.stderr, pg.stderr()))
        files = h.read_dir_output(out)
        self.assertEqual(files["manifest.json"], self.image2.manifest)
        for digest, data in self.image2.blobs().items():
            self.assertEqual(files[digest.split(":", 1)[1]], data)

    def test_wrong_password_fails_cleanly(self):
        pg = h.Pullgate(self.work.path, [h.upstream_entry(self.registry, username=USERNAME,
                                                           password="wrong")]).start()
        self.addCleanup(pg.close)
        before = self.tokens.count()
        status, headers, body = self.request(pg, "GET", "/v2/it/auth/manifests/v1", headers=self.accept)
        self.assertNotEqual(status, 200)
        self.assertGreaterEqual(status, 400)
        self.assertNotEqual(body, self.image.manifest)
        doc = json.loads(body)
        self.assertTrue(doc.get("errors"), body)
        self.assertGreater(self.tokens.count(), before, "the token server was never asked")
        self.assertTrue(pg.healthy())


if __name__ == "__main__":
    unittest.main(verbosity=2)
