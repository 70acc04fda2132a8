#!/usr/bin/env bash
# Side-by-side echo comparison: ringwire (io_uring and epoll) and
# ringwire-tokio (ringwire's parser on tokio) against
# tokio-tungstenite, fastwebsockets, tokio-websockets, uWebSockets (uWS.js)
# and node ws, in the same run, on the same machine, with the same load,
# measured with two generators: `ringwire load` and raw-echo-client (a
# minimal client written apart from the engine, bench/peers/README.md).
#
#   bench/compare.sh [--server-cores N] [--gen-cores M] [--cpu-table] [ROUNDS] [SECS] [SERVERS]
#   bench/compare.sh --fanout [SECS] [SERVERS]   (pub/sub fan-out: bench/scripts/fanout.sh)
#
#   ROUNDS   rounds, servers interleaved in each (A B C … A B C …); medians
#            are reported (default 3; --cpu-table: 4)
#   SECS     seconds per run after a 1 s warm-up (default 5; --cpu-table: 3)
#   SERVERS  space-separated (default: ringwire-uring ringwire-epoll
#            tokio-tungstenite fastwebsockets tokio-websockets ringwire-tokio
#            uws ws; --cpu-table: the first six)
#            also available: ringwire-aio-uring ringwire-aio-epoll (the
#            async API's echo, bench/src/bin/aio_echo.rs)
#
#   --server-cores N  the server gets N CPUs: ringwire `--reactors N`, the Rust
#                     peers a tokio multi-thread runtime with N workers
#                     (`--workers N`; N = 1 is their current-thread runtime).
#                     The node peers (uws, ws) are single-threaded whatever N.
#   --gen-cores M     the generator gets M other CPUs and M threads.
#                     Default 1/1 (this 2-core machine): generator on the
#                     first allowed CPU (CPU 0), server on the next (CPU 1).
#                     In general the generator takes the first M CPUs this
#                     process may run on and the server the next N; N + M
#                     must not exceed them (nproc). On a 16-core machine,
#                     e.g. `--server-cores 4 --gen-cores 8` (server on CPUs
#                     8-11, generator on 0-7); see BENCHMARKS.md.
#   --cpu-table       the server's CPU time per message (issue #14 item 6):
#                     16 B ×16, 1 KiB ×4 (text), 16 KiB, 8 × 1 MiB, both
#                     generators, ringwire and the Rust peers; the table goes
#                     between the cpu-table markers of BENCHMARKS.md. Defaults
#                     4 rounds × 3 s: 160 runs of ~4.5 s, about 12 minutes.
#
# Environment (all optional):
#   GEN=ringwire|raw|both  which generator(s) (default both); every table and
#                 ratio is given per generator. The fixed-rate latency runs
#                 need `ringwire load` (the raw client is closed-loop only).
#   SETTINGS="a b"  keep only the named settings (see the list below; the
#                 extra settings run only when named here)
#   BASE_BIN      A/B against an older build, side by side in the same run:
#                 its `ringwire` binary, with servers ringwire-base-uring /
#                 ringwire-base-epoll, e.g.
#     BASE_BIN=/tmp/old/ringwire SETTINGS="64x16B-if16 64x1KiB-text-if4" \
#       bench/compare.sh 5 5 "ringwire-base-uring ringwire-uring ringwire-base-epoll ringwire-epoll"
#                 The table then goes between the compare-ab markers in
#                 BENCHMARKS.md (or AB_MARKER's), with new/base ratios and
#                 the server's CPU time per message.
#   AB_MARKER     marker name for the A/B table (default compare-ab)
#   BASE_DESC     words describing the base build, for the A/B table
#   PORT          loopback port (default 9471)
#   WRITE_DOC=0   print the tables but leave BENCHMARKS.md alone
#
# Server CPU time (utime + stime of the server's PID, all threads) is read
# from /proc/PID/stat over a window inside each run (from 1.3 s after the
# generator starts to 0.6 s before its end) and reported as a share of one
# core and as µs per echoed message. Every run is bounded in time and talks
# only to 127.0.0.1; servers are stopped by PID.
#
# Output: bench/results/<date>.jsonl (every run) and <date>.json (medians),
# bench/results/<date>.svg (msgs/s per setting per server), and the tables
# between the markers in BENCHMARKS.md: `compare` (or, with other core
# counts than 1/1, `compare-serverN-genM`), `cpu-table` (`cpu-table-serverN-genM`).
set -euo pipefail
cd "$(dirname "$0")/.."
# The command line as it could be typed again (with the variables that shape the run).
cmdline=""
for v in GEN SETTINGS BASE_BIN BASE_DESC; do
  [[ -n ${!v:-} ]] && cmdline+="$v=\"${!v}\" "
