"""memcached's ASCII authentication (`-Y AUTHFILE`, lines `user:password`) against a server on
127.0.0.1:<port>: exact replies over a raw socket, then the pymemcache client.

Usage: python3 ascii_auth.py <port> <user> <password>
  <user>/<password> must be a valid entry of the server's authfile.
Run it with Debian's Python (/usr/bin/python3); pymemcache comes from
  apt-get install -y python3-pymemcache        (or pip install pymemcache)

pymemcache has no authentication option: the auth step is memcached's own wire form, a `set`
whose key is ignored and whose data block is "<user> <password>", so the client authenticates
with its ordinary set(..., noreply=False); pooled connections authenticate on connect through
pymemcache's socket_module hook.

Before authentication memcached answers one command per round trip here: with several commands
pipelined in one write, memcached 1.6.18 sends only the last reply (see binary_reference.md),
so the pre-auth checks below never pipeline.

Prints "ascii auth ok" and exits 0 when every check passes; exits non-zero naming the first
mismatch. Validated against memcached 1.6.18 (`memcached -p PORT -l 127.0.0.1 -U 0 -u root
-Y AUTHFILE`).
"""
import socket
import sys
import threading
import time

try:
    from pymemcache.client.base import Client, PooledClient
    from pymemcache.exceptions import MemcacheClientError
except ImportError as e:
    sys.exit("missing client (%s): apt-get install -y python3-pymemcache" % e)

UNAUTH = b"CLIENT_ERROR unauthenticated\r\n"
FAILURE = b"CLIENT_ERROR authentication failure\r\n"
BAD_FORMAT = b"CLIENT_ERROR bad authentication token format\r\n"
BAD_TERM = b"CLIENT_ERROR bad command line termination\r\n"


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def eq(got, want, what):
    if got != want:
        raise AssertionError("%s: got %s, want %s" % (what, repr(got)[:300], repr(want)[:300]))


