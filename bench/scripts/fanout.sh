#!/usr/bin/env bash
# Pub/sub fan-out side by side: ringwire (io_uring, epoll) against the
# uWebSockets.js pub/sub peer and the tokio-tungstenite broadcast peer,
# all serving /chat/{room} (every text message to every member of the
# room, sender included). Generator: `ringwire load fanout`.
#
#   bench/scripts/fanout.sh [SECS=4] [SERVERS="ringwire-uring ringwire-epoll uws tokio-tungstenite"]
#
# Two settings (the #15 targets): `one` = 1 publisher -> 10,000 subscribers
# in one room; `rooms` = 100 publishers -> 1,000 subscribers in 10 rooms;
# 64 B text messages. For each server and setting a ladder of publish rates
# (RATES_ONE, RATES_ROOMS, publishes/s over all publishers) runs once
# each, servers interleaved per rate. By default the server is pinned to
# CPU 1 (one core: ringwire --reactors 1, the tokio peer on its
# current-thread runtime, uWS on node's thread), the generator to CPU 0
# (one thread). Per run: the
# deliveries/s the subscribers counted, gaps / undelivered / errors (a
# clean run has none), publish -> delivery p50/p99 from the intended send
# time, and the server's CPU share and CPU time per delivery from
# /proc/PID/stat inside the measured window.
#
# On a larger machine: SERVER_CORES=N GEN_CORES=M (default 1 and 1) give
# the generator CPUs 0..M-1 and M threads, the server the next N CPUs
# (ringwire --reactors N, the tokio peer --workers N; uWS stays on one
# thread), e.g. SERVER_CORES=2 GEN_CORES=8 for the two-reactor scaling
# target against SERVER_CORES=1.
#
# Output: bench/results/fanout-<date>.jsonl and Markdown tables on stdout.
# Loopback only; every run bounded in time; servers stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-4}
SERVERS=${2:-"ringwire-uring ringwire-epoll uws tokio-tungstenite"}
RATES_ONE=${RATES_ONE:-"50 100 200 400 800"}
RATES_ROOMS=${RATES_ROOMS:-"5000 10000 20000 40000 60000"}
PORT=${PORT:-9481}
SERVER_CORES=${SERVER_CORES:-1}
GEN_CORES=${GEN_CORES:-1}
if ((SERVER_CORES + GEN_CORES > $(nproc))); then
  echo "SERVER_CORES + GEN_CORES = $((SERVER_CORES + GEN_CORES)) > $(nproc) CPUs" >&2; exit 2
fi
GEN_CPUS=0-$((GEN_CORES - 1))
SRV_CPUS=$GEN_CORES-$((GEN_CORES + SERVER_CORES - 1))
cargo build --release -q -p ringwire-cli -p ringwire-peers
bench/peers/install.sh >/dev/null
bin=./target/release/ringwire
hz=$(getconf CLK_TCK)
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
mkdir -p bench/results
out=bench/results/fanout-$stamp.jsonl
: >"$out"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

start_server() { # name -> pid
  local addr=127.0.0.1:$PORT
  case $1 in
    ringwire-uring) taskset -c "$SRV_CPUS" $bin serve --listen $addr --reactors "$SERVER_CORES" --backend uring >/dev/null 2>&1 & ;;
    ringwire-epoll) taskset -c "$SRV_CPUS" $bin serve --listen $addr --reactors "$SERVER_CORES" --backend epoll >/dev/null 2>&1 & ;;
    uws) taskset -c "$SRV_CPUS" bench/peers/node/run-uws.sh $addr >/dev/null 2>&1 & ;;
    tokio-tungstenite) taskset -c "$SRV_CPUS" ./target/release/peer-tokio-tungstenite $addr --workers "$SERVER_CORES" >/dev/null 2>&1 & ;;
    *) echo "unknown server $1" >&2; exit 2 ;;
  esac
  local pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && { echo $pid; return 0; }
    sleep 0.05
  done
  echo "$1 did not start" >&2; kill $pid 2>/dev/null; return 1
}

stop_server() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 50); do
    [[ -e /proc/$1 && $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]] || return 0
    sleep 0.05
  done
  kill -9 "$1" 2>/dev/null || true
}

