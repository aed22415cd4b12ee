"""Clients that misbehave (issue 14, "Faults: clients" and the descriptor limit):
2,000 slowloris connections, 2,000 idle keep-alive connections, clients that stop
reading mid-blob, and a process descriptor limit far below the client count (with
dribblers in request headers and in TLS handshakes). In each,
other clients are still served (raw manifest and blob GETs, a skopeo copy), and the
mirror's descriptors and memory come back once the crowd is gone.

The crowds are driven from one thread with a selector (no thread per connection), and
this process raises its own descriptor limit to hold them. Nothing here is timed: the
counts are compared after the crowd has gone, polled until they settle or a long
deadline passes.
"""
import errno
import os
import re
import resource
import selectors
import socket
import stat
import subprocess
import threading
import time
import unittest

import harness as h

# This process holds a crowd of 2,000 sockets besides the usual.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _hard != resource.RLIM_INFINITY and _hard < 4096:
    raise RuntimeError("the tests need a hard RLIMIT_NOFILE of at least 4096 (found %d)" % _hard)
resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))

CROWD = 2000
MIB = 1024 * 1024


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise LookupError("no VmRSS for %d" % pid)


def pull_raw(pg, image, timeout=60):
    """The manifest by tag and every blob with raw GETs, each on a new connection;
    asserts every byte."""
    status, _, body = h.http_request(pg.host, pg.port, "GET", "/v2/%s/manifests/%s" % (image.repo, image.tag),
                                     headers=[("Accept", h.ALL_MANIFEST_ACCEPT)], timeout=timeout)
    assert status == 200 and body == image.manifest, (status, body[:200])
    for digest, data in image.blobs().items():
        status, _, body = h.http_request(pg.host, pg.port, "GET", "/v2/%s/blobs/%s" % (image.repo, digest),
                                         timeout=timeout)
        assert status == 200 and body == data, (digest, status, len(body))


