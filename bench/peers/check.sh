#!/usr/bin/env bash
# Smoke test of the peers: starts each on a free loopback port (pinned to
# CPU 1, as bench/compare.sh does), runs `ringwire load echo` and
# raw-echo-client (the generator written apart from the engine) against it
# (1 KiB text, 16 conns x 4 in flight; then 1 MiB binary, 1 conn), requires
# "mismatches":0 and "errors_total":0, checks with node/check-kinds.js that
# echoes keep their kind (text/binary; the load generator does not check
# that), checks /chat/{room} with node/check-chat.js on the servers that
# have it (ringwire serve, uws, tokio-tungstenite: rooms apart, sender
# included, 100 messages in order at every member), and stops the server by
# its PID.
#   bench/peers/check.sh [PEER...]          (default: the six peers)
#   bench/peers/check.sh --chat [SERVER...] (only the chat check; default:
#                                            ringwire tokio-tungstenite uws)
#   bench/peers/check.sh --http             (the plain-HTTP peers of
#       bench/scripts/http_keepalive.sh: peer-hyper and `ringwire serve`
#       answer GET / with cli/src/page.html, text/html; charset=utf-8, and
#       curl reuses the connection for a second request: keep-alive)
# PEER/SERVER: tokio-tungstenite fastwebsockets tokio-websockets
# ringwire-tokio uws ws, or
# ringwire (`ringwire serve --reactors 2`: echo on /echo, chat on /chat/...).
# Needs: cargo build --release -p ringwire-cli -p ringwire-peers, and
# bench/peers/install.sh for the node peers and the node checks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

declare -A cmd=(
  [tokio-tungstenite]=target/release/peer-tokio-tungstenite
  [fastwebsockets]=target/release/peer-fastwebsockets
  [tokio-websockets]=target/release/peer-tokio-websockets
  [ringwire-tokio]=target/release/peer-ringwire-tokio
  [uws]=bench/peers/node/run-uws.sh
  [ws]=bench/peers/node/run-ws.sh
  [ringwire]=target/release/ringwire
)
# The servers with /chat/{room}.
declare -A has_chat=([ringwire]=1 [tokio-tungstenite]=1 [uws]=1)
if [[ ${1:-} == --http ]]; then
  # Needs curl and target/release/{peer-hyper,ringwire}.
  fail=0
  for p in hyper ringwire; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    if [[ $p == hyper ]]; then
      args=(target/release/peer-hyper "127.0.0.1:$port")
    else
      args=(target/release/ringwire serve --listen "127.0.0.1:$port" --reactors 1)
    fi
    timeout -s TERM 60 taskset -c 1 "${args[@]}" 2>"/tmp/ringwire-peer-http-$p.log" &
    pid=$!
    for _ in $(seq 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      sleep 0.1
    done
    body=$(mktemp)
    verbose=$(curl -sv --max-time 5 -o "$body" "http://127.0.0.1:$port/" -o "$body.2" "http://127.0.0.1:$port/" 2>&1) || true
    ok=yes
    cmp -s "$body" cli/src/page.html && cmp -s "$body.2" cli/src/page.html || ok=no
    grep -qi '^< content-type: text/html; charset=utf-8' <<<"$verbose" || ok=no
    grep -qi 're-using existing connection\|reusing existing connection' <<<"$verbose" || ok=no
    printf '%-18s GET / x2 on one connection: page, content-type, keep-alive ok=%s\n' "$p" "$ok"
    [[ $ok == yes ]] || fail=1
    rm -f "$body" "$body.2"
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  exit $fail
fi
chat_only=no
if [[ ${1:-} == --chat ]]; then
  chat_only=yes
  shift
fi
peers=("$@")
if ((${#peers[@]} == 0)); then
  if [[ $chat_only == yes ]]; then
    peers=(ringwire tokio-tungstenite uws)
  else
    peers=(tokio-tungstenite fastwebsockets tokio-websockets ringwire-tokio uws ws)
  fi
fi
for p in "${peers[@]}"; do
  [[ -n ${cmd[$p]:-} ]] || { echo "check.sh: unknown server $p (want one of: ${!cmd[*]})" >&2; exit 2; }
  if [[ $chat_only == yes && -z ${has_chat[$p]:-} ]]; then
    echo "check.sh: $p has no /chat/{room}" >&2
    exit 2
  fi
done

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

fail=0
for p in "${peers[@]}"; do
  port=$(free_port)
  # Bounded: timeout ends the peer after 120 s whatever happens here.
  if [[ $p == ringwire ]]; then
    args=(serve --listen "127.0.0.1:$port" --reactors 2)
    echo_path=/echo kinds_path=/echo
  else
    args=("127.0.0.1:$port")
    echo_path=/ kinds_path=/any/path
  fi
  timeout -s TERM 120 taskset -c 1 "${cmd[$p]}" "${args[@]}" 2>"/tmp/ringwire-peer-$p.log" &
  pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  loads=("--conns 16 --in-flight 4 --size 1024 --text" "--conns 1 --in-flight 1 --size 1048576")
  [[ $chat_only == no ]] || loads=()
  for load in "${loads[@]}"; do
    for gen in ringwire raw; do
      if [[ $gen == raw ]]; then
        # shellcheck disable=SC2086
        out=$(taskset -c 0 ./target/release/raw-echo-client "ws://127.0.0.1:$port$echo_path" $load \
          --duration 2s --warmup 500ms --connect-timeout 10s 2>>"/tmp/ringwire-load-$p.log") || out="{\"load_failed\":$?}"
      else
        # shellcheck disable=SC2086
        out=$(taskset -c 0 ./target/release/ringwire load echo "ws://127.0.0.1:$port$echo_path" $load \
          --duration 2s --warmup 500ms --json 2>>"/tmp/ringwire-load-$p.log") || out="{\"load_failed\":$?}"
      fi
      ok=no
      if grep -q '"mismatches":0' <<<"$out" && grep -q '"errors_total":0' <<<"$out"; then ok=yes; fi
      rate=$(grep -o '"msgs_per_sec":[0-9.]*' <<<"$out" | cut -d: -f2)
      printf '%-18s %-8s %-42s msgs_per_sec=%-12s ok=%s\n' "$p" "$gen" "$load" "${rate:-?}" "$ok"
      [[ $ok == yes ]] || { fail=1; echo "$out" >&2; }
    done
  done
  if [[ $chat_only == no ]]; then
    if kinds=$(timeout 20 node bench/peers/node/check-kinds.js "ws://127.0.0.1:$port$kinds_path"); then
      printf '%-18s %s\n' "$p" "$kinds"
    else
      printf '%-18s %s FAILED\n' "$p" "$kinds"
      fail=1
    fi
  fi
  if [[ -n ${has_chat[$p]:-} ]]; then
    if chat=$(timeout 20 node bench/peers/node/check-chat.js "ws://127.0.0.1:$port"); then
      printf '%-18s %s\n' "$p" "$chat"
    else
      printf '%-18s %s\n' "$p" "${chat:-chat FAILED}"
      fail=1
    fi
  fi
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
exit $fail
