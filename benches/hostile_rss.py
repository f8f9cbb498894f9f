#!/usr/bin/env python3
"""Memory under hostile clients, side by side with memcached 1.6.18 (issue 15's table).

Starts memcached and ferrocache with the same options, one case at a time, and reports the RSS
growth (from /proc) each case causes:
  idle        2000 connections that each sent `version`, read the reply and went idle (per conn)
  unread      5 connections pipelining `get` of a 500 KB value and never reading (in all)
  stalled     200 connections each stalled halfway through a 1 MB `set` value, under -m 64
  metadump    `lru_crawler metadump all` of 1,000,000 items (a ~78 MB dump) asked for by a
              client that does not read it (a 64 KB receive buffer), under -m 1024; the client
              then reads it all (the distinct keys listed are counted: memcached's crawler may
              miss an item its LRU maintainer moves meanwhile)
  mutated     a well-behaved client's set+get latency (p99, p50, p99.9 over 20000 round trips)
              while 8 processes send mutated text, meta and binary requests on connections of
              their own, and the CPU time the server spent meanwhile
After each case a well-behaved client's set/get must still be answered exactly.

Usage: benches/hostile_rss.py [--bin PATH] [--before PATH] [--only CASE] [--rounds N] [--markdown]
(--before: another ferrocache binary, e.g. one built before a change, as a third column)
"""

import argparse
import multiprocessing
import os
import random
import select
import struct
import socket
import subprocess
import sys
import time

ARGS = ["-t", "2", "-c", "4096", "-U", "0", "-u", "root", "-l", "127.0.0.1"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, cmd, extra):
        self.port = free_port()
        self.proc = subprocess.Popen(
            cmd + ARGS + ["-p", str(self.port)] + extra,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port)).close()
                return
            except OSError:
                time.sleep(0.02)
        raise SystemExit(f"{cmd[0]} did not start")

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port))
        s.settimeout(10)
        return s

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def roundtrip(s, req, end):
    s.sendall(req)
    buf = b""
    while not buf.endswith(end):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
    return buf


def well_behaved(srv, i):
    v = b"good-%d-" % i + b"v" * 100
    s = srv.connect()
    got = roundtrip(s, b"set good%d 0 0 %d\r\n%s\r\nget good%d\r\n" % (i, len(v), v, i), b"END\r\n")
    s.close()
    want = b"STORED\r\nVALUE good%d 0 %d\r\n%s\r\nEND\r\n" % (i, len(v), v)
    if got != want:
        raise SystemExit(f"well-behaved client answered wrongly: {got[:80]!r}")


def send_some(s, data):
    s.setblocking(False)
    sent = 0
    try:
        while sent < len(data):
            sent += s.send(data[sent:])
    except (BlockingIOError, ConnectionError):
        pass
    return sent


def settle(srv):
    """Waits until RSS stops growing (bounded: at most 5 s)."""
    last = srv.rss_kib()
    for _ in range(25):
        time.sleep(0.2)
        now = srv.rss_kib()
        if now == last:
            break
        last = now
    return last


def idle(srv):
    well_behaved(srv, 0)
    before = srv.rss_kib()
    n = 2000
    conns = []
    for _ in range(n):
        s = srv.connect()
        roundtrip(s, b"version\r\n", b"\r\n")
        conns.append(s)
    grown = settle(srv) - before
    well_behaved(srv, 1)
    return f"{grown * 1024 / n:,.0f} B per connection"


def unread(srv):
    value = b"x" * (500 * 1024)
    c = srv.connect()
    roundtrip(c, b"set big 0 0 %d\r\n%s\r\n" % (len(value), value), b"STORED\r\n")
    before = srv.rss_kib()
    hostile = [srv.connect() for _ in range(5)]
    for h in hostile:
        send_some(h, b"get big\r\n" * 2000)
    grown = settle(srv) - before
    well_behaved(srv, 2)
    return f"{grown / 1024:,.2f} MB in all"


def stalled(srv):
    well_behaved(srv, 0)
    before = srv.rss_kib()
    half = b"y" * (512 * 1024)
    conns = []
    for i in range(200):
        s = srv.connect()
        send_some(s, b"set stall%d 0 0 1000000\r\n" % i + half)
        conns.append(s)
    grown = settle(srv) - before
    well_behaved(srv, 3)
    return f"+{grown / 1024:,.1f} MB"


# Valid requests the mutated case starts from: text, meta and binary.
VALID = [
    b"set k1 0 0 5\r\nhello\r\n",
    b"get k1 k2 k3\r\n",
    b"gets k1\r\n",
    b"mg k1 v f t c\r\n",
    b"ms k2 5 T10 F3\r\nhello\r\n",
    b"ma n MI D5 N0\r\n",
    b"incr n 5\r\n",
    b"delete k1\r\n",
    b"touch k1 10\r\n",
    b"append k1 0 0 3\r\nabc\r\n",
    struct.pack(">BBHBBHIIQ", 0x80, 1, 2, 8, 0, 0, 15, 0, 0) + bytes(8) + b"k3hello",
    struct.pack(">BBHBBHIIQ", 0x80, 0, 2, 0, 0, 0, 2, 0, 0) + b"k3",
]


