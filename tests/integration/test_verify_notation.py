"""`pullgate verify-notation` over Notary Project signature envelopes: the four that
Notation made (tests/fixtures/notation, with the trust stores and outcome its README
documents) and envelopes tests/integration/notation.py makes with the openssl CLI
(a test CA with an intermediate; good PS256, PS384 and ES256 envelopes; a chain to an
untrusted CA, an expired leaf, a payload changed after signing, a payload naming
another digest, a signer no --identity names). Each exits 0 with its report or 1 with
one line naming the failed check; bad arguments exit 2 with one line. Then a good
envelope pushed as notation pushes it, into a real registry, is read back through the
referrers fallback tag, from the registry and through pullgate, and still verifies."""
import base64
import datetime
import json
import os
import subprocess
import unittest

import cosign as c
import harness as h
import notation as n

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "notation")
ALPINE = "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda"
ALPINE_SIGNER = "C=US, ST=WA, L=Seattle, O=Notary, CN=alpine"
TEN_MINUTE_SIGNER = "C=US, ST=WA, L=Seattle, O=Notary, CN=testTSA"
REVOCATION = "revocation not checked: pullgate fetches no CRL or OCSP response\n"
# The payload of the forged envelopes that are not pushed anywhere.
TARGET = {"mediaType": h.MT_OCI_MANIFEST, "digest": "sha256:" + "7" * 64, "size": 1234}
OTHER_DIGEST = "sha256:" + "8" * 64
SIGNED_AT = datetime.datetime(2026, 5, 1, 7, 1, 20, tzinfo=datetime.timezone.utc)


