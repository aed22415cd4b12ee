"""sigstore_forge (tests/tools/README.md) against `pullgate verify-bundle`: the test
trusted root it makes, a good bundle of each format (a message signature and a DSSE
in-toto statement over an image digest) that verifies with its identity, issuer and CI
extensions, and each --fault refused for the one check it breaks, in the words of
policy/sigstore_bundle.cpp's verify_keyless; an identity or subject digest not the
signer's is refused too. cosign's legacy annotations are checked for their shape, their
certificates with `openssl x509`, and their signed entry timestamp and signature with
`openssl dgst` (nothing in pullgate reads that format yet). Offline."""
import base64
import hashlib
import json
import os
import subprocess
import unittest

import harness as h

IDENTITY = "https://github.com/octo/app/.github/workflows/release.yml@refs/tags/v1.0.0"
ISSUER = "https://token.actions.githubusercontent.com"
# --ext NAME=VALUE, and the label `pullgate verify-bundle` prints it under.
EXTENSIONS = {
    "source_repository_uri": ("https://github.com/octo/app", "source repository: "),
    "source_repository_ref": ("refs/tags/v1.0.0", "source ref: "),
    "build_signer_uri": ("https://github.com/octo/app/.github/workflows/release.yml@refs/tags/v1.0.0",
                         "build signer: "),
    "build_trigger": ("push", "build trigger: "),
    "build_config_uri": ("https://github.com/octo/app/.github/workflows/release.yml@refs/tags/v1.0.0",
                         "build config: "),
    "runner_environment": ("github-hosted", "runner: "),
}
IMAGE = "sha256:" + hashlib.sha256(b"the image manifest").hexdigest()
OTHER_IMAGE = "sha256:" + hashlib.sha256(b"another image manifest").hexdigest()

# Each fault, and the words of the refusal per format (bundle-message, bundle-dsse).
FAULTS = {
    "untrusted-chain": ("signing certificate: certificate does not chain to a certificate authority of the "
                        "trusted root",) * 2,
    "expired-at-signing": ("signing certificate: certificate had expired at the signing time",) * 2,
    "set-other-body": ("signed entry timestamp: signed entry timestamp does not verify with the key of log "
                       "rekor.forge.test",) * 2,
    "bad-inclusion-proof": ("inclusion proof: inclusion proof of entry 1 leads to root",) * 2,
    "bad-checkpoint": ("checkpoint: checkpoint signature of log rekor.forge.test",) * 2,
    "no-sct": ("signing certificate's SCT: certificate has no embedded SCT",) * 2,
    "body-mismatch": ("log entry's artifact digest is sha256:", "log entry's payload hash is sha256:"),
    "bad-signature": ("signature over the artifact does not verify with the signing certificate's key",
                      "DSSE envelope's signature does not verify with the signing certificate's key"),
}


def forge_bin():
    return os.environ.get("SIGSTORE_FORGE", "")


