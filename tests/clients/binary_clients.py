"""Drives a memcached-compatible server on 127.0.0.1:<port> over the BINARY protocol with two real
clients: python-binary-memcached (module bmemcached) and pylibmc (libmemcached) with binary=True,
plus a few raw-socket checks of the binary auth replies.

Usage:
  python3 binary_clients.py <port>                             # server without SASL
  python3 binary_clients.py <port> --user U --password P       # server started with -S (SASL
                                                               # PLAIN), U/P a valid account
Run it with Debian's Python (/usr/bin/python3); the clients come from Debian packages:
  apt-get install -y python3-binary-memcached python3-pylibmc libsasl2-modules
(libsasl2-modules provides the client-side PLAIN mechanism libmemcached needs for SASL; pip's
python-binary-memcached works as well.)

Checks every returned value exactly; prints "binary clients ok" and exits 0 when all pass,
otherwise exits non-zero naming the first mismatch. Validated against memcached 1.6.18
(`memcached -p PORT -l 127.0.0.1 -U 0 -u root`, with and without `-S`).
"""
import argparse
import random
import socket
import struct
import sys
import time

try:
    import bmemcached
    from bmemcached.exceptions import MemcachedException
    import pylibmc
except ImportError as e:  # a missing client is a failure, never a silent pass
    sys.exit("missing client (%s): apt-get install -y python3-binary-memcached python3-pylibmc "
             "libsasl2-modules" % e)

HDR = struct.Struct("!BBHBBHIIQ")
AUTH_ERROR = 0x20
UNKNOWN_COMMAND = 0x81


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def eq(got, want, what):
    if got != want:
        g, w = repr(got), repr(want)
        raise AssertionError("%s: got %s, want %s" % (what, g[:300], w[:300]))


def raises(fn, exc, what):
    try:
        got = fn()
    except exc:
        return
    raise AssertionError("%s: want %s raised, got %r" % (what, exc.__name__, got))


def values():
    """Values of several sizes: empty, 1 byte, binary bytes, and up to 500 KB."""
    rnd = random.Random(1234)
    return {
        "v0": b"",
        "v1": b"x",
        "vbin": bytes(range(256)) * 4 + b"\r\nEND\r\n\x00\x80\x81",
        "v10k": rnd.randbytes(10_000),
        "v100k": bytes((i * 7) % 251 for i in range(100_000)),
        "v500k": rnd.randbytes(500_000),
        "v500k_text": b"0123456789abcdef" * 32_000,
    }


# --------------------------------------------------------------------------- bmemcached

