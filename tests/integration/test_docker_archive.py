"""docker-archive import end to end: skopeo writes a docker-archive of an image on a
real upstream (CNCF Distribution), the upstream stops, `pullgate bundle import
--upstream` files it into an --offline pullgate's fresh data directory, and skopeo
pulls it through the mirror: the config and the (uncompressed) layers are the
original's bytes, the manifest the OCI one pullgate wrote. A flipped layer byte, a
path with "..", a layer manifest.json names but the archive lacks, and a missing
--upstream are each refused in one line with nothing published."""
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import unittest

import harness as h

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def cli(*args):
    return h.pullgate_cli(*args, timeout=300)


def sha256_of_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def rewritten(archive, path, change):
    """A copy of the tar `archive` at `path` with manifest.json's images passed through change()."""
    with tarfile.open(archive) as src, tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name == "manifest.json":
                data = json.dumps(change(json.loads(data))).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


class DockerArchive(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        cls.up = cls.registry.address
        cls.app = h.seed_oci(cls.registry, repo="it/app", seed="docker-archive-app")
        cls.archive = os.path.join(cls.work.path, "app-docker.tar")
        r = subprocess.run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
                            "docker://%s/it/app:v1" % cls.up, "docker-archive:%s:it/app:v1" % cls.archive],
                           capture_output=True, text=True, timeout=300, env=dict(os.environ, HOME=cls.work.path))
        if r.returncode != 0:
            raise RuntimeError("skopeo docker-archive copy failed: " + r.stderr)
        cls.registry.stop()  # from here on only the mirror can answer

        cls.pg = h.Pullgate(cls.work.path, [h.upstream_entry(cls.registry)], offline=True,
                            args=["--admin-listen", ""]).start()
        cls.addClassCleanup(cls.pg.close)
        r = cli("bundle", "import", cls.archive, "--upstream", cls.up, "--data", cls.pg.data_dir)
        if r.returncode != 0:
            raise RuntimeError("docker-archive import failed: " + r.stderr)
        cls.summary = json.loads(r.stdout)

    def setUp(self):
        self.assertTrue(self.pg.alive(), "pullgate died before this test: " + self.pg.stderr())

    def pull(self, ref):
        r, out = h.skopeo_via_mirror(self.pg.dir, self.registry, self.pg, ref)
        self.assertEqual(r.returncode, 0, "%s\npullgate stderr: %s" % (r.stderr, self.pg.stderr()))
        return out

    def assert_converted(self, out):
        with open(os.path.join(out, "manifest.json"), "rb") as f:
            manifest_bytes = f.read()
        manifest = json.loads(manifest_bytes)
        self.assertEqual(manifest["mediaType"], MT_OCI_MANIFEST)
        self.assertEqual(manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json")
        self.assertEqual(manifest["config"]["digest"], self.app.config_digest)
        with open(os.path.join(out, self.app.config_digest.split(":")[1]), "rb") as f:
            self.assertEqual(f.read(), self.app.config)
        self.assertEqual(len(manifest["layers"]), len(self.app.layers))
        for layer, original in zip(manifest["layers"], self.app.layers):
            # Uncompressed, as the archive holds it: the digest is the diff_id.
            self.assertEqual(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar")
            self.assertEqual(layer["digest"], original.diff_id)
            with open(os.path.join(out, layer["digest"].split(":")[1]), "rb") as f:
                self.assertEqual(f.read(), gzip.decompress(original.blob))
        return "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()

    def test_the_import_counts_one_image_and_its_blobs(self):
        self.assertEqual(self.summary["images"], 1)
        self.assertEqual(self.summary["blobs"], 1 + len(self.app.layers))
        self.assertGreater(self.summary["records_written"], 0)

    def test_the_offline_mirror_serves_the_converted_image_by_tag_and_digest(self):
        digest = self.assert_converted(self.pull("it/app:v1"))
        self.assertNotEqual(digest, self.app.digest)  # not the registry's manifest: docs/bundles.md
        self.assertEqual(self.assert_converted(self.pull("it/app@" + digest)), digest)

    def test_no_verdict_comes_with_it(self):
        r = cli("verdict", "ls", "--data", self.pg.data_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("it/app", r.stdout)

    def test_bundle_verify_reads_a_docker_archive_and_publishes_nothing(self):
        fresh = os.path.join(self.work.path, "verify-data")
        r = cli("bundle", "verify", self.archive, "--upstream", self.up, "--data", fresh)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["images"], 1)
        self.assertEqual(h.files_under(os.path.join(fresh, "blobs")), set())

    def refused(self, archive, expected, upstream=True):
        # A data directory with one image already: nothing of the refused archive may join it.
        blobs = os.path.join(self.pg.data_dir, "blobs")
        lmdb = os.path.join(self.pg.data_dir, "lmdb", "data.mdb")
        blobs_before, lmdb_before = h.files_under(blobs), sha256_of_file(lmdb)
        ls_before = cli("cache", "ls", "--data", self.pg.data_dir).stdout
        args = ["bundle", "import", archive, "--data", self.pg.data_dir] + (["--upstream", self.up] if upstream else [])
        r = cli(*args)
        self.assertEqual(r.returncode, 1)
        self.assertIn(expected, r.stderr)
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)  # one line
        self.assertIn("nothing was imported", r.stderr)
        self.assertEqual(h.files_under(blobs), blobs_before)
        self.assertEqual(h.files_under(os.path.join(self.pg.data_dir, "tmp")), set())
        self.assertEqual(sha256_of_file(lmdb), lmdb_before)
        self.assertEqual(cli("cache", "ls", "--data", self.pg.data_dir).stdout, ls_before)

    def test_a_flipped_layer_byte_is_refused_as_a_diff_id_mismatch(self):
        with open(self.archive, "rb") as f:
            data = bytearray(f.read())
        layer = gzip.decompress(self.app.layers[0].blob)
        at = data.find(layer[:2048])
        self.assertGreater(at, 0)
        data[at + 600] ^= 0x01  # inside the layer's bytes, past its first tar header
        damaged = os.path.join(self.work.path, "flipped.tar")
        with open(damaged, "wb") as f:
            f.write(bytes(data))
        self.refused(damaged, "not its diff_id " + self.app.layers[0].diff_id)

    def test_a_path_leaving_the_archive_is_refused(self):
        def climb(images):
            images[0]["Layers"][0] = "../" + images[0]["Layers"][0]
            return images
        damaged = rewritten(self.archive, os.path.join(self.work.path, "climb.tar"), climb)
        self.refused(damaged, "manifest.json: image 1's layer \"../")

    def test_a_layer_the_archive_lacks_is_refused(self):
        def lacking(images):
            images[0]["Layers"][-1] = "0" * 64 + ".tar"
            return images
        damaged = rewritten(self.archive, os.path.join(self.work.path, "lacking.tar"), lacking)
        self.refused(damaged, "manifest.json names layer %s.tar, which the archive does not hold" % ("0" * 64))

    def test_a_manifest_json_without_config_is_refused(self):
        damaged = rewritten(self.archive, os.path.join(self.work.path, "shapeless.tar"),
                            lambda images: [{"RepoTags": images[0]["RepoTags"]}])
        self.refused(damaged, "manifest.json: image 1 lacks Config or a Layers list")

    def test_without_upstream_it_is_refused(self):
        self.refused(self.archive, "give --upstream NAME", upstream=False)


if __name__ == "__main__":
    unittest.main()
