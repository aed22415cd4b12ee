"""The admin listener's status page (GET /), with real components: a real upstream
(CNCF Distribution), pullgate with a policy that denies one repository with a
hostile reason (HTML, quotes, a script, an img with onerror) and queues unscanned
images of another for a scanner, skopeo and raw HTTP pulls, a second upstream that
does not answer. Checks who may open the page (no credentials: 401 with a Basic
challenge; the scanner token: 403; the admin token: 200 with the page's security
headers), that the page shows the denial (image, reason as text, client, time), the
pending digest and its age, cache and traffic numbers, the upstreams' health and
the policy version; then loads it in headless Chromium (Debian's), whose parsed DOM
must hold the hostile reason as text and no element made from it, and whose
screenshot must be a PNG of the size asked for. With the fleet store (a real etcd and
two replicas), the page's fleet section follows /readyz, in step and after etcd is
gone."""
import base64
import hashlib
import html.parser
import os
import re
import shutil
import struct
import subprocess
import tempfile
import unittest

import fleet_harness as fh
import harness as h

HOSTILE = "<script>alert(1)</script> \"quoted\" 'single' <img src=x onerror=alert(2)> & more"
CHROMIUM = "/usr/bin/chromium"
WIDTH, HEIGHT = 1280, 2000


def basic(token, user="oncall"):
    return "Basic " + base64.b64encode(("%s:%s" % (user, token)).encode()).decode()


class Elements(html.parser.HTMLParser):
    """The element names and the text of an HTML document, as a parser sees them."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = []
        self.text = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(document):
    p = Elements()
    p.feed(document)
    p.close()
    return p.tags, "".join(p.text)


def png_size(data):
    """(width, height) of a PNG, or None when data is not one."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


