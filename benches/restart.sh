#!/usr/bin/env bash
# Warm restart side by side with memcached (`-e`): load N 100-byte items with 16-byte keys
# (default 8M: about 1 GB of keys and values) into each server with its memory file on /dev/shm,
# stop it with SIGUSR1 (the save) and start it again on the same file. Reports the time from the
# signal to the process's exit (memcached writes only its metadata; ferrocache copies its pages
# out), the time from exec to the first answered request (both restore before serving) and the
# CPU time it took (comparable on a loaded machine), and the items before and after. Run it under `nice -n 10` on a shared machine. Writes the table
# between RESTART START/END in docs/benchmarks.md.
# Usage: benches/restart.sh [quick|full]
source "$(dirname "$0")/common.sh"
MODE=${1:-full}
if [ "$MODE" = quick ]; then N=500000; else N=8000000; fi
MEM=2048
FILE=/dev/shm/ferrocache-bench-restart.$$
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT" "$FILE" "$FILE.meta"' EXIT

start_server() { # name
  case "$1" in
    memcached) memcached -u root -l 127.0.0.1 -p $PORT -U 0 -t 2 -m $MEM -c 4096 -e "$FILE" >/dev/null 2>&1 & ;;
    *) "$BIN" -u root -l 127.0.0.1 -p $PORT -t 2 -m $MEM -c 4096 -e "$FILE" >/dev/null 2>&1 & ;;
  esac
  SRV_PID=$!
}
# Waits until the server answers a request (a restore of a large cache may take seconds; gives
# up after about 120 s).
wait_answer() {
  for _ in $(seq 1 12000); do
    [ "$(stat_of pid 2>/dev/null)" = "$SRV_PID" ] && return 0
    sleep 0.01
  done
  return 1
}
now() { date +%s.%N; }

for name in memcached ferrocache; do
  rm -f "$FILE" "$FILE.meta"
  start_server "$name"
  wait_answer || { echo "$name did not start" >&2; exit 1; }
  "$BENCH" -q --json --server 127.0.0.1:$PORT --threads 2 --conns 4 --pipeline 16 \
    --key-size 16 --value-size 100 --keys $N --preload --requests 1 --ratio 0:1 --seed 3 > /dev/null
  before=$(stat_of curr_items)
  t0=$(now); kill -USR1 "$SRV_PID"; wait "$SRV_PID" || true; t1=$(now)
  bytes=$(( $(stat -c %s "$FILE") + $(stat -c %s "$FILE.meta") ))
  # memcached refuses a restart in the same second as its stop (its metadata's stop_time).
  sleep 1.1
  t2=$(now); start_server "$name"; wait_answer || { echo "$name did not restart" >&2; exit 1; }; t3=$(now)
  # CPU seconds the start took (user + system, in clock ticks): the same on a loaded machine.
  cpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' /proc/$SRV_PID/stat)
  after=$(stat_of curr_items)
  rss=$(awk '/^VmRSS/ {print $2}' /proc/$SRV_PID/status)
  kill "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true
  echo "$name|$before|$after|$t0|$t1|$t2|$t3|$bytes|$rss|$cpu" >> "$OUT/rows"
done

python3 - "$OUT/rows" "$MODE" "$MEM" <<'PY' > "$OUT/table.md"
import sys, datetime
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1])]
print(f"Run: {datetime.date.today()}, `nice -n 10 benches/restart.sh {sys.argv[2]}`: 100-byte values, "
      f"16-byte keys, `-m {sys.argv[3]} -t 2 -e /dev/shm/...`, stopped with SIGUSR1 and started on the same file.\n")
print("| server | items saved | items restored | stop (signal to exit) | start (exec to first reply) | CPU time of the start | files on /dev/shm | RSS after the start |")
print("|---|---|---|---|---|---|---|---|")
names = {"memcached": "memcached 1.6.18", "ferrocache": "ferrocache"}
for name, before, after, t0, t1, t2, t3, size, rss, cpu in rows:
    print(f"| {names[name]} | {int(before):,} | {int(after):,} | {float(t1) - float(t0):.2f} s | "
          f"{float(t3) - float(t2):.2f} s | {cpu} s | {int(size) / 2**20:,.0f} MB | {int(rss) / 1024:,.0f} MB |")
PY
cat "$OUT/table.md"
write_section RESTART "$OUT/table.md" "## Warm restart (\`-e\`)

How long a restart with \`-e\` takes and what it keeps (\`benches/restart.sh\`). memcached keeps
its items in the file's mapping, so its stop writes only the metadata and its start walks the
items in place; ferrocache copies the pages out on the stop and back in on the start, checking
each page's checksum and each item, and removes the file once restored."
