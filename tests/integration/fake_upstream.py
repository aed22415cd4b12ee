"""A registry in Python for the fault tests: it serves one image (manifest by tag and
digest, its blobs) like a registry would, and lets a test script what goes wrong per
path: a blob body that stops after N bytes until released (and says when it got
there), a wrong Content-Length, a redirect, any status with any headers, TLS with a
certificate nobody trusts, or no HTTP at all. Counts every request by (method, path).
Distribution cannot misbehave on demand; this can, at a known point, so the tests
need no timing guesses."""
import http.server
import json
import socket
import ssl
import threading

import harness as h


def raw_response(handler, status, headers, body, declared=None, close=True):
    """Writes a response with Content-Length `declared` (default: the body's length)."""
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body) if declared is None else declared))
    handler.send_header("Docker-Distribution-API-Version", "registry/2.0")
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)
    handler.wfile.flush()
    if close:
        handler.close_connection = True


class Stall:
    """A body that stops after `after` bytes: `reached` is set then, and the rest is
    sent once `release` is set (or the connection is closed short if `cut`)."""

    def __init__(self, after, cut=False, length=True):
        self.after = after
        self.cut = cut
        self.length = length  # False: no Content-Length, the body ends when the connection does
        self.reached = threading.Event()
        self.release = threading.Event()

    def __call__(self, handler, data, headers):
        handler.send_response(200)
        for name, value in headers:
            handler.send_header(name, value)
        if self.length:
            handler.send_header("Content-Length", str(len(data)))
        else:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        if handler.command == "HEAD":
            return
        handler.wfile.write(data[:self.after])
        handler.wfile.flush()
        self.reached.set()
        self.release.wait(120)
        if self.cut:
            handler.close_connection = True
            return
        try:
            handler.wfile.write(data[self.after:])
            handler.wfile.flush()
        except OSError:  # the reader went away (killed): nothing more to send
            handler.close_connection = True


class QuietServer(http.server.ThreadingHTTPServer):
    """Connections the tests cut (a killed pullgate) end without a traceback."""
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


class FakeRegistry:
    """Serves `image` (a harness Image or Index with .blobs()). `scripts` maps a path
    (no query) to a callable(handler, data_or_None, default_headers) that answers in
    its place; set() adds one while running. tls: (cert, key) to speak HTTPS."""

    def __init__(self, images=(), tls=None):
        self.images = list(images)
        self.scripts = {}
        self.counts = {}
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.answer(self)
            do_HEAD = do_GET

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.address = "127.0.0.1:%d" % self.port
        self.url = ("https://" if tls else "http://") + self.address
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def set(self, path, script):
        with self.lock:
            self.scripts[path] = script

    def count(self, method, path):
        with self.lock:
            return self.counts.get((method, path), 0)

    def lookup(self, path):
        """(bytes, headers) that a registry would serve at path, or None."""
        for image in self.images:
            manifests = "/v2/%s/manifests/" % image.repo
            blobs = "/v2/%s/blobs/" % image.repo
            if path in (manifests + image.tag, manifests + image.digest):
                return image.manifest, [("Content-Type", image.manifest_type), ("Docker-Content-Digest", image.digest)]
            if path.startswith(blobs) and path[len(blobs):] in image.blobs():
                digest = path[len(blobs):]
                return image.blobs()[digest], [("Content-Type", "application/octet-stream"),
                                               ("Docker-Content-Digest", digest)]
        return None

    def answer(self, handler):
        path = handler.path.split("?", 1)[0]
        with self.lock:
            self.counts[(handler.command, path)] = self.counts.get((handler.command, path), 0) + 1
            script = self.scripts.get(path)
        if path == "/v2/":
            return raw_response(handler, 200, [("Content-Type", "application/json")], b"{}", close=False)
        found = self.lookup(path)
        data, headers = found if found else (None, [])
        if script:
            return script(handler, data, headers)
        if found:
            return raw_response(handler, 200, headers, data, close=False)
        body = json.dumps({"errors": [{"code": "NOT_FOUND", "message": "unknown"}]}).encode()
        raw_response(handler, 404, [("Content-Type", "application/json")], body, close=False)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def status_script(status, headers=(), body=b""):
    """Answers `status` with headers and body, keeping the connection."""
    return lambda handler, data, default: raw_response(handler, status, list(headers), body, close=False)


class SilentServer:
    """Accepts TCP connections and never says a word: a token server that hangs, or
    a plain-TCP server where TLS is expected (`reply` bytes are sent then, once)."""

    def __init__(self, reply=None):
        self.reply = reply
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.accepted = 0
        self.held = []
        self.closed = threading.Event()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.held.append(conn)
            if self.reply is not None:
                try:
                    conn.recv(4096)
                    conn.sendall(self.reply)
                except OSError:
                    pass

    def close(self):
        self.closed.set()
        self.sock.close()
        for conn in self.held:
            conn.close()


def plain_pullgate(work, fakes, extra=None, **entry):
    """A pullgate whose upstreams are the fakes (the first is the default)."""
    upstreams = []
    for i, fake in enumerate(fakes):
        item = {"name": fake.address, "url": fake.url, "default": i == 0}
        item.update(entry)
        upstreams.append(item)
    return h.Pullgate(work, upstreams, extra=extra)