# measure SERVER SETTING RATE CONNS load-args...
measure() {
  local server=$1 setting=$2 rate=$3 conns=$4; shift 4
  local srv; srv=$(start_server "$server") || return 0
  local json; json=$(mktemp)
  taskset -c "$GEN_CPUS" $bin load fanout "ws://127.0.0.1:$PORT/chat/bench" "$@" --rate "$rate" --size 64 \
    --threads "$GEN_CORES" --warmup 1s --duration "${SECS}s" --connect-timeout 20s --json >"$json" 2>/dev/null &
  local gen=$!
  # Connections first (10,000 handshakes take a few seconds here), then
  # the warm-up: the window starts once the generator's load is on.
  local t=0
  while [[ $(ss -Htn state established "( sport = :$PORT )" 2>/dev/null | wc -l) -lt $conns ]]; do
    sleep 0.2; t=$((t + 1)); [[ $t -gt 150 ]] && break
  done
  sleep 1.5
  local s0 t0 s1 t1
  s0=$(cpu_ticks "$srv"); t0=$(date +%s.%N)
  sleep "$(python3 -c "print(max(0.5, $SECS - 1.0))")"
  s1=$(cpu_ticks "$srv"); t1=$(date +%s.%N)
  wait $gen || true
  stop_server "$srv"
  python3 - "$server" "$setting" "$rate" "$json" "$s0" "$s1" "$t0" "$t1" "$hz" >>"$out" <<'PY'
import json, sys
server, setting, rate, path, s0, s1, t0, t1, hz = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception:
    r = {}
cpu = (float(s1) - float(s0)) / float(hz) / max(1e-9, float(t1) - float(t0))
d = r.get("msgs_per_sec", 0.0)
print(json.dumps({
    "server": server, "setting": setting, "rate": float(rate),
    "deliveries_per_sec": d, "expected": r.get("expected_deliveries", 0),
    "delivered": r.get("msgs", 0), "gaps": r.get("gaps", 0),
    "undelivered": r.get("undelivered", 0), "duplicates": r.get("duplicates", 0),
    "errors": r.get("errors_total", 0) + r.get("mismatches", 0) + (0 if r else 1),
    "p50_us": r.get("latency_us", {}).get("p50", 0), "p99_us": r.get("latency_us", {}).get("p99", 0),
    "server_cpu": cpu, "cpu_us_per_delivery": cpu * 1e6 / d if d else None,
}))
PY
  rm -f "$json"
}

for rate in $RATES_ONE; do
  for s in $SERVERS; do
    echo "one  rate $rate/s  $s" >&2
    measure "$s" one "$rate" 10001 --subscribers 10000 --publishers 1 --rooms 1
  done
done
for rate in $RATES_ROOMS; do
  for s in $SERVERS; do
    echo "rooms  rate $rate/s  $s" >&2
    measure "$s" rooms "$rate" 1100 --subscribers 1000 --publishers 100 --rooms 10
  done
done

python3 - "$out" "$SERVERS" "$SECS" "$SERVER_CORES" "$GEN_CORES" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
servers = sys.argv[2].split()
secs = sys.argv[3]
srv_cores, gen_cores = sys.argv[4], sys.argv[5]
def clean(r):
    return r["errors"] == 0 and r["gaps"] == 0 and r["undelivered"] == 0 and r["duplicates"] == 0 \
        and r["deliveries_per_sec"] > 0
print(f"One run per rate, {secs} s measured each; server on {srv_cores} CPU(s) after the generator's "
      f"{gen_cores} (`ringwire load fanout --threads {gen_cores}`). Every run: `{sys.argv[1]}`.\n")
for setting, title in [("one", "1 publisher -> 10,000 subscribers, 64 B"),
                       ("rooms", "100 publishers -> 1,000 subscribers in 10 rooms, 64 B")]:
    rs = [r for r in rows if r["setting"] == setting]
    rates = sorted({r["rate"] for r in rs})
    print(f"**{title}**: deliveries/s (server CPU share; server CPU µs per delivery; p50 / p99 ms); ✗ = gaps, undelivered or errors\n")
    print("| publishes/s | " + " | ".join(servers) + " |")
    print("|---:|" + "---:|" * len(servers))
    for rate in rates:
        cells = []
        for s in servers:
            m = [r for r in rs if r["server"] == s and r["rate"] == rate]
            if not m:
                cells.append("—"); continue
            r = m[0]
            mark = "" if clean(r) else " ✗"
            per = f"{r['cpu_us_per_delivery']:.3f}" if r["cpu_us_per_delivery"] else "—"
            cells.append(f"{r['deliveries_per_sec']/1e6:.2f}M ({r['server_cpu']*100:.0f}%; {per}; "
                         f"{r['p50_us']/1000:.1f} / {r['p99_us']/1000:.1f}){mark}")
        print(f"| {rate:,.0f} | " + " | ".join(cells) + " |")
    best = {}
    for s in servers:
        ok = [r for r in rs if r["server"] == s and clean(r)]
        best[s] = max((r["deliveries_per_sec"] for r in ok), default=0.0)
    print("\nHighest clean deliveries/s: " + ", ".join(f"{s} {best[s]/1e6:.2f}M" for s in servers))
    if best.get("uws"):
        for s in servers:
            if s.startswith("ringwire"):
                print(f"- {s} / uws: {best[s]/best['uws']:.2f}×")
    print()
PY
