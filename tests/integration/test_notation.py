"""Notation signatures at the gate, with real components: a real upstream (CNCF
Distribution 2.8, which has no referrers API, so pullgate finds the signatures through
the fallback tag sha256-<hex>, as notation itself writes it there) holding images
signed by tests/integration/notation.py (test CAs made with the openssl CLI, JWS
envelopes in notation-go's bytes), and pullgate whose policy names trust stores (a PEM
file beside the policy) and Notation statements per scope. Covers: good signatures
(ES256 and PS384) pulled with skopeo, containerd and raw HTTP, the audit line naming
the signer, its trust store and that revocation is not checked; each failure refused
for its reason with the layers refused too: another CA, an identity not trusted, an
expired signing certificate, a payload altered after signing, a signature of another
image, no signature at all, a Notation signature in a scope that trusts only keys; an
audit-level statement serving what it only logs; a signature that lapses when its
certificate expires (decided again at that instant, and refused); and the trust store
file replaced and reloaded."""
import datetime
import json
import os
import shutil
import time
import unittest

import cosign as c
import harness as h
import notation as n

SIGNER = n.subject("release")
RELEASE = "x509.subject: " + SIGNER
RECHECK_S = 2


class Notation(h.PullgateAlive, h.GatedPulls, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        reg = cls.registry
        cls.acme = n.CertificateAuthority(cls.work.path, "acme", intermediate=True)
        cls.mallory = n.CertificateAuthority(cls.work.path, "mallory", organization="mallory")
        cls.release = cls.acme.issue_signer("release")
        cls.release_rsa = cls.acme.issue_signer("release", key="rsa3072")
        cls.ci = cls.acme.issue_signer("ci")
        now = datetime.datetime.now(datetime.timezone.utc)
        cls.expired = cls.acme.issue_signer("release", not_before=now - datetime.timedelta(days=30),
                                            not_after=now - datetime.timedelta(days=1))

        def img(repo):
            return h.seed_oci(reg, repo=repo, seed="notation-" + repo.replace("/", "-"))

        def signed(repo, signer, **jws):
            image = img(repo)
            n.push_notation_signature(reg, image, signer.jws(n.target_artifact(image), **jws))
            return image

        cls.good = signed("notation/good", cls.release)
        cls.good_rsa = signed("notation/rsa", cls.release_rsa)
        cls.by_mallory = signed("notation/mallory", cls.mallory.issue_signer("release"))
        cls.by_ci = signed("notation/ci", cls.ci)
        cls.by_expired = signed("notation/expired", cls.expired)
        cls.tampered = signed("notation/tampered", cls.release, tamper=True)
        cls.names_other = signed("notation/names-other", cls.release, names=cls.good.digest)
        cls.unsigned = img("notation/unsigned")
        cls.keys_only = signed("keys-only/app", cls.release)
        cls.audited = signed("audited/app", cls.mallory.issue_signer("release"))
        cls.reloaded = signed("notation/reloaded", cls.release)

        cls.key = c.KeyPair(cls.work.path, "release", "ecdsa")
        cls.pg = h.GatedPullgate(cls.work.path, [h.upstream_entry(reg)], {})
        cls.addClassCleanup(cls.pg.close)
        cls.store_path = os.path.join(os.path.dirname(cls.pg.policy_path), "acme-root.pem")
        cls.acme.write_trust_store(cls.store_path)
        cls.policy = {
            "keys": {"release": {"pem": cls.key.public_pem}},
            "trust_stores": {"acme": {"type": "ca", "file": "acme-root.pem"},
                             "mallory": {"type": "ca", "pem": cls.mallory.root_pem()}},
            "default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"},
            "scopes": [
                {"name": "notation", "repository": "notation/**",
                 "signatures": {"notation": [{"trust_stores": ["acme"], "trusted_identities": [RELEASE]}],
                                "recheck_s": RECHECK_S}},
                {"name": "keys-only", "repository": "keys-only/**", "signatures": {"keys": ["release"]}},
                {"name": "audited", "repository": "audited/**",
                 "signatures": {"notation": [{"trust_stores": ["acme"], "trusted_identities": ["*"],
                                              "level": "audit"}]}},
            ],
        }
        cls.pg.write_policy(cls.policy)
        cls.pg.start()
        cls.token = h.read_token(cls.pg)

    # ---------------------------------------------------------------- helpers

    def assert_denied(self, image, *texts, what=""):
        message = super().assert_denied(image, *texts, what=what)
        # Nothing of a refused image leaves by another route: its layers neither.
        for digest in image.blobs():
            status, _, _ = self.pg.request("GET", "/v2/%s/blobs/%s" % (image.repo, digest))
            self.assertEqual(status, 403, "%s blob %s of a refused image: %d" % (what, digest, status))
        return message

    # ---------------------------------------------------------------- good signatures

    def test_01_a_good_signature_allows_skopeo_and_raw_http(self):
        r, out_dir = h.skopeo_via_mirror(self.work.path, self.registry, self.pg, "notation/good:v1", timeout=120)
        self.assertEqual(r.returncode, 0, "skopeo of a Notation-signed image failed: " + r.stderr)
        h.assert_dir_output(self, out_dir, self.good)
        self.assert_pulled(self.good, "notation good:")
        rec = h.wait_until(lambda: self.audit_for(self.good.digest, kind="manifest", decision="allow"), 10,
                           "the audit line of the Notation-signed pull")[-1]
        self.assertEqual(rec["source"], "signature", rec)
        reasons = " ".join(rec.get("reasons", []))
        self.assertIn('Notation signature by "%s" (notary.x509, trust stores acme)' % SIGNER,
                      reasons)
        self.assertIn("revocation not checked", reasons)
        self.assertIn("found in referrer sha256:", reasons)
        self.assertIn("via tag sha256-" + self.good.digest.split(":", 1)[1], reasons)

    def test_02_a_ps384_signature_allows_containerd(self):
        ctrd = h.containerd_through_mirror(self, self.registry.address, self.pg.address)
        h.assert_ctr_pulls(self, ctrd, "notation", self.registry.address, self.good_rsa, "a Notation-signed image")
        self.assert_pulled(self.good_rsa, "notation rsa:")
        h.assert_ctr_refused(self, ctrd, "notation", self.registry.address, self.by_mallory,
                             "an image signed by another CA")

    # ---------------------------------------------------------------- refusals

    def test_03_each_failure_is_refused_for_its_reason(self):
        cases = [
            (self.by_mallory, "Notation signature refused: authenticity:"),
            (self.by_ci, 'is not a trusted identity (trusted: %s)' % RELEASE),
            (self.by_expired, "Notation signature refused: authentic timestamp: certificate"),
            (self.tampered, "Notation signature refused: integrity:"),
            (self.names_other, "Notation signature refused: integrity:"),
            (self.unsigned, "no signature found for " + self.unsigned.digest),
            (self.keys_only, "a Notation signature, but the scope trusts no Notation signer"),
        ]
        for image, words in cases:
            with self.subTest(repo=image.repo):
                self.assert_denied(image, words, what=image.repo)
                rec = h.wait_until(lambda: self.audit_for(image.digest, kind="manifest", decision="deny"), 10,
                                   "the audit line of " + image.repo)[-1]
                self.assertEqual(rec["source"], "signature", rec)
        message = self.assert_denied(self.by_expired, "is not valid at the verification time")
        self.assertIn("(valid from", message)
        message = self.assert_denied(self.names_other)
        self.assertIn(self.good.digest, message)

    def test_04_an_audit_level_statement_serves_what_it_only_logs(self):
        self.assert_pulled(self.audited, "audit level:")
        rec = h.wait_until(lambda: self.audit_for(self.audited.digest, kind="manifest", decision="allow"), 10,
                           "the audit line of the audit-level pull")[-1]
        reasons = " ".join(rec.get("reasons", []))
        self.assertIn("logged, not enforced at this level: authenticity:", reasons)

    # ---------------------------------------------------------------- time and reloads

    def test_05_a_signature_lapses_when_its_certificate_expires(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        short = self.acme.issue_signer("release", not_after=now + datetime.timedelta(seconds=8))
        image = h.seed_oci(self.registry, repo="notation/short-lived", seed="notation-short-lived")
        n.push_notation_signature(self.registry, image, short.jws(n.target_artifact(image)))
        self.assert_pulled(image, "before its certificate expires:")
        # The stored finding lapses at the leaf's notAfter: the gate decides again then
        # and the chain, checked now, no longer holds.
        time.sleep(max(0.0, (now + datetime.timedelta(seconds=9.5) - datetime.datetime.now(
            datetime.timezone.utc)).total_seconds()))
        self.assert_denied(image, "authentic timestamp: certificate", "is not valid at the verification time",
                           what="after its certificate expired")

    def test_06_the_trust_store_file_is_part_of_the_policy(self):
        self.assert_pulled(self.reloaded, "before the reload:")
        shutil.copy(self.store_path, self.store_path + ".kept")
        self.addCleanup(lambda: (shutil.copy(self.store_path + ".kept", self.store_path), self.reload()))
        self.mallory.write_trust_store(self.store_path)
        before = self.reload()
        self.assert_denied(self.reloaded, "Notation signature refused: authenticity:", what="after the reload")
        shutil.copy(self.store_path + ".kept", self.store_path)
        after = self.reload()
        self.assertNotEqual(before["policy_version"], after["policy_version"], (before, after))
        self.assert_pulled(self.reloaded, "with the store back:")

    def test_07_a_store_that_is_not_pem_is_refused_on_reload(self):
        with open(self.store_path, "rb") as f:
            kept = f.read()

        def put_back():
            with open(self.store_path, "wb") as f:
                f.write(kept)
        self.addCleanup(put_back)
        with open(self.store_path, "w") as f:
            f.write("not a certificate\n")
        status, _, body = h.admin_request(self.pg, self.token, "POST", "/v1/policy/reload")
        self.assertFalse(json.loads(body).get("reloaded"), body)
        refused = h.wait_until(
            lambda: [e for e in self.pg.log_events() if e.get("msg", "").startswith("policy reload refused")
                     and "trust_stores.acme.file: " in " ".join(e.get("errors", []))], 10,
            "the log line of the refused reload")[-1]
        self.assertIn("holds no PEM certificate", " ".join(refused["errors"]), refused)
        with open(self.store_path, "wb") as f:
            f.write(kept)
        self.assert_pulled(self.good, "the previous policy stays:")


if __name__ == "__main__":
    unittest.main()