def bmemcached_workload(port, user, password):
    addr = "127.0.0.1:%d" % port
    c = bmemcached.Client([addr], user, password, socket_timeout=5)
    eq(c.flush_all(), True, "bmemcached flush_all")

    # set/get of every size, raw on the wire (compress_level=0) and with the client's zlib
    for name, v in values().items():
        eq(c.set("bm:" + name, v, compress_level=0), True, "bmemcached set %s" % name)
        eq(c.get("bm:" + name), v, "bmemcached get %s (%d bytes)" % (name, len(v)))
        eq(c.set("bmz:" + name, v), True, "bmemcached set (zlib) %s" % name)
        eq(c.get("bmz:" + name), v, "bmemcached get (zlib) %s" % name)
    eq(c.get("bm:missing"), None, "bmemcached get miss")
    eq(c.get("bm:missing", default="dflt"), "dflt", "bmemcached get miss default")

    # the client's own serialisation through flags: str, int, pickled object
    eq(c.set("bm:str", "héllo wörld"), True, "set str")
    eq(c.get("bm:str"), "héllo wörld", "get str")
    eq(c.set("bm:int", 41), True, "set int")
    eq(c.get("bm:int"), 41, "get int")
    eq(c.set("bm:obj", {"a": [1, 2, 3], "b": None}), True, "set obj")
    eq(c.get("bm:obj"), {"a": [1, 2, 3], "b": None}, "get obj")
    long_key = "k" * 250
    eq(c.set(long_key, b"long"), True, "set 250-byte key")
    eq(c.get(long_key), b"long", "get 250-byte key")

    # delete (bmemcached reports True for a miss too: only EXISTS is False)
    eq(c.delete("bm:v1"), True, "delete hit")
    eq(c.get("bm:v1"), None, "get after delete")
    eq(c.delete("bm:v1"), True, "delete miss (bmemcached maps NOT_FOUND to True)")

    # add / replace
    eq(c.add("bm:add", b"1"), True, "add new")
    eq(c.add("bm:add", b"2"), False, "add existing")
    eq(c.get("bm:add"), b"1", "add kept first value")
    eq(c.replace("bm:add", b"3"), True, "replace existing")
    eq(c.replace("bm:nope", b"3"), False, "replace missing")
    eq(c.get("bm:add"), b"3", "replace result")
    eq(c.get("bm:nope"), None, "replace missing stored nothing")

    # incr / decr: a miss creates the key with the initial value (returned as is)
    eq(c.incr("bm:cnt", 1, default=10, time=0), 10, "incr miss creates with initial")
    eq(c.incr("bm:cnt", 5), 15, "incr hit")
    eq(c.decr("bm:cnt", 3), 12, "decr hit")
    eq(c.decr("bm:cnt", 100), 0, "decr floors at zero")
    # memcached decrements in place when the digits shrink, padding with spaces: 12 -> "0 "
    eq(c.get("bm:cnt"), "0 ", "counter text after decr (flags 0 -> str)")
    eq(c.decr("bm:cnt2", 1, default=7, time=0), 7, "decr miss creates with initial")
    eq(c.incr("bm:int", 1), 42, "incr of a client-int value")
    eq(c.get("bm:int"), 42, "incr keeps the item's flags")
    eq(c.set("bm:max", b"18446744073709551615"), True, "set 2^64-1")
    eq(c.incr("bm:max", 2), 1, "incr wraps at 2^64")
    try:
        c.incr("bm:str", 1)
        raise AssertionError("incr on a non-numeric value must fail")
    except MemcachedException as e:
        eq(e.code, 0x06, "incr non-numeric status")

    # gets + cas
    eq(c.set("bm:cas", b"one"), True, "set for cas")
    value, token = c.gets("bm:cas")
    check(value == b"one" and isinstance(token, int) and token > 0, "gets: %r %r" % (value, token))
    eq(c.cas("bm:cas", b"two", token), True, "cas with current token")
    eq(c.cas("bm:cas", b"three", token), False, "cas with stale token")
    eq(c.get("bm:cas"), b"two", "cas result")
    value2, token2 = c.gets("bm:cas")
    check(value2 == b"two" and token2 != token, "gets after cas: %r %r" % (value2, token2))
    eq(c.cas("bm:cas-missing", b"x", 12345), False, "cas on a missing key")
    eq(c.get("bm:cas-missing"), None, "cas on a missing key stored nothing")
    eq(c.get("bm:cas", get_cas=True), (b"two", token2), "get(get_cas=True)")
    eq(c.gets("bm:missing"), (None, None), "gets miss")

    # set_multi (SETQ/ADDQ + NOOP) / get_multi (GETKQ... + GETK)
    items = {"bm:m:%d" % i: ("value-%d" % i).encode() * (i % 9 + 1) for i in range(300)}
    items["bm:m:empty"] = b""
    items["bm:m:big"] = values()["v500k"]
    eq(c.set_multi(items, compress_level=0), [], "set_multi failures")
    keys = list(items)
    for start in range(0, len(keys), 100):
        chunk = keys[start:start + 100]
        got = c.get_multi(chunk + ["bm:absent-1", "bm:absent-2"])
        eq(got, {k: items[k] for k in chunk}, "get_multi at %d" % start)
    got = c.get_multi(["bm:m:1", "bm:absent-1"], get_cas=True)
    check(set(got) == {"bm:m:1"} and got["bm:m:1"][0] == items["bm:m:1"] and got["bm:m:1"][1] > 0,
          "get_multi(get_cas=True): %r" % (got,))
    eq(c.get_multi([]), {}, "get_multi of nothing")
    # a (key, 0) tuple means add-if-absent: ADDQ on an existing key reports the key back
    eq(c.set_multi({("bm:m:1", 0): b"x", "bm:m:new": b"n"}), [("bm:m:1", 0)], "set_multi add-existing")
    eq(c.get("bm:m:1"), items["bm:m:1"], "failed ADDQ left the value")
    eq(c.get("bm:m:new"), b"n", "set_multi stored the other key")
    eq(c.delete_multi(["bm:m:2", "bm:m:3"]), True, "delete_multi hits")
    eq(c.get_multi(["bm:m:2", "bm:m:3"]), {}, "deleted keys gone")
    eq(c.delete_multi(["bm:m:4", "bm:absent-9"]), False, "delete_multi with a miss")
    eq(c.get("bm:m:4"), None, "delete_multi removed the hit")

    # a value over the 1 MB item limit is refused (E2BIG) and the connection stays usable
    try:
        c.set("bm:toolarge", b"x" * (2 * 1024 * 1024), compress_level=0)
        raise AssertionError("a 2 MB value must be refused")
    except MemcachedException as e:
        eq(e.code, 0x03, "too-large value status")
    eq(c.get("bm:toolarge"), None, "too-large value not stored")
    eq(c.get("bm:cas"), b"two", "connection usable after E2BIG")

    # noop, stats, stats with a key
    eq([s.noop() for s in c.servers], [0], "noop status")
    stats = c.stats()[addr]
    check(int(stats["curr_items"]) > 0, "stats curr_items: %r" % stats.get("curr_items"))
    check(stats["version"].startswith(b"1.6"), "stats version: %r" % stats.get("version"))
    for k in ("pid", "uptime", "cmd_get", "cmd_set", "get_hits", "get_misses", "curr_connections"):
        check(k in stats and stats[k].isdigit(), "stats %s: %r" % (k, stats.get(k)))
    settings = c.stats("settings")[addr]
    check(settings.get("maxbytes", b"").isdigit(), "stats settings maxbytes: %r" % (settings,))
    eq(settings.get("item_size_max"), b"1048576", "stats settings item_size_max")

    # flush_all
    eq(c.flush_all(), True, "flush_all")
    eq(c.get("bm:cas"), None, "get after flush_all")
    eq(c.get_multi(keys[:10]), {}, "get_multi after flush_all")
    c.disconnect_all()


