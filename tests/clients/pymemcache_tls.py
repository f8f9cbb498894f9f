"""pymemcache over TLS against a server on 127.0.0.1:<port> started with -Z: an ssl.SSLContext that
verifies the server against <ca> (hostname checked: the server certificate names 127.0.0.1), then
the same with a client certificate (for ssl_verify_mode 2), and a client without one refused when
<mode> is "require".

Usage: python3 pymemcache_tls.py <port> <ca> <client_crt> <client_key> <mode>
  <mode>: "none" (the server does not ask for a client certificate) or "require".
Run it with Debian's Python (/usr/bin/python3); pymemcache comes from
  apt-get install -y python3-pymemcache

Prints "pymemcache tls ok" and exits 0 when every check passes; exits non-zero naming the first
mismatch. Validated against memcached 1.6.18 -Z (same arguments).
"""
import ssl
import sys

from pymemcache.client.base import Client

port, ca, crt, key, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]


def check(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")


def client(with_cert):
    ctx = ssl.create_default_context(cafile=ca)
    if with_cert:
        ctx.load_cert_chain(crt, key)
    return Client(("127.0.0.1", port), tls_context=ctx, connect_timeout=5, timeout=5)


def workload(c, tag):
    check(f"{tag} set", c.set(f"{tag}:a", b"1", noreply=False), True)
    check(f"{tag} get", c.get(f"{tag}:a"), b"1")
    big = b"v" * 300_000
    check(f"{tag} set big", c.set(f"{tag}:big", big, noreply=False), True)
    check(f"{tag} get big", c.get(f"{tag}:big"), big)
    many = {f"{tag}:k{i}": str(i).encode() for i in range(200)}
    check(f"{tag} set_many", c.set_many(many, noreply=False), [])
    check(f"{tag} get_many", c.get_many(list(many)), many)
    check(f"{tag} incr", c.incr(f"{tag}:a", 41), 42)
    check(f"{tag} delete", c.delete(f"{tag}:a", noreply=False), True)
    check(f"{tag} get deleted", c.get(f"{tag}:a"), None)
    c.close()


if mode == "require":
    workload(client(True), "mtls")
    try:
        c = client(False)
        c.set("nocert", b"x", noreply=False)
        sys.exit("a client without a certificate was served")
    except (ssl.SSLError, OSError, ConnectionError) as e:
        _ = e
    except Exception as e:  # pymemcache wraps some socket errors
        if "nocert" in str(e):
            raise
else:
    workload(client(False), "tls")
    workload(client(True), "tls2")

print("pymemcache tls ok")
