"""Cosign signatures, Sigstore bundles, referrers and SBOMs for pullgate's integration
tests, in the formats pullgate verifies (cosign's legacy tags, OCI 1.1 referrers):

- KeyPair: ECDSA P-256, RSA 2048 and Ed25519 keys made and used with the openssl CLI
  in a temp dir (no Python crypto package needed); the fingerprint is the sha256 hex of
  the DER public key, as bundles hint at keys.
- Artifact builders that push into a harness.Registry: cosign's legacy simple-signing
  tag `sha256-<hex>.sig`, OCI 1.1 referrer manifests (cosign signatures, Sigstore
  bundles, SPDX SBOMs), the referrers fallback-tag index `sha256-<hex>`, the legacy
  SBOM tag `sha256-<hex>.sbom`, and the bad variants (signed by another key, payload
  changed after signing, a valid signature over a payload naming another digest).
- ReferrersFront: a loopback proxy in front of a docker-registry that adds the OCI 1.1
  referrers API, which Distribution 2.8 lacks.
"""
import base64
import hashlib
import http.client
import http.server
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.parse

import harness as h

MT_SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
MT_OCI_EMPTY = "application/vnd.oci.empty.v1+json"
MT_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
MT_SPDX_JSON = "application/spdx+json"
AT_COSIGN_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT = "https://in-toto.io/Statement/v1"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
COSIGN_SIGNATURE_TYPE = "cosign container image signature"
EMPTY_CONFIG = b"{}"


def _openssl(*args, stdin=None):
    r = subprocess.run(["openssl"] + list(args), input=stdin, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr.decode("utf-8", "replace")))
    return r.stdout


def hex_of(digest):
    """The hex part of "sha256:<hex>"."""
    algorithm, _, value = digest.partition(":")
    if algorithm != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError("not a sha256 digest: %r" % digest)
    return value


def sig_tag(digest):
    return "sha256-%s.sig" % hex_of(digest)


def sbom_tag(digest):
    return "sha256-%s.sbom" % hex_of(digest)


def fallback_tag(digest):
    """The OCI 1.1 referrers fallback tag (no suffix)."""
    return "sha256-%s" % hex_of(digest)


# --------------------------------------------------------------------------------------
# Keys


class KeyPair:
    """A private key in a PEM file and its public half; algorithm is "ecdsa" (P-256),
    "rsa" (2048 bits) or "ed25519"."""

    _GENPKEY = {
        "ecdsa": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "ed25519": ["-algorithm", "ED25519"],
    }

    def __init__(self, directory, name, algorithm):
        if algorithm not in self._GENPKEY:
            raise ValueError("unknown key algorithm %r" % algorithm)
        self.name = name
        self.algorithm = algorithm
        self.dir = tempfile.mkdtemp(prefix="key-%s-" % name, dir=directory)
        self.private_path = os.path.join(self.dir, "key.pem")
        self.public_path = os.path.join(self.dir, "key.pub")
        _openssl("genpkey", *self._GENPKEY[algorithm], "-out", self.private_path)
        _openssl("pkey", "-in", self.private_path, "-pubout", "-out", self.public_path)
        with open(self.public_path) as f:
            self.public_pem = f.read()
        der = _openssl("pkey", "-pubin", "-in", self.public_path, "-outform", "DER")
        self.fingerprint = hashlib.sha256(der).hexdigest()

    def _message_file(self, message):
        fd, path = tempfile.mkstemp(prefix="msg-", dir=self.dir)
        with os.fdopen(fd, "wb") as f:
            f.write(message)
        return path

    def sign(self, message):
        """Raw signature bytes over message: ECDSA as DER over SHA-256, RSA PKCS#1 v1.5
        with SHA-256, Ed25519 pure."""
        path = self._message_file(message)
        try:
            if self.algorithm == "ed25519":
                return _openssl("pkeyutl", "-sign", "-rawin", "-inkey", self.private_path, "-in", path)
            return _openssl("dgst", "-sha256", "-sign", self.private_path, path)
        finally:
            os.unlink(path)

    def verify(self, message, signature):
        """openssl's own opinion of signature (raw bytes) over message with the public
        key: used to check the vectors themselves, independently of pullgate."""
        path = self._message_file(message)
        sig_path = self._message_file(signature)
        try:
            if self.algorithm == "ed25519":
                cmd = ["pkeyutl", "-verify", "-rawin", "-pubin", "-inkey", self.public_path,
                       "-in", path, "-sigfile", sig_path]
            else:
                cmd = ["dgst", "-sha256", "-verify", self.public_path, "-signature", sig_path, path]
            r = subprocess.run(["openssl"] + cmd, capture_output=True, timeout=60)
            return r.returncode == 0
        finally:
            os.unlink(path)
            os.unlink(sig_path)


