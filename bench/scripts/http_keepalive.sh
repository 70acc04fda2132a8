#!/usr/bin/env bash
# HTTP/1.1 keep-alive `GET /` side by side (issue #16 "Targets": requests/s
# >= 1.2x a hyper 1.x server, current-thread, same response, one load
# tool, keep-alive on both): `ringwire serve --reactors 1` on each backend
# against peer-hyper (bench/peers/src/bin/peer_hyper.rs: hyper 1 +
# hyper-util, http1::Builder with keep-alive, tokio current-thread runtime),
# both answering `GET /` with cli/src/page.html (text/html; charset=utf-8,
# Content-Length, Date). Load tool: wrk (Debian's; bench/scripts/install_wrk.sh).
#
#   bench/scripts/http_keepalive.sh [SECS=5] [ROUNDS=3]
#
# Environment (all optional):
#   SERVERS   default "ringwire-uring ringwire-epoll hyper"
#   CONNS     wrk connections per setting, default "50 10 1"
#   WARMUP    seconds of an unmeasured wrk run before each run (default 1)
#   URL_PATH  request path (default /)
#   PORT      loopback port (default 9491)
#   BUSY_LIMIT  a run during which the rest of the machine used more than
#             this much CPU (in cores, see "others" below; default 0.15) is
#             run again, up to RETRIES more times (default 3) after a pause
#             of 10 s; every attempt is in the JSONL; the tables use the
#             quiet attempts (all of them, not only the last of a run).
#             BUSY_LIMIT=inf keeps every first attempt.
#   NO_BUILD=1  skip `cargo build --release -p ringwire-cli -p ringwire-peers`
#
# Each run: the server is started pinned to CPU 1 (one core: ringwire
# `--reactors 1`, hyper on its current-thread runtime), then wrk pinned to
# CPU 0 with one thread: a WARMUP s run, then `wrk -t1 -cN -dSECSs --latency`
# with bench/scripts/wrk_json.lua (its figures as one JSON line). Rounds
# interleave the servers (for each round, for each CONNS, every server in
# turn). The server's CPU time (utime + stime, all threads) and wrk's are
# read from /proc/PID/stat over a window inside the measured run (from
# 0.5 s after it starts to 0.5 s before its end): the server's share of one
# core and its CPU µs per request, the figure that does not depend on how
# much CPU the generator leaves over. Before the runs each server's answer
# to `GET /` is checked (status 200, body = cli/src/page.html, the
# Content-Type) with curl.
#
# Output: bench/results/http-keepalive-<date>.jsonl (every attempt) and, on
# stdout and in bench/results/http-keepalive-<date>.md, Markdown tables
# (bench/scripts/http_keepalive_report.py, which also rereads a JSONL file):
# medians over the quiet attempts (requests/s, wrk p50/p99 latency, server
# CPU share and µs per request) with ringwire/hyper ratios from the same
# run. Loopback only; every run bounded in time; servers stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
cmdline=""
for v in SERVERS CONNS WARMUP URL_PATH BUSY_LIMIT RETRIES; do
  [[ -n ${!v:-} ]] && cmdline+="$v=\"${!v}\" "
done
cmdline+="bench/scripts/http_keepalive.sh $*"
SECS=${1:-5}
ROUNDS=${2:-3}
SERVERS=${SERVERS:-"ringwire-uring ringwire-epoll hyper"}
CONNS=${CONNS:-"50 10 1"}
WARMUP=${WARMUP:-1}
URL_PATH=${URL_PATH:-/}
PORT=${PORT:-9491}
BUSY_LIMIT=${BUSY_LIMIT:-0.15}
RETRIES=${RETRIES:-3}
GEN_CPU=0
SRV_CPU=1
((SECS >= 2)) || { echo "http_keepalive.sh: SECS must be >= 2" >&2; exit 2; }
(($(nproc) >= 2)) || { echo "http_keepalive.sh: needs 2 CPUs (generator on 0, server on 1)" >&2; exit 2; }
if [[ ${NO_BUILD:-0} != 1 ]]; then
  cargo build --release -q -p ringwire-cli -p ringwire-peers
