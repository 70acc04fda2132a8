#!/usr/bin/env bash
# TLS cost before/after: server CPU µs per echoed message over wss:// and
# ws://, two `ringwire` builds side by side (rounds interleaved: every
# round runs A and B, plain and TLS, both backends, both sizes):
#   A=/path/to/old/ringwire B=target/release/ringwire \
#     bench/scripts/tls_ab_cpu.sh [ROUNDS=3] [SECS=4]
# Server: one reactor pinned to CPU 1 (--tls-self-signed for wss://);
# generator: B's `ringwire load` on CPU 0 (the same client for A and B),
# --ca the server's certificate. Loads as in tls.sh: 64 conns x 1 KiB text
# x 4 in flight, 64 conns x 16 KiB x 1 in flight. Server CPU time
# (utime+stime from /proc/PID/stat) over a window inside each run.
# Prints one line per run, then medians per (build, backend, load) with
# wss/ws ratios of throughput and of CPU per message. Loopback only.
set -euo pipefail
A=${A:?set A to the baseline binary}
B=${B:-target/release/ringwire}
ROUNDS=${1:-3}
SECS=${2:-4}
PORT=${PORT:-9493}
hz=$(getconf CLK_TCK)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
loads=(
  "1k|--conns 64 --in-flight 4 --size 1024 --text"
  "16k|--conns 64 --in-flight 1 --size 16384"
)
for round in $(seq "$ROUNDS"); do
  for l in "${loads[@]}"; do
    name=${l%%|*}; args=${l#*|}
    for be in uring epoll; do
      for side in A B; do
        for kind in plain tls; do
          bin=$A; [[ $side == B ]] && bin=$B
          extra=(); scheme=ws
          if [[ $kind == tls ]]; then extra=(--tls-self-signed); scheme=wss; fi
          taskset -c 1 "$bin" serve --listen 127.0.0.1:$PORT --reactors 1 --backend "$be" "${extra[@]}" 2>"$out/serve.log" & sp=$!
          for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
          ca=()
          if [[ $kind == tls ]]; then ca=(--ca "$(sed -n 's/^ *certificate: //p' "$out/serve.log")"); fi
          # shellcheck disable=SC2086
          taskset -c 0 "$B" load echo "$scheme://localhost:$PORT/echo" $args "${ca[@]}" --threads 1 \
            --warmup 1s --duration "${SECS}s" --json >"$out/load.json" 2>/dev/null & lp=$!
          sleep 1.3
          t0=$(awk '{print $14 + $15}' /proc/$sp/stat); s0=$(date +%s.%N)
          sleep "$(python3 -c "print(max(0.5, $SECS - 0.6))")"
          t1=$(awk '{print $14 + $15}' /proc/$sp/stat); s1=$(date +%s.%N)
          wait $lp || true
          kill -INT $sp; wait $sp 2>/dev/null || true
          python3 - "$out/load.json" "$round" "$side" "$be" "$kind" "$name" "$t0" "$t1" "$s0" "$s1" "$hz" <<'PY' | tee -a "$out/all.jsonl"
import json, sys
path, rnd, side, be, kind, name = sys.argv[1:7]
t0, t1, s0, s1, hz = map(float, sys.argv[7:12])
try:
    m = json.load(open(path))["msgs_per_sec"]
except Exception:
    m = float("nan")
cpu = (t1 - t0) / hz / (s1 - s0)
print(json.dumps(dict(round=int(rnd), side=side, backend=be, kind=kind, load=name,
                      msgs=m, cpu=cpu, us=cpu * 1e6 / m if m else float("nan"))))
PY
          sleep 0.3
        done
      done
    done
  done
done
python3 - "$out/all.jsonl" "$ROUNDS" "$SECS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(side, be, kind, load, key):
    v = [r[key] for r in rows if (r["side"], r["backend"], r["kind"], r["load"]) == (side, be, kind, load)]
    return statistics.median(v)
print(f"\nMedians of {sys.argv[2]} interleaved rounds x {sys.argv[3]} s; server 1 reactor on CPU 1, `ringwire load` (B) on CPU 0.\n")
print("| load | backend | build | ws msgs/s | wss msgs/s | wss/ws | ws µs/msg | wss µs/msg | wss/ws CPU |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|")
for load in ("1k", "16k"):
    for be in ("uring", "epoll"):
        for side in ("A", "B"):
            pm, tm = med(side, be, "plain", load, "msgs"), med(side, be, "tls", load, "msgs")
            pu, tu = med(side, be, "plain", load, "us"), med(side, be, "tls", load, "us")
            print(f"| {load} | {be} | {side} | {pm:,.0f} | {tm:,.0f} | {tm / pm:.2f}× | {pu:.2f} | {tu:.2f} | {tu / pu:.2f}× |")
PY
