#!/usr/bin/env python3
"""N concurrent GETs (or HEADs) of one URL on 127.0.0.1, released together.

    coldclient.py URL N [GET|HEAD] [TIMEOUT_S]

Prints one JSON object: per client the status, body bytes, Content-Length, and
the times (seconds from the common release) of the first response byte, the
first body byte and the last body byte. Bodies are discarded into a reused
buffer, so the client costs little more than the kernel copy.
"""
import json
import socket
import sys
import threading
import time
import urllib.parse

BUFFER_SIZE = 1 << 20


def fetch(host, port, target, method, timeout, barrier, out):
    result = {"status": 0, "bytes": 0, "content_length": None, "error": None,
              "t_go": None, "t_first_byte": None, "t_first_body": None, "t_end": None}
    out.append(result)
    buf = bytearray(BUFFER_SIZE)
    view = memoryview(buf)
    try:
        barrier.wait(timeout=30)
        result["t_go"] = time.monotonic()
        sock = socket.create_connection((host, port), timeout=timeout)
        with sock:
            sock.sendall((f"{method} {target} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                          "Accept: */*\r\nUser-Agent: pullgate-bench\r\nConnection: close\r\n\r\n").encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed before the response head")
                if result["t_first_byte"] is None:
                    result["t_first_byte"] = time.monotonic()
                head += chunk
                if len(head) > 65536:
                    raise ValueError("response head larger than 64 KiB")
            head, _, body = head.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            result["status"] = int(lines[0].split()[1])
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    result["content_length"] = int(value.strip())
            expected = result["content_length"]
            if method == "HEAD" or expected == 0:
                result["t_end"] = time.monotonic()
                return
            got = len(body)
            if got:
                result["t_first_body"] = time.monotonic()
            while expected is None or got < expected:
                n = sock.recv_into(view)
                if n == 0:
                    break
                if result["t_first_body"] is None:
                    result["t_first_body"] = time.monotonic()
                got += n
            result["bytes"] = got
            result["t_end"] = time.monotonic()
    except (OSError, ValueError, IndexError, threading.BrokenBarrierError) as e:
        result["error"] = f"{type(e).__name__}: {e}"


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: coldclient.py URL N [GET|HEAD] [TIMEOUT_S]")
    url = urllib.parse.urlsplit(sys.argv[1])
    if url.hostname != "127.0.0.1":
        sys.exit("coldclient.py only talks to 127.0.0.1")
    n = int(sys.argv[2])
    method = sys.argv[3] if len(sys.argv) > 3 else "GET"
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 300.0
    barrier = threading.Barrier(n)
    results = []
    threads = [threading.Thread(target=fetch, daemon=True,
                                args=(url.hostname, url.port, url.path, method, timeout, barrier, results))
               for _ in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout + 30
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    base = min((r["t_go"] for r in results if r["t_go"] is not None), default=0.0)
    for r in results:
        for key in ("t_first_byte", "t_first_body", "t_end"):
            if r[key] is not None:
                r[key] = round(r[key] - base, 6)
        r.pop("t_go")
    print(json.dumps({"clients": results, "unfinished": sum(t.is_alive() for t in threads)}))


if __name__ == "__main__":
    main()