def run(*args, timeout=30):
    return subprocess.run([h.pullgate_bin(), "verify-notation"] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def fixture(name):
    return os.path.join(FIXTURES, name)


class VerifyNotation(h.VerifyCommandAssertions, unittest.TestCase):
    command = "verify-notation"

    @classmethod
    def setUpClass(cls):
        cls.work = h.workdir_for_cli(cls)
        path = cls.work.path

        # notation-go's trust stores, in PEM; the ten-minute leaf of the expired
        # envelopes is x5c[0] of the JWS one (the README: its ca store lacks it).
        cls.alpine_store = cls.write_text("alpine.pem", n.pem_of_der(cls.read_fixture("TestTimestamp.der")))
        cls.globalsign = cls.write_text("globalsign.pem", n.pem_of_der(cls.read_fixture("globalsignRoot.der")))
        expired = json.loads(cls.read_fixture("jwsExpiredWithTimestamp.sig"))
        cls.ten_minute_store = cls.write_text("testtsa.pem",
                                              n.pem_of_der(base64.b64decode(expired["header"]["x5c"][0])))

        cls.acme = n.CertificateAuthority(path, "acme", intermediate=True)
        cls.trust_store = cls.acme.write_trust_store(os.path.join(path, "acme.pem"))
        cls.stranger = n.CertificateAuthority(path, "stranger", organization="stranger")
        cls.rsa = cls.acme.issue_signer("release", key="rsa2048")
        cls.rsa3072 = cls.acme.issue_signer("release-3072", key="rsa3072")
        cls.ec = cls.acme.issue_signer("release-ec", key="p256")
        cls.outsider = cls.stranger.issue_signer("outsider", organization="stranger")
        cls.old = cls.acme.issue_signer("old", not_before=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc),
                                        not_after=datetime.datetime(2020, 2, 1, tzinfo=datetime.timezone.utc))

    @classmethod
    def read_fixture(cls, name):
        with open(fixture(name), "rb") as f:
            return f.read()

    @classmethod
    def write_text(cls, name, text):
        return cls.write(name, text.encode())

    @classmethod
    def write(cls, name, data):
        path = os.path.join(cls.work.path, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def forged(self, name, envelope):
        """Writes a forged Envelope; the arguments that verify it against acme."""
        return ["--envelope", self.write(name, envelope.data), "--digest", TARGET["digest"],
                "--trust-store", self.trust_store]

    def assert_verified(self, r, signer):
        self.assertEqual(r.returncode, 0, "stdout %r stderr %r" % (r.stdout, r.stderr))
        self.assertEqual(r.stderr, "")
        self.assertIn("\nsigner: %s\n" % signer, r.stdout)
        for label in ("verified: ", "scheme: notary.x509\n", "signed at: ", "expires: ", "target artifact: "):
            self.assertIn("\n" + label, "\n" + r.stdout)
        self.assertTrue(r.stdout.endswith(REVOCATION), r.stdout)

    # ---------------------------------------------------------------- Notation's envelopes

    def test_notations_timestamped_envelopes_verify(self):
        for name, stamped in [("jwsWithTimestamp.sig", "2024-06-18T06:29:37Z"),
                              ("coseWithTimestamp.sig", "2024-06-18T06:27:16Z")]:
            with self.subTest(name):
                r = run("--envelope", fixture(name), "--digest", ALPINE, "--trust-store", self.alpine_store,
                        "--tsa", self.globalsign)
                self.assert_verified(r, ALPINE_SIGNER)
                self.assertIn("verified: %s (level strict)\n" % fixture(name), r.stdout)
                self.assertIn("signed at: %s (its RFC 3161 countersignature's time)\n" % stamped, r.stdout)
                self.assertIn("expires: never\n", r.stdout)
                self.assertIn("target artifact: %s application/vnd.docker.distribution.manifest.v2+json (528 bytes)\n"
                              % ALPINE, r.stdout)
                self.assertIn("signing agent: Notation/1.0.0\n", r.stdout)
                self.assertNotIn("logged", r.stdout)
        # The media type given rather than guessed reads the same.
        r = run("--envelope", fixture("coseWithTimestamp.sig"), "--digest", ALPINE, "--trust-store",
                self.alpine_store, "--tsa", self.globalsign, "--media-type", "application/cose")
        self.assert_verified(r, ALPINE_SIGNER)
        r = run("--envelope", fixture("coseWithTimestamp.sig"), "--digest", ALPINE, "--trust-store",
                self.alpine_store, "--media-type", "application/jose+json")
        self.assert_refused(r, "integrity: envelope is not JSON")

    def test_notations_envelopes_by_an_expired_leaf_verify_by_their_timestamp(self):
        for name, stamped in [("jwsExpiredWithTimestamp.sig", "2024-06-18T07:21:42Z"),
                              ("coseExpiredWithTimestamp.sig", "2024-06-18T07:21:12Z")]:
            with self.subTest(name):
                args = ["--envelope", fixture(name), "--digest", ALPINE, "--trust-store", self.ten_minute_store]
                r = run(*args, "--tsa", self.globalsign)
                self.assert_verified(r, TEN_MINUTE_SIGNER)
                self.assertIn("signed at: %s (its RFC 3161 countersignature's time)\n" % stamped, r.stdout)
                r = run(*args, "--tsa", self.globalsign, "--verify-timestamp", "afterCertExpiry")
                self.assert_verified(r, TEN_MINUTE_SIGNER)
                # Without a TSA store the chain must be valid now, and is not.
                self.assert_refused(run(*args), "authentic timestamp: certificate \"%s\" (valid from "
                                                "2024-06-18T07:20:31Z to 2024-06-18T07:30:31Z) is not valid at the "
                                                "verification time" % TEN_MINUTE_SIGNER)
                # permissive and audit only log that.
                r = run(*args, "--level", "permissive")
                self.assert_verified(r, TEN_MINUTE_SIGNER)
                self.assertIn("signed at: 2024-06-18T07:2", r.stdout)
                self.assertIn("(the signer's own claim; not timestamped)\n", r.stdout)
                self.assertIn("\nlogged, not enforced: authentic timestamp: certificate \"%s\"" % TEN_MINUTE_SIGNER,
                              r.stdout)

    def test_notations_envelope_refused_for_another_digest_or_store(self):
        envelope = fixture("jwsWithTimestamp.sig")
        self.assert_refused(run("--envelope", envelope, "--digest", OTHER_DIGEST, "--trust-store", self.alpine_store,
                                "--tsa", self.globalsign),
                            "integrity: signed for %s, not %s" % (ALPINE, OTHER_DIGEST))
        self.assert_refused(run("--envelope", envelope, "--digest", ALPINE, "--trust-store", self.trust_store,
                                "--tsa", self.globalsign),
                            "authenticity: certificate chain does not lead to the trust store (ca, 1 certificate); "
                            "its root is \"%s\"" % ALPINE_SIGNER)
        # A store of the other kind does not vouch for a notary.x509 signature.
        self.assert_refused(run("--envelope", envelope, "--digest", ALPINE, "--signing-authority", self.alpine_store),
                            "authenticity: certificate chain does not lead to the trust store (ca, 0 certificates)")
        # Before the leaf's time, with no TSA store, the chain is not yet valid.
        self.assert_refused(run("--envelope", envelope, "--digest", ALPINE, "--trust-store", self.alpine_store,
                                "--time", "2020-01-01T00:00:00Z"),
                            "is not valid at the verification time 2020-01-01T00:00:00Z")

    # ---------------------------------------------------------------- forged envelopes

    def test_forged_good_envelopes_verify(self):
        for signer, alg in [(self.rsa, "PS256"), (self.rsa3072, "PS384"), (self.ec, "ES256")]:
            with self.subTest(alg):
                self.assertEqual(signer.alg, alg)
                envelope = signer.jws(TARGET, signing_time=SIGNED_AT)
                r = run(*self.forged("good-%s.sig" % alg, envelope))
                self.assert_verified(r, signer.subject)
                self.assertIn("signed at: 2026-05-01T07:01:20Z (the signer's own claim; not timestamped)\n", r.stdout)
                self.assertIn("target artifact: %s %s (1234 bytes)\n" % (TARGET["digest"], TARGET["mediaType"]),
                              r.stdout)
                self.assertIn("signing agent: %s\n" % n.AGENT, r.stdout)
                self.assertNotIn("logged", r.stdout)
        # The subject pullgate prints is one a trusted identity names.
        r = run(*self.forged("good-identity.sig", self.ec.jws(TARGET)),
                "--identity", "x509.subject: " + self.ec.subject)
        self.assert_verified(r, self.ec.subject)

    def test_forged_faults_are_refused(self):
        for name, envelope, args, words in [
            ("untrusted chain", self.outsider.jws(TARGET), [],
             "authenticity: certificate chain does not lead to the trust store (ca, 1 certificate); its root is "
             "\"C=US, ST=WA, O=stranger, CN=stranger root\""),
            ("expired leaf", self.old.jws(TARGET), [],
             "authentic timestamp: certificate \"%s\" (valid from 2020-01-01T00:00:00Z to 2020-02-01T00:00:00Z) is "
             "not valid at the verification time" % self.old.subject),
            ("tampered payload", self.rsa.jws(TARGET, tamper=True), [],
             "integrity: signature does not verify with the signing certificate's key"),
            ("tampered ECDSA payload", self.ec.jws(TARGET, tamper=True), [],
             "integrity: signature does not verify with the signing certificate's key"),
            ("another digest", self.ec.jws(TARGET, names=OTHER_DIGEST), [],
             "integrity: signed for %s, not %s" % (OTHER_DIGEST, TARGET["digest"])),
            ("identity mismatch", self.ec.jws(TARGET),
             ["--identity", "x509.subject: C=US, ST=WA, O=pullgate-test, CN=release",
              "--identity", "x509.subject: C=US, ST=WA, O=someone-else"],
             "authenticity: the signer \"%s\" is not a trusted identity (trusted: x509.subject: C=US, ST=WA, "
             "O=pullgate-test, CN=release; x509.subject: C=US, ST=WA, O=someone-else)" % self.ec.subject),
        ]:
            with self.subTest(name):
                self.assert_refused(run(*self.forged(name.replace(" ", "-") + ".sig", envelope), *args), words)

    def test_levels_log_what_they_do_not_enforce(self):
        untrusted = self.forged("untrusted-levels.sig", self.outsider.jws(TARGET))
        r = run(*untrusted, "--level", "audit")
        self.assert_verified(r, self.outsider.subject)
        self.assertIn("verified: %s (level audit)\n" % untrusted[1], r.stdout)
        self.assertIn("\nlogged, not enforced: authenticity: certificate chain does not lead to the trust store",
                      r.stdout)
        self.assert_refused(run(*untrusted, "--level", "permissive"), "authenticity: certificate chain does not lead")
        # Integrity is enforced at every level but skip, which reads nothing.
        tampered = self.forged("tampered-levels.sig", self.rsa.jws(TARGET, tamper=True))
        self.assert_refused(run(*tampered, "--level", "audit"), "integrity: signature does not verify")
        r = run(*tampered, "--level", "skip")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "skipped: %s (level skip verifies nothing)\n" % tampered[1])
        # Verified as at a time when the leaf has expired.
        later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=800)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        self.assert_refused(run(*self.forged("later.sig", self.ec.jws(TARGET)), "--time", later),
                            "is not valid at the verification time " + later)

    # ---------------------------------------------------------------- usage errors

    def test_usage_errors(self):
        args = self.forged("usage.sig", self.ec.jws(TARGET))

        def without(option):
            i = args.index(option)
            return args[:i] + args[i + 2:]
        missing = os.path.join(self.work.path, "missing.pem")
        for what, argv, words in [
            ("no envelope", without("--envelope"), "needs --envelope FILE"),
            ("no digest", without("--digest"), "needs --digest sha256:HEX"),
            ("no store", without("--trust-store"), "needs --trust-store FILE or --signing-authority FILE"),
            ("bad digest", without("--digest") + ["--digest", "sha256:abc"], "is not sha256:<64 hex digits>"),
            ("missing envelope", without("--envelope") + ["--envelope", missing], "cannot read --envelope"),
            ("a directory", without("--envelope") + ["--envelope", self.work.path], "cannot read --envelope"),
            ("missing store", without("--trust-store") + ["--trust-store", missing], "cannot read --trust-store"),
            ("missing tsa", args + ["--tsa", missing], "cannot read --tsa"),
            ("bad level", args + ["--level", "lenient"], "--level lenient is not strict, permissive, audit or skip"),
            ("bad timestamp option", args + ["--verify-timestamp", "never"],
             "--verify-timestamp never is not always or afterCertExpiry"),
            ("bad media type", args + ["--media-type", "application/json"], "--media-type application/json is not"),
            ("bad time", args + ["--time", "yesterday"], "--time yesterday is not an RFC 3339 time"),
            ("bad identity", args + ["--identity", "C=US, ST=WA, O=acme"],
             "--identity: trusted identity \"C=US, ST=WA, O=acme\": a trusted identity is \"*\" or begins with"),
            ("identity lacking ST", args + ["--identity", "x509.subject: C=US, O=acme"], "it lacks ST"),
            ("star with others", args + ["--identity", "*", "--identity", "x509.subject: C=US, ST=WA, O=a"],
             "the trusted identity \"*\" cannot stand with others"),
            ("overlapping identities", args + ["--identity", "x509.subject: C=US, ST=WA, O=a",
                                               "--identity", "x509.subject: C=US, ST=WA, O=a, CN=b"], "overlap"),
            ("unknown option", args + ["--key", "k.pub"], "unknown option --key"),
            ("positional", args + ["extra"], "unexpected argument extra"),
            ("no value", args + ["--identity"], "--identity needs a value"),
            ("level twice", args + ["--level", "strict", "--level", "audit"], "--level given twice"),
        ]:
            with self.subTest(what):
                self.assert_usage_error(run(*argv), words)

    def test_unusable_trust_stores_are_refused(self):
        args = self.forged("stores.sig", self.ec.jws(TARGET))
        i = args.index("--trust-store")
        empty = self.write_text("empty.pem", "no certificate here\n")
        self.assert_refused(run(*(args[:i + 1] + [empty] + args[i + 2:])),
                            "--trust-store %s holds no PEM certificate" % empty)
        broken = self.write_text("broken.pem", self.acme.root_pem() + "-----BEGIN CERTIFICATE-----\nAAAA\n"
                                                                      "-----END CERTIFICATE-----\n")
        self.assert_refused(run(*(args[:i + 1] + [broken] + args[i + 2:])),
                            "--trust-store %s holds a PEM block that is not a certificate" % broken)
        # Blocks of other kinds are passed over, as OpenSSL's readers do.
        with_key = self.write_text("with-key.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
                                   + self.acme.root_pem())
        self.assert_verified(run(*(args[:i + 1] + [with_key] + args[i + 2:])), self.ec.subject)
        # A bundle of several roots serves, in any order.
        bundle = self.write_text("bundle.pem", self.stranger.root_pem() + self.acme.root_pem())
        self.assert_verified(run(*(args[:i + 1] + [bundle] + args[i + 2:])), self.ec.subject)

    def test_help(self):
        self.assert_help("--trust-store FILE")


