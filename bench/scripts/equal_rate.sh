#!/usr/bin/env bash
# Server cost per message at an equal fixed rate, per backend: CPU time per
# message (from /proc/PID/stat over a window) and system calls per message
# (perf's raw_syscalls:sys_enter tracepoint, counted over a later window
# of the same run; strace cannot detach from a thread waiting in
# io_uring_enter).
#
#   bench/scripts/equal_rate.sh [RATE=100000] [SIZE=16]
#
# Server: one reactor on CPU 1; generator: `ringwire load rate` on CPU 0.
# Loopback only; bounded in time.
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-100000}
SIZE=${2:-16}
PORT=${PORT:-9491}
command -v perf >/dev/null || apt-get install -y -qq linux-perf >/dev/null
cargo build --release -q -p ringwire-cli
bin=./target/release/ringwire
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "| backend | rate (msgs/s) | server CPU | CPU µs per message | syscalls per message |"
echo "|---|---:|---:|---:|---:|"
for be in uring epoll; do
  taskset -c 1 $bin serve --listen 127.0.0.1:$PORT --reactors 1 --backend $be >/dev/null 2>&1 &
  srv=$!
  sleep 0.4
  taskset -c 0 $bin load rate ws://127.0.0.1:$PORT/echo --conns 64 --size "$SIZE" --rate "$RATE" \
    --warmup 1s --duration 9s --json >/tmp/equal_rate.json &
  gen=$!
  sleep 2
  c0=$(ticks $srv); t0=$(date +%s.%N); sleep 3; c1=$(ticks $srv); t1=$(date +%s.%N)
  sleep 0.5
  perf stat -x, -e raw_syscalls:sys_enter -p $srv -o /tmp/equal_rate.perf -- sleep 3 >/dev/null 2>&1 || true
  wait $gen
  kill -INT $srv; wait $srv 2>/dev/null || true
  python3 - "$be" "$RATE" "$c0" "$c1" "$t0" "$t1" "$hz" <<'PY'
import json, re, sys
be, rate, c0, c1, t0, t1, hz = sys.argv[1:]
rate = float(rate)
wall = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / float(hz)
r = json.load(open("/tmp/equal_rate.json"))
achieved = r["msgs_per_sec"]
calls = 0
for line in open("/tmp/equal_rate.perf"):
    parts = line.strip().split(",")
    if len(parts) > 2 and "raw_syscalls:sys_enter" in parts[2]:
        calls = int(float(parts[0]))
# Counted over ~3 s of the same rate.
per_msg = calls / (achieved * 3.0) if achieved else 0
print(f"| {be} | {achieved:,.0f} | {cpu / wall * 100:.0f}% | {cpu / (achieved * wall) * 1e6:.2f} | {per_msg:.3f} |")
PY
done
