#!/usr/bin/env bash
# Runs the real Autobahn|Testsuite against ringwire.
#
#   autobahn/run.sh server [--tls] [--skip-deflate] [CASES]   fuzzingclient -> ringwire's echo server
#   autobahn/run.sh client [--skip-deflate] [CASES]           fuzzingserver -> ringwire's client
#   autobahn/run.sh tokio-server [--skip-deflate] [CASES]     fuzzingclient -> ringwire-tokio's echo server
#   autobahn/run.sh tokio-client [--skip-deflate] [CASES]     fuzzingserver -> ringwire-tokio's client
#
# The tokio modes run the testee of the tokio adapter
# (tokio/examples/autobahn_testee.rs, a current-thread runtime) instead of
# the engine; reports go to autobahn/reports/<mode>/ (no backend).
#
# Both sides negotiate permessage-deflate (`ringwire serve --deflate`; the
# testee client offers it), so 12.* and 13.* run too — they take most of
# the time (minutes on 2 cores). --skip-deflate excludes them (CI runs them
# on one backend only).
#
# --tls: the server runs with a self-signed certificate (--tls-self-signed)
# and the fuzzingclient connects to wss:// (pyOpenSSL; it does not verify
# the certificate). Reports then go to autobahn/reports/server-tls/.
#
# The backend comes from RINGWIRE_BACKEND (uring | epoll; default: what the
# engine picks). CASES is a JSON list, default ["*"] (every case). Reports go
# to autobahn/reports/<mode>/<backend>/ (git-ignored). Installs wstest when
# missing (needs root). Exits non-zero unless every case run is OK or
# INFORMATIONAL (NON-STRICT and UNIMPLEMENTED fail).
#
# A thin user of `ringwire conformance server|client` (the suite, its
# summary and its gate): this script only starts the testee.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
mode=${1:-}
shift || true
tls=0
skip_deflate=0
while [[ ${1:-} == --* ]]; do
  case $1 in
    --tls) tls=1 ;;
    --skip-deflate) skip_deflate=1 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
# ["1.*", "2.1"] -> 1.*,2.1
cases=$(tr -d '[]" ' <<<"${1:-*}")
conf=(--cases "$cases" --timeout 1800)
[[ $skip_deflate == 1 ]] && conf+=(--no-deflate)
backend=${RINGWIRE_BACKEND:-auto}
port=${AUTOBAHN_PORT:-9001}

case $mode in
  server|client) ;;
  tokio-server|tokio-client) backend=tokio ;;
  *) echo "usage: $0 server [--tls] [CASES_JSON] | $0 client [CASES_JSON] | $0 tokio-server|tokio-client [CASES_JSON]" >&2; exit 2 ;;
esac
if [[ $tls == 1 && $mode != server ]]; then
  echo "--tls is for the server run" >&2; exit 2
fi

command -v wstest >/dev/null 2>&1 || "$here/install-wstest.sh"

suffix=""
[[ $tls == 1 ]] && suffix=-tls
out="$here/reports/$mode$suffix/$backend"
[[ $mode == tokio-* ]] && out="$here/reports/$mode"
[[ $skip_deflate == 1 ]] && out="$out-1-10"
rm -rf "$out"; mkdir -p "$out"
conf+=(--report-dir "$out")
srv=""
cleanup() { [[ -n $srv ]] && kill "$srv" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "127.0.0.1:$port is already in use: stop that process or set AUTOBAHN_PORT" >&2
  exit 1
fi

cargo build --release -q --manifest-path "$root/Cargo.toml" -p ringwire-cli
ringwire="$root/target/release/ringwire"
tokio_testee="$root/target/release/examples/autobahn_testee"
if [[ $mode == tokio-* ]]; then
  cargo build --release -q --manifest-path "$root/Cargo.toml" -p ringwire-tokio --example autobahn_testee
fi

if [[ $mode == client || $mode == tokio-client ]]; then
  # The fuzzingserver on loopback; the testee client built on the engine
  # (or on the tokio adapter) started by `ringwire conformance client --run`.
  if [[ $mode == tokio-client ]]; then
    run="$tokio_testee client {url} ringwire-tokio-client"
  else
    cargo build --release -q --manifest-path "$root/Cargo.toml" -p ringwire-autobahn-testee
    run="$root/target/release/autobahn-testee-client {url} ringwire-client-$backend"
    [[ $backend == auto ]] || run+=" $backend"
  fi
  start=$(date +%s)
  rc=0
  "$ringwire" conformance client --port "$port" --run "$run" "${conf[@]}" || rc=$?
  echo "autobahn client run, backend $backend: $(( $(date +%s) - start )) s"
  exit $rc
fi

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$port" >&2; return 1
}
scheme=ws
if [[ $mode == tokio-server ]]; then
  # The tokio adapter's echo server (deflate, 16 MiB messages).
  "$tokio_testee" server "127.0.0.1:$port" >"$out/testee.log" 2>&1 &
  srv=$!
else
  # The testee: the engine's /echo (16 MiB max message, which the 9.* cases
  # need), loopback only.
  args=(serve --listen "127.0.0.1:$port" --max-message-size $((16 << 20)) --deflate)
  [[ $backend == auto ]] || args+=(--backend "$backend")
  if [[ $tls == 1 ]]; then
    args+=(--tls-self-signed); scheme=wss
  fi
  "$ringwire" "${args[@]}" >"$out/testee.log" 2>&1 &
  srv=$!
fi
wait_port

start=$(date +%s)
rc=0
"$ringwire" conformance server "$scheme://127.0.0.1:$port/echo" --agent "ringwire-$backend" "${conf[@]}" || rc=$?
echo "autobahn server run ($scheme), backend $backend: $(( $(date +%s) - start )) s"
exit $rc
