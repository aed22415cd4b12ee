"""kill -9 at the worst moments: during a blob fill (the upstream stopped mid-body at a
known byte, the partial temp file seen on disk), during cold manifest pulls and
verdict writes through the admin API (with eviction runs going on), during `pullgate
verdict set` from the CLI, and during `pullgate bundle import` (fed through a FIFO, so
it is killed with half the bundle read). After each: restart, `pullgate cache verify`
finds nothing wrong, what is pulled again arrives byte for byte, and no decision is
lost (every verdict acknowledged before the kill and every audit line on disk before
it are still there). test_cache_verify kills pullgate during an eviction run alone."""
import json
import os
import subprocess
import threading
import unittest

import fake_upstream as f
import harness as h
from test_cache_verify import verify
from test_resilience import read_body

ACCEPT = [("Accept", a) for a in h.SKOPEO_ACCEPTS]
ALLOW_UNKNOWN = {"default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"}}


def kill9(pg):
    """SIGKILL, as a power cut or the OOM killer would; the process is gone after."""
    pg.proc.kill()
    pg.proc.wait()
    pg.proc = None
    pg._out.close()
    pg._err.close()


def temp_files(pg):
    """{path: size} of the files in the data dir's tmp/."""
    tmp = os.path.join(pg.data_dir, "tmp")
    out = {}
    for name in os.listdir(tmp):
        try:
            out[os.path.join(tmp, name)] = os.stat(os.path.join(tmp, name)).st_size
        except FileNotFoundError:
            pass
    return out


def verdict_of(pg, digest):
    status, _, body = h.admin_request(pg, h.read_token(pg), "GET", "/v1/verdicts/" + digest)
    return json.loads(body)["decision"] if status == 200 else None


def set_verdict(pg, digest, decision, reason="set before the crash"):
    status, _, body = h.admin_request(pg, h.read_token(pg), "PUT", "/v1/verdicts/" + digest,
                                      json.dumps({"decision": decision, "reason": reason}).encode(), timeout=10)
    return status, body


