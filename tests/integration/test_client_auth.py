"""Who may pull (issue 14): client certificates (mutual TLS) and tokens on the registry
listener, and the policy's access section, with real clients holding them and not:
skopeo (--src-cert-dir, --src-creds), containerd (hosts.toml `client`), curl (Bearer)
and raw HTTPS. Certificates are made here with the openssl CLI."""
import base64
import json
import os
import shutil
import subprocess
import unittest

import harness as h

POLICY = {
    "access": {
        "groups": {"prod-nodes": ["node-1.prod"]},
        "rules": [
            {"repository": "prod/**", "who": ["prod-nodes"]},
            {"repository": "team/**", "who": ["*"]},
        ],
        "others": ["*"],
    }
}


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr))


def make_ca(directory, name):
    cert, key = os.path.join(directory, name + ".crt"), os.path.join(directory, name + ".key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=" + name, "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign", "-keyout", key, "-out", cert)
    return cert, key


def make_client_cert(directory, cn, ca_cert, ca_key):
    """(cert, key) for CN=cn issued by the CA, for TLS client authentication."""
    base = os.path.join(directory, cn)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=" + cn,
            "-keyout", base + ".key", "-out", base + ".csr")
    ext = base + ".ext"
    with open(ext, "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", base + ".csr", "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
            "-days", "2", "-extfile", ext, "-out", base + ".cert")
    return base + ".cert", base + ".key"


def cert_dir(directory, server_ca, client=None):
    """A docker-style certs.d directory: ca.crt (the mirror's certificate) and, with
    client, client.cert/client.key."""
    os.makedirs(directory, exist_ok=True)
    shutil.copy(server_ca, os.path.join(directory, "ca.crt"))
    if client:
        shutil.copy(client[0], os.path.join(directory, "client.cert"))
        shutil.copy(client[1], os.path.join(directory, "client.key"))
    return directory


class TlsGatedPullgate(h.GatedPullgate):
    """A GatedPullgate serving HTTPS (h.TlsPullgate's start and requests)."""

    def __init__(self, workdir, upstreams, policy_doc, cert_file, key_file, clients):
        extra = {"tls": {"cert_file": cert_file, "key_file": key_file}, "clients": clients}
        super().__init__(workdir, upstreams, policy_doc, extra=extra)
        self.context = h.https_context(cert_file)

    start = h.TlsPullgate.start
    request = h.TlsPullgate.request


