#!/usr/bin/env bash
# Installs what the node echo peers need (uWebSockets.js via npm
# `uwebsockets`, `ws`, `bufferutil`), pinned by bench/peers/node/package.json
# and package-lock.json (with integrity hashes), into a cache directory
# OUTSIDE the repo:
#   ${RINGWIRE_PEERS_DIR:-$HOME/.cache/ringwire-peers}/node/node_modules
# Idempotent: a second run with the same lockfile prints nothing and returns
# at once. The Rust peers need no install: cargo build --release -p ringwire-peers.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${RINGWIRE_PEERS_DIR:-$HOME/.cache/ringwire-peers}/node"
npm="${NPM:-npm}"

stamp="$(cat "$here/node/package.json" "$here/node/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [[ -f "$dir/.installed" && "$(cat "$dir/.installed")" == "$stamp" ]] &&
  [[ -d "$dir/node_modules/uwebsockets" && -d "$dir/node_modules/ws" && -d "$dir/node_modules/bufferutil" ]]; then
  exit 0
fi

echo "install.sh: installing the node peers' packages into $dir" >&2
mkdir -p "$dir"
rm -f "$dir/.installed"
cp "$here/node/package.json" "$here/node/package-lock.json" "$dir/"
if ! (cd "$dir" && "$npm" ci --no-audit --no-fund --loglevel=error) >"$dir/npm-ci.log" 2>&1; then
  grep -v 'Unknown user config' "$dir/npm-ci.log" >&2 || true
  echo "install.sh: npm ci failed (log: $dir/npm-ci.log)" >&2
  exit 1
fi

# Check that each package loads under this node (uwebsockets picks the
# binary of this node's ABI and throws if it has none).
node -e '
  const p = require("path"), nm = p.join(process.argv[1], "node_modules");
  const uws = require(p.join(nm, "uwebsockets"));
  if (typeof uws.App !== "function") throw new Error("uwebsockets: no App()");
  require(p.join(nm, "ws")); require(p.join(nm, "bufferutil"));
  const v = (n) => require(p.join(nm, n, "package.json")).version;
  console.error(`install.sh: node ${process.version}: uwebsockets ${v("uwebsockets")}, ws ${v("ws")}, bufferutil ${v("bufferutil")}`);
' "$dir"
echo "$stamp" >"$dir/.installed"
