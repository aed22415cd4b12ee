"""`pullgate verify-bundle` over the Sigstore conformance cases of tests/fixtures/sigstore:
each case the unit test (tests/unit/policy_sigstore_bundle_test.cpp) says passes exits 0
and prints its signer (an identity, or with --key the key); each `_fail` case exits 1
with one line naming the check; bad arguments exit 2 with one line. Offline: it reads
only the files it is given."""
import hashlib
import os
import subprocess
import unittest

import harness as h

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "sigstore")

# The suite's identity and issuer where a case names none (the fixtures' README).
BEACON = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/"
          "extremely-dangerous-oidc-beacon.yml@refs/heads/main")
GITHUB_ACTIONS = "https://token.actions.githubusercontent.com"

# The lists of the unit test, with the same words: files kept once where cases share
# them byte for byte, and every case with the words of its reason (empty: it passes).
SHARED_FILES = {
    'intoto-expired-certificate_fail/trusted_root.json': 'intoto-with-custom-trust-root/trusted_root.json',
    'intoto-log-entry-mismatch_fail/artifact': 'intoto-expired-certificate_fail/artifact',
    'intoto-log-entry-mismatch_fail/trusted_root.json': 'intoto-with-custom-trust-root/trusted_root.json',
    'intoto-missing-inclusion-proof_fail/artifact': 'intoto-expired-certificate_fail/artifact',
    'intoto-missing-inclusion-proof_fail/trusted_root.json': 'intoto-with-custom-trust-root/trusted_root.json',
    'intoto-set-outside-signing-cert-validity_fail/artifact': 'intoto-expired-certificate_fail/artifact',
    'intoto-set-outside-signing-cert-validity_fail/trusted_root.json': 'intoto-with-custom-trust-root/trusted_root.json',
    'intoto-tsa-timestamp-outside-cert-validity_fail/artifact': 'intoto-expired-certificate_fail/artifact',
    'intoto-tsa-timestamp-outside-cert-validity_fail/trusted_root.json': 'intoto-with-custom-trust-root/trusted_root.json',
    'intoto-with-custom-trust-root/artifact': 'intoto-expired-certificate_fail/artifact',
    'managed-key-happy-path/key.pub': 'managed-key-and-trusted-root/key.pub',
    'managed-key-no-key_fail/bundle.sigstore.json': 'managed-key-happy-path/bundle.sigstore.json',
    'managed-key-wrong-key_fail/bundle.sigstore.json': 'managed-key-happy-path/bundle.sigstore.json',
    'rekor2-checkpoint-cosigned/trusted_root.json': 'rekor2-happy-path/trusted_root.json',
    'rekor2-checkpoint-missing-log-signature_fail/trusted_root.json': 'rekor2-happy-path/trusted_root.json',
    'rekor2-checkpoint-missing-origin_fail/trusted_root.json': 'rekor2-happy-path/trusted_root.json',
    'rekor2-checkpoint-missing-root-hash_fail/trusted_root.json': 'rekor2-happy-path/trusted_root.json',
    'rekor2-checkpoint-missing-size_fail/trusted_root.json': 'rekor2-happy-path/trusted_root.json',
    'rekor2-checkpoint-multiple-cosigs/trusted_root.json': 'rekor2-happy-path/trusted_root.json',
    'rekor2-checkpoint-no-matching-signature_fail/trusted_root.json': 'rekor2-happy-path/trusted_root.json',
    'rekor2-checkpoint-origin-not-first/trusted_root.json': 'rekor2-happy-path/trusted_root.json',
    'rekor2-checkpoint-two-sigs-cosigned/trusted_root.json': 'rekor2-happy-path/trusted_root.json',
    'rekor2-checkpoint-two-sigs-from-origin/trusted_root.json': 'rekor2-happy-path/trusted_root.json',
    'rekor2-dsse-invalid-sig_fail/trusted_root.json': 'rekor2-dsse-happy-path/trusted_root.json',
    'rekor2-dsse-mismatch-envelope_fail/trusted_root.json': 'rekor2-dsse-happy-path/trusted_root.json',
    'rekor2-dsse-mismatch-sig_fail/trusted_root.json': 'rekor2-dsse-happy-path/trusted_root.json',
    'rekor2-no-inclusion-proof_fail/trusted_root.json': 'rekor2-happy-path/trusted_root.json',
    'rekor2-no-timestamp_fail/trusted_root.json': 'rekor2-happy-path/trusted_root.json',
    'rekor2-timestamp-outside-trust-root-tsa-validity_fail/bundle.sigstore.json': 'rekor2-happy-path/bundle.sigstore.json',
    'rekor2-timestamp-payload-mismatch_fail/trusted_root.json': 'rekor2-happy-path/trusted_root.json',
    'rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail/trusted_root.json': 'rekor2-happy-path/trusted_root.json',
    'rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail/trusted_root.json': 'rekor2-happy-path/trusted_root.json',
    'rekor2-timestamp-with-embedded-cert/trusted_root.json': 'rekor2-happy-path/trusted_root.json',
    'rekor2-timestamp-with-expired-cert-chain/trusted_root.json': 'rekor2-timestamp-outside-tsa-cert-validity_fail/trusted_root.json',
    'rekor2-timestamp-with-incorrect-time_fail/trusted_root.json': 'rekor2-happy-path/trusted_root.json',
    'rekor2-timestamp-without-embedded-cert/trusted_root.json': 'rekor2-happy-path/trusted_root.json',
    'trust-root-tlog-missing-validity-start_fail/bundle.sigstore.json': 'rekor2-happy-path/bundle.sigstore.json',
    'trust-root-tlog-validity-end-inclusive/bundle.sigstore.json': 'happy-path-v0.1/bundle.sigstore.json',
    'trust-root-tsa-validity-end-inclusive/bundle.sigstore.json': 'rekor2-happy-path/bundle.sigstore.json',
    'wrong-material_fail/bundle.sigstore.json': 'happy-path-v0.1/bundle.sigstore.json',
}
CONFORMANCE = [
    ('bundle-empty-certificate-chain_fail', 'x509CertificateChain.certificates is empty'),
    ('bundle-from-wrong-instance_fail', 'no tlogs entry of the trusted root has log id'),
    ('bundle-invalid-base64-signature_fail', 'messageSignature.signature is not base64'),
    ('bundle-malformed-json_fail', 'bundle is not JSON'),
    ('bundle-negative-log-index_fail', 'logIndex is negative'),
    ('bundle-unknown-version_fail', 'is not a bundle version pullgate reads'),
    ('bundle-with-root-cert_fail', 'which a bundle must not carry'),
    ('bundle-with-sct-with-extensions', ''),
    ('checkpoint-bad-keyhint_fail', 'checkpoint has no signature of log rekor.sigstore.dev (key c0d23d6a)'),
    ('checkpoint-wrong-roothash_fail',
     "checkpoint: inclusion proof's root 75aba195e60ae18c... is not the checkpoint's"),
    ('dsse-invalid-sig_fail', "log entry holds no signature that is the envelope's"),
    ('dsse-mismatch-envelope_fail', "log entry's payload hash is sha256:d6b209ba"),
    ('dsse-mismatch-sig_fail', "log entry holds no signature that is the envelope's"),
    ('happy-path-intoto-in-dsse-v3', ''),
    ('happy-path-v0.1', ''),
    ('happy-path-v0.2', ''),
    ('happy-path-v0.3', ''),
    ('happy-path-v0.3-new-mediaType', ''),
    ('inclusion-proof-corrupted-hash_fail', 'inclusion proof: inclusion proof of entry 75408392 leads to root'),
    ('incorrect-public-key_fail', 'signed entry timestamp does not verify with the key of log rekor.sigstore.dev'),
    ('integrated-time-in-future_fail', 'signing certificate: certificate had expired at the signing time'),
    ('intoto-expired-certificate_fail', 'certificate was not yet valid at the signing time 2023-02-01T00:00:00Z'),
    ('intoto-log-entry-mismatch_fail', "log entry holds no signature that is the envelope's"),
    ('intoto-missing-inclusion-proof_fail', 'has no inclusionProof, which v0.2 and later require'),
    ('intoto-set-outside-signing-cert-validity_fail',
     'certificate had expired at the signing time 2023-02-02T00:00:00Z'),
    ('intoto-tsa-timestamp-outside-cert-validity_fail',
     'signing certificate: certificate had expired at the signing time 2023-02-02T00:00:00Z'),
    ('intoto-with-custom-trust-root', ''),
    ('invalid-checkpoint-signature_fail',
     'checkpoint signature of log rekor.sigstore.dev (key c0d23d6a) does not verify'),
    ('invalid-ct-key_fail', "signing certificate's SCT: certificate's embedded SCT does not verify: no ctlogs entry"),
    ('invalid-inclusion-proof_fail',
     "bundle's verificationMaterial.tlogEntries[0].inclusionProof.checkpoint is missing"),
    ('managed-key-and-trusted-root', ''),
    ('managed-key-happy-path', ''),
    ('managed-key-no-key_fail', 'bundle is signed with a public key, not a Fulcio certificate'),
    ('managed-key-wrong-key_fail', 'is not a readable PEM public key'),
    ('message-digest-mismatch_fail', "bundle's messageDigest is sha256:a1cfc712"),
    ('rekor2-checkpoint-cosigned', ''),
    ('rekor2-checkpoint-missing-log-signature_fail', 'log entry 735: checkpoint: checkpoint has no signature lines'),
    ('rekor2-checkpoint-missing-origin_fail', 'checkpoint has 2 lines above its signatures'),
    ('rekor2-checkpoint-missing-root-hash_fail', 'checkpoint has 2 lines above its signatures'),
    ('rekor2-checkpoint-missing-size_fail', 'checkpoint has 2 lines above its signatures'),
    ('rekor2-checkpoint-multiple-cosigs', ''),
    ('rekor2-checkpoint-no-matching-signature_fail',
     'checkpoint origin "log2025-alpha1.rekor.github.dev" is not the log\'s name'),
    ('rekor2-checkpoint-origin-not-first', ''),
    ('rekor2-checkpoint-two-sigs-cosigned', ''),
    ('rekor2-checkpoint-two-sigs-from-origin', ''),
    ('rekor2-dsse-happy-path', ''),
    ('rekor2-dsse-invalid-sig_fail', "log entry 4026478: log entry's signature is not the bundle's"),
    ('rekor2-dsse-mismatch-envelope_fail', "log entry's digest is sha256:57f2135c"),
    ('rekor2-dsse-mismatch-sig_fail', "log entry 4026478: log entry's signature is not the bundle's"),
    ('rekor2-happy-path', ''),
    ('rekor2-no-inclusion-proof_fail', 'has no inclusionProof, which v0.2 and later require'),
    ('rekor2-no-timestamp_fail',
     'a Rekor v2 entry has no time of its own, and the bundle carries no RFC 3161 timestamp'),
    ('rekor2-timestamp-outside-trust-root-tsa-validity_fail',
     "2025-06-12T12:02:20Z is outside the authority's validFor"),
    ('rekor2-timestamp-outside-tsa-cert-validity_fail',
     "TSA certificate does not chain to the authority at the timestamp's time 2025-08-07T15:38:32Z: certificate has expired"),
    ('rekor2-timestamp-payload-mismatch_fail', "RFC 3161 timestamp 0: timestamp is not over the bundle's signature"),
    ('rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail', "is not the authority's TSA certificate"),
    ('rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail',
     "timestamp is not signed by the authority's TSA certificate CN=sigstore-tsa"),
    ('rekor2-timestamp-with-embedded-cert', ''),
    ('rekor2-timestamp-with-expired-cert-chain', ''),
    ('rekor2-timestamp-with-incorrect-time_fail', 'certificate had expired at the signing time 2025-07-15T10:33:31Z'),
    ('rekor2-timestamp-without-embedded-cert', ''),
    ('set-invalid-signature_fail', 'signed entry timestamp does not verify with the key of log rekor.sigstore.dev'),
    ('signature-mismatch_fail', "log entry's signature is not the bundle's"),
    ('trust-root-tlog-missing-validity-start_fail', 'publicKey.validFor.start is missing'),
    ('trust-root-tlog-validity-end-inclusive', ''),
    ('trust-root-tsa-validity-end-inclusive', ''),
    ('wrong-hashedrekord-artifact_fail', "log entry's artifact digest is sha256:d40ec3ee"),
    ('wrong-hashedrekord-cert-and-sig_fail', "log entry's signature is not the bundle's"),
    ('wrong-hashedrekord-entry_fail', "log entry's artifact digest is sha256:9d92fa52"),
    ('wrong-material_fail', "the artifact's is sha256:1fa70528"),
]
def case_file(name, file):
    """The path of a case's file: its own, the one it shares, or None."""
    own = os.path.join(FIXTURES, name, file)
    if os.path.exists(own):
        return own
    shared = SHARED_FILES.get(name + "/" + file)
    return os.path.join(FIXTURES, shared) if shared else None


