#!/usr/bin/env python3
"""Counting TCP relay between a mirror and its upstream (loopback only).

    relay.py LISTEN_PORT TARGET_PORT STATS_PORT

Counts, exactly, the bytes the upstream sent to the mirror ("down") and the
mirror sent to the upstream ("up"), and the request lines the mirror sent
("GET /v2/...": count). The mirror sends only GET/HEAD requests without bodies,
so every line of the mirror->upstream stream that looks like a request line is
one. Any connection to STATS_PORT gets the counters as an HTTP/1.0 JSON reply.
"""
import json
import os
import re
import socket
import sys
import threading

LOOPBACK = "127.0.0.1"
REQUEST_LINE = re.compile(rb"^([A-Z]{3,7}) (\S+) HTTP/1\.[01]$")
MAX_PARTIAL_LINE = 64 * 1024

lock = threading.Lock()
stats = {"down": 0, "up": 0, "connections": 0, "requests": {}}


def add(key, n):
    with lock:
        stats[key] += n


def count_requests(buffer):
    """Counts complete request lines in buffer; returns the unfinished tail."""
    *lines, tail = buffer.split(b"\r\n")
    for line in lines:
        m = REQUEST_LINE.match(line)
        if m:
            key = (m.group(1) + b" " + m.group(2)).decode("latin-1")
            with lock:
                stats["requests"][key] = stats["requests"].get(key, 0) + 1
    return tail[-MAX_PARTIAL_LINE:]


def pump_up(src, dst):
    """mirror -> upstream: small request heads, parsed for request lines."""
    pending = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            pending = count_requests(pending + data)
            dst.sendall(data)
            add("up", len(data))
    except OSError:
        pass
    finally:
        shutdown_write(dst)


def pump_down(src, dst):
    """upstream -> mirror: the bulk; spliced through a pipe, never copied to Python."""
    read_end, write_end = os.pipe()
    try:
        while True:
            n = os.splice(src.fileno(), write_end, 1 << 20)
            if n == 0:
                break
            left = n
            while left > 0:
                left -= os.splice(read_end, dst.fileno(), left)
            add("down", n)
    except OSError:
        pass
    finally:
        os.close(read_end)
        os.close(write_end)
        shutdown_write(dst)


def shutdown_write(sock):
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def relay(client, target_port):
    try:
        upstream = socket.create_connection((LOOPBACK, target_port), timeout=10)
        upstream.settimeout(None)
    except OSError:
        client.close()
        return
    # Without NODELAY, a response written in two pieces waits on Nagle and the
    # peer's delayed ACK (~40 ms): the relay would slow every small request.
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    add("connections", 1)
    up = threading.Thread(target=pump_up, args=(client, upstream), daemon=True)
    down = threading.Thread(target=pump_down, args=(upstream, client), daemon=True)
    up.start()
    down.start()
    up.join()
    down.join()
    client.close()
    upstream.close()


def serve_stats(listener):
    while True:
        conn, _ = listener.accept()
        try:
            conn.settimeout(2)
            try:
                conn.recv(4096)
            except OSError:
                pass
            with lock:
                body = json.dumps(stats).encode()
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        except OSError:
            pass
        finally:
            conn.close()


def listen(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((LOOPBACK, port))
    s.listen(512)
    return s


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: relay.py LISTEN_PORT TARGET_PORT STATS_PORT")
    listen_port, target_port, stats_port = (int(a) for a in sys.argv[1:])
    listener = listen(listen_port)
    threading.Thread(target=serve_stats, args=(listen(stats_port),), daemon=True).start()
    while True:
        client, _ = listener.accept()
        threading.Thread(target=relay, args=(client, target_port), daemon=True).start()


if __name__ == "__main__":
    main()