def auth_cmd(payload, key=b"auth", flags=0, exptime=0, noreply=False):
    line = b"set %s %d %d %d%s\r\n" % (key, flags, exptime, len(payload), b" noreply" if noreply else b"")
    return line + payload + b"\r\n"


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def line(self):
        """One reply line (with its \\r\\n)."""
        for _ in range(10_000):
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out, self.buf = self.buf[:i + 2], self.buf[i + 2:]
                return out
            chunk = self.s.recv(65536)
            if not chunk:
                raise AssertionError("connection closed; unread bytes %r" % self.buf)
            self.buf += chunk
        raise AssertionError("no line end in %d bytes" % len(self.buf))

    def exact(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise AssertionError("connection closed; unread bytes %r" % self.buf)
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def ask(self, data, what):
        self.s.sendall(data)
        return self.line()

    def expect(self, data, want, what):
        eq(self.ask(data, what), want, what)

    def nothing_pending(self, what):
        """After the expected reply, no further bytes arrive (bounded wait)."""
        self.s.settimeout(0.3)
        try:
            extra = self.s.recv(4096)
        except socket.timeout:
            extra = None
        finally:
            self.s.settimeout(5)
        check(extra is None and not self.buf, "%s: unexpected extra bytes %r" % (what, (self.buf, extra)))

    def close(self):
        self.s.close()


def raw_checks(port, user, password):
    good = b"%s %s" % (user, password)

    # 1. the first command is not `set`: CLIENT_ERROR unauthenticated; connection stays open
    c = Conn(port)
    c.expect(b"get foo\r\n", UNAUTH, "get before auth")
    c.expect(b"version\r\n", UNAUTH, "version before auth (connection still open)")
    c.expect(b"mg foo v\r\n", UNAUTH, "meta get before auth")
    c.expect(b"stats\r\n", UNAUTH, "stats before auth")
    c.expect(b"add auth 0 0 3\r\n", UNAUTH, "add (not set) before auth")
    c.expect(b"set auth 0 0\r\n", UNAUTH, "set with too few tokens before auth")
    c.expect(b"quit\r\n", UNAUTH, "quit before auth (memcached answers, does not close)")
    c.expect(b"get foo\r\n", UNAUTH, "still open after quit")
    c.nothing_pending("after the unauthenticated commands")
    c.close()

    # 2. wrong password / unknown user: CLIENT_ERROR authentication failure, retry on the same conn
    c = Conn(port)
    c.expect(auth_cmd(b"%s %s-wrong" % (user, password)), FAILURE, "wrong password")
    c.expect(auth_cmd(b"nosuchuser-%s %s" % (user, password)), FAILURE, "unknown user")
    c.expect(b"get foo\r\n", UNAUTH, "get after failed auth")
    c.expect(auth_cmd(good), b"STORED\r\n", "retry with the right password on the same connection")
    c.expect(b"get foo\r\n", b"END\r\n", "get after auth")
    c.close()

    # 3. payload without a space: CLIENT_ERROR bad authentication token format
    c = Conn(port)
    c.expect(auth_cmd(user + password), BAD_FORMAT, "payload without a space")
    # ('<user> ' with a trailing space is version-dependent: 1.6.18 says bad format, the current
    # memcached source compares an empty password; not checked)
    c.expect(auth_cmd(b""), BAD_FORMAT, "empty payload")
    c.expect(b"get foo\r\n", UNAUTH, "get after bad token format")
    # data block not followed by \r\n
    c.expect(b"set auth 0 0 3\r\nabcXY", BAD_TERM, "data block without \\r\\n")
    c.expect(b"get foo\r\n", UNAUTH, "get after bad termination")
    c.expect(auth_cmd(good), b"STORED\r\n", "auth after bad token format")
    c.close()

    # 4. success: STORED (even with noreply; key, flags and exptime are ignored, nothing stored)
    c = Conn(port)
    c.expect(auth_cmd(good, key=b"whatever-key", flags=7, exptime=100, noreply=True), b"STORED\r\n",
             "auth set with noreply still answers STORED")
    c.expect(b"get whatever-key\r\n", b"END\r\n", "the auth set stored nothing")
    c.expect(b"set k1 5 0 3\r\nabc\r\n", b"STORED\r\n", "set after auth")
    c.expect(b"get k1\r\n", b"VALUE k1 5 3\r\n", "get after auth")
    eq(c.exact(10), b"abc\r\nEND\r\n", "get after auth (data)")
    # once authenticated, a set of "<user> <password>" is an ordinary set
    c.expect(auth_cmd(good, key=b"k2"), b"STORED\r\n", "set after auth is a normal set")
    c.expect(b"get k2\r\n", b"VALUE k2 0 %d\r\n" % len(good), "normal set stored")
    eq(c.exact(len(good) + 7), good + b"\r\nEND\r\n", "normal set stored (data)")
    c.ask(b"delete k1\r\n", "cleanup")
    c.ask(b"delete k2\r\n", "cleanup")
    c.nothing_pending("after the authenticated session")
    c.close()

    # 5. authentication and commands pipelined in one write (after auth, replies are in order)
    c = Conn(port)
    c.s.sendall(auth_cmd(good) + b"get p1\r\nset p1 0 0 1\r\nv\r\nget p1\r\ndelete p1\r\n")
    want = [b"STORED\r\n", b"END\r\n", b"STORED\r\n", b"VALUE p1 0 1\r\n", b"v\r\n", b"END\r\n",
            b"DELETED\r\n"]
    eq([c.line() for _ in want], want, "pipelined auth + commands")
    c.nothing_pending("after the pipelined session")
    c.close()

    # 6. authentication is per connection
    c = Conn(port)
    c.expect(b"get foo\r\n", UNAUTH, "a new connection starts unauthenticated")
    c.close()


def read_stats(port, user, password):
    c = Conn(port)
    c.expect(auth_cmd(b"%s %s" % (user, password)), b"STORED\r\n", "auth for stats")
    c.s.sendall(b"stats\r\n")
    stats = {}
    for _ in range(1000):
        ln = c.line()
        if ln == b"END\r\n":
            break
        parts = ln.split()
        stats[parts[1].decode()] = parts[2].decode()
    c.close()
    return stats


class AuthSocketModule:
    """pymemcache socket_module: every new connection authenticates before use."""

    def __init__(self, user, password):
        self.payload = b"%s %s" % (user, password)
        self.connects = 0
        self.lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(socket, name)

    def socket(self, *args):
        mod = self

        class AuthSocket(socket.socket):
            def connect(self, addr):
                super().connect(addr)
                self.sendall(auth_cmd(mod.payload))
                got = b""
                while not got.endswith(b"\r\n") and len(got) < 200:
                    chunk = self.recv(1)
                    if not chunk:
                        break
                    got += chunk
                if got != b"STORED\r\n":
                    raise AssertionError("pooled connection auth: got %r" % got)
                with mod.lock:
                    mod.connects += 1

        return AuthSocket(*args)


def pymemcache_checks(port, user, password):
    server = ("127.0.0.1", port)
    u, p = user.decode(), password.decode()

    # errors surface as MemcacheClientError with memcached's text (pymemcache then reconnects)
    c = Client(server, timeout=5, connect_timeout=5)
    for what, fn, msg in [
        ("get before auth", lambda: c.get("foo"), b"unauthenticated"),
        ("wrong password", lambda: c.set("auth", ("%s %s-wrong" % (u, p)).encode(), noreply=False),
         b"authentication failure"),
        ("no space", lambda: c.set("auth", (u + p).encode(), noreply=False),
         b"bad authentication token format"),
        ("version before auth", lambda: c.version(), b"unauthenticated"),
    ]:
        try:
            got = fn()
            raise AssertionError("pymemcache %s: want MemcacheClientError, got %r" % (what, got))
        except MemcacheClientError as e:
            eq(e.args[0] if e.args else None, msg, "pymemcache %s" % what)

    # authenticate with the client's own set, then a normal workload on that connection
    eq(c.set("auth", ("%s %s" % (u, p)).encode(), noreply=False), True, "pymemcache auth set")
    eq(c.get("auth"), None, "the auth set stored nothing")
    eq(c.version().startswith(b"1.6"), True, "version after auth")
    blob = bytes(range(256)) * 4 + b"\r\nEND\r\n\x00"
    big = bytes((i * 31) % 256 for i in range(500_000))
    for k, v in [("empty", b""), ("one", b"1"), ("bin", blob), ("big", big)]:
        eq(c.set("pm:" + k, v, noreply=False), True, "set %s" % k)
        eq(c.get("pm:" + k), v, "get %s (%d bytes)" % (k, len(v)))
    eq(c.get("pm:missing"), None, "get miss")
    eq(c.add("pm:one", b"2", noreply=False), False, "add existing")
    eq(c.add("pm:two", b"2", noreply=False), True, "add new")
    eq(c.replace("pm:two", b"22", noreply=False), True, "replace")
    eq(c.replace("pm:nope", b"x", noreply=False), False, "replace missing")
    eq(c.append("pm:two", b"-t", noreply=False), True, "append")
    eq(c.prepend("pm:two", b"h-", noreply=False), True, "prepend")
    eq(c.get("pm:two"), b"h-22-t", "append/prepend result")
    eq(c.set("pm:n", b"10", noreply=False), True, "set counter")
    eq(c.incr("pm:n", 5), 15, "incr")
    eq(c.decr("pm:n", 20), 0, "decr floors at zero")
    eq(c.incr("pm:missing-n", 1), None, "incr miss")
    value, token = c.gets("pm:one")
    eq(value, b"1", "gets")
    eq(c.cas("pm:one", b"x", token, noreply=False), True, "cas current token")
    eq(c.cas("pm:one", b"y", token, noreply=False), False, "cas stale token")
    eq(c.get("pm:one"), b"x", "cas result")
    eq(c.touch("pm:one", 100, noreply=False), True, "touch")
    items = {"pm:m:%d" % i: b"v%d" % i for i in range(200)}
    eq(c.set_many(items, noreply=False), [], "set_many")
    eq(c.get_many(list(items) + ["pm:absent"]), items, "get_many")
    eq(c.delete_many(list(items)[:50], noreply=False), True, "delete_many")
    eq(c.get_many(list(items)[:50]), {}, "deleted keys gone")
    eq(c.delete("pm:one", noreply=False), True, "delete")
    eq(c.delete("pm:one", noreply=False), False, "delete miss")
    stats = c.stats()
    check(int(stats[b"curr_items"]) > 0, "stats curr_items: %r" % stats.get(b"curr_items"))
    c.close()

    # a second plain client (new connection) is unauthenticated again
    d = Client(server, timeout=5, connect_timeout=5)
    try:
        d.get("pm:two")
        raise AssertionError("a new connection must start unauthenticated")
    except MemcacheClientError as e:
        eq(e.args[0], b"unauthenticated", "new pymemcache connection")
    d.close()

    # pooled client, every connection authenticating on connect; 4 threads x 100 bounded ops
    mod = AuthSocketModule(user, password)
    pool = PooledClient(server, timeout=5, connect_timeout=5, max_pool_size=4, socket_module=mod,
                        default_noreply=False)
    errors = []

    def worker(t):
        try:
            for i in range(100):
                key = "pool:%d:%d" % (t, i)
                val = (b"%d-%d-" % (t, i)) * (i % 13 + 1)
                if pool.set(key, val) is not True:
                    errors.append("pooled set %s" % key)
                got = pool.get(key)
                if got != val:
                    errors.append("pooled get %s: %r" % (key, got))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("thread %d: %r" % (t, e))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(not any(t.is_alive() for t in threads), "pooled workers did not finish in 60 s")
    check(not errors, "pooled client: %s" % errors[:5])
    check(1 <= mod.connects <= 4, "pooled connections authenticated: %d" % mod.connects)
    eq(pool.get("pool:3:99"), b"3-99-" * (99 % 13 + 1), "pooled value after workers")
    eq(pool.flush_all(), True, "flush_all through the pool")
    eq(pool.get("pm:two"), None, "get after flush_all")
    pool.close()
    return mod.connects


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: ascii_auth.py <port> <user> <password>")
    port, user, password = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode()
    started = time.time()
    before = read_stats(port, user, password)  # 1 successful auth
    raw_checks(port, user, password)
    print("raw ascii auth checks ok")
    pooled = pymemcache_checks(port, user, password)
    print("pymemcache ok")
    after = read_stats(port, user, password)
    # memcached counts every completed auth attempt in auth_cmds and the failed ones in
    # auth_errors; a malformed payload or bad termination counts in neither.
    # Between the two snapshots: raw checks 2 failures + 4 successes (sections 2, 3, 4, 5),
    # pymemcache 1 failure + 1 success, one per pooled connection, and the closing snapshot's
    # own auth: auth_cmds +9+pooled, auth_errors +3.
    for name in ("auth_cmds", "auth_errors"):
        check(name in before and name in after, "stats has no %s: %r" % (name, sorted(after)))
    eq(int(after["auth_errors"]) - int(before["auth_errors"]), 3, "stats auth_errors delta")
    eq(int(after["auth_cmds"]) - int(before["auth_cmds"]), 9 + pooled, "stats auth_cmds delta")
    print("ascii auth ok (%.2fs)" % (time.time() - started))


if __name__ == "__main__":
    main()