class StatusPage(h.PullgateAlive, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(CHROMIUM, os.X_OK):
            raise RuntimeError("%s is missing: deploy/install-deps.sh --test installs chromium" % CHROMIUM)
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        reg = cls.registry
        cls.evil = h.seed_oci(reg, repo="it/evil", seed="status-evil")
        cls.good = h.seed_oci(reg, repo="it/good", seed="status-good")
        cls.scan = h.seed_oci(reg, repo="scan/app", seed="status-scan")
        cls.dead_port = h.free_port()  # nothing listens there
        cls.dead = "127.0.0.1:%d" % cls.dead_port
        policy = {
            "default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow",
                        "rules": [{"action": "deny", "repository": "it/evil", "reason": HOSTILE}]},
            "scopes": [{"name": "scanned", "repository": "scan/**", "vulnerabilities": {"unscanned": "deny"}}],
        }
        cls.pg = h.GatedPullgate(cls.work.path, [h.upstream_entry(reg),
                                                 {"name": cls.dead, "url": "http://" + cls.dead, "tag_ttl_s": 300}],
                                 policy).start()
        cls.addClassCleanup(cls.pg.close)
        cls.token = h.read_token(cls.pg)
        cls.scanner_token = h.read_token(cls.pg, "scanner.token")

        # Traffic: the good image twice (misses, then hits), the denied one, the
        # unscanned one (denied and queued), and one request the dead upstream fails.
        for _ in range(2):
            r, _ = h.skopeo_via_mirror(cls.work.path, reg, cls.pg, "it/good:v1", timeout=60)
            assert r.returncode == 0, r.stderr
        r, _ = h.skopeo_via_mirror(cls.work.path, reg, cls.pg, "it/evil:v1", timeout=60)
        assert r.returncode != 0, "skopeo pulled the denied image"
        status, _, body = cls.pg.request("GET", "/v2/scan/app/manifests/v1",
                                         headers=[("Accept", a) for a in h.SKOPEO_ACCEPTS])
        assert status == 403, (status, body[:300])
        status, _, body = cls.pg.request("GET", "/v2/it/gone/manifests/v1?ns=" + cls.dead.replace(":", "%3A"),
                                         headers=[("Accept", a) for a in h.SKOPEO_ACCEPTS])
        assert status == 502, (status, body[:300])

    def page(self, auth=None, method="GET"):
        headers = [("Authorization", auth)] if auth else []
        status, headers, body = h.http_request(self.pg.host, self.pg.admin_port, method, "/", headers=headers)
        return status, headers, body.decode("utf-8")

    def assert_page_headers(self, headers):
        self.assertEqual(h.header(headers, "Content-Security-Policy"),
                         "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
        self.assertEqual(h.header(headers, "X-Content-Type-Options"), "nosniff")
        self.assertEqual(h.header(headers, "X-Frame-Options"), "DENY")
        self.assertEqual(h.header(headers, "Cache-Control"), "no-store")
        self.assertEqual(h.header(headers, "Referrer-Policy"), "no-referrer")

    def test_01_without_the_admin_token_the_page_does_not_open(self):
        status, headers, body = self.page()
        self.assertEqual(status, 401, body[:300])
        self.assertEqual(h.header(headers, "WWW-Authenticate"), 'Basic realm="pullgate admin", charset="UTF-8"')
        self.assert_page_headers(headers)
        self.assertNotIn(self.evil.digest, body)
        for wrong in (basic("not-the-token-at-all-0000"), "Bearer not-the-token-at-all-0000", basic(self.token)[:-4]):
            status, _, body = self.page(wrong)
            self.assertEqual(status, 401, (wrong, body[:300]))
        for scanner in (basic(self.scanner_token), "Bearer " + self.scanner_token):
            status, headers, body = self.page(scanner)
            self.assertEqual(status, 403, body[:300])
            self.assertNotIn(self.evil.digest, body)
        # The API's own answer is unchanged: Bearer challenge, JSON.
        status, headers, _ = h.admin_request(self.pg, None, "GET", "/v1/verdicts")
        self.assertEqual(status, 401)
        self.assertEqual(h.header(headers, "WWW-Authenticate"), 'Bearer realm="pullgate-admin"')
        status, headers, _ = self.page(basic(self.token), method="POST")
        self.assertEqual(status, 405)

    def test_02_the_page_shows_the_denial_pending_scan_cache_upstreams_and_policy(self):
        status, headers, body = self.page(basic(self.token))
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(h.header(headers, "Content-Type"), "text/html; charset=utf-8")
        self.assert_page_headers(headers)
        # Bearer opens it as well (the same token).
        self.assertEqual(self.page("Bearer " + self.token)[0], 200)

        tags, text = parse(body)
        names = [t for t, _ in tags]
        self.assertNotIn("script", names)
        self.assertNotIn("img", names)
        self.assertFalse([a for _, a in tags if any(k.startswith("on") for k in a)], "an element with a handler")
        # The denial: image, reason (as text), client, time.
        self.assertIn("%s/it/evil:v1" % self.registry.address, text)
        self.assertIn(self.evil.digest, text)
        self.assertIn(HOSTILE, text)
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt; &quot;quoted&quot; &#39;single&#39; "
                      "&lt;img src=x onerror=alert(2)&gt; &amp; more", body)
        self.assertIn("127.0.0.1:", text)
        audit = [r for r in self.pg.audit_records() if r.get("repository") == "it/evil" and r["decision"] == "deny"]
        self.assertTrue(audit)
        self.assertIn(audit[-1]["client"], text)
        self.assertIn(audit[-1]["time"][:19], text)  # to the second, as the audit line has it
        # The pending digest with its age.
        self.assertIn(self.scan.digest, text)
        self.assertIn("%s/scan/app:v1" % self.registry.address, text)
        self.assertRegex(text, r"Pending scans \(1\)")
        self.assertRegex(text, r"\d+s\s*since \d{4}-\d\d-\d\dT")
        # Cache and traffic: the good image cached, hits after the second pull.
        self.assertIn("%s/it/good:v1" % self.registry.address, text)
        self.assertRegex(text, r"Hit ratio\s*\d+\.\d%")
        hits = int(re.search(r"\((\d+) hits, (\d+) misses", text).group(1))
        self.assertGreater(hits, 0, text)
        allowed = int(re.search(r"(\d+) allowed, \d+ warned, (\d+) denied", text).group(1))
        denied = int(re.search(r"\d+ allowed, \d+ warned, (\d+) denied", text).group(1))
        self.assertGreaterEqual(allowed, 2)
        self.assertGreaterEqual(denied, 2)
        # Upstreams: the real one answered; the dead one's last trouble says so.
        self.assertIn(self.registry.address, text)
        self.assertRegex(text, re.escape(self.dead) + r"\s*1\s*1\s*0")
        self.assertIn("no answer", text)
        # Policy and replica.
        with open(self.pg.policy_path, "rb") as f:
            version = "sha256:" + hashlib.sha256(f.read()).hexdigest()
        self.assertIn(version, text)
        self.assertIn(self.pg.policy_path, text)
        self.assertIn("off (this replica decides alone)", text)

    def chromium(self, *args):
        profile = tempfile.mkdtemp(prefix="chromium-", dir=self.work.path)
        url = "http://oncall:%s@%s:%d/" % (self.token, self.pg.host, self.pg.admin_port)
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--user-data-dir=" + profile, "--window-size=%d,%d" % (WIDTH, HEIGHT)] + list(args) + [url]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        finally:
            shutil.rmtree(profile, ignore_errors=True)

    def test_03_chromium_shows_hostile_text_as_text(self):
        r = self.chromium("--dump-dom")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        dom = r.stdout
        tags, text = parse(dom)
        names = [t for t, _ in tags]
        # Chromium was let in with the credentials of the URL, and parsed the page.
        self.assertIn("pullgate status", text, dom[:500])
        self.assertNotIn("script", names)
        self.assertNotIn("img", names)
        self.assertIn(HOSTILE, text)
        self.assertIn(self.evil.digest, text)
        self.assertIn(self.scan.digest, text)
        self.assertRegex(text, r"\(\d+ hits, \d+ misses")

    def test_04_chromium_screenshot(self):
        shot = os.path.join(self.work.path, "status-page.png")
        r = self.chromium("--screenshot=" + shot)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        with open(shot, "rb") as f:
            data = f.read()
        self.assertEqual(png_size(data), (WIDTH, HEIGHT), data[:32])
        self.assertGreater(len(data), 20000)  # a page, not a blank
        keep = os.environ.get("STATUS_PAGE_SCREENSHOT")
        if keep:
            shutil.copyfile(shot, keep)


