#!/usr/bin/env bash
# Side-by-side echo comparison: ringwire (io_uring and epoll) against
# tokio-tungstenite, fastwebsockets, tokio-websockets, uWebSockets (uWS.js)
# and node ws, in the same run, on the same machine, with the same load.
#
#   bench/compare.sh [ROUNDS=3] [SECS=5] [SERVERS="…"]
#
# A/B against an older build, side by side in the same run: set BASE_BIN
# to its `ringwire` binary and name the servers ringwire-base-uring /
# ringwire-base-epoll, e.g.
#   BASE_BIN=/tmp/old/ringwire SETTINGS="64x16B-if16 64x1KiB-text-if4" \
#     bench/compare.sh 5 5 "ringwire-base-uring ringwire-uring ringwire-base-epoll ringwire-epoll"
# (SETTINGS keeps only the named settings; the table then goes between
# the compare-ab markers in BENCHMARKS.md, or AB_MARKER's, with new/base
# ratios and the server's CPU time per message.)
#
# Each server runs pinned to CPU 1 (one core; ringwire with one reactor),
# `ringwire load` pinned to CPU 0. Servers are interleaved (A B C … A B C …)
# for ROUNDS rounds; medians are reported. Every run is bounded in time and
# talks only to 127.0.0.1; servers are stopped by PID.
#
# Output: bench/results/<date>.jsonl (every run) and <date>.json (medians),
# bench/results/<date>.svg (msgs/s per setting per server), and the table
# between the compare markers in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-5}
SERVERS=${3:-"ringwire-uring ringwire-epoll tokio-tungstenite fastwebsockets tokio-websockets uws ws"}
PORT=${PORT:-9471}
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
out=bench/results/$stamp
mkdir -p bench/results

cargo build --release -q -p ringwire-cli -p ringwire-peers
bench/peers/install.sh >/dev/null
bin=./target/release/ringwire
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

start_server() { # name -> pid on stdout
  local name=$1 addr=127.0.0.1:$PORT
  case $name in
    ringwire-uring) taskset -c 1 $bin serve --listen $addr --reactors 1 --backend uring >/dev/null 2>&1 & ;;
    ringwire-epoll) taskset -c 1 $bin serve --listen $addr --reactors 1 --backend epoll >/dev/null 2>&1 & ;;
    ringwire-base-uring) taskset -c 1 "${BASE_BIN:?set BASE_BIN}" serve --listen $addr --reactors 1 --backend uring >/dev/null 2>&1 & ;;
    ringwire-base-epoll) taskset -c 1 "${BASE_BIN:?set BASE_BIN}" serve --listen $addr --reactors 1 --backend epoll >/dev/null 2>&1 & ;;
    tokio-tungstenite) taskset -c 1 ./target/release/peer-tokio-tungstenite $addr >/dev/null 2>&1 & ;;
    fastwebsockets) taskset -c 1 ./target/release/peer-fastwebsockets $addr >/dev/null 2>&1 & ;;
    tokio-websockets) taskset -c 1 ./target/release/peer-tokio-websockets $addr >/dev/null 2>&1 & ;;
    uws) taskset -c 1 bench/peers/node/run-uws.sh $addr >/dev/null 2>&1 & ;;
    ws) taskset -c 1 bench/peers/node/run-ws.sh $addr >/dev/null 2>&1 & ;;
    *) echo "unknown server $name" >&2; exit 2 ;;
  esac
  local pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && { echo $pid; return 0; }
    sleep 0.05
  done
  echo "$name did not start" >&2; kill $pid 2>/dev/null; return 1
}

stop_server() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
  kill -9 "$1" 2>/dev/null || true
}

# One measurement: server, setting name, mode, load args… -> a JSON line.
measure() {
  local server=$1 setting=$2 mode=$3; shift 3
  local srv; srv=$(start_server "$server") || return 0
  local json; json=$(mktemp)
  taskset -c 0 $bin load "$mode" "ws://127.0.0.1:$PORT/echo" "$@" --threads 1 \
    --warmup 1s --duration "${SECS}s" --connect-timeout 5s --json >"$json" 2>/dev/null &
  local gen=$!
  sleep 1.3
  local s0 t0; s0=$(cpu_ticks "$srv"); t0=$(date +%s.%N)
  sleep "$(python3 -c "print(max(0.5, $SECS - 0.6))")"
  local s1 t1; s1=$(cpu_ticks "$srv"); t1=$(date +%s.%N)
  wait $gen || true
  stop_server "$srv"
  python3 - "$server" "$setting" "$mode" "$s0" "$s1" "$t0" "$t1" "$hz" "$json" >>"$out.jsonl" <<'PY'
import json, sys
server, setting, mode, s0, s1, t0, t1, hz, path = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception as e:
    r = {"failed": str(e)}
r.update(server=server, setting=setting,
         server_cpu_percent=(int(s1) - int(s0)) / float(hz) / max(1e-9, float(t1) - float(t0)) * 100)
print(json.dumps(r))
PY
  rm -f "$json"
  sleep 0.3 # let the port's TIME_WAITs not matter
}

# The settings the issue asks for.
settings=(
  "100x20B-if1|--conns 100 --in-flight 1 --size 20"
  "64x16B-if16|--conns 64 --in-flight 16 --size 16"
  "64x1KiB-text-if4|--conns 64 --in-flight 4 --size 1024 --text"
  "500x16KiB-if1|--conns 500 --in-flight 1 --size 16384"
  "4x64KiB-if1|--conns 4 --in-flight 1 --size 65536"
  "1x1MiB-if1|--conns 1 --in-flight 1 --size 1048576"
)

: >"$out.jsonl"
if [[ -n ${SETTINGS:-} ]]; then
  kept=()
  for s in "${settings[@]}"; do
    [[ " $SETTINGS " == *" ${s%%|*} "* ]] && kept+=("$s")
  done
  settings=("${kept[@]}")
fi
for round in $(seq "$ROUNDS"); do
  for s in "${settings[@]}"; do
    name=${s%%|*}; args=${s#*|}
    for server in $SERVERS; do
      echo "round $round/$ROUNDS  $name  $server" >&2
      # shellcheck disable=SC2086
      measure "$server" "$name" echo $args
    done
  done
done

# Fixed rate at 50% of the best peer's median maximum in the 1 KiB setting:
# tail latency at equal load.
rate=$(python3 - "$out.jsonl" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
best = 0
for server in {r["server"] for r in rows if not r["server"].startswith("ringwire")}:
    v = [r["msgs_per_sec"] for r in rows if r["server"] == server and r["setting"] == "64x1KiB-text-if4" and "msgs_per_sec" in r]
    if v:
        best = max(best, statistics.median(v))
print(int(best * 0.5) if best else 100000)
PY
)
for round in $(seq "$ROUNDS"); do
  for server in $SERVERS; do
    echo "round $round/$ROUNDS  rate $rate/s  $server" >&2
    measure "$server" "rate-64x1KiB-text@$rate" rate --conns 64 --size 1024 --text --rate "$rate"
  done
done

python3 bench/scripts/compare_report.py "$out.jsonl" "$out" "$(git rev-parse --short HEAD)" "$ROUNDS" "$SECS"
