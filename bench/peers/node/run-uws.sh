#!/usr/bin/env bash
# Starts the uws echo peer: bench/peers/node/run-uws.sh 127.0.0.1:PORT
# (install the node packages first: bench/peers/install.sh). exec's node, so
# this script's PID is node's: stop it with SIGTERM to that PID.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${NODE:-node}" "$here/uws-echo.js" "$@"