# --------------------------------------------------------------------------------------
# Payloads


def simple_signing_payload(repo, digest):
    """cosign's simple-signing payload naming digest, in the bytes cosign writes."""
    doc = {"critical": {"identity": {"docker-reference": repo},
                        "image": {"docker-manifest-digest": digest},
                        "type": COSIGN_SIGNATURE_TYPE},
           "optional": None}
    return json.dumps(doc, separators=(",", ":")).encode()


def in_toto_statement(repo, digest, predicate_type=COSIGN_SIGN_PREDICATE, predicate=None):
    doc = {"_type": IN_TOTO_STATEMENT,
           "subject": [{"name": repo, "digest": {"sha256": hex_of(digest)}}],
           "predicateType": predicate_type,
           "predicate": predicate if predicate is not None else {}}
    return json.dumps(doc, separators=(",", ":")).encode()


def pae(payload_type, body):
    """DSSE pre-authentication encoding (lengths in ASCII decimal bytes)."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def b64(data):
    return base64.b64encode(data).decode()


class Artifact:
    """One manifest pushed (or to push) into a repository: exact bytes, digest, media
    type, artifactType, and the blobs it references."""

    def __init__(self, repo, manifest, media_type, artifact_type, blobs, payload=None, signature=None,
                 annotations=None):
        self.repo = repo
        self.manifest = manifest
        self.media_type = media_type
        self.artifact_type = artifact_type
        self.digest = h.sha256_digest(manifest)
        self.size = len(manifest)
        self.blobs = blobs           # [bytes]
        self.payload = payload       # the signed (or tampered) payload, for checking vectors
        self.signature = signature   # raw signature bytes
        self.annotations = annotations  # the manifest's, which a referrers index repeats

    def descriptor(self):
        """The entry a referrers index lists for this artifact."""
        d = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        if self.annotations:
            d["annotations"] = self.annotations
        return d

    def push(self, registry, reference=None):
        """Blobs first, then the manifest under reference (default: its digest)."""
        for blob in self.blobs:
            registry.push_blob(self.repo, blob)
        registry.push_manifest(self.repo, reference or self.digest, self.manifest, self.media_type)
        return self


def _descriptor_of(media_type, blob, annotations=None):
    d = {"mediaType": media_type, "size": len(blob), "digest": h.sha256_digest(blob)}
    if annotations:
        d["annotations"] = annotations
    return d


def _cosign_config(layer_blobs):
    """The image config cosign writes for its signature manifests."""
    doc = {"architecture": "", "config": {}, "created": "0001-01-01T00:00:00Z",
           "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
           "rootfs": {"type": "layers", "diff_ids": [h.sha256_digest(b) for b in layer_blobs]}}
    return json.dumps(doc, separators=(",", ":")).encode()


def _manifest(config_type, config, layers, artifact_type=None, subject=None, annotations=None):
    doc = {"schemaVersion": 2, "mediaType": h.MT_OCI_MANIFEST}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = _descriptor_of(config_type, config)
    doc["layers"] = layers
    if subject is not None:
        doc["subject"] = subject
    if annotations:
        doc["annotations"] = annotations
    return json.dumps(doc, separators=(",", ":")).encode()


def subject_of(image):
    """The subject descriptor of a harness Image or Index."""
    return {"mediaType": image.manifest_type, "digest": image.digest, "size": len(image.manifest)}


# --------------------------------------------------------------------------------------
# Simple signing (legacy tag and OCI 1.1 referrer)


def simple_signature(image, key, names=None, tamper=False):
    """(payload, raw signature) for image signed by key. names: the digest the payload
    names (default: the image's own). tamper: the payload is changed after signing (its
    docker-reference), so it still names the digest but no longer verifies."""
    payload = simple_signing_payload(image.repo, names or image.digest)
    signature = key.sign(payload)
    if tamper:
        payload = simple_signing_payload(image.repo + "-tampered", names or image.digest)
    return payload, signature


def _simple_signing_artifact(image, key, names, tamper, subject):
    payload, signature = simple_signature(image, key, names, tamper)
    layer = _descriptor_of(MT_SIMPLE_SIGNING, payload, {SIGNATURE_ANNOTATION: b64(signature)})
    config = _cosign_config([payload])
    manifest = _manifest(h.MT_OCI_CONFIG, config, [layer],
                         artifact_type=AT_COSIGN_SIG if subject else None,
                         subject=subject_of(image) if subject else None)
    return Artifact(image.repo, manifest, h.MT_OCI_MANIFEST, AT_COSIGN_SIG if subject else None,
                    [config, payload], payload, signature)


def push_legacy_signature(registry, image, key, names=None, tamper=False):
    """cosign's legacy signature: the manifest under tag sha256-<hex>.sig."""
    artifact = _simple_signing_artifact(image, key, names, tamper, subject=False)
    return artifact.push(registry, sig_tag(image.digest))