# --------------------------------------------------------------------------- pylibmc

def pylibmc_client(port, user, password, **behaviors):
    b = {"cas": True, "tcp_nodelay": True, "connect_timeout": 5000,
         "receive_timeout": 5_000_000, "send_timeout": 5_000_000}
    b.update(behaviors)
    return pylibmc.Client(["127.0.0.1:%d" % port], binary=True, username=user, password=password,
                          behaviors=b)


def pylibmc_workload(port, user, password):
    if user:
        check(pylibmc.support_sasl, "this pylibmc was built without SASL support")
    c = pylibmc_client(port, user, password)
    eq(c.flush_all(), True, "pylibmc flush_all")

    for name, v in values().items():
        eq(c.set("pl:" + name, v), True, "pylibmc set %s" % name)
        eq(c.get("pl:" + name), v, "pylibmc get %s (%d bytes)" % (name, len(v)))
    eq(c.get("pl:missing"), None, "pylibmc get miss")

    eq(c.set("pl:s", "text"), True, "set str")
    eq(c.get("pl:s"), "text", "get str")
    eq(c.set("pl:i", 42), True, "set int")
    eq(c.get("pl:i"), 42, "get int")
    eq(c.set("pl:obj", {"a": [1, 2, 3]}), True, "set obj")
    eq(c.get("pl:obj"), {"a": [1, 2, 3]}, "get obj")

    eq(c.delete("pl:s"), True, "delete hit")
    eq(c.delete("pl:s"), False, "delete miss")
    eq(c.get("pl:s"), None, "get after delete")

    eq(c.add("pl:a", b"1"), True, "add new")
    eq(c.add("pl:a", b"2"), False, "add existing")
    eq(c.get("pl:a"), b"1", "add kept first value")
    eq(c.replace("pl:a", b"3"), True, "replace existing")
    # over binary, libmemcached turns REPLACE's "Not found" (status 1) into NotFound
    raises(lambda: c.replace("pl:nope", b"3"), pylibmc.NotFound, "replace missing")
    eq(c.get("pl:a"), b"3", "replace result")
    eq(c.get("pl:nope"), None, "replace missing stored nothing")

    eq(c.append("pl:a", b"-tail"), True, "append")
    eq(c.prepend("pl:a", b"head-"), True, "prepend")
    eq(c.get("pl:a"), b"head-3-tail", "append/prepend result")
    eq(c.append("pl:nope", b"x"), False, "append miss")
    eq(c.prepend("pl:nope", b"x"), False, "prepend miss")
    eq(c.get("pl:nope"), None, "append/prepend miss stored nothing")
    eq(c.set("pl:e", b""), True, "set empty")
    eq(c.append("pl:e", b"abc"), True, "append to empty")
    eq(c.get("pl:e"), b"abc", "append to empty result")

    eq(c.set("pl:n", b"10"), True, "set counter")
    eq(c.incr("pl:n", 5), 15, "incr")
    eq(c.decr("pl:n", 20), 0, "decr floors at zero")
    eq(c.incr("pl:n"), 1, "incr default delta")
    eq(c.get("pl:n"), b"1 ", "counter text (15 -> 0 -> 1 in place: \"1 \")")
    try:
        c.incr("pl:missing-n")  # binary INCR with exptime 0xffffffff: no auto-create
        raise AssertionError("incr on a missing key must fail")
    except pylibmc.NotFound:
        pass
    eq(c.get("pl:missing-n"), None, "failed incr created nothing")
    eq(c.set("pl:big", str(2 ** 64 - 1).encode()), True, "set 2^64-1")
    eq(c.incr("pl:big", 2), 1, "incr wraps at 2^64")
    eq(c.set("pl:nn", b"abc"), True, "set non-numeric")
    try:
        c.incr("pl:nn")
        raise AssertionError("incr on a non-numeric value must fail")
    except pylibmc.Error:
        pass
    eq(c.get("pl:nn"), b"abc", "failed incr left the value")

    eq(c.set("pl:c", b"one"), True, "set for cas")
    value, token = c.gets("pl:c")
    check(value == b"one" and token, "gets: %r %r" % (value, token))
    eq(c.cas("pl:c", b"two", token), True, "cas with current token")
    eq(c.cas("pl:c", b"three", token), False, "cas with stale token")
    eq(c.get("pl:c"), b"two", "cas result")
    value2, token2 = c.gets("pl:c")
    check(value2 == b"two" and token2 != token, "gets after cas: %r %r" % (value2, token2))
    eq(c.gets("pl:cas-missing"), (None, None), "gets miss")

    eq(c.set("pl:t", b"v", time=100), True, "set with ttl")
    eq(c.touch("pl:t", 0), True, "touch hit")
    eq(c.touch("pl:t-missing", 10), False, "touch miss")
    eq(c.get("pl:t"), b"v", "value after touch")

    # too large: E2BIG from the server (or refused client-side) -> TooBig; nothing stored
    try:
        ok = c.set("pl:toolarge", b"x" * (2 * 1024 * 1024))
        check(not ok, "a 2 MB value must be refused")
    except pylibmc.TooBig:
        pass
    eq(c.get("pl:toolarge"), None, "too-large value not stored")
    eq(c.get("pl:c"), b"two", "connection usable after a refused value")

    items = {"pl:key-%d" % i: ("value-%d" % i).encode() * (i % 7 + 1) for i in range(2000)}
    items["pl:key-empty"] = b""
    eq(c.set_multi(items), [], "set_multi failures")
    keys = list(items)
    for start in range(0, len(keys), 250):
        chunk = keys[start:start + 250]
        got = c.get_multi(chunk + ["pl:absent-1", "pl:absent-2"])
        eq(got, {k: items[k] for k in chunk}, "get_multi at %d" % start)
    eq(c.get_multi(keys[:5], key_prefix="pl:"), {}, "get_multi with a prefix that misses")
    eq(c.delete_multi(keys[:100]), True, "delete_multi")
    eq(c.get_multi(keys[:100]), {}, "deleted keys gone")
    eq(c.get(keys[100]), items[keys[100]], "other keys kept")

    # quiet (noreply) commands: SETQ/ADDQ/DELETEQ, including one the server refuses
    q = pylibmc_client(port, user, password, _noreply=True)
    eq(q.set("pl:q", b"quiet"), True, "quiet set")
    q.add("pl:q", b"refused")  # ADDQ on an existing key: the error packet arrives unasked
    eq(q.get("pl:q"), b"quiet", "get after a refused quiet add")
    for i in range(50):
        q.set("pl:q%d" % i, b"x%d" % i)
    eq(q.get_multi(["pl:q%d" % i for i in range(50)]), {"pl:q%d" % i: b"x%d" % i for i in range(50)},
       "get_multi after 50 quiet sets")
    q.delete("pl:q")
    # read back on the same connection: a quiet command is unacknowledged, so only requests that
    # follow it on its own connection are ordered after it
    eq(q.get("pl:q"), None, "quiet delete")
    q.disconnect_all()

    ((_, stats),) = c.get_stats()
    check(int(stats["curr_items"]) > 0, "stats curr_items: %r" % stats.get("curr_items"))
    check(stats["version"].startswith(b"1.6"), "stats version: %r" % stats.get("version"))
    check(int(stats["pid"]) > 0, "stats pid: %r" % stats.get("pid"))

    eq(c.flush_all(), True, "flush_all")
    eq(c.get("pl:a"), None, "get after flush_all")
    eq(c.get_multi(keys[200:210]), {}, "get_multi after flush_all")
    c.disconnect_all()


