#!/usr/bin/env python3
"""A stand-in for `trivy image --format json --quiet <host:port>/<repo>@<digest>` that
really pulls: it reads TRIVY_USERNAME / TRIVY_PASSWORD / TRIVY_INSECURE from its
environment, talks to the registry as a registry client does (GET /v2/, 401 with a
Basic challenge, the same request again with Basic credentials), fetches the manifest
(the linux/amd64 child of an index), the config blob and the layers, checks every
digest, and only then prints a Trivy JSON report: tests/fixtures/reports/trivy-image.json
naming the pulled image, scanned now, with the findings whose severity is listed in
FAKE_TRIVY_KEEP (comma separated; unset keeps all).

FAKE_TRIVY_FAIL=exit makes it fail like trivy does (stderr, exit 1), =garbage makes it
print something that is not JSON and exit 0, =hang makes it sleep (for timeouts); all
after the pull. FAKE_TRIVY_LOG names a file that gets one JSON line per run: argv,
which credentials were present (never their values), what was pulled, the error.
"""
import base64
import copy
import datetime
import hashlib
import http.client
import json
import os
import re
import sys
import time

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "reports", "trivy-image.json")
MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
REFERENCE_RE = re.compile(r"\A([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]):([0-9]{1,5})/([a-z0-9._/\-]+)@(sha256:[a-f0-9]{64})\Z")
USAGE = "usage: fake_trivy.py image --format json --quiet <host:port>/<repository>@sha256:<hex>"


class Failure(Exception):
    pass


class Run:
    """What this invocation did, written to FAKE_TRIVY_LOG at exit."""

    def __init__(self):
        self.record = {
            "argv": sys.argv,
            "username_present": bool(os.environ.get("TRIVY_USERNAME")),
            "password_present": bool(os.environ.get("TRIVY_PASSWORD")),
            "insecure": os.environ.get("TRIVY_INSECURE", ""),
            "challenge": None,
            "authenticated": False,
            "pulled": False,
            "requests": [],
            "error": None,
        }
        self.written = False

    def write(self):
        path = os.environ.get("FAKE_TRIVY_LOG")
        if not path or self.written:
            return
        self.written = True
        line = (json.dumps(self.record) + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)  # one write per run: concurrent runs do not interleave
        finally:
            os.close(fd)


def parse_args(argv):
    if not argv or argv[0] != "image":
        raise Failure(USAGE)
    fmt, quiet, target = None, False, None
    rest = argv[1:]
    i = 0
    while i < len(rest):
        a = rest[i]
        if a in ("--format", "-f"):
            if i + 1 >= len(rest):
                raise Failure("flag needs an argument: --format")
            fmt = rest[i + 1]
            i += 2
            continue
        if a.startswith("--format="):
            fmt = a.split("=", 1)[1]
        elif a in ("--quiet", "-q"):
            quiet = True
        elif a.startswith("-"):
            raise Failure("unknown flag: %s" % a)
        elif target is None:
            target = a
        else:
            raise Failure("\"trivy image\" requires exactly 1 argument")
        i += 1
    if fmt != "json":
        raise Failure("this stand-in only writes --format json (got %r)" % fmt)
    if not quiet:
        raise Failure("this stand-in expects --quiet")
    if target is None:
        raise Failure("\"trivy image\" requires at least 1 argument")
    m = REFERENCE_RE.match(target)
    if not m:
        raise Failure("cannot parse the image reference %r (want host:port/repo@sha256:...)" % target)
    return target, m.group(1).strip("[]"), int(m.group(2)), m.group(3), m.group(4)


