# Shared by the benchmark scripts (sourced, never run): strict mode, the repository root, the
# binaries (built if missing), the memcached check, CPUs for server and load, a server port
# below the ephemeral range, a temporary folder removed on exit (with any server still running),
# and three helpers: wait_port, stat_of and write_section.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# FERRO_BIN / FERRO_BENCH name other builds (e.g. under another CARGO_TARGET_DIR).
BIN=${FERRO_BIN:-target/release/ferrocache}
BENCH=${FERRO_BENCH:-target/release/ferrocache-bench}
DOC=docs/benchmarks.md
[ -x "$BIN" ] && [ -x "$BENCH" ] || cargo build --workspace --release --bins
command -v memcached >/dev/null || { echo "memcached is not installed (apt-get install -y memcached)"; exit 1; }
NCPU=$(nproc)
SRV_CPU=0; CLI_CPU=$(( NCPU > 1 ? 1 : 0 ))
# Below the ephemeral range (32768+), so a load connection never holds the port a server needs.
PORT=$(( 20000 + RANDOM % 10000 ))
OUT=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT

# True once a server accepts connections on $PORT (gives up after about 5 s).
wait_port() {
  for _ in $(seq 1 500); do
    (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0
    sleep 0.01
  done
  return 1
}

# stat_of NAME: the value of `stats` field NAME of the server on $PORT.
stat_of() {
  exec 3<>/dev/tcp/127.0.0.1/$PORT
  printf 'stats\r\nquit\r\n' >&3
  tr -d '\r' <&3 | awk -v k="$1" '$1 == "STAT" && $2 == k {print $3}'
  exec 3<&- 3>&- || true
}

# write_section TAG FILE [PREAMBLE]: puts FILE's text between <!-- TAG START --> and
# <!-- TAG END --> in docs/benchmarks.md; when the markers are missing, appends PREAMBLE (markdown,
# e.g. a heading) and the marked block.
write_section() {
  mkdir -p "$(dirname "$DOC")"
  [ -f "$DOC" ] || printf '# Benchmarks\n' > "$DOC"
  python3 - "$DOC" "$1" "$2" "${3:-}" <<'PY'
import sys
doc, tag, table, preamble = sys.argv[1], sys.argv[2], open(sys.argv[3]).read().strip(), sys.argv[4]
s = open(doc).read()
a, b = f"<!-- {tag} START -->", f"<!-- {tag} END -->"
if a in s and b in s:
    s = s[:s.index(a) + len(a)] + "\n" + table + "\n" + s[s.index(b):]
else:
    s += "\n" + (preamble + "\n\n" if preamble else "") + a + "\n" + table + "\n" + b + "\n"
open(doc, "w").write(s)
PY
}