fi
bench/scripts/install_wrk.sh
command -v curl >/dev/null || { echo "http_keepalive.sh: needs curl (the response check)" >&2; exit 2; }
target=${CARGO_TARGET_DIR:-./target}
bin=$target/release/ringwire
hyper_bin=$target/release/peer-hyper
lua=bench/scripts/wrk_json.lua
url=http://127.0.0.1:$PORT$URL_PATH
hz=$(getconf CLK_TCK)
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
mkdir -p bench/results
out=bench/results/http-keepalive-$stamp.jsonl
md=bench/results/http-keepalive-$stamp.md
: >"$out"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Machine-wide busy ticks (user nice system irq steal) and softirq ticks, all CPUs.
machine_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $9 "," $8}' /proc/stat; }

start_server() { # name -> pid
  local addr=127.0.0.1:$PORT
  case $1 in
    ringwire-uring) taskset -c $SRV_CPU "$bin" serve --listen "$addr" --reactors 1 --backend uring >/dev/null 2>&1 & ;;
    ringwire-epoll) taskset -c $SRV_CPU "$bin" serve --listen "$addr" --reactors 1 --backend epoll >/dev/null 2>&1 & ;;
    hyper) taskset -c $SRV_CPU "$hyper_bin" "$addr" >/dev/null 2>&1 & ;;
    *) echo "unknown server $1 (want ringwire-uring, ringwire-epoll or hyper)" >&2; exit 2 ;;
  esac
  local pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && { echo $pid; return 0; }
    sleep 0.05
  done
  echo "$1 did not start" >&2
  kill $pid 2>/dev/null
  return 1
}

stop_server() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 50); do
    [[ -e /proc/$1 && $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]] || return 0
    sleep 0.05
  done
  kill -9 "$1" 2>/dev/null || true
}

# The same answer from every server: 200, the page, its Content-Type.
check_response() {
  local srv body hdrs
  srv=$(start_server "$1") || return 1
  body=$(mktemp) hdrs=$(mktemp)
  local ok=1
  curl -s --max-time 5 -D "$hdrs" -o "$body" "$url" || ok=0
  stop_server "$srv"
  if [[ $ok == 1 && $URL_PATH == / ]]; then
    head -1 "$hdrs" | grep -q ' 200' || ok=0
    cmp -s "$body" cli/src/page.html || ok=0
    grep -qi '^content-type: text/html; charset=utf-8' "$hdrs" || ok=0
  fi
  echo "$1: $(head -1 "$hdrs" | tr -d '\r'); $(wc -c <"$body") B body; headers: $(sed 1d "$hdrs" | tr -d '\r' | cut -d: -f1 | grep . | paste -sd, -)" >&2
  rm -f "$body" "$hdrs"
  [[ $ok == 1 ]] || { echo "http_keepalive.sh: $1 does not answer GET $URL_PATH as expected" >&2; return 1; }
}

