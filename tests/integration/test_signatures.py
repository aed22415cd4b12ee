"""Cosign signatures and SBOMs at the gate, with real components: a real upstream
(CNCF Distribution 2.8) holding images signed with keys made by the openssl CLI,
a referrers front adding the OCI 1.1 referrers API that Distribution lacks, and a
pullgate whose policy requires signatures (keys given inline and as files, absolute
and relative to the policy) in one scope and an SBOM in another. Covers: cosign's
legacy `.sig` tag (ECDSA) pulled with skopeo and raw HTTP; a Sigstore bundle (Ed25519)
found through the referrers fallback tag; an RSA signature found through the
referrers API; unsigned, wrong-key, tampered and wrong-digest signatures refused in
the legacy and the bundle format; a signed index covering its children; an unsigned
image allowed once signed and recheck_s has passed; a signed image still allowed with
the upstream down after a policy reload; an SBOM required (legacy tag, referrer)."""
import json
import os
import re
import shutil
import threading
import unittest

import cosign as c
import harness as h

RECHECK_S = 2
FRONT_NAME = "referrers.test"


class Signatures(h.PullgateAlive, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        cls.front = c.ReferrersFront(cls.registry).start()
        cls.addClassCleanup(cls.front.close)
        reg = cls.registry

        cls.release = c.KeyPair(cls.work.path, "release", "ecdsa")
        cls.ci = c.KeyPair(cls.work.path, "ci", "ed25519")
        cls.build = c.KeyPair(cls.work.path, "build", "rsa")
        cls.stranger = c.KeyPair(cls.work.path, "stranger", "ecdsa")  # in no policy

        def img(repo):
            return h.seed_oci(reg, repo=repo, seed="sig-" + repo.replace("/", "-"))

        # Good signatures, one per format and key type.
        cls.legacy = img("signed/legacy")
        c.push_legacy_signature(reg, cls.legacy, cls.release)
        cls.bundle = img("signed/bundle")
        c.push_referrers(reg, cls.bundle, [c.bundle_referrer(cls.bundle, cls.ci), c.sbom_referrer(cls.bundle)])
        # Only the referrers API (the front) knows this one's signature: no .sig tag,
        # no fallback tag in the registry.
        cls.rsa = img("signed/rsa")
        rsa_sig = c.signature_referrer(cls.rsa, cls.build).push(reg)
        cls.front.set_referrers(cls.rsa.repo, cls.rsa.digest, [rsa_sig])

        # Bad ones.
        cls.unsigned = img("signed/unsigned")
        cls.legacy_wrong_key = img("signed/legacy-wrong-key")
        c.push_legacy_signature(reg, cls.legacy_wrong_key, cls.stranger)
        cls.legacy_tampered = img("signed/legacy-tampered")
        c.push_legacy_signature(reg, cls.legacy_tampered, cls.release, tamper=True)
        cls.legacy_wrong_digest = img("signed/legacy-wrong-digest")
        c.push_legacy_signature(reg, cls.legacy_wrong_digest, cls.release, names=cls.legacy.digest)
        cls.bundle_unsigned = img("signed/bundle-unsigned")  # referrers hold only an SBOM
        c.push_referrers(reg, cls.bundle_unsigned, [c.sbom_referrer(cls.bundle_unsigned)])
        cls.bundle_wrong_key = img("signed/bundle-wrong-key")
        c.push_referrers(reg, cls.bundle_wrong_key, [c.bundle_referrer(cls.bundle_wrong_key, cls.stranger)])
        cls.bundle_tampered = img("signed/bundle-tampered")
        c.push_referrers(reg, cls.bundle_tampered, [c.bundle_referrer(cls.bundle_tampered, cls.ci, tamper=True)])
        cls.bundle_wrong_digest = img("signed/bundle-wrong-digest")
        c.push_referrers(reg, cls.bundle_wrong_digest,
                         [c.bundle_referrer(cls.bundle_wrong_digest, cls.ci, names=cls.bundle.digest)])

        # Signatures whose payload descriptors name a 2 MiB blob (more than a
        # signature's blob may have) with a payload's size: one blob cached here as the
        # layer of an allowed image, one only upstream.
        cls.plain_big = h.push_image(reg, h.build_image("plain/big", "v1", [h.big_layer("sig-big-cached",
                                                                                    size=2 * 1024 * 1024)]))
        cls.oversized_cached = img("signed/oversized-cached")
        c.push_legacy_signature_naming(reg, cls.oversized_cached, cls.release, cls.plain_big.layers[0].blob)
        cls.oversized_upstream = img("signed/oversized-upstream")
        c.push_legacy_signature_naming(reg, cls.oversized_upstream, cls.release,
                                       h.big_layer("sig-big-upstream", size=2 * 1024 * 1024).blob)

        cls.index = h.seed_index(reg, repo="signed/multi", seed="sig-multi")
        c.push_legacy_signature(reg, cls.index, cls.release)
        cls.unsigned_index = h.seed_index(reg, repo="signed/multi-unsigned", seed="sig-multi-unsigned")
        # An unsigned runnable image claiming to be an artifact (a subject naming a signed
        # image): what a pusher writes in a manifest must not exempt it.
        base = h.build_image("signed/posing", "v1", [h.small_layer("sig-posing")], label="posing")
        doc = json.loads(base.manifest)
        doc["subject"] = {"mediaType": h.MT_OCI_MANIFEST, "digest": cls.legacy.digest, "size": len(cls.legacy.manifest)}
        doc["artifactType"] = "application/vnd.dev.cosign.artifact.sig.v1+json"
        cls.posing = h.push_image(reg, h.Image(base.repo, base.tag, json.dumps(doc).encode(), base.manifest_type,
                                               base.config, base.layers))
        # One image, signed by ci only, in two scopes: "signed" trusts ci, "strict"
        # only release. Pulled in "signed" first, it must still be refused in "strict".
        promoted_layers = [h.small_layer("sig-promoted")]
        cls.promoted = h.push_image(reg, h.build_image("signed/promoted", "v1", promoted_layers, label="promoted"))
        cls.promoted_strict = h.push_image(reg, h.build_image("strict/promoted", "v1", promoted_layers,
                                                              label="promoted"))
        for image in (cls.promoted, cls.promoted_strict):
            c.push_legacy_signature(reg, image, cls.ci)
        cls.late = img("signed/late")          # signed during its test
        cls.burst = img("signed/burst")        # pulled by many clients at once
        c.push_legacy_signature(reg, cls.burst, cls.release)
        # Looked at first in the metrics test, so each adds to a count.
        cls.legacy11 = img("signed/metrics-signed")
        c.push_legacy_signature(reg, cls.legacy11, cls.release)
        cls.unsigned11 = img("signed/metrics-unsigned")
        cls.wrong_key11 = img("signed/metrics-wrong-key")
        c.push_legacy_signature(reg, cls.wrong_key11, cls.stranger)
        cls.sbom_none11 = img("sbom/metrics-none")
        cls.offline = img("signed/offline")
        c.push_legacy_signature(reg, cls.offline, cls.release)

        cls.sbom_tagged = img("sbom/tagged")
        c.push_sbom_tag(reg, cls.sbom_tagged)
        cls.sbom_referred = img("sbom/referred")
        c.push_referrers(reg, cls.sbom_referred, [c.sbom_referrer(cls.sbom_referred)])
        cls.sbom_none = img("sbom/none")
        cls.sbom_attested = img("sbom/attested")  # an SPDX attestation in a bundle, via the fallback tag
        c.push_referrers(reg, cls.sbom_attested, [c.sbom_attestation_referrer(cls.sbom_attested, cls.ci)])
        cls.sbom_att_tag = img("sbom/att-tag")  # a CycloneDX attestation under the legacy .att tag
        c.push_legacy_attestation(reg, cls.sbom_att_tag, cls.release)
        cls.sbom_wrong_predicate = img("sbom/signature-only")  # a signature bundle is no SBOM
        c.push_referrers(reg, cls.sbom_wrong_predicate, [c.bundle_referrer(cls.sbom_wrong_predicate, cls.ci)])

        front_upstream = {"name": FRONT_NAME, "url": cls.front.url, "tag_ttl_s": 300}
        cls.pg = h.GatedPullgate(cls.work.path, [h.upstream_entry(reg), front_upstream], {})
        cls.addClassCleanup(cls.pg.close)
        # "ci" is named relative to the policy file, "build" by an absolute path.
        shutil.copy(cls.ci.public_path, os.path.join(os.path.dirname(cls.pg.policy_path), "ci.pub"))
        cls.policy = {
            "keys": {"release": {"pem": cls.release.public_pem},
                     "ci": {"pem_file": "ci.pub"},
                     "build": {"pem_file": cls.build.public_path}},
            "default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"},
            "scopes": [
                {"name": "signed", "repository": "signed/**",
                 "signatures": {"keys": ["release", "ci", "build"], "recheck_s": RECHECK_S}},
                {"name": "sbom-required", "repository": "sbom/**", "sbom": {"required": True}},
                {"name": "strict", "repository": "strict/**", "signatures": {"keys": ["release"]}},
            ],
        }
        cls.pg.write_policy(cls.policy)
        cls.pg.start()
        cls.token = h.read_token(cls.pg)

    # ---------------------------------------------------------------- helpers

    def get(self, path, timeout=30):
        return self.pg.request("GET", path, headers=[("Accept", a) for a in h.SKOPEO_ACCEPTS], timeout=timeout)

    @staticmethod
    def manifest_path(image, reference=None, ns=None):
        path = "/v2/%s/manifests/%s" % (image.repo, reference or image.tag)
        return path + ("?ns=" + ns if ns else "")

    def assert_pulled(self, image, reference=None, ns=None, what=""):
        """Manifest and every blob of image through pullgate, byte for byte."""
        path = self.manifest_path(image, reference, ns)
        status, headers, body = self.get(path)
        self.assertEqual(status, 200, "%s GET %s: %d %r" % (what, path, status, body[:400]))
        self.assertEqual(body, image.manifest, what + " " + path)
        self.assertEqual(h.header(headers, "Docker-Content-Digest"), image.digest, what + " " + path)
        for digest, data in image.blobs().items():
            blob_path = "/v2/%s/blobs/%s" % (image.repo, digest) + ("?ns=" + ns if ns else "")
            status, _, got = self.pg.request("GET", blob_path)
            self.assertEqual(status, 200, "%s GET %s: %d %r" % (what, blob_path, status, got[:300]))
            self.assertEqual(got, data, what + " " + blob_path)

    def assert_denied(self, image, *texts, reference=None, ns=None, what=""):
        path = self.manifest_path(image, reference, ns)
        status, _, body = self.get(path)
        return h.assert_oci_denied(self, status, body, "%s GET %s" % (what, path), *texts)

    def status_of(self, image, reference=None):
        return self.get(self.manifest_path(image, reference))[0]

    def admin(self, method, path, body=None):
        return h.admin_request(self.pg, self.token, method, path, body=body)

    def skopeo(self, ref):
        return h.skopeo_via_mirror(self.work.path, self.registry, self.pg, ref, timeout=120)

    def audit_for(self, digest, **fields):
        return [a for a in self.pg.audit_records()
                if a.get("digest") == digest and all(a.get(k) == v for k, v in fields.items())]

    def wait_audit(self, digest, **fields):
        return h.wait_until(lambda: self.audit_for(digest, **fields), 10,
                            "an audit record for %s with %r" % (digest, fields))

    # ---------------------------------------------------------------- good signatures

    def test_01_legacy_ecdsa_signature_allows_skopeo_and_raw_http(self):
        r, out_dir = self.skopeo("signed/legacy:v1")
        self.assertEqual(r.returncode, 0, "skopeo of a signed image failed: " + r.stderr)
        h.assert_dir_output(self, out_dir, self.legacy)
        self.assert_pulled(self.legacy, what="legacy signature:")
        self.assert_pulled(self.legacy, reference=self.legacy.digest, what="legacy signature, by digest:")
        rec = self.wait_audit(self.legacy.digest, kind="manifest", decision="allow")[-1]
        self.assertEqual(rec["source"], "signature", rec)

    def test_02_bundle_ed25519_found_through_the_fallback_tag(self):
        self.assert_pulled(self.bundle, what="bundle via the fallback tag:")
        rec = self.wait_audit(self.bundle.digest, kind="manifest", decision="allow")[-1]
        self.assertEqual(rec["source"], "signature", rec)

    def test_03_rsa_signature_found_through_the_referrers_api(self):
        # Distribution 2.8 itself has no referrers API: without the front there is no
        # way to this signature.
        status, _, _ = h.http_request(self.registry.host, self.registry.port, "GET",
                                      "/v2/%s/referrers/%s" % (self.rsa.repo, self.rsa.digest))
        self.assertEqual(status, 404)
        self.assert_pulled(self.rsa, ns=FRONT_NAME, what="RSA signature via the referrers API:")
        self.assertGreaterEqual(self.front.requests_for(self.rsa.repo, self.rsa.digest), 1,
                                "pullgate never asked the referrers API")
        rec = self.wait_audit(self.rsa.digest, kind="manifest", decision="allow")[-1]
        self.assertEqual(rec["source"], "signature", rec)

    # ---------------------------------------------------------------- bad signatures

    def test_04_unsigned_refused(self):
        message = self.assert_denied(self.unsigned, "no signature", what="unsigned:")
        self.assertIn(self.unsigned.digest, message)
        self.assert_denied(self.unsigned, "no signature", reference=self.unsigned.digest, what="unsigned, by digest:")
        r, _ = self.skopeo("signed/unsigned:v1")
        self.assertNotEqual(r.returncode, 0, "skopeo pulled an unsigned image: " + r.stdout)
        self.assertIn("no signature", r.stderr)
        # Nor is an unsigned image that says it is an artifact; its layers are refused too.
        self.assert_denied(self.posing, "no signature", what="unsigned, posing as an artifact:")
        for digest in self.posing.blobs():
            status, _, body = self.pg.request("GET", "/v2/%s/blobs/%s" % (self.posing.repo, digest))
            h.assert_oci_denied(self, status, body, "a layer of the posing image")
        # Referrers that hold no signature (an SBOM only) are as good as none.
        self.assert_denied(self.bundle_unsigned, "no signature", what="referrers without a signature:")
        # explain says the same, from what the mirror found, without pulling.
        status, _, body = self.admin("GET", "/v1/explain?image=%s/%s:%s" % (self.registry.address, self.unsigned.repo,
                                                                             self.unsigned.tag))
        self.assertEqual(status, 200, body[:400])
        doc = json.loads(body)
        self.assertEqual((doc["decision"], doc["served"], doc["source"]), ("deny", False, "signature"), doc)
        self.assertEqual(doc["signals"]["signature"]["state"], "missing", doc)
        self.assertIn("no signature", " ".join(doc["reasons"]))

    def test_04b_containerd_shows_the_reason(self):
        ctrd = h.containerd_through_mirror(self, self.registry.address, self.pg.address)
        h.assert_ctr_pulls(self, ctrd, "sig", self.registry.address, self.legacy, "a signed image")
        h.assert_ctr_refused(self, ctrd, "sig", self.registry.address, self.unsigned, "an unsigned image",
                             "no signature")

    def test_04c_a_signature_one_scope_trusts_does_not_pass_another(self):
        self.assertEqual(self.promoted.digest, self.promoted_strict.digest)
        self.assert_pulled(self.promoted, what="signed by ci, in the scope that trusts ci:")
        self.assert_denied(self.promoted_strict, "release", what="the same digest where only release is trusted:")
        for digest in self.promoted_strict.blobs():
            status, _, body = self.pg.request("GET", "/v2/strict/promoted/blobs/" + digest)
            h.assert_oci_denied(self, status, body, "a layer in the strict scope")
        self.assert_pulled(self.promoted, what="and again where ci is trusted:")

    def test_05_wrong_key_refused(self):
        for image, form in ((self.legacy_wrong_key, "legacy"), (self.bundle_wrong_key, "bundle")):
            with self.subTest(form=form):
                message = self.assert_denied(image, "does not verify with key", what=form + " wrong key:")
                self.assertIn("release", message, "the policy's key names are not listed")

    def test_06_tampered_payload_refused(self):
        for image, form in ((self.legacy_tampered, "legacy"), (self.bundle_tampered, "bundle")):
            with self.subTest(form=form):
                self.assert_denied(image, "does not verify with key", what=form + " tampered:")

    def test_07_signature_naming_another_digest_refused(self):
        for image, other, form in ((self.legacy_wrong_digest, self.legacy.digest, "legacy"),
                                   (self.bundle_wrong_digest, self.bundle.digest, "bundle")):
            with self.subTest(form=form):
                self.assert_denied(image, "names " + other, what=form + " wrong digest:")

    def test_07b_a_payload_larger_than_a_signature_blob_is_not_read(self):
        # The size a descriptor claims is not the size of what it names: the cached
        # file's own size is checked before anything is allocated or read.
        self.assert_pulled(self.plain_big, what="the image whose 2 MiB layer is then cached:")
        for image, where in ((self.oversized_cached, "cached"), (self.oversized_upstream, "upstream")):
            with self.subTest(where=where):
                self.assert_denied(image, "is larger than the 1048576 bytes a signature's blob may have",
                                   what="payload too large, %s:" % where)

    # ---------------------------------------------------------------- index, recheck

    def test_08_signed_index_covers_its_children(self):
        status, _, body = self.get(self.manifest_path(self.index))
        self.assertEqual(status, 200, "signed index: %d %r" % (status, body[:400]))
        self.assertEqual(body, self.index.manifest)
        for (_, arch), child in sorted(self.index.children.items()):
            with self.subTest(arch=arch):
                self.assert_pulled(child, reference=child.digest, what="child %s of the signed index:" % arch)
        rec = self.wait_audit(self.index.digest, kind="manifest", decision="allow")[-1]
        self.assertEqual(rec["source"], "signature", rec)
        # The control: the children of an unsigned index, pulled the same way, are refused.
        status, _, body = self.get(self.manifest_path(self.unsigned_index))
        self.assertEqual(status, 403, "unsigned index: %d %r" % (status, body[:400]))
        for (_, arch), child in sorted(self.unsigned_index.children.items()):
            with self.subTest(arch=arch, index="unsigned"):
                self.assert_denied(child, "no signature", reference=child.digest,
                                   what="child %s of the unsigned index:" % arch)

    def test_09_unsigned_then_signed_allowed_after_recheck(self):
        self.assert_denied(self.late, "no signature", what="before signing:")
        c.push_legacy_signature(self.registry, self.late, self.release)
        h.wait_until(lambda: self.status_of(self.late) == 200, RECHECK_S + 15,
                     "signed/late to be allowed once signed and recheck_s passed", interval=0.2)
        self.assert_pulled(self.late, what="after signing:")

    # ---------------------------------------------------------------- SBOM

    def test_10_sbom_required(self):
        self.assert_pulled(self.sbom_tagged, what="SBOM under the .sbom tag:")
        self.assert_pulled(self.sbom_referred, what="SBOM as a referrer:")
        self.assert_denied(self.sbom_none, "no SBOM", what="no SBOM:")
        self.assert_pulled(self.sbom_attested, what="SPDX attestation in a bundle:")
        self.assert_pulled(self.sbom_att_tag, what="CycloneDX attestation under the .att tag:")
        self.assert_denied(self.sbom_wrong_predicate, "no SBOM", what="a signature bundle only:")
        rec = self.wait_audit(self.sbom_none.digest, kind="manifest", decision="deny")[-1]
        self.assertEqual(rec["source"], "sbom", rec)

    def signal_checks(self, kind, result):
        """pullgate_signal_checks_total{kind,result} from /metrics (0 when absent)."""
        status, _, body = self.admin("GET", "/metrics")
        self.assertEqual(status, 200, body[:300])
        m = re.search(r'^pullgate_signal_checks_total\{kind="%s",result="%s"\} (\d+)' % (kind, result),
                      body.decode(), re.M)
        return int(m.group(1)) if m else 0

    def test_10b_concurrent_first_pulls_look_for_signatures_once(self):
        # A rollout: many nodes pull a new image at the same moment. One of them looks
        # for its signatures; the others wait for its findings.
        path = self.manifest_path(self.burst, reference=self.burst.digest, ns=FRONT_NAME)
        sig_path = "/v2/%s/manifests/%s" % (self.burst.repo, c.sig_tag(self.burst.digest))
        checks_before = self.signal_checks("signature", "valid")
        self.front.manifest_delay = 0.3  # every manifest GET through the front overlaps the others
        self.addCleanup(setattr, self.front, "manifest_delay", 0.0)
        results = [None] * 8

        def pull(i):
            results[i] = self.get(path, timeout=60)
        threads = [threading.Thread(target=pull, args=(i,)) for i in range(len(results))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        for status, _, body in results:
            self.assertEqual(status, 200, body[:400])
            self.assertEqual(body, self.burst.manifest)
        # One look: one signature examined, one .sig GET, the referrers API asked at
        # most once (the .sig tag answers first).
        self.assertEqual(self.signal_checks("signature", "valid") - checks_before, 1)
        sig_gets = [p for p in self.front.manifest_gets if p.split("?")[0] == sig_path]
        self.assertEqual(len(sig_gets), 1, self.front.manifest_gets)
        self.assertLessEqual(self.front.requests_for(self.burst.repo, self.burst.digest), 1)

        def eight_records():
            records = self.audit_for(self.burst.digest, kind="manifest")
            return records if len(records) >= 8 else None
        records = h.wait_until(eight_records, 10, "8 audit records")
        self.assertEqual({(r["decision"], r["source"]) for r in records}, {("allow", "signature")}, records)

    def test_11_metrics_count_what_was_found(self):
        before = {(k, r): self.signal_checks(k, r) for k, r in (("signature", "valid"), ("signature", "missing"),
                                                               ("signature", "invalid"), ("sbom", "missing"))}
        # Each first look at a digest counts once (the verdict is stored after it).
        self.assert_pulled(self.legacy11, what="legacy signature:")
        self.assert_denied(self.unsigned11, "no signature", what="unsigned:")
        self.assert_denied(self.wrong_key11, "does not verify with key", what="wrong key:")
        self.assert_denied(self.sbom_none11, "no SBOM", what="no SBOM:")
        for (kind, result), count in before.items():
            with self.subTest(kind=kind, result=result):
                self.assertGreater(self.signal_checks(kind, result), count,
                                   "%s/%s not counted in /metrics" % (kind, result))

    # ---------------------------------------------------------------- offline (last: stops the upstream)

    def test_99_signature_cached_for_an_offline_reload(self):
        self.assert_pulled(self.offline, what="online:")
        old_version = self.wait_audit(self.offline.digest, kind="manifest", decision="allow")[-1]["policy_version"]
        self.registry.stop()
        self.addCleanup(self.registry.start)
        # A comment is enough for a new version (the version also covers the key
        # files, so it is not the policy file's own sha256).
        self.pg.write_policy("// reloaded while the upstream is down\n" + json.dumps(self.policy, indent=2) + "\n")
        self.addCleanup(self.restore_policy)
        status, _, body = self.admin("POST", "/v1/policy/reload")
        self.assertEqual(status, 200, body[:400])
        doc = json.loads(body)
        self.assertTrue(doc["reloaded"], doc)
        new_version = doc["policy_version"]
        self.assertNotEqual(new_version, old_version, "the reload kept the old policy version")
        self.assert_pulled(self.offline, what="upstream down, policy reloaded:")
        self.assert_pulled(self.offline, reference=self.offline.digest, what="upstream down, by digest:")
        rec = self.wait_audit(self.offline.digest, kind="manifest", decision="allow", policy_version=new_version)[-1]
        self.assertEqual(rec["source"], "signature", rec)

    def restore_policy(self):
        self.pg.write_policy(self.policy)
        status, _, body = self.admin("POST", "/v1/policy/reload")
        self.assertEqual(status, 200, body[:400])


if __name__ == "__main__":
    unittest.main(verbosity=2)
