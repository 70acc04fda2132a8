#!/usr/bin/env bash
# permessage-deflate numbers (issue #8):
#  1. echo throughput with and without deflate, JSON-like text of 1 KiB and
#     16 KiB, and the compression ratio on the wire (the server's byte
#     counters against the payload bytes the generator reports);
#  2. server memory per idle connection that has exchanged one compressed
#     message, with dedicated codecs (context takeover) and with the
#     per-reactor shared codecs (--deflate-shared).
#
#   bench/scripts/deflate.sh [ROUNDS=3] [SECS=4] [IDLE_N=1000]
#
# Server: `ringwire serve` with one reactor on CPU 1; generator on CPU 0.
# Loopback only; every run bounded in time. Prints Markdown tables.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
SECS=${2:-4}
IDLE_N=${3:-1000}
PORT=${PORT:-9494}
cargo build --release -q -p ringwire-cli -p ringwire-bench --bin ringwire --bin ws_client_tools
bin=./target/release/ringwire
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# run plain|deflate|shared ARGS... -> one JSON line
run() {
  local kind=$1; shift
  local srv_extra=() cli_extra=()
  case $kind in
    deflate) srv_extra=(--deflate); cli_extra=(--deflate) ;;
    shared) srv_extra=(--deflate --deflate-shared); cli_extra=(--deflate) ;;
  esac
  taskset -c 1 $bin serve --listen 127.0.0.1:$PORT --reactors 1 --backend uring "${srv_extra[@]}" 2>"$out/serve.log" &
  local srv=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
  taskset -c 0 $bin load echo "ws://127.0.0.1:$PORT/echo" "$@" "${cli_extra[@]}" --threads 1 \
    --warmup 1s --duration "${SECS}s" --json >"$out/load.json" 2>/dev/null &
  local gen=$!
  sleep 1.3
  local c0 t0 c1 t1
  c0=$(ticks $srv); t0=$(date +%s.%N)
  sleep "$(python3 -c "print(max(0.5, $SECS - 0.6))")"
  c1=$(ticks $srv); t1=$(date +%s.%N)
  wait $gen || true
  kill -INT $srv; wait $srv 2>/dev/null || true
  python3 - "$kind" "$*" "$c0" "$c1" "$t0" "$t1" "$hz" "$out/load.json" "$out/serve.log" <<'PY'
import json, re, sys
kind, args, c0, c1, t0, t1, hz, path, log = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception as e:
    r = {"failed": str(e)}
# The server prints its counters when it stops: bytes on the wire in and
# out over the whole run (warm-up included) and messages.
stats = open(log).read()
def field(name):
    m = re.search(name + r": (\d+)", stats)
    return int(m.group(1)) if m else None
r.update(kind=kind, args=args,
         server_cpu=(int(c1) - int(c0)) / float(hz) / (float(t1) - float(t0)) * 100,
         wire_in=field("bytes_in"), wire_msgs=field("msgs_in"))
print(json.dumps(r))
PY
  sleep 0.3
}

settings=(
  "--conns 64 --in-flight 4 --size 1024 --json-like"
  "--conns 64 --in-flight 1 --size 16384 --json-like"
)
: >"$out/all.jsonl"
for round in $(seq "$ROUNDS"); do
  for s in "${settings[@]}"; do
    for kind in plain deflate shared; do
      echo "round $round/$ROUNDS $kind $s" >&2
      # shellcheck disable=SC2086
      run "$kind" $s >>"$out/all.jsonl"
    done
  done
done

# Idle memory: N connections that each exchanged one compressed message.
mem() {
  local kind=$1 extra=(--deflate)
  [[ $kind == shared ]] && extra+=(--deflate-shared)
  ./target/release/ringwire serve --listen 127.0.0.1:$PORT --reactors 2 "${extra[@]}" >/dev/null 2>&1 &
  local srv=$!
  sleep 0.5
  timeout 60 ./target/release/ws_client_tools idle-deflate 127.0.0.1:$PORT 64 0 >/dev/null
  sleep 0.5
  local before after
  before=$(rss_kib $srv)
  local fifo; fifo=$(mktemp -u); mkfifo "$fifo"
  timeout 120 ./target/release/ws_client_tools idle-deflate 127.0.0.1:$PORT "$IDLE_N" 20 >"$fifo" &
  local cli=$!
  read -r _ _ <"$fifo"
  sleep 1
  after=$(rss_kib $srv)
  kill $cli 2>/dev/null || true; wait $cli 2>/dev/null || true
  rm -f "$fifo"
  kill -INT $srv; wait $srv 2>/dev/null || true
  echo "{\"kind\": \"$kind\", \"before\": $before, \"after\": $after}" >>"$out/mem.jsonl"
  sleep 0.3
}
: >"$out/mem.jsonl"
mem deflate
mem shared

python3 - "$out/all.jsonl" "$out/mem.jsonl" "$ROUNDS" "$SECS" "$IDLE_N" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
mem = [json.loads(l) for l in open(sys.argv[2])]
rounds, secs, n = sys.argv[3], sys.argv[4], int(sys.argv[5])
def med(kind, args, f):
    v = [f(r) for r in rows if r["kind"] == kind and r["args"] == args and "msgs_per_sec" in r]
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else float("nan")
print(f"Medians of {rounds} rounds x {secs} s; io_uring server, 1 reactor on CPU 1; `ringwire load` on CPU 0.\n")
print("| load (JSON-like text) | plain msgs/s | deflate msgs/s | shared msgs/s | deflate / plain | wire bytes per message, plain → deflate | compression ratio | server CPU µs/msg plain / deflate / shared |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for args in sorted({r["args"] for r in rows}):
    size = int(args.split("--size ")[1].split()[0])
    p = med("plain", args, lambda r: r["msgs_per_sec"])
    d = med("deflate", args, lambda r: r["msgs_per_sec"])
    s = med("shared", args, lambda r: r["msgs_per_sec"])
    wp = med("plain", args, lambda r: r["wire_in"] / r["wire_msgs"] if r.get("wire_in") and r.get("wire_msgs") else None)
    wd = med("deflate", args, lambda r: r["wire_in"] / r["wire_msgs"] if r.get("wire_in") and r.get("wire_msgs") else None)
    cpu = lambda k, m: med(k, args, lambda r: r["server_cpu"] / 100 / r["msgs_per_sec"] * 1e6)
    print(f"| `{args}` | {p:,.0f} | {d:,.0f} | {s:,.0f} | **{d / p:.2f}×** | {wp:,.0f} → {wd:,.0f} B | **{size / max(1, wd - (wp - size)):.1f}×** | {cpu('plain', p):.2f} / {cpu('deflate', d):.2f} / {cpu('shared', s):.2f} |")
print(f"\nServer memory per idle connection after one compressed message each way ({n} connections, 2 reactors):\n")
print("| codecs | RSS before → after | per connection |")
print("|---|---|---:|")
for m in mem:
    per = (m["after"] - m["before"]) * 1024 / n
    print(f"| {'dedicated (context takeover)' if m['kind'] == 'deflate' else 'shared per reactor (--deflate-shared)'} | {m['before']:,} KiB → {m['after']:,} KiB | **{per:,.0f} B** |")
PY