def push_legacy_signature_naming(registry, image, key, payload_blob):
    """A legacy signature whose simple-signing layer names payload_blob (pushed too)
    with the size of the real, small payload: a descriptor's size is the pusher's
    word, and the registry does not check it."""
    payload, signature = simple_signature(image, key)
    layer = _descriptor_of(MT_SIMPLE_SIGNING, payload, {SIGNATURE_ANNOTATION: b64(signature)})
    layer["digest"] = h.sha256_digest(payload_blob)
    config = _cosign_config([payload_blob])
    manifest = _manifest(h.MT_OCI_CONFIG, config, [layer])
    artifact = Artifact(image.repo, manifest, h.MT_OCI_MANIFEST, None, [config, payload_blob], payload, signature)
    return artifact.push(registry, sig_tag(image.digest))


def signature_referrer(image, key, names=None, tamper=False):
    """An OCI 1.1 cosign signature referrer (artifactType ...cosign.artifact.sig.v1+json,
    subject = image); push it with .push(registry) (by digest)."""
    return _simple_signing_artifact(image, key, names, tamper, subject=True)


# --------------------------------------------------------------------------------------
# Sigstore bundles (DSSE in-toto statements) as referrers


def bundle_json(statement, signature, key_fingerprint):
    doc = {"mediaType": MT_BUNDLE,
           "verificationMaterial": {"publicKey": {"hint": key_fingerprint}},
           "dsseEnvelope": {"payload": b64(statement), "payloadType": IN_TOTO_PAYLOAD_TYPE,
                            "signatures": [{"sig": b64(signature), "keyid": ""}]}}
    return json.dumps(doc, separators=(",", ":")).encode()


def bundle_referrer(image, key, names=None, tamper=False, predicate_type=COSIGN_SIGN_PREDICATE, predicate=None):
    """A Sigstore bundle referrer of image signed by key (same variants as
    simple_signature: names another digest, or the statement changed after signing)."""
    statement = in_toto_statement(image.repo, names or image.digest, predicate_type, predicate)
    signature = key.sign(pae(IN_TOTO_PAYLOAD_TYPE, statement))
    if tamper:
        statement = in_toto_statement(image.repo + "-tampered", names or image.digest, predicate_type)
    bundle = bundle_json(statement, signature, key.fingerprint)
    layer = _descriptor_of(MT_BUNDLE, bundle)
    manifest = _manifest(MT_OCI_EMPTY, EMPTY_CONFIG, [layer], artifact_type=MT_BUNDLE, subject=subject_of(image))
    return Artifact(image.repo, manifest, h.MT_OCI_MANIFEST, MT_BUNDLE, [EMPTY_CONFIG, bundle],
                    pae(IN_TOTO_PAYLOAD_TYPE, statement), signature)


# --------------------------------------------------------------------------------------
# Keyless (tests/tools/sigstore_forge makes the certificates, log entries and bundles)


def push_legacy_keyless(registry, image, payload, annotations):
    """cosign's legacy keyless signature under tag sha256-<hex>.sig: the simple-signing
    layer of payload with the annotations sigstore_forge wrote (signature,
    certificate, chain, bundle)."""
    layer = _descriptor_of(MT_SIMPLE_SIGNING, payload, annotations)
    config = _cosign_config([payload])
    manifest = _manifest(h.MT_OCI_CONFIG, config, [layer])
    artifact = Artifact(image.repo, manifest, h.MT_OCI_MANIFEST, None, [config, payload], payload, None)
    return artifact.push(registry, sig_tag(image.digest))


def keyless_bundle_referrer(image, bundle):
    """cosign 3's keyless signature: a referrer of image whose one layer is the Sigstore
    bundle (bytes sigstore_forge wrote); push with push_referrers."""
    layer = _descriptor_of(MT_BUNDLE, bundle)
    manifest = _manifest(MT_OCI_EMPTY, EMPTY_CONFIG, [layer], artifact_type=MT_BUNDLE, subject=subject_of(image))
    return Artifact(image.repo, manifest, h.MT_OCI_MANIFEST, MT_BUNDLE, [EMPTY_CONFIG, bundle])


# --------------------------------------------------------------------------------------
# SBOMs