# --------------------------------------------------------------------------- raw socket

def req(opcode, key=b"", extras=b"", value=b"", opaque=0x0A0B0C0D):
    return HDR.pack(0x80, opcode, len(key), len(extras), 0, 0, len(key) + len(extras) + len(value),
                    opaque, 0) + extras + key + value


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def response(sock):
    """(opcode, status, opaque, cas, extras, key, value)"""
    hdr = recv_exact(sock, 24)
    magic, op, kl, el, _dt, status, bl, opaque, cas = HDR.unpack(hdr)
    eq(magic, 0x81, "response magic")
    body = recv_exact(sock, bl)
    return op, status, opaque, cas, body[:el], body[el:el + kl], body[el + kl:]


def closes(sock, what):
    """The server must close the connection (EOF within 2 s) without sending anything."""
    sock.settimeout(2)
    try:
        data = sock.recv(1024)
    except socket.timeout:
        raise AssertionError("%s: connection still open after 2 s" % what)
    except ConnectionResetError:
        return
    eq(data, b"", "%s: bytes before close" % what)


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def raw_checks_no_auth(port):
    s = connect(port)
    # without -S, the SASL opcodes are unknown commands (bmemcached relies on 0x81 to skip auth)
    s.sendall(req(0x20))
    eq(response(s), (0x20, UNKNOWN_COMMAND, 0x0A0B0C0D, 0, b"", b"", b"Unknown command"),
       "SASL LIST MECHS on a server without -S")
    s.sendall(req(0x0A))
    eq(response(s)[:2], (0x0A, 0), "NOOP after LIST MECHS")
    s.close()