class Crowd:
    """`n` connections to (host, port), driven from one thread with a selector.

    mode "dribble" (slowloris): each sends the start of a request header, then one more
    byte a second, never finishing it. mode "tls-dribble": the same inside a TLS
    handshake, for a listener with TLS: a handshake record announcing a 512-byte
    ClientHello, then one byte of it a second. mode "idle": each sends one whole request
    (GET /v2/), reads the answer, then holds the keep-alive connection open, sending
    nothing. mode "stall": each sends GET `path`, reads `read_bytes` of the answer, and
    then stops reading (the body stays in the socket buffers).

    A connection the server closes is counted in `dropped` and, with reconnect, opened
    again at the next tick (once a second), as a slowloris client does.
    An answer other than 200 fails the crowd.
    """

    def __init__(self, host, port, n, mode, reconnect=True, path="/v2/", read_bytes=0):
        self.host, self.port, self.n, self.mode = host, port, n, mode
        self.reconnect = reconnect
        self.path = path
        self.read_bytes = read_bytes
        self.lock = threading.Lock()
        self.ready = 0     # connected; in mode idle, answered; in mode stall, read_bytes read
        self.dropped = 0   # closed by the server (or refused)
        self.opened = 0
        self._to_open = n
        self._conns = {}   # socket -> state dict
        self._sel = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error = None

    # -- control (test thread) ---------------------------------------------------------

    def start(self):
        self._thread.start()
        return self

    def wait_ready(self, count=None, timeout=300, or_dropped=False):
        """Until `count` (all) are ready; with or_dropped, ready or dropped (shed)."""
        count = self.n if count is None else count
        h.wait_until(lambda: self._check() or self.ready + (self.dropped if or_dropped else 0) >= count, timeout,
                     "%d of %d %s connections ready" % (count, self.n, self.mode), interval=0.2)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=60)
        self._check()

    def _check(self):
        if self.error is not None:
            raise AssertionError("crowd thread failed: %r" % (self.error,))
        return False

    # -- the crowd's thread ---------------------------------------------------------------

    def _request(self):
        return ("GET %s HTTP/1.1\r\nHost: %s:%d\r\n" % (self.path, self.host, self.port)).encode()

    def _open(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        code = s.connect_ex((self.host, self.port))
        if code not in (0, errno.EINPROGRESS):
            s.close()
            self.dropped += 1
            return
        self._conns[s] = {"state": "connecting", "got": bytearray(), "ready": False}
        self._sel.register(s, selectors.EVENT_WRITE)
        self.opened += 1

    def _drop(self, s, by_server=True):
        st = self._conns.pop(s)
        try:
            self._sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()
        with self.lock:
            if st["ready"]:
                self.ready -= 1
            if by_server:
                self.dropped += 1
                if self.reconnect:
                    self._to_open += 1

    def _mark_ready(self, st):
        if not st["ready"]:
            st["ready"] = True
            with self.lock:
                self.ready += 1

    def _connected(self, s, st):
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
            return self._drop(s)
        head = self._request()
        if self.mode == "dribble":
            head += b"X-Dribble: "
        elif self.mode == "tls-dribble":
            # TLS record: handshake (22), TLS 1.0 framing, 512 bytes; ClientHello (1)
            # of 508 bytes, of which only the start of its version comes now.
            head = bytes([22, 3, 1, 2, 0, 1, 0, 1, 0xFC, 3])
        else:
            head += b"\r\n"
        try:
            s.send(head)
        except OSError:
            return self._drop(s)
        st["state"] = "open"
        self._sel.modify(s, selectors.EVENT_READ)
        if self.mode in ("dribble", "tls-dribble"):
            self._mark_ready(st)

    def _readable(self, s, st):
        try:
            data = s.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            return self._drop(s)
        if not data:
            return self._drop(s)
        st["got"] += data
        if self.mode == "idle" and not st["ready"]:
            head, sep, body = bytes(st["got"]).partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if m and len(body) >= int(m.group(1)):
                    if not head.startswith(b"HTTP/1.1 200"):
                        raise AssertionError("idle connection's request answered %r" % head[:40])
                    self._mark_ready(st)
                    st["got"] = bytearray()
        elif self.mode == "stall" and not bytes(st["got"]).startswith(b"HTTP/1.1 200") and b"\r\n" in st["got"]:
            raise AssertionError("stalled GET answered %r" % bytes(st["got"][:40]))
        elif self.mode == "stall" and len(st["got"]) >= self.read_bytes:
            self._mark_ready(st)
            # No more reads: the selector would report the pending body forever.
            self._sel.unregister(s)

    def _tick(self):
        while self._to_open > 0 and not self._stop.is_set():
            self._to_open -= 1
            self._open()
        if self.mode in ("dribble", "tls-dribble"):
            for s, st in list(self._conns.items()):
                if st["state"] != "open":
                    continue
                try:
                    s.send(b"a" if self.mode == "dribble" else b"\x03")
                except BlockingIOError:
                    pass
                except OSError:
                    self._drop(s)

    def _run(self):
        try:
            next_tick = 0.0
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + 1.0
                    self._tick()
                for key, mask in self._sel.select(timeout=max(0.0, min(0.2, next_tick - time.monotonic()))):
                    s = key.fileobj
                    st = self._conns.get(s)
                    if st is None:
                        continue
                    if st["state"] == "connecting":
                        self._connected(s, st)
                    else:
                        self._readable(s, st)
        except Exception as e:  # reported to the test thread by _check
            self.error = e
        finally:
            for s in list(self._conns):
                self._drop(s, by_server=False)
            self._sel.close()


class Faults(unittest.TestCase):
    """One pullgate, with its descriptor limit raised to the hard one (this machine's),
    in front of a real registry holding a small image and one with a 64 MiB layer."""

    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        cls.small = h.seed_oci(cls.registry, repo="it/small", seed="faults-small")
        cls.big = h.seed_oci(cls.registry, repo="it/big", seed="faults-big", big=True)
        cls.pg = h.Pullgate(cls.work.path, [h.upstream_entry(cls.registry)]).start()
        cls.addClassCleanup(cls.pg.close)
        cls.pid = cls.pg.proc.pid
        # Warm: the images cached, the upstream connections made, so the counts
        # compared below are those of a mirror in use.
        for image in (cls.small, cls.big):
            pull_raw(cls.pg, image)

    def setUp(self):
        self.assertTrue(self.pg.alive(), "pullgate died before this test: " + self.pg.stderr())

    def tearDown(self):
        self.assertTrue(self.pg.alive(), "pullgate died in this test: " + self.pg.stderr())

    def pull_with_skopeo(self):
        done, out = h.skopeo_via_mirror(self.work.path, self.registry, self.pg, "it/small:v1")
        self.assertEqual(done.returncode, 0, done.stderr)
        h.assert_dir_output(self, out, self.small)

    def baseline(self):
        return fd_count(self.pid), rss_bytes(self.pid)

    def assert_comes_back(self, fds_before, rss_before, rss_slack=48 * MIB):
        """Polls until the mirror's descriptors are back within a few of where they
        were and its RSS within rss_slack (allocator caches), with a long deadline."""
        h.wait_until(lambda: fd_count(self.pid) <= fds_before + 8, 180,
                     "descriptors back near %d (now %d)" % (fds_before, fd_count(self.pid)), interval=0.5)
        h.wait_until(lambda: rss_bytes(self.pid) <= rss_before + rss_slack, 180,
                     "RSS back near %d MiB (now %d MiB)" % (rss_before // MIB, rss_bytes(self.pid) // MIB),
                     interval=0.5)

    def check_served_beside_a_crowd(self, mode):
        """A crowd of CROWD connections in `mode` held open (the mirror holding one
        descriptor each) while others pull; then gone, and the mirror's counts back."""
        fds_before, rss_before = self.baseline()
        crowd = Crowd(self.pg.host, self.pg.port, CROWD, mode).start()
        try:
            crowd.wait_ready()
            # (Nearly all: dribblers past the header timeout are on their way back.)
            h.wait_until(lambda: fd_count(self.pid) >= fds_before + CROWD * 9 // 10, 120,
                         "the mirror holding the crowd's connections", interval=0.5)
            pull_raw(self.pg, self.small)
            pull_raw(self.pg, self.big)
            self.pull_with_skopeo()
            crowd._check()
        finally:
            crowd.stop()
        self.assertTrue(self.pg.healthy())
        self.assert_comes_back(fds_before, rss_before)

    def test_slowloris_crowd_does_not_keep_others_out(self):
        self.check_served_beside_a_crowd("dribble")

    def test_idle_keep_alive_crowd_does_not_keep_others_out(self):
        self.check_served_beside_a_crowd("idle")

    def test_clients_that_stop_reading_mid_blob(self):
        fds_before, rss_before = self.baseline()
        big_layer = self.big.layers[2]
        self.assertGreaterEqual(big_layer.size, 64 * MIB)
        stalled = 16
        crowd = Crowd(self.pg.host, self.pg.port, stalled, "stall", reconnect=False,
                      path="/v2/%s/blobs/%s" % (self.big.repo, big_layer.digest), read_bytes=64 * 1024).start()
        try:
            crowd.wait_ready()
            # Each stalled GET holds its socket and the blob's file, and no more: were
            # the blob read into memory per client, RSS would grow by 64 MiB each.
            h.wait_until(lambda: fd_count(self.pid) >= fds_before + stalled, 60,
                         "the mirror holding the stalled GETs", interval=0.2)
            during = rss_bytes(self.pid)
            self.assertLess(during, rss_before + 32 * MIB,
                            "RSS grew by %d MiB with %d GETs of a 64 MiB blob stalled"
                            % ((during - rss_before) // MIB, stalled))
            pull_raw(self.pg, self.small)
            pull_raw(self.pg, self.big)
            self.pull_with_skopeo()
        finally:
            crowd.stop()  # the clients vanish with the body unread
        self.assertTrue(self.pg.healthy())
        self.assert_comes_back(fds_before, rss_before, rss_slack=32 * MIB)


def limited_bin(directory, soft, hard):
    """An executable that runs $PULLGATE_BIN under `prlimit --nofile=soft:hard` (exec,
    so the process's id is pullgate's)."""
    path = os.path.join(directory, "pullgate-nofile-%d-%d" % (soft, hard))
    with open(path, "w") as f:
        f.write('#!/bin/sh\nexec prlimit --nofile=%d:%d -- %s "$@"\n' % (soft, hard, h.pullgate_bin()))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


class DescriptorLimit(unittest.TestCase):
    """pullgate under a descriptor limit far below its client count."""

    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        cls.small = h.seed_oci(cls.registry, repo="it/limit", seed="faults-limit")

    def start(self, soft, hard, extra=None):
        pg = h.Pullgate(self.work.path, [h.upstream_entry(self.registry)], extra=extra,
                        bin=limited_bin(self.work.path, soft, hard)).start()
        self.addCleanup(pg.close)
        return pg

    def limit_events(self, pg):
        return [e for e in pg.log_events() if e.get("msg") == "file descriptor limit"]

    def test_soft_limit_is_raised_to_the_hard_one(self):
        pg = self.start(256, 4096)
        events = self.limit_events(pg)
        self.assertEqual(len(events), 1, pg.stderr())
        self.assertEqual((events[0]["was"], events[0]["limit"]), (256, 4096))
        with open("/proc/%d/limits" % pg.proc.pid) as f:
            line = next(l for l in f if l.startswith("Max open files"))
        self.assertEqual(line.split()[3:5], ["4096", "4096"], line)

    def shed_then_answered(self, pg, mode, answered):
        """1,000 clients of `mode` against pg's 256 descriptors: once some are shed,
        answered() (a normal request) must succeed. Returns (shed, dropped)."""
        crowd = Crowd(pg.host, pg.port, 1000, mode, reconnect=False).start()
        try:
            crowd.wait_ready(or_dropped=True)
            # More dribblers than descriptors: the mirror has started shedding.
            h.wait_until(lambda: h.metric(pg, 'pullgate_connections_shed_total{reason="header"}') > 0, 120,
                         "%s clients shed" % mode, interval=0.5)
            # A new request queues behind the dribblers still in the listen queue, and
            # is answered once they are accepted, each shedding an older one.
            answered()
            crowd._check()
            self.assertGreater(crowd.dropped, 0)
        finally:
            crowd.stop()
        # Every connection closed was shed (none ended otherwise).
        shed = h.metric(pg, 'pullgate_connections_shed_total{reason="header"}')
        self.assertGreaterEqual(shed, crowd.dropped - 5)
        return shed

    def test_dribblers_past_the_limit_are_shed_so_a_request_is_answered(self):
        # The header timeout is far longer than the wait allowed below: without
        # shedding, the request would queue behind the dribblers until it passed.
        pg = self.start(256, 256, extra={"limits": {"header_timeout_s": 300}})
        self.assertEqual(self.limit_events(pg)[0]["limit"], 256)
        pull_raw(pg, self.small)  # warm

        def answered():
            pull_raw(pg, self.small, timeout=120)
            status, _, _ = h.http_request(pg.host, pg.port, "GET", "/v2/", timeout=120)
            self.assertEqual(status, 200)
        shed = self.shed_then_answered(pg, "dribble", answered)
        logged = [e for e in pg.log_events()
                  if e.get("msg") == "connections waiting on their client shed near the descriptor limit"]
        self.assertTrue(logged, pg.stderr())
        # Said once per interval, not once per connection: each line says how many
        # since the last.
        self.assertLessEqual(sum(e["header"] + e["idle"] for e in logged), shed)
        self.assertLess(len(logged), shed / 10)
        self.assertEqual(logged[0]["descriptor_limit"], 256)
        self.assertTrue(pg.healthy())

    def test_tls_handshakes_that_dribble_are_shed_so_a_request_is_answered(self):
        cert, key = h.make_self_signed_cert(self.work.path)
        pg = h.TlsPullgate(self.work.path, [h.upstream_entry(self.registry)], cert, key,
                           extra={"limits": {"header_timeout_s": 300}}, bin=limited_bin(self.work.path, 256, 256))
        self.addCleanup(pg.close)
        pg.start()

        def answered():
            status, _, body = pg.request("GET", "/v2/%s/manifests/%s" % (self.small.repo, self.small.tag),
                                         headers=[("Accept", h.ALL_MANIFEST_ACCEPT)], timeout=120)
            self.assertEqual((status, body), (200, self.small.manifest))
        self.shed_then_answered(pg, "tls-dribble", answered)
        self.assertTrue(pg.healthy())

    @unittest.skipIf(os.environ.get("PULLGATE_SANITIZED_RUN"),
                     "UBSan checks each virtual call through a pipe, and sanitizers write their reports to "
                     "files: in a process with no descriptor left both fail (a false 'invalid vptr' on "
                     "Boost's error categories, then no report file); tests/sanitize.sh skips it, the "
                     "plain suite runs it")
    def test_accept_out_of_descriptors_pauses_then_sheds_and_keeps_listening(self):
        pg = self.start(256, 256)
        pid = pg.proc.pid

        def no_new_descriptor():
            # Every descriptor below the lowest free one is open: with the soft limit
            # there, the process can open none (prlimit --pid changes it while it runs).
            # Settled first: a connection the mirror is still closing would leave a hole.
            def fds():
                return {int(n) for n in os.listdir("/proc/%d/fd" % pid)}
            seen = [fds()]

            def settled():
                time.sleep(0.5)
                seen.append(fds())
                return seen[-1] == seen[-2]
            h.wait_until(settled, 60, "the mirror's descriptors settled")
            open_fds = seen[-1]
            lowest_free = next(n for n in range(len(open_fds) + 1) if n not in open_fds)
            subprocess.run(["prlimit", "--pid", str(pid), "--nofile=%d:256" % lowest_free], check=True)

        def accept_failures():
            return [e for e in pg.log_events() if e.get("msg") == "accept failed"]

        # Nothing to shed: accept() fails, the mirror pauses between tries, and the
        # request waiting in the listen queue is answered once descriptors are back.
        no_new_descriptor()
        result = {}
        waiter = threading.Thread(target=lambda: result.update(
            answer=h.http_request(pg.host, pg.port, "GET", "/v2/", timeout=120)))
        waiter.start()
        h.wait_until(accept_failures, 60, "accept() failing for want of descriptors", interval=0.2)
        self.assertIn("open files", accept_failures()[0]["error"])
        self.assertNotIn("answer", result)
        subprocess.run(["prlimit", "--pid", str(pid), "--nofile=256:256"], check=True)
        waiter.join(timeout=150)
        self.assertEqual(result["answer"][0], 200)

        # Idle keep-alive connections to shed: accept() failing closes the oldest, and
        # the new request gets in without the limit changing.
        crowd = Crowd(pg.host, pg.port, 20, "idle", reconnect=False).start()
        try:
            crowd.wait_ready()
            no_new_descriptor()
            status, _, _ = h.http_request(pg.host, pg.port, "GET", "/v2/", timeout=120)
            self.assertEqual(status, 200)
        finally:
            crowd.stop()
        subprocess.run(["prlimit", "--pid", str(pid), "--nofile=256:256"], check=True)
        self.assertGreaterEqual(h.metric(pg, 'pullgate_connections_shed_total{reason="idle"}'), 1)
        self.assertTrue(pg.healthy())

if __name__ == "__main__":
    unittest.main()