done
cmdline+="bench/compare.sh"
for a in "$@"; do
  if [[ $a == *[[:space:]]* ]]; then cmdline+=" \"$a\""; else cmdline+=" $a"; fi
done

die() { echo "compare.sh: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

SERVER_CORES=1
GEN_CORES=1
CPU_TABLE=0
pos=()
while (($#)); do
  case $1 in
    --server-cores) (($# >= 2)) || die "--server-cores needs a value"; SERVER_CORES=$2; shift 2 ;;
    --server-cores=*) SERVER_CORES=${1#*=}; shift ;;
    --gen-cores) (($# >= 2)) || die "--gen-cores needs a value"; GEN_CORES=$2; shift 2 ;;
    --gen-cores=*) GEN_CORES=${1#*=}; shift ;;
    --cpu-table) CPU_TABLE=1; shift ;;
    # The pub/sub fan-out comparison (#15) has its own generator mode and
    # settings: bench/scripts/fanout.sh [SECS] [SERVERS].
    --fanout) shift; exec bench/scripts/fanout.sh "$@" ;;
    -h | --help) usage; exit 0 ;;
    --) shift; pos+=("$@"); break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) pos+=("$1"); shift ;;
  esac
done
((${#pos[@]} <= 3)) || die "at most three arguments: [ROUNDS] [SECS] [SERVERS] (quote the server list)"
rust_servers="ringwire-uring ringwire-epoll tokio-tungstenite fastwebsockets tokio-websockets ringwire-tokio"
if ((CPU_TABLE)); then
  ROUNDS=${pos[0]:-4}
  SECS=${pos[1]:-3}
  SERVERS=${pos[2]:-$rust_servers}
else
  ROUNDS=${pos[0]:-3}
  SECS=${pos[1]:-5}
  SERVERS=${pos[2]:-"$rust_servers uws ws"}
fi
PORT=${PORT:-9471}
GEN=${GEN:-both}
for v in ROUNDS SECS SERVER_CORES GEN_CORES; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a whole number >= 1, not '${!v}'"
done
case $GEN in
  ringwire) gens=(ringwire) ;;
  raw) gens=(raw) ;;
  both) gens=(ringwire raw) ;;
  *) die "GEN must be ringwire, raw or both, not '$GEN'" ;;
esac

