#!/usr/bin/env bash
# Pipeline-depth sweep and thread scaling, side by side with memcached, alternating servers.
# Writes docs/benchmarks-pipeline.svg (throughput and p99 against pipeline depth) and the tables
# between SWEEP START/END and SCALING START/END in docs/benchmarks.md.
# Usage: benches/sweep.sh [quick|full]
source "$(dirname "$0")/common.sh"
MODE=${1:-full}
if [ "$MODE" = quick ]; then DUR=1; else DUR=4; fi
COMMON="--ratio 1:9 --value-size 100 --keys 100000 --key-size 32 --preload --warmup 1 --seed 7"

run() { # name threads server-cpus client-cpus client-threads pipeline -> json
  local name=$1 t=$2 scpu=$3 ccpu=$4 ct=$5 p=$6
  PORT=$((PORT + 1))
  if [ "$name" = memcached ]; then
    taskset -c "$scpu" memcached -u root -l 127.0.0.1 -p $PORT -U 0 -t "$t" -m 1024 -c 4096 >/dev/null 2>&1 &
  else
    taskset -c "$scpu" "$BIN" -u root -l 127.0.0.1 -p $PORT -t "$t" -m 1024 -c 4096 >/dev/null 2>&1 &
  fi
  local pid=$!
  wait_port || true
  taskset -c "$ccpu" "$BENCH" -q --json --server 127.0.0.1:$PORT --threads "$ct" --conns $((50 / ct)) \
    --pipeline "$p" --duration $DUR --server-pid "$pid" $COMMON || echo '{"run":null}'
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

for p in 1 4 16 64; do
  for name in memcached ferrocache; do
    run $name 1 0 1 1 $p > "$OUT/sweep-$name-$p.json"
  done
done
for t in 1 2; do
  scpu=$([ $t = 1 ] && echo 0 || echo 0,1)
  for p in 1 16; do
    for name in memcached ferrocache; do
      run $name $t "$scpu" 0,1 2 $p > "$OUT/scale-$name-$t-$p.json"
    done
  done
done

python3 - "$OUT" "$MODE" <<'PY'
import json, sys, datetime
out, mode = sys.argv[1], sys.argv[2]
def get(path):
    try:
        r = json.load(open(path))["run"]
        return r["ops_per_sec"], r["latency_us"]["p99"], r["server_cpu"]["us_per_op"], r["server_cpu"]["cores"]
    except Exception:
        return float("nan"), float("nan"), float("nan"), float("nan")
depths = [1, 4, 16, 64]
sweep = {n: [get(f"{out}/sweep-{n}-{p}.json") for p in depths] for n in ("memcached", "ferrocache")}
today = datetime.date.today()
lines = [f"Run: {today}, mode `{mode}`; server `-t 1` on CPU 0, one load thread on CPU 1, 50 connections, 90% get / 10% set, 100 B values.\n",
         "| pipeline depth | memcached ops/s | ferrocache ops/s | ratio | memcached p99 µs | ferrocache p99 µs |",
         "|---:|---:|---:|---:|---:|---:|"]
for i, p in enumerate(depths):
    m, f = sweep["memcached"][i], sweep["ferrocache"][i]
    lines.append(f"| {p} | {m[0]:,.0f} | {f[0]:,.0f} | {f[0]/m[0]:.2f}x | {m[1]:,.0f} | {f[1]:,.0f} |")
sweep_md = "\n".join(lines)
lines = [f"Run: {today}, mode `{mode}`; two load threads (25 connections each) sharing both CPUs with the server; `-t 1` pinned to CPU 0, `-t 2` on CPUs 0-1.\n",
         "| pipeline | threads | memcached ops/s | ferrocache ops/s | ratio | memcached CPU µs/op | ferrocache CPU µs/op | memcached cores | ferrocache cores |",
         "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for p in (1, 16):
    for t in (1, 2):
        m, f = get(f"{out}/scale-memcached-{t}-{p}.json"), get(f"{out}/scale-ferrocache-{t}-{p}.json")
        lines.append(f"| {p} | {t} | {m[0]:,.0f} | {f[0]:,.0f} | {f[0]/m[0]:.2f}x | {m[2]:.2f} | {f[2]:.2f} | {m[3]:.2f} | {f[3]:.2f} |")
scale_md = "\n".join(lines)
print(sweep_md + "\n\n" + scale_md)

# SVG: two panels, log2 x axis (pipeline depth), linear y.
W, H, PAD = 760, 300, 55
def panel(x0, title, idx, unit):
    vals = [v[idx] for n in sweep for v in sweep[n] if v[idx] == v[idx]]
    ymax = max(vals) * 1.1 if vals else 1
    pw = W / 2 - PAD - 20
    ph = H - 2 * PAD
    def X(i): return x0 + PAD + pw * i / (len(depths) - 1)
    def Y(v): return PAD + ph * (1 - v / ymax)
    s = [f'<text x="{x0 + PAD + pw/2}" y="25" text-anchor="middle" font-size="14">{title}</text>',
         f'<line x1="{x0+PAD}" y1="{PAD+ph}" x2="{x0+PAD+pw}" y2="{PAD+ph}" stroke="#000"/>',
         f'<line x1="{x0+PAD}" y1="{PAD}" x2="{x0+PAD}" y2="{PAD+ph}" stroke="#000"/>']
    for i, p in enumerate(depths):
        s.append(f'<text x="{X(i)}" y="{PAD+ph+18}" text-anchor="middle" font-size="11">{p}</text>')
    s.append(f'<text x="{x0 + PAD + pw/2}" y="{H-8}" text-anchor="middle" font-size="11">pipeline depth</text>')
    for k in range(5):
        v = ymax * k / 4
        s.append(f'<text x="{x0+PAD-5}" y="{Y(v)+4}" text-anchor="end" font-size="10">{v:,.0f}</text>')
        s.append(f'<line x1="{x0+PAD}" y1="{Y(v)}" x2="{x0+PAD+pw}" y2="{Y(v)}" stroke="#ddd"/>')
    s.append(f'<text x="{x0+12}" y="{PAD-10}" font-size="10">{unit}</text>')
    for n, color in (("memcached", "#d62728"), ("ferrocache", "#1f77b4")):
        pts = " ".join(f"{X(i):.1f},{Y(v[idx]):.1f}" for i, v in enumerate(sweep[n]) if v[idx] == v[idx])
        s.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>')
        for i, v in enumerate(sweep[n]):
            if v[idx] == v[idx]:
                s.append(f'<circle cx="{X(i):.1f}" cy="{Y(v[idx]):.1f}" r="3" fill="{color}"/>')
    return "\n".join(s)
legend = ('<rect x="300" y="40" width="12" height="4" fill="#d62728"/><text x="316" y="46" font-size="11">memcached 1.6.18</text>'
          '<rect x="300" y="54" width="12" height="4" fill="#1f77b4"/><text x="316" y="60" font-size="11">ferrocache</text>')
svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif">\n'
       f'<rect width="{W}" height="{H}" fill="#fff"/>\n'
       + panel(0, "throughput (ops/s)", 0, "ops/s") + "\n" + panel(W/2, "p99 latency (µs)", 1, "µs") + "\n" + legend + "\n</svg>\n")
open("docs/benchmarks-pipeline.svg", "w").write(svg)
open(f"{out}/sweep.md", "w").write(sweep_md)
open(f"{out}/scaling.md", "w").write(scale_md)
PY
write_section SWEEP "$OUT/sweep.md" \
  $'## Pipeline depth: `benches/sweep.sh`\n\n![throughput and p99 against pipeline depth](benchmarks-pipeline.svg)'
write_section SCALING "$OUT/scaling.md" '## Thread scaling: `benches/sweep.sh`'
