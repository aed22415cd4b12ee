"""`pullgate prefetch` end to end: a real upstream (CNCF Distribution) with a
multi-platform index and plain images, a pullgate serving it, and the prefetch
command pulling through that pullgate's listener and gate. What it fetched is served
from the cache once the upstream is stopped; --platform fetches one child's blobs
only; a denied image is reported with the gate's reason and none of its blobs is
cached; --file reads a list; a bad name is a usage error."""
import os
import unittest

import harness as h

DENY_REASON = "prefetch test: not for this site"


def prefetch(*args):
    return h.pullgate_cli("prefetch", *args, timeout=300)


def cached(pg, digest):
    hexd = digest.split(":", 1)[1]
    return os.path.exists(os.path.join(pg.data_dir, "blobs", "sha256", hexd[:2], hexd))


def wait_cached(pg, digests):
    """The mirror streams a blob to its client while it writes it, and renames the file
    into place once it is synced: the last byte served comes a moment before that."""
    digests = list(digests)
    h.wait_until(lambda: all(cached(pg, d) for d in digests), 30, "blobs in the cache: %s" % digests)


def upstream_blob_gets(registry, repo, image):
    """GETs the upstream served of image's blobs in repo (the mirror asked for them)."""
    return sum(registry.count("/v2/%s/blobs/%s" % (repo, d), "GET") for d in image.blobs())


def start_mirror(test_class):
    """For setUpClass: a pullgate of the class's upstream, closed with the class."""
    pg = h.Pullgate(test_class.work.path, [h.upstream_entry(test_class.registry)], args=["--admin-listen", ""])
    test_class.addClassCleanup(pg.close)
    return pg.start()


def size_of(image):
    return sum(len(data) for data in image.blobs().values())


