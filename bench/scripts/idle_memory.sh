#!/usr/bin/env bash
# Server RSS per idle WebSocket connection, per backend.
#
#   bench/scripts/idle_memory.sh [N=10000] [backends="uring epoll"]
#   BIN=/tmp/old/ringwire bench/scripts/idle_memory.sh   (another build's server)
#
# For each backend: start `ringwire serve`, warm it up (open and close a
# batch of connections, so per-reactor pools such as the io_uring buffer
# ring are already touched; 256 handshakes cycle its 128 buffers), read VmRSS, open N idle connections (handshake
# done, then silent), read VmRSS again: (after - before) / N. Loopback only;
# every step is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-10000}
BACKENDS=${2:-"uring epoll"}
PORT=${PORT:-9211}
cargo build --release -q -p ringwire-cli -p ringwire-bench --bin ringwire --bin ws_client_tools
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
for be in $BACKENDS; do
  "${BIN:-./target/release/ringwire}" serve --listen 127.0.0.1:$PORT --backend "$be" >/tmp/idle-mem-$be.log 2>&1 &
  srv=$!
  sleep 0.5
  timeout 60 ./target/release/ws_client_tools idle 127.0.0.1:$PORT 256 0 >/dev/null
  sleep 0.5
  before=$(rss_kib $srv)
  fifo=$(mktemp -u); mkfifo "$fifo"
  timeout 120 ./target/release/ws_client_tools idle 127.0.0.1:$PORT "$N" 20 >"$fifo" &
  cli=$!
  read -r ready count <"$fifo"
  sleep 1
  after=$(rss_kib $srv)
  kill $cli 2>/dev/null || true; wait $cli 2>/dev/null || true
  rm -f "$fifo"
  kill -INT $srv; wait $srv 2>/dev/null || true
  awk -v b="$before" -v a="$after" -v n="$N" -v be="$be" \
    'BEGIN { printf "%s: %d idle connections, RSS %d KiB -> %d KiB, %.0f bytes per connection\n", be, n, b, a, (a-b)*1024/n }'
done
