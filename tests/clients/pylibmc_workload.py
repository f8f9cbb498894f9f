"""Drives a memcached-compatible server on 127.0.0.1:<port> with pylibmc (libmemcached) over
the text protocol (binary=False).

Usage: python3 pylibmc_workload.py <port>. Exits non-zero with a message on the first failed
assertion.
"""
import sys
import time

import pylibmc


def main(port):
    c = pylibmc.Client(["127.0.0.1:%d" % port], binary=False,
                       behaviors={"cas": True, "tcp_nodelay": True})
    assert c.flush_all()

    # set / get / delete
    assert c.set("k1", b"v1")
    assert c.get("k1") == b"v1"
    assert c.get("missing") is None
    assert c.delete("k1")
    assert not c.delete("k1")
    assert c.get("k1") is None

    # pylibmc's own serialisation uses flags: str, int and pickled objects round-trip
    assert c.set("s", "text")
    assert c.get("s") == "text"
    assert c.set("i", 42)
    assert c.get("i") == 42
    assert c.set("obj", {"a": [1, 2, 3]})
    assert c.get("obj") == {"a": [1, 2, 3]}

    # add / replace
    assert c.add("a", b"1")
    assert not c.add("a", b"2")
    assert c.get("a") == b"1"
    assert c.replace("a", b"3")
    assert not c.replace("nope", b"3")
    assert c.get("a") == b"3"

    # append / prepend
    assert c.append("a", b"-tail")
    assert c.prepend("a", b"head-")
    assert c.get("a") == b"head-3-tail"
    assert not c.append("nope", b"x")
    assert not c.prepend("nope", b"x")

    # incr / decr
    assert c.set("n", b"10")
    assert c.incr("n", 5) == 15
    assert c.decr("n", 20) == 0
    assert c.incr("n") == 1
    try:
        c.incr("missing-n")
        raise AssertionError("incr on a missing key must fail")
    except pylibmc.NotFound:
        pass
    assert c.set("big", str(2**64 - 1).encode())
    assert c.incr("big", 2) == 1
    assert c.set("nn", b"abc")
    try:
        c.incr("nn")
        raise AssertionError("incr on a non-numeric value must fail")
    except pylibmc.Error:
        pass

    # gets / cas
    assert c.set("c", b"one")
    value, token = c.gets("c")
    assert value == b"one" and token
    assert c.cas("c", b"two", token)
    assert not c.cas("c", b"three", token)
    assert c.get("c") == b"two"
    value2, token2 = c.gets("c")
    assert value2 == b"two" and token2 > token
    assert c.gets("cas-missing") == (None, None)

    # touch and expiry
    assert c.set("t", b"v", time=100)
    assert c.touch("t", 0)
    assert not c.touch("t-missing", 10)
    assert c.set("gone", b"v", time=-1) is not None
    assert c.get("gone") is None

    # binary-safe values
    blob = bytes(range(256)) * 4 + b"\r\nEND\r\n\x00"
    assert c.set("bin", blob)
    assert c.get("bin") == blob
    assert c.set("empty", b"")
    assert c.get("empty") == b""

    # large values (just under 1 MB) and a too-large one
    large = bytes((i * 31) % 256 for i in range(1000 * 1000))
    assert c.set("large", large)
    assert c.get("large") == large
    try:
        ok = c.set("toolarge", b"x" * (2 * 1024 * 1024))
        assert not ok, "a 2 MB value must be refused"
    except pylibmc.Error:
        pass
    assert c.get("toolarge") is None
    assert c.get("large") == large

    # many keys: set_multi / get_multi / delete_multi
    items = {"key-%d" % i: ("value-%d" % i).encode() * (i % 7 + 1) for i in range(2000)}
    failed = c.set_multi(items)
    assert not failed, failed
    keys = list(items)
    for start in range(0, len(keys), 250):
        chunk = keys[start:start + 250]
        got = c.get_multi(chunk + ["absent-1", "absent-2"])
        assert got == {k: items[k] for k in chunk}, "get_multi mismatch at %d" % start
    got = c.get_multi(keys[:5], key_prefix="")
    assert got == {k: items[k] for k in keys[:5]}
    assert c.delete_multi(keys[:100])
    assert c.get_multi(keys[:100]) == {}
    assert c.get(keys[100]) == items[keys[100]]

    # stats
    ((_, stats),) = c.get_stats()
    assert int(stats["curr_items"]) > 0, stats
    assert stats["version"].startswith(b"1.6"), stats["version"]

    # flush_all
    assert c.flush_all()
    assert c.get("a") is None
    assert c.get_multi(keys[200:210]) == {}

    c.disconnect_all()
    print("pylibmc workload ok")


if __name__ == "__main__":
    started = time.time()
    main(int(sys.argv[1]))
    print("took %.2fs" % (time.time() - started))