def mutate(rnd, req):
    b = bytearray(req)
    for _ in range(rnd.randrange(1, 4)):
        r, i = rnd.random(), rnd.randrange(len(b) + 1)
        if r < 0.4 and b:
            b[min(i, len(b) - 1)] = rnd.randrange(256)
        elif r < 0.7:
            b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 8)))
        else:
            del b[i:i + rnd.randrange(1, 8)]
    return bytes(b)


def attacker(port, seed, stop):
    """Sends mutated requests, reading whatever comes back, reconnecting when closed."""
    rnd, s = random.Random(seed), None
    while not stop.is_set():
        try:
            if s is None:
                s = socket.create_connection(("127.0.0.1", port))
                s.setblocking(False)
            send_some(s, mutate(rnd, rnd.choice(VALID)))
            if select.select([s], [], [], 0.001)[0] and not s.recv(1 << 16):
                raise ConnectionError()
        except OSError:
            if s is not None:
                s.close()
            s = None


def cpu_seconds(pid):
    """User + system CPU time a process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mutated(srv, trips=20000):
    stop = multiprocessing.Event()
    procs = [multiprocessing.Process(target=attacker, args=(srv.port, i, stop)) for i in range(8)]
    for p in procs:
        p.start()
    time.sleep(1)
    c = srv.connect()
    v = b"w" * 100
    lat = []
    cpu0 = cpu_seconds(srv.proc.pid)
    try:
        for i in range(trips):
            t0 = time.perf_counter()
            got = roundtrip(c, b"set good 0 0 %d\r\n%s\r\nget good\r\n" % (len(v), v), b"END\r\n")
            lat.append(time.perf_counter() - t0)
            if got != b"STORED\r\nVALUE good 0 %d\r\n%s\r\nEND\r\n" % (len(v), v):
                raise SystemExit(f"well-behaved client answered wrongly: {got[:80]!r}")
    finally:
        cpu = cpu_seconds(srv.proc.pid) - cpu0
        stop.set()
        for p in procs:
            p.join()
    lat.sort()
    return (
        f"p99 {lat[len(lat) * 99 // 100] * 1000:.2f} ms (p50 {lat[len(lat) // 2] * 1000:.2f} ms, "
        f"p99.9 {lat[len(lat) * 999 // 1000] * 1000:.1f} ms; server CPU {cpu:.2f} s)"
    )


def metadump(srv, n=1_000_000):
    c = srv.connect()
    load = b"".join(b"set dumpkey:%08d 0 0 10 noreply\r\n0123456789\r\n" % i for i in range(n))
    roundtrip(c, load + b"mn\r\n", b"MN\r\n")
    before = settle(srv)
    d = socket.socket()
    d.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    d.connect(("127.0.0.1", srv.port))
    d.settimeout(30)
    d.sendall(b"lru_crawler metadump all\r\n")
    grown = settle(srv) - before
    well_behaved(srv, 3)
    size, keys, rest, end = 0, set(), b"", False
    while not end:
        chunk = d.recv(1 << 20)
        if not chunk:
            break
        size += len(chunk)
        *done, rest = (rest + chunk).split(b"\n")
        keys.update(l.split(b" ", 1)[0] for l in done if l.startswith(b"key=dumpkey"))
        end = b"END\r" in done
    lines = len(keys)
    return f"+{grown / 1024:,.1f} MB (dump {size / 1e6:,.1f} MB, {lines:,} keys)"


CASES = [
    ("an idle connection (2000 connections that each did one request)", [], idle),
    ("5 connections pipeline `get`s of a 500 KB value and never read", [], unread),
    ("200 connections each stall halfway through a 1 MB `set` value, `-m 64`", ["-m", "64"], stalled),
    ("a well-behaved client's set+get (20000 round trips) while 8 connections send mutated requests", [], mutated),
    ("a client asks for `lru_crawler metadump all` of 1,000,000 items and does not read, `-m 1024`", ["-m", "1024"], metadump),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    ap.add_argument("--bin", default=f"{target}/release/ferrocache")
    ap.add_argument("--before", help="a second ferrocache binary to compare")
    ap.add_argument("--markdown", action="store_true", help="print a docs/reliability.md table")
    ap.add_argument("--only", help="run only the cases whose function has this name")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run each case this many times, the servers taking turns")
    a = ap.parse_args()
    rows = []
    for label, extra, case in [c for c in CASES for _ in range(a.rounds)]:
        if a.only and case.__name__ != a.only:
            continue
        row = [label]
        bins = [["memcached"]] + ([[a.before]] if a.before else []) + [[a.bin]]
        for cmd in bins:
            srv = Server(cmd, extra)
            try:
                row.append(case(srv))
            finally:
                srv.stop()
        rows.append(row)
        if not a.markdown:
            print(f"{row[0]}: " + ", ".join(row[1:]), flush=True)
    if a.markdown:
        before = " ferrocache before |" if a.before else ""
        print(f"| what a client does | memcached 1.6.18 |{before} ferrocache |")
        print("|---|---|---|" + ("---|" if a.before else ""))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
