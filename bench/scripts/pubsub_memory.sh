#!/usr/bin/env bash
# Server memory per pub/sub subscription (#15 target: <= 64 B beyond the
# connection itself). For each backend: N idle connections with 0 topics,
# then N with TOPICS topics each (over 1,000 topic names), each in a fresh
# server process; (bytes per connection with topics - without) / TOPICS.
#
#   bench/scripts/pubsub_memory.sh [N=10000] [TOPICS=10] [backends="uring epoll"]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-10000}
TOPICS=${2:-10}
BACKENDS=${3:-"uring epoll"}
cargo build --release -q -p ringwire-bench --bin pubsub_memory --bin ws_client_tools
for be in $BACKENDS; do
  base=$(timeout 120 ./target/release/pubsub_memory "$N" 0 "$be")
  subs=$(timeout 120 ./target/release/pubsub_memory "$N" "$TOPICS" "$be")
  python3 - "$be" "$TOPICS" "$base" "$subs" <<'PY'
import json, sys
be, t, a, b = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
per = (b["bytes_per_conn"] - a["bytes_per_conn"]) / t
print(f"{be}: {a['conns']} connections; {a['bytes_per_conn']:.0f} B per connection without topics, "
      f"{b['bytes_per_conn']:.0f} B with {t} topics each ({b['topics']} topics in all): "
      f"{per:.1f} B per subscription")
PY
done
