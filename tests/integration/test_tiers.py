"""Tiers: edge pullgates whose upstream is a regional (parent) pullgate that serves
two upstream registries. The edges name the original upstream to the parent, one
with containerd's ?ns= form, one with the path prefix; the third edge runs with its
gate off, trusting the parent. Real clients (skopeo, containerd's ctr) pull through
the edges; a deny set on the parent reaches them with the parent's reason, also for
images the edges cached before; a rollout through three edges costs the upstream
registry one download per blob."""
import json
import os
import subprocess
import threading
import unittest

import harness as h

ACCEPT = [("Accept", a) for a in h.SKOPEO_ACCEPTS]
ONE, TWO = "registry-one.test", "registry-two.test"
REASON = "quarantined by the regional security team"
PARENT_HINT = "ask #regional-mirror for an exception"
ALLOW_ALL = {"default": {"mode": "enforce", "unknown": "allow"}}


class Tiers(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.work, cls.one = h.workdir_and_upstream(cls)
        cls.two = h.Registry(cls.work.path).start()
        cls.addClassCleanup(cls.two.close)
        cls.images = {name: h.seed_oci(cls.one, repo="tier/" + name, seed="tier-" + name)
                      for name in ("app", "cached", "fresh", "rollout")}
        # The second upstream's image is pushed by skopeo (a copy of one from the first).
        copy = subprocess.run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
                               "--dest-tls-verify=false", "docker://%s/tier/app:v1" % cls.one.address,
                               "docker://%s/team/tool:v2" % cls.two.address],
                              capture_output=True, text=True, timeout=120)
        assert copy.returncode == 0, copy.stderr
        cls.tool = cls.images["app"]
        # A second tag, for the tag list.
        app = cls.images["app"]
        cls.one.push_manifest("tier/app", "v2", app.manifest, app.manifest_type)

        cls.parent = h.GatedPullgate(cls.work.path, [
            {"name": ONE, "url": cls.one.url, "default": True},
            {"name": TWO, "url": cls.two.url},
        ], ALLOW_ALL, denial_hint=PARENT_HINT).start()
        cls.addClassCleanup(cls.parent.close)
        cls.token = h.read_token(cls.parent)
        parent_url = "http://" + cls.parent.address
        # ns form (the default), gate on with no rule of its own: the parent's word decides.
        cls.edge_ns = h.GatedPullgate(cls.work.path, [
            {"name": ONE, "url": parent_url, "parent_upstream": ONE, "default": True},
        ], ALLOW_ALL).start()
        cls.addClassCleanup(cls.edge_ns.close)
        # path form, for both upstreams of the parent.
        cls.edge_path = h.GatedPullgate(cls.work.path, [
            {"name": ONE, "url": parent_url, "parent_upstream": ONE, "parent_naming": "path", "default": True},
            {"name": TWO, "url": parent_url, "parent_upstream": TWO, "parent_naming": "path"},
        ], ALLOW_ALL).start()
        cls.addClassCleanup(cls.edge_path.close)
        # gate off: a plain mirror that keeps only its parent's denials.
        cls.edge_plain = h.Pullgate(cls.work.path, [
            {"name": ONE, "url": parent_url, "parent_upstream": ONE, "default": True},
        ], extra={"gate": {"enabled": False}}).start()
        cls.addClassCleanup(cls.edge_plain.close)
        cls.edges = (cls.edge_ns, cls.edge_path, cls.edge_plain)

    # ---------------------------------------------------------------- helpers

    def skopeo(self, edge, ref, upstream=ONE, prefix=""):
        """skopeo copy of <upstream>/<ref> with the upstream blocked and `edge` (plus a
        path prefix) as its mirror."""
        conf = os.path.join(self.work.path, "registries-%d-%d.conf" % (edge.port, threading.get_ident()))
        h.write_registries_conf(conf, upstream, edge.address + prefix, blocked=True)
        out = os.path.join(self.work.path, "out-%d-%d-%d" % (edge.port, threading.get_ident(),
                                                             len(os.listdir(self.work.path))))
        return h.skopeo_copy(conf, "%s/%s" % (upstream, ref), out), out

    def pulls(self, edge, ref, image, **kw):
        done, out = self.skopeo(edge, ref, **kw)
        self.assertEqual(done.returncode, 0, "skopeo via %s: %s\nedge: %s\nparent: %s"
                         % (edge.address, done.stderr, edge.stderr(), self.parent.stderr()))
        h.assert_dir_output(self, out, image)

    def refused(self, edge, ref, what):
        done, _ = self.skopeo(edge, ref)
        self.assertNotEqual(done.returncode, 0, what + ": skopeo pulled a denied image")
        self.assertIn(REASON, done.stderr, what)
        self.assertIn(PARENT_HINT, done.stderr, what + ": where to ask")
        return done.stderr

    def parent_verdict(self, digest, decision):
        path = "/v1/verdicts/" + digest
        if decision is None:
            status, _, body = h.admin_request(self.parent, self.token, "DELETE", path)
        else:
            status, _, body = h.admin_request(self.parent, self.token, "PUT", path,
                                              json.dumps({"decision": decision, "reason": REASON}).encode())
        self.assertIn(status, (200, 204), body[:300])

    def parent_requests(self, path, method="GET"):
        return sum(1 for r in self.parent.access_log() if r.get("method") == method and r.get("path") == path)

    # ---------------------------------------------------------------- tests

    def test_clients_pull_through_every_edge_and_both_namings(self):
        image = self.images["app"]
        for edge in self.edges:
            self.pulls(edge, "tier/app:v1", image)
        # One parent, two upstreams: the path-form edge reaches the second by name.
        self.pulls(self.edge_path, "team/tool:v2", self.tool, upstream=TWO, prefix="/" + TWO)
        # What the parent was asked: ?ns= from the ns edges, the /v2/<upstream>/ prefix from the other.
        paths = [r.get("path", "") for r in self.parent.access_log()]
        self.assertTrue(any(p.startswith("/v2/tier/app/manifests/") and "ns=" + ONE in p for p in paths), paths)
        self.assertTrue(any(p.startswith("/v2/%s/tier/app/manifests/" % ONE) for p in paths), paths)
        self.assertTrue(any(p.startswith("/v2/%s/team/tool/manifests/" % TWO) for p in paths), paths)
        # containerd through the ns edge (it sends ?ns= itself: the edge's own, replaced
        # by the parent's name on the way up).
        ctrd = h.Containerd().start()
        self.addCleanup(ctrd.close)
        h.write_hosts_no_fallback(ctrd, ONE, self.edge_ns.address)
        r = ctrd.pull("tiers", "%s/tier/app:v1" % ONE)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(ctrd.image_digest("tiers", "%s/tier/app:v1" % ONE), image.digest)
        # Tag lists through both namings (Debian's registry does not page them, so the
        # Link rewriting is shown by registry_tests' MirrorLink).
        for edge in (self.edge_path, self.edge_ns):
            status, _, body = edge.request("GET", "/v2/tier/app/tags/list")
            self.assertEqual(status, 200, body[:300])
            self.assertEqual(json.loads(body)["tags"], ["v1", "v2"])

    def test_a_rollout_through_three_edges_downloads_each_blob_once(self):
        image = self.images["rollout"]
        errors = []

        def pull(edge):
            done, out = self.skopeo(edge, "tier/rollout:v1")
            if done.returncode != 0:
                errors.append(done.stderr)
                return
            files = h.read_dir_output(out)
            if files.get("manifest.json") != image.manifest:
                errors.append("manifest differs via " + edge.address)
            for digest, data in image.blobs().items():
                if files.get(digest.split(":", 1)[1]) != data:
                    errors.append("blob %s differs via %s" % (digest, edge.address))

        threads = [threading.Thread(target=pull, args=(edge,)) for edge in self.edges for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        self.assertEqual(errors, [])
        counts = {}
        for digest in image.blobs():
            path = "/v2/tier/rollout/blobs/" + digest
            counts[digest] = self.one.count(path, "GET")
            self.assertEqual(counts[digest], 1, "upstream GETs of %s" % digest)
            # Each edge asked the parent once (its own single flight), whatever its naming.
            asked = sum(self.parent_requests(p) for p in (path + "?ns=" + ONE, "/v2/%s/tier/rollout/blobs/%s" % (ONE, digest)))
            self.assertEqual(asked, 3, "parent GETs of %s" % digest)
        print("\nrollout: 6 skopeo pulls through 3 edges; upstream GETs per blob: %s" % sorted(counts.values()))

    def test_a_denial_at_the_parent_reaches_a_fresh_edges_client(self):
        image = self.images["fresh"]
        self.parent_verdict(image.digest, "deny")
        try:
            for edge in self.edges:
                self.refused(edge, "tier/fresh:v1", "via " + edge.address)
            # ctr prints the parent's message too.
            ctrd = h.Containerd().start()
            self.addCleanup(ctrd.close)
            h.write_hosts_no_fallback(ctrd, ONE, self.edge_ns.address)
            r = ctrd.pull("tiers-denied", "%s/tier/fresh:v1" % ONE)
            self.assertNotEqual(r.returncode, 0, "ctr pulled a denied image")
            self.assertIn(REASON, r.stdout + r.stderr)
            # Nothing of it came from the upstream registry.
            for digest in image.blobs():
                self.assertEqual(self.one.count("/v2/tier/fresh/blobs/" + digest, "GET"), 0)
        finally:
            self.parent_verdict(image.digest, None)
        for edge in self.edges:
            self.pulls(edge, "tier/fresh:v1", image)

    def test_a_denial_at_the_parent_stops_what_the_edges_cached(self):
        image = self.images["cached"]
        for edge in self.edges:
            self.pulls(edge, "tier/cached:v1", image)
        self.parent_verdict(image.digest, "deny")
        try:
            for edge in self.edges:
                # By tag (its tag record is still fresh: the GET by digest asks the parent).
                self.refused(edge, "tier/cached:v1", "by tag via " + edge.address)
            for edge in self.edges:
                status, headers, body = edge.request("GET", "/v2/tier/cached/manifests/" + image.digest,
                                                     headers=ACCEPT)
                message = h.assert_oci_denied(self, status, body, "by digest via " + edge.address, REASON)
                self.assertIn("upstream " + ONE, message)
                self.assertEqual(h.header(headers, "Pullgate-Decision"), "deny")
            # Every edge refuses its blobs from its cache too (the gate-off edge as the
            # blobs of manifests its parent denied).
            for edge in self.edges:
                for digest in image.blobs():
                    status, _, body = edge.request("GET", "/v2/tier/cached/blobs/" + digest)
                    h.assert_oci_denied(self, status, body, "blob via " + edge.address, REASON)
            # A fresh pull by digest on an edge that has not heard of the denial yet
            # (its verdict removed on the edge) asks the parent and is refused.
            status, _, _ = h.admin_request(self.edge_ns, h.read_token(self.edge_ns), "DELETE",
                                           "/v1/verdicts/" + image.digest)
            self.assertIn(status, (200, 204))
            status, _, body = self.edge_ns.request("GET", "/v2/tier/cached/manifests/" + image.digest, headers=ACCEPT)
            h.assert_oci_denied(self, status, body, "by digest after the edge forgot", REASON)
        finally:
            self.parent_verdict(image.digest, None)
        # Lifted at the parent: every edge serves again.
        for edge in self.edges:
            self.pulls(edge, "tier/cached:v1", image)


if __name__ == "__main__":
    unittest.main(verbosity=2)
