#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/TARGET/, not committed) from the requests
the test suites send: every Rust string literal in tests/*.rs and src/**/tests.rs that ends a
line with \\r\\n or \\n is a text (or, starting with m, meta) seed; binary seeds are one request
per opcode memcached implements, with and without quiet bits; UDP seeds wrap both in the frame
header. The exec target starts from empty inputs (its input is a structured sequence). TLS seeds
are real ClientHellos (TLS 1.3 and 1.2, from Python's ssl module over memory BIOs) for the raw
kind, and scripts that send a text or binary request over an established session, read it,
reply and flush (see fuzz_targets/tls.rs for the step bytes)."""
import hashlib, pathlib, re, ssl, struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "corpus"
LIT = re.compile(rb'b?"((?:[^"\\]|\\.)*)"', re.S)
ESC = {b"r": b"\r", b"n": b"\n", b"t": b"\t", b"0": b"\0", b"\\": b"\\", b'"': b'"', b"'": b"'"}


def unescape(s):
    out, i = bytearray(), 0
    while i < len(s):
        c = s[i:i + 1]
        if c != b"\\":
            out += c
            i += 1
            continue
        n = s[i + 1:i + 2]
        if n == b"x":
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        elif n == b"\n":  # a continued line: skip the newline and the indentation
            i += 2
            while i < len(s) and s[i:i + 1] in b" \t":
                i += 1
        elif n in ESC:
            out += ESC[n]
            i += 2
        else:
            out += c
            i += 1
    return bytes(out)


def write(target, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def binary(opcode, extras=b"", key=b"", value=b"", cas=0):
    body = len(extras) + len(key) + len(value)
    return struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), 0, 0, body, 7, cas) + extras + key + value


def main():
    files = list((ROOT / "tests").glob("*.rs")) + list((ROOT / "src").rglob("tests.rs"))
    ascii_seeds = set()
    for f in files:
        for m in LIT.finditer(f.read_bytes()):
            s = unescape(m.group(1))
            if s.endswith(b"\n") and 2 < len(s) < 4096 and not s.startswith(b"{"):
                ascii_seeds.add(s)
    for s in ascii_seeds:
        write("meta" if s[:1] == b"m" else "text", s[1:] if s[:1] == b"m" else s)
        write("text", s)
        write("udp", struct.pack(">HHHH", 1, 0, 1, 0) + s)
    kv = (b"foo", b"bar")
    flags_exp = struct.pack(">II", 5, 0)
    delta = struct.pack(">QQI", 3, 1, 0)
    packets = [binary(op) for op in (0x07, 0x08, 0x0a, 0x0b, 0x10, 0x17, 0x18, 0x20)]
    for op in (0x01, 0x02, 0x03, 0x11, 0x12, 0x13):
        packets.append(binary(op, flags_exp, *kv))
        packets.append(binary(op, flags_exp, *kv, cas=9))
    for op in (0x0e, 0x0f, 0x19, 0x1a):
        packets.append(binary(op, b"", *kv))
    for op in (0x00, 0x04, 0x09, 0x0c, 0x0d, 0x14, 0x60):
        packets.append(binary(op, b"", kv[0]))
    for op in (0x05, 0x06, 0x15, 0x16):
        packets.append(binary(op, delta, kv[0]))
    for op in (0x1c, 0x1d, 0x1e, 0x23, 0x24):
        packets.append(binary(op, struct.pack(">I", 10), kv[0]))
    packets += [binary(0x08, struct.pack(">I", 10)), binary(0x21, b"", b"PLAIN", b"\0u\0p"),
                binary(0x10, b"", b"items"), binary(0x64, b"", b"cluster", b"1\nh|127.0.0.1|11211\n\r\n")]
    for p in packets:
        write("binary", p)
        write("binary", p + packets[0])
        write("udp", struct.pack(">HHHH", 2, 0, 1, 0) + p)
    tls_seeds(sorted(ascii_seeds)[:64] + packets)
    print(f"{len(ascii_seeds)} ASCII seeds, {len(packets)} binary seeds in {OUT}")


def client_hello(version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        conn.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def tls_seeds(requests):
    # The first byte picks the kind (even: raw, odd: established; bit 1: TLS 1.2), the second
    # how the pipe cuts reads.
    for version, kind in ((ssl.TLSVersion.TLSv1_3, 0), (ssl.TLSVersion.TLSv1_2, 2)):
        write("tls", bytes([kind, 14]) + client_hello(version))
        for req in requests:
            if len(req) > 255:
                continue
            # send the request, read it, reply with it into a pipe taking 64 bytes, flush
            script = bytes([0, len(req)]) + req + bytes([1, 255, 2, len(req)]) + req + bytes([8, 3, 0])
            write("tls", bytes([kind | 1, 14]) + script)


if __name__ == "__main__":
    main()
