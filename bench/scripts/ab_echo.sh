#!/usr/bin/env bash
# A/B echo throughput of two `ringwire` builds, side by side in one run:
#   A=/path/to/old/ringwire B=target/release/ringwire bench/scripts/ab_echo.sh [ROUNDS]
# Server: one reactor pinned to CPU 1; generator (B's `ringwire load`) on
# CPU 0; rounds interleaved; prints the median msgs/s per backend and
# workload and the ratio B/A (raw JSON lines in $OUT_FILE).
set -euo pipefail
A=${A:?set A to the baseline binary}
B=${B:-target/release/ringwire}
ROUNDS=${1:-3}
OUT_FILE=${OUT_FILE:-/tmp/ab_echo.txt}
PORT=${PORT:-9201}
: > "$OUT_FILE"
for round in $(seq "$ROUNDS"); do for side in A B; do for be in uring epoll; do
  for w in "1x1MiB|--conns 1 --in-flight 1 --size 1048576" "4x64KiB|--conns 4 --in-flight 1 --size 65536" \
           "64x16Bx16|--conns 64 --in-flight 16 --size 16" "64x1KiBx4|--conns 64 --in-flight 4 --size 1024 --text"; do
    name=${w%%|*}; args=${w#*|}
    bin=$A; [[ $side == B ]] && bin=$B
    taskset -c 1 "$bin" serve --listen 127.0.0.1:$PORT --backend $be --reactors 1 2>/dev/null & sp=$!
    sleep 0.4
    # shellcheck disable=SC2086
    r=$(taskset -c 0 "$B" load echo ws://127.0.0.1:$PORT/echo $args --duration 3 --warmup 1 --json 2>/dev/null | tail -1)
    kill $sp; wait $sp 2>/dev/null || true
    echo "$round $side $be $name $r" >> "$OUT_FILE"
  done
done; done; done
python3 - "$OUT_FILE" <<'PY'
import collections, json, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    p = line.split(' ', 4)
    try:
        rows[(p[2], p[3], p[1])].append(json.loads(p[4])['msgs_per_sec'])
    except (ValueError, KeyError, IndexError):
        pass
print('| backend | workload | A | B | B/A |')
print('|---|---|---:|---:|---:|')
for be, w in sorted({(k[0], k[1]) for k in rows}):
    a, b = rows[(be, w, 'A')], rows[(be, w, 'B')]
    if a and b:
        ma, mb = statistics.median(a), statistics.median(b)
        print(f'| {be} | {w} | {ma:,.0f} | {mb:,.0f} | {mb / ma:.2f} |')
PY