class Client:
    """A registry client over plain HTTP that answers a Basic challenge."""

    def __init__(self, run, host, port):
        self.run = run
        self.host = host
        self.port = port
        self.auth = None

    def request(self, method, path, accept=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            headers = {"User-Agent": "fake-trivy/1"}
            if accept:
                headers["Accept"] = accept
            if self.auth:
                headers["Authorization"] = self.auth
            conn.request(method, path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            self.run.record["requests"].append([method, path, resp.status, bool(self.auth)])
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
        except OSError as e:
            raise Failure("%s %s: %s" % (method, path, e))
        finally:
            conn.close()

    def login(self):
        status, headers, _ = self.request("GET", "/v2/")
        if status == 200:
            return  # no authentication asked for
        if status != 401:
            raise Failure("GET /v2/: unexpected status %d" % status)
        challenge = headers.get("www-authenticate", "")
        self.run.record["challenge"] = challenge
        if not challenge.lower().startswith("basic "):
            raise Failure("GET /v2/: 401 with a challenge this stand-in does not answer: %r" % challenge)
        user, password = os.environ.get("TRIVY_USERNAME"), os.environ.get("TRIVY_PASSWORD")
        if not user or not password:
            raise Failure("GET /v2/: 401 UNAUTHORIZED and no credentials (TRIVY_USERNAME/TRIVY_PASSWORD)")
        self.auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        status, _, body = self.request("GET", "/v2/")
        if status != 200:
            raise Failure("GET /v2/ with Basic credentials: %d %s" % (status, body[:200].decode("utf-8", "replace")))
        self.run.record["authenticated"] = True

    def fetch(self, kind, repo, digest, accept=None):
        path = "/v2/%s/%s/%s" % (repo, kind, digest)
        status, headers, body = self.request("GET", path, accept)
        if status != 200:
            raise Failure("GET %s: %d %s" % (path, status, body[:300].decode("utf-8", "replace")))
        got = "sha256:" + hashlib.sha256(body).hexdigest()
        if got != digest:
            raise Failure("GET %s: the content's digest is %s" % (path, got))
        return headers, body


def pull(run, host, port, repo, digest):
    """Manifest, config and layers of repo@digest; returns the config digest."""
    client = Client(run, host, port)
    client.login()
    headers, body = client.fetch("manifests", repo, digest, MANIFEST_ACCEPT)
    try:
        manifest = json.loads(body)
    except ValueError:
        raise Failure("the manifest is not JSON")
    media_type = manifest.get("mediaType") or headers.get("content-type", "")
    if media_type in INDEX_TYPES:
        child = next((m for m in manifest.get("manifests", [])
                      if m.get("platform", {}).get("os") == "linux"
                      and m.get("platform", {}).get("architecture") == "amd64"), None)
        if child is None:
            raise Failure("the index has no linux/amd64 manifest")
        _, body = client.fetch("manifests", repo, child["digest"], MANIFEST_ACCEPT)
        manifest = json.loads(body)
    config = manifest.get("config", {}).get("digest")
    if not isinstance(config, str):
        raise Failure("the manifest names no config blob")
    client.fetch("blobs", repo, config)
    for layer in manifest.get("layers", []):
        client.fetch("blobs", repo, layer["digest"])
    run.record["pulled"] = True
    run.record["config_digest"] = config
    return config


def report(target, digest, config_digest):
    with open(FIXTURE, encoding="utf-8") as f:
        doc = json.load(f)
    doc = copy.deepcopy(doc)
    name = target.split("@", 1)[0]
    doc["CreatedAt"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    doc["ArtifactName"] = target
    doc["Metadata"]["ImageID"] = config_digest
    doc["Metadata"]["RepoTags"] = []
    doc["Metadata"]["RepoDigests"] = ["%s@%s" % (name, digest)]
    keep = os.environ.get("FAKE_TRIVY_KEEP")
    if keep is not None:
        severities = {s.strip().upper() for s in keep.split(",") if s.strip()}
        for result in doc["Results"]:
            result["Vulnerabilities"] = [v for v in result.get("Vulnerabilities") or []
                                         if v.get("Severity") in severities]
    return doc


def main():
    run = Run()
    try:
        target, host, port, repo, digest = parse_args(sys.argv[1:])
        if os.environ.get("TRIVY_INSECURE", "").lower() != "true":
            raise Failure("%s: would use HTTPS (TRIVY_INSECURE is not true); this stand-in speaks plain HTTP only"
                          % target)
        run.record["reference"] = target
        config_digest = pull(run, host, port, repo, digest)
        fail = os.environ.get("FAKE_TRIVY_FAIL", "")
        if fail == "exit":
            raise Failure("scan error: FAKE_TRIVY_FAIL=exit asked this run to fail")
        if fail == "garbage":
            sys.stdout.write("2024-05-14T09:41:27Z\tINFO\tthis is not a report {\n")
            return 0
        if fail == "hang":
            run.write()  # it will be killed: log first
            time.sleep(3600)
        json.dump(report(target, digest, config_digest), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    except Failure as e:
        run.record["error"] = str(e)
        sys.stderr.write("%s\tFATAL\t%s\n" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), e))
        return 1
    finally:
        run.write()


if __name__ == "__main__":
    sys.exit(main())
