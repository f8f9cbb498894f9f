#!/usr/bin/env python3
"""Soak: hundreds of connections over text, meta and binary doing random sets, gets, appends,
prepends, incr/decr, touches, deletes, expiries and flushes with checksummed values, clients
killed mid-request (RST) and memory pressure (-m 64, values up to 600 KB, evictions), for a
bounded time. Reports operations, corrupt reads (must be 0), unexpected replies, and RSS,
descriptors and connections over time.

Every value is a run of records `<len:crc:payload>` whose CRC-32 covers the key and the payload:
a set writes one record, an append or prepend adds one, so whatever interleaving of writers won,
a read must parse into whole records of its own key. Counters (incr/decr) must read as numbers.

Usage: benches/soak.py [--bin PATH] [--minutes N] [--conns 300] [--threads 8] [--markdown]
Exit status 1 on a corrupt read, an unexpected reply or a dead server.
"""

import argparse
import os
import random
import re
import socket
import struct
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile_rss import Server  # noqa: E402  (start-up, RSS, connect: one copy)

KEYS = 3000
COUNTERS = 50
RECORD = re.compile(rb"<(\d+):([0-9a-f]{8}):")
# Replies a store may get under memory pressure or for a value grown past -I.
STORE_FAIL = (b"SERVER_ERROR out of memory storing object", b"SERVER_ERROR object too large for cache")