class NotationSignatureInARegistry(unittest.TestCase):
    """A forged signature pushed as notation pushes it: the fallback tag lists it with
    its artifactType and annotations, its manifest and envelope read back byte for
    byte, from the registry and through pullgate, and the envelope read back verifies
    for the image."""

    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        cls.acme = n.CertificateAuthority(cls.work.path, "acme", intermediate=True)
        cls.trust_store = cls.acme.write_trust_store(os.path.join(cls.work.path, "acme.pem"))
        cls.signer = cls.acme.issue_signer("release", key="rsa2048")
        cls.image = h.seed_oci(cls.registry, repo="notation/signed", seed="notation-signed")
        cls.envelope = cls.signer.jws(n.target_artifact(cls.image))
        cls.sbom = c.sbom_referrer(cls.image)
        cls.signature = n.push_notation_signature(cls.registry, cls.image, cls.envelope, others=[cls.sbom])
        cls.pg = h.Pullgate(cls.work.path, [h.upstream_entry(cls.registry)]).start()
        cls.addClassCleanup(cls.pg.close)

    def get(self, server, path, accept):
        status, headers, body = h.http_request(server.host, server.port, "GET", path, headers=[("Accept", accept)])
        self.assertEqual(status, 200, "%s: %r" % (path, body[:300]))
        return headers, body

    def read_back(self, server):
        """The signature found through the fallback tag of `server`: (descriptor,
        manifest document, envelope bytes)."""
        repo = self.image.repo
        _, body = self.get(server, "/v2/%s/manifests/%s" % (repo, c.fallback_tag(self.image.digest)), h.MT_OCI_INDEX)
        index = json.loads(body)
        listed = [d for d in index["manifests"] if d.get("artifactType") == n.AT_NOTATION]
        self.assertEqual(len(listed), 1, index)
        self.assertEqual({d.get("artifactType") for d in index["manifests"]}, {n.AT_NOTATION, c.MT_SPDX_JSON})
        descriptor = listed[0]
        _, manifest = self.get(server, "/v2/%s/manifests/%s" % (repo, descriptor["digest"]), h.MT_OCI_MANIFEST)
        self.assertEqual(manifest, self.signature.manifest)
        document = json.loads(manifest)
        (layer,) = document["layers"]
        _, envelope = self.get(server, "/v2/%s/blobs/%s" % (repo, layer["digest"]), "*/*")
        return descriptor, document, envelope

    def assert_as_notation_pushes_it(self, descriptor, document, envelope):
        self.assertEqual(descriptor["mediaType"], h.MT_OCI_MANIFEST)
        self.assertEqual(descriptor["annotations"][n.THUMBPRINT_ANNOTATION],
                         json.dumps(self.signer.thumbprints(), separators=(",", ":")))
        self.assertEqual(document["artifactType"], n.AT_NOTATION)
        self.assertEqual(document["config"], {"mediaType": c.MT_OCI_EMPTY, "size": 2,
                                              "digest": h.sha256_digest(b"{}")})
        self.assertEqual(document["layers"][0]["mediaType"], n.MT_JWS)
        self.assertEqual(document["subject"], {"mediaType": self.image.manifest_type, "digest": self.image.digest,
                                               "size": len(self.image.manifest)})
        thumbprints = json.loads(document["annotations"][n.THUMBPRINT_ANNOTATION])
        self.assertEqual(len(thumbprints), 3)
        self.assertEqual(envelope, self.envelope.data)

    def verify(self, envelope):
        path = os.path.join(self.work.path, "read-back.sig")
        with open(path, "wb") as f:
            f.write(envelope)
        return run("--envelope", path, "--digest", self.image.digest, "--trust-store", self.trust_store,
                   "--identity", "x509.subject: C=US, ST=WA, O=pullgate-test")

    def test_read_back_from_the_registry(self):
        descriptor, document, envelope = self.read_back(self.registry)
        self.assert_as_notation_pushes_it(descriptor, document, envelope)
        r = self.verify(envelope)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("signer: %s\n" % self.signer.subject, r.stdout)
        self.assertIn("target artifact: %s %s (%d bytes)\n" % (self.image.digest, self.image.manifest_type,
                                                               len(self.image.manifest)), r.stdout)

    def test_read_back_through_pullgate(self):
        descriptor, document, envelope = self.read_back(self.pg)
        self.assert_as_notation_pushes_it(descriptor, document, envelope)
        self.assertEqual(self.verify(envelope).returncode, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