class Crash(unittest.TestCase):
    def setUp(self):
        self.work = h.Workdir()
        self.addCleanup(self.work.close)

    def gated(self, upstreams, extra=None):
        pg = h.GatedPullgate(self.work.path, upstreams, ALLOW_UNKNOWN, extra=extra).start()
        self.addCleanup(pg.close)
        return pg

    def assert_verify_clean(self, pg):
        # The default grace: a kill between a blob's rename and its record leaves a
        # whole, verified file without a record, which verify collects once older.
        code, found, summary = verify(pg)
        self.assertEqual((code, found, summary["errors"]), (0, [], 0), summary)

    def assert_audit_kept(self, pg, before):
        """Every audit line on disk before the kill is still there, in order."""
        after = pg.audit_records()
        self.assertGreater(len(before), 0)
        self.assertEqual(after[:len(before)], before, "audit lines written before the kill are gone")

    def test_kill_during_a_blob_fill(self):
        image = h.build_image("crash/fill", "v1", [h.big_layer("crash-fill", size=8 * 1024 * 1024)], label="fill")
        fake = f.FakeRegistry([image])
        self.addCleanup(fake.close)
        layer = image.layers[0]
        path = "/v2/crash/fill/blobs/" + layer.digest
        stall = f.Stall(after=3 * 1024 * 1024, cut=True)
        fake.set(path, stall)
        self.addCleanup(stall.release.set)
        pg = self.gated([{"name": fake.address, "url": fake.url, "default": True}])
        kept = h.sha256_digest(b"a digest denied by hand before the crash")
        self.assertEqual(set_verdict(pg, kept, "deny")[0], 200)
        status, _, body = pg.request("GET", "/v2/crash/fill/manifests/v1", headers=ACCEPT)
        self.assertEqual((status, body), (200, image.manifest))
        h.wait_until(lambda: pg.audit_records(), 10, "the pull's audit line")

        got = {}
        client = threading.Thread(target=lambda: got.setdefault("r", read_body(pg.host, pg.port, path, timeout=60)))
        client.start()
        stall.reached.wait(30)
        self.assertTrue(stall.reached.is_set(), "the fill never reached the upstream's stall")
        # The fill's temp file holds part of the body: the kill lands mid-fill.
        partial = h.wait_until(lambda: [p for p, size in temp_files(pg).items() if size >= 1024 * 1024], 30,
                               "the partial temp file")
        audit = pg.audit_records()
        kill9(pg)
        stall.release.set()
        client.join(60)
        status, declared, data, complete = got["r"]
        self.assertFalse(status == 200 and complete, "the client took a cut-off body as complete")

        fake.set(path, None)
        pg.start()
        self.assertFalse(any(os.path.exists(p) for p in partial), "the crashed fill's temp file is still there")
        self.assertFalse(os.path.exists(os.path.join(pg.data_dir, "blobs", "sha256", layer.digest[7:9],
                                                     layer.digest[7:])))
        self.assert_verify_clean(pg)
        self.assertEqual(verdict_of(pg, kept), "deny")
        self.assertEqual(verdict_of(pg, image.digest), "allow")
        self.assert_audit_kept(pg, audit)
        done, out = h.skopeo_via_mirror(self.work.path, fake, pg, "crash/fill:v1")
        self.assertEqual(done.returncode, 0, done.stderr)
        h.assert_dir_output(self, out, image)
        self.assert_verify_clean(pg)

    def test_kill_during_cold_manifest_pulls_verdict_writes_and_eviction(self):
        # Many small images, pulled cold one after another while verdicts are written
        # through the admin API and eviction runs every second against a small limit.
        images = [h.build_image("crash/m%d" % i, "v1", [h.small_layer("crash-m%d" % i)], label="m%d" % i)
                  for i in range(60)]
        fake = f.FakeRegistry(images)
        self.addCleanup(fake.close)
        pg = self.gated([{"name": fake.address, "url": fake.url, "default": True}],
                        extra={"cache": {"max_size": "64KiB", "eviction_interval_s": 1}})
        answered, acknowledged, stop = [], {}, threading.Event()

        def pull():
            for image in images:
                if stop.is_set():
                    return
                try:
                    status, _, body = pg.request("GET", "/v2/%s/manifests/v1" % image.repo, headers=ACCEPT)
                    for digest, data in image.blobs().items():
                        pg.request("GET", "/v2/%s/blobs/%s" % (image.repo, digest))
                except OSError:
                    # The kill, or a timeout on a loaded machine: only the kill ends the
                    # pulls, so that a slow answer does not stop them short of the wait.
                    if stop.is_set():
                        return
                    continue
                if status == 200 and body == image.manifest:
                    answered.append(image)

        def write_verdicts():
            for i in range(10000):
                if stop.is_set():
                    return
                digest = h.sha256_digest(b"verdict %d" % i)
                decision = ("allow", "deny", "warn")[i % 3]
                try:
                    status, _ = set_verdict(pg, digest, decision)
                except OSError:
                    if stop.is_set():
                        return
                    continue
                if status == 200:
                    acknowledged[digest] = decision

        threads = [threading.Thread(target=pull), threading.Thread(target=write_verdicts)]
        for t in threads:
            t.start()
        h.wait_until(lambda: len(answered) >= 15 and len(acknowledged) >= 15 and '"msg":"evicted"' in pg.stderr(),
                     120, "pulls, verdict writes and an eviction run under way")
        audit = pg.audit_records()
        kill9(pg)
        stop.set()
        for t in threads:
            t.join(60)
        acked = dict(acknowledged)

        pg.start()
        self.assert_verify_clean(pg)
        lost = [d for d, decision in acked.items() if verdict_of(pg, d) != decision]
        self.assertEqual(lost, [], "%d of %d acknowledged verdicts lost" % (len(lost), len(acked)))
        self.assert_audit_kept(pg, audit)
        for image in images[:len(answered) + 3]:
            status, _, body = pg.request("GET", "/v2/%s/manifests/v1" % image.repo, headers=ACCEPT)
            self.assertEqual((status, body), (200, image.manifest))
            for digest, data in image.blobs().items():
                status, _, body = pg.request("GET", "/v2/%s/blobs/%s" % (image.repo, digest))
                self.assertEqual((status, body), (200, data))
        self.assert_verify_clean(pg)

    def test_kill_verdict_set_from_the_cli_and_the_server_under_it(self):
        registry = h.Registry(self.work.path).start()
        self.addCleanup(registry.close)
        image = h.seed_oci(registry, repo="crash/cli", seed="crash-cli")
        pg = self.gated([h.upstream_entry(registry)])
        acked = {}
        # CLI writes killed at whatever point they reached: each is all or nothing.
        for i in range(12):
            digest = h.sha256_digest(b"cli verdict %d" % i)
            proc = subprocess.Popen([pg.bin, "verdict", "set", digest, "deny", "--reason", "killed %d" % i,
                                     "--data", pg.data_dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if i % 2:
                proc.kill()
            if proc.wait() == 0:
                acked[digest] = "deny"
            self.assertIn(verdict_of(pg, digest), (None, "deny"))
        r = pg.cli("verdict", "set", image.digest, "deny", "--reason", "set with the CLI before the crash")
        self.assertEqual(r.returncode, 0, r.stderr)
        acked[image.digest] = "deny"
        status, _, body = pg.request("GET", "/v2/crash/cli/manifests/v1", headers=ACCEPT)
        h.assert_oci_denied(self, status, body, "the image denied with the CLI", "set with the CLI")
        h.wait_until(lambda: pg.audit_records(), 10, "the denial's audit line")
        audit = pg.audit_records()
        # Killed while the CLI writes next to it.
        writer = subprocess.Popen([pg.bin, "verdict", "set", h.sha256_digest(b"racing the kill"), "allow",
                                   "--data", pg.data_dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kill9(pg)
        writer.wait(60)
        pg.start()
        self.assert_verify_clean(pg)
        lost = [d for d, decision in acked.items() if verdict_of(pg, d) != decision]
        self.assertEqual(lost, [])
        self.assert_audit_kept(pg, audit)
        status, _, body = pg.request("GET", "/v2/crash/cli/manifests/v1", headers=ACCEPT)
        h.assert_oci_denied(self, status, body, "after the restart", "set with the CLI")
        r = pg.cli("verdict", "set", image.digest, "allow", "--reason", "lifted after the crash")
        self.assertEqual(r.returncode, 0, r.stderr)
        done, out = h.skopeo_via_mirror(self.work.path, registry, pg, "crash/cli:v1")
        self.assertEqual(done.returncode, 0, done.stderr)
        h.assert_dir_output(self, out, image)

    def test_kill_bundle_import_mid_way(self):
        registry = h.Registry(self.work.path).start()
        self.addCleanup(registry.close)
        app = h.seed_oci(registry, repo="crash/app", seed="crash-app", big=True)
        bad = h.seed_oci(registry, repo="crash/bad", seed="crash-bad")
        online = h.Pullgate(self.work.path, [h.upstream_entry(registry)], args=["--admin-listen", ""]).start()
        self.addCleanup(online.close)
        for ref in ("crash/bad:v1", "crash/app:v1"):
            done, _ = h.skopeo_via_mirror(self.work.path, registry, online, ref)
            self.assertEqual(done.returncode, 0, done.stderr)
        r = h.pullgate_cli("verdict", "set", bad.digest, "deny", "--reason", "carried by the bundle",
                           "--data", online.data_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        bundle = os.path.join(self.work.path, "site.tar")
        r = h.pullgate_cli("bundle", "export", "%s/crash/bad:v1" % registry.address,
                           "%s/crash/app:v1" % registry.address, "-o", bundle, "--data", online.data_dir, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        online.stop()
        registry.stop()

        pg = h.Pullgate(self.work.path, [h.upstream_entry(registry)], offline=True).start()
        self.addCleanup(pg.close)
        kept = h.sha256_digest(b"denied on the offline site before the import")
        self.assertEqual(set_verdict(pg, kept, "deny")[0], 200)
        fifo = os.path.join(self.work.path, "bundle.fifo")
        os.mkfifo(fifo)
        importer = subprocess.Popen([pg.bin, "bundle", "import", fifo, "--data", pg.data_dir],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        with open(bundle, "rb") as src:
            data = src.read()
        with open(fifo, "wb") as pipe:
            # Half the bundle (the big layer is most of it): the importer is mid-blob
            # when its staged temp file has grown and it waits for more.
            pipe.write(data[:len(data) // 2])
            pipe.flush()
            h.wait_until(lambda: any(size >= 1024 * 1024 for size in temp_files(pg).values()), 60,
                         "the import's staged temp file")
            importer.kill()
            importer.wait()
        importer.stderr.close()
        self.assertEqual(verdict_of(pg, bad.digest), None, "a verdict of a half-read bundle was imported")
        # Restarted: the import's leftovers go; nothing is broken.
        pg.stop()
        pg.start()
        self.assertEqual(temp_files(pg), {})
        self.assert_verify_clean(pg)
        self.assertEqual(verdict_of(pg, kept), "deny")
        r = h.pullgate_cli("bundle", "import", bundle, "--data", pg.data_dir, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(verdict_of(pg, bad.digest), "deny")
        self.assertEqual(verdict_of(pg, kept), "deny")
        done, out = h.skopeo_via_mirror(self.work.path, registry, pg, "crash/app:v1")
        self.assertEqual(done.returncode, 0, done.stderr)
        h.assert_dir_output(self, out, app)
        self.assert_verify_clean(pg)


if __name__ == "__main__":
    unittest.main(verbosity=2)