class FromCacheOnceTheUpstreamIsGone(unittest.TestCase):
    """Prefetch an index and a plain image, stop the upstream, pull both with skopeo."""

    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        cls.up = cls.registry.address
        cls.index = h.seed_index(cls.registry, repo="it/multi", seed="prefetch-idx")
        cls.plain = h.seed_oci(cls.registry, repo="it/plain", seed="prefetch-plain")
        cls.pg = start_mirror(cls)
        cls.result = prefetch("%s/it/multi:v1" % cls.up, "%s/it/plain:v1" % cls.up,
                              "--mirror", "http://" + cls.pg.address)
        cls.registry.stop()

    def setUp(self):
        self.assertTrue(self.pg.alive(), "pullgate died before this test: " + self.pg.stderr())

    def test_prefetch_reports_each_image_ok_with_its_blobs(self):
        self.assertEqual(self.result.returncode, 0, self.result.stdout + self.result.stderr)
        children = list(self.index.children.values())
        index_blobs = sum(len(c.blobs()) for c in children)
        index_bytes = sum(size_of(c) for c in children)
        self.assertEqual(self.result.stdout.splitlines(), [
            "ok %s/it/multi:v1 %s %d blobs, %d bytes" % (self.up, self.index.digest, index_blobs, index_bytes),
            "ok %s/it/plain:v1 %s %d blobs, %d bytes" % (self.up, self.plain.digest, len(self.plain.blobs()),
                                                        size_of(self.plain)),
        ])
        self.assertEqual(self.result.stderr, "", "no progress line without a terminal")

    def test_every_blob_is_in_the_cache(self):
        for image in list(self.index.children.values()) + [self.plain]:
            wait_cached(self.pg, image.blobs())

    def test_skopeo_pulls_the_plain_image_by_tag_from_the_cache(self):
        r, out = h.skopeo_via_mirror(self.pg.dir, self.registry, self.pg, "it/plain:v1")
        self.assertEqual(r.returncode, 0, r.stderr)
        h.assert_dir_output(self, out, self.plain)

    def test_skopeo_pulls_every_platform_of_the_index_by_tag_from_the_cache(self):
        r, out = h.skopeo_via_mirror(self.pg.dir, self.registry, self.pg, "it/multi:v1", all_images=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        files = h.read_dir_output(out)
        self.assertEqual(files["manifest.json"], self.index.manifest)
        for child in self.index.children.values():
            hexd = child.digest.split(":", 1)[1]
            self.assertEqual(files.get(hexd + ".manifest.json"), child.manifest)
            for digest, data in child.blobs().items():
                self.assertEqual(files.get(digest.split(":", 1)[1]), data, digest)


class Prefetch(unittest.TestCase):
    """The upstream stays up: platform choice, denials, lists and usage errors."""

    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        cls.up = cls.registry.address
        cls.arm = h.seed_index(cls.registry, repo="it/arm", seed="prefetch-arm")
        cls.good = h.seed_oci(cls.registry, repo="it/good", seed="prefetch-good")
        cls.bad = h.seed_oci(cls.registry, repo="it/bad", seed="prefetch-bad")
        cls.listed = [h.seed_oci(cls.registry, repo="it/listed%d" % i, seed="prefetch-listed%d" % i)
                      for i in range(2)]
        cls.pg = start_mirror(cls)
        # A manual deny, set while the mirror runs (the LMDB environment is shared).
        r = h.pullgate_cli("verdict", "set", cls.bad.digest, "deny", "--reason", DENY_REASON,
                           "--data", cls.pg.data_dir)
        if r.returncode != 0:
            raise RuntimeError("verdict set failed: " + r.stderr)

    def setUp(self):
        self.assertTrue(self.pg.alive(), "pullgate died before this test: " + self.pg.stderr())

    def test_platform_fetches_only_that_childs_blobs(self):
        r = prefetch("%s/it/arm:v1" % self.up, "--platform", "linux/arm64", "--mirror", "http://" + self.pg.address)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        arm64 = self.arm.children[("linux", "arm64")]
        amd64 = self.arm.children[("linux", "amd64")]
        self.assertEqual(r.stdout, "ok %s/it/arm:v1 %s %d blobs, %d bytes\n"
                         % (self.up, self.arm.digest, len(arm64.blobs()), size_of(arm64)))
        wait_cached(self.pg, arm64.blobs())
        self.assertEqual(upstream_blob_gets(self.registry, "it/arm", amd64), 0, "the mirror fetched amd64 blobs")
        for digest in amd64.blobs():
            self.assertFalse(cached(self.pg, digest), "amd64 blob %s is cached" % digest)

    def test_a_platform_the_index_lacks_fails_naming_what_it_has(self):
        r = prefetch("%s/it/arm:v1" % self.up, "--platform", "linux/s390x", "--mirror", "http://" + self.pg.address)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "failed %s/it/arm:v1: the index has no manifest for linux/s390x "
                         "(it has linux/amd64, linux/arm64)\n" % self.up)

    def test_a_denied_image_is_reported_with_its_reason_and_nothing_of_it_is_cached(self):
        # --config: the mirror's address and upstream names come from its config.
        r = prefetch("%s/it/good:v1" % self.up, "%s/it/bad:v1" % self.up, "--config", self.pg.config_path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 2, r.stdout)
        self.assertTrue(lines[0].startswith("ok %s/it/good:v1 %s " % (self.up, self.good.digest)), lines[0])
        prefix = "denied %s/it/bad:v1 %s: " % (self.up, self.bad.digest)
        self.assertTrue(lines[1].startswith(prefix), lines[1])
        self.assertIn(DENY_REASON, lines[1])
        wait_cached(self.pg, self.good.blobs())
        self.assertEqual(upstream_blob_gets(self.registry, "it/bad", self.bad), 0,
                         "the mirror fetched blobs of the denied image")
        for digest in self.bad.blobs():
            self.assertFalse(cached(self.pg, digest), "blob %s of the denied image is cached" % digest)

    def test_an_unknown_tag_fails_with_the_mirrors_answer(self):
        r = prefetch("%s/it/good:nosuchtag" % self.up, "--mirror", "http://" + self.pg.address)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertTrue(r.stdout.startswith("failed %s/it/good:nosuchtag: the mirror answered 404 for manifest "
                                            "nosuchtag (MANIFEST_UNKNOWN" % self.up), r.stdout)

    def test_file_lists_images_with_comments_and_blank_lines(self):
        path = os.path.join(self.work.path, "images.txt")
        with open(path, "w") as f:
            f.write("# what the site needs\n\n  %s/it/listed0:v1  \n\t\n# the other one\n%s/it/listed1@%s\n"
                    % (self.up, self.up, self.listed[1].digest))
        r = prefetch("--file", path, "--mirror", "http://" + self.pg.address)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "ok %s/it/listed0:v1 %s 4 blobs, %d bytes\nok %s/it/listed1@%s %s 4 blobs, %d bytes\n"
                         % (self.up, self.listed[0].digest, size_of(self.listed[0]),
                            self.up, self.listed[1].digest, self.listed[1].digest, size_of(self.listed[1])))
        for image in self.listed:
            wait_cached(self.pg, image.blobs())

    def test_on_a_terminal_a_progress_line_is_shown_and_cleared(self):
        image = "%s/it/good:v1" % self.up
        code, out, err = h.pullgate_cli_on_terminal("prefetch", image, "--mirror", "http://" + self.pg.address,
                                                    timeout=300)
        self.assertEqual(code, 0, err)
        self.assertTrue(out.startswith("ok %s %s " % (image, self.good.digest)), out)
        total = size_of(self.good)
        self.assertIn("\r\x1b[K%s  0 B / %.1f KiB" % (image, total / 1024), err)
        self.assertTrue(err.endswith("\r\x1b[K"), "the progress line is cleared before the result: %r" % err)

    def test_a_bad_name_is_a_one_line_usage_error(self):
        for args in (["not a name"], ["%s/it/good" % self.up], ["sha256:" + "a" * 64],
                     ["%s/it/good:v1" % self.up, "--platform", "linux"], []):
            r = prefetch(*args, "--mirror", "http://" + self.pg.address)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertEqual(r.stdout, "")
            self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
            self.assertIn("pullgate prefetch --help", r.stderr)

    def test_a_mirror_that_does_not_answer_fails_the_image(self):
        r = prefetch("%s/it/good:v1" % self.up, "--mirror", "http://127.0.0.1:%d" % h.free_port())
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertTrue(r.stdout.startswith("failed %s/it/good:v1: the mirror: " % self.up), r.stdout)


if __name__ == "__main__":
    unittest.main()