def raw_checks_auth(port, user, password):
    plain = b"\0" + user.encode() + b"\0" + password.encode()
    bad = b"\0" + user.encode() + b"\0" + password.encode() + b"-wrong"

    # an unauthenticated GET: status 0x20 "Auth failure." and the connection is closed
    s = connect(port)
    s.sendall(req(0x00, key=b"k"))
    eq(response(s), (0x00, AUTH_ERROR, 0x0A0B0C0D, 0, b"", b"", b"Auth failure."),
       "unauthenticated GET")
    closes(s, "after an unauthenticated GET")
    s.close()

    # VERSION and SASL LIST MECHS are allowed before auth
    s = connect(port)
    s.sendall(req(0x0B))
    op, status, _, _, _, _, ver = response(s)
    check((op, status) == (0x0B, 0) and ver.startswith(b"1.6"), "unauthenticated VERSION: %r" % ver)
    s.sendall(req(0x20))
    op, status, _, _, _, _, mechs = response(s)
    check((op, status) == (0x20, 0) and b"PLAIN" in mechs.split(b" "), "LIST MECHS: %r" % mechs)
    # a wrong password: 0x20 "Auth failure.", connection kept; a retry with the right one works
    s.sendall(req(0x21, key=b"PLAIN", value=bad))
    eq(response(s), (0x21, AUTH_ERROR, 0x0A0B0C0D, 0, b"", b"", b"Auth failure."), "bad password")
    s.sendall(req(0x21, key=b"PLAIN", value=plain))
    eq(response(s), (0x21, 0, 0x0A0B0C0D, 0, b"", b"", b"Authenticated"), "good password after a bad one")
    s.sendall(req(0x00, key=b"raw:missing"))
    eq(response(s), (0x00, 0x01, 0x0A0B0C0D, 0, b"", b"", b"Not found"), "GET after auth")
    s.close()

    # -S makes the server binary-only: ASCII text (bad magic once 24 bytes are in) is answered
    # by closing the connection without a reply
    s = connect(port)
    s.sendall(b"version\r\n" * 3)
    closes(s, "ASCII 'version' x3 on a SASL server")
    s.close()


