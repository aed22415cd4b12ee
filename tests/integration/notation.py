"""Notary Project (Notation) signatures for pullgate's integration tests, made with the
openssl CLI in a temp dir (no Python crypto package), in the bytes notation-go writes:

- CertificateAuthority: a test root (and optionally an intermediate) with subjects
  "C=US, ST=WA, O=pullgate-test, CN=...", CA certificates as signature-specification.md
  wants them (critical basicConstraints CA:TRUE, critical keyUsage keyCertSign), and
  the code-signing leaves it issues (critical keyUsage digitalSignature,
  extendedKeyUsage codeSigning, basicConstraints CA:FALSE), with chosen validity dates
  (`openssl ca`), so an expired leaf is a real one.
- Signer: a leaf's key and chain; `jws()` makes a flattened JWS envelope (protected
  header alg/crit/cty/signingScheme/signingTime, payload {"targetArtifact": {...}},
  header {x5c, io.cncf.notary.signingAgent}). The key decides the algorithm, as the
  specification does: RSA 2048 -> PS256, RSA 3072 -> PS384, P-256 -> ES256 (raw r||s).
  The faults: a payload changed after signing (`tamper`), a payload naming another
  digest (`names`); an untrusted chain and an expired leaf come from the CA side.
- notation_signature / push_notation_signature: the signature artifact as notation
  pushes it (an OCI image manifest, artifactType application/vnd.cncf.notary.signature,
  the empty config, one application/jose+json layer, subject = the image, the
  io.cncf.notary.x509chain.thumbprint#S256 annotation) and the referrers fallback tag
  sha256-<hex> that lists it (cosign.push_referrers).
"""
import base64
import datetime
import hashlib
import json
import os
import tempfile

import cosign as c
import harness as h

AT_NOTATION = "application/vnd.cncf.notary.signature"
MT_JWS = "application/jose+json"
MT_COSE = "application/cose"
PAYLOAD_CONTENT_TYPE = "application/vnd.cncf.notary.payload.v1+json"
SIGNING_SCHEME = "io.cncf.notary.signingScheme"
SIGNING_TIME = "io.cncf.notary.signingTime"
SIGNING_AGENT = "io.cncf.notary.signingAgent"
THUMBPRINT_ANNOTATION = "io.cncf.notary.x509chain.thumbprint#S256"
CREATED_ANNOTATION = "org.opencontainers.image.created"
AGENT = "notation-go/1.2.0 pullgate-tests"
ORGANIZATION = "pullgate-test"

