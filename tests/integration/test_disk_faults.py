"""A small disk that fills: pullgate's data dir is a 32 MiB tmpfs mounted by the test
(the tests run as root). A blob that does not fit is refused before any byte is sent
(a 500 with an OCI error that closes, as for a full LMDB map); a blob without
Content-Length that meets a full disk half way (the test fills the disk while the
upstream is stopped mid-body at a known byte) fails the same way, or ends the client's
response short once it is under way, so no client takes it as complete; a disk filled to
the last byte while a reserved fill runs does not make a half-recorded blob. Nothing
in the cache is corrupt (`pullgate cache verify` clean), and once room is freed,
pulls work again without a restart."""
import os
import subprocess
import threading
import unittest

import fake_upstream as f
import harness as h
from test_cache_verify import verify
from test_resilience import read_body

MiB = 1024 * 1024
DISK_MB = 32
FREE_MB = 4  # cache.min_free_mb: what blob fills leave for LMDB and the audit log


def disk_free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class SmallDisk(unittest.TestCase):
    def setUp(self):
        self.work = h.Workdir()
        self.addCleanup(self.work.close)
        self.images = {name: h.build_image("disk/" + name, "v1", [h.big_layer("disk-" + name, size=size)], label=name)
                       for name, size in (("fits", 6 * MiB), ("large", 20 * MiB), ("stream", 10 * MiB))}
        self.fake = f.FakeRegistry(self.images.values())
        self.addCleanup(self.fake.close)
        self.pg = h.Pullgate(self.work.path, [{"name": self.fake.address, "url": self.fake.url, "default": True}],
                             extra={"cache": {"min_free_mb": FREE_MB, "lmdb_map_size_mb": 16}})
        self.addCleanup(self.pg.close)
        os.makedirs(self.pg.data_dir)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % DISK_MB, "tmpfs", self.pg.data_dir],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, "cannot mount a tmpfs (the tests run as root): " + r.stderr)
        self.addCleanup(lambda: subprocess.run(["umount", self.pg.data_dir], capture_output=True))
        self.addCleanup(self.pg.stop)  # before the unmount (cleanups run last first)
        self.pg.start()
        self.filler = os.path.join(self.pg.data_dir, "filler")

    def fill_disk(self, leave):
        """Writes a file that leaves `leave` bytes of the tmpfs free (or fills it)."""
        size = max(0, disk_free(self.pg.data_dir) - leave)
        with open(self.filler, "ab") as out:
            try:
                while size > 0:
                    n = out.write(b"\0" * min(size, MiB))
                    size -= n
                out.flush()
            except OSError:  # ENOSPC: full is what was asked for
                pass

    def free_disk(self):
        os.unlink(self.filler)

    def layer(self, name):
        return self.images[name].layers[0]

    def blob_path(self, name):
        return "/v2/disk/%s/blobs/%s" % (name, self.layer(name).digest)

    def cached(self, name):
        digest = self.layer(name).digest
        return os.path.exists(os.path.join(self.pg.data_dir, "blobs", "sha256", digest[7:9], digest[7:]))

    def stalled_pull(self, path, stall):
        """A client GET of path, its upstream body stopped by stall: returns once the
        fill is there. (thread, dict whose "r" is read_body's answer when it ends)."""
        self.addCleanup(stall.release.set)
        self.fake.set(path, stall)
        got = {}
        client = threading.Thread(target=lambda: got.setdefault("r", read_body(self.pg.host, self.pg.port, path,
                                                                                timeout=60)))
        client.start()
        self.assertTrue(stall.reached.wait(30), "the fill never reached the upstream's stall")
        return client, got

    def assert_verify_clean(self):
        code, found, summary = verify(self.pg, "--grace", "0s")
        self.assertEqual((code, found, summary["errors"]), (0, [], 0), summary)

    def pull(self, name):
        """A whole image through the mirror, every byte checked."""
        image = self.images[name]
        status, _, body = self.pg.request("GET", "/v2/disk/%s/manifests/v1" % name,
                                          headers=[("Accept", a) for a in h.SKOPEO_ACCEPTS])
        self.assertEqual((status, body), (200, image.manifest))
        for digest, data in image.blobs().items():
            status, _, body = self.pg.request("GET", "/v2/disk/%s/blobs/%s" % (name, digest))
            self.assertEqual(status, 200, body[:300])
            self.assertEqual(body, data, digest)

    def test_a_blob_that_does_not_fit_is_refused_before_any_byte(self):
        self.pull("fits")
        self.fill_disk(leave=(FREE_MB + 10) * MiB)
        status, headers, body = self.pg.request("GET", self.blob_path("large"))
        # The mirror's own trouble, not the upstream's: 500, and the connection closes.
        self.assertEqual(status, 500, body[:300])
        self.assertEqual(h.header(headers, "Connection"), "close")
        code, message = h.oci_error(body)
        self.assertEqual(code, "UNKNOWN")
        self.assertIn("no room", message)
        self.assertIn(self.layer("large").digest, message)
        self.assertFalse(self.cached("large"))
        self.assertTrue(self.pg.healthy())
        self.assert_verify_clean()
        self.pull("fits")  # what is cached is still served
        # Room freed: it fits now, without a restart.
        self.free_disk()
        self.pull("large")
        h.wait_until(lambda: self.cached("large"), 30, "the blob cached after the room came back")
        self.assert_verify_clean()

    def test_a_disk_that_fills_during_a_fill_and_recovers(self):
        self.pull("fits")
        path = self.blob_path("stream")
        stall = f.Stall(after=3 * MiB, length=False)
        client, got = self.stalled_pull(path, stall)
        # The rest of the body will not fit: the disk keeps 2 MiB beyond the reserve.
        self.fill_disk(leave=(FREE_MB + 2) * MiB)
        stall.release.set()
        client.join(60)
        self.assertFalse(client.is_alive())
        status, declared, body, complete = got["r"]
        if status == 200:
            self.assertFalse(complete, "a fill cut short by a full disk reached the client as complete")
            self.assertLess(len(body), self.layer("stream").size)
        else:
            self.assertEqual(status, 500, body[:300])
            self.assertIn("no room", h.oci_error(body)[1])
        self.assertFalse(self.cached("stream"))
        self.assertTrue(self.pg.healthy())
        self.assert_verify_clean()
        # Cached content is still served from the full disk.
        self.pull("fits")
        # Room freed: the same blob is fetched again and served whole, without a restart.
        self.free_disk()
        self.fake.set(path, None)
        self.pull("stream")
        h.wait_until(lambda: self.cached("stream"), 30, "the blob cached after the room came back")
        self.assert_verify_clean()

    def test_a_disk_filled_to_the_last_byte_under_a_reserved_fill(self):
        path = self.blob_path("fits")
        stall = f.Stall(after=2 * MiB)
        client, got = self.stalled_pull(path, stall)
        # Not even the reserve is left: whatever pullgate writes next meets ENOSPC.
        self.fill_disk(leave=0)
        stall.release.set()
        client.join(60)
        status, declared, body, complete = got["r"]
        # The room was reserved before the first byte: the blob reaches the client whole.
        # Its record then meets the full disk (unless LMDB reuses pages it has), and the
        # published file goes with it: verify finds no orphan.
        self.assertEqual((status, complete), (200, True))
        self.assertEqual(body, self.layer("fits").blob)
        self.assertTrue(self.pg.healthy())
        self.assert_verify_clean()
        self.free_disk()
        self.fake.set(path, None)
        self.pull("fits")
        self.assert_verify_clean()


if __name__ == "__main__":
    unittest.main(verbosity=2)