# CPUs: the generator on the first GEN_CORES CPUs this process may use, the
# server on the next SERVER_CORES (1/1: generator CPU 0, server CPU 1).
read -r -a allowed < <(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))')
if ((SERVER_CORES + GEN_CORES > ${#allowed[@]})); then
  die "--server-cores $SERVER_CORES + --gen-cores $GEN_CORES = $((SERVER_CORES + GEN_CORES)) CPUs, but only ${#allowed[@]} are available (nproc: $(nproc); CPUs ${allowed[*]})"
fi
join() { local IFS=,; echo "$*"; }
GEN_CPUS=$(join "${allowed[@]:0:GEN_CORES}")
SERVER_CPUS=$(join "${allowed[@]:GEN_CORES:SERVER_CORES}")
if ((SERVER_CORES > 1)); then
  layout="server on CPUs $SERVER_CPUS ($SERVER_CORES cores: ringwire --reactors $SERVER_CORES, Rust peers on a multi-thread runtime with $SERVER_CORES workers)"
else
  layout="server on CPU $SERVER_CPUS (one core: ringwire --reactors 1, Rust peers on a current-thread runtime)"
fi
if ((GEN_CORES > 1)); then
  layout+=", generator on CPUs $GEN_CPUS ($GEN_CORES threads)"
else
  layout+=", generator on CPU $GEN_CPUS (one thread)"
fi
if ((SERVER_CORES > 1)) && [[ " $SERVERS " =~ \ (uws|ws)\  ]]; then
  echo "compare.sh: note: the node peers (uws, ws) are single-threaded: they use one of the $SERVER_CORES server cores" >&2
  layout+="; the node peers are single-threaded"
fi

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
out=bench/results/$stamp
mkdir -p bench/results

cargo build --release -q -p ringwire-cli -p ringwire-peers
if [[ " $SERVERS " =~ \ ringwire-aio- ]]; then cargo build --release -q -p ringwire-bench --bin aio_echo; fi
if [[ " $SERVERS " =~ \ (uws|ws)\  ]]; then bench/peers/install.sh >/dev/null; fi
bin=./target/release/ringwire
raw=./target/release/raw-echo-client
hz=$(getconf CLK_TCK)
window=$(awk -v s="$SECS" 'BEGIN { w = s - 0.6; print (w < 0.5 ? 0.5 : w) }')
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

start_server() { # name -> pid on stdout
  local name=$1 addr=127.0.0.1:$PORT n=$SERVER_CORES
  local pin=(taskset -c "$SERVER_CPUS")
  case $name in
    ringwire-uring) "${pin[@]}" $bin serve --listen "$addr" --reactors "$n" --backend uring >/dev/null 2>&1 & ;;
    ringwire-epoll) "${pin[@]}" $bin serve --listen "$addr" --reactors "$n" --backend epoll >/dev/null 2>&1 & ;;
    ringwire-aio-uring) "${pin[@]}" ./target/release/aio_echo "$addr" --reactors "$n" --backend uring >/dev/null 2>&1 & ;;
    ringwire-aio-epoll) "${pin[@]}" ./target/release/aio_echo "$addr" --reactors "$n" --backend epoll >/dev/null 2>&1 & ;;
    ringwire-base-uring) "${pin[@]}" "${BASE_BIN:?set BASE_BIN}" serve --listen "$addr" --reactors "$n" --backend uring >/dev/null 2>&1 & ;;
    ringwire-base-epoll) "${pin[@]}" "${BASE_BIN:?set BASE_BIN}" serve --listen "$addr" --reactors "$n" --backend epoll >/dev/null 2>&1 & ;;
    tokio-tungstenite) "${pin[@]}" ./target/release/peer-tokio-tungstenite "$addr" --workers "$n" >/dev/null 2>&1 & ;;
    fastwebsockets) "${pin[@]}" ./target/release/peer-fastwebsockets "$addr" --workers "$n" >/dev/null 2>&1 & ;;
    tokio-websockets) "${pin[@]}" ./target/release/peer-tokio-websockets "$addr" --workers "$n" >/dev/null 2>&1 & ;;
    ringwire-tokio) "${pin[@]}" ./target/release/peer-ringwire-tokio "$addr" --workers "$n" >/dev/null 2>&1 & ;;
    uws) "${pin[@]}" bench/peers/node/run-uws.sh "$addr" >/dev/null 2>&1 & ;;
    ws) "${pin[@]}" bench/peers/node/run-ws.sh "$addr" >/dev/null 2>&1 & ;;
    *) echo "unknown server $name" >&2; exit 2 ;;
  esac
  local pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && { echo $pid; return 0; }
    sleep 0.05
  done
  echo "$name did not start" >&2; kill $pid 2>/dev/null; return 1
}

# Gone, or a zombie: the server was started in a command substitution, so
# it is not our child, and whoever reaps it may take seconds to.
gone() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
  [[ -z $st || $st == Z* ]]
}

stop_server() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 100); do gone "$1" && return 0; sleep 0.05; done
  kill -9 "$1" 2>/dev/null || true
}

# One measurement: server, setting name, generator, mode, load args… -> a
# JSON line in $out.jsonl.
measure() {
  local server=$1 setting=$2 gen=$3 mode=$4; shift 4
  # As many generator threads as cores, but not more than connections.
  local threads=$GEN_CORES a prev=""
  for a in "$@"; do
    if [[ $prev == --conns ]] && ((a < threads)); then threads=$a; fi
    prev=$a
  done
  local srv; srv=$(start_server "$server") || return 0
  local json; json=$(mktemp)
  local pin=(taskset -c "$GEN_CPUS")
  if [[ $gen == raw ]]; then
    "${pin[@]}" $raw "ws://127.0.0.1:$PORT/echo" "$@" --threads "$threads" \
      --warmup 1s --duration "${SECS}s" --connect-timeout 5s >"$json" 2>/dev/null &
  else
    "${pin[@]}" $bin load "$mode" "ws://127.0.0.1:$PORT/echo" "$@" --threads "$threads" \
      --warmup 1s --duration "${SECS}s" --connect-timeout 5s --json >"$json" 2>/dev/null &
  fi
  local genpid=$!
  sleep 1.3
  local s0 t0; s0=$(cpu_ticks "$srv"); t0=$(date +%s.%N)
  sleep "$window"
  local s1 t1; s1=$(cpu_ticks "$srv"); t1=$(date +%s.%N)
  wait $genpid || true
  stop_server "$srv"
  python3 - "$server" "$setting" "$gen" "$s0" "$s1" "$t0" "$t1" "$hz" "$json" "$SERVER_CORES" "$GEN_CORES" >>"$out.jsonl" <<'PY'
import json, sys
server, setting, gen, s0, s1, t0, t1, hz, path, score, gcore = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception as e:
    r = {"failed": str(e)}
r.update(server=server, setting=setting, gen=gen, server_cores=int(score), gen_cores=int(gcore),
         server_cpu_percent=(int(s1) - int(s0)) / float(hz) / max(1e-9, float(t1) - float(t0)) * 100)
print(json.dumps(r))
PY
  rm -f "$json"
  sleep 0.3 # let the port's TIME_WAITs not matter
}