class ClientAuth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = h.Workdir()
        cls.addClassCleanup(cls.work.close)
        w = cls.work.path
        cls.registry = h.Registry(w).start()
        cls.addClassCleanup(cls.registry.close)
        cls.prod = h.push_image(cls.registry, h.build_image("prod/api", "v1", [h.small_layer("prod")], label="prod"))
        cls.team = h.push_image(cls.registry, h.build_image("team/app", "v1", [h.small_layer("team")], label="team"))
        cls.server_cert, cls.server_key = h.make_self_signed_cert(w)
        cls.ca_cert, cls.ca_key = make_ca(w, "client-ca")
        cls.node = make_client_cert(w, "node-1.prod", cls.ca_cert, cls.ca_key)
        cls.dev = make_client_cert(w, "dev-laptop", cls.ca_cert, cls.ca_key)
        rogue_dir = os.path.join(w, "rogue")
        os.makedirs(rogue_dir)
        rogue_ca = make_ca(rogue_dir, "rogue-ca")
        cls.rogue = make_client_cert(rogue_dir, "node-1.prod", *rogue_ca)

        cls.tokens = os.path.join(w, "tokens")
        cls.ci_token = cls.new_token("ci")
        cls.pg = TlsGatedPullgate(w, [h.upstream_entry(cls.registry)], POLICY, cls.server_cert, cls.server_key,
                                  {"ca_file": cls.ca_cert, "certificates": "optional", "tokens_file": cls.tokens})
        cls.pg.start()
        cls.addClassCleanup(cls.pg.close)

    @classmethod
    def new_token(cls, name):
        r = h.pullgate_cli("token", "new", name, "--file", cls.tokens)
        if r.returncode != 0:
            raise RuntimeError("pullgate token new: " + r.stderr)
        return r.stdout.strip()

    def setUp(self):
        self.assertTrue(self.pg.alive(), "pullgate died before this test: " + self.pg.stderr())

    # ------------------------------------------------------------------ helpers

    def skopeo(self, ref, certs=None, creds=None):
        out = os.path.join(self.work.path, "out-%d" % len(os.listdir(self.work.path)))
        cmd = ["skopeo", "--insecure-policy", "copy"]
        if certs:
            cmd += ["--src-cert-dir", certs]
        if creds:
            cmd += ["--src-creds", creds]
        cmd += ["docker://%s/%s" % (self.pg.address, ref), "dir:" + out]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, HOME=self.work.path))
        return r, out

    def https(self, path, headers=None, method="GET"):
        return self.pg.request(method, path, headers=headers)

    def basic(self, user, token):
        return ("Authorization", "Basic " + base64.b64encode(("%s:%s" % (user, token)).encode()).decode())

    def audit(self, predicate, what):
        return h.wait_until(lambda: [r for r in self.pg.audit_records() if predicate(r)] or None, 10, what)

    def assert_unauthorized(self, status, headers, body, what):
        self.assertEqual(status, 401, "%s: %r" % (what, body[:300]))
        self.assertEqual(h.header(headers, "WWW-Authenticate"), 'Basic realm="pullgate"', what)
        code, message = h.oci_error(body)
        self.assertEqual(code, "UNAUTHORIZED", what)
        return message

    # ------------------------------------------------------------------ certificates

    def test_01_skopeo_with_a_client_certificate_pulls(self):
        certs = cert_dir(os.path.join(self.work.path, "certs-node"), self.server_cert, self.node)
        r, out = self.skopeo("prod/api:v1", certs=certs)
        self.assertEqual(r.returncode, 0, r.stderr + self.pg.stderr())
        h.assert_dir_output(self, out, self.prod)
        records = self.audit(lambda r: r.get("repository") == "prod/api" and r.get("kind") == "manifest",
                             "the audit line of node-1.prod's pull")
        self.assertTrue(all(r["identity"] == "node-1.prod" for r in records), records)
        blobs = [r for r in self.pg.audit_records() if r.get("repository") == "prod/api" and r.get("kind") == "blob"]
        self.assertTrue(blobs and all(r["identity"] == "node-1.prod" for r in blobs), blobs)

    def test_02_skopeo_without_a_certificate_is_refused(self):
        certs = cert_dir(os.path.join(self.work.path, "certs-none"), self.server_cert)
        r, _ = self.skopeo("prod/api:v1", certs=certs)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("authentication required", r.stderr)
        status, headers, body = self.https("/v2/prod/api/manifests/v1")
        message = self.assert_unauthorized(status, headers, body, "no credential")
        self.assertIn("authentication required", message)
        status, headers, body = self.https("/v2/")
        self.assert_unauthorized(status, headers, body, "/v2/ without a credential")
        status, _, _ = self.https("/healthz")
        self.assertEqual(status, 200, "health probes hold no credential")
        self.audit(lambda r: r.get("source") == "access" and r.get("repository") == "prod/api"
                   and r.get("identity") == "anonymous" and r.get("status") == 401,
                   "the audit line of the anonymous refusal")

    def test_03_a_certificate_from_another_ca_fails_the_handshake(self):
        r = subprocess.run(["curl", "-sS", "--cacert", self.server_cert, "--cert", self.rogue[0], "--key", self.rogue[1],
                            "https://%s/v2/prod/api/manifests/v1" % self.pg.address],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0, "a certificate the client CA did not issue: " + r.stdout)
        self.assertEqual(r.stdout, "")
        # ... and the listener goes on serving.
        r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", self.server_cert,
                            "--cert", self.node[0], "--key", self.node[1],
                            "https://%s/v2/" % self.pg.address], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.stdout, "200", r.stderr)

    def test_04_an_identity_the_policy_does_not_name_is_denied(self):
        certs = cert_dir(os.path.join(self.work.path, "certs-dev"), self.server_cert, self.dev)
        r, _ = self.skopeo("prod/api:v1", certs=certs)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("denied: pullgate denied 127.0.0.1:%d/prod/api to identity" % self.registry.port, r.stderr)
        self.assertIn("dev-laptop", r.stderr)
        r, out = self.skopeo("team/app:v1", certs=certs)
        self.assertEqual(r.returncode, 0, r.stderr)
        h.assert_dir_output(self, out, self.team)

    # ------------------------------------------------------------------ tokens

    def test_05_skopeo_with_a_token_pulls(self):
        r, out = self.skopeo("team/app:v1", certs=cert_dir(os.path.join(self.work.path, "certs-t"), self.server_cert),
                             creds="ci:" + self.ci_token)
        self.assertEqual(r.returncode, 0, r.stderr + self.pg.stderr())
        h.assert_dir_output(self, out, self.team)
        self.audit(lambda r: r.get("repository") == "team/app" and r.get("identity") == "ci"
                   and r.get("kind") == "manifest", "the audit line of ci's pull")

    def test_06_a_wrong_token_is_401(self):
        certs = cert_dir(os.path.join(self.work.path, "certs-w"), self.server_cert)
        r, _ = self.skopeo("team/app:v1", certs=certs, creds="ci:" + self.ci_token[:-1] + "x")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("authentication failed: wrong user name or token", r.stderr)
        status, headers, body = self.https("/v2/team/app/manifests/v1",
                                           headers=[self.basic("ci", "pgt_not-the-token")])
        message = self.assert_unauthorized(status, headers, body, "wrong token")
        self.assertEqual(message, "authentication failed: wrong user name or token")
        status, headers, body = self.https("/v2/team/app/manifests/v1", headers=[self.basic("root", self.ci_token)])
        self.assert_unauthorized(status, headers, body, "ci's token under another name")
        self.audit(lambda r: r.get("source") == "access" and r.get("repository") == "team/app"
                   and r.get("status") == 401, "the audit line of the wrong token")

    def test_07_bearer_with_curl(self):
        url = "https://%s/v2/team/app/manifests/v1" % self.pg.address
        base = ["curl", "-sS", "--cacert", self.server_cert, "-H", "Accept: " + self.team.manifest_type]
        r = subprocess.run(base + ["-H", "Authorization: Bearer " + self.ci_token, url],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, self.team.manifest)
        r = subprocess.run(base + ["-w", "\n%{http_code}", "-H", "Authorization: Bearer pgt_wrong", url],
                           capture_output=True, text=True, timeout=30)
        body, _, code = r.stdout.rpartition("\n")
        self.assertEqual(code, "401")
        self.assertEqual(h.oci_error(body)[0], "UNAUTHORIZED")

    def test_08_a_token_identity_is_denied_what_the_policy_keeps_from_it(self):
        status, _, body = self.https("/v2/prod/api/manifests/v1", headers=[self.basic("ci", self.ci_token)])
        message = h.assert_oci_denied(self, status, body, "ci pulling prod/api",
                                      'identity "ci"', "127.0.0.1:%d/prod/api" % self.registry.port,
                                      "access.rules[0]")
        self.assertNotIn("Pullgate-Decision", message)
        r, _ = self.skopeo("prod/api:v1", certs=cert_dir(os.path.join(self.work.path, "certs-d"), self.server_cert),
                           creds="ci:" + self.ci_token)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("denied: pullgate denied", r.stderr)
        self.assertIn("ci", r.stderr)
        records = self.audit(lambda r: r.get("source") == "access" and r.get("identity") == "ci"
                             and r.get("repository") == "prod/api", "the audit line of ci's refusal")
        self.assertEqual(records[0]["status"], 403)
        self.assertFalse(records[0]["served"])
        self.assertIn("access.rules[0]", records[0]["reasons"][0])
        # `pullgate audit --identity` finds every line of that identity and no other's.
        r = h.pullgate_cli("audit", "--file", self.pg.audit_path, "--identity", "ci")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual(len(lines), len([a for a in self.pg.audit_records() if a.get("identity") == "ci"]))
        self.assertTrue(any(l.get("source") == "access" and l["repository"] == "prod/api" for l in lines), r.stdout)
        self.assertEqual({l["identity"] for l in lines}, {"ci"})
        # `pullgate explain --identity` says the same before anyone pulls.
        image = "127.0.0.1:%d/prod/api:v1" % self.registry.port
        for who, may in (("ci", False), ("node-1.prod", True)):
            r = h.pullgate_cli("explain", image, "--data", self.pg.data_dir, "--identity", who)
            self.assertEqual(r.returncode, 0, r.stderr)
            answer = json.loads(r.stdout)
            self.assertEqual(answer["access"], {"identity": who, "may_pull": may, "by": "access.rules[0]"})
            self.assertEqual(answer["served"], may)
            status, _, body = h.admin_request(self.pg, h.read_token(self.pg), "GET",
                                              "/v1/explain?image=%s&identity=%s" % (image, who))
            self.assertEqual((status, json.loads(body)["access"]["may_pull"]), (200, may), body)
        status, _, body = h.admin_request(self.pg, h.read_token(self.pg), "GET",
                                          "/v1/explain?image=%s&identity=no%%20body" % image)
        self.assertEqual(status, 400, body)
        self.assertIn("identity: not an identity name", body.decode())

    def test_09_a_new_token_works_after_sighup(self):
        token = self.new_token("bob")
        status, _, _ = self.https("/v2/team/app/manifests/v1", headers=[self.basic("bob", token)])
        self.assertEqual(status, 401, "not before the reload")
        self.pg.reload()
        h.wait_until(lambda: any(e.get("msg") == "tokens file reloaded"
                                 for e in self.pg.log_events()), 10, "the tokens file reloaded")
        status, _, body = self.https("/v2/team/app/manifests/v1",
                                     headers=[self.basic("bob", token), ("Accept", self.team.manifest_type)])
        self.assertEqual(status, 200, body[:300])
        r = h.pullgate_cli("token", "rm", "bob", "--file", self.tokens)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.pg.reload()
        h.wait_until(lambda: self.https("/v2/team/app/manifests/v1", headers=[self.basic("bob", token)])[0] == 401,
                     10, "bob's token gone after the second reload")

    # ------------------------------------------------------------------ containerd

    def containerd_hosts(self, ctrd, client):
        d = os.path.join(ctrd.hosts_dir, self.pg.address)
        os.makedirs(d, exist_ok=True)
        lines = ['server = "https://%s"' % self.pg.address, "",
                 '[host."https://%s"]' % self.pg.address,
                 '  capabilities = ["pull", "resolve"]',
                 '  ca = "%s"' % self.server_cert]
        if client:
            lines.append('  client = [["%s", "%s"]]' % client)
        with open(os.path.join(d, "hosts.toml"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def test_10_containerd_with_the_client_certificate_in_hosts_toml(self):
        ctrd = h.Containerd().start()
        self.addCleanup(ctrd.close)
        ref = "%s/prod/api:v1" % self.pg.address
        self.containerd_hosts(ctrd, None)
        r = ctrd.ctr("without", "images", "pull", "--hosts-dir", ctrd.hosts_dir, ref)
        self.assertNotEqual(r.returncode, 0, "pulled without a client certificate: " + r.stdout)
        self.assertIn("401", r.stderr + r.stdout)
        self.containerd_hosts(ctrd, self.node)
        r = ctrd.ctr("with", "images", "pull", "--hosts-dir", ctrd.hosts_dir, ref)
        self.assertEqual(r.returncode, 0, r.stderr + self.pg.stderr())
        self.assertEqual(ctrd.image_digest("with", ref), self.prod.digest)
        self.assertEqual(ctrd.content("with", self.prod.layers[0].digest), self.prod.layers[0].blob)
        self.audit(lambda r: r.get("identity") == "node-1.prod" and r.get("kind") == "manifest"
                   and r.get("method") == "HEAD", "containerd's HEAD audited with its identity")


class RequiredCertificates(unittest.TestCase):
    """certificates: require: no TLS handshake without a client certificate."""

    def test_no_handshake_without_a_certificate(self):
        work = h.Workdir()
        self.addCleanup(work.close)
        registry = h.Registry(work.path).start()
        self.addCleanup(registry.close)
        image = h.push_image(registry, h.build_image("any/thing", "v1", [h.small_layer("req")], label="req"))
        server_cert, server_key = h.make_self_signed_cert(work.path)
        ca = make_ca(work.path, "client-ca")
        node = make_client_cert(work.path, "node-2", *ca)
        pg = h.TlsPullgate(work.path, [h.upstream_entry(registry)], server_cert, server_key,
                           extra={"clients": {"ca_file": ca[0], "certificates": "require"}})
        self.addCleanup(pg.close)
        # The harness's probe holds no client certificate: /healthz over a handshake
        # that takes one shows the listener is up.
        import ssl
        context = ssl.create_default_context(cafile=server_cert)
        context.load_cert_chain(*node)
        pg.context = context
        pg.start()
        r = subprocess.run(["curl", "-sS", "--cacert", server_cert, "https://%s/healthz" % pg.address],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0, "a handshake without a client certificate: " + r.stdout)
        self.assertEqual(r.stdout, "")
        r = subprocess.run(["curl", "-sS", "--cacert", server_cert, "--cert", node[0], "--key", node[1],
                            "-H", "Accept: " + image.manifest_type,
                            "https://%s/v2/any/thing/manifests/v1" % pg.address], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, image.manifest)


class OpenListenerWarning(unittest.TestCase):
    def test_check_config_warns_about_a_reachable_listener_without_client_auth(self):
        work = h.Workdir()
        self.addCleanup(work.close)
        path = os.path.join(work.path, "c.json")
        with open(path, "w") as f:
            json.dump({"listen": "0.0.0.0:5000", "upstreams": [{"url": "http://127.0.0.1:1"}]}, f)
        r = h.pullgate_cli("check-config", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("warning: listen: 0.0.0.0:5000 is reachable from other hosts and no client authentication",
                      r.stderr)
        with open(path, "w") as f:
            json.dump({"listen": "127.0.0.1:5000", "upstreams": [{"url": "http://127.0.0.1:1"}]}, f)
        r = h.pullgate_cli("check-config", path)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        tokens = os.path.join(work.path, "tokens")
        with open(tokens, "w") as f:
            f.write("ci sha256:abc\n")
        with open(path, "w") as f:
            json.dump({"listen": "0.0.0.0:5000", "clients": {"tokens_file": tokens},
                       "upstreams": [{"url": "http://127.0.0.1:1"}]}, f)
        r = h.pullgate_cli("check-config", path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("clients.tokens_file: tokens file %s: line 1: the hash must be sha256:" % tokens, r.stderr)


if __name__ == "__main__":
    unittest.main()
