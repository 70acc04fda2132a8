#!/usr/bin/env bash
# `ringwire load echo` against `ringwire serve`, one setting per line, with
# the CPU use of both processes.
#
#   bench/scripts/load_matrix.sh [BACKEND=uring] [SECS=5]
#
# The server runs one reactor pinned to CPU 1, the generator one thread
# pinned to CPU 0. CPU% is taken from /proc/PID/stat (utime + stime) over a
# window inside the measured period. Loopback only; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/../.."
BACKEND=${1:-uring}
SECS=${2:-5}
PORT=${PORT:-9451}
cargo build --release -q -p ringwire-cli
bin=./target/release/ringwire
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # label, load args...
  local label=$1; shift
  taskset -c 1 $bin serve --listen 127.0.0.1:$PORT --reactors 1 --backend "$BACKEND" >/dev/null 2>&1 &
  local srv=$!
  sleep 0.4
  taskset -c 0 $bin load echo "ws://127.0.0.1:$PORT/echo" "$@" --threads 1 --backend "$BACKEND" \
    --warmup 1s --duration "${SECS}s" --json >/tmp/load_matrix.json &
  local gen=$!
  sleep 1.5   # connections + warm-up
  local s0 g0 t0 s1 g1 t1
  s0=$(cpu_ticks $srv); g0=$(cpu_ticks $gen); t0=$(date +%s.%N)
  sleep $((SECS - 1))
  s1=$(cpu_ticks $srv); g1=$(cpu_ticks $gen); t1=$(date +%s.%N)
  wait $gen
  kill -INT $srv; wait $srv 2>/dev/null || true
  python3 - "$label" "$s0" "$s1" "$g0" "$g1" "$t0" "$t1" "$hz" <<'PY'
import json, sys
label, s0, s1, g0, g1, t0, t1, hz = sys.argv[1:]
r = json.load(open("/tmp/load_matrix.json"))
wall = float(t1) - float(t0)
srv = (int(s1) - int(s0)) / float(hz) / wall * 100
gen = (int(g1) - int(g0)) / float(hz) / wall * 100
l = r["latency_us"]
print(f"| {label} | {r['msgs_per_sec']:,.0f} | {r['mib_per_sec']:,.1f} | {l['p50']} | {l['p99']} | {l['p999']} | {srv:.0f}% | {gen:.0f}% | {r['mismatches']} | {r['errors_total']} |")
PY
}

echo "| setting | msgs/s | MiB/s | p50 µs | p99 µs | p99.9 µs | server CPU | generator CPU | mismatches | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
run "16 B binary, 64 conns × 16 in flight" --conns 64 --in-flight 16 --size 16
run "1 KiB text, 64 conns × 4 in flight" --conns 64 --in-flight 4 --size 1024 --text
run "64 KiB binary, 4 conns × 1" --conns 4 --in-flight 1 --size 65536
run "1 MiB binary, 1 conn × 1" --conns 1 --in-flight 1 --size 1048576
