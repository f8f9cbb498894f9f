"""Checks ElastiCache-style Auto Discovery with two real Python discovery clients.

Usage:
    python3 discovery_py.py CONFIG_PORT EXPECTED_PORT... [--expect-change NEW_PORT...]
                            [--host 127.0.0.1] [--keys 100] [--timeout 30]

Clients (PyPI; Debian has neither). Install for the interpreter that runs this script, e.g.
    /usr/bin/python3 -m pip install --target /tmp/ferrocache-pydeps \
        elasticache-auto-discovery==1.0.0 emcache==1.3.3
and run with PYTHONPATH=/tmp/ferrocache-pydeps (or FERROCACHE_PYDEPS=/tmp/ferrocache-pydeps).

Steps:
 1. `elasticache_auto_discovery.discover("HOST:CONFIG_PORT")` (sends `config get cluster\r\n`) must
    return exactly the expected ports, each as host|ip|port with a non-empty host and ip, in
    sorted (host, port) order.
 2. Every discovered hostname must resolve: emcache connects to the hostname field, not the IP.
 3. `emcache.create_client([HOST:CONFIG_PORT], autodiscovery=True)` (poll interval 0.5 s) must
    end up with exactly the expected nodes; then N keys are set and read back through it, and
    each key must sit on exactly one expected node (checked with a plain-socket `get`).
 4. With `--expect-change`: prints `READY` (after step 3), waits for one line on stdin (EOF also
    continues; at most --timeout s), then waits at most --timeout s until emcache's node list
    equals NEW_PORTs, re-checks discover() and repeats the set/get + placement check on the new
    nodes. The caller pushes the new membership (e.g. `config set cluster`) before writing the
    line.

Prints progress lines (`discover: ...`, `emcache: ...`, `READY`, `CHANGED ...`) and `OK` at the
end. Exit codes: 0 pass, 1 check failed, 2 usage, 3 a client package is missing.
"""
import argparse
import asyncio
import os
import select
import socket
import sys
import threading
import time

if os.environ.get("FERROCACHE_PYDEPS"):
    sys.path.insert(0, os.environ["FERROCACHE_PYDEPS"])

INSTALL = ("python3 -m pip install --target /tmp/ferrocache-pydeps "
           "elasticache-auto-discovery==1.0.0 emcache==1.3.3  (then PYTHONPATH=/tmp/ferrocache-pydeps)")

try:
    import elasticache_auto_discovery
    import emcache
except ImportError as e:  # a missing client is a failure naming the install command
    print("missing Python client (%s); install with: %s" % (e, INSTALL), file=sys.stderr)
    sys.exit(3)


class CheckFailed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def discover(host, port, timeout):
    """elasticache_auto_discovery.discover in a thread: its recv loop never ends if the server
    closes the connection before `END\\r\\n`, so bound it from outside."""
    box = {}

    def run():
        try:
            box["nodes"] = elasticache_auto_discovery.discover("%s:%d" % (host, port), time_to_timeout=timeout)
        except Exception as e:  # noqa: BLE001
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout + 1)
    check(not t.is_alive(), "discover() did not finish within %.0f s (no `END\\r\\n`?)" % timeout)
    check("error" not in box, "discover() raised %r (it reads until the reply ends in END\\r\\n; an ERROR reply, i.e. discovery off, ends in this timeout)" % box.get("error"))
    return box["nodes"]


