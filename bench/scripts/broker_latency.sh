#!/usr/bin/env bash
# Cross-node pub/sub through a real broker (issue #17): publish on node A,
# subscribers on node B (cross-node) or on A (same node), latency from the
# intended send time (`ringwire load fanout --publish-url A --subscribe-url
# B`). Two `ringwire serve --broker URL --reactors 1` nodes and the broker
# (nats-server or redis-server, started here on free loopback ports,
# stopped by PID); 64 B messages, 100 subscribers, one publisher.
#
#   bench/scripts/broker_latency.sh [SECS=5] [BROKERS="nats redis"] [RATES="100 500"]
#
# RATES are publishes/s: x100 subscribers = deliveries/s (100 -> 10k/s,
# 500 -> 50k/s). LADDER (publishes/s, default "2000 8000 16000 32000")
# raises the cross-node rate until messages are lost or latency grows, to
# find where the broker, the bridge or the generator saturates (the node
# counters at shutdown are in each JSON line). Output: bench/results/broker-<stamp>.jsonl
# and a Markdown table on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-5}
BROKERS=${2:-"nats redis"}
RATES=${3:-"100 500"}
LADDER=${LADDER:-"2000 8000 16000 32000"}
SUBS=${SUBS:-100}
cargo build --release -q -p ringwire-cli
tests/brokers/install.sh >/dev/null
bin=./target/release/ringwire
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
mkdir -p bench/results
out=bench/results/broker-$stamp.jsonl
: >"$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }

run_one() { # broker mode rate
  local broker=$1 mode=$2 rate=$3 bport=17422 a=17431 b=17432 url
  case $broker in
    nats) nats-server -a 127.0.0.1 -p $bport >/dev/null 2>&1 & url=nats://127.0.0.1:$bport ;;
    redis) redis-server --port $bport --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 & url=redis://127.0.0.1:$bport ;;
  esac
  local bp=$!; pids+=("$bp"); wait_port $bport
  local logs; logs=$(mktemp -d)
  $bin serve --listen 127.0.0.1:$a --reactors 1 --broker "$url" 2>"$logs/a" & local pa=$!; pids+=("$pa")
  $bin serve --listen 127.0.0.1:$b --reactors 1 --broker "$url" 2>"$logs/b" & local pb=$!; pids+=("$pb")
  wait_port $a; wait_port $b
  # Each node connects to the broker on its own thread after start: give
  # them a moment, or the first publishes count as lost_while_down.
  sleep 1
  local sub=$b; [[ $mode == same ]] && sub=$a
  local json
  json=$($bin load fanout "ws://127.0.0.1:$a/chat/bench" --publish-url "ws://127.0.0.1:$a/chat/bench" \
    --subscribe-url "ws://127.0.0.1:$sub/chat/bench" --subscribers "$SUBS" --publishers 1 \
    --rate "$rate" --size 64 --warmup 1s --duration "${SECS}s" --json 2>/dev/null || echo '{}')
  kill -INT $pa $pb 2>/dev/null || true; wait $pa $pb 2>/dev/null || true
  kill $bp 2>/dev/null || true; wait $bp 2>/dev/null || true
  # The nodes' broker counters at shutdown (published, received,
  # dropped_full, lost_while_down, ...): where a loss happened.
  local sa sb
  sa=$(grep -o 'broker BrokerStats.*' "$logs/a" | tail -1 || true)
  sb=$(grep -o 'broker BrokerStats.*' "$logs/b" | tail -1 || true)
  sb="$sb; $(grep -o 'mailbox_refused: [0-9]*' "$logs/b" | tail -1 || true)"
  rm -rf "$logs"
  python3 - "$broker" "$mode" "$rate" "$json" "$sa" "$sb" >>"$out" <<'PY'
import json, sys
broker, mode, rate, raw, sa, sb = sys.argv[1:]
try:
    r = json.loads(raw)
except Exception:
    r = {}
lat = r.get("latency_us", {})
print(json.dumps({"broker": broker, "mode": mode, "rate": float(rate),
    "deliveries_per_sec": r.get("msgs_per_sec", 0), "expected": r.get("expected_deliveries", 0),
    "delivered": r.get("msgs", 0), "gaps": r.get("gaps", 0), "undelivered": r.get("undelivered", 0),
    "duplicates": r.get("duplicates", 0), "p50_us": lat.get("p50", 0), "p99_us": lat.get("p99", 0),
    "max_us": lat.get("max", 0), "node_a": sa, "node_b": sb}))
PY
}

for broker in $BROKERS; do
  for rate in $RATES; do
    for mode in cross same; do
      echo "$broker $mode $rate/s" >&2
      run_one "$broker" "$mode" "$rate"
    done
  done
  for rate in $LADDER; do
    echo "$broker ladder $rate/s" >&2
    run_one "$broker" cross "$rate"
  done
done

python3 - "$out" "$SUBS" "$SECS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
subs, secs = int(sys.argv[2]), sys.argv[3]
print(f"{subs} subscribers, 1 publisher, 64 B, {secs} s measured per run; every run: `{sys.argv[1]}`\n")
print("| broker | subscribers on | publishes/s | deliveries/s | p50 ms | p99 ms | lost (gaps + undelivered) |")
print("|---|---|---:|---:|---:|---:|---:|")
for r in rows:
    lost = r["gaps"] + r["undelivered"]
    where = "node B (cross-node)" if r["mode"] == "cross" else "node A (same node)"
    print(f"| {r['broker']} | {where} | {r['rate']:,.0f} | {r['deliveries_per_sec']:,.0f} | "
          f"{r['p50_us']/1000:.2f} | {r['p99_us']/1000:.2f} | {lost:,} |")
PY