# `openssl genpkey` options and the JWS algorithm each key requires, with the hash.
_KEYS = {
    "rsa2048": (["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], "PS256", "-sha256"),
    "rsa3072": (["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"], "PS384", "-sha384"),
    "p256": (["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], "ES256", "-sha256"),
}

# One config for `openssl req` (the root) and `openssl ca` (what a CA issues): the
# extensions the Notary Project requires of each kind of certificate, and a CA
# database that takes any subject, as given (-preserveDN).
_CONFIG = """\
[req]
distinguished_name = dn
[dn]
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[intermediate]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ca]
default_ca = test_ca
[test_ca]
database = {dir}/index.txt
new_certs_dir = {dir}/issued
serial = {dir}/serial
default_md = sha256
policy = any_subject
unique_subject = no
email_in_dn = no
[any_subject]
countryName = optional
stateOrProvinceName = optional
localityName = optional
organizationName = optional
commonName = optional
"""


def _openssl(*args):
    return c._openssl(*args)


def subject(common_name, organization=ORGANIZATION):
    """The subject text pullgate prints and a trusted identity names."""
    return "C=US, ST=WA, O=%s, CN=%s" % (organization, common_name)


def _subj_option(common_name, organization):
    return "/C=US/ST=WA/O=%s/CN=%s" % (organization, common_name)


def _openssl_time(when):
    return when.astimezone(datetime.timezone.utc).strftime("%Y%m%d%H%M%SZ")


def rfc3339(when):
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def pem_of_der(der):
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def base64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _Key:
    """A private key in a PEM file, of one of _KEYS' kinds."""

    def __init__(self, directory, name, kind):
        if kind not in _KEYS:
            raise ValueError("unknown key kind %r (one of %s)" % (kind, ", ".join(sorted(_KEYS))))
        self.kind = kind
        self.path = os.path.join(directory, name + ".key")
        _openssl("genpkey", *_KEYS[kind][0], "-out", self.path)


class CertificateAuthority:
    """A test CA in its own temp dir under `directory`: a self-signed root and, with
    intermediate=True, an intermediate that issues the leaves. The root is valid from
    a day ago for ten years, the intermediate likewise; certificates are read back as
    DER (root_der, intermediate_der)."""

    def __init__(self, directory, name, intermediate=False, key="p256", organization=ORGANIZATION):
        self.name = name
        self.organization = organization
        self.dir = tempfile.mkdtemp(prefix="notation-ca-%s-" % name, dir=directory)
        os.mkdir(os.path.join(self.dir, "issued"))
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("1000\n")
        self.config = os.path.join(self.dir, "openssl.cnf")
        with open(self.config, "w") as f:
            f.write(_CONFIG.format(dir=self.dir))
        self._serial = 0

        root_key = _Key(self.dir, "root", key)
        self.root_pem_path = os.path.join(self.dir, "root.pem")
        _openssl("req", "-x509", "-new", "-config", self.config, "-extensions", "root", "-key", root_key.path,
                 "-subj", _subj_option(name + " root", organization), "-days", "3650", "-sha256",
                 "-set_serial", "1", "-out", self.root_pem_path)
        self.root_der = self._der(self.root_pem_path)
        self.issuer_pem_path, self.issuer_key = self.root_pem_path, root_key
        self.intermediate_der = None
        if intermediate:
            now = datetime.datetime.now(datetime.timezone.utc)
            path, key_of = self._issue(name + " signing", key, "intermediate", now - datetime.timedelta(days=1),
                                       now + datetime.timedelta(days=3650))
            self.intermediate_der = self._der(path)
            self.issuer_pem_path, self.issuer_key = path, key_of

    @staticmethod
    def _der(pem_path):
        return _openssl("x509", "-in", pem_path, "-outform", "DER")

    def root_pem(self):
        """The trust store: the root, in PEM."""
        return pem_of_der(self.root_der)

    def write_trust_store(self, path):
        with open(path, "w") as f:
            f.write(self.root_pem())
        return path

    def _issue(self, common_name, kind, extensions, not_before, not_after, organization=None):
        """Issues a certificate by the current issuer; returns (PEM path, _Key)."""
        self._serial += 1
        base = "%s-%d" % (extensions, self._serial)
        key = _Key(self.dir, base, kind)
        csr = os.path.join(self.dir, base + ".csr")
        out = os.path.join(self.dir, base + ".pem")
        _openssl("req", "-new", "-config", self.config, "-key", key.path,
                 "-subj", _subj_option(common_name, organization or self.organization), "-out", csr)
        _openssl("ca", "-batch", "-config", self.config, "-extensions", extensions, "-cert", self.issuer_pem_path,
                 "-keyfile", self.issuer_key.path, "-in", csr, "-out", out, "-notext", "-preserveDN",
                 "-startdate", _openssl_time(not_before), "-enddate", _openssl_time(not_after))
        return out, key

    def issue_signer(self, common_name, key="p256", not_before=None, not_after=None, organization=None):
        """A code-signing leaf and its key, valid from not_before (default: a day ago)
        to not_after (default: a year on); an expired leaf is one whose not_after has
        passed."""
        now = datetime.datetime.now(datetime.timezone.utc)
        not_before = not_before or now - datetime.timedelta(days=1)
        not_after = not_after or now + datetime.timedelta(days=365)
        path, leaf_key = self._issue(common_name, key, "leaf", not_before, not_after, organization)
        chain = [self._der(path)]
        if self.intermediate_der is not None:
            chain.append(self.intermediate_der)
        chain.append(self.root_der)
        return Signer(leaf_key, chain, subject(common_name, organization or self.organization))


def _ecdsa_raw(der, size):
    """An ECDSA-Sig-Value (DER SEQUENCE of two INTEGERs) as r || s, each `size` bytes."""
    def read(data, at, tag):
        if data[at] != tag:
            raise ValueError("unexpected DER tag %#x" % data[at])
        length = data[at + 1]
        at += 2
        if length & 0x80:
            count = length & 0x7f
            length = int.from_bytes(data[at:at + count], "big")
            at += count
        return data[at:at + length], at + length

    body, _ = read(der, 0, 0x30)
    r, at = read(body, 0, 0x02)
    s, _ = read(body, at, 0x02)
    return int.from_bytes(r, "big").to_bytes(size, "big") + int.from_bytes(s, "big").to_bytes(size, "big")


def target_artifact(image):
    """The payload's targetArtifact for a harness Image: notation's descriptor of it."""
    return {"mediaType": image.manifest_type, "digest": image.digest, "size": len(image.manifest)}


class Envelope:
    """A JWS envelope made by Signer.jws: its bytes and what went into them."""

    def __init__(self, data, protected, payload, signature, signer):
        self.data = data
        self.protected = protected
        self.payload = payload
        self.signature = signature
        self.signer = signer


class Signer:
    """A code-signing leaf's key and its chain (DER, leaf first, ending with the root)."""

    def __init__(self, key, chain, subject_text):
        self.key = key
        self.chain = chain
        self.subject = subject_text
        self.alg = _KEYS[key.kind][1]

    def thumbprints(self):
        """sha256 hex of each certificate of the chain, leaf first: the annotation's list."""
        return [hashlib.sha256(der).hexdigest() for der in self.chain]

    def _sign(self, message):
        fd, path = tempfile.mkstemp(prefix="signing-input-", dir=os.path.dirname(self.key.path))
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(message)
            _, alg, digest_option = _KEYS[self.key.kind]
            if alg.startswith("PS"):
                return _openssl("dgst", digest_option, "-sign", self.key.path, "-sigopt", "rsa_padding_mode:pss",
                                "-sigopt", "rsa_pss_saltlen:digest", path)
            return _ecdsa_raw(_openssl("dgst", digest_option, "-sign", self.key.path, path), 32)
        finally:
            os.unlink(path)

    def jws(self, target, signing_time=None, names=None, tamper=False, agent=AGENT):
        """A flattened JWS envelope over `target` (a targetArtifact dict, see
        target_artifact). names: the digest the payload names instead of the target's.
        tamper: the payload's size is changed after signing, so the signature no
        longer covers it."""
        signing_time = signing_time or datetime.datetime.now(datetime.timezone.utc)
        artifact = dict(target)
        if names:
            artifact["digest"] = names
        payload = json.dumps({"targetArtifact": artifact}, separators=(",", ":")).encode()
        protected = json.dumps({"alg": self.alg, "crit": [SIGNING_SCHEME], "cty": PAYLOAD_CONTENT_TYPE,
                                SIGNING_SCHEME: "notary.x509", SIGNING_TIME: rfc3339(signing_time)},
                               separators=(",", ":")).encode()
        signature = self._sign((base64url(protected) + "." + base64url(payload)).encode())
        if tamper:
            artifact["size"] = artifact["size"] + 1
            payload = json.dumps({"targetArtifact": artifact}, separators=(",", ":")).encode()
        doc = {"payload": base64url(payload), "protected": base64url(protected),
               "header": {"x5c": [base64.b64encode(der).decode() for der in self.chain], SIGNING_AGENT: agent},
               "signature": base64url(signature)}
        return Envelope(json.dumps(doc, separators=(",", ":")).encode(), protected, payload, signature, self)


# --------------------------------------------------------------------------------------
# The signature artifact in a registry


def notation_signature(image, envelope, created=None):
    """The signature artifact notation pushes for `image` with `envelope` (a JWS
    Envelope); push it with cosign.push_referrers (by digest, and the fallback tag)."""
    created = created or datetime.datetime.now(datetime.timezone.utc)
    annotations = {THUMBPRINT_ANNOTATION: json.dumps(envelope.signer.thumbprints(), separators=(",", ":")),
                   CREATED_ANNOTATION: rfc3339(created)}
    layer = c._descriptor_of(MT_JWS, envelope.data)
    manifest = c._manifest(c.MT_OCI_EMPTY, c.EMPTY_CONFIG, [layer], artifact_type=AT_NOTATION,
                           subject=c.subject_of(image), annotations=annotations)
    return c.Artifact(image.repo, manifest, h.MT_OCI_MANIFEST, AT_NOTATION, [c.EMPTY_CONFIG, envelope.data],
                      envelope.payload, envelope.signature, annotations=annotations)


def push_notation_signature(registry, image, envelope, others=()):
    """Pushes image's Notation signature and the referrers fallback tag sha256-<hex>
    listing it (and `others`, artifacts of the same image). Returns the artifact."""
    artifact = notation_signature(image, envelope)
    c.push_referrers(registry, image, [artifact] + list(others))
    return artifact