def spdx_document(image):
    doc = {"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
           "name": image.repo, "documentNamespace": "https://pullgate.test/spdx/%s" % hex_of(image.digest),
           "creationInfo": {"created": "2024-01-01T00:00:00Z", "creators": ["Tool: pullgate-tests"]},
           "packages": [{"name": "busybox", "SPDXID": "SPDXRef-Package-busybox", "versionInfo": "1.36.1",
                         "downloadLocation": "NOASSERTION"}]}
    return json.dumps(doc, separators=(",", ":")).encode()


def push_sbom_tag(registry, image):
    """cosign's legacy attached SBOM: tag sha256-<hex>.sbom, one SPDX JSON layer."""
    sbom = spdx_document(image)
    config = _cosign_config([sbom])
    manifest = _manifest(h.MT_OCI_CONFIG, config, [_descriptor_of(MT_SPDX_JSON, sbom)])
    artifact = Artifact(image.repo, manifest, h.MT_OCI_MANIFEST, None, [config, sbom], sbom)
    return artifact.push(registry, sbom_tag(image.digest))


def sbom_referrer(image):
    """An SPDX SBOM referrer (artifactType application/spdx+json, subject = image)."""
    sbom = spdx_document(image)
    manifest = _manifest(MT_OCI_EMPTY, EMPTY_CONFIG, [_descriptor_of(MT_SPDX_JSON, sbom)],
                         artifact_type=MT_SPDX_JSON, subject=subject_of(image))
    return Artifact(image.repo, manifest, h.MT_OCI_MANIFEST, MT_SPDX_JSON, [EMPTY_CONFIG, sbom], sbom)


SPDX_PREDICATE = "https://spdx.dev/Document"
CYCLONEDX_PREDICATE = "https://cyclonedx.org/bom"
MT_DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"


def sbom_attestation_referrer(image, key):
    """An SBOM attestation as a Sigstore bundle referrer: an in-toto statement with the
    SPDX predicate type about image, signed by key."""
    return bundle_referrer(image, key, predicate_type=SPDX_PREDICATE)


def push_legacy_attestation(registry, image, key, predicate_type=CYCLONEDX_PREDICATE, predicate=None):
    """cosign's legacy attestation: tag sha256-<hex>.att, one DSSE envelope layer with
    the predicateType annotation (predicate: by default a minimal CycloneDX document)."""
    statement = in_toto_statement(image.repo, image.digest, predicate_type,
                                  predicate if predicate is not None else {"bomFormat": "CycloneDX"})
    signature = key.sign(pae(IN_TOTO_PAYLOAD_TYPE, statement))
    envelope = json.dumps({"payload": b64(statement), "payloadType": IN_TOTO_PAYLOAD_TYPE,
                           "signatures": [{"sig": b64(signature), "keyid": ""}]}, separators=(",", ":")).encode()
    config = _cosign_config([envelope])
    layer = _descriptor_of(MT_DSSE_ENVELOPE, envelope, {"predicateType": predicate_type})
    manifest = _manifest(h.MT_OCI_CONFIG, config, [layer])
    artifact = Artifact(image.repo, manifest, h.MT_OCI_MANIFEST, None, [config, envelope], envelope)
    return artifact.push(registry, "sha256-%s.att" % hex_of(image.digest))


# --------------------------------------------------------------------------------------
# Referrers index: the referrers API answer and the fallback tag


def referrers_index(artifacts):
    doc = {"schemaVersion": 2, "mediaType": h.MT_OCI_INDEX, "manifests": [a.descriptor() for a in artifacts]}
    return json.dumps(doc, separators=(",", ":")).encode()


def push_referrers(registry, image, artifacts):
    """Pushes the artifacts by digest, then the fallback-tag index sha256-<hex> listing
    them (Distribution checks that an index's manifests exist, hence the order)."""
    for a in artifacts:
        a.push(registry)
    body = referrers_index(artifacts)
    registry.push_manifest(image.repo, fallback_tag(image.digest), body, h.MT_OCI_INDEX)
    return body


# --------------------------------------------------------------------------------------
# A referrers API in front of Distribution 2.8


