"""Keyless signatures and SLSA provenance at the gate, with real components: a real upstream (CNCF
Distribution 2.8) holding images signed keyless by tests/tools/sigstore_forge (a test
Fulcio CA and intermediate, Rekor and CT log keys made with OpenSSL), in cosign's legacy
`.sig` form (certificate, chain and Rekor bundle annotations) and as cosign 3's Sigstore
bundle referrer (DSSE), and pullgate whose policy trusts identities (issuer, subject
expression, a pinned Fulcio extension) under a trusted root read from a file. Covers:
good signatures pulled with skopeo, containerd and raw HTTP, the audit line naming the
signer and its log entry; another identity and another source repository refused
naming what was found; each check broken on its own (untrusted chain, expired at
signing, SET over another body, bad inclusion proof, bad checkpoint, no SCT, body
mismatch, bad signature, another image's digest) refused for its reason, layers
included; a scope trusting keys and identities together; and the trusted root file
replaced and reloaded: what it no longer vouches for is refused, and allowed again
when it is back. And SLSA provenance required in a scope: v1 keyless (bundle referrer),
v0.2 keyed (bundle referrer and cosign's .att tag) allowed when the builder and source
meet the scope's conditions (and with containerd); a fork's source, another builder, an
untrusted key and an image with only a signature refused, naming what was found."""
import json
import os
import shutil
import subprocess
import unittest

import cosign as c
import harness as h

ISSUER = "https://token.actions.githubusercontent.com"
RELEASE = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.4.0"
CI = "https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main"
REPO_URI = "https://github.com/acme/app"
RECHECK_S = 2
SLSA_V1 = "https://slsa.dev/provenance/v1"
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
BUILDER = "https://github.com/actions/runner/github-hosted"


def slsa_v1(repository, ref="refs/tags/v1.4.0", builder=BUILDER):
    """A SLSA v1 predicate as GitHub's generator writes it."""
    return {"buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1",
                                "externalParameters": {"workflow": {"repository": repository, "ref": ref,
                                                                    "path": ".github/workflows/release.yml"}}},
            "runDetails": {"builder": {"id": builder}}}


def slsa_v02(source, builder=BUILDER):
    """A SLSA v0.2 predicate (slsa-github-generator's generic form)."""
    return {"builder": {"id": builder}, "buildType": "https://github.com/slsa-framework/slsa-github-generator/generic@v1",
            "invocation": {"configSource": {"uri": source, "entryPoint": ".github/workflows/release.yml"}}}

# --fault, the format it is made in, and the words of the denial.
FAULTS = [
    ("untrusted-chain", "cosign-legacy", "does not chain"),
    ("expired-at-signing", "cosign-legacy", "expired at the signing time"),
    ("set-other-body", "cosign-legacy", "signed entry timestamp"),
    ("no-sct", "cosign-legacy", "no embedded SCT"),
    ("body-mismatch", "cosign-legacy", "log entry's artifact digest"),
    ("bad-signature", "cosign-legacy", "signature over the artifact does not verify"),
    ("bad-inclusion-proof", "bundle-dsse", "inclusion proof"),
    ("bad-checkpoint", "bundle-dsse", "checkpoint"),
    ("untrusted-chain", "bundle-dsse", "does not chain"),
    ("body-mismatch", "bundle-dsse", "payload hash"),
]