# The settings: name|load arguments (the same for both generators). The
# first six run by default; the rest only when SETTINGS names them (or
# --cpu-table picks them).
settings=(
  "100x20B-if1|--conns 100 --in-flight 1 --size 20"
  "64x16B-if16|--conns 64 --in-flight 16 --size 16"
  "64x1KiB-text-if4|--conns 64 --in-flight 4 --size 1024 --text"
  "500x16KiB-if1|--conns 500 --in-flight 1 --size 16384"
  "4x64KiB-if1|--conns 4 --in-flight 1 --size 65536"
  "1x1MiB-if1|--conns 1 --in-flight 1 --size 1048576"
)
extra_settings=(
  "64x1KiB-bin-if4|--conns 64 --in-flight 4 --size 1024"
  "64x16KiB-if1|--conns 64 --in-flight 1 --size 16384"
  "8x1MiB-if1|--conns 8 --in-flight 1 --size 1048576"
  "256x16B-if16|--conns 256 --in-flight 16 --size 16"
  "256x1KiB-text-if4|--conns 256 --in-flight 4 --size 1024 --text"
  "1024x16B-if16|--conns 1024 --in-flight 16 --size 16"
  "1024x1KiB-text-if4|--conns 1024 --in-flight 4 --size 1024 --text"
)
CPU_SETTINGS="64x16B-if16 64x1KiB-text-if4 64x16KiB-if1 8x1MiB-if1"
want=${SETTINGS:-}
((CPU_TABLE)) && want=${SETTINGS:-$CPU_SETTINGS}
if [[ -n $want ]]; then
  kept=()
  for s in "${settings[@]}" "${extra_settings[@]}"; do
    [[ " $want " == *" ${s%%|*} "* ]] && kept+=("$s")
  done
  for w in $want; do
    [[ " ${kept[*]%%|*} " == *" $w "* ]] || echo "compare.sh: warning: unknown setting '$w' (known: ${settings[*]%%|*} ${extra_settings[*]%%|*})" >&2
  done
  ((${#kept[@]})) || die "no known setting in SETTINGS='$want'"
  settings=("${kept[@]}")
fi
rate_runs=0
if ((!CPU_TABLE)) && [[ " ${gens[*]} " == *" ringwire "* ]]; then rate_runs=1; fi
n_servers=$(wc -w <<<"$SERVERS")
runs=$((ROUNDS * n_servers * (${#settings[@]} * ${#gens[@]} + rate_runs)))
# Each run: SECS + ~1.5 s (1 s warm-up, start, stop, a pause for the port).
echo "compare.sh: $runs runs of ~$((SECS + 1)).5 s (about $(((runs * (2 * SECS + 3) / 2 + 59) / 60)) min); $layout; generators: ${gens[*]}" >&2
began=$SECONDS

: >"$out.jsonl"
for round in $(seq "$ROUNDS"); do
  for s in "${settings[@]}"; do
    name=${s%%|*}; args=${s#*|}
    for gen in "${gens[@]}"; do
      for server in $SERVERS; do
        echo "round $round/$ROUNDS  $name  $gen  $server" >&2
        # shellcheck disable=SC2086
        measure "$server" "$name" "$gen" echo $args
      done
    done
  done
done

# Fixed rate at 50% of the best peer's median maximum in the 1 KiB setting
# (measured with `ringwire load`): tail latency at equal load.
if ((rate_runs)); then
  rate=$(python3 - "$out.jsonl" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
rows = [r for r in rows if r.get("gen", "ringwire") == "ringwire"]
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
      measure "$server" "rate-64x1KiB-text@$rate" ringwire rate --conns 64 --size 1024 --text --rate "$rate"
    done
  done
fi

mode=compare
((CPU_TABLE)) && mode=cpu-table
COMPARE_MODE=$mode COMPARE_CMD="$cmdline" COMPARE_LAYOUT="$layout" \
  SERVER_CORES=$SERVER_CORES GEN_CORES=$GEN_CORES \
  python3 bench/scripts/compare_report.py "$out.jsonl" "$out" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$ROUNDS" "$SECS"
echo "compare.sh: $runs runs in $(((SECONDS - began) / 60)) min $(((SECONDS - began) % 60)) s" >&2
