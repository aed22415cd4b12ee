"""Cache integrity: `pullgate cache verify` beside a running pullgate, and kill -9 during
eviction. A real upstream registry, images pulled through pullgate with skopeo (which
verifies every digest). One blob file gets a flipped byte, another is deleted, an
orphan blob file and a stale temp file are planted: verify reports and removes exactly
those (the orphan only once it is older than --grace), a second verify is clean, and
the removed blobs are fetched again on the next pull, byte for byte. Then pullgate is
killed with SIGKILL right after an eviction run started removing, restarted, and verify
finds nothing wrong; pulls still work."""
import json
import os
import subprocess
import time
import unittest

import harness as h
from test_lifecycle import blob_file, cache_du

LAYER_BYTES = 512 * 1024


def verify(pg, *args):
    """`pullgate cache verify` on pg's data dir: (exit code, findings, summary)."""
    done = subprocess.run([pg.bin, "cache", "verify", "--data", pg.data_dir] + list(args), capture_output=True,
                          text=True, timeout=120)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines, done.stderr
    return done.returncode, lines[:-1], lines[-1]


class CacheVerify(h.ThreeImages, unittest.TestCase):
    layer_seed = "verify"
    layer_bytes = LAYER_BYTES

    def layer(self, name):
        return self.images[name].layers[0].digest

    def layer_gets(self, name):
        return self.registry.count("/v2/it/%s/blobs/%s" % (name, self.layer(name)), "GET")

    def test_verify_removes_corrupt_missing_orphan_and_stale_temp_and_pulls_fetch_again(self):
        # No eviction run during the test: what verify finds is what the test planted.
        pg = self.start_pullgate({"eviction_interval_s": 86400})
        self.pull(pg, "a")
        self.pull(pg, "b")
        self.assertEqual(verify(pg)[0], 0)

        corrupt = blob_file(pg, self.layer("a"))
        with open(corrupt, "r+b") as f:
            f.seek(1000)
            byte = f.read(1)
            f.seek(1000)
            f.write(bytes([byte[0] ^ 0xFF]))
        missing = blob_file(pg, self.layer("b"))
        os.unlink(missing)
        orphan_bytes = b"a blob nobody recorded"
        orphan_digest = h.sha256_digest(orphan_bytes)
        orphan = blob_file(pg, orphan_digest)
        os.makedirs(os.path.dirname(orphan), exist_ok=True)
        with open(orphan, "wb") as f:
            f.write(orphan_bytes)
        stale = os.path.join(pg.data_dir, "tmp", "00000000deadbeef")
        with open(stale, "wb") as f:
            f.write(b"a download a crash left")
        old = time.time() - 7200
        os.utime(stale, (old, old))

        code, found, summary = verify(pg)
        self.assertEqual(code, 1, summary)
        by_kind = {(f["found"], f["path"]) for f in found}
        self.assertEqual(by_kind, {("mismatch", corrupt), ("missing_file", missing), ("stale_temp", stale)})
        self.assertTrue(all(f["removed"] for f in found), found)
        self.assertEqual((summary["mismatched"], summary["missing_files"], summary["stale_temps"]), (1, 1, 1))
        self.assertEqual(summary["recent_orphans"], 1)  # just written: could be a publish in progress
        self.assertFalse(os.path.exists(corrupt))
        self.assertFalse(os.path.exists(stale))
        self.assertTrue(os.path.exists(orphan))

        code, found, summary = verify(pg, "--grace", "0s")
        self.assertEqual(code, 1, summary)
        self.assertEqual([(f["found"], f["digest"], f["removed"]) for f in found],
                         [("orphan_file", orphan_digest, True)])
        self.assertFalse(os.path.exists(orphan))

        code, found, summary = verify(pg, "--grace", "0s")
        self.assertEqual((code, found, summary["errors"]), (0, [], 0), summary)
        self.assertEqual(summary["files_checked"], 2)  # the configs of a and b

        # The removed blobs come from the upstream again, verified, byte for byte.
        gets = (self.layer_gets("a"), self.layer_gets("b"))
        self.pull(pg, "a")
        self.pull(pg, "b")
        self.assertGreater(self.layer_gets("a"), gets[0])
        self.assertGreater(self.layer_gets("b"), gets[1])
        h.wait_until(lambda: os.path.exists(corrupt) and os.path.exists(missing), 30, "the blobs cached again")
        code, found, summary = verify(pg)
        self.assertEqual((code, found), (0, []), summary)
        # On a terminal, a progress line (files of those recorded, bytes hashed), cleared
        # at the end; the findings and summary on stdout are the same as in a pipe.
        code, out, terminal = h.pullgate_cli_on_terminal("cache", "verify", "--data", pg.data_dir)
        self.assertEqual(code, 0, terminal)
        self.assertEqual(json.loads(out.splitlines()[-1])["files_checked"], summary["files_checked"])
        self.assertRegex(terminal, r"^\r\x1b\[Kverify 1/%d files  [0-9.]+ [KM]?i?B" % summary["files_checked"])
        self.assertTrue(terminal.endswith("\r\x1b[K"), repr(terminal))

        self.assertEqual(subprocess.run([pg.bin, "cache", "verify", "--grace", "soon", "--data", pg.data_dir],
                                        capture_output=True, timeout=60).returncode, 2)

    def test_kill_during_eviction_then_verify_finds_nothing_wrong(self):
        # A limit that holds one image: every pull past it makes the next run evict.
        pg = self.start_pullgate({"eviction_interval_s": 1, "max_size": "800KiB"})
        self.pull(pg, "a")
        self.pull(pg, "b")
        self.pull(pg, "c")
        # Killed as soon as a run has removed something (its log line comes after the
        # files and records are gone; the next run is a second later).
        h.wait_until(lambda: '"msg":"evicted"' in pg.stderr(), 60, "an eviction run")
        pg.proc.kill()
        pg.proc.wait()
        pg.proc = None
        pg._out.close()
        pg._err.close()
        pg.start()
        # Runs after the restart collect what the kill may have left (records whose
        # file was already unlinked).
        self.pull(pg, "a")
        self.pull(pg, "b")
        # b alone fits: runs after the restart evict the others, files then records.
        h.wait_until(lambda: not any(os.path.exists(blob_file(pg, self.layer(n))) for n in ("a", "c")), 60,
                     "a and c evicted after the restart")
        h.wait_until(lambda: cache_du(pg)["blob_files"] == 2, 30, "their records removed")
        code, found, summary = verify(pg)
        self.assertEqual((code, found, summary["errors"]), (0, [], 0), summary)
        for name in ("a", "b", "c"):
            self.pull(pg, name)


if __name__ == "__main__":
    unittest.main()
