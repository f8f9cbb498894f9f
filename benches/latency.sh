#!/usr/bin/env bash
# Latency at a fixed offered rate, side by side with memcached: each server `-t 1` on CPU 0, one
# load thread on CPU 1 sending on a fixed schedule (50 connections, pipeline 1, 90% get / 10% set,
# 100 B values); latency counts from each request's scheduled send time, so a stall shows as
# waiting. ferrocache-bench's null server (one thread, no store, no background work) takes the
# same schedule: its tail is the floor this machine and load generator impose. Tails on a shared VM vary a lot from run to run, so the runs alternate A/B several
# times and the table gives every run's p99 and the median. Writes the table between LATENCY
# START/END in docs/benchmarks.md.
# Usage: benches/latency.sh [quick|full]
source "$(dirname "$0")/common.sh"
MODE=${1:-full}
if [ "$MODE" = quick ]; then REPS=2; DUR=3; RATES="60000"; else REPS=6; DUR=5; RATES="30000 60000 90000"; fi

run_one() { # name rate rep
  PORT=$((PORT + 1))
  if [ "$1" = memcached ]; then
    taskset -c $SRV_CPU memcached -u root -l 127.0.0.1 -p $PORT -U 0 -t 1 -m 1024 -c 4096 >/dev/null 2>&1 &
  elif [ "$1" = null ]; then
    taskset -c $SRV_CPU "$BENCH" --null-server 127.0.0.1:$PORT --keys 100000 --key-size 32 --value-size 100 >/dev/null 2>&1 &
  else
    taskset -c $SRV_CPU "$BIN" -u root -l 127.0.0.1 -p $PORT -t 1 -m 1024 -c 4096 >/dev/null 2>&1 &
  fi
  local pid=$!
  wait_port || true
  taskset -c $CLI_CPU "$BENCH" -q --json --server 127.0.0.1:$PORT --threads 1 --conns 50 \
    --key-size 32 --preload --warmup 1 --duration $DUR --seed 7 --server-pid "$pid" \
    --ratio 1:9 --value-size 100 --pipeline 1 --keys 100000 --rate "$2" \
    > "$OUT/$1-$2-$3.json" || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

for rate in $RATES; do
  for rep in $(seq 1 $REPS); do
    run_one memcached "$rate" "$rep"
    run_one ferrocache "$rate" "$rep"
    run_one null "$rate" "$rep"
  done
done

python3 - "$OUT" "$MODE" "$DUR" "$REPS" "$RATES" <<'PY' > "$OUT/table.md"
import json, sys, glob, statistics, datetime
out, mode, dur, reps, rates = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5].split()
def runs(name, rate):
    rows = []
    for rep in range(1, reps + 1):
        try:
            rows.append(json.load(open(f"{out}/{name}-{rate}-{rep}.json"))["run"])
        except Exception:
            pass
    return rows
print(f"Run: {datetime.date.today()}, mode `{mode}`: {reps} alternating runs of {dur} s per server and rate; server `-t 1` on CPU 0, one load thread on CPU 1, 50 connections, pipeline 1, 90% get / 10% set, 100 B values.\n")
print("| offered rate | server | p50 µs (median) | p99 µs, each run | p99 µs (median) | p99.9 µs (median) | CPU µs/op (median) |")
print("|---:|---|---:|---|---:|---:|---:|")
for rate in rates:
    for name in ("memcached", "ferrocache", "null"):
        rs = runs(name, rate)
        if not rs:
            continue
        lat = lambda k: [r["latency_us"][k] for r in rs]
        cpu = [(r.get("server_cpu") or {}).get("us_per_op", float("nan")) for r in rs]
        each = " / ".join(f"{v:,.0f}" for v in lat("p99"))
        print(f"| {int(rate):,} | {name} | {statistics.median(lat('p50')):,.0f} | {each} | {statistics.median(lat('p99')):,.0f} | {statistics.median(lat('p999')):,.0f} | {statistics.median(cpu):.2f} |")
PY
write_section LATENCY "$OUT/table.md" '## Latency at a fixed rate: `benches/latency.sh`'
cat "$OUT/table.md"