class FleetOnThePage(unittest.TestCase):
    """With the fleet store on, the page says what /readyz says: the store, whether
    the replica is in step, the replicas' heartbeats; and, etcd gone, degraded."""

    @classmethod
    def setUpClass(cls):
        if not fh.have_etcd():
            raise RuntimeError("etcd is missing: deploy/install-deps.sh --test installs it")
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        cls.etcd = fh.EtcdCluster(cls.work.path, 1).start()
        cls.addClassCleanup(cls.etcd.close)
        cls.replicas = []
        for name in ("a", "b"):
            fleet = {"replica_id": "page-" + name, "on_store_down": "serve_cached",
                     "etcd": {"endpoints": cls.etcd.endpoints, "request_timeout_s": 2}}
            pg = h.GatedPullgate(cls.work.path, [h.upstream_entry(cls.registry)], {"default": {}},
                                 extra={"fleet": fleet}).start()
            cls.addClassCleanup(pg.close)
            pg.token = h.read_token(pg)
            cls.replicas.append(pg)

    def page_text(self, pg):
        status, _, body = h.http_request(pg.host, pg.admin_port, "GET", "/",
                                         headers=[("Authorization", basic(pg.token))])
        self.assertEqual(status, 200, body[:300])
        return parse(body.decode("utf-8"))[1]

    def test_the_fleet_section_follows_readyz(self):
        a = self.replicas[0]
        h.wait_until(lambda: "page-b" in self.page_text(a) and re.search(r"In step\s*yes", self.page_text(a)), 30,
                     "replica a's page showing the fleet in step with both replicas")
        text = self.page_text(a)
        self.assertIn(self.etcd.endpoints[0], text)
        self.assertRegex(text, r"Store answers\s*yes")
        self.assertRegex(text, r"page-a\s*\d{4}-\d\d-\d\dT")
        self.assertRegex(text, r"page-b\s*\d{4}-\d\d-\d\dT")
        self.etcd.stop_all()
        h.wait_until(lambda: re.search(r"In step\s*no", self.page_text(a)), 30, "the page saying the fleet is out of step")
        text = self.page_text(a)
        self.assertIn("degraded", text)
        self.assertRegex(text, r"Store answers\s*no")
        self.assertIn("Last error", text)


if __name__ == "__main__":
    unittest.main()