# measure SERVER CONNS ROUND ATTEMPT
measure() {
  local server=$1 conns=$2 round=$3 attempt=$4
  local srv; srv=$(start_server "$server") || return 0
  taskset -c $GEN_CPU wrk -t1 -c"$conns" -d"${WARMUP}s" "$url" >/dev/null 2>&1 || true
  local txt; txt=$(mktemp)
  taskset -c $GEN_CPU wrk -t1 -c"$conns" -d"${SECS}s" --latency -s "$lua" "$url" >"$txt" 2>&1 &
  local gen=$!
  sleep 0.5
  local s0 g0 m0 t0 s1 g1 m1 t1
  s0=$(cpu_ticks "$srv"); g0=$(cpu_ticks "$gen"); m0=$(machine_ticks); t0=$(date +%s.%N)
  sleep "$(python3 -c "print($SECS - 1.0)")"
  s1=$(cpu_ticks "$srv"); g1=$(cpu_ticks "$gen"); m1=$(machine_ticks); t1=$(date +%s.%N)
  wait $gen || true
  stop_server "$srv"
  python3 - "$server" "$conns" "$round" "$SECS" "$txt" "$s0" "$s1" "$g0" "$g1" "$m0" "$m1" "$t0" "$t1" "$hz" "$attempt" >>"$out" <<'PY'
import json, sys
server, conns, rnd, secs, path, s0, s1, g0, g1, m0, m1, t0, t1, hz, attempt = sys.argv[1:]
w = {}
for line in open(path):
    if line.startswith("WRKJSON "):
        w = json.loads(line[len("WRKJSON "):])
win = max(1e-9, float(t1) - float(t0))
cpu = (float(s1) - float(s0)) / float(hz) / win
gen_cpu = (float(g1) - float(g0)) / float(hz) / win
(b0, q0), (b1, q1) = (map(float, m.split(",")) for m in (m0, m1))
softirq = (q1 - q0) / float(hz) / win
# CPU (in cores) the rest of the machine used in the window: busy time
# outside softirq that neither the server nor wrk was charged with.
others = max(0.0, (b1 - b0) / float(hz) / win - cpu - gen_cpu)
# A process gone before the window's end (its ticks read as 0): no valid
# window; counted as a busy machine so that the run is done again.
window_ok = float(s1) >= float(s0) and float(g1) >= float(g0)
if not window_ok:
    others = float("inf")
n = w.get("requests", 0)
rps = n / (w["duration_us"] / 1e6) if w.get("duration_us") else 0.0
errors = sum(w.get(k, 0) for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout")) + (0 if w else 1)
print(json.dumps({
    "server": server, "conns": int(conns), "round": int(rnd), "attempt": int(attempt), "secs": float(secs),
    "requests": n, "rps": rps, "bytes_per_response": w.get("bytes", 0) / n if n else 0,
    "p50_us": w.get("p50_us", 0), "p90_us": w.get("p90_us", 0), "p99_us": w.get("p99_us", 0),
    "max_us": w.get("max_us", 0), "errors": errors,
    "err_detail": {k: w.get(k, 0) for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout")},
    "server_cpu": cpu, "cpu_us_per_req": cpu * 1e6 / rps if rps else None,
    "gen_cpu": gen_cpu, "softirq_cpu": softirq, "others_cpu": others if window_ok else None,
    "window_ok": window_ok,
}))
PY
  tail -1 "$out" | python3 -c 'import json, sys; r = json.load(sys.stdin); print("  {:,.0f} req/s  p50 {} us  p99 {} us  server CPU {:.0f}%  wrk CPU {:.0f}%  errors {}".format(r["rps"], r["p50_us"], r["p99_us"], r["server_cpu"] * 100, r["gen_cpu"] * 100, r["errors"]) + "  others {}".format("{:.0f}%".format(r["others_cpu"] * 100) if r["window_ok"] else "? (no valid window)"))' >&2
  rm -f "$txt"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for s in $SERVERS; do check_response "$s"; done
for round in $(seq "$ROUNDS"); do
  for c in $CONNS; do
    for s in $SERVERS; do
      for attempt in $(seq 0 "$RETRIES"); do
        if ((attempt == 0)); then
          echo "round $round/$ROUNDS  -c$c  $s" >&2
        else
          echo "round $round/$ROUNDS  -c$c  $s  (again, $attempt: the rest of the machine was busy)" >&2
        fi
        measure "$s" "$c" "$round" "$attempt"
        ((attempt < RETRIES)) || break
        tail -1 "$out" | python3 -c "import json, sys; r = json.load(sys.stdin); sys.exit(0 if r['window_ok'] and r['others_cpu'] <= float('$BUSY_LIMIT') else 1)" && break
        sleep 10
      done
    done
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 bench/scripts/http_keepalive_report.py "$out" --busy-limit "$BUSY_LIMIT" --cmdline "$cmdline" \
  --load-before "$load_before" --load-after "$load_after" | tee "$md"