def case_text(name, file, default):
    path = case_file(name, file)
    if not path:
        return default
    with open(path) as f:
        return f.read().strip()


def run(*args, timeout=30):
    return subprocess.run([h.pullgate_bin(), "verify-bundle"] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def case_args(name, identity=True):
    """What the conformance harness passes: a case with a key.pub is verified with it
    (--key), the others keyless with their identity and issuer."""
    args = ["--bundle", case_file(name, "bundle.sigstore.json"),
            "--artifact", case_file(name, "artifact") or os.path.join(FIXTURES, "a.txt"),
            "--trusted-root", case_file(name, "trusted_root.json") or os.path.join(FIXTURES,
                                                                                  "production_trusted_root.json")]
    key = case_file(name, "key.pub")
    if key:
        return args + ["--key", key]
    if identity:
        args += ["--identity", case_text(name, "identity", BEACON), "--issuer", case_text(name, "issuer", GITHUB_ACTIONS)]
    return args


class VerifyBundle(h.VerifyCommandAssertions, unittest.TestCase):
    command = "verify-bundle"

    @classmethod
    def setUpClass(cls):
        cls.work = h.workdir_for_cli(cls)

    def assert_verified(self, r, identity):
        self.assertEqual(r.returncode, 0, "stdout %r stderr %r" % (r.stdout, r.stderr))
        self.assertIn("identity: %s (" % identity, r.stdout)
        for label in ("verified: ", "issuer: ", "signed at: ", "log entry: "):
            self.assertIn("\n" + label, "\n" + r.stdout)

    def assert_verified_with_key(self, r, key_file):
        self.assertEqual(r.returncode, 0, "stdout %r stderr %r" % (r.stdout, r.stderr))
        fingerprint = subprocess.run(["openssl", "pkey", "-pubin", "-in", key_file, "-outform", "DER"],
                                     capture_output=True, check=True).stdout
        self.assertIn("key: ecdsa-p256 sha256:%s (%s)\n" % (hashlib.sha256(fingerprint).hexdigest(), key_file),
                      r.stdout)
        self.assertNotIn("identity: ", r.stdout)
        for label in ("verified: ", "signed at: ", "log entry: "):
            self.assertIn("\n" + label, "\n" + r.stdout)

    def write(self, name, data):
        path = os.path.join(self.work.path, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    # ---------------------------------------------------------------- the corpus

    def test_every_case_is_listed_once(self):
        names = [n for n, _ in CONFORMANCE]
        self.assertEqual(len(names), 70)
        self.assertEqual(len(set(names)), 70)
        for entry in os.listdir(FIXTURES):
            if os.path.isdir(os.path.join(FIXTURES, entry)):
                self.assertIn(entry, names)

    def test_cases_pass_or_fail_as_named(self):
        passed = failed = 0
        for name, words in CONFORMANCE:
            with self.subTest(name):
                r = run(*case_args(name))
                if name.endswith("_fail"):
                    self.assert_refused(r, words)
                    failed += 1
                elif case_file(name, "key.pub"):
                    self.assertEqual(words, "")
                    self.assert_verified_with_key(r, case_file(name, "key.pub"))
                    passed += 1
                else:
                    self.assertEqual(words, "")
                    self.assert_verified(r, case_text(name, "identity", BEACON))
                    self.assertIn("issuer: %s\n" % case_text(name, "issuer", GITHUB_ACTIONS), r.stdout)
                    passed += 1
        self.assertEqual((passed, failed), (21, 49))

    def test_a_key_based_bundle_gives_its_key_times_and_log(self):
        args = case_args("managed-key-happy-path")
        r = run(*args)
        self.assert_verified_with_key(r, case_file("managed-key-happy-path", "key.pub"))
        self.assertIn("signed at: 2025-12-18T17:04:39Z (the log's integrated time", r.stdout)
        self.assertIn("timestamped at: ", r.stdout)
        self.assertIn("log entry: 771488337 in https://rekor.sigstore.dev\n", r.stdout)
        # Another valid key did not sign it; a keyless bundle is not key-based.
        other = self.write("other.pub", subprocess.run(
            ["openssl", "pkey", "-pubout"], input=subprocess.run(
                ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                capture_output=True, check=True).stdout, capture_output=True, check=True).stdout)
        args[args.index("--key") + 1] = other
        self.assert_refused(run(*args), "log entry's public key is not the given key")
        keyless = case_args("happy-path-v0.3", identity=False) + ["--key", other]
        self.assert_refused(run(*keyless), "bundle is signed with a Fulcio certificate, not a public key")

    # ---------------------------------------------------------------- what it prints

    def test_summary_gives_identity_extensions_time_and_log(self):
        r = run(*case_args("happy-path-v0.3"))
        self.assert_verified(r, BEACON)
        out = r.stdout
        self.assertIn("issuer: %s\n" % GITHUB_ACTIONS, out)
        self.assertIn("source repository: https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon\n",
                      out)
        self.assertIn("source ref: refs/heads/main\n", out)
        self.assertIn("signed at: 2024-03-19T17:26:26Z", out)
        self.assertIn("log entry: 79571823 in https://rekor.sigstore.dev\n", out)

    def test_timestamps_are_printed_with_their_authority(self):
        r = run(*case_args("rekor2-happy-path"))
        self.assert_verified(r, BEACON)
        out = r.stdout
        self.assertIn("signed at: 2025-06-12T12:02:20Z (its RFC 3161 timestamp's time; the log gives none)\n", out)
        self.assertIn("timestamped at: 2025-06-12T12:02:20Z by https://timestamp.sigstage.dev/api/v1/timestamp\n", out)
        self.assertIn("log entry: 735 in https://log2025-alpha1.rekor.sigstage.dev\n", out)
        # A Rekor v1 entry with a SET and a timestamp: the log's time, and the timestamp's.
        r = run(*case_args("intoto-with-custom-trust-root"))
        self.assert_verified(r, case_text("intoto-with-custom-trust-root", "identity", BEACON))
        self.assertIn("signed at: 2023-02-01T00:00:00Z (the log's integrated time", r.stdout)
        self.assertIn("timestamped at: 2023-02-01T00:00:00Z by http://localhost:8000\n", r.stdout)
        # Without a timestamp, no such line.
        self.assertNotIn("timestamped at:", run(*case_args("happy-path-v0.3")).stdout)

    def test_any_identity_without_identity_options(self):
        self.assert_verified(run(*case_args("happy-path-v0.2", identity=False)), BEACON)

    def test_identity_expressions_match_the_whole_name(self):
        args = case_args("happy-path-v0.1", identity=False)
        self.assert_verified(run(*args, "--identity-regexp", r"https://github\.com/sigstore-conformance/.*",
                                 "--issuer-regexp", r"https://token\.actions\.githubusercontent\.com"), BEACON)
        self.assert_refused(run(*args, "--identity-regexp", "sigstore-conformance"),
                            'not one matching "sigstore-conformance"')
        self.assert_refused(run(*args, "--identity", "someone@example.com"), 'not "someone@example.com"')
        self.assert_refused(run(*args, "--issuer", "https://accounts.google.com"), "signed by issuer")

    def test_artifact_by_digest(self):
        with open(os.path.join(FIXTURES, "a.txt"), "rb") as f:
            digest = "sha256:" + hashlib.sha256(f.read()).hexdigest()
        args = case_args("happy-path-v0.1")
        artifact = args.index("--artifact")
        del args[artifact:artifact + 2]
        self.assert_verified(run(*args, "--digest", digest), BEACON)
        self.assert_refused(run(*args, "--digest", "sha256:" + "0" * 64), "log entry's artifact digest is")

    def test_another_artifact_is_refused(self):
        args = case_args("happy-path-v0.3")
        args[args.index("--artifact") + 1] = self.write("other.txt", b"not what was signed\n")
        self.assert_refused(run(*args), "log entry's artifact digest is")

    def test_malformed_files_are_one_line(self):
        args = case_args("happy-path-v0.3")
        bundle = args.index("--bundle") + 1
        root = args.index("--trusted-root") + 1
        bad = self.write("bad.json", b"{not json")
        self.assert_refused(run(*(args[:bundle] + [bad] + args[bundle + 1:])), "bad.json: bundle is not JSON")
        r = run(*(args[:root] + [bad] + args[root + 1:]))
        self.assert_refused(r, "bad.json: trusted root: ")

    # ---------------------------------------------------------------- usage errors

    def test_usage_errors(self):
        args = case_args("happy-path-v0.3")
        def without(option):
            i = args.index(option)
            return args[:i] + args[i + 2:]
        missing = os.path.join(self.work.path, "missing.json")
        for what, argv, words in [
            ("no bundle", without("--bundle"), "needs --bundle FILE"),
            ("no trusted root", without("--trusted-root"), "needs --trusted-root FILE"),
            ("no artifact", without("--artifact"), "needs --artifact FILE or --digest"),
            ("both", args + ["--digest", "sha256:" + "0" * 64], "not both"),
            ("bad digest", without("--artifact") + ["--digest", "sha256:abc"], "is not sha256:<64 hex digits>"),
            ("md5 digest", without("--artifact") + ["--digest", "md5:" + "0" * 32], "is not sha256:<64 hex digits>"),
            ("missing bundle", without("--bundle") + ["--bundle", missing], "cannot read --bundle"),
            ("missing root", without("--trusted-root") + ["--trusted-root", missing], "cannot read --trusted-root"),
            ("missing artifact", without("--artifact") + ["--artifact", missing], "cannot read --artifact"),
            ("a directory", without("--bundle") + ["--bundle", self.work.path], "cannot read --bundle"),
            ("bad expression", without("--identity") + ["--identity-regexp", "(unclosed"],
             "--identity-regexp (unclosed is not a regular expression"),
            ("bad issuer expression", without("--issuer") + ["--issuer-regexp", "[a-"],
             "--issuer-regexp [a- is not a regular expression"),
            ("identity twice", args + ["--identity-regexp", ".*"], "--identity or --identity-regexp, not both"),
            ("issuer twice", args + ["--issuer-regexp", ".*"], "--issuer or --issuer-regexp, not both"),
            ("unknown option", args + ["--cert", "c.pem"], "unknown option --cert"),
            ("key and identity", args + ["--key", os.path.join(FIXTURES, "managed-key-and-trusted-root", "key.pub")],
             "--key verifies a key-based bundle, which has no identity: drop --identity"),
            ("missing key", case_args("happy-path-v0.3", identity=False) + ["--key", missing], "cannot read --key"),
            ("positional", args + ["extra"], "unexpected argument extra"),
            ("no value", args + ["--digest"], "--digest needs a value"),
        ]:
            with self.subTest(what):
                self.assert_usage_error(run(*argv), words)

    def test_help(self):
        self.assert_help("--trusted-root FILE")


if __name__ == "__main__":
    unittest.main(verbosity=2)
