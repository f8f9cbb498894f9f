"""Records where libmemcached's weighted ketama puts keys, as seen on the servers themselves.

Usage:
    python3 ketama_pylibmc.py PORT... [--host 127.0.0.1] [--count 200] [--prefix ketama-]
                              [--verify]

Client: Debian `python3-pylibmc` (libmemcached 1.1.4), run with /usr/bin/python3:
    apt-get install -y python3-pylibmc

Steps: `flush_all` each server (plain socket); write COUNT keys through
`pylibmc.Client(["HOST:PORT", ...], behaviors={"ketama_weighted": True})` (text protocol;
MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED = MD5 key hash + weighted consistent distribution, i.e.
libketama / php OPT_LIBKETAMA_COMPATIBLE; servers in the order given, weight 1 each); then read
every server with a plain-socket multi-get and print one line per key, in key order:

    <key> <port>

Keys are PREFIX + a zero-padded index (ketama-000 .. ketama-199), so a caller can rebuild the
list. With --verify, also compares every placement with a pure-Python model of libmemcached's
ketama (float32 points-per-server, "host:port-i" names, port dropped when 11211) and fails on
any difference.

Exit codes: 0 ok; 1 a key was missing, found on more than one server, a server unreachable, or a
--verify mismatch (message on stderr); 2 usage; 3 pylibmc missing.
"""
import argparse
import hashlib
import socket
import struct
import sys

try:
    import pylibmc
except ImportError as e:
    print("missing pylibmc (%s); install with: apt-get install -y python3-pylibmc "
          "and run with /usr/bin/python3" % e, file=sys.stderr)
    sys.exit(3)


def fail(msg):
    print("FAIL: %s" % msg, file=sys.stderr)
    sys.exit(1)


def raw(host, port, data, until, timeout=5.0):
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        while not buf.endswith(until):
            d = s.recv(65536)
            if not d:
                fail("server %d closed the connection" % port)
            buf += d
        return buf


def raw_get_many(host, port, keys):
    """Returns {key: value} for the keys this server holds (50 keys per request)."""
    found = {}
    with socket.create_connection((host, port), timeout=5.0) as s:
        for i in range(0, len(keys), 50):
            s.sendall(b"get " + b" ".join(keys[i:i + 50]) + b"\r\n")
            buf = b""
            while True:
                while b"\r\n" not in buf:
                    d = s.recv(65536)
                    if not d:
                        fail("server %d closed the connection during get" % port)
                    buf += d
                line, buf = buf.split(b"\r\n", 1)
                if line == b"END":
                    break
                p = line.split()
                if p[0] != b"VALUE":
                    fail("unexpected reply from %d: %r" % (port, line))
                n = int(p[3])
                while len(buf) < n + 2:
                    d = s.recv(65536)
                    if not d:
                        fail("server %d closed the connection during get" % port)
                    buf += d
                found[p[1]] = buf[:n]
                buf = buf[n + 2:]
    return found


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def model_ring(host, ports):
    """libmemcached update_continuum, weighted (libketama) mode, all weights 1."""
    n = len(ports)
    pct = f32(1.0 / n)
    pps = int(f32(f32(f32(pct * 160) / 4) * n) + 1e-10) * 4  # float32 maths, then floor
    ring = []
    for port in ports:
        for i in range(pps // 4):
            name = ("%s-%d" % (host, i)) if port == 11211 else ("%s:%d-%d" % (host, port, i))
            d = hashlib.md5(name.encode()).digest()
            for a in range(4):
                ring.append((struct.unpack_from("<I", d, 4 * a)[0], port))
    ring.sort(key=lambda x: x[0])
    return ring


def model_lookup(ring, ports, key):
    if len(ports) == 1:
        return ports[0]
    h = struct.unpack_from("<I", hashlib.md5(key).digest(), 0)[0]
    lo, hi = 0, len(ring)
    while lo < hi:
        mid = (lo + hi) // 2
        if ring[mid][0] < h:
            lo = mid + 1
        else:
            hi = mid
    return ring[lo if lo < len(ring) else 0][1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ports", type=int, nargs="+")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--prefix", default="ketama-")
    ap.add_argument("--verify", action="store_true")
    a = ap.parse_args()
    if len(set(a.ports)) != len(a.ports):
        ap.error("duplicate port")

    for p in a.ports:
        if raw(a.host, p, b"flush_all\r\n", b"\r\n") != b"OK\r\n":
            fail("flush_all on %d failed" % p)

    width = max(3, len(str(a.count - 1)))
    keys = [("%s%0*d" % (a.prefix, width, i)).encode() for i in range(a.count)]
    c = pylibmc.Client(["%s:%d" % (a.host, p) for p in a.ports], binary=False,
                       behaviors={"ketama_weighted": True, "tcp_nodelay": True})
    if not c.behaviors.get("ketama_weighted"):
        fail("pylibmc did not accept ketama_weighted: %r" % c.behaviors)
    for k in keys:
        if not c.set(k.decode(), b"v:" + k):
            fail("pylibmc set %r failed" % k)
    for k in keys:
        if c.get(k.decode()) != b"v:" + k:
            fail("pylibmc get %r returned %r" % (k, c.get(k.decode())))
    c.disconnect_all()

    where = {}
    for p in a.ports:
        for k, v in raw_get_many(a.host, p, keys).items():
            if v != b"v:" + k:
                fail("key %r on %d has value %r" % (k, p, v))
            where.setdefault(k, []).append(p)
    for k in keys:
        if len(where.get(k, [])) != 1:
            fail("key %r found on %s, expected exactly one server" % (k, where.get(k, [])))

    if a.verify:
        ring = model_ring(a.host, a.ports)
        bad = [(k, where[k][0], model_lookup(ring, a.ports, k)) for k in keys
               if model_lookup(ring, a.ports, k) != where[k][0]]
        if bad:
            fail("%d/%d keys differ from the ketama model, e.g. %r" % (len(bad), len(keys), bad[:5]))
        print("verify: %d/%d keys match the libmemcached ketama model" % (len(keys), len(keys)),
              file=sys.stderr)

    out = sys.stdout
    for k in keys:
        out.write("%s %d\n" % (k.decode(), where[k][0]))
    out.flush()


if __name__ == "__main__":
    main()
