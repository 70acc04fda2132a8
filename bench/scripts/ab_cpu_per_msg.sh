#!/usr/bin/env bash
# Server CPU time and page faults per echoed message, two `ringwire`
# builds side by side (rounds interleaved):
#   A=/path/to/old/ringwire B=target/release/ringwire \
#     bench/scripts/ab_cpu_per_msg.sh [ROUNDS=3] [CONNS=8] [SIZE=1048576]   (INFLIGHT=K messages in flight per connection, default 1)
# Server: one reactor pinned to CPU 1; generator on CPU 0: B's `ringwire
# load`, or with GEN=node a client that is not ours (node `ws` with
# bufferutil, bench/peers/node/ws-echo-client.js; bench/peers/install.sh
# installs it), or with GEN=raw raw-echo-client (bench/peers, std + libc
# only; RAW= its path, default target/release/raw-echo-client). CPU time (utime+stime) and minor faults come from /proc/PID/stat
# over a 4 s window inside each 5 s run. Loopback only, bounded in time.
set -euo pipefail
A=${A:?set A to the baseline binary}
B=${B:-target/release/ringwire}
ROUNDS=${1:-3}
CONNS=${2:-8}
SIZE=${3:-1048576}
PORT=${PORT:-9301}
hz=$(getconf CLK_TCK)
for round in $(seq "$ROUNDS"); do for side in A B; do for be in uring epoll; do
  bin=$A; [[ $side == B ]] && bin=$B
  taskset -c 1 "$bin" serve --listen 127.0.0.1:$PORT --backend $be --reactors 1 >/dev/null 2>&1 & sp=$!
  sleep 0.4
  json=$(mktemp)
  if [[ ${GEN:-ringwire} == raw ]]; then
    taskset -c 0 "${RAW:-target/release/raw-echo-client}" "ws://127.0.0.1:$PORT/echo" --conns "$CONNS" --inflight "${INFLIGHT:-1}" \
      --size "$SIZE" --duration 5 --warmup 1 >"$json" 2>/dev/null & lp=$!
  elif [[ ${GEN:-ringwire} == node ]]; then
    taskset -c 0 "${NODE:-node}" bench/peers/node/ws-echo-client.js ws://127.0.0.1:$PORT/echo \
      "$CONNS" "$SIZE" 5 1 >"$json" 2>/dev/null & lp=$!
  else
    taskset -c 0 "$B" load echo ws://127.0.0.1:$PORT/echo --conns "$CONNS" --in-flight "${INFLIGHT:-1}" --size "$SIZE" \
      --duration 5 --warmup 1 --json >"$json" 2>/dev/null & lp=$!
  fi
  sleep 1.5
  read -r f0 t0 < <(awk '{print $10, $14 + $15}' /proc/$sp/stat); s0=$(date +%s.%N)
  sleep 4
  read -r f1 t1 < <(awk '{print $10, $14 + $15}' /proc/$sp/stat); s1=$(date +%s.%N)
  wait $lp || true
  kill $sp; wait $sp 2>/dev/null || true
  python3 - "$json" "$round" "$side" "$be" "$f0" "$f1" "$t0" "$t1" "$s0" "$s1" "$hz" <<'PY'
import json, os, sys
path, rnd, side, be = sys.argv[1:5]
f0, f1, t0, t1, s0, s1, hz = map(float, sys.argv[5:12])
m = json.load(open(path))["msgs_per_sec"]
d = s1 - s0
cpu = (t1 - t0) / hz / d
print(f"round {rnd} {side} {be:5} ({os.environ.get('GEN', 'ringwire')}): {m:10,.0f} msgs/s  CPU {cpu*100:4.0f}%  "
      f"{cpu * 1e6 / m:9.3f} µs/msg  {(f1 - f0) / d / m:6.1f} minor faults/msg")
PY
  rm -f "$json"
done; done; done