class ReferrersFront:
    """A loopback HTTP proxy in front of a docker-registry that answers
    GET (and HEAD) /v2/<repo>/referrers/<digest> itself and passes every other request
    through (method, headers, body, status, response headers and a streamed body).

    CNCF Distribution 2.8 has no OCI 1.1 referrers API (it answers 404 there), so this
    front is the only way to make pullgate take its referrers-API path in a test. The
    answers come from `set_referrers(repo, digest, artifacts)`; an unknown digest gets
    an empty index, as the spec says. `?artifactType=` filters, with
    OCI-Filters-Applied. `referrers_requests` lists the (repo, digest) asked for."""

    _REFERRERS = re.compile(r"^/v2/(.+)/referrers/(sha256:[0-9a-f]{64})$")
    _HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}

    def __init__(self, registry):
        self.registry = registry
        self.manifest_delay = 0.0  # seconds each manifest GET and HEAD waits (to make requests overlap)
        self.manifest_gets = []    # paths of the manifest GETs passed through
        self.manifest_heads = []   # paths of the manifest HEADs passed through
        self.manifest_status = None  # when set, manifest GETs and HEADs get this status instead (after the delay)
        self.hide_digest = False     # when set, manifest answers come without Docker-Content-Digest
        self.referrers = {}   # (repo, digest) -> [Artifact descriptor dicts]
        self.referrers_requests = []
        self._lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.host = "127.0.0.1"
        self.port = self.server.server_address[1]
        self.address = "%s:%d" % (self.host, self.port)
        self.url = "http://" + self.address
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self.server.serve_forever, name="referrers-front", daemon=True)
        self._thread.start()
        return self

    def close(self):
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(10)
            self._thread = None
        self.server.server_close()

    def set_referrers(self, repo, digest, artifacts):
        with self._lock:
            self.referrers[(repo, digest)] = [a.descriptor() for a in artifacts]

    def requests_for(self, repo, digest):
        with self._lock:
            return sum(1 for r in self.referrers_requests if r == (repo, digest))

    def _answer(self, repo, digest, artifact_type):
        with self._lock:
            self.referrers_requests.append((repo, digest))
            entries = list(self.referrers.get((repo, digest), []))
        if artifact_type is not None:
            entries = [e for e in entries if e.get("artifactType") == artifact_type]
        return json.dumps({"schemaVersion": 2, "mediaType": h.MT_OCI_INDEX, "manifests": entries},
                          separators=(",", ":")).encode()

    def _handler_class(self):
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # quiet: the registry logs what it serves
                pass

            def _request_body(self):
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline().strip():  # trailers
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            def _referrers(self):
                parts = urllib.parse.urlsplit(self.path)
                m = front._REFERRERS.match(parts.path)
                if m is None or self.command not in ("GET", "HEAD"):
                    return False
                query = urllib.parse.parse_qs(parts.query)
                artifact_type = query.get("artifactType", [None])[0]
                body = front._answer(m.group(1), m.group(2), artifact_type)
                self.send_response(200)
                self.send_header("Content-Type", h.MT_OCI_INDEX)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                if artifact_type is not None:
                    self.send_header("OCI-Filters-Applied", "artifactType")
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(body)
                return True

            def _proxy(self):
                if self._referrers():
                    return
                if self.command in ("GET", "HEAD") and "/manifests/" in self.path:
                    with front._lock:
                        (front.manifest_gets if self.command == "GET" else front.manifest_heads).append(self.path)
                    time.sleep(front.manifest_delay)
                    if front.manifest_status is not None:
                        message = b"manifest answers switched off by the test"
                        self.send_response(front.manifest_status)
                        self.send_header("Content-Type", "text/plain")
                        self.send_header("Content-Length", str(len(message)))
                        self.end_headers()
                        if self.command == "GET":
                            self.wfile.write(message)
                        return
                body = self._request_body()
                conn = http.client.HTTPConnection(front.registry.host, front.registry.port, timeout=120)
                try:
                    # Host goes along too: the registry builds Locations from it.
                    forwarded = [(name, value) for name, value in self.headers.items()
                                 if name.lower() not in front._HOP_BY_HOP and name.lower() != "content-length"]
                    h.send_request(conn, self.command, self.path, forwarded, body, skip_host=True)
                    resp = conn.getresponse()
                except OSError as e:
                    conn.close()
                    message = ("upstream unreachable: %s" % e).encode()
                    self.send_response(502)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(message)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(message)
                    return
                try:
                    self._relay(resp)
                finally:
                    conn.close()

            def _relay(self, resp):
                self.send_response(resp.status, resp.reason)
                length = resp.getheader("Content-Length")
                hide = front.hide_digest and "/manifests/" in self.path
                for name, value in resp.getheaders():
                    if name.lower() not in front._HOP_BY_HOP and not (hide and name.lower() == "docker-content-digest"):
                        self.send_header(name, value)
                no_body = self.command == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
                chunked = not no_body and length is None
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if no_body:
                    return
                while True:
                    chunk = resp.read(65536)
                    if not chunk:
                        break
                    if chunked:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    else:
                        self.wfile.write(chunk)
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _proxy

        return Handler