class SigstoreForge(h.VerifyCommandAssertions, unittest.TestCase):
    command = "verify-bundle"

    @classmethod
    def setUpClass(cls):
        if not os.access(h.pullgate_bin(), os.X_OK):
            raise RuntimeError("PULLGATE_BIN %r is not an executable" % h.pullgate_bin())
        if not forge_bin() or not os.access(forge_bin(), os.X_OK):
            raise RuntimeError("SIGSTORE_FORGE %r is not an executable: set it to the build's tests/sigstore_forge "
                               "(ctest sets it)" % forge_bin())
        cls.work = h.Workdir()
        cls.addClassCleanup(cls.work.close)
        cls.trust = os.path.join(cls.work.path, "trust")
        r = subprocess.run([forge_bin(), "init", cls.trust], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("sigstore_forge init failed: %r" % r.stderr)
        cls.root = os.path.join(cls.trust, "trusted_root.json")
        cls.payload = os.path.join(cls.work.path, "payload.json")
        with open(cls.payload, "wb") as f:
            f.write(b'{"critical":{"image":{"docker-manifest-digest":"%s"}}}' % IMAGE.encode())
        cls.count = 0

    def out_path(self, suffix):
        type(self).count += 1
        return os.path.join(self.work.path, "out%d.%s" % (self.count, suffix))

    def forge(self, *args):
        return subprocess.run([forge_bin(), *args], capture_output=True, text=True, timeout=60)

    def sign(self, fmt, *extra, identity=IDENTITY):
        out = self.out_path("json")
        args = ["sign", self.trust, "--identity", identity, "--issuer", ISSUER, "--format", fmt, "--out", out]
        if fmt == "bundle-dsse":
            args += ["--subject-digest", IMAGE]
        else:
            args += ["--payload", self.payload]
        r = self.forge(*args, *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        return out

    def verify(self, bundle, fmt, identity=IDENTITY, digest=IMAGE):
        what = ["--digest", digest] if fmt == "bundle-dsse" else ["--artifact", self.payload]
        return subprocess.run([h.pullgate_bin(), "verify-bundle", "--bundle", bundle, *what, "--trusted-root",
                               self.root, "--identity", identity, "--issuer", ISSUER],
                              capture_output=True, text=True, timeout=60)

    def test_init_writes_a_trusted_root_and_the_keys(self):
        with open(self.root) as f:
            root = json.load(f)
        self.assertEqual(root["mediaType"], "application/vnd.dev.sigstore.trustedroot+json;version=0.1")
        self.assertEqual(len(root["certificateAuthorities"][0]["certChain"]["certificates"]), 2)
        self.assertEqual(root["tlogs"][0]["baseUrl"], "https://rekor.forge.test")
        for entry in root["tlogs"] + root["ctlogs"] + root["certificateAuthorities"]:
            self.assertEqual(entry.get("publicKey", entry)["validFor"]["start"], "2020-01-01T00:00:00Z")
        for log in root["tlogs"] + root["ctlogs"]:
            spki = base64.b64decode(log["publicKey"]["rawBytes"])
            self.assertEqual(base64.b64decode(log["logId"]["keyId"]), hashlib.sha256(spki).digest())
        for name in ("root.pem", "intermediate.pem", "intermediate.key.pem", "rekor.key.pem", "ctlog.key.pem"):
            self.assertTrue(os.path.isfile(os.path.join(self.trust, name)), name)

    def test_good_bundles_verify_with_identity_issuer_and_extensions(self):
        ext = []
        for name, (value, _) in EXTENSIONS.items():
            ext += ["--ext", "%s=%s" % (name, value)]
        for fmt in ("bundle-message", "bundle-dsse"):
            with self.subTest(fmt=fmt):
                bundle = self.sign(fmt, *ext)
                r = self.verify(bundle, fmt)
                self.assertEqual(r.returncode, 0, "stdout %r stderr %r" % (r.stdout, r.stderr))
                self.assertIn("identity: %s (URI)\n" % IDENTITY, r.stdout)
                self.assertIn("issuer: %s\n" % ISSUER, r.stdout)
                for value, label in EXTENSIONS.values():
                    self.assertIn("\n%s%s\n" % (label, value), r.stdout)
                self.assertRegex(r.stdout, r"\nlog entry: \d+ in https://rekor.forge.test\n")
                with open(bundle) as f:
                    document = json.load(f)
                self.assertEqual(document["mediaType"], "application/vnd.dev.sigstore.bundle.v0.3+json")
                entry = document["verificationMaterial"]["tlogEntries"][0]
                self.assertEqual(entry["kindVersion"]["kind"], "dsse" if fmt == "bundle-dsse" else "hashedrekord")
                self.assertTrue(entry["inclusionProof"]["checkpoint"]["envelope"].startswith(
                    "rekor.forge.test - "))

    def test_dsse_statement_names_the_image(self):
        with open(self.sign("bundle-dsse")) as f:
            envelope = json.load(f)["dsseEnvelope"]
        self.assertEqual(envelope["payloadType"], "application/vnd.in-toto+json")
        statement = json.loads(base64.b64decode(envelope["payload"]))
        self.assertEqual(statement["_type"], "https://in-toto.io/Statement/v1")
        self.assertEqual(statement["subject"], [{"name": "image", "digest": {"sha256": IMAGE[len("sha256:"):]}}])
        self.assertEqual(statement["predicateType"], "https://sigstore.dev/cosign/sign/v1")
        self.assertEqual(statement["predicate"], {})

    def test_an_email_identity_and_a_past_signing_time_verify(self):
        # Signed in 2024: long expired now, valid at the time the log vouches for.
        email = "dev@octo.example"
        bundle = self.sign("bundle-message", "--time", "1709294400", identity=email)
        r = self.verify(bundle, "bundle-message", identity=email)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("identity: %s (email)\n" % email, r.stdout)
        self.assertIn("signed at: 2024-03-01T12:01:00Z", r.stdout)

    def test_each_fault_is_refused_by_its_check(self):
        for fault, words in FAULTS.items():
            for fmt, expected in zip(("bundle-message", "bundle-dsse"), words):
                with self.subTest(fault=fault, fmt=fmt):
                    self.assert_refused(self.verify(self.sign(fmt, "--fault", fault), fmt), expected)

    def test_another_identity_is_refused(self):
        for fmt in ("bundle-message", "bundle-dsse"):
            with self.subTest(fmt=fmt):
                r = self.verify(self.sign(fmt), fmt, identity="https://github.com/other/app")
                self.assert_refused(r, 'signed by "%s", not "https://github.com/other/app"' % IDENTITY)

    def test_another_image_is_refused(self):
        r = self.verify(self.sign("bundle-dsse"), "bundle-dsse", digest=OTHER_IMAGE)
        self.assert_refused(r, "in-toto statement names no subject of " + OTHER_IMAGE)

    def openssl(self, *args, data=None):
        r = subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def write(self, name, data):
        path = os.path.join(self.work.path, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def rekor_public_key(self):
        with open(self.root) as f:
            spki = base64.b64decode(json.load(f)["tlogs"][0]["publicKey"]["rawBytes"])
        return self.write("rekor.pub.pem", self.openssl("pkey", "-pubin", "-inform", "DER", data=spki))

    def verifies(self, public_key, signature, message):
        """`openssl dgst -sha256 -verify`: whether the DER ECDSA signature verifies."""
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", public_key, "-signature",
                            self.write("sig.bin", signature), self.write("message.bin", message)],
                           capture_output=True, timeout=60)
        return r.returncode == 0

    def legacy(self, *extra):
        with open(self.sign("cosign-legacy", *extra)) as f:
            return json.load(f)

    def set_payload(self, rekor_bundle):
        payload = rekor_bundle["Payload"]
        return json.dumps({k: payload[k] for k in ("body", "integratedTime", "logID", "logIndex")},
                          sort_keys=True, separators=(",", ":")).encode()

    def test_cosign_legacy_annotations_have_cosigns_shapes(self):
        annotations = self.legacy()
        self.assertEqual(sorted(annotations), ["dev.cosignproject.cosign/signature", "dev.sigstore.cosign/bundle",
                                               "dev.sigstore.cosign/certificate", "dev.sigstore.cosign/chain"])
        leaf = annotations["dev.sigstore.cosign/certificate"].encode()
        san = self.openssl("x509", "-noout", "-ext", "subjectAltName", data=leaf).decode()
        self.assertIn("URI:" + IDENTITY, san)
        chain = annotations["dev.sigstore.cosign/chain"]
        pems = ["-----BEGIN CERTIFICATE-----" + part for part in chain.split("-----BEGIN CERTIFICATE-----")[1:]]
        self.assertEqual(len(pems), 2)
        subjects = [self.openssl("x509", "-noout", "-subject", data=pem.encode()).decode() for pem in pems]
        self.assertIn("forge fulcio intermediate", subjects[0])
        self.assertIn("forge fulcio root", subjects[1])
        with open(os.path.join(self.trust, "root.pem"), "rb") as f:
            self.assertEqual(pems[1].encode(), f.read())

        # The bundle annotation is a JSON string, cosign's key order, no inclusion proof.
        text = annotations["dev.sigstore.cosign/bundle"]
        self.assertIsInstance(text, str)
        self.assertTrue(text.startswith('{"SignedEntryTimestamp":"'), text[:40])
        rekor_bundle = json.loads(text)
        self.assertEqual(list(rekor_bundle["Payload"]), ["body", "integratedTime", "logIndex", "logID"])
        body = json.loads(base64.b64decode(rekor_bundle["Payload"]["body"]))
        self.assertEqual((body["kind"], body["apiVersion"]), ("hashedrekord", "0.0.1"))
        signature = annotations["dev.cosignproject.cosign/signature"]
        self.assertEqual(body["spec"]["signature"]["content"], signature)
        self.assertEqual(base64.b64decode(body["spec"]["signature"]["publicKey"]["content"]), leaf)
        with open(self.payload, "rb") as f:
            payload = f.read()
        self.assertEqual(body["spec"]["data"]["hash"],
                         {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()})
        rekor = self.rekor_public_key()
        with open(rekor) as f:
            spki = self.openssl("pkey", "-pubin", "-outform", "DER", data=f.read().encode())
        self.assertEqual(rekor_bundle["Payload"]["logID"], hashlib.sha256(spki).hexdigest())

        # The SET over the canonical payload verifies with the Rekor key; the signature
        # over the payload with the leaf's.
        self.assertTrue(self.verifies(rekor, base64.b64decode(rekor_bundle["SignedEntryTimestamp"]),
                                      self.set_payload(rekor_bundle)))
        leaf_key = self.write("leaf.pub.pem", self.openssl("x509", "-noout", "-pubkey", data=leaf))
        self.assertTrue(self.verifies(leaf_key, base64.b64decode(signature), payload))

    def test_cosign_legacy_faults_break_their_part(self):
        rekor = self.rekor_public_key()
        broken = self.legacy("--fault", "set-other-body")
        rekor_bundle = json.loads(broken["dev.sigstore.cosign/bundle"])
        self.assertFalse(self.verifies(rekor, base64.b64decode(rekor_bundle["SignedEntryTimestamp"]),
                                       self.set_payload(rekor_bundle)))
        broken = self.legacy("--fault", "bad-signature")
        leaf_key = self.write("leaf.pub.pem", self.openssl(
            "x509", "-noout", "-pubkey", data=broken["dev.sigstore.cosign/certificate"].encode()))
        with open(self.payload, "rb") as f:
            payload = f.read()
        self.assertFalse(self.verifies(leaf_key, base64.b64decode(broken["dev.cosignproject.cosign/signature"]),
                                       payload))
        rekor_bundle = json.loads(broken["dev.sigstore.cosign/bundle"])
        self.assertTrue(self.verifies(rekor, base64.b64decode(rekor_bundle["SignedEntryTimestamp"]),
                                      self.set_payload(rekor_bundle)))

    def test_mistakes_exit_2_with_one_line(self):
        cases = [
            (["init", self.trust], "is not an empty directory"),
            (["sign", self.trust, "--identity", IDENTITY, "--issuer", ISSUER, "--format", "bundle-message",
              "--payload", self.payload, "--out", self.out_path("json"), "--fault", "no-such-fault"],
             "--fault no-such-fault is not a fault"),
            (["sign", self.trust, "--identity", IDENTITY, "--issuer", ISSUER, "--format", "cosign-legacy",
              "--payload", self.payload, "--out", self.out_path("json"), "--fault", "bad-checkpoint"],
             "does not apply to it"),
            (["sign", self.trust, "--identity", IDENTITY, "--issuer", ISSUER, "--format", "bundle-dsse",
              "--out", self.out_path("json")], "needs --subject-digest"),
            (["sign", self.work.path, "--identity", IDENTITY, "--issuer", ISSUER, "--format", "bundle-message",
              "--payload", self.payload, "--out", self.out_path("json")], "cannot read"),
        ]
        for args, words in cases:
            with self.subTest(args=args[:1] + args[-2:]):
                r = self.forge(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                err = h.one_line(self, r.stderr)
                self.assertTrue(err.startswith("sigstore_forge: "), err)
                self.assertIn(words, err)


if __name__ == "__main__":
    unittest.main()