def check_discover(host, port, expected, timeout):
    nodes = discover(host, port, timeout)
    print("discover: %r" % nodes, flush=True)
    parsed = []
    for n in nodes:
        check(len(n) == 3, "node entry %r is not host|ip|port" % (n,))
        h, ip, p = n
        check(h and ip, "node entry %r has an empty host or ip" % (n,))
        check(p.isdigit(), "node entry %r: port %r is not plain digits (stray \\r or space?)" % (n, p))
        parsed.append((h.decode(), ip.decode(), int(p)))
    ports = sorted(p for _, _, p in parsed)
    check(ports == sorted(expected), "discover() found ports %s, expected %s" % (ports, sorted(expected)))
    check(parsed == sorted(parsed, key=lambda x: (x[0], x[2])),
          "node list is not sorted by (host, port): %r" % parsed)
    for h, _, p in parsed:
        try:
            socket.getaddrinfo(h, p, socket.AF_INET, socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise CheckFailed("hostname %r does not resolve (%s); emcache, memcached-elasticache and "
                              "memcache-plus connect to the hostname field, so use e.g. localhost" % (h, e))
    return parsed


def raw_get_many(host, port, keys, timeout):
    """Plain-socket multi-get; returns {key: value} for the keys this server holds."""
    found = {}
    with socket.create_connection((host, port), timeout=timeout) as s:
        for i in range(0, len(keys), 50):
            chunk = keys[i:i + 50]
            s.sendall(b"get " + b" ".join(chunk) + b"\r\n")
            buf = b""
            while True:
                while b"\r\n" not in buf:
                    data = s.recv(65536)
                    check(data, "server %d closed the connection during get" % port)
                    buf += data
                line, buf = buf.split(b"\r\n", 1)
                if line == b"END":
                    break
                parts = line.split()
                check(parts[0] == b"VALUE", "unexpected reply from %d: %r" % (port, line))
                n = int(parts[3])
                while len(buf) < n + 2:
                    data = s.recv(65536)
                    check(data, "server %d closed the connection during get" % port)
                    buf += data
                found[parts[1]] = buf[:n]
                buf = buf[n + 2:]
    return found


def node_ports(client):
    return sorted(a.port for a in client.cluster_managment().nodes())


async def exercise(client, host, ports, tag, nkeys, timeout):
    """Set/get nkeys through emcache, then find each key on exactly one of `ports`."""
    keys = [b"disco-%s-%d-%04d" % (tag.encode(), os.getpid(), i) for i in range(nkeys)]
    for k in keys:
        await client.set(k, b"v:" + k)
    for k in keys:
        item = await client.get(k)
        check(item is not None and item.value == b"v:" + k, "emcache get %r returned %r" % (k, item))
    many = await client.get_many(keys)
    check(sorted(many) == sorted(keys), "emcache get_many returned %d of %d keys" % (len(many), len(keys)))
    where = {}
    for p in ports:
        for k, v in raw_get_many(host, p, keys, timeout).items():
            check(v == b"v:" + k, "key %r on %d has value %r" % (k, p, v))
            where.setdefault(k, []).append(p)
    for k in keys:
        check(len(where.get(k, [])) == 1, "key %r found on nodes %s, expected exactly one of %s"
              % (k, where.get(k, []), ports))
    dist = {p: sum(1 for k in keys if where[k] == [p]) for p in ports}
    print("emcache: %s %d keys set/get ok, placement %s" % (tag, nkeys, dist), flush=True)
    if len(ports) > 1 and nkeys >= 50:
        check(sum(1 for c in dist.values() if c) > 1, "all keys landed on one node: %s" % dist)


def wait_stdin_line(timeout):
    try:
        r, _, _ = select.select([sys.stdin], [], [], timeout)
    except (ValueError, OSError):
        return
    if r:
        sys.stdin.readline()  # EOF ('') also continues


async def run(a):
    timeout = a.timeout
    check_discover(a.host, a.config_port, a.expected, 5.0)

    addr = emcache.MemcachedHostAddress(a.host, a.config_port)
    client = await emcache.create_client(
        [addr], autodiscovery=True, autodiscovery_poll_interval=0.5, autodiscovery_timeout=2.0,
        timeout=2.0, connection_timeout=2.0)
    try:
        first = getattr(client._cluster, "_first_autodiscovery_done", None)  # private, emcache 1.3.3
        if first is not None and first.done():
            check(first.result() is True, "emcache's first autodiscovery failed (see its log above)")
        check(node_ports(client) == sorted(a.expected),
              "emcache nodes %s, expected %s" % (node_ports(client), sorted(a.expected)))
        print("emcache: nodes %s version %s" % (node_ports(client),
              getattr(client._cluster, "_autodiscover_config_version", "?")), flush=True)
        await exercise(client, a.host, sorted(a.expected), "initial", a.keys, timeout)

        if a.expect_change is not None:
            print("READY", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, wait_stdin_line, timeout)
            want = sorted(a.expect_change)
            deadline = time.monotonic() + timeout
            while node_ports(client) != want:
                check(time.monotonic() < deadline, "emcache nodes still %s after %.0f s, expected %s"
                      % (node_ports(client), timeout, want))
                await asyncio.sleep(0.1)
            print("CHANGED nodes %s version %s" % (want,
                  getattr(client._cluster, "_autodiscover_config_version", "?")), flush=True)
            check_discover(a.host, a.config_port, want, 5.0)
            await exercise(client, a.host, want, "changed", a.keys, timeout)
    finally:
        await client.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("config_port", type=int)
    p.add_argument("expected", type=int, nargs="+")
    p.add_argument("--expect-change", type=int, nargs="+", metavar="NEW_PORT")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--keys", type=int, default=100)
    p.add_argument("--timeout", type=float, default=30.0)
    a = p.parse_args()
    try:
        asyncio.run(asyncio.wait_for(run(a), a.timeout * 3 + 20))
    except CheckFailed as e:
        print("FAIL: %s" % e, flush=True)
        sys.exit(1)
    except asyncio.TimeoutError:
        print("FAIL: timed out (emcache startup wait or the overall limit)", flush=True)
        sys.exit(1)
    print("OK", flush=True)


if __name__ == "__main__":
    main()
