"""Drives a memcached-compatible server on 127.0.0.1:<port> with pymemcache (text protocol).

Usage: python3 pymemcache_workload.py <port>. Exits non-zero with a message on the first
failed assertion.
"""
import sys
import time

from pymemcache.client.base import Client


def main(port):
    c = Client(("127.0.0.1", port), connect_timeout=5, timeout=10, default_noreply=False)

    assert c.flush_all() is True

    # set / get / delete
    assert c.set("k1", b"v1") is True
    assert c.get("k1") == b"v1"
    assert c.get("missing") is None
    assert c.delete("k1") is True
    assert c.delete("k1") is False
    assert c.get("k1") is None

    # flags survive a round trip (pymemcache returns only the value without a serde)
    assert c.set("flagged", b"x", flags=123) is True
    assert c.get("flagged") == b"x"

    # add / replace
    assert c.add("a", b"1") is True
    assert c.add("a", b"2") is False
    assert c.get("a") == b"1"
    assert c.replace("a", b"3") is True
    assert c.replace("nope", b"3") is False
    assert c.get("a") == b"3"
    assert c.get("nope") is None

    # append / prepend
    assert c.append("a", b"-tail") is True
    assert c.prepend("a", b"head-") is True
    assert c.get("a") == b"head-3-tail"
    assert c.append("nope", b"x") is False
    assert c.prepend("nope", b"x") is False

    # incr / decr, including wrap-around at 2**64 and the floor at 0
    assert c.set("n", b"10") is True
    assert c.incr("n", 5) == 15
    assert c.decr("n", 20) == 0
    assert c.incr("missing-n", 1) is None
    assert c.decr("missing-n", 1) is None
    assert c.set("big", str(2**64 - 1).encode()) is True
    assert c.incr("big", 2) == 1
    assert c.set("h", b"100") is True
    assert c.decr("h", 1) == 99
    assert c.get("h") == b"99 "
    assert c.incr("h", 1) == 100
    assert c.set("nn", b"abc") is True
    try:
        c.incr("nn", 1)
        raise AssertionError("incr on a non-numeric value must fail")
    except Exception as e:  # MemcacheClientError
        assert "non-numeric" in str(e), e

    # gets / cas
    assert c.set("c", b"one") is True
    value, token = c.gets("c")
    assert value == b"one" and token is not None
    assert c.cas("c", b"two", token) is True
    assert c.cas("c", b"three", token) is False
    assert c.get("c") == b"two"
    assert c.cas("cas-missing", b"x", b"1") is None
    value2, token2 = c.gets("c")
    assert value2 == b"two" and int(token2) > int(token)

    # touch and expiry
    assert c.set("t", b"v", expire=100) is True
    assert c.touch("t", expire=0) is True
    assert c.touch("t-missing", expire=10) is False
    assert c.set("gone", b"v", expire=-1) is True
    assert c.get("gone") is None

    # binary-safe values
    blob = bytes(range(256)) * 4 + b"\r\nEND\r\n\x00"
    assert c.set("bin", blob) is True
    assert c.get("bin") == blob
    assert c.set("empty", b"") is True
    assert c.get("empty") == b""

    # large values (just under 1 MB) and a too-large one
    large = bytes((i * 31) % 256 for i in range(1000 * 1000))
    assert c.set("large", large) is True
    assert c.get("large") == large
    try:
        c.set("toolarge", b"x" * (2 * 1024 * 1024))
        raise AssertionError("a 2 MB value must be refused")
    except Exception as e:  # MemcacheServerError: object too large for cache
        assert "too large" in str(e), e
    assert c.get("toolarge") is None

    # many keys with get_many / set_many / delete_many
    items = {"key-%d" % i: ("value-%d" % i).encode() * (i % 7 + 1) for i in range(2000)}
    failed = c.set_many(items)
    assert failed == [], failed
    keys = list(items)
    for start in range(0, len(keys), 250):
        chunk = keys[start:start + 250]
        got = c.get_many(chunk + ["absent-1", "absent-2"])
        assert got == {k: items[k] for k in chunk}, "get_many mismatch at %d" % start
    got = c.gets_many(keys[:10])
    assert {k: v for k, (v, _) in got.items()} == {k: items[k] for k in keys[:10]}
    assert c.delete_many(keys[:100]) is True
    assert c.get_many(keys[:100]) == {}
    assert c.get(keys[100]) == items[keys[100]]

    # noreply storage commands followed by a read on the same connection
    c.set("quiet", b"q", noreply=True)
    c.incr("n", 1, noreply=True)
    assert c.get("quiet") == b"q"
    assert c.get("n") == b"1 "  # decr 15 -> 0 left "0 " (padded in place), then incr

    # stats and version
    stats = c.stats()
    assert stats[b"curr_items"] > 0, stats
    assert int(stats[b"cmd_get"]) > 0
    assert c.version().startswith(b"1.6")

    # flush_all
    assert c.flush_all() is True
    assert c.get("a") is None
    assert c.get_many(keys[200:210]) == {}

    c.close()
    print("pymemcache workload ok")


if __name__ == "__main__":
    started = time.time()
    main(int(sys.argv[1]))
    print("took %.2fs" % (time.time() - started))