def auth_rejections(port, user, password):
    addr = "127.0.0.1:%d" % port
    # bmemcached with a wrong password: memcached answers SASL AUTH with 0x20, which this client
    # raises as MemcachedException(code=0x20) (its InvalidCredentials is for status 0x08)
    c = bmemcached.Client([addr], user, password + "-wrong", socket_timeout=5)
    try:
        c.set("auth:k", b"v")
        raise AssertionError("bmemcached with a wrong password must raise")
    except MemcachedException as e:
        eq(e.code, AUTH_ERROR, "bmemcached wrong-password status")
        check("Auth failure." in str(e.message), "bmemcached wrong-password message: %r" % e.message)
    c.disconnect_all()

    # bmemcached with no credentials at all: the first command gets 0x20
    c = bmemcached.Client([addr], socket_timeout=5)
    try:
        c.get("auth:k")
        raise AssertionError("bmemcached without credentials must raise")
    except MemcachedException as e:
        eq(e.code, AUTH_ERROR, "bmemcached no-credentials status")
    c.disconnect_all()

    # pylibmc with a wrong password
    m = pylibmc_client(port, user, password + "-wrong")
    try:
        m.get("auth:k")
        raise AssertionError("pylibmc with a wrong password must raise")
    except pylibmc.Error as e:
        check("AUTH" in str(e).upper(), "pylibmc wrong-password error: %s" % e)
    m.disconnect_all()

    # and the right password still works afterwards
    c = bmemcached.Client([addr], user, password, socket_timeout=5)
    eq(c.set("auth:k", b"v"), True, "set after rejected clients")
    eq(c.get("auth:k"), b"v", "get after rejected clients")
    c.disconnect_all()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--user")
    ap.add_argument("--password")
    a = ap.parse_args()
    if bool(a.user) != bool(a.password):
        ap.error("--user and --password go together")
    started = time.time()
    bmemcached_workload(a.port, a.user, a.password)
    print("bmemcached ok")
    pylibmc_workload(a.port, a.user, a.password)
    print("pylibmc binary ok")
    if a.user:
        raw_checks_auth(a.port, a.user, a.password)
        auth_rejections(a.port, a.user, a.password)
        print("auth checks ok")
    else:
        raw_checks_no_auth(a.port)
        print("raw checks ok")
    print("binary clients ok (%.2fs)" % (time.time() - started))


if __name__ == "__main__":
    main()
