#!/usr/bin/env bash
# Makes sure `wrk` (the HTTP load generator of bench/scripts/http_keepalive.sh)
# is on PATH: Debian's package (`apt-get install -y wrk`, wrk 4.1 with
# LuaJIT), installed only when `command -v wrk` fails, so a second run
# prints nothing and returns at once. Needs root or passwordless sudo for
# the install itself.
set -euo pipefail
command -v wrk >/dev/null 2>&1 && exit 0
sudo=()
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "install_wrk.sh: wrk is missing and this is not root (no sudo): apt-get install wrk" >&2; exit 1; }
  sudo=(sudo -n)
fi
echo "install_wrk.sh: installing wrk (apt-get install -y wrk)" >&2
if ! "${sudo[@]}" apt-get install -y -q wrk >/dev/null; then
  "${sudo[@]}" apt-get update -q >/dev/null
  "${sudo[@]}" apt-get install -y -q wrk >/dev/null
fi
command -v wrk >/dev/null 2>&1 || { echo "install_wrk.sh: wrk still not on PATH" >&2; exit 1; }
