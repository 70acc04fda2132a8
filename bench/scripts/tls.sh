#!/usr/bin/env bash
# TLS cost, measured beside plaintext in the same run:
#  - echo throughput over wss:// as a ratio to ws:// (same server binary,
#    same load), per backend, per message size;
#  - TLS handshakes per second with the server on one core (`ringwire load
#    connect`: each connection does TCP + TLS + upgrade, then closes).
#
#   bench/scripts/tls.sh [ROUNDS=3] [SECS=4]
#
# Server: `ringwire serve` with one reactor on CPU 1 (--tls-self-signed for
# wss://); generator: `ringwire load` on CPU 0 (--ca the server's
# certificate). Plain and TLS runs alternate; medians of ROUNDS. Loopback
# only; every run bounded in time. Prints Markdown tables.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
SECS=${2:-4}
PORT=${PORT:-9492}
cargo build --release -q -p ringwire-cli
bin=./target/release/ringwire
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# run BACKEND tls|plain MODE ARGS... -> one JSON line (load report + server CPU%)
run() {
  local be=$1 kind=$2 mode=$3; shift 3
  local extra=() scheme=ws log=$out/serve.log
  if [[ $kind == tls ]]; then extra=(--tls-self-signed); scheme=wss; fi
  taskset -c 1 $bin serve --listen 127.0.0.1:$PORT --reactors 1 --backend "$be" "${extra[@]}" 2>"$log" &
  local srv=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
  local ca=()
  if [[ $kind == tls ]]; then
    ca=(--ca "$(sed -n 's/^ *certificate: //p' "$log")")
  fi
  taskset -c 0 $bin load "$mode" "$scheme://localhost:$PORT/echo" "$@" "${ca[@]}" --threads 1 \
    --warmup 1s --duration "${SECS}s" --json >"$out/load.json" 2>/dev/null &
  local gen=$!
  sleep 1.3
  local c0 t0 c1 t1
  c0=$(ticks $srv); t0=$(date +%s.%N)
  sleep "$(python3 -c "print(max(0.5, $SECS - 0.6))")"
  c1=$(ticks $srv); t1=$(date +%s.%N)
  wait $gen || true
  kill -INT $srv; wait $srv 2>/dev/null || true
  python3 - "$be" "$kind" "$mode" "$*" "$c0" "$c1" "$t0" "$t1" "$hz" "$out/load.json" <<'PY'
import json, sys
be, kind, mode, args, c0, c1, t0, t1, hz, path = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception as e:
    r = {"failed": str(e)}
r.update(backend=be, kind=kind, mode=mode, args=args,
         server_cpu=(int(c1) - int(c0)) / float(hz) / (float(t1) - float(t0)) * 100)
print(json.dumps(r))
PY
  sleep 0.3
}

settings=(
  "echo|--conns 64 --in-flight 4 --size 1024 --text"
  "echo|--conns 64 --in-flight 1 --size 16384"
  "connect|--conns 32"
)
: >"$out/all.jsonl"
for round in $(seq "$ROUNDS"); do
  for s in "${settings[@]}"; do
    mode=${s%%|*}; args=${s#*|}
    for be in uring epoll; do
      for kind in plain tls; do
        echo "round $round/$ROUNDS $be $kind $mode $args" >&2
        # shellcheck disable=SC2086
        run "$be" "$kind" "$mode" $args >>"$out/all.jsonl"
      done
    done
  done
done

python3 - "$out/all.jsonl" "$ROUNDS" "$SECS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rounds, secs = sys.argv[2], sys.argv[3]
def med(be, kind, mode, args, key):
    v = [r[key] for r in rows if (r["backend"], r["kind"], r["mode"], r["args"]) == (be, kind, mode, args) and key in r and r[key] is not None]
    return statistics.median(v) if v else float("nan")
print(f"Medians of {rounds} rounds x {secs} s; server: 1 reactor on CPU 1; `ringwire load` on CPU 0.\n")
print("Echo throughput, wss:// vs ws:// (msgs/s; server CPU; client CPU):\n")
print("| backend | load | ws:// | wss:// | wss / ws | server CPU µs/msg ws | wss |")
print("|---|---|---:|---:|---:|---:|---:|")
for be in ("uring", "epoll"):
    for args in sorted({r["args"] for r in rows if r["mode"] == "echo"}):
        p = med(be, "plain", "echo", args, "msgs_per_sec")
        t = med(be, "tls", "echo", args, "msgs_per_sec")
        pc = med(be, "plain", "echo", args, "server_cpu")
        tc = med(be, "tls", "echo", args, "server_cpu")
        pcl = med(be, "plain", "echo", args, "client_cpu_percent")
        tcl = med(be, "tls", "echo", args, "client_cpu_percent")
        print(f"| {be} | `{args}` | {p:,.0f} ({pc:.0f}%; client {pcl:.0f}%) | {t:,.0f} ({tc:.0f}%; client {tcl:.0f}%) | **{t / p:.2f}×** | {pc / 100 / p * 1e6:.2f} | {tc / 100 / t * 1e6:.2f} |")
print("\nHandshakes (`ringwire load connect`, 32 concurrent attempts; each = TCP + TLS + upgrade + close):\n")
print("| backend | ws:// connects/s (server CPU) | wss:// connects/s (server CPU) | wss:// per server core-second |")
print("|---|---:|---:|---:|")
for be in ("uring", "epoll"):
    args = "--conns 32"
    p = med(be, "plain", "connect", args, "connects_per_sec")
    t = med(be, "tls", "connect", args, "connects_per_sec")
    pc = med(be, "plain", "connect", args, "server_cpu")
    tc = med(be, "tls", "connect", args, "server_cpu")
    print(f"| {be} | {p:,.0f} ({pc:.0f}%) | {t:,.0f} ({tc:.0f}%) | {t / (tc / 100):,.0f} |")
PY