class Keyless(h.PullgateAlive, h.GatedPulls, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.forge_bin = os.environ.get("SIGSTORE_FORGE", "")
        if not cls.forge_bin or not os.access(cls.forge_bin, os.X_OK):
            raise RuntimeError("SIGSTORE_FORGE must name the built tests/tools/sigstore_forge (ctest sets it)")
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        reg = cls.registry
        cls.forge_dir = os.path.join(cls.work.path, "forge")
        cls.other_dir = os.path.join(cls.work.path, "forge-other")  # another CA and logs
        cls.forge("init", cls.forge_dir)
        cls.forge("init", cls.other_dir)
        cls.release = c.KeyPair(cls.work.path, "release", "ecdsa")

        def img(repo):
            return h.seed_oci(reg, repo=repo, seed="keyless-" + repo.replace("/", "-"))

        good_ext = ("--ext", "source_repository_uri=" + REPO_URI, "--ext", "source_repository_ref=refs/tags/v1.4.0")
        cls.legacy = img("keyless/legacy")
        cls.push_legacy(cls.legacy, *good_ext)
        cls.bundle = img("keyless/bundle")
        cls.push_bundle(cls.bundle, *good_ext)
        cls.other_identity = img("keyless/other-identity")
        cls.push_legacy(cls.other_identity, *good_ext, identity=CI)
        cls.forked = img("keyless/forked")
        cls.push_bundle(cls.forked, "--ext", "source_repository_uri=https://github.com/mallory/app")
        cls.faulty = []
        for i, (fault, fmt, words) in enumerate(FAULTS):
            image = img("keyless/fault-%d-%s" % (i, fault))
            if fmt == "cosign-legacy":
                cls.push_legacy(image, *good_ext, "--fault", fault)
            else:
                cls.push_bundle(image, *good_ext, "--fault", fault)
            cls.faulty.append((fault, fmt, words, image))
        cls.legacy_names_other = img("keyless/legacy-names-other")
        cls.push_legacy(cls.legacy_names_other, *good_ext, names=cls.legacy.digest)
        cls.bundle_names_other = img("keyless/bundle-names-other")
        cls.push_bundle(cls.bundle_names_other, *good_ext, names=cls.bundle.digest)
        cls.unsigned = img("keyless/unsigned")
        cls.reload_image = img("keyless/reloaded")
        cls.push_legacy(cls.reload_image, *good_ext)
        # Trusted with keys and identities together: either kind passes.
        cls.mixed_keyed = img("mixed/keyed")
        c.push_legacy_signature(reg, cls.mixed_keyed, cls.release)
        cls.mixed_keyless = img("mixed/keyless")
        cls.push_legacy(cls.mixed_keyless, *good_ext)
        # SLSA provenance: keyless in a bundle referrer, keyed in a bundle and in .att.
        cls.built = img("built/keyless")
        cls.push_provenance(cls.built, slsa_v1(REPO_URI))
        cls.built_fork = img("built/fork")
        cls.push_provenance(cls.built_fork, slsa_v1("https://github.com/mallory/app"))
        cls.built_elsewhere = img("built/other-builder")
        cls.push_provenance(cls.built_elsewhere, slsa_v1(REPO_URI, builder="https://ci.example/self-hosted"))
        cls.built_signature_only = img("built/signature-only")  # a signature is no provenance
        cls.push_bundle(cls.built_signature_only, *good_ext)
        cls.built_keyed = img("built/keyed")
        c.push_referrers(reg, cls.built_keyed, [c.bundle_referrer(
            cls.built_keyed, cls.release, predicate_type=SLSA_V02,
            predicate=slsa_v02("git+https://github.com/acme/app@refs/tags/v1.4.0"))])
        cls.built_att = img("built/att")
        c.push_legacy_attestation(reg, cls.built_att, cls.release, predicate_type=SLSA_V02,
                                  predicate=slsa_v02("git+https://github.com/acme/tools.git@refs/tags/v2"))
        cls.built_att_stranger = img("built/att-stranger")
        c.push_legacy_attestation(reg, cls.built_att_stranger, c.KeyPair(cls.work.path, "stranger", "ecdsa"),
                                  predicate_type=SLSA_V02,
                                  predicate=slsa_v02("git+https://github.com/acme/app@refs/tags/v1"))

        cls.pg = h.GatedPullgate(cls.work.path, [h.upstream_entry(reg)], {})
        cls.addClassCleanup(cls.pg.close)
        cls.root_copy = os.path.join(os.path.dirname(cls.pg.policy_path), "forge_root.json")
        shutil.copy(os.path.join(cls.forge_dir, "trusted_root.json"), cls.root_copy)
        release_identity = {"issuer": ISSUER,
                            "subject_regexp": r"https://github\.com/acme/app/\.github/workflows/release\.yml@refs/tags/v.*",
                            "source_repository_uri": REPO_URI}
        cls.policy = {
            "keys": {"release": {"pem": cls.release.public_pem}},
            "trusted_roots": {"forge": {"file": "forge_root.json"}},
            "default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"},
            "scopes": [
                {"name": "keyless", "repository": "keyless/**",
                 "signatures": {"identities": [release_identity], "recheck_s": RECHECK_S}},
                {"name": "mixed", "repository": "mixed/**",
                 "signatures": {"keys": ["release"], "identities": [release_identity]}},
                {"name": "built", "repository": "built/**",
                 "provenance": {"keys": ["release"], "identities": [release_identity], "recheck_s": RECHECK_S,
                                "builder_id_regexp": r"https://github\.com/actions/runner/.*",
                                "source_repository": "github.com/acme/*"}},
            ],
        }
        cls.pg.write_policy(cls.policy)
        cls.pg.start()
        cls.token = h.read_token(cls.pg)

    # ---------------------------------------------------------------- helpers

    @classmethod
    def forge(cls, *args):
        r = subprocess.run([cls.forge_bin] + list(args), capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("sigstore_forge %s: %s" % (" ".join(args[:2]), r.stderr.strip()))
        return r

    @classmethod
    def sign(cls, fmt, payload_or_digest, *extra, identity=RELEASE):
        out = os.path.join(cls.work.path, "signed-%d.json" % len(os.listdir(cls.work.path)))
        args = ["sign", cls.forge_dir, "--identity", identity, "--issuer", ISSUER, "--format", fmt, "--out", out]
        if fmt == "bundle-dsse":
            args += ["--subject-digest", payload_or_digest]
        else:
            payload_path = out + ".payload"
            with open(payload_path, "wb") as f:
                f.write(payload_or_digest)
            args += ["--payload", payload_path]
        cls.forge(*(args + list(extra)))
        with open(out, "rb") as f:
            return f.read()

    @classmethod
    def push_legacy(cls, image, *extra, identity=RELEASE, names=None):
        payload = c.simple_signing_payload(image.repo, names or image.digest)
        annotations = json.loads(cls.sign("cosign-legacy", payload, *extra, identity=identity))
        c.push_legacy_keyless(cls.registry, image, payload, annotations)

    @classmethod
    def push_bundle(cls, image, *extra, identity=RELEASE, names=None):
        bundle = cls.sign("bundle-dsse", names or image.digest, *extra, identity=identity)
        c.push_referrers(cls.registry, image, [c.keyless_bundle_referrer(image, bundle)])

    @classmethod
    def push_provenance(cls, image, predicate):
        """cosign 3's keyless attestation: a bundle referrer with a SLSA v1 statement."""
        predicate_path = os.path.join(cls.work.path, "predicate-%s.json" % image.repo.replace("/", "-"))
        with open(predicate_path, "w") as f:
            json.dump({"predicateType": SLSA_V1, "predicate": predicate}, f)
        bundle = cls.sign("bundle-dsse", image.digest, "--predicate", predicate_path,
                          "--ext", "source_repository_uri=" + REPO_URI)
        c.push_referrers(cls.registry, image, [c.keyless_bundle_referrer(image, bundle)])

    # ---------------------------------------------------------------- good signatures

    def test_01_legacy_keyless_signature_allows_skopeo_and_raw_http(self):
        r, out_dir = h.skopeo_via_mirror(self.work.path, self.registry, self.pg, "keyless/legacy:v1", timeout=120)
        self.assertEqual(r.returncode, 0, "skopeo of a keyless-signed image failed: " + r.stderr)
        h.assert_dir_output(self, out_dir, self.legacy)
        self.assert_pulled(self.legacy, "legacy keyless:")
        rec = h.wait_until(lambda: self.audit_for(self.legacy.digest, kind="manifest", decision="allow"), 10,
                           "the audit line of the legacy keyless pull")[-1]
        self.assertEqual(rec["source"], "signature", rec)
        reasons = " ".join(rec.get("reasons", []))
        self.assertIn('signed keyless by "%s" (issuer "%s")' % (RELEASE, ISSUER), reasons)
        self.assertIn("in https://rekor.forge.test (trusted root forge)", reasons)
        self.assertIn("logged as entry", reasons)

    def test_02_keyless_bundle_referrer_allows_containerd(self):
        ctrd = h.containerd_through_mirror(self, self.registry.address, self.pg.address)
        h.assert_ctr_pulls(self, ctrd, "keyless", self.registry.address, self.bundle, "a keyless bundle-signed image")
        self.assert_pulled(self.bundle, "bundle keyless:")
        h.assert_ctr_refused(self, ctrd, "keyless", self.registry.address, self.forked, "an image signed from a fork",
                             "source_repository_uri")

    # ---------------------------------------------------------------- identities

    def test_03_another_identity_is_refused_naming_who_signed(self):
        message = self.assert_denied(self.other_identity, "an identity the scope does not trust",
                                     'signed keyless by "%s"' % CI, what="another workflow:")
        self.assertIn("release", message, "the trusted expression is not named")

    def test_04_a_pinned_extension_is_refused_naming_it(self):
        self.assert_denied(self.forked, 'source_repository_uri is "https://github.com/mallory/app", not "%s"' % REPO_URI,
                           what="a fork's workflow:")
        for digest in self.forked.blobs():
            status, _, body = self.pg.request("GET", "/v2/%s/blobs/%s" % (self.forked.repo, digest))
            h.assert_oci_denied(self, status, body, "a layer of the fork's image")

    # ---------------------------------------------------------------- each check

    def test_05_each_broken_check_is_refused_for_its_reason(self):
        for fault, fmt, words, image in self.faulty:
            with self.subTest(fault=fault, fmt=fmt):
                self.assert_denied(image, words, what="%s (%s):" % (fault, fmt))

    def test_06_a_signature_of_another_image_is_refused(self):
        self.assert_denied(self.legacy_names_other, "but the payload names " + self.legacy.digest,
                           what="legacy payload naming another digest:")
        self.assert_denied(self.bundle_names_other, "names no subject of " + self.bundle_names_other.digest,
                           what="bundle statement naming another digest:")
        self.assert_denied(self.unsigned, "no signature found", what="unsigned:")

    def test_07_keys_and_identities_together(self):
        self.assert_pulled(self.mixed_keyed, "signed by a key, in a scope trusting keys and identities:")
        self.assert_pulled(self.mixed_keyless, "signed keyless, in a scope trusting keys and identities:")

    # ---------------------------------------------------------------- the trusted root

    def test_08_the_trusted_root_file_is_read_again_on_reload(self):
        self.assert_pulled(self.reload_image, "before the root changes:")
        version = self.reload()["policy_version"]
        shutil.copy(os.path.join(self.other_dir, "trusted_root.json"), self.root_copy)
        try:
            changed = self.reload()["policy_version"]
            self.assertNotEqual(changed, version, "the root file's bytes are not part of the policy version")
            self.assert_denied(self.reload_image, "keyless signature not verified",
                               what="under a root that does not know its log:")
        finally:
            shutil.copy(os.path.join(self.forge_dir, "trusted_root.json"), self.root_copy)
            self.reload()
        self.assert_pulled(self.reload_image, "with the root back:")

    def test_09_a_root_file_that_is_not_a_trusted_root_keeps_the_policy(self):
        with open(self.root_copy, "rb") as f:
            good = f.read()
        with open(self.root_copy, "w") as f:
            f.write('{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1", "tlogs": 7}')
        try:
            status, _, body = h.admin_request(self.pg, self.token, "POST", "/v1/policy/reload")
            self.assertFalse(json.loads(body).get("reloaded"), body)
            refused = h.wait_until(
                lambda: [e for e in self.pg.log_events() if e.get("msg", "").startswith("policy reload refused")], 10,
                "the log line of the refused reload")[-1]
            self.assertIn("trusted_roots.forge.file: ", " ".join(refused.get("errors", [])), refused)
        finally:
            with open(self.root_copy, "wb") as f:
                f.write(good)
        self.reload()
        self.assert_pulled(self.legacy, "with the policy kept:")


    # ---------------------------------------------------------------- provenance

    def test_10_provenance_from_the_trusted_builder_and_source_allows(self):
        r, out_dir = h.skopeo_via_mirror(self.work.path, self.registry, self.pg, "built/keyless:v1", timeout=120)
        self.assertEqual(r.returncode, 0, "skopeo of an image with provenance failed: " + r.stderr)
        h.assert_dir_output(self, out_dir, self.built)
        rec = h.wait_until(lambda: self.audit_for(self.built.digest, kind="manifest", decision="allow"), 10,
                           "the audit line of the pull with provenance")[-1]
        self.assertEqual(rec["source"], "provenance", rec)
        reasons = " ".join(rec.get("reasons", []))
        self.assertIn('provenance: built by "%s" from github.com/acme/app@refs/tags/v1.4.0' % BUILDER, reasons)
        self.assertIn('signed by keyless "%s"' % RELEASE, reasons)
        self.assert_pulled(self.built_keyed, "keyed v0.2 provenance in a bundle referrer:")
        self.assert_pulled(self.built_att, "keyed v0.2 provenance under the .att tag:")

    def test_11_provenance_that_does_not_meet_the_scope_is_refused(self):
        self.assert_denied(self.built_fork, 'source "github.com/mallory/app" is not "github.com/acme/*"',
                           what="built from a fork:")
        self.assert_denied(self.built_elsewhere, 'builder "https://ci.example/self-hosted" is not matching',
                           what="another builder:")
        self.assert_denied(self.built_att_stranger, "no acceptable provenance", "does not verify with key release",
                           what="signed by a key the scope does not trust:")
        self.assert_denied(self.built_signature_only, "no SLSA provenance attached", what="only a signature:")
        for digest in self.built_fork.blobs():
            status, _, body = self.pg.request("GET", "/v2/%s/blobs/%s" % (self.built_fork.repo, digest))
            h.assert_oci_denied(self, status, body, "a layer of the image built from a fork")
        rec = h.wait_until(lambda: self.audit_for(self.built_fork.digest, kind="manifest", decision="deny"), 10,
                           "the audit line of the refused pull")[-1]
        self.assertEqual(rec["source"], "provenance", rec)

    def test_12_provenance_with_containerd(self):
        ctrd = h.containerd_through_mirror(self, self.registry.address, self.pg.address)
        h.assert_ctr_pulls(self, ctrd, "provenance", self.registry.address, self.built_att,
                           "an image with keyed provenance (.att)")
        h.assert_ctr_refused(self, ctrd, "provenance", self.registry.address, self.built_fork,
                             "an image built from a fork", "github.com/mallory/app")


if __name__ == "__main__":
    unittest.main()