def record(key, rnd):
    n = rnd.choice((rnd.randrange(1, 200), rnd.randrange(200, 4000), rnd.randrange(4000, 60000)))
    if rnd.random() < 0.02:
        n = rnd.randrange(100_000, 600_000)
    seed = rnd.randrange(256)
    payload = bytes((seed + i * 7) & 0xFF for i in range(min(n, 251))) * (n // 251 + 1)
    payload = payload[:n]
    return b"<%d:%08x:%s>" % (n, zlib.crc32(key + payload), payload)


def intact(key, value):
    """True when `value` is whole records of `key`."""
    pos = 0
    while pos < len(value):
        m = RECORD.match(value, pos)
        if not m:
            return False
        n, crc = int(m.group(1)), int(m.group(2), 16)
        start = m.end()
        payload = value[start:start + n]
        if len(payload) != n or value[start + n:start + n + 1] != b">":
            return False
        if zlib.crc32(key + payload) != crc:
            return False
        pos = start + n + 1
    return pos > 0


class Closed(Exception):
    pass


class Conn:
    """One client connection speaking one protocol, with a buffered reader."""

    def __init__(self, srv, proto):
        self.srv, self.proto = srv, proto
        self.sock = srv.connect()
        self.buf = b""

    def fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise Closed()
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def kill(self):
        """Close with a reset, whatever is in flight."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    # ----- binary -----
    def bin(self, opcode, key=b"", extras=b"", value=b"", cas=0):
        body = len(extras) + len(key) + len(value)
        self.sock.sendall(struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), 0, 0, body, 0, cas)
                          + extras + key + value)
        h = self.exact(24)
        _, _, klen, elen, _, status, blen, _, _ = struct.unpack(">BBHBBHIIQ", h)
        body = self.exact(blen)
        return status, body[elen + klen:]


class Soak:
    def __init__(self, srv, args):
        self.srv, self.args = srv, args
        self.lock = threading.Lock()
        self.ops = self.corrupt = self.unexpected = self.kills = 0
        self.samples = []
        self.errors = []
        self.stop = time.time() + args.minutes * 60

    def bad(self, what):
        with self.lock:
            self.unexpected += 1
            if len(self.errors) < 20:
                self.errors.append(what)

    def check_value(self, key, value):
        if value is None:
            return
        ok = re.fullmatch(rb"\d+ *", value) is not None if key.startswith(b"ctr") else intact(key, value)
        if not ok:
            with self.lock:
                self.corrupt += 1
                if len(self.errors) < 20:
                    self.errors.append(f"corrupt {key!r}: {value[:80]!r} ({len(value)} bytes)")

    # ----- one operation, per protocol -----
    def op(self, c, rnd):
        r = rnd.random()
        ctr = rnd.random() < 0.1
        key = b"ctr%d" % rnd.randrange(COUNTERS) if ctr else b"soak:%d" % rnd.randrange(KEYS)
        exp = rnd.choice((0, 0, 0, 0, 1, 2, 3, -1))
        if ctr:
            if r < 0.1:
                self.store(c, "set", key, b"%d" % rnd.randrange(1000), exp)
            elif r < 0.8:
                self.arith(c, key, rnd.random() < 0.6, rnd.randrange(1, 1000))
            else:
                self.check_value(key, self.get(c, key))
        elif r < 0.35:
            self.store(c, "set", key, record(key, rnd), exp)
        elif r < 0.45:
            self.store(c, rnd.choice(("append", "prepend")), key, record(key, rnd), 0)
        elif r < 0.5:
            self.store(c, rnd.choice(("add", "replace")), key, record(key, rnd), exp)
        elif r < 0.9:
            self.check_value(key, self.get(c, key))
        elif r < 0.95:
            self.delete(c, key)
        else:
            self.touch(c, key, exp)

    def store(self, c, mode, key, value, exp):
        if c.proto == "binary":
            opcode = {"set": 1, "add": 2, "replace": 3, "append": 0x0E, "prepend": 0x0F}[mode]
            extras = b"" if mode in ("append", "prepend") else struct.pack(">II", 0, exp & 0xFFFFFFFF if exp >= 0 else 2592001)
            status, _ = c.bin(opcode, key, extras, value)
            if status not in (0, 1, 2, 3, 5, 0x82):
                self.bad(f"binary {mode} status {status:#x}")
            return
        if c.proto == "meta":
            m = {"set": "S", "add": "E", "replace": "R", "append": "A", "prepend": "P"}[mode]
            c.sock.sendall(b"ms %s %d T%d M%s\r\n%s\r\n" % (key, len(value), exp, m.encode(), value))
            ok = (b"HD", b"NS", b"NF", b"EX") + STORE_FAIL
        else:
            c.sock.sendall(b"%s %s 0 %d %d\r\n%s\r\n" % (mode.encode(), key, exp, len(value), value))
            ok = (b"STORED", b"NOT_STORED") + STORE_FAIL
        line = c.line()
        if line not in ok:
            self.bad(f"{c.proto} {mode}: {line[:80]!r}")

    def get(self, c, key):
        if c.proto == "binary":
            status, value = c.bin(0x00, key)
            if status == 1:
                return None
            if status != 0:
                self.bad(f"binary get status {status:#x}")
                return None
            return value
        if c.proto == "meta":
            c.sock.sendall(b"mg %s v\r\n" % key)
            line = c.line()
            if line == b"EN":
                return None
            m = re.fullmatch(rb"VA (\d+)", line)
        else:
            c.sock.sendall(b"get %s\r\n" % key)
            line = c.line()
            if line == b"END":
                return None
            m = re.fullmatch(rb"VALUE (\S+) \d+ (\d+)", line)
            if m and m.group(1) != key:
                self.bad(f"get {key!r} answered for {m.group(1)!r}")
        if not m:
            self.bad(f"{c.proto} get: {line[:80]!r}")
            raise Closed()
        n = int(m.group(m.lastindex))
        value = c.exact(n + 2)[:n]
        if c.proto == "text" and c.line() != b"END":
            self.bad("text get: no END")
        return value

    def arith(self, c, key, incr, delta):
        if c.proto == "binary":
            extras = struct.pack(">QQI", delta, 0, 0)
            status, _ = c.bin(5 if incr else 6, key, extras)
            if status not in (0, 6, 0x82):
                self.bad(f"binary arith status {status:#x}")
            return
        if c.proto == "meta":
            c.sock.sendall(b"ma %s M%s D%d N0 J0\r\n" % (key, b"I" if incr else b"D", delta))
            ok = (b"HD", b"NF", b"NS")
        else:
            c.sock.sendall(b"%s %s %d\r\n" % (b"incr" if incr else b"decr", key, delta))
            ok = (b"NOT_FOUND",)
        line = c.line()
        if line not in ok and not line.isdigit() and not line.startswith(b"SERVER_ERROR out of memory"):
            self.bad(f"{c.proto} arith: {line[:80]!r}")

    def delete(self, c, key):
        if c.proto == "binary":
            status, _ = c.bin(0x04, key)
            ok = status in (0, 1)
        elif c.proto == "meta":
            c.sock.sendall(b"md %s\r\n" % key)
            ok = c.line() in (b"HD", b"NF")
        else:
            c.sock.sendall(b"delete %s\r\n" % key)
            ok = c.line() in (b"DELETED", b"NOT_FOUND")
        if not ok:
            self.bad(f"{c.proto} delete")

    def touch(self, c, key, exp):
        if c.proto == "binary":
            status, _ = c.bin(0x1C, key, struct.pack(">I", exp if exp >= 0 else 2592001))
            ok = status in (0, 1)
        elif c.proto == "meta":
            c.sock.sendall(b"mg %s T%d\r\n" % (key, exp))
            ok = c.line() in (b"HD", b"EN")
        else:
            c.sock.sendall(b"touch %s %d\r\n" % (key, exp))
            ok = c.line() in (b"TOUCHED", b"NOT_FOUND")
        if not ok:
            self.bad(f"{c.proto} touch")

    def hostile(self, c, rnd):
        """Kills the client mid-request: half a value sent, or a large get never read."""
        key = b"soak:%d" % rnd.randrange(KEYS)
        if rnd.random() < 0.5:
            value = record(key, rnd)
            c.sock.sendall(b"set %s 0 0 %d\r\n%s" % (key, len(value), value[: len(value) // 2]))
        else:
            c.sock.sendall(b"get %s\r\n" % key * 20)
        c.kill()

    def worker(self, seed, nconns):
        rnd = random.Random(seed)
        protos = ("text", "meta", "binary")
        conns = [Conn(self.srv, protos[i % 3]) for i in range(nconns)]
        n = 0
        while time.time() < self.stop:
            i = rnd.randrange(nconns)
            c = conns[i]
            try:
                if rnd.random() < 0.002:
                    self.hostile(c, rnd)
                    with self.lock:
                        self.kills += 1
                    raise Closed()
                if rnd.random() < 0.0002:
                    c.sock.sendall(b"flush_all\r\n" if c.proto != "binary" else b"")
                    if c.proto != "binary" and c.line() != b"OK":
                        self.bad("flush_all")
                self.op(c, rnd)
                n += 1
            except (Closed, OSError):
                conns[i] = Conn(self.srv, c.proto)
            if n % 200 == 0:
                with self.lock:
                    self.ops += 200
        for c in conns:
            c.sock.close()

    def sample(self, t0):
        pid = self.srv.proc.pid
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        s = self.srv.connect()
        s.sendall(b"stats\r\n")
        buf = b""
        while not buf.endswith(b"END\r\n"):
            buf += s.recv(65536)
        s.close()
        st = dict(re.findall(rb"STAT (\S+) (\S+)", buf))
        row = (round(time.time() - t0), self.srv.rss_kib(), fds, int(st[b"curr_connections"]),
               int(st[b"evictions"]), self.ops, self.corrupt)
        self.samples.append(row)
        print("t=%5ds rss=%7d KiB fds=%5d conns=%4d evictions=%8d ops=%9d corrupt=%d" % row, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/ferrocache")
    ap.add_argument("--minutes", type=float, default=5)
    ap.add_argument("--conns", type=int, default=300)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    srv = Server([args.bin], ["-m", "64"])
    soak = Soak(srv, args)
    t0 = time.time()
    threads = [threading.Thread(target=soak.worker, args=(i, args.conns // args.threads), daemon=True)
               for i in range(args.threads)]
    for t in threads:
        t.start()
    every = max(5.0, args.minutes * 60 / 30)
    while any(t.is_alive() for t in threads):
        time.sleep(min(every, max(0.1, soak.stop - time.time() + 0.5)))
        if srv.proc.poll() is not None:
            print("server died", file=sys.stderr)
            sys.exit(1)
        soak.sample(t0)
    time.sleep(0.5)
    soak.sample(t0)  # after every client closed: descriptors and connections back
    srv.stop()
    warm = soak.samples[len(soak.samples) // 5]
    rss = [s[1] for s in soak.samples[len(soak.samples) // 5:]]
    conns = args.conns // args.threads * args.threads
    print(f"\n{soak.ops} operations in {args.minutes} min over {conns} connections "
          f"(text, meta, binary), {soak.kills} clients killed mid-request")
    print(f"corrupt reads: {soak.corrupt}, unexpected replies: {soak.unexpected}")
    print(f"RSS after warm-up (t={warm[0]}s): {warm[1]} KiB; after it: min {min(rss)}, max {max(rss)} KiB")
    print(f"descriptors: {soak.samples[0][2]} at the first sample, {soak.samples[-1][2]} after the clients left")
    for e in soak.errors:
        print("  ", e)
    if args.markdown:
        print("\n| t (s) | RSS (KiB) | descriptors | connections | evictions | operations | corrupt |")
        print("|---|---|---|---|---|---|---|")
        for s in soak.samples:
            print("| " + " | ".join(str(x) for x in s) + " |")
    sys.exit(1 if soak.corrupt or soak.unexpected else 0)


if __name__ == "__main__":
    main()
