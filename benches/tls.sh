#!/usr/bin/env bash
# TLS side by side with memcached -Z (Debian's build has TLS), alternating servers: server `-t 1`
# pinned to CPU 0, one load thread on CPU 1, 50 connections, 90% get / 10% set, 100 B values,
# TLS 1.3 with a P-256 certificate made here. Measures pipeline 16 throughput, pipeline 1 server
# CPU per request, and the p99 of the established connections at a fixed rate, alone and while
# a handshake storm (new TLS connections with full handshakes) arrives. Writes the table between
# TLS START/END in docs/benchmarks.md.
# Usage: benches/tls.sh [quick|full]
source "$(dirname "$0")/common.sh"
MODE=${1:-full}
if [ "$MODE" = quick ]; then DUR=1; else DUR=4; fi
RATE=${TLS_RATE:-5000}        # offered ops/s of the established connections
STORM=${TLS_STORM:-100}       # new TLS connections per second during the storm runs
COMMON="--ratio 1:9 --value-size 100 --keys 100000 --key-size 32 --preload --warmup 1 --seed 7 --tls --tls-ca $OUT/ca.crt"

# The certificates: a CA and a server certificate for 127.0.0.1 (P-256).
(cd "$OUT"
 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt \
   -days 2 -subj /CN=bench-ca 2>/dev/null
 openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr \
   -subj /CN=127.0.0.1 2>/dev/null
 printf 'subjectAltName=IP:127.0.0.1\n' > srv.ext
 openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile srv.ext \
   -out srv.crt 2>/dev/null)
TLS_ARGS="-Z -o ssl_chain_cert=$OUT/srv.crt,ssl_key=$OUT/srv.key"

run() { # name pipeline [extra bench args...] -> json
  local name=$1 p=$2; shift 2
  PORT=$((PORT + 1))
  if [ "$name" = memcached ]; then
    taskset -c 0 memcached -u root -l 127.0.0.1 -p $PORT -U 0 -t 1 -m 1024 -c 4096 $TLS_ARGS >/dev/null 2>&1 &
  else
    taskset -c 0 "$BIN" -u root -l 127.0.0.1 -p $PORT -t 1 -m 1024 -c 4096 $TLS_ARGS >/dev/null 2>&1 &
  fi
  local pid=$!
  wait_port || true
  taskset -c "$CLI_CPU" "$BENCH" -q --json --server 127.0.0.1:$PORT --threads 1 --conns 50 \
    --pipeline "$p" --duration $DUR --server-pid "$pid" $COMMON "$@" || echo '{"run":null}'
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

for name in memcached ferrocache; do
  run $name 16 > "$OUT/p16-$name.json"
  run $name 1 > "$OUT/p1-$name.json"
  run $name 1 --rate "$RATE" > "$OUT/calm-$name.json"
  run $name 1 --rate "$RATE" --handshake-rate "$STORM" > "$OUT/storm-$name.json"
done

python3 - "$OUT" "$MODE" "$RATE" "$STORM" > "$OUT/tls.md" <<'PY'
import json, sys, datetime
out, mode, rate, storm = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def run(tag, name):
    try:
        return json.load(open(f"{out}/{tag}-{name}.json"))["run"] or {}
    except Exception:
        return {}
def val(r, *path):
    for k in path:
        if not isinstance(r, dict) or k not in r:
            return float("nan")
        r = r[k]
    return r
names = ("memcached", "ferrocache")
rows = []
def row(what, tag, path, fmt, better):
    m, f = (val(run(tag, n), *path) for n in names)
    ratio = f / m if m == m and m else float("nan")
    rows.append(f"| {what} | {fmt.format(m)} | {fmt.format(f)} | {ratio:.2f}x ({better}) |")
row("pipeline 16: ops/s", "p16", ("ops_per_sec",), "{:,.0f}", "higher is better")
row("pipeline 16: p99 µs", "p16", ("latency_us", "p99"), "{:,.0f}", "lower is better")
row("pipeline 1: ops/s", "p1", ("ops_per_sec",), "{:,.0f}", "higher is better")
row("pipeline 1: server CPU µs/request", "p1", ("server_cpu", "us_per_op"), "{:.2f}", "lower is better")
row(f"{rate:,} ops/s offered: p99 µs", "calm", ("latency_us", "p99"), "{:,.0f}", "lower is better")
row(f"{rate:,} ops/s + {storm} handshakes/s: p99 µs", "storm", ("latency_us", "p99"), "{:,.0f}", "lower is better")
row(f"{rate:,} ops/s + {storm} handshakes/s: p99.9 µs", "storm", ("latency_us", "p999"), "{:,.0f}", "lower is better")
row(f"{rate:,} ops/s + {storm} handshakes/s: ops/s", "storm", ("ops_per_sec",), "{:,.0f}", "higher is better")
row("handshakes completed per second", "storm", ("handshake_storm", "per_sec"), "{:,.0f}", "higher is better")
row("new connection (connect, handshake, `version`) p99 µs", "storm", ("handshake_storm", "p99_us"), "{:,.0f}", "lower is better")
today = datetime.date.today()
print(f"Run: {today}, mode `{mode}`; server `-t 1` on CPU 0, one load thread on CPU 1 (the storm's thread too), "
      f"50 TLS connections, 90% get / 10% set, 100 B values; TLS 1.3, P-256 server certificate; memcached 1.6.18 -Z (OpenSSL 3).\n")
print("| measure | memcached -Z | ferrocache -Z | ferrocache / memcached |")
print("|---|---:|---:|---:|")
print("\n".join(rows))
PY
cat "$OUT/tls.md"
write_section TLS "$OUT/tls.md" '## TLS: `benches/tls.sh`'
