"""A small, realistic workload through the meta-memcache client (pip install meta-memcache).

Usage: python3 meta_client.py <port>. Prints "ok" and exits 0 when every check passes.
"""

import sys

from meta_memcache import (
    CacheClient,
    Key,
    LeasePolicy,
    RecachePolicy,
    ServerAddress,
    SetMode,
    StalePolicy,
    connection_pool_factory_builder,
)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main(port):
    client = CacheClient.cache_client_from_servers(
        servers=[ServerAddress(host="127.0.0.1", port=port)],
        connection_pool_factory_fn=connection_pool_factory_builder(recv_timeout=5),
    )

    # Plain values of several types (the client's serializer picks the flags).
    check(client.set("user:1", {"name": "ada", "langs": ["rust"]}, ttl=60), "set dict")
    check(client.get("user:1") == {"name": "ada", "langs": ["rust"]}, "get dict")
    check(client.set("count:str", "hello", ttl=0), "set str")
    check(client.get("count:str") == "hello", "get str")
    check(client.set(Key("bytes"), b"\x00\x01\r\n\xff", ttl=60), "set bytes")
    check(client.get(Key("bytes")) == b"\x00\x01\r\n\xff", "get bytes")
    big = "x" * 200_000
    check(client.set("big", big, ttl=60), "set big")
    check(client.get("big") == big, "get big")
    check(client.get("missing") is None, "miss")

    # Keys the client must encode (long, non-ASCII).
    long_key = "k" * 400
    check(client.set(long_key, 1, ttl=60), "set long key")
    check(client.get(long_key) == 1, "get long key")
    check(client.set(Key("clé-ü"), "unicode", ttl=60), "set unicode key")
    check(client.get(Key("clé-ü")) == "unicode", "get unicode key")

    # Multi-get pipelines many mg requests.
    for i in range(50):
        client.set(f"m:{i}", i, ttl=60)
    got = client.multi_get([Key(f"m:{i}") for i in range(55)])
    check(all(got[Key(f"m:{i}")] == i for i in range(50)), "multi_get hits")
    check(all(got[Key(f"m:{i}")] is None for i in range(50, 55)), "multi_get misses")

    # Compare-and-swap.
    value, cas = client.get_cas("user:1")
    check(value is not None and cas, "get_cas")
    check(client.set("user:1", "v2", ttl=60, cas_token=cas), "cas store")
    check(not client.set("user:1", "v3", ttl=60, cas_token=cas), "stale cas refused")
    check(client.get("user:1") == "v2", "cas result")
    new_cas = client.set_cas("user:1", "v4", ttl=60)
    check(new_cas is not None and new_cas != cas, "set_cas returns new cas")

    # Set modes.
    check(not client.set("user:1", "x", ttl=60, set_mode=SetMode.ADD), "add existing")
    check(client.set("fresh", "a", ttl=60, set_mode=SetMode.ADD), "add new")
    check(client.set("fresh", "b", ttl=60, set_mode=SetMode.APPEND), "append")
    check(client.set("fresh", "z", ttl=60, set_mode=SetMode.PREPEND), "prepend")
    check(client.get("fresh") == "zab", "append/prepend result")
    check(not client.set("nope", "a", ttl=60, set_mode=SetMode.REPLACE), "replace missing")

    # Counters.
    check(client.delta_initialize_and_get("hits", 1, initial_value=10, initial_ttl=60) == 10, "vivify")
    check(client.delta_and_get("hits", 5) == 15, "incr")
    check(client.delta_and_get("hits", -20) == 0, "decr floors at zero")
    check(client.delta("hits", 3), "delta")
    check(client.delta_and_get("nocounter", 1) is None, "delta miss")

    # Touch and delete.
    check(client.touch("count:str", ttl=100), "touch")
    check(not client.touch("missing", ttl=100), "touch miss")
    check(client.delete("count:str"), "delete")
    check(client.get("count:str") is None, "deleted")

    # Stale-while-revalidate: invalidation marks stale, one reader wins the recache.
    client.set("page", "old", ttl=60)
    check(client.invalidate("page", stale_policy=StalePolicy(mark_stale_on_deletion_ttl=30)), "invalidate")
    first = client.get("page")
    second = client.get("page")
    check(first is None and second == "old", f"stale win/serve: {first!r} {second!r}")
    check(client.set("page", "new", ttl=60), "recache")
    check(client.get("page") == "new", "recached")

    # Early recache: a short remaining TTL hands one client a miss to refresh.
    client.set("soon", "v", ttl=10)
    check(client.get("soon", recache_policy=RecachePolicy(ttl=30)) is None, "recache winner")
    check(client.get("soon", recache_policy=RecachePolicy(ttl=30)) == "v", "recache loser")

    # Lease on miss: the first caller wins and fills.
    check(client.get_or_lease("lease", lease_policy=LeasePolicy(ttl=30)) is None, "lease winner")
    check(client.set("lease", "filled", ttl=60), "lease fill")
    check(client.get_or_lease("lease", lease_policy=LeasePolicy(ttl=30)) == "filled", "lease hit")

    print("ok")


if __name__ == "__main__":
    main(int(sys.argv[1]))
