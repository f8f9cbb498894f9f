#!/usr/bin/env bash
# Side-by-side load benchmark: memcached (apt package) and ferrocache with the same flags, each
# server pinned to CPU 0 and the load generator to CPU 1, runs alternated A/B/A/B so drift on a
# noisy machine cancels. The full run also measures ferrocache-bench's null server (answers
# without storing) as the ceiling for each workload. Writes docs/benchmarks.md (the table between the SUITE markers).
#   bash benches/suite.sh quick   # ~1 minute
#   bash benches/suite.sh full
source "$(dirname "$0")/common.sh"
MODE=${1:-quick}
if [ "$MODE" = quick ]; then DUR=1.5; REPS=1; else DUR=8; REPS=2; fi

start_server() { # name mem -> sets SRV_PID
  local name=$1 mem=$2 args=${3:-}
  if [ "$name" = memcached ]; then
    taskset -c $SRV_CPU memcached -u root -l 127.0.0.1 -p $PORT -U 0 -t 1 -m "$mem" -c 4096 >/dev/null 2>&1 &
  elif [ "$name" = null ]; then
    # The ceiling: ferrocache-bench's null server answers the same requests without a store.
    # shellcheck disable=SC2086
    taskset -c $SRV_CPU "$BENCH" --null-server 127.0.0.1:$PORT --key-size 32 $(null_args $args) >/dev/null 2>&1 &
  else
    taskset -c $SRV_CPU "$BIN" -u root -l 127.0.0.1 -p $PORT -t 1 -m "$mem" -c 4096 >/dev/null 2>&1 &
  fi
  SRV_PID=$!
  wait_port || { echo "server $name did not start" >&2; exit 1; }
}

# name | -m | load generator arguments
WORKLOADS=(
  "a: get 90% / set 10%, 100 B, pipeline 1|1024|--ratio 1:9 --value-size 100 --pipeline 1 --keys 100000"
  "a: the same at a fixed 60,000 req/s (latency from scheduled send)|1024|--ratio 1:9 --value-size 100 --pipeline 1 --keys 100000 --rate 60000"
  "b: get 90% / set 10%, 100 B, pipeline 16|1024|--ratio 1:9 --value-size 100 --pipeline 16 --keys 100000"
  "b: multi-get of 10 keys, pipeline 1|1024|--ratio 0:1 --value-size 100 --multiget 10 --keys 100000"
  "b: multi-get of 10 keys, pipeline 16|1024|--ratio 0:1 --value-size 100 --multiget 10 --pipeline 16 --keys 100000"
  "c: 4 KB values, pipeline 1|1024|--ratio 1:9 --value-size 4096 --pipeline 1 --keys 100000"
  "d: zipf 0.99, 1M keys x 200 B into -m 64|64|--ratio 1:9 --value-size 200 --keys 1000000 --key-pattern zipf:0.99 --pipeline 4"
  "e: set only, 100 B, pipeline 4|1024|--ratio 1:0 --value-size 100 --pipeline 4 --keys 100000"
)

# The null server needs the key count and value size the load uses (to answer with its values).
null_args() {
  local out=() prev=""
  for a in "$@"; do
    case "$prev" in --keys|--value-size) out+=("$prev" "$a") ;; esac
    prev=$a
  done
  echo "${out[@]}"
}

run_one() { # server workload-index rep
  local name=$1 i=$2 rep=$3
  IFS='|' read -r label mem args <<<"${WORKLOADS[$i]}"
  start_server "$name" "$mem" "$args"
  local pid=$SRV_PID
  # shellcheck disable=SC2086
  taskset -c $CLI_CPU "$BENCH" -q --json --server 127.0.0.1:$PORT --threads 1 --conns 50 \
    --key-size 32 --preload --warmup 1 --duration $DUR --seed 7 --server-pid "$pid" $args \
    > "$OUT/$name-$i-$rep.json" || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

# The quick run leaves out the fixed-rate row (benches/latency.sh measures tails properly).
if [ "$MODE" = quick ]; then
  KEEP=()
  for w in "${WORKLOADS[@]}"; do [[ "$w" == *"--rate "* ]] || KEEP+=("$w"); done
  WORKLOADS=("${KEEP[@]}")
fi
for i in "${!WORKLOADS[@]}"; do IFS="|" read -r label _ _ <<<"${WORKLOADS[$i]}"; echo "$label" > "$OUT/label-$i"; done
for rep in $(seq 1 $REPS); do
  for i in "${!WORKLOADS[@]}"; do
    run_one memcached "$i" "$rep"
    run_one ferrocache "$i" "$rep"
    [ "$MODE" = quick ] || run_one null "$i" "$rep"
  done
done

python3 - "$OUT" "$MODE" "$DUR" "$REPS" <<'PY' > "$OUT/table.md"
import json, sys, glob, statistics, datetime
out, mode, dur, reps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
labels = {}
def load(name, i):
    rows = []
    for f in sorted(glob.glob(f"{out}/{name}-{i}-*.json")):
        try:
            rows.append(json.load(open(f))["run"])
        except Exception:
            pass
    return rows
def med(rows, f):
    vals = [f(r) for r in rows if r]
    return statistics.median(vals) if vals else float("nan")
print(f"Run: {datetime.date.today()}, mode `{mode}` ({dur} s per run, {reps} A/B round(s)), server `-t 1` on CPU 0, one load thread on CPU 1, 50 connections, 32-byte keys.\n")
print("| workload | memcached ops/s | ferrocache ops/s | ratio | null server ops/s | ferrocache / null | memcached p99 µs | ferrocache p99 µs | memcached CPU µs/op | ferrocache CPU µs/op | CPU ratio | null CPU µs/op | hit ratio mc / fc |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
import os
i = 0
while glob.glob(f"{out}/memcached-{i}-*.json"):
    mc, fc, nu = load("memcached", i), load("ferrocache", i), load("null", i)
    label = open(f"{out}/label-{i}").read().strip() if os.path.exists(f"{out}/label-{i}") else str(i)
    ops = lambda r: r["ops_per_sec"]
    p99 = lambda r: r["latency_us"]["p99"]
    cpu = lambda r: (r.get("server_cpu") or {}).get("us_per_op", float("nan"))
    hit = lambda r: r["hit_ratio"]
    mo, fo = med(mc, ops), med(fc, ops)
    mcpu, fcpu = med(mc, cpu), med(fc, cpu)
    no = med(nu, ops) if nu else None
    null_cols = f"{no:,.0f} | {fo/no:.0%}" if no else "— | —"
    null_cpu = f"{med(nu, cpu):.2f}" if nu else "—"
    print(f"| {label} | {mo:,.0f} | {fo:,.0f} | {fo/mo if mo else float('nan'):.2f}x | {null_cols} | {med(mc,p99):,.0f} | {med(fc,p99):,.0f} | {mcpu:.2f} | {fcpu:.2f} | {fcpu/mcpu if mcpu else float('nan'):.2f}x | {null_cpu} | {med(mc,hit):.3f} / {med(fc,hit):.3f} |")
    i += 1
PY
write_section SUITE "$OUT/table.md"
cat "$OUT/table.md"
