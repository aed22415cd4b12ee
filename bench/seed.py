#!/usr/bin/env python3
"""Makes the bench image and pushes it to a registry with the push API.

The image: an OCI manifest with a config blob, a few small random layers and one
large random layer. The blob files stay on disk under OUT_DIR so nginx can serve
the same bytes as static files.
"""
import hashlib
import http.client
import json
import os
import urllib.parse

REPO = "bench/app"
TAG = "latest"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
SMALL_LAYER_SIZES = (1024, 4096, 16384)
CHUNK = 8 << 20


def write_random_blob(path, size):
    """Writes size random bytes to path and returns their sha256 digest."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left > 0:
            chunk = os.urandom(min(CHUNK, left))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return "sha256:" + h.hexdigest()


def write_bytes_blob(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_image(out_dir, large_size):
    """Creates the blobs and the manifest; returns a description of the image."""
    os.makedirs(out_dir, exist_ok=True)
    layers = []
    for i, size in enumerate(SMALL_LAYER_SIZES):
        path = os.path.join(out_dir, f"small{i}")
        layers.append({"path": path, "size": size, "digest": write_random_blob(path, size)})
    large_path = os.path.join(out_dir, "large")
    large = {"path": large_path, "size": large_size, "digest": write_random_blob(large_path, large_size)}
    layers.append(large)
    config_bytes = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        # Random layers are not real tars: diff_ids are stand-ins the registries never check.
        "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]},
    }, sort_keys=True).encode()
    config_path = os.path.join(out_dir, "config")
    config = {"path": config_path, "size": len(config_bytes), "digest": write_bytes_blob(config_path, config_bytes)}
    manifest_bytes = json.dumps({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config["digest"], "size": config["size"]},
        "layers": [{"mediaType": LAYER_TYPE, "digest": l["digest"], "size": l["size"]} for l in layers],
    }, sort_keys=True).encode()
    manifest_path = os.path.join(out_dir, "manifest")
    manifest_digest = write_bytes_blob(manifest_path, manifest_bytes)
    return {"repo": REPO, "tag": TAG, "manifest_type": MANIFEST_TYPE,
            "manifest": {"path": manifest_path, "size": len(manifest_bytes), "digest": manifest_digest},
            "config": config, "layers": layers, "large": large,
            "blobs": [config] + layers}


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _checked(conn, expected_status, what):
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != expected_status:
        raise RuntimeError(f"{what}: HTTP {resp.status} (wanted {expected_status}): {body[:300]!r}")
    return resp


def push_blob(port, repo, blob, auth):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600, blocksize=1 << 20)
    try:
        conn.request("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0", **auth})
        location = _checked(conn, 202, "start upload").getheader("Location")
        if not location:
            raise RuntimeError("upload start gave no Location")
        parts = urllib.parse.urlsplit(location)
        sep = "&" if parts.query else "?"
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        target += sep + urllib.parse.urlencode({"digest": blob["digest"]})
        with open(blob["path"], "rb") as f:
            conn.request("PUT", target, body=f, headers={
                "Content-Length": str(blob["size"]), "Content-Type": "application/octet-stream", **auth})
            _checked(conn, 201, f"upload {blob['digest']}")
    finally:
        conn.close()


def push_image(port, image, auth=None):
    """auth: extra headers (Authorization) for an upstream that wants them."""
    auth = auth or {}
    for blob in image["blobs"]:
        push_blob(port, image["repo"], blob, auth)
    with open(image["manifest"]["path"], "rb") as f:
        manifest_bytes = f.read()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("PUT", f"/v2/{image['repo']}/manifests/{image['tag']}", body=manifest_bytes,
                     headers={"Content-Type": image["manifest_type"], **auth})
        resp = _checked(conn, 201, "put manifest")
        got = resp.getheader("Docker-Content-Digest")
        if got != image["manifest"]["digest"]:
            raise RuntimeError(f"upstream stored manifest as {got}, expected {image['manifest']['digest']}")
    finally:
        conn.close()


def make_static_tree(root, image):
    """Lays the image out as files at the registry's /v2/... paths, for nginx."""
    base = os.path.join(root, "v2", *image["repo"].split("/"))
    os.makedirs(os.path.join(base, "manifests"), exist_ok=True)
    os.makedirs(os.path.join(base, "blobs"), exist_ok=True)
    for name in (image["tag"], image["manifest"]["digest"]):
        _link(image["manifest"]["path"], os.path.join(base, "manifests", name))
    for blob in image["blobs"]:
        _link(blob["path"], os.path.join(base, "blobs", blob["digest"]))


def _link(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            while chunk := fin.read(CHUNK):
                fout.write(chunk)
