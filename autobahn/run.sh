#!/usr/bin/env bash
# Runs the real Autobahn|Testsuite against ringwire.
#
#   autobahn/run.sh server [CASES]   fuzzingclient -> ringwire's echo server
#   autobahn/run.sh client           fuzzingserver -> ringwire's client (issue #5)
#
# The backend comes from RINGWIRE_BACKEND (uring | epoll; default: what the
# engine picks). CASES is a JSON list, default ["*"] (every case). Reports go
# to autobahn/reports/<mode>/<backend>/ (git-ignored). Installs wstest when
# missing (needs root). Exits non-zero unless every case is OK or
# INFORMATIONAL (NON-STRICT fails); until permessage-deflate exists, 12.* and
# 13.* may be UNIMPLEMENTED.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
mode=${1:-}
cases=${2:-'["*"]'}
backend=${RINGWIRE_BACKEND:-auto}
port=${AUTOBAHN_PORT:-9001}

case $mode in
  server) ;;
  client)
    echo "autobahn/run.sh client: needs the engine's client side (issue #5); not available yet" >&2
    exit 2 ;;
  *) echo "usage: $0 server|client [CASES_JSON]" >&2; exit 2 ;;
esac

command -v wstest >/dev/null 2>&1 || "$here/install-wstest.sh"

cargo build --release -q --manifest-path "$root/Cargo.toml" -p ringwire-cli
out="$here/reports/$mode/$backend"
rm -rf "$out"; mkdir -p "$out"
work=$(mktemp -d)
srv=""
cleanup() { [[ -n $srv ]] && kill "$srv" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The testee: the engine's /echo (16 MiB max message, which the 9.* cases
# need), loopback only.
args=(serve --listen "127.0.0.1:$port" --max-message-size $((16 << 20)))
[[ $backend == auto ]] || args+=(--backend "$backend")
"$root/target/release/ringwire" "${args[@]}" >"$out/testee.log" 2>&1 &
srv=$!
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

cat >"$work/spec.json" <<JSON
{
  "options": {"failByDrop": false},
  "outdir": "$out",
  "servers": [{"agent": "ringwire-$backend", "url": "ws://127.0.0.1:$port/echo"}],
  "cases": $cases,
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
JSON
start=$(date +%s)
(cd "$work" && timeout 1800 wstest -m fuzzingclient -s spec.json >"$out/wstest.log" 2>&1) || {
  echo "wstest failed (see $out/wstest.log)" >&2; tail -20 "$out/wstest.log" >&2; exit 1; }
echo "autobahn server run, backend $backend: $(( $(date +%s) - start )) s"
python3 "$here/summarize.py" "$out" --allow-unimplemented 12. --allow-unimplemented 13.
