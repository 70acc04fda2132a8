#!/usr/bin/env bash
# Installs the real brokers the broker tests run (`nats-server` and
# `redis-server`, plus `redis-cli`) from Debian's packages; idempotent (a
# few ms when both are present). No system service is wanted: the tests
# start their own brokers as child processes on free loopback ports, so a
# service the package may have started is stopped and disabled.
#
#   tests/brokers/install.sh
set -euo pipefail
missing=()
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
if ((${#missing[@]} == 0)); then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Packages must not start their services here (policy-rc.d 101: "action
# forbidden"); restored afterwards if one was there.
policy=/usr/sbin/policy-rc.d
saved=
if [[ -e $policy ]]; then
  saved=$(mktemp)
  cp -p "$policy" "$saved"
fi
printf '#!/bin/sh\nexit 101\n' >"$policy"
chmod +x "$policy"
restore() {
  if [[ -n $saved ]]; then mv "$saved" "$policy"; else rm -f "$policy"; fi
}
trap restore EXIT
apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
}
# Where systemd runs, keep the packaged services off (ignore failures: no
# systemd in containers).
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
  systemctl disable --now redis-server nats-server >/dev/null 2>&1 || true
fi
command -v nats-server >/dev/null && command -v redis-server >/dev/null && command -v redis-cli >/dev/null
