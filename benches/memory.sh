#!/usr/bin/env bash
# Memory efficiency, side by side with memcached: load N items into each server with the same -m
# and report items stored, RSS, and bytes per item (RSS growth over the empty server, divided by
# items); then, with -m below the data size, how many items each keeps and the hit ratio of a
# zipfian workload afterwards (2M requests, 90% get / 10% set of the same zipf keys, as a cache
# in front of a database sees them). Writes the table between MEMORY START/END in docs/benchmarks.md.
#
# `benches/memory.sh large [BEFORE_BIN]`: memory per large item instead — 100 KB to 1 MB values
# (about 256 MB of them per size, -m 1024 -I 2m, nothing evicted) into memcached, ferrocache and,
# when given, an older ferrocache binary (e.g. one built before chunked items); writes the table
# between LARGE START/END.
# Usage: benches/memory.sh [quick|full|large [BEFORE_BIN]]
source "$(dirname "$0")/common.sh"
MODE=${1:-full}
if [ "$MODE" = quick ]; then N=200000; else N=1000000; fi

start_server() { # name mem [extra options...]
  PORT=$((PORT + 1))
  local name=$1 mem=$2
  shift 2
  case "$name" in
    memcached) memcached -u root -l 127.0.0.1 -p $PORT -U 0 -t 2 -m "$mem" -c 4096 "$@" >/dev/null 2>&1 & ;;
    before) "$BEFORE_BIN" -u root -l 127.0.0.1 -p $PORT -t 2 -m "$mem" -c 4096 "$@" >/dev/null 2>&1 & ;;
    *) "$BIN" -u root -l 127.0.0.1 -p $PORT -t 2 -m "$mem" -c 4096 "$@" >/dev/null 2>&1 & ;;
  esac
  SRV_PID=$!
  wait_port || { echo "server $1 did not start" >&2; exit 1; }
}
rss_kib() { awk '/^VmRSS/ {print $2}' /proc/$1/status; }

if [ "$MODE" = large ]; then
  BEFORE_BIN=${2:-}
  SERVERS=(memcached ferrocache)
  [ -n "$BEFORE_BIN" ] && SERVERS=(memcached before ferrocache)
  for size in 102400 256000 512000 768000 1048576; do
    n=$(( (256 << 20) / size ))
    for name in "${SERVERS[@]}"; do
      start_server "$name" 1024 -I 2m
      pid=$SRV_PID
      base=$(rss_kib "$pid")
      "$BENCH" -q --json --server 127.0.0.1:$PORT --threads 1 --conns 2 --pipeline 1 \
        --key-size 32 --value-size "$size" --keys $n --preload --requests 1 --ratio 0:1 \
        --seed 3 > /dev/null
      rss=$(rss_kib "$pid")
      echo "$size|$name|$(stat_of curr_items)|$base|$rss" >> "$OUT/large"
      kill "$pid"; wait "$pid" 2>/dev/null || true
    done
  done
  python3 - "$OUT/large" "$BEFORE_BIN" <<'PY' > "$OUT/table.md"
import sys, datetime
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1])]
names = {"memcached": "memcached 1.6.18", "ferrocache": "ferrocache", "before": "ferrocache before chunked items"}
print(f"Run: {datetime.date.today()}, `benches/memory.sh large{' BEFORE_BIN' if sys.argv[2] else ''}`: "
      "about 256 MB of values per size, `-m 1024 -I 2m -t 2`, 32-byte keys, nothing evicted.\n")
print("| value size | server | items stored | RSS growth MB | bytes per item | per item / value |")
print("|---:|---|---:|---:|---:|---:|")
for size, name, items, base, rss in rows:
    items, size = int(items or 0), int(size)
    grow = (int(rss) - int(base)) * 1024
    per = grow / items if items else float("nan")
    print(f"| {size // 1000} KB | {names[name]} | {items:,} | {grow / 2**20:.0f} | {per:,.0f} | {per / size:.2f}x |")
PY
  cat "$OUT/table.md"
  write_section LARGE "$OUT/table.md" '## Memory per large item: `benches/memory.sh large`'
  exit 0
fi

# workload label | -m | value size | after-load read (empty: none)
CASES=(
  "$N x 100 B values, 32 B keys|4096|100|"
  "$N x 64-2048 B values (uniform), 32 B keys|4096|64-2048|"
  "$N x 100 B values into -m 64 (data ~2x memory), then zipf 0.99 gets with 10% sets|64|100|zipf"
)

run_case() { # name case-index
  local name=$1 i=$2
  IFS='|' read -r label mem vsize read <<<"${CASES[$i]}"
  start_server "$name" "$mem"
  local pid=$SRV_PID base rss items hit=""
  base=$(rss_kib "$pid")
  "$BENCH" -q --json --server 127.0.0.1:$PORT --threads 2 --conns 8 --pipeline 32 \
    --key-size 32 --value-size "$vsize" --keys $N --preload --requests 1 --ratio 0:1 --seed 3 \
    > /dev/null
  rss=$(rss_kib "$pid")
  items=$(stat_of curr_items)
  local bytes=$(stat_of bytes)
  if [ "$read" = zipf ]; then
    hit=$("$BENCH" -q --json --server 127.0.0.1:$PORT --threads 2 --conns 8 --pipeline 16 \
      --key-size 32 --value-size "$vsize" --keys $N --ratio 1:9 --key-pattern zipf:0.99 \
      --requests 2000000 --seed 5 | python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["run"]["hit_ratio"])')
  fi
  echo "$label|$name|$items|$base|$rss|$hit" >> "$OUT/rows"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

for i in "${!CASES[@]}"; do
  run_case memcached "$i"
  run_case ferrocache "$i"
done

python3 - "$OUT/rows" "$MODE" <<'PY' > "$OUT/table.md"
import sys, datetime
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1])]
print(f"Run: {datetime.date.today()}, mode `{sys.argv[2]}`, both servers `-t 2`; keys `key:<n>` padded to 32 bytes, loaded once each (sequential preload).\n")
print("| workload | server | items stored | RSS MB | bytes per item (RSS growth / items) | payload per item | RSS / payload | zipf hit ratio |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for label, name, items, base, rss, hit in rows:
    items = int(items or 0)
    grow = (int(rss) - int(base)) * 1024
    per = grow / items if items else float("nan")
    if "64-2048" in label:
        payload = 32 + (64 + 2048) / 2
    else:
        payload = 32 + 100
    print(f"| {label} | {name} | {items:,} | {int(rss)/1024:.0f} | {per:.0f} | {payload:.0f} | {per/payload:.2f}x | {hit or '—'} |")
PY
cat "$OUT/table.md"
write_section MEMORY "$OUT/table.md" '## Memory efficiency: `benches/memory.sh`'
